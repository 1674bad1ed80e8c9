"""Task-set files: parsing into exact integer nanoseconds, priorities and validation errors."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from l4sim.realtime.taskset import (
    MAX_TIME_NS,
    Discrete,
    TaskSet,
    TaskSetError,
    Uniform,
    build,
    load,
    loads,
    to_unit,
)


def parse(tasks: list[dict[str, Any]], unit: str = "ms") -> TaskSet:
    """A task set from task dicts, through the JSON text like a file."""
    return loads(json.dumps({"time_unit": unit, "tasks": tasks}))


def error(text: str) -> str:
    """The message of the TaskSetError that parsing ``text`` raises."""
    with pytest.raises(TaskSetError) as e:
        loads(text)
    return str(e.value)


def task_error(task: dict[str, Any], unit: str = "ms") -> str:
    """The error of a set holding just ``task``."""
    return error(json.dumps({"time_unit": unit, "tasks": [task]}))


def test_minimal_task_defaults() -> None:
    """A task with name, period and wcet gets deadline = period and no jitter, offset or blocking."""
    ts = parse([{"name": "a", "period": 10, "wcet": 2}])
    (t,) = ts.tasks
    assert (t.period, t.wcet, t.deadline) == (10_000_000, 2_000_000, 10_000_000)
    assert (t.jitter, t.offset, t.blocking, t.optional) == (0, 0, 0, None)


@pytest.mark.parametrize(("unit", "ns"), [("ms", 1_000_000), ("us", 1_000), ("ns", 1)])
def test_time_units_scale_to_nanoseconds(unit: str, ns: int) -> None:
    """Each time unit converts to its number of nanoseconds."""
    ts = parse([{"name": "a", "period": 3, "wcet": 1}], unit)
    assert ts.tasks[0].period == 3 * ns and ts.scale == ns


def test_fractional_times_are_exact() -> None:
    """1.25 ms and 0.1 ms become exactly 1 250 000 ns and 100 000 ns (no binary float rounding)."""
    ts = loads('{"time_unit": "ms", "tasks": [{"name": "a", "period": 0.3, "wcet": 0.1}, '
               '{"name": "b", "period": 5, "wcet": 1.25, "jitter": 0.000001}]}')
    assert ts.tasks[0].period == 300_000 and ts.tasks[0].wcet == 100_000
    assert ts.tasks[1].wcet == 1_250_000 and ts.tasks[1].jitter == 1


def test_exponent_notation_is_exact() -> None:
    """A number written as 1.5e-3 ms is 1500 ns."""
    ts = loads('{"time_unit": "ms", "tasks": [{"name": "a", "period": 1, "wcet": 1.5e-3}]}')
    assert ts.tasks[0].wcet == 1500


def test_time_not_whole_nanoseconds_is_refused() -> None:
    """0.0000001 ms is a tenth of a nanosecond: an error that says how to round."""
    msg = error('{"time_unit": "ms", "tasks": [{"name": "a", "period": 1, "wcet": 0.0000001}]}')
    assert "task 'a'" in msg and "wcet" in msg and "not a whole number of nanoseconds" in msg
    assert "0.000001 ms" in msg


def test_deadline_monotonic_default_priorities() -> None:
    """Without priorities the shortest relative deadline gets the highest priority."""
    ts = parse([{"name": "slow", "period": 20, "wcet": 1},
                {"name": "fast", "period": 5, "wcet": 1},
                {"name": "mid", "period": 30, "wcet": 1, "deadline": 10}])
    prio = {t.name: t.priority for t in ts.tasks}
    assert prio == {"fast": 3, "mid": 2, "slow": 1}
    assert [t.name for t in ts.by_priority()] == ["fast", "mid", "slow"]


def test_equal_deadlines_are_ordered_by_file_position() -> None:
    """Tasks with equal deadlines get distinct priorities, the earlier in the file higher."""
    ts = parse([{"name": "x", "period": 10, "wcet": 1},
                {"name": "y", "period": 10, "wcet": 1},
                {"name": "z", "period": 10, "wcet": 1}])
    assert [t.priority for t in ts.tasks] == [3, 2, 1]


def test_explicit_priorities_are_kept() -> None:
    """Given priorities are used as they are, even against deadline order."""
    ts = parse([{"name": "a", "period": 5, "wcet": 1, "priority": 10},
                {"name": "b", "period": 50, "wcet": 1, "priority": 200}])
    assert [t.priority for t in ts.tasks] == [10, 200]
    assert ts.by_priority()[0].name == "b"


def test_wcet_above_deadline_is_accepted() -> None:
    """wcet > deadline parses (the analysis then finds the task unschedulable)."""
    ts = parse([{"name": "a", "period": 10, "wcet": 8, "deadline": 5}])
    assert ts.tasks[0].wcet > ts.tasks[0].deadline


def test_deadline_beyond_period_is_accepted() -> None:
    """Arbitrary deadlines (D > T) parse."""
    ts = parse([{"name": "a", "period": 10, "wcet": 8, "deadline": 25}])
    assert ts.tasks[0].deadline == 25_000_000


def test_to_unit_is_int_when_whole_else_float() -> None:
    """Times convert back to the file's unit as ints when whole, else as decimal floats."""
    assert to_unit(2_000_000, "ms") == 2 and isinstance(to_unit(2_000_000, "ms"), int)
    assert to_unit(1_250_000, "ms") == 1.25
    assert to_unit(1, "ms") == 0.000001


