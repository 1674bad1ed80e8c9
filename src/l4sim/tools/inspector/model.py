"""The inspector's model of a recorded run: what every view shows, computed once from the records.

The records of a run are a log of changes.  The views want state -- which capabilities a task
holds at an instant, what a thread is doing, which messages went where -- so this module turns
the log into lifetimes, once, in Python:

* **objects, tasks and threads** from ``new``/``destroy``/``thread``/``bind`` records, each with
  the record index where it appeared and (objects) went;
* **capabilities and mappings** as intervals ``[from, to)`` of record indexes, from ``map``,
  ``unmap`` and ``rights`` (a change of rights closes one interval and opens the next), keyed
  by the holder task's id (``space``) and slot; pages and I/O ports likewise;
* **thread states** as a list of changes per thread, from ``thread``, ``wake``, ``switch``,
  ``block``, ``depleted`` and ``exit``;
* **messages** (``ipc`` records with the index of their ``recv``), **page faults** and
  **screen updates** (``frame`` records, see docs/tracing.md) as lists.

An *instant* is a record index ``n``: the state after records ``0..n`` happened, in the order
the kernel emitted them (that order is causal; the records' times are shown with it).  The page
(``static/app.js``) and :func:`state_at` answer "what held at ``n``" from the same lists, so a
test can compare what the page shows with what this module computes.

Traces written before the records carried the holder task's id are still read: their tasks
are told apart by name only (each name gets an id of its own, below zero).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from l4sim.kernel.trace import Record
from l4sim.tools.runfile import Run

#: the version of the model's JSON layout (``format``), read by the page
FORMAT = 1

#: bytes per pixel of the pixel formats a ``frame`` record may carry
PIXEL_FORMATS = {"rgb888": 3, "rgba8888": 4, "xrgb8888": 4, "rgb565": 2, "gray8": 1}

#: a thread's state in the words of the boot summary (``l4sim.tools.boot.THREAD_STATES``)
INACTIVE, READY, RUNNING = "inactive", "ready", "running"
BLOCKED = {"send": "blocked in send", "recv": "blocked in receive",
           "release": "waiting for its release"}
DEPLETED, DEAD, STOPPED = "out of budget", "dead", "stopped by a fault"

#: an object as a ``map`` record names it: ``<gate #12>``, ``<thread #6 root>``
_REPR = re.compile(r"<([a-z_]+) #(\d+)(?: (.*))?>\Z")


def protocol_names() -> dict[int, str]:
    """Names of the protocol labels an ``ipc`` record's ``proto`` carries: the kernel's
    (negative, :class:`~l4sim.kernel.abi.Proto`) and the runtime's."""
    from l4sim.kernel.abi import Proto
    from l4sim.runtime import protocols

    names = {int(p): p.name.lower().replace("_", "-") for p in Proto}
    names[0] = "reply"
    for name in ("PARENT", "NAMESPACE", "RM", "DATASPACE", "MEM_ALLOC", "CONSOLE"):
        names[int(getattr(protocols, name))] = name.lower().replace("_", "-")
    return names


def rights_text(rights: int, memory: bool = False) -> str:
    """Rights as letters: object rights ``RWSD`` (Fiasco's order), memory ``RWX``; ``-`` for
    a right not held."""
    bits = (("R", 4), ("W", 2), ("X", 1)) if memory else (("R", 4), ("W", 1), ("S", 2), ("D", 8))
    return "".join(letter if rights & bit else "-" for letter, bit in bits)


