"""Optional extras: the packages a command needs beyond the core install, and the one line
that says which extra brings them.

The core install is click, unicorn and pyelftools.  The inspector's server needs the ``web``
extra (Starlette, uvicorn); sweeps on a Dask cluster and Parquet tables need ``dist`` (dask,
distributed, pyarrow, rich); drawings need ``plot`` (matplotlib).  A command checks before it
starts work, so a missing package costs nothing but the line.
"""

from __future__ import annotations

import importlib.util


class MissingExtra(Exception):
    """A package of an optional extra is not installed: the message names the extra."""


def need(extra: str, what: str, *modules: str, instead: str = "") -> None:
    """Raise :class:`MissingExtra` unless every module in ``modules`` can be imported;
    ``what`` says what needs them (``"l4sim inspect's server"``), ``instead`` what works
    without them."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        names = " and ".join(missing)
        raise MissingExtra(f"{what} needs {names} (not installed): pip install 'l4sim[{extra}]'"
                           + (f", or {instead}" if instead else ""))


def have(*modules: str) -> bool:
    """True when every module in ``modules`` can be imported."""
    return all(importlib.util.find_spec(m) is not None for m in modules)
