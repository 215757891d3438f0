"""The house rules of the code, checked with `ast` so that later changes keep them:

- imports run one way, bottom to top: common.py and checkpoint.py (layer 0: the plumbing, importing
  nothing of the project but each other, checkpoint -> common), model.py, lora.py and data/ (layer 1),
  then t2l.py, eval.py, train_sft.py, train_recon.py, the result scripts of scripts/ (report.py,
  adapter_map.py), and bench/ and course/ on top; a module imports only from layers below it (inside
  a layer only lora.py -> model.py, checkpoint.py -> common.py, and within data/, scripts/, bench/,
  course/), so there is no cycle, not even through an import inside a function;
- model.py imports no project module but common.py, and data/ never imports model.py or lora.py;
- imports sit at the top of a file, except the heavy optional display / encoder / template
  libraries (matplotlib, sentence_transformers, jinja2, sklearn) and what only bench/'s comparisons
  or a data fetch need (transformers, peft, pyarrow), imported where they are used.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYER = {"common": 0, "checkpoint": 0, "model": 1, "lora": 1, "data": 1, "t2l": 2, "eval": 3, "train_sft": 4,
         "train_recon": 5, "scripts": 6, "bench": 7, "course": 7}
LAZY_OK = ("matplotlib", "sentence_transformers", "jinja2", "sklearn",  # display / encoder / template libraries
           "transformers", "peft", "pyarrow")  # what only bench/ (the comparison) or a data fetch needs


def project_modules() -> dict[str, Path]:
    mods = {p.stem: p for p in ROOT.glob("*.py")}
    for pkg in ("data", "scripts", "bench", "course"):  # data/ (layer 1); scripts/, bench/ and course/ (the top)
        mods.update({pkg if p.stem == "__init__" else f"{pkg}.{p.stem}": p for p in (ROOT / pkg).glob("*.py")})
    return mods


def imports_of(path: Path, mods) -> list[tuple[str, int, bool]]:
    """[(project module imported, line, at top level?)], every import in the file (functions too)."""
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for n in names:
            if n in mods:
                out.append((n, node.lineno, id(node) in top))
    return out


def layer(mod: str) -> int:
    return LAYER[mod.split(".")[0]]


def graph():
    mods = project_modules()
    return mods, {m: imports_of(p, mods) for m, p in mods.items()}


def find_cycle(edges: dict) -> list | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in edges.get(m, ()):
            if state.get(n) == "open":
                return stack[stack.index(n):] + [n]
            if n not in state and (c := visit(n)):
                return c
        state[m] = "done"
        stack.pop()
        return None
    for m in edges:
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_cycle_even_inside_functions():
    mods, imp = graph()
    edges = {m: sorted({n for n, _, _ in v if n != m}) for m, v in imp.items()}
    assert find_cycle(edges) is None, f"import cycle: {' -> '.join(find_cycle(edges))}"


def test_find_cycle_can_fail():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_imports_go_down_the_layers():
    mods, imp = graph()
    bad = []
    for m, v in imp.items():
        for n, line, _ in v:
            same_ok = (m, n) in (("lora", "model"), ("checkpoint", "common")) or any(
                m.startswith(k) and n.startswith(k) for k in ("data", "scripts", "bench", "course"))
            if n != m and not (layer(n) < layer(m) or (layer(n) == layer(m) and same_ok)):
                bad.append(f"{mods[m].name}:{line} imports {n}")
    assert not bad, bad


def test_model_py_imports_nothing_of_the_project_and_data_not_model_or_lora():
    mods, imp = graph()
    assert imp["common"] == [], imp["common"]
    assert [n for n, _, _ in imp["checkpoint"] if n != "common"] == [], imp["checkpoint"]  # plumbing: the bottom
    assert [n for n, _, _ in imp["model"] if n != "common"] == [], imp["model"]
    for m, v in imp.items():
        if m.startswith("data"):
            assert not [n for n, _, _ in v if n in ("model", "lora")], (m, v)


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_imports_at_the_top_except_heavy_optional_libraries(name):
    path = project_modules()[name]
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    main_guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    allowed = {id(x) for g in main_guard for x in ast.walk(g)}
    late = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top and id(node) not in allowed:
            mod = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
            if not mod.startswith(LAZY_OK):
                late.append(f"{path.name}:{node.lineno} imports {mod} inside a function")
    assert not late, late
