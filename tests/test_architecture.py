"""docs/architecture.md stays true: each package imports only what its row of the package table
allows, and no module imports itself back through others (function-level imports count too),
except through the imports the page lists as known cycles."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "waveidp"
DOC = REPO / "docs" / "architecture.md"


def allowed_imports() -> dict[str, set[str]]:
    """The package table of docs/architecture.md: package -> the packages it may import."""
    text = DOC.read_text()
    table = text[text.index("<!-- package-graph") :].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    out = {}
    for row in rows:
        package, may, _ = (cell.strip() for cell in row.strip("|").split("|", 2))
        names = {n.strip() for n in may.split(",") if n.strip()}
        out[package.strip("`")] = {"*"} if may == "every package" else names
    return out


def known_cycles() -> set[tuple[str, str]]:
    """The page's known cycles: (module, the package it imports against the graph)."""
    text = DOC.read_text()
    listed = text[text.index("<!-- known-cycles") :].split("\n\n", 1)[0]
    return {(m, p) for m, p in re.findall(r"^- `([\w.]+)` imports `([\w.]+)`", listed, re.M)}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imported(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The Wave modules `path` imports, at any depth of its code, but for the known cycles."""
    module = module_name(path)
    against = {target for source, target in known_cycles() if source == module}
    for target in _imports(path, known):
        if not any(target == t or target.startswith(t + ".") for t in against):
            yield target


def _imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in known:
                    yield full
                elif node.module in known:
                    yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in known)


def package_of(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_each_package_imports_only_what_the_architecture_page_allows() -> None:
    allowed = allowed_imports()
    known = modules()
    packages = {package_of(m) for m in known if m != "waveidp"} - {"__main__"}
    assert packages <= set(allowed), f"packages missing from docs/architecture.md: {packages - set(allowed)}"
    found = set()
    for module, path in known.items():
        source = package_of(module)
        if source in ("waveidp", "__main__", "cli"):
            continue
        for target in imported(path, known):
            dest = package_of(target)
            if dest != source and dest != "waveidp":
                found.add((source, dest, module))
    wrong = sorted(f"{m} imports {d}" for s, d, m in found if d not in allowed[s])
    assert not wrong, "imports docs/architecture.md does not allow:\n" + "\n".join(wrong)


def test_no_module_imports_itself_back() -> None:
    known = modules()
    edges = {m: set(imported(p, known)) - {m} for m, p in known.items()}
    cycles = []
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in known:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    assert not cycles, f"modules that import each other (directly or round a loop): {cycles}"


def test_the_known_cycles_are_still_there() -> None:
    """A known cycle that is gone comes off the page (so that it cannot come back unnoticed)."""
    known = modules()
    for source, target in sorted(known_cycles()):
        assert source in known, f"docs/architecture.md lists a cycle from {source}, which does not exist"
        found = [m for m in _imports(known[source], known) if m == target or m.startswith(target + ".")]
        assert found, f"{source} no longer imports {target}: take it off docs/architecture.md's known cycles"


def test_the_page_names_modules_that_exist() -> None:
    """Every `path/module.py` the page names is in the tree."""
    named = {m for m in re.findall(r"`([\w/]+\.py)`", DOC.read_text()) if "/" in m}
    missing = [m for m in sorted(named) if not (SRC / m).exists() and not (REPO / m).exists()]
    assert not missing, f"docs/architecture.md names modules that do not exist: {missing}"
