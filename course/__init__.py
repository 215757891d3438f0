"""The course: assignments made from marked regions of the project's own source, graded by its
tests. `python -m course list | make N --out DIR | check N [--dir DIR]`; see course/README.md."""
