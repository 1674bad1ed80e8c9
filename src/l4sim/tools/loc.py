"""Lines of code: what a component's size is counted as when trusted and untrusted parts are compared.

A line counts when it holds code: not blank, not only a comment, not part of
a docstring -- the "source lines of code" that TCB comparisons (Nizza's,
Singaravelu et al.'s) count.  :func:`module_loc` counts one module's file.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import tokenize
from pathlib import Path

_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
         tokenize.ENCODING, tokenize.ENDMARKER}


def code_lines(source: str) -> int:
    """The lines of ``source`` that hold code (docstrings and comments do not count)."""
    docs: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str) and first.end_lineno is not None):
                docs.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in _SKIP:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def module_loc(module: str) -> int:
    """Lines of code of the module ``module`` (dotted name)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"no module {module}")
    return code_lines(Path(spec.origin).read_text())


def package_loc(*packages: str) -> int:
    """Lines of code of every module of l4sim's ``packages`` (``"kernel"``, ``"runtime"``, ...)."""
    root = Path(__file__).resolve().parent.parent
    return sum(code_lines(p.read_text()) for pkg in packages for p in sorted((root / pkg).rglob("*.py")))
