"""`l4sim rt simulate`: task sets as periodic reserved threads on the kernel, checked against the analysis."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l4sim.cli import main
from l4sim.kernel.costs import CostModel
from l4sim.realtime.analysis import analyze_fp, edf_demand_test
from l4sim.realtime.sim import (
    analysed_wcrt,
    bench_rt,
    default_duration,
    job_overhead,
    simulate,
    zero_costs,
)
from l4sim.realtime.taskset import TaskSet, build

from .test_analysis import PERIODS, rows

Row = dict[str, Any]


def ct(*pairs: tuple[int, int], **extra: Any) -> TaskSet:
    """Tasks t1..tn with (wcet, period) in ns, deadline-monotonic priorities."""
    return build([{"name": f"t{i + 1}", "wcet": c, "period": t, **extra}
                  for i, (c, t) in enumerate(pairs)], "ns")


def observed(ts: TaskSet, policy: str = "fp", costs: CostModel | None = None, **kw: Any) -> dict[str, tuple[int, int]]:
    res = simulate(ts, policy, costs=zero_costs() if costs is None else costs, **kw)
    return {t.name: (t.max_response, t.deadline_misses) for t in res.tasks}


CLASSIC = {
    "buttazzo": ct((1, 4), (2, 6), (3, 10)),
    "liu_layland": ct((40, 100), (59, 141)),
    "harmonic_full": ct((50, 100), (100, 200)),
    "rm_miss": ct((2, 5), (4, 7)),
    "arbitrary_deadline": build([{"name": "a", "wcet": 26, "period": 70},
                                 {"name": "b", "wcet": 62, "period": 100, "deadline": 120}], "ns"),
    "docs_example": build([{"name": "audio", "period": 5, "wcet": 1.25},
                           {"name": "video", "period": 40, "wcet": 10, "deadline": 30},
                           {"name": "log", "period": 100, "wcet": 7}], "ms"),
}


@pytest.mark.parametrize("name", sorted(CLASSIC))
def test_observed_worst_response_equals_the_analysis(name: str) -> None:
    """Synchronous release, every job its WCET, free kernel operations: the largest response is the FP wcrt."""
    ts = CLASSIC[name]
    seen = observed(ts)
    for r in analyze_fp(ts).tasks:
        assert seen[r.name][0] == r.wcrt, r.name


def test_misses_match_the_analysis_verdict() -> None:
    """RM's (2,5),(4,7): t2 misses (R = 8 > 7) in the simulation as in the analysis; t1 never does."""
    seen = observed(CLASSIC["rm_miss"])
    assert seen["t1"][1] == 0 and seen["t2"][1] >= 1


def test_kernel_costs_stay_within_the_analysis_with_per_job_overhead() -> None:
    """With the default costs the responses lie between the plain wcrt and the wcrt with 660 ns per job added."""
    ts = build([{"name": n, "period": p, "wcet": c} for n, p, c in
                (("a", 7, 1), ("b", 11, 1.5), ("c", 13, 2), ("d", 17, 2), ("e", 19, 1), ("f", 23, 3))], "ms")
    seen = observed(ts, costs=CostModel(), duration=2_000_000_000)
    plain, bound = analysed_wcrt(ts, zero_costs()), analysed_wcrt(ts)
    assert job_overhead(CostModel()) == 660
    for name, (resp, misses) in seen.items():
        lo, hi = plain[name], bound[name]
        assert lo is not None and hi is not None and lo <= resp <= hi and misses == 0, name
    # f's plain wcrt (13 ms) ends exactly at a release of c: a few ns of kernel time cost 3 ms
    assert seen["f"][0] > plain["f"] + 2_900_000


