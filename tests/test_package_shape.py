"""The package's shape: no import circles, stages in their own folders.

The import graph is read from the source with ``ast`` (imports inside
functions count too: a lazy import hides a circle, it does not remove it;
imports under ``if TYPE_CHECKING:`` do not run and are left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

import myelo_docs

PACKAGE = Path(myelo_docs.__file__).resolve().parent
STAGES = ("schema", "formats", "content", "render", "verify", "output", "batch", "cli", "service",
          "site")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports (a submodule named in
    ``from package import submodule`` counts as that submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    found.add(f"{source}.{alias.name}")
                elif source in known:
                    found.add(source)
    found.discard(name)
    return found


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def test_the_package_has_no_import_circles():
    assert circles(graph()) == []


def test_the_circle_finder_finds_a_circle():
    # The check above must be able to fail: a made-up graph with a circle.
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_a_lazy_import_counts(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from myelo_docs.render import engine\n"
                      "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from myelo_docs.cli import main\n")
    known = {"myelo_docs.render.engine", "myelo_docs.cli.main"}
    assert imports_of("myelo_docs.x", module, known) == {"myelo_docs.render.engine"}


def test_modules_live_in_their_stage_folders():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "about.py", "assets.py"]
    for stage in STAGES:
        folder = PACKAGE / stage
        if folder.exists():
            assert (folder / "__init__.py").is_file(), f"{stage}/ is a package"
