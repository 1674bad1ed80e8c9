"""The boot summary (``tools/boot.py``): how far a run got, program status and thread states apart,
a table that keeps every name and status whole, JSON with the same fields; and the worked example
of docs/runtime.md section 7 checked against a real run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.objects import TS
from l4sim.tools.boot import BootResult, boot, format_summary, status_text, threads_text

ROOT = Path(__file__).resolve().parents[2]


def scenario(tmp_path: Path, body: str, name: str = "scn.py") -> str:
    """A kernel-level scenario file whose root task runs ``body`` (indented code using ``env``)."""
    path = tmp_path / name
    path.write_text(
        "from l4sim.user.env import INITIAL, Env, TaskLocal\n"
        "async def root(env):\n"
        + "".join(f"    {line}\n" for line in body.strip().splitlines())
        + "    return 0\n"
        "def setup(kernel, args=None):\n"
        "    return kernel.create_root('root', lambda sp: root(Env(TaskLocal(INITIAL))))\n")
    return str(path)


def component(res: BootResult, name: str) -> dict[str, Any]:
    return next(c for c in res.summary()["components"] if c["name"] == name)


# -- how far the run got -----------------------------------------------------------------------


def test_a_run_without_timed_events_reports_the_cores_time(tmp_path: Path) -> None:
    """A run of traps only (no timer, timeout or cross-core wake-up) never moves the event queue's
    clock, yet its thread used CPU time: the summary's time is the core's clock, not 0."""
    res = boot(scenario(tmp_path, "for i in range(5):\n    await env.print('x')"), cores=1)
    s = res.summary()
    assert res.kernel.machine.now == 0, "the event queue's clock never moved"
    root = component(res, "root")
    assert root["cpu_ns"] > 0
    assert s["simulated_ns"] == res.kernel.cores[0].time > 0
    assert s["simulated_ns"] >= root["cpu_ns"]
    assert "simulated time 0.000 ms" not in format_summary(s)


def test_a_computation_cut_by_until_counts_only_up_to_the_limit(tmp_path: Path) -> None:
    """A 50 us computation stopped by --until 10us: the run got to 10 us and the thread's CPU time is
    what it ran by then, although the kernel charged the whole computation when it began."""
    res = boot(scenario(tmp_path, "await env.compute(50_000)"), cores=1, until=10_000)
    s = res.summary()
    assert s["stopped_because"] == "until" and s["simulated_ns"] == 10_000
    assert res.kernel.cores[0].time > 50_000, "the core's clock is at the computation's end"
    root = component(res, "root")
    assert 0 < root["cpu_ns"] <= 10_000
    assert root["status"] == "running" and root["thread_states"] == ["ready"]


def test_idle_time_counts_up_to_the_end(tmp_path: Path) -> None:
    """A core that never ran anything was idle for the whole run, even when the queue's clock stayed 0."""
    res = boot(scenario(tmp_path, "await env.print('x')"), cores=2)
    s = res.summary()
    assert s["idle_ns"][1] == s["simulated_ns"] > 0


# -- status and thread states --------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run() -> BootResult:
    return boot("default")


def test_status_and_thread_states_are_apart(default_run: BootResult) -> None:
    """A program's status is its lifecycle (running, exited, fault, killed); its thread states are what
    the kernel says each thread is doing (blocked in receive, dead, ...)."""
    comps = {c["name"]: c for c in default_run.summary()["components"]}
    assert (comps["sigma0"]["status"], comps["sigma0"]["thread_states"]) == ("running", ["blocked in receive"])
    assert (comps["hello"]["status"], comps["hello"]["exit"]) == ("exited", 0)
    assert comps["counter"]["status"] == "killed" and comps["counter"]["exit"] is None
    assert comps["crasher"]["status"] == "fault"
    assert comps["crasher"]["thread_states"] == ["dead", "dead"]
    assert {c["status"] for c in comps.values()} <= {"running", "exited", "fault", "killed", "ended"}


