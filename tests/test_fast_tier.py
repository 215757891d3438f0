"""The fast tier, `python -m pytest -q -m "not slow"` (under 3 minutes on 2 cores), keeps reaching
every module: each method module is imported by a test file that still has a test outside the
`slow` marker. Read from the source (ast), so this costs milliseconds."""
import ast

from conftest import ROOT

PACKAGES = ("data", "scripts")  # besides the top-level modules
NOT_TESTED_HERE = {"data.__main__"}  # `python -m data`: an entry point over data.tasks / data.collection


def method_modules() -> set:
    mods = {p.stem for p in ROOT.glob("*.py")}
    for pkg in PACKAGES:
        mods |= {f"{pkg}.{p.stem}" for p in (ROOT / pkg).glob("*.py") if p.stem != "__init__"}
    return mods - NOT_TESTED_HERE


def is_slow(node) -> bool:
    return any("mark.slow" in ast.unparse(d) for d in node.decorator_list)


def fast_imports(path) -> set:
    """The project modules a test file imports, if it has at least one test not marked slow; else none."""
    tree = ast.parse(path.read_text())
    if any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets)
           and "slow" in ast.unparse(n.value) for n in tree.body):
        return set()
    if not any(isinstance(n, ast.FunctionDef) and n.name.startswith("test") and not is_slow(n) for n in tree.body):
        return set()
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            names |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}  # from data import prepare_model
    return names


def test_every_method_module_has_a_fast_test():
    covered = set().union(*(fast_imports(p) for p in (ROOT / "tests").glob("test_*.py")))
    missing = sorted(method_modules() - covered)
    assert not missing, f"no test outside the slow marker imports {missing}: add a fast one"


def test_the_slow_marker_is_registered(pytestconfig):
    assert any(line.startswith("slow:") for line in pytestconfig.getini("markers"))
