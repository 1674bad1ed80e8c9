"""The inspector's local web server (``l4sim inspect RUN.jsonl``): Starlette on uvicorn.

It serves the page, the run's model (``/run.js`` for the page, ``/run.json`` and the state at
an instant, ``/api/state?at=N``, for scripts), and nothing else: the model is built once
before the server starts, and every request only reads it.  The server listens on the
loopback address unless told otherwise.  Needs the ``web`` extra.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from l4sim.tools.extras import need
from l4sim.tools.inspector.model import state_at
from l4sim.tools.inspector.site import ASSETS, asset, model_json, run_script

#: media types of the page's files
_TYPES = {"html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
          "css": "text/css; charset=utf-8", "json": "application/json"}


def require() -> None:
    """Raise :class:`~l4sim.tools.extras.MissingExtra` without Starlette and uvicorn."""
    need("web", "the inspector's server", "starlette", "uvicorn", instead="--export DIR for a static page")


def app(model: dict[str, Any]) -> Any:
    """The ASGI application serving ``model``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    run_js = run_script(model).encode()
    run_json = model_json(model).encode()

    async def index(request: Request) -> Response:
        return Response(asset("index.html"), media_type=_TYPES["html"])

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name == "run.js":
            return Response(run_js, media_type=_TYPES["js"])
        if name == "run.json":
            return Response(run_json, media_type=_TYPES["json"])
        if name not in ASSETS:
            return Response("not found\n", status_code=404, media_type="text/plain")
        return Response(asset(name), media_type=_TYPES[name.rsplit(".", 1)[1]])

    async def state(request: Request) -> Response:
        text = request.query_params.get("at", str(model["count"] - 1))
        if not text.isdigit() or int(text) >= model["count"]:
            return JSONResponse({"error": f"at={text}: give an event number 0..{model['count'] - 1}"},
                                status_code=400)
        st = state_at(model, int(text))
        # JSON object keys are strings: task ids as text
        st["caps"] = {str(k): v for k, v in st["caps"].items()}
        st["mem"] = {str(k): v for k, v in st["mem"].items()}
        st["threads"] = {str(k): v for k, v in st["threads"].items()}
        return Response(json.dumps(st, sort_keys=True), media_type=_TYPES["json"])

    return Starlette(routes=[
        Route("/", index),
        Route("/api/state", state),
        Route("/{name}", static),
    ])


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the server starts so that a port in use is a clear
    error (``OSError``) rather than a log line from inside the server."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(model: dict[str, Any], sock: socket.socket, ready: Callable[[str], None]) -> None:
    """Serve ``model`` on ``sock`` until Ctrl-C; ``ready(url)`` is called as it starts (the
    socket already listens, so a browser that connects at once waits in the backlog)."""
    import uvicorn

    host, port = sock.getsockname()[:2]
    ready(f"http://{'[' + host + ']' if ':' in host else host}:{port}/")
    config = uvicorn.Config(app(model), log_level="warning", lifespan="off", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
