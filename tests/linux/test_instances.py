"""Linux instances started by startup scripts (``linux(...)``): each a program of its own with
exactly the script's capabilities, its memory from a moe dataspace, its console lines tagged
with its name, isolated from the other instances."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.objects import IpcGate, Task
from l4sim.linux.sched import kernel_prio
from l4sim.linux.state import POOL_BASE, SCHED_FIFO, SCHED_RR, TEXT_WINDOW
from l4sim.tools.boot import BootResult, boot, format_summary

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
pytestmark = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed")
MS = 1_000_000


def run(tmp_path: Path, text: str, **kw: Any) -> BootResult:
    p = tmp_path / "system.py"
    p.write_text(text.replace("BB", BUSYBOX))
    return boot(str(p), **kw)


def _tasks(res: BootResult) -> dict[str, Task]:
    """Live kernel tasks of the programs ned started, by program name."""
    out = {}
    for task in res.kernel.tasks:
        child = res.scenario.program_of(task)
        if child is not None and task.alive:
            out[child.name] = task
    return out


def test_two_instances_share_only_the_channel_the_script_gives_both(tmp_path: Path) -> None:
    """Mid-run, the capability spaces of two instances have exactly one object in common --
    the store's channel; each one's memory pages derive from moe's (a dataspace), none from
    sigma0 directly; and their lines on the console carry their names."""
    res = run(tmp_path, '''
store = channel("store")
start("store", "l4sim.scenarios.programs.store:store_server", caps={"store": store.server()}, prio=30,
      daemon=True)
linux("a", argv=["BB", "sh", "-c", "echo a runs; sleep 1"], caps={"store": store}, prio=20, memory="8M")
linux("b", argv=["BB", "sh", "-c", "echo b runs; sleep 1"], caps={"store": store}, prio=20, memory="8M")
''', until=50 * MS)
    tasks = _tasks(res)
    a, b = tasks["a"], tasks["b"]
    objs_a = {id(e.obj): e.obj for e in a.caps.slots.values()}
    objs_b = {id(e.obj): e.obj for e in b.caps.slots.values()}
    shared = [objs_a[i] for i in objs_a.keys() & objs_b.keys()]
    assert len(shared) == 1 and isinstance(shared[0], IpcGate)
    store_thread = next(th for th in res.kernel.threads if th.task is tasks["store"])
    assert shared[0].thread is store_thread
    for t in (a, b):
        pool = [m for vpn, m in t.vspace.pages.items() if POOL_BASE >> 12 <= vpn < TEXT_WINDOW >> 12]
        assert 100 < len(pool) <= (8 << 20) >> 12
        assert all(m.parent is not None and m.parent.space.name == "moe" for m in pool)
        # the text windows map pool pages again (state.TextWindow, its hot set the window's
        # pages once more): within the instance's own space, down from moe's
        window = [m for vpn, m in t.vspace.pages.items() if vpn >= TEXT_WINDOW >> 12]
        assert window
        for m in window:
            up = m.parent
            while up is not None and up.space is t:
                up = up.parent
            assert up is not None and up.space.name == "moe"
    text = res.kernel.machine.uart.text()
    assert "a       | a runs\n" in text and "b       | b runs\n" in text


def test_summary_rows_and_json_per_instance(tmp_path: Path) -> None:
    """The summary has a row per instance -- processes run, system calls, the first program's
    exit status -- and the JSON a "linux" list; other scenarios' summaries have neither."""
    res = run(tmp_path, '''
linux("ok", argv=["BB", "sh", "-c", "echo x | cat; exit 3"], prio=20)
linux("bad", argv=["BB", "sh", "-c", "kill -SEGV $$"], prio=20)
''')
    s = res.summary()
    rows = {r["name"]: r for r in s["linux"]}
    assert rows["ok"]["status"] == 3 and rows["ok"]["processes"] == 3 and rows["ok"]["syscalls"] > 10
    assert rows["bad"]["status"] == 128 + 11
    assert set(rows["ok"]) == {"name", "processes", "syscalls", "status"}
    table = format_summary(s)
    assert "linux  processes  system calls  status" in table and "\nok " in table and "exit 139" in table
    assert "ned: ok: exit 3" in res.kernel.machine.uart.text()
    assert "linux" not in boot("default").summary()


def test_an_instance_runs_at_most_at_its_priority_on_its_cores(tmp_path: Path) -> None:
    """Its processes' threads run one below the instance's priority, on the script's cores; a
    real-time policy finds no room above that (linux run's mapping is unchanged)."""
    res = run(tmp_path, '''
linux("rt", argv=["BB", "sh", "-c", "sleep 1 & sleep 1; wait"], prio=20, cpus=[1])
''', until=100 * MS)
    ths = [th for th in res.kernel.threads if th.guest is not None and th.state.name != "DEAD"]
    assert len(ths) == 3 and all(th.prio == 19 and th.cpu == 1 for th in ths)
    assert kernel_prio(SCHED_FIFO, 50, 19, 19) == 19 and kernel_prio(SCHED_RR, 99, 19, 19) == 19
    assert (kernel_prio(SCHED_FIFO, 1), kernel_prio(SCHED_FIFO, 99), kernel_prio(0, 0)) == (51, 99, 50)


def test_the_personalitys_irq_labels_are_distinct_and_no_threads() -> None:
    """Each Irq the personality's serving thread receives (keyboard, /dev/l4 workers, display,
    network) has a label of its own, none a thread's (tid << 2, far below 2**40)."""
    from l4sim.linux import fb, l4, personality
    from l4sim.linux.net import stack

    labels = [personality.KBD_LABEL, l4.IRQ_LABEL, fb.IRQ_LABEL, stack.IRQ_LABEL]
    assert len(set(labels)) == len(labels)
    assert all(label & 3 == 0 and label >= 1 << 42 for label in labels)
