"""QAS at run time: optional parts drawn from their distributions, aborted at the deadline, quality reported."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l4sim.cli import main
from l4sim.kernel.costs import CostModel
from l4sim.realtime.analysis import analyze
from l4sim.realtime.sim import analysed_wcrt, simulate, zero_costs
from l4sim.realtime.taskset import build

from .test_analysis import PERIODS

Row = dict[str, Any]
MS = 1_000_000

#: the docs' example: video's optional part is uniform on [0, 8] ms, quality 0.9 (reserve 7.2 ms)
DOCS = build([{"name": "audio", "period": 5, "wcet": 1.25},
              {"name": "video", "period": 40, "wcet": 10, "deadline": 30,
               "optional": {"distribution": {"uniform": [0, 8]}, "quality": 0.9}},
              {"name": "log", "period": 100, "wcet": 7}], "ms")
#: a discrete distribution whose 0.7-quantile (2 ms) is completed with probability 0.8
DISCRETE = build([{"name": "ctl", "period": 10, "wcet": 2},
                  {"name": "img", "period": 20, "wcet": 3,
                   "optional": {"distribution": {"discrete": [[1, 0.5], [2, 0.3], [9, 0.2]]}, "quality": 0.7}},
                  {"name": "net", "period": 40, "wcet": 4,
                   "optional": {"distribution": {"uniform": [1, 12]}, "quality": 0.6}}], "ms")
#: optional parts that mostly overrun their reserve by far: many aborts on a core loaded to U = 0.975
HEAVY_ROWS: list[Row] = [{"name": "a", "period": 4, "wcet": 1,
                          "optional": {"distribution": {"discrete": [[0.5, 0.5], [6, 0.5]]}, "quality": 0.5}},
                         {"name": "b", "period": 10, "wcet": 2,
                          "optional": {"distribution": {"uniform": [0, 20]}, "quality": 0.15}},
                         {"name": "c", "period": 20, "wcet": 2}]
HEAVY = build(HEAVY_ROWS, "ms")

SETS = {"docs": DOCS, "discrete": DISCRETE, "heavy": HEAVY}


def quality(res: Any) -> dict[str, Any]:
    return {t.name: t.quality for t in res.tasks if t.quality is not None}


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_example_sets_are_admitted(name: str) -> None:
    """Every set used here passes the QAS admission under FP and EDF (else the claims below say nothing)."""
    for policy in ("fp", "edf"):
        res = analyze(SETS[name], policy)  # type: ignore[arg-type]
        assert res.schedulable and res.qas is not None and res.qas.admitted, (name, policy)


@pytest.mark.parametrize("policy", ["fp", "edf"])
@pytest.mark.parametrize("ideal", [True, False])
@pytest.mark.parametrize("name", sorted(SETS))
def test_admitted_sets_reach_the_requested_quality(name: str, ideal: bool, policy: str) -> None:
    """Over a long run (>= 1000 optional parts each) every QAS task achieves at least the quality it asked for."""
    ts = SETS[name]
    longest = max(t.period for t in ts.tasks if t.optional is not None)
    res = simulate(ts, policy, 1000 * longest + 1, costs=zero_costs() if ideal else None)
    for t, q in quality(res).items():
        assert q.parts >= 1000 and q.achieved >= q.requested, (t, q)


@pytest.mark.parametrize("policy", ["fp", "edf"])
@pytest.mark.parametrize("ideal", [True, False])
@pytest.mark.parametrize("name", sorted(SETS))
def test_optional_aborts_never_cause_a_mandatory_deadline_miss(name: str, ideal: bool, policy: str) -> None:
    """Many optional parts are aborted, yet no job of any task misses its deadline."""
    ts = SETS[name]
    res = simulate(ts, policy, 2000 * MS, costs=zero_costs() if ideal else None)
    assert res.misses == 0
    assert sum(q.parts - q.completed for q in quality(res).values()) > 0  # there were aborts


def test_observed_responses_stay_within_the_qas_analysis() -> None:
    """Ideal kernel: no response exceeds the FP analysis with every QAS budget (wcet + reserve)."""
    for ts in SETS.values():
        res = simulate(ts, "fp", 2000 * MS, costs=zero_costs())
        bound = analysed_wcrt(ts, zero_costs())
        for t in res.tasks:
            w = bound[t.name]
            assert w is not None and t.max_response <= w, t.name


def test_reserve_mode_completes_exactly_the_parts_that_fit_their_reserve() -> None:
    """With --optional reserve a part completes iff its drawn time is within the reserve: replaying the
    task's generator gives the count exactly."""
    end = 4000 * MS
    res = simulate(DISCRETE, "fp", end, costs=zero_costs(), seed=7, optional="reserve")
    for t in DISCRETE.tasks:
        if t.optional is None:
            continue
        q = quality(res)[t.name]
        rng = random.Random(f"l4sim-qas:7:{t.name}")
        draws = [t.optional.distribution.sample(rng) for _ in range(q.parts)]
        assert q.completed == q.in_reserve == sum(x <= t.optional.budget() for x in draws)
        assert q.in_slack == 0


def test_the_slack_adds_to_the_reserve() -> None:
    """The same draws complete at least as often with the slack as without, and some only in the slack."""
    for ts in SETS.values():
        with_slack = quality(simulate(ts, "fp", 2000 * MS, costs=zero_costs()))
        reserve_only = quality(simulate(ts, "fp", 2000 * MS, costs=zero_costs(), optional="reserve"))
        for name, q in with_slack.items():
            assert q.in_reserve == reserve_only[name].completed
            assert q.completed >= reserve_only[name].completed
    assert quality(simulate(DISCRETE, "fp", 2000 * MS, costs=zero_costs()))["img"].in_slack > 0


