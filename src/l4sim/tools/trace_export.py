"""Exporters for kernel trace records (see :mod:`l4sim.kernel.trace`).

Two formats:

* **JSON Lines** (:func:`to_jsonl`, :func:`write_jsonl`): one flat JSON
  object per record, ``{"t", "cpu", "kind", "tid", **args}``, for grep, jq
  and scripts.
* **Chrome trace-event JSON** (:func:`to_chrome`, :func:`write_chrome`), the
  "JSON Object Format" that chrome://tracing and https://ui.perfetto.dev
  open.  The simulated machine is one process (``pid`` 0, "l4sim machine")
  with one track per core (``tid`` = core number, named "core N") and, if any
  record has ``cpu == -1``, a "devices" track (``tid`` 1000).  On a core
  track, each stretch during which a thread runs is a complete slice
  (``"ph": "X"``) named after the thread; every other event is an instant
  (``"ph": "i"``) at its time, and each IPC whose ``ipc`` and ``recv``
  records are both present gets a flow arrow from the sender to the
  receiver.  Chrome format times are microseconds, so ``ts``/``dur`` are the
  simulated nanoseconds divided by 1000 (floats; Perfetto rounds them back to
  whole nanoseconds).

How records become Chrome events:

============================  ==============================================
record kind                   Chrome events
============================  ==============================================
``switch``                    ends the running slice on its core and, unless
                              ``tid == -1``, starts one for ``tid``
``idle``                      ends the running slice on its core
``thread``                    names the slices of that thread (no event)
``block``, ``wake``           none (the slices already show the effect)
``ipc``                       instant; plus flow start (``"ph": "s"``)
``recv``                      instant; plus flow end (``"ph": "f"``)
anything else, incl. unknown  instant (``name``/``cat`` = kind)
============================  ==============================================

A slice still running at the end closes at the time of the last record.

Perfetto binds a flow event to the slice on top of its track's stack when
the flow event is read.  Each flow event therefore has the same ``ts`` and
``tid`` as its record's instant and is ordered right after it, so both ends
of an arrow attach to the ``ipc``/``recv`` instants, even when the message is
sent exactly as the sender's slice ends.

Determinism: no clocks, no randomness, no dependence on dict/set iteration of
anything but the input; timed events are sorted by (time, position of the
record in the input).  Identical record lists give identical output bytes.

Writing a file never leaves half of one: :func:`write_jsonl` and
:func:`write_chrome` write a temporary file beside ``path`` and rename it over
``path`` when it is complete, so an interrupted or failed write (Ctrl-C, a
full disk) leaves whatever was there before.  A path that is a device or a
pipe (``/dev/stdout``) is written in place.  :func:`check_writable` tells
before a run whether ``path`` can be written, without creating anything.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any, Protocol

from l4sim.kernel.trace import ArgValue

__all__ = [
    "DEVICES_TID",
    "PID",
    "PROCESS_NAME",
    "RecordLike",
    "thread_names_from",
    "to_chrome",
    "to_jsonl",
    "write_chrome",
    "write_jsonl",
]

#: a trace record as the exporters accept it (``args`` may be any mapping)
RecordLike = tuple[int, int, str, int, Mapping[str, ArgValue]]

#: the Chrome ``pid`` of the simulated machine
PID = 0
#: the process name shown for the machine
PROCESS_NAME = "l4sim machine"
#: the Chrome ``tid`` of the track for events not on a core (``cpu == -1``)
DEVICES_TID = 1000
#: the name of that track
DEVICES_NAME = "devices"

#: category of thread-running slices
SLICE_CAT = "thread"
#: category and name shared by both ends of an IPC flow arrow
FLOW_CAT = "ipc"
FLOW_NAME = "ipc"

#: kinds that never become instant events (they shape slices or names)
_NOT_INSTANT = frozenset({"switch", "idle", "thread", "block", "wake"})
#: kinds that end the slice running on their core
_ENDS_SLICE = frozenset({"switch", "idle"})

#: the record fields that JSON Lines puts beside the args
_RECORD_FIELDS = ("t", "cpu", "kind", "tid")

#: separators of compact JSON (no whitespace)
_COMPACT = (",", ":")


class SupportsWriteStr(Protocol):
    """Anything with ``write(str)``: an open text file, ``io.StringIO``..."""

    def write(self, s: str, /) -> object: ...


# --------------------------------------------------------------------------
# helpers


def _json_value(v: object) -> object:
    """Return ``v`` as a deterministic JSON-encodable value.

    Record args should be ``int``, ``str`` or ``None``; those (and their
    subclasses, e.g. enums) pass through.  A finite float passes through; any
    other value becomes ``str(v)`` so that an unexpected value is still
    exported instead of crashing the exporter.
    """
    if v is None or isinstance(v, int | str):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return v
    return str(v)


def _merge(base: dict[str, object], args: Mapping[str, object]) -> dict[str, object]:
    """Return ``base`` extended by ``args``; ``base`` keys win.

    An argument whose name is already taken is kept under ``"arg_" + name``
    (repeated until free), e.g. the ``cpu`` argument of a ``sched`` record
    next to the record's own ``cpu``.
    """
    out = dict(base)
    for name, value in args.items():
        key = str(name)
        while key in out:
            key = "arg_" + key
        out[key] = _json_value(value)
    return out


def _flow_id(args: Mapping[str, object]) -> int | None:
    """Return the record's integer ``flow`` argument, or None."""
    flow = args.get("flow")
    if isinstance(flow, int) and not isinstance(flow, bool):
        return flow
    return None


