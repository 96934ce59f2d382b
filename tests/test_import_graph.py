"""The modules of netns_kit import each other without cycles (pure: reads the source, imports nothing).

The graph is built with ``ast`` from every ``import`` and ``from ... import`` anywhere in a module,
function-local (deferred) imports included, because a deferred import that closes a loop still
ties the layers together; imports under ``if TYPE_CHECKING:`` are left out (they never run).
A failure names one cycle per knot, ``a -> b -> c -> a``, with the lines that make each edge.
"""

from __future__ import annotations

import ast
import itertools
import re
import textwrap
from collections import deque
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "netns_kit"

# module -> imported module -> "file.py:line" of each import that makes the edge
Graph = dict[str, dict[str, list[str]]]


def _module_names(package_dir: Path) -> dict[str, Path]:
    name = package_dir.name
    mods: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere, except in the body of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            todo.extend(node.orelse)  # the else branch does run
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def build_import_graph(package_dir: Path) -> Graph:
    mods = _module_names(package_dir)

    def known(target: str) -> str | None:
        """The module that ``target`` names: itself, or the package of the name imported from it."""
        while target and target not in mods:
            target = target.rpartition(".")[0]
        return target or None

    graph: Graph = {m: {} for m in mods}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        for node in _runtime_imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    anchor = package[: len(package) - (node.level - 1)]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    # `from . import _state` depends on the module state; `from .x import Name` on x
                    targets.append(sub if sub in mods else base)
            for target in targets:
                dep = known(target)
                # `from . import x` is no edge to the package (its __init__ runs first anyway),
                # but a name taken from the package itself (`from netns_kit import Name`) is.
                if dep is None or dep == mod:
                    continue
                where = f"{path.relative_to(package_dir.parent)}:{node.lineno}"
                graph[mod].setdefault(dep, []).append(where)
    return graph


def strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, todo = work[-1]
            if todo:
                w = todo.pop(0)
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, sorted(graph[w])))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return sorted(found)


def shortest_cycle(graph: Graph, component: list[str]) -> list[str]:
    """The shortest cycle through the component's first module, staying inside the component."""
    first, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([first])
    while queue:
        v = queue.popleft()
        for w in sorted(graph[v]):
            if w not in members:
                continue
            if w == first:
                path = [v]
                while path[-1] != first:
                    path.append(came_from[path[-1]])
                return [*reversed(path), first]
            if w not in came_from:
                came_from[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle through {first} in {component}")  # pragma: no cover


def describe_cycles(graph: Graph, root: str) -> list[str]:
    def short(m: str) -> str:
        return m.removeprefix(root + ".")

    lines = []
    for comp in strongly_connected(graph):
        cycle = shortest_cycle(graph, comp)
        lines.append(" -> ".join(short(m) for m in cycle)
                     + f"   (knot of {len(comp)}: {', '.join(short(m) for m in comp)})")
        for a, b in itertools.pairwise(cycle):
            lines.append(f"    {short(a)} -> {short(b)}: {', '.join(graph[a][b])}")
    return lines


def test_netns_kit_has_no_import_cycles() -> None:
    graph = build_import_graph(PACKAGE_DIR)
    cycles = describe_cycles(graph, PACKAGE_DIR.name)
    assert not cycles, "import cycles in netns_kit (deferred imports count, TYPE_CHECKING ones do not):\n" + "\n".join(
        cycles)


# The checker itself, on a package written for the purpose.


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / "pkg"
    for name, text in files.items():
        path = pkg / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return pkg


def test_relative_deferred_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "from .a import A\nfrom . import b\n",
        "a.py": """
            from typing import TYPE_CHECKING
            import typing
            from . import b
            if TYPE_CHECKING:
                from .c import C
            if typing.TYPE_CHECKING:
                from . import d
            else:
                from .sub import e
            A = 1
            """,
        "b.py": "def f() -> None:\n    from .sub.e import E\n",
        "c.py": "import pkg.a\nfrom pkg import a\n",
        "d.py": "from pkg import A\n",
        "sub/__init__.py": "",
        "sub/e.py": "from .. import c\nfrom ..a import A\nE = 1\n",
    })
    graph = build_import_graph(pkg)
    assert {m: sorted(deps) for m, deps in graph.items()} == {
        "pkg": ["pkg.a", "pkg.b"],
        "pkg.a": ["pkg.b", "pkg.sub.e"],
        "pkg.b": ["pkg.sub.e"],
        "pkg.c": ["pkg.a"],
        "pkg.d": ["pkg"],  # a name from the package itself is an edge to its __init__
        "pkg.sub": [],
        "pkg.sub.e": ["pkg.a", "pkg.c"],
    }
    assert graph["pkg.b"]["pkg.sub.e"] == ["pkg/b.py:2"]


def test_a_cycle_is_named_with_its_import_lines(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from .b import B\n",
        "b.py": "def later() -> None:\n    from . import c\n",
        "c.py": "from pkg.a import A\n",
        "d.py": "from . import a\n",
    })
    graph = build_import_graph(pkg)
    assert strongly_connected(graph) == [["pkg.a", "pkg.b", "pkg.c"]]
    lines = describe_cycles(graph, "pkg")
    assert lines[0].startswith("a -> b -> c -> a")
    assert "    b -> c: pkg/b.py:2" in lines


def test_no_cycle_without_a_loop(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "from .a import A\nfrom .b import B\n",
        "a.py": "from .b import B\nA = B\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import A\nB = 1\n",
    })
    assert describe_cycles(build_import_graph(pkg), "pkg") == []


# The layer order README.md's Layout table states: each row may import only from its own row and the rows above.

README = PACKAGE_DIR.parent / "README.md"


def readme_layers(readme: Path = README) -> dict[str, int]:
    """Module name (without the package) → row number in the Layout table of ``readme``."""
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|") and "`" in line]
    layers: dict[str, int] = {}
    for i, row in enumerate(rows):
        modules_cell = row.split("|")[2]
        for name in re.findall(r"`([A-Za-z_]\w*)\.py`", modules_cell):
            layers[name] = i
    return layers


def test_readme_layout_lists_every_module() -> None:
    layers = readme_layers()
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py") if p.stem != "__init__"}
    assert modules - set(layers) == set(), "modules missing from README's Layout table"
    assert set(layers) - modules == set(), "README's Layout table names modules that do not exist"


def test_imports_follow_the_readme_layers() -> None:
    layers = readme_layers()
    graph = build_import_graph(PACKAGE_DIR)
    prefix = PACKAGE_DIR.name + "."
    upward = []
    for source, targets in graph.items():
        if not source.startswith(prefix):
            continue  # the package itself re-exports from every layer
        for target, where in targets.items():
            if not target.startswith(prefix):
                continue
            a, b = source[len(prefix):], target[len(prefix):]
            if layers.get(b, -1) > layers.get(a, -1):
                upward.append(f"{a} (row {layers.get(a)}) imports {b} (row {layers.get(b)}): {', '.join(where)}")
    assert not upward, "imports that go up README's Layout table:\n" + "\n".join(sorted(upward))
