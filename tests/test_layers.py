"""Imports only go downward through the layers of the design."""

from __future__ import annotations

import ast
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
}
ROOT = Path(l4sim.__file__).parent


def _layer(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("l4sim."):
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names if a.name.startswith("l4sim."))
    return out


def test_imports_go_downward() -> None:
    """No module imports from a layer above its own."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        mine = RANK[_layer(path)]
        for mod in _imports(path):
            target = mod.split(".")[1]
            if RANK[target] > mine:
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not bad, "upward imports: " + "; ".join(bad)


def test_every_layer_is_known() -> None:
    """Every subpackage of l4sim has a place in the layer table."""
    for p in ROOT.iterdir():
        if p.name.startswith("_") and p.name not in ("__init__.py", "__main__.py"):
            continue
        if p.is_dir() or p.suffix == ".py":
            assert p.name.removesuffix(".py") in RANK, f"{p.name} has no layer"