def _track(cpu: int) -> int:
    """Return the Chrome ``tid`` of the track that shows events of ``cpu``."""
    return cpu if cpu >= 0 else DEVICES_TID


def _us(ns: int) -> float:
    """Convert simulated nanoseconds to Chrome-format microseconds."""
    return ns / 1000


def _metadata(name: str, tid: int, args: dict[str, object]) -> dict[str, Any]:
    return {"ph": "M", "pid": PID, "tid": tid, "name": name, "args": args}


# --------------------------------------------------------------------------
# public API


def thread_names_from(records: Iterable[RecordLike]) -> dict[int, str]:
    """Return ``{tid: name}`` from the ``thread`` records (the last one wins)."""
    names: dict[int, str] = {}
    for _t, _cpu, kind, tid, args in records:
        if kind == "thread":
            name = args.get("name")
            if isinstance(name, str):
                names[tid] = name
    return names


def to_jsonl(records: Iterable[RecordLike], fp: SupportsWriteStr, header: str | None = None) -> None:
    """Write one compact, key-sorted JSON object per record to ``fp``.

    Each line is ``{"t": .., "cpu": .., "kind": .., "tid": .., **args}``; an
    argument named like one of the four record fields is written as
    ``arg_<name>`` instead of overwriting it.  ``header`` (a JSON line, the run's
    ``run`` record: :mod:`l4sim.tools.runfile`) is written first when given.
    """
    if header is not None:
        fp.write(header)
        fp.write("\n")
    for t, cpu, kind, tid, args in records:
        obj = _merge({"t": t, "cpu": cpu, "kind": kind, "tid": tid}, args)
        fp.write(json.dumps(obj, sort_keys=True, separators=_COMPACT, allow_nan=False))
        fp.write("\n")


def write_jsonl(records: Iterable[RecordLike], path: str | os.PathLike[str],
                header: str | None = None) -> None:
    """Write :func:`to_jsonl` output to the file ``path`` (UTF-8, ``\\n``), whole or not at all."""
    with replacing(path) as fp:
        to_jsonl(records, fp, header)


def _target(path: str | os.PathLike[str]) -> str:
    """The file a write to ``path`` lands in (a symbolic link's target: it stays a link)."""
    p = os.fspath(path)
    return os.path.realpath(p) if os.path.islink(p) else p


def _in_place(p: str) -> bool:
    """True for an existing path that is neither a regular file nor a directory (a device, a pipe)."""
    return os.path.exists(p) and not os.path.isfile(p) and not os.path.isdir(p)


