"""Schedulability analysis: FP response times, the EDF demand test, QAS admission, the CLI."""

from __future__ import annotations

import json
import math
from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from l4sim.cli import main
from l4sim.realtime.analysis import (
    admit,
    analyze,
    analyze_edf,
    analyze_fp,
    edf_demand_test,
    format_report,
    fp_response_time,
)
from l4sim.realtime.taskset import TaskSet, build

Row = dict[str, Any]


def ts(*rows: Row, unit: str = "ns") -> TaskSet:
    """A task set from rows; ``(C, T)`` shorthand rows are named t1, t2, ... in order."""
    return build(rows, unit)


def ct(*pairs: tuple[int, int], **extra: Any) -> TaskSet:
    """Tasks t1..tn with (wcet, period), deadline-monotonic priorities, times in ns."""
    return build([{"name": f"t{i + 1}", "wcet": c, "period": t, **extra}
                  for i, (c, t) in enumerate(pairs)], "ns")


def wcrt(s: TaskSet) -> dict[str, int | None]:
    """FP worst-case response times by task name."""
    return {r.name: r.wcrt for r in analyze_fp(s).tasks}


# -- fixed priorities: textbook sets -----------------------------------------------------------


def test_buttazzo_rta_example() -> None:
    """Buttazzo's RTA example (C,T) = (1,4), (2,6), (3,10): response times 1, 3, 10."""
    assert wcrt(ct((1, 4), (2, 6), (3, 10))) == {"t1": 1, "t2": 3, "t3": 10}
    assert analyze_fp(ct((1, 4), (2, 6), (3, 10))).schedulable


def test_rm_miss_that_edf_schedules() -> None:
    """(2,5), (4,7): U = 0.97, RM misses (R2 = 8 > 7) while EDF schedules it."""
    s = ct((2, 5), (4, 7))
    res = analyze_fp(s)
    assert wcrt(s) == {"t1": 2, "t2": 8}
    assert not res.schedulable and "'t2' misses its deadline" in res.reason
    assert analyze_edf(s).schedulable


def test_liu_layland_below_bound_is_schedulable() -> None:
    """(40,100), (59,141): U = 0.818 < 2(sqrt 2 - 1), schedulable with R2 = 99."""
    s = ct((40, 100), (59, 141))
    assert s.utilisation() < 2 * (math.sqrt(2) - 1)
    assert wcrt(s) == {"t1": 40, "t2": 99} and analyze_fp(s).schedulable


def test_liu_layland_just_above_bound_misses() -> None:
    """(41,100), (60,141): U = 0.836 just above the bound, and R2 = 142 > 141."""
    s = ct((41, 100), (60, 141))
    assert 2 * (math.sqrt(2) - 1) < s.utilisation() < Fraction(84, 100)
    assert wcrt(s)["t2"] == 142 and not analyze_fp(s).schedulable


def test_harmonic_set_at_full_utilisation_is_rm_schedulable() -> None:
    """(50,100), (100,200): U = 1 exactly, yet RM meets every deadline (R2 = 200)."""
    s = ct((50, 100), (100, 200))
    assert s.utilisation() == 1
    assert wcrt(s) == {"t1": 50, "t2": 200} and analyze_fp(s).schedulable


def test_arbitrary_deadline_example_worst_job_is_the_fifth() -> None:
    """Tindell, Burns & Wellings' D > T example (26,70), (62,100): R2 = 118, from the 5th job."""
    s = build([{"name": "a", "wcet": 26, "period": 70},
               {"name": "b", "wcet": 62, "period": 100, "deadline": 120}], "ns")
    assert wcrt(s) == {"a": 26, "b": 118}
    assert analyze_fp(s).schedulable
    # the first job alone would say 114: the busy period's later jobs are worse
    assert 62 + math.ceil(114 / 70) * 26 == 114


def test_arbitrary_deadline_just_short_misses() -> None:
    """The same set with D2 = 117 < 118 is unschedulable."""
    s = build([{"name": "a", "wcet": 26, "period": 70},
               {"name": "b", "wcet": 62, "period": 100, "deadline": 117}], "ns")
    assert not analyze_fp(s).schedulable