def test_build_accepts_python_values() -> None:
    """build() takes ints, Fractions, floats and decimal strings in the given unit."""
    ts = build([{"name": "a", "period": Fraction(5, 2), "wcet": "0.5", "jitter": 0.25}], "us")
    t = ts.tasks[0]
    assert (t.period, t.wcet, t.jitter) == (2500, 500, 250)


def test_load_reads_a_file(tmp_path: Path) -> None:
    """load() parses a file on disk."""
    p = tmp_path / "set.json"
    p.write_text('{"time_unit": "us", "tasks": [{"name": "a", "period": 7, "wcet": 2}]}')
    assert load(p).tasks[0].period == 7000


def test_load_missing_file_is_a_taskset_error(tmp_path: Path) -> None:
    """A path that does not exist raises TaskSetError, not OSError."""
    with pytest.raises(TaskSetError, match="no such file"):
        load(tmp_path / "nope.json")


# -- errors ------------------------------------------------------------------------------------

T = {"name": "a", "period": 10, "wcet": 1}


@pytest.mark.parametrize(("text", "needles"), [
    ("{", ["not valid JSON", "line 1"]),
    ("[]", ["not a JSON object"]),
    ('{"tasks": []}', ['missing "time_unit"']),
    ('{"time_unit": "s", "tasks": []}', ['time_unit "s"', '"ms", "us" or "ns"']),
    ('{"time_unit": "ms"}', ['missing "tasks"']),
    ('{"time_unit": "ms", "tasks": []}', ["empty"]),
    ('{"time_unit": "ms", "tasks": [], "extra": 1}', ["unknown top-level field 'extra'"]),
    ('{"time_unit": "ms", "time_unit": "us", "tasks": []}', ["'time_unit' appears twice"]),
    ('{"time_unit": "ms", "tasks": [{"name": "a", "period": NaN, "wcet": 1}]}', ["NaN"]),
    ('{"time_unit": "ms", "tasks": [3]}', ["task #1", "not an object"]),
])
def test_file_level_errors(text: str, needles: list[str]) -> None:
    """Malformed files give one message naming the problem and the fix."""
    msg = error(text)
    for n in needles:
        assert n in msg, msg
    assert ";" in msg and "\n" not in msg


@pytest.mark.parametrize(("task", "needles"), [
    ({"period": 10, "wcet": 1}, ["task #1", 'missing "name"']),
    ({"name": "", "period": 10, "wcet": 1}, ["task #1", "non-empty string"]),
    ({"name": "a", "wcet": 1}, ["task 'a'", 'missing "period"']),
    ({"name": "a", "period": 10}, ["task 'a'", 'missing "wcet"']),
    ({"name": "a", "period": 0, "wcet": 1}, ["task 'a'", "period 0 ms must be > 0"]),
    ({"name": "a", "period": -2.5, "wcet": 1}, ["period -2.5 ms must be > 0"]),
    ({"name": "a", "period": 10, "wcet": 0}, ["wcet 0 ms must be > 0"]),
    ({"name": "a", "period": 10, "wcet": 1, "deadline": 0}, ["deadline 0 ms must be > 0"]),
    ({"name": "a", "period": 10, "wcet": 1, "jitter": -1}, ["jitter -1 ms must be >= 0"]),
    ({"name": "a", "period": 10, "wcet": 1, "blocking": -1}, ["blocking -1 ms must be >= 0"]),
    ({"name": "a", "period": 10, "wcet": 1, "offset": -1}, ["offset -1 ms must be >= 0"]),
    ({"name": "a", "period": "10", "wcet": 1}, ['period "10" is not a number']),
    ({"name": "a", "period": True, "wcet": 1}, ["period true is not a number"]),
    ({"name": "a", "period": 10, "wcet": 1, "perod": 3}, ["unknown field 'perod'"]),
    ({"name": "a", "period": 10, "wcet": 1, "priority": 0}, ["priority 0", "1..254"]),
    ({"name": "a", "period": 10, "wcet": 1, "priority": 255}, ["priority 255", "1..254"]),
    ({"name": "a", "period": 10, "wcet": 1, "priority": 2.5}, ["priority 2.5", "1..254"]),
    ({"name": "a", "period": 10, "wcet": 1, "priority": True}, ["priority true", "1..254"]),
])
def test_task_field_errors(task: dict[str, Any], needles: list[str]) -> None:
    """A bad task field gives one message naming the task, the field and the fix."""
    msg = task_error(task)
    for n in needles:
        assert n in msg, msg
    assert ";" in msg


