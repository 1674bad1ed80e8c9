"""The DROPS scenarios: a reserved media pipeline beside Linux and a hog meets its deadlines; without reservations it misses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.scenarios import drops
from l4sim.tools.boot import BootResult, boot, format_summary, scenario_names

needs_busybox = pytest.mark.skipif(drops.busybox() is None, reason="no busybox on this host")


@pytest.fixture(scope="module")
def reserved() -> BootResult:
    """One boot of ``drops``."""
    return boot("drops")


@pytest.fixture(scope="module")
def unreserved() -> BootResult:
    """One boot of ``drops-noreserve``."""
    return boot("drops-noreserve")


def comp(res: BootResult, name: str) -> dict[str, Any]:
    return next(c for c in res.summary()["components"] if c["name"] == name)


def test_both_scenarios_are_listed() -> None:
    """``drops`` and ``drops-noreserve`` are built-in scenario names."""
    assert {"drops", "drops-noreserve"} <= set(scenario_names())


def test_reserved_pipeline_meets_every_deadline(reserved: BootResult) -> None:
    """Under reservations decoder and display complete a job every period and miss no deadline."""
    for name, jobs in (("decoder", 20), ("display", 19)):
        c = comp(reserved, name)
        assert c["realtime"] is True
        assert c["deadline_misses"] == 0
        assert c["jobs"] == jobs


def test_run_is_bounded_to_the_scenario_duration(reserved: BootResult) -> None:
    """The run stops at the scenario's 200 ms, not when the system goes idle."""
    s = reserved.summary()
    assert s["stopped_because"] == "stop"
    assert drops.DURATION <= s["simulated_ns"] < drops.DURATION + 2 * drops.MS


def test_admission_server_granted_the_reservations(reserved: BootResult) -> None:
    """The kernel holds the budgets and priorities the components asked the admission server for."""
    th = {t.name: t for t in reserved.kernel.threads}
    assert (th["decoder"].resv.budget, th["decoder"].resv.prio) == (drops.DECODE_BUDGET, drops.DECODE_PRIO)
    assert (th["display"].resv.budget, th["display"].resv.prio) == (drops.SHOW_BUDGET, drops.SHOW_PRIO)
    assert th["decoder"].resv.period == drops.PERIOD


def test_frames_pass_the_ring_intact(reserved: BootResult) -> None:
    """Every frame the display takes from the DSI ring is the one the decoder put there, in order."""
    assert "garbled" not in reserved.kernel.machine.uart.text()


def test_best_effort_side_makes_progress(reserved: BootResult) -> None:
    """The hog gets the CPU time the pipeline and Linux leave; best-effort components carry no real-time fields."""
    hog = comp(reserved, "hog")
    assert hog["cpu_ns"] > 10 * drops.MS
    assert "jobs" not in hog and "realtime" not in hog


@needs_busybox
def test_busybox_loop_finishes_beside_the_pipeline(reserved: BootResult) -> None:
    """The busybox loop in the Linux personality runs to its end on the same core and prints its count."""
    assert f"linux: busybox loop: {drops.LOOP} rounds" in reserved.kernel.machine.uart.text()
    assert comp(reserved, "linux")["exit"] == 0
    assert comp(reserved, "busybox")["cpu_ns"] > 50 * drops.MS


def test_without_reservations_the_pipeline_misses(unreserved: BootResult) -> None:
    """Without reservations decoder and display, best effort beside Linux and the hog, miss deadlines."""
    for name in ("decoder", "display"):
        c = comp(unreserved, name)
        assert c["realtime"] is False
        assert c["jobs"] > 0
        assert c["deadline_misses"] > 0
    assert not any(t.resv for t in unreserved.kernel.threads)
    assert "admission" not in [c["name"] for c in unreserved.summary()["components"]]


def test_summary_text_reports_jobs_and_misses(reserved: BootResult) -> None:
    """The text summary ends with one line per periodic component: kind, jobs, misses."""
    text = format_summary(reserved.summary())
    assert "decoder  real time (reservation): 20 jobs, 0 deadline misses" in text.splitlines()


@pytest.mark.parametrize("name", ["drops", "drops-noreserve"])
def test_deterministic(name: str) -> None:
    """Two boots of the same scenario give identical summaries and console output."""
    a, b = boot(name), boot(name)
    assert a.summary() == b.summary()
    assert a.kernel.machine.uart.text() == b.kernel.machine.uart.text()


def test_cli_json_carries_the_realtime_fields() -> None:
    """``l4sim boot drops --json`` gives decoder and display ``realtime``, ``jobs`` and ``deadline_misses``."""
    r = CliRunner().invoke(main, ["boot", "drops", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output.strip().splitlines()[-1])
    rt = {c["name"]: (c["realtime"], c["jobs"], c["deadline_misses"]) for c in s["components"] if "jobs" in c}
    assert rt == {"decoder": (True, 20, 0), "display": (True, 19, 0)}


def test_without_busybox_linux_is_skipped_with_a_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the host has no busybox the console says so and the pipeline still meets its deadlines."""
    monkeypatch.setattr(drops, "busybox", lambda: None)
    res = boot("drops")
    assert "drops: no busybox on this host: the Linux component is skipped" in res.kernel.machine.uart.text()
    names = [c["name"] for c in res.summary()["components"]]
    assert "linux" not in names
    assert comp(res, "decoder")["deadline_misses"] == 0
    assert comp(res, "display")["deadline_misses"] == 0
