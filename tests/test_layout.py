"""The package's shape: no import cycles, stages that import only the stages before them, and a
README whose Layout section names every package that exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "butd"

#: each top-level part of butd and the parts it may import: data flows one way (raw files ->
#: preparation -> cache -> data -> models -> training -> evaluation -> reporting), and the entry
#: points sit on top. `preparation` (raw files -> cache) and `data` (cache -> batches) stand side
#: by side and never import each other: what both sides agree on lies beneath them, in `vqa` (the
#: VQA conventions: text, answers, the official accuracy, the sparse tables, the feature rows) and
#: `cache` (the cache's format: the manifest record, its checks at open, its locks). Reading never
#: prepares: the entry points prepare a missing cache before they build a reader. `files` (atomic
#: writes, the `.partial` suffix) sits beneath every stage that writes.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "memory": set(),
    "files": set(),
    "config": {"errors", "files"},
    "vqa": {"errors", "config"},
    "cache": {"errors", "files", "config", "vqa"},
    "data": {"errors", "memory", "files", "config", "vqa", "cache"},
    "preparation": {"errors", "memory", "files", "config", "vqa", "cache"},
    "models": {"errors", "config"},
    "training": {"errors", "files", "config", "vqa", "cache", "data", "models"},
    "evaluation": {"errors", "files", "config", "vqa", "cache", "data", "models", "training"},
    "reporting": {"errors", "files", "config"},
}
ENTRY_POINTS = {"train", "prepare", "evaluate", "predict", "visualize", "report", "import_reference"}
#: the flat modules beneath the stages
LOW = ("errors", "memory", "files")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """butd modules `path` imports anywhere in its body (also inside functions): `from a.b import c`
    counts `a.b.c` when that is a module, else `a.b`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + [base]
                ).strip(".")
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walk_sees_imports_inside_functions_and_relative_ones(tmp_path):
    modules = {"butd.a": tmp_path / "a.py", "butd.b": tmp_path / "b.py", "butd.c": tmp_path / "c"}
    (tmp_path / "a.py").write_text("def f():\n    from butd import b\n    import butd.c\n")
    assert _imports(tmp_path / "a.py", "butd.a", modules) == {"butd.b", "butd.c"}
    assert _cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]


def test_no_module_imports_itself_through_others():
    assert _cycles(_graph()) == []


def test_each_stage_imports_only_the_stages_before_it():
    wrong = []
    for name, imported in _graph().items():
        part = name.split(".")[1] if name.count(".") else "butd"
        if part in ENTRY_POINTS or part == "butd":
            continue
        assert part in ALLOWED, f"{name}: a new top-level part of butd; add it to ALLOWED and the README"
        for other in imported:
            target = other.split(".")[1] if other.count(".") else "butd"
            if target != part and target not in ALLOWED[part] and target != "butd":
                wrong.append(f"{name} imports {other}")
    assert wrong == []


def test_the_readme_layout_names_every_package_and_entry_point():
    readme = (REPO / "README.md").read_text()
    layout = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    listed = set(re.findall(r"^\s+(\w+)/\s", layout, re.M))
    assert packages <= listed, f"packages missing from the README's Layout: {packages - listed}"
    for module in [*ENTRY_POINTS, *LOW]:
        assert (PACKAGE / f"{module}.py").is_file()
        assert f"{module}.py" in layout, f"{module}.py missing from the README's Layout"
    flat = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert flat <= {*ENTRY_POINTS, *LOW}, f"flat modules outside the layout: {flat}"