def test_duplicate_names_are_refused() -> None:
    """Two tasks with one name: the error names both positions."""
    msg = error(json.dumps({"time_unit": "ms", "tasks": [T, {**T}]}))
    assert "task #2" in msg and "'a' is already used by task #1" in msg and "unique" in msg


def test_mixed_priorities_are_refused() -> None:
    """Some tasks with a priority and some without is an error naming a task without one."""
    msg = error(json.dumps({"time_unit": "ms",
                            "tasks": [{**T, "priority": 5}, {**T, "name": "b"}]}))
    assert "task 'b'" in msg and "no priority" in msg and "give every task a priority" in msg


# -- optional (QAS) parts -------------------------------------------------------------------


def test_optional_uniform_quantile() -> None:
    """A uniform optional part on [0, 8] ms at quality 0.9 reserves 7.2 ms."""
    ts = parse([{**T, "optional": {"distribution": {"uniform": [0, 8]}, "quality": 0.9}}])
    opt = ts.tasks[0].optional
    assert opt is not None and isinstance(opt.distribution, Uniform)
    assert opt.wcet == 8_000_000 and opt.budget() == 7_200_000
    assert opt.guaranteed_quality() == Fraction(9, 10)


def test_optional_discrete_weights_are_normalised() -> None:
    """Discrete probabilities are normalised; the budget is the smallest time reaching the quality."""
    ts = parse([{**T, "optional": {"distribution": {"discrete": [[3, 2], [1, 1], [2, 1]]},
                                   "quality": 0.5}}])
    opt = ts.tasks[0].optional
    assert opt is not None and isinstance(opt.distribution, Discrete)
    assert [p for _, p in opt.distribution.points] == [Fraction(1, 4)] * 2 + [Fraction(1, 2)]
    assert opt.budget() == 2_000_000 and opt.guaranteed_quality() == Fraction(1, 2)
    assert opt.wcet == 3_000_000


def test_optional_wcet_alone_is_a_point_distribution() -> None:
    """An optional part with only a wcet always needs that wcet (for any quality > 0)."""
    ts = parse([{**T, "optional": {"wcet": 2.5, "quality": 0.1}}])
    opt = ts.tasks[0].optional
    assert opt is not None and opt.budget() == 2_500_000 and opt.guaranteed_quality() == 1


def test_optional_quality_zero_reserves_nothing() -> None:
    """Quality 0 reserves no optional time."""
    ts = parse([{**T, "optional": {"distribution": {"uniform": [1, 2]}, "quality": 0}}])
    opt = ts.tasks[0].optional
    assert opt is not None and opt.budget() == 0


@pytest.mark.parametrize(("optional", "needle"), [
    ({"wcet": 1}, "missing optional.quality"),
    ({"wcet": 1, "quality": 1.5}, "optional.quality 1.5 is not a number in 0..1"),
    ({"quality": 0.5}, "needs a distribution or a wcet"),
    ({"quality": 0.5, "distribution": {"normal": [1, 2]}}, "exactly one of uniform, discrete"),
    ({"quality": 0.5, "distribution": {"uniform": [3, 1]}}, "min > max"),
    ({"quality": 0.5, "distribution": {"uniform": [1]}}, "not [min, max]"),
    ({"quality": 0.5, "distribution": {"discrete": []}}, "non-empty list"),
    ({"quality": 0.5, "distribution": {"discrete": [[1, 0]]}}, "probability 0 is not a number > 0"),
    ({"quality": 0.5, "wcet": 1, "distribution": {"uniform": [0, 2]}}, "beyond optional.wcet"),
    ({"quality": 0.5, "wcet": 1, "budget": 3}, "unknown field optional.budget"),
    ([1, 2], "optional is not an object"),
])
def test_optional_errors(optional: Any, needle: str) -> None:
    """A bad optional part gives one message naming the task and the optional field."""
    msg = task_error({**T, "optional": optional})
    assert needle in msg and "task 'a'" in msg, msg