def test_release_jitter_of_higher_priority_task() -> None:
    """Jitter 2 on (1,4) lets two of its jobs hit (2,10): w = 4, plus own jitter 1 gives R = 5."""
    s = build([{"name": "hi", "wcet": 1, "period": 4, "jitter": 2},
               {"name": "lo", "wcet": 2, "period": 10, "jitter": 1}], "ns")
    assert wcrt(s) == {"hi": 3, "lo": 5}
    assert wcrt(ct((1, 4), (2, 10))) == {"t1": 1, "t2": 3}


def test_blocking_adds_to_the_response_time() -> None:
    """Blocking 2 on Buttazzo's middle task raises its response from 3 to 6 (one more t1 job)."""
    s = build([{"name": "t1", "wcet": 1, "period": 4},
               {"name": "t2", "wcet": 2, "period": 6, "blocking": 2},
               {"name": "t3", "wcet": 3, "period": 10}], "ns")
    assert wcrt(s) == {"t1": 1, "t2": 6, "t3": 10}


def test_blocking_can_break_a_deadline() -> None:
    """Blocking 2 on the top task of (2,5), (1,10) with D1 = 3 makes R1 = 4 > 3."""
    s = build([{"name": "a", "wcet": 2, "period": 5, "deadline": 3, "blocking": 2},
               {"name": "b", "wcet": 1, "period": 10}], "ns")
    res = analyze_fp(s)
    assert res.tasks[0].wcrt == 4 and not res.tasks[0].ok and not res.schedulable


def test_exact_fraction_times() -> None:
    """(1.25 ms, 5 ms) above (2.5 ms, 10 ms): R2 = 3.75 ms exactly, reported as 3.75."""
    s = build([{"name": "a", "wcet": "1.25", "period": 5},
               {"name": "b", "wcet": "2.5", "period": 10}], "ms")
    res = analyze_fp(s)
    assert res.tasks[1].wcrt == 3_750_000
    assert res.to_json(s)["tasks"][1]["wcrt"] == 3.75


def test_deadline_monotonic_order_drives_the_analysis() -> None:
    """A later task with a shorter deadline gets the higher priority and suffers no interference."""
    s = build([{"name": "long", "wcet": 3, "period": 10},
               {"name": "short", "wcet": 2, "period": 20, "deadline": 4}], "ns")
    assert wcrt(s) == {"long": 5, "short": 2}


def test_tie_in_deadlines_goes_to_the_earlier_task() -> None:
    """Equal deadlines: the first task in the file runs first."""
    s = ct((2, 10), (3, 10))
    assert wcrt(s) == {"t1": 2, "t2": 5}


def test_equal_explicit_priorities_interfere_both_ways() -> None:
    """Two tasks given the same priority each count the other as interference."""
    s = build([{"name": "a", "wcet": 2, "period": 10, "priority": 5},
               {"name": "b", "wcet": 3, "period": 10, "priority": 5}], "ns")
    assert wcrt(s) == {"a": 5, "b": 5}


def test_divergence_gives_null() -> None:
    """With higher-priority utilisation above 1 the lower task's response time is None."""
    s = ct((3, 5), (3, 5))
    res = analyze_fp(s)
    assert res.tasks[0].wcrt == 3 and res.tasks[1].wcrt is None
    assert "diverges" in res.tasks[1].note and "1.2" in res.reason
    assert res.to_json(s)["tasks"][1]["wcrt"] is None


def test_full_utilisation_with_jitter_diverges() -> None:
    """U = 1 with jitter never lets the busy period end: None, not a loop."""
    s = build([{"name": "a", "wcet": 1, "period": 2, "jitter": 1},
               {"name": "b", "wcet": 1, "period": 2}], "ns")
    assert wcrt(s)["b"] is None


def test_step_limit_gives_up() -> None:
    """A recurrence needing more than the step limit gives None and says so."""
    s = ct((1, 4), (2, 6), (3, 10))
    r, note = fp_response_time(s, s.tasks[2], limit=2)
    assert r is None and "gave up after 2" in note
    assert fp_response_time(s, s.tasks[2])[0] == 10


def test_wcet_above_deadline_is_unschedulable() -> None:
    """A task whose wcet exceeds its deadline is reported, not refused."""
    s = build([{"name": "a", "wcet": 6, "period": 10, "deadline": 5}], "ns")
    res = analyze_fp(s)
    assert res.tasks[0].wcrt == 6 and not res.schedulable


