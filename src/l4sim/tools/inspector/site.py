"""The inspector's page: its static files, and the run's model as the script the page reads.

The page (``static/index.html``, ``app.js``, ``style.css``) loads ``run.js``, which sets
``window.L4SIM_RUN`` to the run's model.  A script rather than a JSON file fetched at run time
is what lets the exported folder open from disk (``file://``), where a browser refuses to
fetch; ``run.json`` beside it holds the same model for other tools.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

#: the page's own files, shipped with the package
ASSETS = ("index.html", "app.js", "style.css")


def asset(name: str) -> bytes:
    """One of the page's files (see :data:`ASSETS`)."""
    if name not in ASSETS:
        raise KeyError(name)
    return resources.files("l4sim.tools.inspector").joinpath("static", name).read_bytes()


def model_json(model: dict[str, Any]) -> str:
    """The model as compact JSON (keys sorted: the same run gives the same bytes)."""
    return json.dumps(model, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_script(model: dict[str, Any]) -> str:
    """``run.js``: the model as a script (``<`` escaped, so no text in a record ends a tag)."""
    return "window.L4SIM_RUN = " + model_json(model).replace("<", "\\u003c") + ";\n"


def export(model: dict[str, Any], folder: str | os.PathLike[str]) -> Path:
    """Write the page with the model into ``folder`` (created if missing); returns the path of
    its ``index.html``.  Files already there under the same names are replaced."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        (out / name).write_bytes(asset(name))
    (out / "run.js").write_text(run_script(model), encoding="utf-8")
    (out / "run.json").write_text(model_json(model) + "\n", encoding="utf-8")
    return out / "index.html"
