"""The kernel scenario end to end: its output, its summary, and its determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from l4sim.kernel.objects import TS
from l4sim.tools.boot import BootResult, boot
from l4sim.tools.trace_export import write_chrome


@pytest.fixture(scope="module")
def kernel_run() -> BootResult:
    """One traced boot of the kernel scenario, shared by the content tests."""
    return boot("kernel", trace=True)


def test_kernel_console_shows_every_program_finishing(kernel_run: BootResult) -> None:
    """The console has the client's sum, five ticks, both workers and the root's last line."""
    text = kernel_run.kernel.machine.uart.text()
    lines = text.splitlines()
    assert "client: sum of squares 1..8 = 204 (label seen by server 0x11)" in lines
    assert [ln.split(" label")[0] for ln in lines if ln.startswith("ticker:")] == [
        f"ticker: tick {n}" for n in range(1, 6)]
    assert any(ln.startswith("worker-hi: done at") for ln in lines)
    assert any(ln.startswith("worker-lo: done at") for ln in lines)
    assert "server: 9 requests served, bye" in lines
    assert lines[0] == "root: l4sim kernel demo"
    assert lines[-1] == "root: all programs finished"


def test_kernel_threads_all_exit_zero(kernel_run: BootResult) -> None:
    """Every program of the demo ended with exit code 0, none faulted, sigma0 still serves."""
    threads = kernel_run.kernel.threads
    assert {th.name for th in threads} == {"sigma0", "root", "server", "client", "ticker", "worker-lo",
                                            "worker-hi"}
    for th in threads:
        if th.name == "sigma0":
            assert th.state is TS.RECV and not th.faulted
            continue
        assert th.state is TS.DEAD and th.exit_code == 0 and not th.faulted, th.name
    assert kernel_run.reason == "stop"


def test_kernel_root_pages_fault_to_sigma0(kernel_run: BootResult) -> None:
    """The root task's four first touches are page faults resolved by sigma0, 1:1."""
    root = next(th for th in kernel_run.kernel.threads if th.name == "root")
    assert root.pfaults == 4
    assert root.task is not None
    for i in range(4):
        vpn = (0x100000 >> 12) + i
        assert root.task.vspace.pages[vpn].pfn == vpn
    assert "page 2 holds 'page 2'" in kernel_run.kernel.machine.uart.text()


def test_kernel_summary_has_the_headline_figures(kernel_run: BootResult) -> None:
    """The summary reports simulated time, IPCs and context switches, all positive."""
    s = kernel_run.summary()
    assert s["simulated_ns"] >= 5_000_000, "five 1 ms ticks were waited for"
    assert s["ipcs"] > 0 and s["context_switches"] > 0
    assert s["exceptions"] == 0
    assert s["cores"] == 2 and len(s["idle_ns"]) == 2
    assert {c["name"] for c in s["components"]} >= {"client", "server", "ticker"}
    assert all(c["status"] == "exited" and c["exit"] == 0 for c in s["components"] if c["name"] != "sigma0")


def test_kernel_worker_lo_runs_on_core_one_when_there_are_two(kernel_run: BootResult) -> None:
    """The workers are placed on core 1 of a two-core machine."""
    cpus = {th.name: th.cpu for th in kernel_run.kernel.threads}
    assert cpus["worker-lo"] == cpus["worker-hi"] == 1
    assert cpus["client"] == 0


def test_kernel_boots_on_one_core_too() -> None:
    """With one core everything shares core 0 and still finishes."""
    r = boot("kernel", cores=1)
    assert r.reason == "stop"
    assert all(th.exit_code == 0 for th in r.kernel.threads if th.name != "sigma0")
    assert "root: all programs finished" in r.kernel.machine.uart.text()


def test_two_boots_give_identical_traces(kernel_run: BootResult, tmp_path: Path) -> None:
    """Booting twice yields the same trace records and byte-identical Chrome JSON."""
    again = boot("kernel", trace=True)
    assert kernel_run.tracer is not None and again.tracer is not None
    assert len(kernel_run.tracer.records) > 100
    assert again.tracer.records == kernel_run.tracer.records
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_chrome(kernel_run.tracer.records, a)
    write_chrome(again.tracer.records, b)
    assert a.read_bytes() == b.read_bytes()
    assert again.summary() == kernel_run.summary()


def test_a_run_with_another_seed_is_repeatable() -> None:
    """With seed 7 the default scenario also gives the same trace every time."""
    r1 = boot("kernel", seed=7, trace=True)
    r2 = boot("kernel", seed=7, trace=True)
    assert r1.tracer is not None and r2.tracer is not None
    assert r1.tracer.records == r2.tracer.records
    assert r1.kernel.machine.uart.output == r2.kernel.machine.uart.output


def test_boot_until_stops_early() -> None:
    """A time limit stops the run before the demo finishes, at that time."""
    r = boot("kernel", until=1_000_000)
    assert r.reason == "until"
    assert r.kernel.machine.now == 1_000_000
    assert "root: all programs finished" not in r.kernel.machine.uart.text()