# -- EDF ---------------------------------------------------------------------------------------


def test_edf_at_full_utilisation_is_schedulable() -> None:
    """(3,6), (4,8): U = 1, RM misses but EDF with D = T meets every deadline."""
    s = ct((3, 6), (4, 8))
    assert s.utilisation() == 1
    assert not analyze_fp(s).schedulable
    assert analyze_edf(s).schedulable


def test_edf_overload_is_refused() -> None:
    """U > 1 is unschedulable under EDF, with U in the reason."""
    ok, reason = edf_demand_test(ct((3, 6), (5, 8)))
    assert not ok and "U = 1.125 > 1" in reason


def test_edf_constrained_deadlines_fail_below_full_utilisation() -> None:
    """Two (2,10) tasks with D = 3: U = 0.4, yet 4 units are due within 3."""
    s = ct((2, 10), (2, 10), deadline=3)
    ok, reason = edf_demand_test(s)
    assert s.utilisation() < 1 and not ok
    assert "interval of 3 ns" in reason and "demand 4 ns" in reason


def test_edf_demand_failure_found_late() -> None:
    """(1,2,D=2) with (3,8,D=3) fails first at t = 3, not at the earliest deadline."""
    s = build([{"name": "a", "wcet": 1, "period": 2},
               {"name": "b", "wcet": 3, "period": 8, "deadline": 3}], "ns")
    ok, reason = edf_demand_test(s)
    assert not ok and "interval of 3 ns" in reason


def test_edf_arbitrary_deadlines() -> None:
    """D > T under EDF: (3,4,D=8), (2,8,D=3) at U = 1 is schedulable, with D1 = 5 not."""
    good = build([{"name": "a", "wcet": 3, "period": 4, "deadline": 8},
                  {"name": "b", "wcet": 2, "period": 8, "deadline": 3}], "ns")
    assert edf_demand_test(good)[0]
    bad = build([{"name": "a", "wcet": 3, "period": 4, "deadline": 4},
                 {"name": "b", "wcet": 2, "period": 8, "deadline": 3}], "ns")
    assert not edf_demand_test(bad)[0]


def test_edf_jitter_larger_than_slack() -> None:
    """Jitter plus wcet beyond the deadline is refused with the task named."""
    s = build([{"name": "a", "wcet": 3, "period": 10, "deadline": 5, "jitter": 3}], "ns")
    ok, reason = edf_demand_test(s)
    assert not ok and "'a'" in reason and "jitter" in reason


def test_edf_blocking_counts() -> None:
    """Blocking 1 on a task due at t = 3 with 3 units of demand breaks the test."""
    rows: list[Row] = [{"name": "a", "wcet": 1, "period": 10, "deadline": 3},
                       {"name": "b", "wcet": 2, "period": 10, "deadline": 3},
                       {"name": "c", "wcet": 1, "period": 10}]
    assert edf_demand_test(build(rows, "ns"))[0]
    rows[0]["blocking"] = 1
    assert not edf_demand_test(build(rows, "ns"))[0]


def test_edf_demand_test_gives_up_at_the_step_limit() -> None:
    """When QPA needs more steps than allowed the verdict is 'undecided', not schedulable."""
    s = build([{"name": "a", "wcet": 3, "period": 4, "deadline": 8},
               {"name": "b", "wcet": 2, "period": 8, "deadline": 3}], "ns")
    ok, reason = edf_demand_test(s, limit=1)
    assert not ok and reason.startswith("undecided: the demand test gave up after 1 steps")


def test_utilisation_just_below_one_is_not_shown_as_one() -> None:
    """A utilisation a hair below 1 is printed with enough digits to tell it from 1."""
    ok, reason = edf_demand_test(ct((999_999, 1_000_000)))
    assert ok and "U = 0.999999 <= 1" in reason


def test_edf_response_times_are_not_computed() -> None:
    """Under EDF wcrt is None and ok is None for every task."""
    res = analyze_edf(ct((1, 4), (2, 6)))
    assert [(r.wcrt, r.ok) for r in res.tasks] == [(None, None), (None, None)]