def _temp(p: str) -> tuple[int, str]:
    """A new temporary file beside ``p`` (same directory, so a rename replaces ``p`` at once);
    an error names ``p``, not the temporary file."""
    folder, base = os.path.split(p)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left by an earlier process with our pid that died while writing
    try:
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
    except OSError as e:
        raise OSError(e.errno, e.strerror, p) from None


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[IO[str]]:
    """A text file to write ``path`` through: it replaces ``path`` only when the block ends
    normally; on any exception (KeyboardInterrupt too) the partial file is removed and
    ``path`` is left as it was."""
    p = _target(path)
    if _in_place(p):
        with open(p, "w", encoding="utf-8", newline="\n") as fp:
            yield fp
        return
    if os.path.isdir(p):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), p)
    fd, tmp = _temp(p)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fp:
            yield fp
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OSError` (naming ``path``) when a trace could not be written to ``path``.

    Checked before a run, so that a bad path does not cost one.  It tries what the writers
    do -- create a file beside ``path`` -- and removes it again, so nothing is left behind;
    an existing file must also be writable itself.
    """
    p = _target(path)
    if os.path.isdir(p):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), p)
    if _in_place(p):
        if not os.access(p, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), p)
        return
    if os.path.exists(p):
        open(p, "a").close()  # the file's own permission (appending nothing changes nothing)
    fd, tmp = _temp(p)
    os.close(fd)
    os.unlink(tmp)


def to_chrome(
    records: Iterable[RecordLike],
    thread_names: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """Return the records as a Chrome/Perfetto trace-event JSON object.

    Slices are named from ``thread_names_from(records)``, updated by
    ``thread_names`` when given; a thread without a name is "thread <tid>".
    The result is ``{"traceEvents": [...], "displayTimeUnit": "ns"}``:
    metadata events first, then every timed event sorted by (time, position
    of its record in ``records``).
    """
    recs = list(records)
    names = thread_names_from(recs)
    if thread_names is not None:
        names.update(thread_names)

    # IPC flows get arrows only when both ends are in the trace.
    sent: set[int] = set()
    received: set[int] = set()
    for _t, _cpu, kind, _tid, args in recs:
        if kind == "ipc" or kind == "recv":
            flow = _flow_id(args)
            if flow is not None:
                (sent if kind == "ipc" else received).add(flow)
    arrows = sent & received

    # (time ns, record position, sub-order, event): unique sort keys
    timed: list[tuple[int, int, int, dict[str, Any]]] = []
    running: dict[int, tuple[int, int, int]] = {}  # track -> (start ns, tid, position)

    def close(track: int, end: int) -> None:
        start, tid, pos = running.pop(track)
        timed.append(
            (
                start,
                pos,
                0,
                {
                    "ph": "X",
                    "pid": PID,
                    "tid": track,
                    "ts": _us(start),
                    "dur": _us(max(0, end - start)),
                    "name": names.get(tid, f"thread {tid}"),
                    "cat": SLICE_CAT,
                    "args": {"tid": tid},
                },
            )
        )

    for pos, (t, cpu, kind, tid, args) in enumerate(recs):
        track = _track(cpu)
        if kind in _ENDS_SLICE:
            if track in running:
                close(track, t)
            if kind == "switch" and tid != -1:
                running[track] = (t, tid, pos)
        if kind in _NOT_INSTANT:
            continue
        ts = _us(t)
        timed.append(
            (
                t,
                pos,
                0,
                {
                    "ph": "i",
                    "s": "t",
                    "pid": PID,
                    "tid": track,
                    "ts": ts,
                    "name": kind,
                    "cat": kind,
                    "args": _merge({"tid": tid}, args),
                },
            )
        )
        if kind == "ipc" or kind == "recv":
            flow = _flow_id(args)
            if flow is not None and flow in arrows:
                event: dict[str, Any] = {
                    "ph": "s" if kind == "ipc" else "f",
                    "id": flow,
                    "cat": FLOW_CAT,
                    "name": FLOW_NAME,
                    "pid": PID,
                    "tid": track,
                    "ts": ts,
                }
                if kind == "recv":
                    event["bp"] = "e"
                timed.append((t, pos, 1, event))

    last = max((rec[0] for rec in recs), default=0)
    for track in sorted(running):
        close(track, last)

    timed.sort(key=lambda item: (item[0], item[1], item[2]))

    cores = sorted({cpu for _t, cpu, _k, _tid, _a in recs if cpu >= 0})
    meta: list[dict[str, Any]] = [_metadata("process_name", 0, {"name": PROCESS_NAME})]
    for cpu in cores:
        meta.append(_metadata("thread_name", cpu, {"name": f"core {cpu}"}))
        meta.append(_metadata("thread_sort_index", cpu, {"sort_index": cpu}))
    if any(cpu < 0 for _t, cpu, _k, _tid, _a in recs):
        meta.append(_metadata("thread_name", DEVICES_TID, {"name": DEVICES_NAME}))
        meta.append(_metadata("thread_sort_index", DEVICES_TID, {"sort_index": DEVICES_TID}))

    return {
        "traceEvents": meta + [item[3] for item in timed],
        "displayTimeUnit": "ns",
    }


def write_chrome(
    records: Iterable[RecordLike],
    path: str | os.PathLike[str],
    thread_names: Mapping[int, str] | None = None,
) -> None:
    """Write :func:`to_chrome` output to ``path`` as compact, key-sorted JSON, whole or not at all.

    Two identical record lists give byte-identical files.
    """
    trace = to_chrome(records, thread_names)
    with replacing(path) as fp:
        json.dump(trace, fp, sort_keys=True, separators=_COMPACT, allow_nan=False)
        fp.write("\n")