class _Builder:
    """One pass over the records, in order (see the module docstring)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.objects: dict[int, dict[str, Any]] = {}
        self.threads: dict[int, dict[str, Any]] = {}
        self.state: dict[int, tuple[str, str]] = {}
        self.names: dict[str, int] = {}  # task name -> id, for traces without ``space``
        self.caps: list[list[Any]] = []
        self.mem: list[list[Any]] = []
        #: the row of each capability or mapping present now, by (task, table, slot)
        self.open: dict[tuple[int, str, int], list[Any]] = {}
        self.ipc: list[list[Any]] = []
        self.flows: dict[int, int] = {}
        self.faults: list[list[Any]] = []
        self.frames: list[list[Any]] = []
        self.logs: list[list[Any]] = []
        self.warnings: list[str] = []
        self.protos: set[int] = set()

    # -- objects and tasks
    def obj(self, kid: int, kind: str, name: str, i: int) -> dict[str, Any]:
        o = self.objects.get(kid)
        if o is None:
            o = self.objects[kid] = {"kid": kid, "type": kind, "name": name, "created": i,
                                     "destroyed": -1}
        elif name and not o["name"]:
            o["name"] = name
        return o

    def task_id(self, args: dict[str, Any], i: int) -> int:
        """The holder task of a record: its ``space`` argument, else its name (old traces)."""
        name = args.get("task")
        space = args.get("space")
        if isinstance(space, int) and space >= 0:
            o = self.obj(space, "task", name if isinstance(name, str) else "", i)
            if isinstance(name, str) and name:
                o["name"] = name  # a task may be named after its creation (a factory's)
                self.names[name] = space
            return space
        key = name if isinstance(name, str) else ""
        kid = self.names.get(key)
        if kid is None:
            kid = self.names[key] = -1 - len([k for k in self.names.values() if k < 0])
            self.obj(kid, "task", key, i)
        return kid

    def target(self, text: str, i: int) -> int:
        """The object a capability names (its id, from ``<kind #id name>``), -1 if not one."""
        m = _REPR.match(text)
        if m is None:
            return -1
        kid = int(m.group(2))
        self.obj(kid, m.group(1), m.group(3) or "", i)
        return kid

    # -- threads
    def set_state(self, tid: int, i: int, state: str, detail: str = "") -> None:
        th = self.threads.get(tid)
        if th is None:
            th = self.new_thread(tid, f"thread {tid}", -1, i)
        if self.state.get(tid) == (state, detail):
            return
        self.state[tid] = (state, detail)
        th["states"].append([i, state, detail])

    def new_thread(self, tid: int, name: str, task: int, i: int) -> dict[str, Any]:
        th = self.threads[tid] = {"tid": tid, "name": name, "task": task, "created": i,
                                  "states": []}
        self.state[tid] = (INACTIVE, "")
        th["states"].append([i, INACTIVE, ""])
        return th

    # -- capabilities and mappings
    def close(self, key: tuple[int, str, int], i: int) -> None:
        """The capability or mapping at ``key`` ends with record ``i``."""
        row = self.open.pop(key, None)
        if row is not None:
            row[-1] = i

    def mapping(self, kind: str, args: dict[str, Any], i: int) -> None:
        space = self.task_id(args, i)
        slot = args.get("slot")
        text = args.get("obj")
        rights = args.get("rights")
        if not (isinstance(slot, int) and isinstance(text, str) and isinstance(rights, int)):
            self.warnings.append(f"record {i}: a {kind} record without slot, obj and rights")
            return
        table = "io" if text.startswith("port ") else "mem" if text.startswith("frame ") else "cap"
        key = (space, table, slot)
        self.close(key, i)
        if kind == "unmap":
            return
        if table == "cap":
            row = [space, slot, self.target(text, i), text, rights, i, -1]
            self.caps.append(row)
        else:
            row = [space, table, slot, text, rights, i, -1]
            self.mem.append(row)
        self.open[key] = row

    # -- the pass
    def feed(self, i: int, rec: Record) -> None:
        t, cpu, kind, tid, args = rec
        match kind:
            case "new":
                kid = args.get("obj")
                if isinstance(kid, int):
                    name = args.get("name")
                    o = self.obj(kid, str(args.get("type", "")), name if isinstance(name, str) else "", i)
                    o["created"] = min(o["created"], i)
            case "destroy":
                kid = args.get("obj")
                if isinstance(kid, int) and kid in self.objects:
                    self.objects[kid]["destroyed"] = i
            case "thread":
                name = args.get("name")
                space, tname = args.get("space"), args.get("task")
                # a thread a factory made has no task yet (``space`` -1, ``task`` ""): ``bind`` follows
                bound = (isinstance(space, int) and space >= 0) or (isinstance(tname, str) and tname != "")
                task = self.task_id(args, i) if bound else -1
                self.new_thread(tid, name if isinstance(name, str) else f"thread {tid}", task, i)
                self.obj(tid, "thread", name if isinstance(name, str) else "", i)
            case "bind":
                th = self.threads.get(tid) or self.new_thread(tid, f"thread {tid}", -1, i)
                th["task"] = self.task_id(args, i)
            case "wake":
                self.set_state(tid, i, READY)
            case "switch":
                prev = args.get("from")
                if isinstance(prev, int) and prev >= 0 and self.state.get(prev, ("",))[0] == RUNNING:
                    self.set_state(prev, i, READY)
                if tid >= 0:
                    self.set_state(tid, i, RUNNING, f"core {cpu}")
            case "block":
                on = args.get("on")
                state = BLOCKED.get(str(args.get("state")), f"blocked ({args.get('state')})")
                self.set_state(tid, i, state, f"on #{on}" if isinstance(on, int) and on >= 0 else "")
            case "depleted":
                self.set_state(tid, i, DEPLETED)
            case "exit":
                reason = str(args.get("reason", ""))
                self.set_state(tid, i, STOPPED if reason.startswith("stopped") else DEAD, reason)
            case "map" | "unmap" | "rights":
                self.mapping(kind, args, i)
            case "ipc":
                proto = args.get("proto")
                if isinstance(proto, int):
                    self.protos.add(proto)
                flow = args.get("flow")
                if isinstance(flow, int):
                    self.flows[flow] = len(self.ipc)
                self.ipc.append([i, t, tid, args.get("to"), proto, args.get("label"), args.get("op"),
                                 args.get("words"), args.get("items"), -1])
            case "recv":
                flow = args.get("flow")
                at = self.flows.pop(flow, None) if isinstance(flow, int) else None
                if at is not None:
                    self.ipc[at][-1] = i
            case "pagefault":
                pth = self.threads.get(tid)
                self.faults.append([i, t, tid, pth["task"] if pth else -1, args.get("addr"),
                                    args.get("write"), args.get("present")])
            case "log":
                self.logs.append([i, t, tid, args.get("text")])
            case "frame":
                self.frame(i, t, args)
            case _:
                pass

    def frame(self, i: int, t: int, args: dict[str, Any]) -> None:
        """A screen update (see docs/tracing.md, "Records from devices"): checked here, so the
        page only draws well-formed ones."""
        f = [args.get(k) for k in ("fb", "width", "height", "x", "y", "w", "h")]
        fmt, data = args.get("format"), args.get("data")
        bpp = PIXEL_FORMATS.get(fmt) if isinstance(fmt, str) else None
        fb, width, height, x, y, w, h = f
        if not all(isinstance(v, int) for v in f) or bpp is None or not isinstance(data, str):
            self.warnings.append(f"record {i}: a frame record without fb, width, height, x, y, w, h, "
                                 f"a known format ({', '.join(PIXEL_FORMATS)}) and data; not shown")
            return
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            self.warnings.append(f"record {i}: a frame record whose data is not base64; not shown")
            return
        assert isinstance(x, int) and isinstance(y, int) and isinstance(w, int) and isinstance(h, int)
        assert isinstance(width, int) and isinstance(height, int)
        if not (0 < width <= 8192 and 0 < height <= 8192 and x >= 0 and y >= 0 and w >= 0 and h >= 0
                and x + w <= width and y + h <= height and len(raw) == w * h * bpp):
            self.warnings.append(f"record {i}: a frame record whose rectangle or data size does not "
                                 "fit its screen; not shown")
            return
        self.frames.append([i, t, fb, width, height, x, y, w, h, fmt, data])


def build(run: Run, live: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model of ``run`` as JSON-ready data (the layout is described in docs/inspector.md).

    ``live`` is what a replay read from the kernel where it stopped (see
    :mod:`l4sim.tools.inspector.replay`); the page shows it beside the recorded state.
    """
    b = _Builder(run)
    for i, rec in enumerate(run.records):
        b.feed(i, rec)
    names = protocol_names()
    end = max((rec[0] for rec in run.records), default=0)
    header = run.header or {}
    cores = header.get("cores")
    if not isinstance(cores, int):
        cores = max((rec[1] for rec in run.records), default=0) + 1
    objects = [b.objects[k] for k in sorted(b.objects)]
    return {
        "format": FORMAT,
        "source": run.path.rsplit("/", 1)[-1],
        "header": run.header,
        "count": len(run.records),
        "end": end,
        "cores": cores,
        "records": [[t, cpu, kind, tid, args] for t, cpu, kind, tid, args in run.records],
        "objects": objects,
        "tasks": [o for o in objects if o["type"] == "task"],
        "threads": [b.threads[k] for k in sorted(b.threads)],
        "caps": b.caps,
        "mem": b.mem,
        "ipc": b.ipc,
        "faults": b.faults,
        "frames": b.frames,
        "logs": b.logs,
        "protos": {str(p): names.get(p, f"proto {p}") for p in sorted(b.protos)},
        "warnings": b.warnings,
        "live": live,
    }


def _alive(row: list[Any], n: int) -> bool:
    """Does the interval ``[row[-2], row[-1])`` contain instant ``n``?"""
    return bool(row[-2] <= n and (row[-1] == -1 or row[-1] > n))


def state_at(model: dict[str, Any], n: int) -> dict[str, Any]:
    """What held after record ``n``: the tasks alive, each thread's state, each task's
    capabilities and mappings -- what the page shows at that instant."""
    tasks = [t for t in model["tasks"] if t["created"] <= n and (t["destroyed"] == -1 or t["destroyed"] > n)]
    threads: dict[int, list[str]] = {}
    for th in model["threads"]:
        if th["created"] > n:
            continue
        cur = [INACTIVE, ""]
        for i, state, detail in th["states"]:
            if i > n:
                break
            cur = [state, detail]
        threads[th["tid"]] = cur
    caps: dict[int, list[list[Any]]] = {}
    for space, slot, obj, text, rights, *_ in (r for r in model["caps"] if _alive(r, n)):
        caps.setdefault(space, []).append([slot, obj, text, rights])
    mem: dict[int, list[list[Any]]] = {}
    for space, table, slot, text, rights, *_ in (r for r in model["mem"] if _alive(r, n)):
        mem.setdefault(space, []).append([table, slot, text, rights])
    for rows in (*caps.values(), *mem.values()):
        rows.sort(key=lambda r: (str(r[0]), r[1]) if isinstance(r[0], str) else (r[0],))
    return {"at": n, "t": model["records"][n][0] if model["records"] else 0,
            "tasks": [t["kid"] for t in tasks], "threads": threads, "caps": caps, "mem": mem}


def screen_at(model: dict[str, Any], n: int, fb: int | None = None) -> tuple[int, int, bytes] | None:
    """The screen of framebuffer ``fb`` (the first one when None) after record ``n``: width,
    height and RGBA pixels, composed from the ``frame`` records up to ``n`` as the page draws
    them; None when no frame of it came before."""
    width = height = 0
    pixels = bytearray()
    for i, _t, f, sw, sh, x, y, w, h, fmt, data in model["frames"]:
        if i > n:
            break
        if fb is None:
            fb = f
        if f != fb:
            continue
        if (sw, sh) != (width, height):
            width, height = sw, sh
            pixels = bytearray(4 * width * height)  # a new mode: black, opaque below
            pixels[3::4] = b"\xff" * (width * height)
        raw = base64.b64decode(data)
        for row in range(h):
            for col in range(w):
                r, g, b, a = _pixel(raw, (row * w + col), fmt)
                at = 4 * ((y + row) * width + x + col)
                pixels[at:at + 4] = bytes((r, g, b, a))
    return (width, height, bytes(pixels)) if width else None


def _pixel(raw: bytes, k: int, fmt: str) -> tuple[int, int, int, int]:
    """Pixel ``k`` of ``raw`` in ``fmt`` as (R, G, B, A)."""
    match fmt:
        case "rgb888":
            return raw[3 * k], raw[3 * k + 1], raw[3 * k + 2], 255
        case "rgba8888":
            return raw[4 * k], raw[4 * k + 1], raw[4 * k + 2], raw[4 * k + 3]
        case "xrgb8888":  # little-endian 0xXXRRGGBB words: bytes B, G, R, X
            return raw[4 * k + 2], raw[4 * k + 1], raw[4 * k], 255
        case "rgb565":  # little-endian 16-bit words RRRRRGGGGGGBBBBB
            v = raw[2 * k] | raw[2 * k + 1] << 8
            r, g, b = v >> 11, (v >> 5) & 0x3F, v & 0x1F
            return (r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2), 255
        case _:  # gray8
            return raw[k], raw[k], raw[k], 255