@st.composite
def light_rows(draw: st.DrawFn, *, jitter: bool) -> list[Row]:
    """Small random sets that are mostly FP-schedulable: periods 20..120 ns, wcet <= T/(n+1)."""
    n = draw(st.integers(1, 4))
    order = draw(st.permutations(range(1, n + 1)))
    out = []
    for i in range(n):
        t = 10 * draw(st.sampled_from(PERIODS))
        c = draw(st.integers(1, max(1, t // (n + 1))))
        row: Row = {"name": f"t{i}", "period": t, "wcet": c, "deadline": draw(st.integers(c, 2 * t)),
                    "priority": order[i]}
        if jitter:
            row["jitter"] = draw(st.integers(0, t // 2))
            row["offset"] = draw(st.integers(0, t))
        out.append(row)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(light_rows(jitter=True), st.integers(0, 3))
def test_observed_never_exceeds_the_analysis(rs: list[Row], seed: int) -> None:
    """Random FP-schedulable sets with jitter and offsets: no observed response exceeds the wcrt, no miss."""
    ts = build(rs, "ns")
    res = analyze_fp(ts)
    if not res.schedulable:
        return
    seen = observed(ts, seed=seed, duration=4 * default_duration(ts))
    for r in res.tasks:
        assert r.wcrt is not None
        assert seen[r.name][0] <= r.wcrt and seen[r.name][1] == 0, r.name


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(light_rows(jitter=True), st.integers(0, 3))
def test_with_kernel_costs_observed_never_exceeds_the_inflated_analysis(rs: list[Row], seed: int) -> None:
    """Random sets in us, default kernel costs: no response exceeds the wcrt with the per-job overhead added."""
    ts = build(rs, "us")
    bound = analysed_wcrt(ts)
    if any(w is None or w > ts.task(n).deadline for n, w in bound.items()):
        return
    seen = observed(ts, costs=CostModel(), seed=seed, duration=4 * default_duration(ts))
    for name, (resp, misses) in seen.items():
        w = bound[name]
        assert w is not None and resp <= w and misses == 0, name


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(light_rows(jitter=False))
def test_observed_equals_the_analysis_for_random_synchronous_sets(rs: list[Row]) -> None:
    """Random FP-schedulable sets, synchronous release, WCET jobs, free kernel: largest response == wcrt."""
    ts = build(rs, "ns")
    res = analyze_fp(ts)
    if not res.schedulable:
        return
    seen = observed(ts)
    assert {r.name: r.wcrt for r in res.tasks} == {n: v[0] for n, v in seen.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows(prios=False, max_n=4))
def test_edf_meets_every_deadline_of_an_admitted_set(rs: list[Row]) -> None:
    """Sets the EDF demand test admits run under EDF without a deadline miss."""
    ts = build(rs, "ns")
    if not edf_demand_test(ts)[0]:
        return
    assert all(m == 0 for _, m in observed(ts, "edf").values())


def test_edf_schedules_what_rm_cannot() -> None:
    """(3,6),(4,8) at U = 1: RM misses, EDF meets every deadline."""
    ts = ct((3, 6), (4, 8))
    assert any(m for _, m in observed(ts, "fp").values())
    assert all(m == 0 for _, m in observed(ts, "edf").values())


def test_edf_misses_for_a_refused_set() -> None:
    """Two (2,10) tasks with D = 3 fail the demand test, and one of them misses under EDF."""
    ts = ct((2, 10), (2, 10), deadline=3)
    assert not edf_demand_test(ts)[0]
    assert sum(m for _, m in observed(ts, "edf").values()) > 0


def test_unfinished_jobs_past_their_deadline_count_as_misses() -> None:
    """Overload (U = 1.5): jobs still unfinished at the end whose deadline passed are counted as misses."""
    ts = ct((3, 4), (3, 4))
    res = simulate(ts, "fp", 40, costs=zero_costs())
    low = res.tasks[1]
    assert low.deadline_misses >= 10 - low.jobs


def test_runs_are_deterministic() -> None:
    """Two runs with jitter and the same seed give identical traces."""
    ts = build([{"name": "a", "period": 5, "wcet": 1, "jitter": 1},
                {"name": "b", "period": 7, "wcet": 2, "jitter": 2}], "ms")
    one = simulate(ts, "edf", 200_000_000, trace=True, seed=3)
    two = simulate(ts, "edf", 200_000_000, trace=True, seed=3)
    assert one.tracer is not None and two.tracer is not None
    assert one.tracer.records == two.tracer.records
    assert [t.max_response for t in one.tasks] == [t.max_response for t in two.tasks]


def test_offsets_delay_the_first_release() -> None:
    """A task with offset 3 ms has its first release at 3 ms."""
    ts = build([{"name": "a", "period": 10, "wcet": 1, "offset": 3}], "ms")
    res = simulate(ts, "fp", 30_000_000, trace=True, costs=zero_costs())
    assert res.tracer is not None
    assert [r[0] for r in res.tracer.by_kind("release")] == [3_000_000, 13_000_000, 23_000_000]


def test_default_duration_is_the_hyperperiod_plus_offsets_and_deadline() -> None:
    """Default: largest offset + hyperperiod + largest deadline."""
    ts = build([{"name": "a", "period": 4, "wcet": 1, "offset": 1},
                {"name": "b", "period": 6, "wcet": 1, "deadline": 5}], "ns")
    assert default_duration(ts) == 1 + 12 + 5


def test_bench_rt_counts_scheduling_events() -> None:
    """The rt benchmark reports events per second for both policies and no misses on its set."""
    r = bench_rt(0.2)
    assert r["tasks"] == 20 and r["fp_sched_events"] > 100 and r["edf_deadline_misses"] == 0
    assert r["fp_deadline_misses"] == 0


# -- the command ------------------------------------------------------------------------------


def _file(tmp_path: Any, obj: Any) -> str:
    p = tmp_path / "set.json"
    p.write_text(json.dumps(obj))
    return str(p)


DOC_SET = {"time_unit": "ms", "tasks": [{"name": "audio", "period": 5, "wcet": 1.25},
                                        {"name": "log", "period": 100, "wcet": 7}]}


def test_cli_json_last_line(tmp_path: Any) -> None:
    """--json ends with the policy, duration and per-task jobs, misses and max response in the file's unit."""
    r = CliRunner().invoke(main, ["rt", "simulate", _file(tmp_path, DOC_SET), "--json", "--ideal",
                                  "--duration", "200"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["policy"] == "fp" and out["duration"] == 200
    assert out["tasks"][0] == {"name": "audio", "jobs": 40, "deadline_misses": 0, "max_response": 1.25}
    assert out["tasks"][1]["max_response"] == 9.5


def test_cli_table_and_exit_status_on_misses(tmp_path: Any) -> None:
    """The table lists every task; a set with misses exits 1."""
    bad = {"time_unit": "ns", "tasks": [{"name": "x", "period": 5, "wcet": 2},
                                        {"name": "y", "period": 7, "wcet": 4}]}
    r = CliRunner().invoke(main, ["rt", "simulate", _file(tmp_path, bad), "--ideal"])
    assert r.exit_code == 1
    assert "x" in r.output and "deadline misses" in r.output


def test_cli_bad_file_and_options(tmp_path: Any) -> None:
    """A missing file, a bad policy and a bad duration are one-line errors with exit 2."""
    runner = CliRunner()
    f = _file(tmp_path, DOC_SET)
    for args in (["rt", "simulate", str(tmp_path / "nope.json")], ["rt", "simulate", f, "--policy", "rr"],
                 ["rt", "simulate", f, "--duration", "soon"], ["rt", "simulate", f, "--gantt", "x.pdf"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("l4sim: "), args


def test_cli_gantt_without_matplotlib_says_how_to_install(tmp_path: Any, monkeypatch: Any) -> None:
    """Without matplotlib --gantt fails with one line naming the [plot] extra."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    r = CliRunner().invoke(main, ["rt", "simulate", _file(tmp_path, DOC_SET), "--gantt", str(tmp_path / "g.png")])
    assert r.exit_code == 2 and "pip install 'l4sim[plot]'" in r.output


def test_cli_gantt_and_trace_files(tmp_path: Any) -> None:
    """--gantt draws an SVG and --trace writes a Perfetto JSON with the deadline-relevant records."""
    pytest.importorskip("matplotlib")
    g, t = tmp_path / "g.svg", tmp_path / "t.json"
    r = CliRunner().invoke(main, ["rt", "simulate", _file(tmp_path, DOC_SET), "--gantt", str(g), "--trace", str(t),
                                  "--duration", "50"])
    assert r.exit_code == 0, r.output
    assert g.read_text().lstrip().startswith("<?xml")
    assert "traceEvents" in json.loads(t.read_text())
