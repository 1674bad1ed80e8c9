"""The default system end to end: sigma0, moe, ned and the script's programs."""

from __future__ import annotations

from pathlib import Path

import pytest

from l4sim.tools.boot import BootResult, boot
from l4sim.tools.trace_export import write_chrome


@pytest.fixture(scope="module")
def run() -> BootResult:
    """One traced boot of the default system, shared by the content tests."""
    return boot("default", trace=True)


def statuses(r: BootResult) -> dict[str, str]:
    return {c.name: c.status for c in r.programs}


def test_every_program_ends_as_the_script_intends(run: BootResult) -> None:
    """hello, the clients, producer and consumer exit 0; the two crashers fault; the daemon is ended."""
    st = statuses(run)
    for name in ("hello", "client-a", "producer", "consumer"):
        assert st[name] == "exit 0", (name, st[name])
    assert st["client-b"].startswith("fault: segmentation fault (write at 0xdead000")
    assert st["crasher"].startswith("fault: segmentation fault (read at 0x10")
    assert st["counter"] == "killed at the end"
    assert run.reason == "stop"


def test_console_shows_each_program_under_its_own_tag(run: BootResult) -> None:
    """moe's log server tags every line with the program that wrote it."""
    text = run.kernel.machine.uart.text()
    assert "hello   | hello from a task of its own" in text
    assert "consumer | consumer: 24 items, sum 4900" in text
    assert "client-a | client-a: counter is 15 after 5 calls" in text
    assert "\x1b[" not in text, "colour is added on a terminal only, never by the model"


def test_server_learns_that_a_dead_clients_session_is_gone(run: BootResult) -> None:
    """client-b crashes; the kernel's deletion notification lets the server free its session."""
    text = run.kernel.machine.uart.text()
    assert "session 0x104 closed by the death of its client (counter was 6)" in text


def test_dead_programs_hold_nothing(run: BootResult) -> None:
    """After the run every program's task is gone: no capability, no page, no live thread."""
    names = {c.name for c in run.programs}
    for task in run.kernel.tasks:
        if task.name in names:
            assert not task.alive and not task.caps.slots and not task.vspace.pages, task.name


def test_summary_rows_are_programs(run: BootResult) -> None:
    """The summary has one row per program, with its threads' CPU time, IPCs and faults."""
    comps = {c["name"]: c for c in run.summary()["components"]}
    assert comps["crasher"]["status"] == "fault" and comps["crasher"]["page_faults"] == 1
    assert comps["hello"]["exit"] == 0 and comps["hello"]["threads"] == 2  # main + region manager
    assert comps["producer"]["cpu"] == 1 and comps["producer"]["cpu_ns"] > 0


def test_two_boots_give_identical_traces(run: BootResult, tmp_path: Path) -> None:
    """The same system and seed give the same trace, byte for byte."""
    again = boot("default", trace=True)
    assert run.tracer is not None and again.tracer is not None
    assert again.tracer.records == run.tracer.records
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_chrome(run.tracer.records, a)
    write_chrome(again.tracer.records, b)
    assert a.read_bytes() == b.read_bytes()


def test_the_system_boots_on_one_core() -> None:
    """On one core the workers share core 0 and every program still ends as intended."""
    st = statuses(boot("default", cores=1))
    assert st["consumer"] == "exit 0" and st["crasher"].startswith("fault")


def test_a_startup_script_path_boots(tmp_path: Path) -> None:
    """``boot PATH.py`` runs a startup script on the runtime."""
    p = tmp_path / "mine.py"
    p.write_text('start("hi", "l4sim.scenarios.programs.demo:hello")\n')
    r = boot(str(p))
    assert statuses(r) == {"hi": "exit 0"}