def test_a_segmentation_fault_names_the_trap_count(default_run: BootResult) -> None:
    """The number in a native program's segmentation fault is its thread's trap count at the fault
    (what the kernel sends where Fiasco sends the instruction pointer), named so."""
    fault = component(default_run, "crasher")["fault"]
    m = re.fullmatch(r"segmentation fault \(read at 0x10 in trap #(\d+)\)", fault)
    assert m is not None, fault
    main = next(t for t in default_run.kernel.threads if t.task is not None and t.task.name == "crasher")
    assert main.state is TS.DEAD and int(m.group(1)) == main.traps


def test_the_table_keeps_long_names_and_statuses_whole(tmp_path: Path) -> None:
    """Program names of any length stay whole and aligned; the status (a long fault included) is the
    last column and never cut; JSON and table agree row by row."""
    long_name = "a-program-with-a-long-name-32chr"  # as long as a startup script allows
    (tmp_path / "progs.py").write_text(
        "async def crash(env):\n"
        "    await env.mem.write(0xDEAD000, b'x')\n"
        "    return 0\n"
        "async def fine(env):\n"
        "    return 3\n")
    (tmp_path / "system.py").write_text(
        f"start({long_name!r}, 'progs:crash')\n"
        "start('x', 'progs:fine')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        res = boot(str(tmp_path / "system.py"))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("progs", None)
    s = res.summary()
    lines = format_summary(s).splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("program"))
    rows = lines[header + 1:header + 1 + len(s["components"])]
    core_end = lines[header].index("core") + len("core")
    status_at = lines[header].index("status")
    for c, row in zip(s["components"], rows, strict=True):
        assert row.startswith(c["name"] + " ")
        assert row[core_end - 1] == str(c["cpu"])[-1], "right-aligned under the header"
        assert row[status_at:] == status_text(c), "the status starts under its header and is whole"
        assert threads_text(c["thread_states"]) in row
    crashed = next(c for c in s["components"] if c["name"] == long_name)
    assert status_text(crashed) == "fault: segmentation fault (write at 0xdead000 in trap #1)"
    assert component(res, "x")["exit"] == 3


def test_summary_json_and_table_have_the_same_fields(default_run: BootResult) -> None:
    """The JSON summary is what the table shows: every component field has its column."""
    s = default_run.summary()
    text = format_summary(s)
    assert json.loads(json.dumps(s)) == s
    header = next(ln for ln in text.splitlines() if ln.startswith("program"))
    columns = {"program": "name", "core": "cpu", "thr": "threads", "cpu time": "cpu_ns", "IPCs": "ipcs",
               "page faults": "page_faults", "switches": "switches", "threads at the end": "thread_states",
               "status": "status"}
    for col in columns:
        assert col in header
    shown = set(columns.values()) | {"exit", "fault", "ended"}  # in the status column
    for c in s["components"]:
        assert set(c) - {"realtime", "jobs", "deadline_misses", "task", "creator"} == shown
        assert c["creator"] < c["task"]  # the kernel's ids grow: a task's maker is older


def _comp(name: str, task: int, creator: int, status: str = "ended", cpu_ns: int = 1000) -> dict[str, Any]:
    return {"name": name, "task": task, "creator": creator, "status": status, "exit": None, "fault": None,
            "ended": None, "threads": 1, "thread_states": ["dead" if status == "ended" else "ready"], "cpu": 0,
            "cpu_ns": cpu_ns, "ipcs": 2, "page_faults": 3, "switches": 4}