# -- QAS and admission --------------------------------------------------------------------------


def qas_set(quality: str) -> TaskSet:
    """(2,10) mandatory + optional uniform [0,4] at ``quality``, and a (6,15) task."""
    return build([{"name": "v", "wcet": 2, "period": 10,
                   "optional": {"distribution": {"uniform": [0, 4]}, "quality": quality}},
                  {"name": "w", "wcet": 6, "period": 15}], "ms")


def test_qas_reserves_the_quality_quantile() -> None:
    """Quality 0.5 on uniform [0,4] reserves 2 ms: budget 4 ms, admitted."""
    res = analyze(qas_set("0.5"))
    assert res.qas is not None and res.qas.admitted
    (q,) = res.qas.tasks
    assert (q.optional_budget, q.budget) == (2_000_000, 4_000_000)
    assert q.guaranteed_quality == Fraction(1, 2) and q.wcrt == 4_000_000


def test_qas_refuses_a_reservation_that_does_not_fit() -> None:
    """Quality 1 reserves 4 ms: with v's budget 6 of every 10 ms, w needs 18 ms > 15 ms."""
    res = analyze(qas_set("1"))
    assert res.schedulable and res.qas is not None and not res.qas.admitted
    assert "'w' misses" in res.qas.reason
    ok, reason = admit(qas_set("1"), "fp")
    assert not ok and reason.startswith("QAS not admitted under FP")


def test_qas_under_edf_admits_full_utilisation() -> None:
    """The same quality-1 reservation fits under EDF (U = 0.6 + 0.4 = 1, D = T)."""
    res = analyze(qas_set("1"), "edf")
    assert res.qas is not None and res.qas.admitted


def test_qas_needs_schedulable_mandatory_parts() -> None:
    """When the mandatory parts miss, the optional parts are not admitted either."""
    s = build([{"name": "v", "wcet": 6, "period": 10, "optional": {"wcet": 1, "quality": 0}},
               {"name": "w", "wcet": 5, "period": 10}], "ms")
    res = analyze(s)
    assert not res.schedulable and res.qas is not None and not res.qas.admitted
    assert "mandatory" in res.qas.reason


def test_admit_accepts_and_explains() -> None:
    """admit() gives (True, reason) for a schedulable set and (False, reason) otherwise."""
    ok, reason = admit(ct((1, 4), (2, 6), (3, 10)), "fp")
    assert ok and "schedulable under FP" in reason
    ok, reason = admit(ct((3, 6), (4, 8)), "fp")
    assert not ok and "'t2' misses" in reason
    assert admit(ct((3, 6), (4, 8)), "edf")[0]


def test_report_table_lists_every_task_and_the_verdict() -> None:
    """The text report has a header row, one row per task and a verdict with the reason."""
    s = ct((2, 5), (4, 7))
    lines = format_report(s, analyze(s)).splitlines()
    assert lines[0].split() == ["task", "C/ns", "T/ns", "D/ns", "prio", "wcrt/ns", "ok"]
    assert lines[1].split() == ["t1", "2", "5", "5", "2", "2", "yes"]
    assert lines[2].split() == ["t2", "4", "7", "7", "1", "8", "MISS"]
    assert lines[-1].startswith("NOT schedulable under FP: task 't2' misses")


# -- properties ---------------------------------------------------------------------------------

PERIODS = [2, 3, 4, 6, 8, 12]


@st.composite
def rows(draw: st.DrawFn, *, jitter: bool = False, blocking: bool = False,
         prios: bool = True, max_n: int = 4) -> list[Row]:
    """A small random task set over harmonic-ish periods (hyperperiod <= 24)."""
    n = draw(st.integers(1, max_n))
    order = draw(st.permutations(range(1, n + 1)))
    out = []
    for i in range(n):
        t = draw(st.sampled_from(PERIODS))
        row: Row = {"name": f"t{i}", "period": t, "wcet": draw(st.integers(1, t)),
                    "deadline": draw(st.integers(1, 2 * t))}
        if prios:
            row["priority"] = order[i]
        if jitter:
            row["jitter"] = draw(st.integers(0, t))
        if blocking:
            row["blocking"] = draw(st.integers(0, 3))
        out.append(row)
    return out


