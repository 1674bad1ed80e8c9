"""Imports only go downward through the layers of the design, and no module of l4sim imports
itself through others.

Both checks read every ``import`` and ``from ... import`` of every module of ``src/l4sim``
with :mod:`ast`: at module level and inside functions and classes, absolute and relative,
and ``from l4sim.linux import files`` (which imports the submodule ``l4sim.linux.files``).
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import l4sim

#: layer rank: a module may import from its own layer or lower ones only
RANK = {
    "machine": 0,
    "kernel": 1,
    "user": 2,
    "runtime": 3,
    "linux": 4,
    "realtime": 4,
    "security": 4,
    "drivers": 4,
    "tools": 5,
    "cli": 5,
    "scenarios": 6,
    "__init__": 0,
    "__main__": 6,
    "launch": 6,
}
ROOT = Path(l4sim.__file__).parent


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by its dotted name (a package by its own name,
    not ``.__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path], runtime_only: bool) -> set[str]:
    """The modules of the package that module ``name`` (at ``path``) imports, as dotted names.

    ``from P import x`` imports the submodule ``P.x`` when there is one, else (a name defined
    in ``P``) the module ``P``; a relative import is resolved against the module's package.
    Importing ``P.x`` also runs the package ``P``'s ``__init__`` first: that is an import of
    ``P`` too, except from a module inside ``P``, for which ``P`` is already being imported
    (a package importing its own submodules is no cycle).  With ``runtime_only``, imports
    under ``if TYPE_CHECKING:`` are left out (their ``else:`` is kept).
    """
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    root = name.split(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for a in node.names:
                sub = f"{source}.{a.name}"
                found.add(sub if sub in modules else source)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    out = set()
    for target in found:
        if target != root and not target.startswith(root + "."):
            continue  # outside the package
        out.add(target)
        parts = target.split(".")
        for i in range(2, len(parts)):  # the packages above the target, each run first
            parent = ".".join(parts[:i])
            if not (name == parent or name.startswith(parent + ".")):
                out.add(parent)
    out.discard(name)
    return out


def _graph(root: Path) -> dict[str, list[str]]:
    """Module -> the modules it imports when it runs (type-only imports left out)."""
    modules = _modules(root)
    return {name: sorted(t for t in _imports(name, path, modules, True) if t in modules)
            for name, path in modules.items()}


def _components(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(out)


def _cycles(graph: dict[str, list[str]]) -> list[str]:
    """Import cycles as chains ``a -> b -> a``: in each group of modules that import each
    other, the shortest cycle through each module (each cycle once, from its first module)."""
    found: set[tuple[str, ...]] = set()
    for comp in _components(graph):
        inside = set(comp)
        for start in comp:
            prev: dict[str, str] = {}
            queue = deque([start])
            while queue:  # breadth first: the shortest way back to start
                v = queue.popleft()
                if start in graph[v]:
                    chain = [v]
                    while chain[-1] != start:
                        chain.append(prev[chain[-1]])
                    chain.reverse()
                    i = chain.index(min(chain))
                    found.add(tuple(chain[i:] + chain[:i]))
                    break
                for w in graph[v]:
                    if w in inside and w not in prev and w != start:
                        prev[w] = v
                        queue.append(w)
    return [" -> ".join((*c, c[0])) for c in sorted(found)]


def test_imports_go_downward() -> None:
    """No module imports from a layer above its own (type-only imports count too)."""
    modules = _modules(ROOT)
    bad = []
    for name, path in modules.items():
        mine = RANK[_layer(path)]
        for mod in sorted(_imports(name, path, modules, False)):
            parts = mod.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if RANK[target] > mine:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "upward imports: " + "; ".join(bad)


def test_no_import_cycles() -> None:
    """No module of l4sim imports itself through other modules.

    Every import counts -- at module level or inside a function, absolute or relative --
    except those under ``if TYPE_CHECKING:``: a type-only reference is no dependency at run
    time (nothing of the module runs), and annotations are strings here (``from __future__
    import annotations``).  A function-level import that would close a cycle is a cycle all
    the same: the shared code belongs in the lower module.
    """
    cycles = _cycles(_graph(ROOT))
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_cycle_finder(tmp_path: Path) -> None:
    """The cycle test sees relative, function-level and ``from package import module``
    imports, leaves type-only ones out, and lets a package import its own submodules."""
    files = {
        "__init__.py": "from pkg import a\n",
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from pkg.c import x\n",
        "c.py": "import pkg.a\nx = 1\n",
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.e import E\n"
                "else:\n    import pkg.f\n",
        "e.py": "from pkg import d\nE = 1\ndef g():\n    from .sub import x\n",
        "f.py": "",
        "sub/__init__.py": "",
        "sub/x.py": "from ..e import E\n",
    }
    root = tmp_path / "pkg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    graph = _graph(root)
    assert graph["pkg.d"] == ["pkg.f"]  # the TYPE_CHECKING branch is left out, its else kept
    assert graph["pkg.e"] == ["pkg.d", "pkg.sub", "pkg.sub.x"]  # sub's __init__ runs first
    assert _cycles(graph) == ["pkg.a -> pkg.b -> pkg.c -> pkg.a", "pkg.e -> pkg.sub.x -> pkg.e"]


def test_every_layer_is_known() -> None:
    """Every subpackage of l4sim has a place in the layer table."""
    for p in ROOT.iterdir():
        if p.name.startswith("_") and p.name not in ("__init__.py", "__main__.py"):
            continue
        if p.is_dir() or p.suffix == ".py":
            assert p.name.removesuffix(".py") in RANK, f"{p.name} has no layer"
