"""data/: the task collections (built-in suite, the shipped SNI subset, any SNI-format folder),
the benchmarks, chat formatting, metrics, and preparing the default base model.

This package sits at the bottom of the project with model.py and lora.py: it imports neither
(only common.py, the plumbing below everything).
Its one error type lives here, so every module of the package can raise it without importing a
sibling: a CLI turns it into one `error: ...` line.
"""
from common import UserError


class DataError(UserError):
    """A missing or malformed task file, collection or benchmark: one line naming the file and
    what was expected."""
