"""``l4sim replay RUN.jsonl --until EVENT``: start a recorded boot again and stop at an event.

A trace shows what the records say; a replay shows the kernel itself.  The run's header (see
:mod:`l4sim.tools.runfile`) says how it was started; the same scenario, seed and cores give
the same run, record for record (the model is deterministic), so the rerun stops once it has
emitted record ``EVENT`` and the kernel's own tables -- each task's capabilities and mappings,
each thread's state -- are read there.  The kernel stops between two events of its event
loop, so the state read is the one after the last record of that step (the page says which).

Every replayed record is compared with the recorded one: a rerun that differs (the scenario
file or l4sim changed since) is refused with the first record that differs, rather than
showing a kernel that is not the recorded one.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.tools.boot import BootError, boot, parse_time, thread_state
from l4sim.tools.display import InputError, parse_input
from l4sim.tools.runfile import Run, version
from l4sim.tools.trace_export import to_jsonl


class ReplayError(Exception):
    """A run that cannot be replayed as asked: one line naming the problem and the fix."""


def event_index(run: Run, text: str) -> int:
    """``--until``: a record number (``1234``) or a time with a unit (``2ms``: the first
    record at or after it)."""
    count = len(run.records)
    if text.strip().isdigit():
        n = int(text)
        if n >= count:
            raise ReplayError(f"--until {text}: {run.path} has events 0..{count - 1}; give one of them")
        return n
    try:
        ns = parse_time(text, "--until")
    except BootError as e:
        raise ReplayError(f"{e} (or an event number 0..{count - 1})") from None
    for i, rec in enumerate(run.records):
        if rec[0] >= ns:
            return i
    raise ReplayError(f"--until {text}: the run ends at {max(r[0] for r in run.records)} ns; "
                      "give an earlier time or an event number")


def _lines(records: Any) -> list[str]:
    """Records as their JSON lines: recorded and replayed records compare in one form."""
    buf = io.StringIO()
    to_jsonl(records, buf)
    return buf.getvalue().splitlines()


def snapshot(kernel: Kernel, at: int, requested: int) -> dict[str, Any]:
    """The kernel's own tables where the replay stopped (after record ``at``)."""
    tasks = []
    # a ready thread that a core runs is "running", as the records show it
    running = {c.current.kid for c in kernel.cores if c.current is not None}
    for task in kernel.tasks:
        if not task.alive:
            continue
        caps = sorted([slot, repr(e.obj), int(e.rights)] for slot, e in task.caps.slots.items())
        mem = sorted([["mem", vpn, f"frame {m.pfn:#x}", int(m.rights)] for vpn, m in task.vspace.pages.items()]
                     + [["io", p, f"port {m.pfn:#x}", int(m.rights)] for p, m in task.vspace.io.items()])
        threads = [[th.kid, th.name, "running" if th.kid in running and th.state is TS.READY else thread_state(th)]
                   for th in task.threads]
        tasks.append({"kid": task.kid, "name": task.name, "caps": caps, "mem": mem, "threads": threads})
    return {"at": at, "requested": requested, "tasks": tasks}


def replay(run: Run, until: int) -> dict[str, Any]:
    """Rerun ``run`` until it has emitted record ``until``; the kernel's state there (see
    :func:`snapshot`).  Raises :class:`ReplayError` when the run cannot be rerun or differs."""
    h = run.header
    if h is None:
        raise ReplayError(f"{run.path} has no run header (it was written by an older l4sim); "
                          "record the run again with l4sim boot --jsonl")
    if h.get("command") != "boot":
        raise ReplayError(f"{run.path} was recorded by l4sim {h.get('command')}; replay reruns "
                          "runs of l4sim boot (l4sim inspect shows this one)")
    scenario = h.get("scenario")
    seed, cores, limit = h.get("seed"), h.get("cores"), h.get("until")
    if not (isinstance(scenario, str) and isinstance(seed, int) and isinstance(cores, int)
            and (limit is None or isinstance(limit, int))):
        raise ReplayError(f"{run.path}: its run header lacks scenario, seed or cores; record the run again")
    path = h.get("path")
    if isinstance(path, str):
        p = Path(path)
        if not p.is_file():
            raise ReplayError(f"the run's scenario file {path} is gone; restore it to replay the run")
        if h.get("sha256") and hashlib.sha256(p.read_bytes()).hexdigest() != h["sha256"]:
            raise ReplayError(f"the scenario file {path} changed since the run was recorded; "
                              "restore it, or record the run again")
        scenario = path
    recorded = _lines(run.records)
    target = until + 1
    actions = None
    if isinstance(h.get("input"), str):  # the keyboard and pointer as the run had them (--input)
        try:
            actions = parse_input(h["input"], f"{run.path}'s input")
        except InputError as e:
            raise ReplayError(f"the run's input script cannot be read again: {e}") from None

    def reached(kernel: Kernel) -> bool:
        return len(kernel.tracer.records) >= target

    try:
        res = boot(scenario, cores=cores, seed=seed, until=limit, trace=True, console=io.StringIO(),
                   stop_when=reached, comm_model=h.get("comm_model"), kmem_model=h.get("kmem_model"),
                   disk=h.get("disk"), crash_at=h.get("crash_at"), input_actions=actions)
    except BootError as e:
        raise ReplayError(f"cannot boot the run's scenario again: {e}") from None
    assert res.tracer is not None
    got = _lines(res.tracer.records)
    for i, (a, b) in enumerate(zip(recorded, got, strict=False)):
        if a != b:
            why = "" if h.get("l4sim") == version() else (
                f" (recorded by l4sim {h.get('l4sim')}, this is {version()})")
            raise ReplayError(f"the rerun differs from {run.path} at event {i}{why}: "
                              f"recorded {a}, rerun {b}")
    if len(got) < target:
        raise ReplayError(f"the rerun ended after {len(got)} events, before event {until}; "
                          "was the run recorded with other options?")
    return snapshot(res.kernel, min(len(got), len(recorded)) - 1, until)