def test_off_runs_only_the_mandatory_parts() -> None:
    """--optional off reports no quality and gives the plain analysis' response times."""
    res = simulate(DOCS, "fp", costs=zero_costs(), optional="off")
    assert quality(res) == {}
    assert {t.name: t.max_response for t in res.tasks} == analysed_wcrt(DOCS, zero_costs(), "off")


def test_runs_are_deterministic() -> None:
    """Two runs with the same seed give the same counts and the same trace; another seed other draws."""
    a = simulate(HEAVY, "edf", 300 * MS, trace=True, seed=3)
    b = simulate(HEAVY, "edf", 300 * MS, trace=True, seed=3)
    c = simulate(HEAVY, "edf", 300 * MS, trace=True, seed=4)
    assert a.to_json(HEAVY) == b.to_json(HEAVY)
    assert a.tracer is not None and b.tracer is not None and c.tracer is not None
    assert a.tracer.records == b.tracer.records
    assert a.tracer.records != c.tracer.records


def test_a_rest_never_runs_after_its_deadline() -> None:
    """Ideal kernel: no background thread of an optional part runs beyond its job's deadline -- the watchdog
    stops it there."""
    res = simulate(HEAVY, "fp", 400 * MS, costs=zero_costs(), trace=True)
    assert res.tracer is not None
    bg = res.extra["background"]
    names = {t.thread: t.name for t in res.tasks}
    period = {t.name: t.period for t in HEAVY.tasks}
    running, since = -1, 0
    ran = 0
    for t, _cpu, kind, tid, _args in res.tracer.records:
        if kind == "switch":
            if running in bg and t > since:
                p = period[bg[running]]
                ran += 1
                # the rest belongs to the job released at the last period boundary at or before `since`;
                # its deadline is the next boundary (D = T here)
                assert t <= (since // p + 1) * p, (bg[running], since, t)
            running, since = tid, t
    assert ran > 0 and set(names.values()) >= set(bg.values())


# -- random sets -----------------------------------------------------------------------------


@st.composite
def qas_rows(draw: st.DrawFn) -> list[Row]:
    """Small random sets in us, some tasks with an optional part (uniform or two-point)."""
    n = draw(st.integers(1, 4))
    out = []
    for i in range(n):
        t = 100 * draw(st.sampled_from(PERIODS))
        c = draw(st.integers(10, max(10, t // (2 * n + 1))))
        row: Row = {"name": f"t{i}", "period": t, "wcet": c}
        if draw(st.booleans()):
            hi = draw(st.integers(1, t))
            dist = ({"uniform": [0, hi]} if draw(st.booleans())
                    else {"discrete": [[hi // 4, 0.6], [hi, 0.4]]})
            row["optional"] = {"distribution": dist,
                               "quality": draw(st.sampled_from([0, 0.25, 0.5, 0.6, 0.9]))}
        out.append(row)
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qas_rows(), st.sampled_from(["fp", "edf"]), st.integers(0, 3))
def test_random_admitted_sets_never_miss_a_mandatory_deadline(rs: list[Row], policy: str, seed: int) -> None:
    """Random sets the QAS admission accepts (with the kernel's per-job costs in the wcets) run with default
    kernel costs without a deadline miss, whatever their optional parts draw."""
    ts = build(rs, "us")
    cm = CostModel()
    extra = 2 * (cm.context_switch + cm.space_switch) + 2 * cm.syscall + cm.clock_read + cm.kobject_op
    padded = build([{**r, "wcet": r["wcet"] + Fraction(extra, 1000)} for r in rs], "us")
    res = analyze(padded, policy)  # type: ignore[arg-type]
    if not res.schedulable or (res.qas is not None and not res.qas.admitted):
        return
    out = simulate(ts, policy, 50 * max(t.period for t in ts.tasks), seed=seed)
    assert out.misses == 0


# -- the command ------------------------------------------------------------------------------


def _file(tmp_path: Any, rows: list[Row]) -> str:
    p = tmp_path / "set.json"
    p.write_text(json.dumps({"time_unit": "ms", "tasks": rows}))
    return str(p)


def test_cli_json_reports_quality(tmp_path: Any) -> None:
    """--json gives a QAS task "quality": {"requested", "achieved", ...}; other tasks have none."""
    f = _file(tmp_path, [{"name": "audio", "period": 5, "wcet": 1.25},
                         {"name": "video", "period": 40, "wcet": 10, "deadline": 30,
                          "optional": {"distribution": {"uniform": [0, 8]}, "quality": 0.9}}])
    r = CliRunner().invoke(main, ["rt", "simulate", f, "--json", "--duration", "4000"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    audio, video = out["tasks"]
    assert "quality" not in audio
    q = video["quality"]
    assert q["requested"] == 0.9 and q["parts"] == 100 and q["achieved"] == q["completed"] / 100
    assert q["achieved"] >= 0.9 and q["in_reserve"] + q["in_slack"] == q["completed"]


def test_cli_table_and_modes(tmp_path: Any) -> None:
    """The table has quality columns; --optional reserve says so; a bad mode is a one-line error."""
    f = _file(tmp_path, HEAVY_ROWS)
    runner = CliRunner()
    r = runner.invoke(main, ["rt", "simulate", f, "--ideal", "--duration", "200"])
    assert r.exit_code == 0, r.output
    assert "quality" in r.output.splitlines()[0] and "achieved" in r.output.splitlines()[0]
    r = runner.invoke(main, ["rt", "simulate", f, "--ideal", "--optional", "reserve", "--duration", "200"])
    assert r.exit_code == 0 and "aborted at the end of its QAS reserve" in r.output
    r = runner.invoke(main, ["rt", "simulate", f, "--optional", "maybe"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "--optional" in r.output