def simulate(rs: list[Row], edf: bool) -> tuple[dict[str, int], bool]:
    """Synchronous release over one hyperperiod: worst response per task and whether none missed."""
    hyper = math.lcm(*(r["period"] for r in rs))
    queues: list[deque[list[int]]] = [deque() for _ in rs]
    worst = {r["name"]: 0 for r in rs}
    ok = True
    for now in range(hyper):
        for q, r in zip(queues, rs, strict=True):
            if now % r["period"] == 0:
                q.append([now, r["wcet"]])
        ready = [k for k, q in enumerate(queues) if q]
        if not ready:
            continue
        if edf:
            k = min(ready, key=lambda k: (queues[k][0][0] + rs[k]["deadline"], k))
        else:
            k = max(ready, key=lambda k: rs[k]["priority"])
        job = queues[k][0]
        job[1] -= 1
        if job[1] == 0:
            queues[k].popleft()
            resp = now + 1 - job[0]
            worst[rs[k]["name"]] = max(worst[rs[k]["name"]], resp)
            ok = ok and resp <= rs[k]["deadline"]
    assert not any(queues), "backlog at the hyperperiod with U <= 1"
    return worst, ok


def brute_edf(rs: list[Row]) -> bool:
    """h(t) + B(t) <= t at every integer t up to the hyperperiod plus the largest D - J."""
    if sum(Fraction(r["wcet"], r["period"]) for r in rs) > 1:
        return False
    eff = [(r["deadline"] - r.get("jitter", 0), r["period"], r["wcet"], r.get("blocking", 0))
           for r in rs]
    horizon = math.lcm(*(p for _, p, _, _ in eff)) + max(0, max(d for d, _, _, _ in eff))
    for t in range(horizon + 1):
        h = sum(max(0, (t - d) // p + 1) * c for d, p, c, _ in eff)
        h += max((b for d, _, _, b in eff if d <= t), default=0)
        if h > t:
            return False
    return True


PROPS = settings(max_examples=150, derandomize=True, deadline=None)


@PROPS
@given(rows())
def test_fp_rta_equals_the_simulated_worst_case(rs: list[Row]) -> None:
    """Without jitter or blocking, RTA equals the worst response of the synchronous FP schedule."""
    s = build(rs, "ns")
    assume(s.utilisation() <= 1)
    worst, _ = simulate(rs, edf=False)
    assert wcrt(s) == worst


@PROPS
@given(rows(prios=False))
def test_edf_test_equals_the_simulated_schedule(rs: list[Row]) -> None:
    """Without jitter or blocking, the demand test agrees with simulating synchronous EDF."""
    s = build(rs, "ns")
    assume(s.utilisation() <= 1)
    _, ok = simulate(rs, edf=True)
    assert edf_demand_test(s)[0] == ok


@settings(max_examples=300, derandomize=True, deadline=None)
@given(rows(jitter=True, blocking=True, prios=False, max_n=5))
def test_qpa_agrees_with_checking_every_instant(rs: list[Row]) -> None:
    """With jitter and blocking, QPA's verdict equals checking h(t) + B(t) <= t at every t."""
    assert edf_demand_test(build(rs, "ns"))[0] == brute_edf(rs)


@PROPS
@given(rows(jitter=True, blocking=True), st.data())
def test_fp_wcrt_is_monotone_in_higher_priority_load(rs: list[Row], data: st.DataObject) -> None:
    """Adding a task above everything never lowers any response time (None counts as infinite)."""
    before = wcrt(build(rs, "ns"))
    t = data.draw(st.sampled_from(PERIODS))
    extra: Row = {"name": "new", "period": t, "wcet": data.draw(st.integers(1, t)),
                  "jitter": data.draw(st.integers(0, t)), "priority": len(rs) + 1}
    after = wcrt(build([*rs, extra], "ns"))
    for name, r in before.items():
        r2 = after[name]
        assert r2 is None or (r is not None and r2 >= r), (name, r, r2)


@PROPS
@given(rows(jitter=True))
def test_edf_schedules_whatever_fp_schedules(rs: list[Row]) -> None:
    """If FP meets every deadline under some priority order, the EDF demand test passes."""
    s = build(rs, "ns")
    if analyze_fp(s).schedulable:
        assert edf_demand_test(s)[0]


# -- the command ---------------------------------------------------------------------------------


def run(*args: str) -> Result:
    """Invoke ``l4sim ARGS`` in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(main, list(args))


def write(tmp_path: Path, obj: Any, name: str = "set.json") -> str:
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return str(p)


SET = {"time_unit": "ms", "tasks": [{"name": "audio", "period": 5, "wcet": 1.25},
                                    {"name": "video", "period": 10, "wcet": 2.5}]}


def test_cli_json_shape(tmp_path: Path) -> None:
    """``rt analyze --json`` ends with the policy, the verdict and per-task wcrt in the file's unit."""
    res = run("rt", "analyze", write(tmp_path, SET), "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["policy"] == "fp" and out["schedulable"] is True
    assert [(t["name"], t["wcrt"], t["deadline"]) for t in out["tasks"]] == [
        ("audio", 1.25, 5), ("video", 3.75, 10)]
    assert isinstance(out["tasks"][1]["deadline"], int)


def test_cli_edf_json_has_null_wcrt(tmp_path: Path) -> None:
    """``--policy edf --json``: schedulable, wcrt null."""
    res = run("rt", "analyze", write(tmp_path, SET), "--policy", "edf", "--json")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["policy"] == "edf" and out["schedulable"] is True
    assert all(t["wcrt"] is None for t in out["tasks"])


def test_cli_unschedulable_exits_1_with_the_reason(tmp_path: Path) -> None:
    """An unschedulable set prints the table and the missing task, exit status 1."""
    bad = {"time_unit": "us", "tasks": [{"name": "a", "period": 5, "wcet": 2},
                                        {"name": "b", "period": 7, "wcet": 4}]}
    res = run("rt", "analyze", write(tmp_path, bad))
    assert res.exit_code == 1
    assert "NOT schedulable under FP: task 'b' misses its deadline" in res.stdout
    assert "worst-case response time 8 us > deadline 7 us" in res.stdout


def test_cli_divergent_task_is_unbounded_in_the_table(tmp_path: Path) -> None:
    """A diverging recurrence shows as 'unbounded' and null in JSON."""
    over = {"time_unit": "ns", "tasks": [{"name": "a", "period": 5, "wcet": 3},
                                         {"name": "b", "period": 5, "wcet": 3}]}
    path = write(tmp_path, over)
    assert "unbounded" in run("rt", "analyze", path).stdout
    out = json.loads(run("rt", "analyze", path, "--json").stdout.strip().splitlines()[-1])
    assert out["tasks"][1]["wcrt"] is None and out["schedulable"] is False


def assert_one_line_error(res: Result) -> str:
    """Exit status 2, exactly one ``l4sim:`` line on stderr, no traceback."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("l4sim: ") and "Traceback" not in res.output
    return lines[0]


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json", "not valid JSON"),
    ({"time_unit": "s", "tasks": []}, 'time_unit "s" is not a unit'),
    ({"time_unit": "ms", "tasks": [{"name": "a", "period": 5, "wcet": 1},
                                   {"name": "a", "period": 6, "wcet": 1}]}, "already used"),
    ({"time_unit": "ms", "tasks": [{"name": "a", "period": 5, "wcet": 0}]}, "wcet 0 ms must be > 0"),
])
def test_cli_bad_file_is_one_line(tmp_path: Path, content: Any, needle: str) -> None:
    """A bad file gives ``l4sim: FILE: problem; fix`` and exit status 2."""
    path = write(tmp_path, content)
    line = assert_one_line_error(run("rt", "analyze", path))
    assert line.startswith(f"l4sim: {path}: ") and needle in line and ";" in line


def test_cli_missing_file_is_one_line(tmp_path: Path) -> None:
    """A path that does not exist is a one-line error."""
    line = assert_one_line_error(run("rt", "analyze", str(tmp_path / "nope.json")))
    assert "no such file" in line


def test_cli_unknown_policy_is_one_line(tmp_path: Path) -> None:
    """``--policy rm`` is a one-line error naming the choices."""
    line = assert_one_line_error(run("rt", "analyze", write(tmp_path, SET), "--policy", "rm"))
    assert "'rm'" in line and "fp" in line and "edf" in line