def test_discrete_samples_follow_the_probabilities() -> None:
    """Discrete.sample draws each time with its probability (an exact integer draw; 20 000 draws within 1.5%)."""
    import random

    d = Discrete(((1, Fraction(1, 2)), (2, Fraction(3, 10)), (4, Fraction(1, 5))))
    rng = random.Random(1)
    draws = [d.sample(rng) for _ in range(20_000)]
    for t, p in d.points:
        assert abs(draws.count(t) / len(draws) - p) < 0.015, t
    assert set(draws) == {1, 2, 4}


def test_uniform_samples_match_the_cdf_at_whole_nanoseconds() -> None:
    """Uniform.sample stays in [lo, hi] and P(sample <= x) is cdf(x), which the QAS reserve relies on."""
    import random

    u = Uniform(100, 900)
    rng = random.Random(2)
    draws = [u.sample(rng) for _ in range(20_000)]
    assert min(draws) >= 100 and max(draws) <= 900
    for q in (Fraction(1, 10), Fraction(1, 2), Fraction(9, 10)):
        r = u.quantile(q)
        assert abs(sum(x <= r for x in draws) / len(draws) - u.cdf(r)) < 0.015


# -- absurd numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(("field", "literal", "problem"), [
    ("period", "NaN", "period NaN is not a finite number"),
    ("period", "Infinity", "period Infinity is not a finite number"),
    ("wcet", "-Infinity", "wcet -Infinity is not a finite number"),
    ("period", "1e400", "period 1e400 ms is too large"),
    ("deadline", "1e30", "deadline 1e30 ms is too large"),
    ("offset", "1000000000001", "offset 1000000000001 ms is too large"),
    ("jitter", "1e99999999999", "jitter 1e99999999999 is out of range"),
    ("blocking", "1" + "0" * 2000, "blocking 10000000000000000000...(2001 characters) is out of range"),
    ("period", "0", "period 0 ms must be > 0"),
    ("wcet", "-1e5", "wcet -1e5 ms must be > 0"),
])
def test_absurd_numbers_are_refused_naming_task_field_value_and_range(field: str, literal: str,
                                                                      problem: str) -> None:
    """NaN, infinities, values beyond 10^18 ns and literals too long to convert are refused when the
    file is read, in one line naming the task, the field, the value as written and what is accepted."""
    task = {"name": "a", "period": 10, "wcet": 1}
    text = json.dumps({"time_unit": "ms", "tasks": [task]}).replace(
        f'"{field}": {task[field]}' if field in task else '"wcet": 1',
        f'"{field}": {literal}' if field in task else f'"wcet": 1, "{field}": {literal}')
    msg = error(text)
    assert msg.startswith(f"task 'a': {problem}; give "), msg
    assert "as a number of ms" in msg and "at most 1e12" in msg and "\n" not in msg


def test_the_largest_time_is_accepted_and_one_more_nanosecond_is_not() -> None:
    """10^18 ns is the largest time; in ns one more is refused, with the bound in the file's unit."""
    ts = parse([{"name": "a", "period": 10**18, "wcet": 10**18}], "ns")
    assert ts.tasks[0].period == MAX_TIME_NS == 10**18
    msg = task_error({"name": "a", "period": 10**18 + 1, "wcet": 1}, "ns")
    assert "is too large" in msg and "at most 1e18" in msg
    assert "at most 1e15" in task_error({"name": "a", "period": 1e16, "wcet": 1}, "us")


def test_python_non_finite_floats_are_refused_by_build() -> None:
    """build() refuses float('nan') and float('inf') like the file does."""
    for bad in (float("nan"), float("inf")):
        with pytest.raises(TaskSetError, match=r"wcet .* is not a finite number"):
            build([{"name": "a", "period": 10, "wcet": bad}], "ms")


def test_non_finite_numbers_elsewhere_are_refused_by_name() -> None:
    """NaN as a priority or a quality is named with its field, not a parse error without a place."""
    assert "priority NaN is not an integer" in task_error({**T, "priority": float("nan")})
    msg = error('{"time_unit": "ms", "tasks": [{"name": "a", "period": 10, "wcet": 1, '
                '"optional": {"wcet": 1, "quality": NaN}}]}')
    assert "task 'a': optional.quality NaN is not a number in 0..1" in msg


def test_wcet_above_period_is_accepted() -> None:
    """wcet > period is a valid (overloaded) task: the analysis finds it unschedulable and the
    simulation shows its misses, so the file format does not refuse it."""
    ts = parse([{"name": "a", "period": 10, "wcet": 12}])
    assert ts.tasks[0].wcet > ts.tasks[0].period