def test_a_linux_instances_tasks_are_summed_under_its_row() -> None:
    """The tasks a Linux instance made (and those its processes' tasks made) follow its row: one
    row of sums for those that ended, one per task alive; other programs' tasks keep their rows,
    and the JSON keeps every task."""
    comps = [_comp("ned", 10, -1, "running"), _comp("web", 20, 10, "running"), _comp("busybox", 30, 20),
             _comp("exe", 31, 20), _comp("sh", 32, 20, "running"), _comp("busybox", 40, 30),
             _comp("helper", 50, 10, "running"), _comp("child", 51, 50)]
    s = {"simulated_ns": 1, "ipcs": 0, "kernel_invocations": 0, "context_switches": 0, "exceptions": 0,
         "cores": 1, "idle_ns": [0], "stopped_because": "stop", "components": comps,
         "linux": [{"name": "web", "processes": 3, "syscalls": 9, "status": None}]}
    names = [ln[:2] + ln[2:].split("  ")[0] for ln in format_summary(s).splitlines()]
    start = names.index("program")
    assert names[start + 1:start + 7] == ["ned", "web", "  web: sh", "  web: 3 tasks", "helper", "child"]
    row = next(ln for ln in format_summary(s).splitlines() if ln.startswith("  web: 3 tasks"))
    assert "3.0 us" in row and row.split()[-1] == "ended"


# -- the worked example of docs/runtime.md ---------------------------------------------------------

ROW = re.compile(r"(\S+)\s+(\d+)\s+(\d+)\s+([\d.]+ us)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*?)\s{2,}(\S.*)")


def _worked_example() -> tuple[str, str, str, list[str]]:
    """kvstore.py, my_system.py, the command and its documented output, from section 7.1."""
    text = (ROOT / "docs" / "runtime.md").read_text()
    section = text[text.index("### 7.1 "):text.index("### 7.2 ")]
    python = re.findall(r"```python\n(.*?)```", section, re.S)
    console = re.findall(r"```console\n(.*?)```", section, re.S)
    assert len(python) == 2 and len(console) == 1, "the example's blocks moved: adapt this test"
    kvstore = next(b for b in python if "async def kv_server" in b)
    system = next(b for b in python if "start(" in b)
    first, *output = console[0].splitlines()
    assert first.startswith("$ ")
    return kvstore, system, first[2:], output


def _parts(lines: list[str]) -> tuple[list[str], str, list[tuple[str, ...]]]:
    """(console lines, first summary line, table rows as (program, core, thr, page faults, threads,
    status)) of ``l4sim boot`` output."""
    blank = lines.index("")
    header = next(i for i, ln in enumerate(lines) if ln.startswith("program"))
    rows = []
    for ln in lines[header + 1:]:
        m = ROW.fullmatch(ln)
        if m is None:
            break
        rows.append((m[1], m[2], m[3], m[6], m[8], m[9]))
    return lines[:blank], lines[blank + 1], rows


def test_the_worked_example_in_runtime_md_is_what_boot_prints(tmp_path: Path) -> None:
    """Section 7.1's programs and script, booted as the section says, print exactly its console lines;
    the summary has its cores, stop reason and, per program, the core, threads, page faults,
    threads at the end and status (times and IPC counts are left out: they move with costs)."""
    kvstore, system, command, documented = _worked_example()
    (tmp_path / "kvstore.py").write_text(kvstore)
    (tmp_path / "my_system.py").write_text(system)
    env_part, l4sim, *args = command.split()
    assert env_part == "PYTHONPATH=." and l4sim == "l4sim"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "l4sim", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    real = proc.stdout.splitlines()
    doc_console, doc_first, doc_rows = _parts(documented)
    real_console, real_first, real_rows = _parts(real)
    assert real_console == doc_console
    shape = re.compile(r"simulated time [\d.]+ ms on (\d+ cores?) \(idle [\d., ]+ ms\); stopped because (.*)")
    doc_m, real_m = shape.fullmatch(doc_first), shape.fullmatch(real_first)
    assert doc_m is not None and real_m is not None, (doc_first, real_first)
    assert real_m.groups() == doc_m.groups()
    assert doc_rows and real_rows == doc_rows
