"""The trace records the inspector's views are built from: objects, holders, rights, bindings."""

from __future__ import annotations

import io
import json
import shutil
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.kernel.abi import Rights
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Irq
from l4sim.kernel.trace import Record, Tracer
from l4sim.machine.board import Machine
from l4sim.tools.boot import boot


def _replay_tables(records: list[Record]) -> dict[tuple[int, str, int], tuple[str, int]]:
    """Capabilities, pages and ports held at the end, from map, unmap and rights records alone."""
    held: dict[tuple[int, str, int], tuple[str, int]] = {}
    for _t, _cpu, kind, _tid, a in records:
        if kind not in ("map", "unmap", "rights"):
            continue
        obj = str(a["obj"])
        table = "mem" if obj.startswith("frame") else "io" if obj.startswith("port") else "cap"
        key = (int(a["space"]), table, int(a["slot"]))  # type: ignore[arg-type]
        if kind == "unmap":
            assert key in held, f"unmap of something never mapped: {a}"
            del held[key]
        elif kind == "rights":
            assert held.get(key, ("",))[0] == obj, f"rights of something not mapped: {a}"
            held[key] = (obj, int(a["rights"]))  # type: ignore[arg-type]
        else:
            held[key] = (obj, int(a["rights"]))  # type: ignore[arg-type]
    return held


def _kernel_tables(k: Kernel) -> dict[tuple[int, str, int], tuple[str, int]]:
    """The same, read from the kernel's own capability spaces and page tables."""
    held: dict[tuple[int, str, int], tuple[str, int]] = {}
    for task in k.tasks:
        if not task.alive:
            continue
        for slot, e in task.caps.slots.items():
            held[(task.kid, "cap", slot)] = (repr(e.obj), int(e.rights))
        for vpn, m in task.vspace.pages.items():
            held[(task.kid, "mem", vpn)] = (f"frame {m.pfn:#x}", int(m.rights))
        for port, m in task.vspace.io.items():
            held[(task.kid, "io", port)] = (f"port {m.pfn:#x}", int(m.rights))
    return held


@pytest.mark.parametrize("scenario", ["default", "kernel", "drops"])
def test_map_unmap_and_rights_records_rebuild_the_kernels_tables(scenario: str) -> None:
    """Replaying a run's map, unmap and rights records gives exactly the capabilities, pages
    and ports the kernel holds at the end of the run."""
    res = boot(scenario, trace=True, console=io.StringIO())
    assert res.tracer is not None
    assert _replay_tables(res.tracer.records) == _kernel_tables(res.kernel)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_the_tables_of_a_linux_run_are_rebuilt_too() -> None:
    """Forks, execs and exits of a Linux personality (grants, revocations, deleted tasks) leave
    records from which the kernel's tables at the end follow."""
    from l4sim.linux.run import run

    tracer = Tracer()
    busybox = shutil.which("busybox")
    assert busybox is not None
    run(busybox, ["sh", "-c", "echo a | cat; (echo b) | cat"], out=lambda fd, b: None, tracer=tracer)
    replayed = _replay_tables(tracer.records)
    spaces = {key[0] for key in replayed}
    assert len(spaces) >= 2
    # (the replay above already refuses an unmap or rights change of something not mapped)
    destroyed = {a["obj"] for _t, _c, kind, _tid, a in tracer.records if kind == "destroy" and a["type"] == "task"}
    assert not spaces & destroyed, "a deleted task keeps no capability or mapping"


def _kernel() -> tuple[Kernel, Tracer]:
    tracer = Tracer()
    return Kernel(Machine(cores=1, seed=0), tracer=tracer), tracer


def test_a_capability_grant_records_the_emptied_source_slot() -> None:
    """Granting a capability to another task is an unmap in the source slot, then a map."""
    k, tracer = _kernel()
    a, b = k.create_task("a"), k.create_task("b")
    irq = k._new(Irq)
    src = k.cap_insert(a, 10, irq, Rights.RWSD, None)
    assert src is not None
    tracer.clear()
    k.cap_map(src, b, 12, int(Rights.RWSD), grant=True)
    recs = [(kind, args["task"], args["space"], args["slot"]) for _t, _c, kind, _tid, args in tracer.records]
    assert recs == [("unmap", "a", a.kid, 10), ("map", "b", b.kid, 12)]


def test_a_rights_reduction_and_a_rights_merge_are_rights_records() -> None:
    """Taking W from a derived capability, and mapping it again with W, each emit a rights
    record with the rights the mapping has afterwards."""
    k, tracer = _kernel()
    a, b = k.create_task("a"), k.create_task("b")
    irq = k._new(Irq)
    src = k.cap_insert(a, 10, irq, Rights.RWSD, None)
    assert src is not None
    child = k.cap_map(src, b, 11, int(Rights.R | Rights.W), grant=False)
    assert child is not None
    tracer.clear()
    k.mdb_remove(src, include_self=False, mask=int(Rights.W))
    k.cap_map(src, b, 11, int(Rights.W), grant=False)
    got = [(kind, args["slot"], args["rights"]) for _t, _c, kind, _tid, args in tracer.records]
    assert got == [("rights", 11, int(Rights.R)), ("rights", 11, int(Rights.R | Rights.W))]


def test_objects_are_announced_and_their_end_recorded() -> None:
    """Every kernel object gets a new record with its id, type and name; a destroyed one a
    destroy record."""
    k, tracer = _kernel()
    t = k.create_task("victim")
    e = k.cap_insert(t, 1, t, Rights.RWSD, None)
    assert e is not None
    k.mdb_remove(e, include_self=True)  # the task's last capability: it goes
    new = [(a["obj"], a["type"], a["name"]) for _t, _c, kind, _tid, a in tracer.records if kind == "new"]
    assert new[:3] == [(1, "icu", ""), (2, "log", ""), (3, "scheduler", "")]
    assert (t.kid, "task", "victim") in new
    gone = [(a["obj"], a["type"]) for _t, _c, kind, _tid, a in tracer.records if kind == "destroy"]
    assert gone == [(t.kid, "task")]


def test_threads_made_by_a_factory_are_bound_by_a_bind_record() -> None:
    """A thread a factory makes has no task (space -1) until Thread.control binds it: then a
    bind record names the task and its id."""
    res = boot("default", trace=True, console=io.StringIO())
    assert res.tracer is not None
    recs = res.tracer.records
    loose = {tid for _t, _c, kind, tid, a in recs if kind == "thread" and a["space"] == -1}
    bound = {tid: a for _t, _c, kind, tid, a in recs if kind == "bind"}
    assert loose and loose <= set(bound)
    by_kid = {t.kid: t for t in res.kernel.tasks}
    for tid, a in bound.items():
        assert by_kid[a["space"]].name == a["task"]  # type: ignore[index]
        th = next(th for th in res.kernel.threads if th.kid == tid)
        assert th.task is not None and th.task.kid == a["space"]


def test_a_boot_trace_with_its_header_is_the_same_twice(tmp_path: Any) -> None:
    """Two boots of one scenario and seed write the same JSON Lines bytes, header included."""
    runner = CliRunner()
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for p in paths:
        res = runner.invoke(main, ["boot", "default", "--jsonl", str(p)])
        assert res.exit_code == 0, res.output
    a, b = (p.read_bytes() for p in paths)
    assert a == b
    head = json.loads(a.splitlines()[0])
    assert (head["kind"], head["command"], head["scenario"], head["seed"], head["cores"]) == (
        "run", "boot", "default", 0, 2)
