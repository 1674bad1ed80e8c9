"""Real-time task sets: the JSON file format, validated into exact integers.

A task-set file looks like::

    {"time_unit": "ms",
     "tasks": [{"name": "audio", "period": 5, "wcet": 1.25},
               {"name": "video", "period": 40, "wcet": 10, "deadline": 30,
                "jitter": 2, "blocking": 0.5,
                "optional": {"distribution": {"uniform": [0, 8]}, "quality": 0.9}}]}

Every time is a JSON number in ``time_unit`` (``ms``, ``us`` or ``ns``); it
may be fractional.  Numbers are read from their decimal text with
:class:`fractions.Fraction`, never through a binary float, and converted
exactly to integer nanoseconds: a time that is not a whole number of
nanoseconds (``0.0000001 ms``) is an error, not a rounding.  Everything
after parsing is integer arithmetic on nanoseconds.  A time must be at most
:data:`MAX_TIME_NS` (10**18 ns, about 31.7 years); ``NaN``, ``Infinity`` and
numbers beyond that range (``1e400``) are refused with the task and the field
named, before any analysis or simulation sees them.

Priorities follow L4: 1..254, higher runs first.  Either every task gives
one or none does; without them the tasks get deadline-monotonic priorities
``n..1`` (shortest relative deadline highest, ties by order in the file).

Errors are :class:`TaskSetError` with a message of the form
``problem; fix`` that names the task and the field.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

#: nanoseconds per time unit
TIME_UNITS: dict[str, int] = {"ms": 1_000_000, "us": 1_000, "ns": 1}
#: L4 thread priorities usable by tasks
PRIO_MIN, PRIO_MAX = 1, 254
TASK_FIELDS = ("name", "period", "wcet", "deadline", "priority", "jitter", "offset",
               "blocking", "optional")
OPTIONAL_FIELDS = ("wcet", "distribution", "quality")
#: the largest time (ns) a task set may give: 10**18 ns, about 31.7 years.  Every time, and
#: the sums of a few of them that the analysis and the simulation form (offset + period +
#: deadline, a budget plus kernel costs), stay inside the 64-bit words in which the kernel
#: carries times; larger values are typing mistakes, not task sets.
MAX_TIME_NS = 10**18


class TaskSetError(ValueError):
    """A task set that cannot be analysed; the message says what and how to fix it."""


# -- optional (QAS) parts -------------------------------------------------------------------


@dataclass(frozen=True)
class Discrete:
    """Execution times ``points[k][0]`` ns with probability ``points[k][1]`` (sorted, summing to 1)."""

    points: tuple[tuple[int, Fraction], ...]

    @property
    def max(self) -> int:
        return self.points[-1][0]

    def cdf(self, x: int) -> Fraction:
        """P(execution time <= x)."""
        return sum((p for t, p in self.points if t <= x), Fraction(0))

    def quantile(self, q: Fraction) -> int:
        """The smallest time x (ns) with P(X <= x) >= q; 0 for q == 0."""
        if q <= 0:
            return 0
        acc = Fraction(0)
        for t, p in self.points:
            acc += p
            if acc >= q:
                return t
        return self.max  # pragma: no cover - probabilities sum to 1

    def sample(self, rng: random.Random) -> int:
        """One execution time (ns) drawn with ``rng``, with exactly the given probabilities
        (an integer draw over the common denominator, no float rounding)."""
        scale = math.lcm(*(p.denominator for _, p in self.points))
        k = rng.randrange(scale)
        acc = 0
        for t, p in self.points:
            acc += p.numerator * (scale // p.denominator)
            if k < acc:
                return t
        return self.max  # pragma: no cover - probabilities sum to 1


@dataclass(frozen=True)
class Uniform:
    """Execution time uniformly distributed on ``[lo, hi]`` ns."""

    lo: int
    hi: int

    @property
    def max(self) -> int:
        return self.hi

    def cdf(self, x: int) -> Fraction:
        """P(execution time <= x)."""
        if x >= self.hi:
            return Fraction(1)
        if x < self.lo:
            return Fraction(0)
        return Fraction(x - self.lo, self.hi - self.lo)

    def quantile(self, q: Fraction) -> int:
        """The smallest whole-ns x with P(X <= x) >= q; 0 for q == 0."""
        if q <= 0:
            return 0
        return math.ceil(self.lo + q * (self.hi - self.lo))

    def sample(self, rng: random.Random) -> int:
        """One execution time (ns) drawn with ``rng``: a uniform real in [lo, hi] rounded up to whole
        ns, so that ``P(sample <= x) = cdf(x)`` at every whole x."""
        return min(self.hi, math.ceil(self.lo + rng.random() * (self.hi - self.lo)))


Distribution = Discrete | Uniform


@dataclass(frozen=True)
class OptionalPart:
    """The optional part of a QAS task: its execution time distribution and requested quality.

    ``quality`` is the fraction of jobs whose optional part must complete by
    the deadline; ``wcet`` bounds the optional execution time (ns).
    """

    wcet: int
    quality: Fraction
    distribution: Distribution

    def budget(self) -> int:
        """The optional time (ns) to reserve per job: the ``quality``-quantile of the distribution."""
        return self.distribution.quantile(self.quality)

    def guaranteed_quality(self) -> Fraction:
        """P(optional part fits in :meth:`budget`): at least ``quality``."""
        return self.distribution.cdf(self.budget())


# -- tasks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One periodic (or sporadic: ``period`` is the minimum inter-arrival time) task; times in ns.

    ``deadline`` is relative to the arrival; ``jitter`` is the largest delay from
    arrival to release; ``blocking`` the longest time the task can be blocked by
    lower-priority tasks (resource sharing); ``index`` the position in the file.
    """

    name: str
    period: int
    wcet: int
    deadline: int
    priority: int
    jitter: int = 0
    offset: int = 0
    blocking: int = 0
    optional: OptionalPart | None = None
    index: int = 0


@dataclass(frozen=True)
class TaskSet:
    """Tasks in file order, with the unit their file used (for reporting)."""

    time_unit: str
    tasks: tuple[Task, ...]

    @property
    def scale(self) -> int:
        """Nanoseconds per ``time_unit``."""
        return TIME_UNITS[self.time_unit]

    def utilisation(self) -> Fraction:
        """Sum of wcet/period, exactly."""
        return sum((Fraction(t.wcet, t.period) for t in self.tasks), Fraction(0))

    def by_priority(self) -> list[Task]:
        """Highest priority first; equal priorities in file order."""
        return sorted(self.tasks, key=lambda t: (-t.priority, t.index))

    def task(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def to_unit(self, ns: int) -> int | float:
        """``ns`` in the file's unit: an int when whole, else the (decimal) float."""
        return to_unit(ns, self.time_unit)

    def fmt(self, ns: int) -> str:
        """``ns`` in the file's unit as text, without the unit."""
        return fmt_time(ns, self.time_unit)


def to_unit(ns: int, unit: str) -> int | float:
    """``ns`` nanoseconds in ``unit``: an int when whole, else a float (a decimal with <= 6 digits)."""
    v = Fraction(ns, TIME_UNITS[unit])
    return v.numerator if v.denominator == 1 else float(v)


def max_time(unit: str) -> str:
    """:data:`MAX_TIME_NS` in ``unit`` as a JSON number (``1e12`` for ms)."""
    return f"1e{len(str(MAX_TIME_NS // TIME_UNITS[unit])) - 1}"


def fmt_time(ns: int, unit: str) -> str:
    v = to_unit(ns, unit)
    return str(v)


# -- parsing ----------------------------------------------------------------------------------


class _Unusable:
    """A JSON number that is kept as it was written because it has no usable value: ``NaN``,
    ``Infinity``, or a literal too long to convert (an exponent beyond +-1000, an integer of more
    than 1000 digits).  Every field refuses it by name, so the error can say which task and field."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class _Decimal(Fraction):
    """A JSON number with a fraction or exponent: its exact value, and its text for messages."""

    text: str


_FLOAT = re.compile(r"-?\d+(?:\.\d+)?(?:[eE]([-+]?\d+))?")
#: literals beyond these are refused unconverted (converting 1e999999999 exactly would take
#: gigabytes); anything this long is far outside :data:`MAX_TIME_NS` anyway
_MAX_EXPONENT = 1000
_MAX_DIGITS = 1000


def _parse_float(text: str) -> _Decimal | _Unusable:
    m = _FLOAT.fullmatch(text)
    exp = m.group(1) if m is not None else None
    if (m is None or len(text) > _MAX_DIGITS
            or (exp is not None and (len(exp) > 6 or abs(int(exp)) > _MAX_EXPONENT))):
        return _Unusable(text)
    v = _Decimal(text)
    v.text = text
    return v


def _parse_int(text: str) -> int | _Unusable:
    return _Unusable(text) if len(text) > _MAX_DIGITS else int(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise TaskSetError(f"key {k!r} appears twice in one object; keep only one")
        out[k] = v
    return out


def loads(text: str) -> TaskSet:
    """Parse and validate the JSON text of a task-set file."""
    try:
        obj = json.loads(text, parse_float=_parse_float, parse_int=_parse_int,
                         parse_constant=_Unusable, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise TaskSetError(f"not valid JSON (line {e.lineno} column {e.colno}: {e.msg}); "
                           "fix the syntax") from None
    return from_dict(obj)


def load(path: str | Path) -> TaskSet:
    """Read, parse and validate a task-set file (:class:`TaskSetError` also for I/O problems)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskSetError("no such file; give the path of a task-set JSON file") from None
    except IsADirectoryError:
        raise TaskSetError("is a directory; give the path of a task-set JSON file") from None
    except UnicodeDecodeError:
        raise TaskSetError("not UTF-8 text; save the task set as a UTF-8 JSON file") from None
    except OSError as e:
        raise TaskSetError(f"cannot read it ({e.strerror}); check the path and permissions") from None
    return loads(text)


def build(tasks: Iterable[Mapping[str, Any]], time_unit: str = "ns") -> TaskSet:
    """A validated task set from task dicts in the file format (for programs and tests).

    Times may be ints, :class:`~fractions.Fraction`, floats (taken by their
    shortest decimal text) or decimal strings (``"1.25"``).
    """
    return from_dict({"time_unit": time_unit, "tasks": [_exact(dict(t)) for t in tasks]})


def _exact(v: Any, key: str = "") -> Any:
    """Floats and numeric strings (except names) as Fractions, recursively."""
    if isinstance(v, dict):
        return {k: _exact(x, k) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_exact(x) for x in v]
    if isinstance(v, float) and math.isfinite(v):
        return Fraction(repr(v))
    if isinstance(v, str) and key != "name":
        try:
            return Fraction(v)
        except (ValueError, ZeroDivisionError):
            return v
    return v


def _number(v: Any) -> Fraction | None:
    """The exact value of a decoded JSON number (int / Fraction / finite float), or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | Fraction):
        return Fraction(v)
    if isinstance(v, float) and math.isfinite(v):
        return Fraction(repr(v))
    return None


def _show(v: Fraction) -> str:
    """A Fraction as the decimal text it came from (``p/q`` when it is no finite decimal)."""
    if v.denominator == 1:
        return str(v.numerator)
    for k in range(1, 40):
        if 10**k % v.denominator == 0:
            digits = str(abs(v.numerator) * (10**k // v.denominator)).rjust(k + 1, "0")
            sign = "-" if v < 0 else ""
            return f"{sign}{digits[:-k]}.{digits[-k:]}"
    return f"{v.numerator}/{v.denominator}"


def _raw(v: Any) -> str:
    """A decoded JSON value as the user wrote it (Fractions as decimals), shortened when long."""
    if isinstance(v, _Decimal | _Unusable):
        text = v.text
    elif isinstance(v, Fraction):
        text = _show(v)
    else:
        text = json.dumps(v, default=str)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


class _Ctx:
    """Names the task in error messages."""

    def __init__(self, unit: str, scale: int, who: str) -> None:
        self.unit, self.scale, self.who = unit, scale, who

    def err(self, msg: str) -> TaskSetError:
        return TaskSetError(f"{self.who}: {msg}")

    def time(self, obj: Mapping[str, Any], key: str, what: str, *, positive: bool,
             label: str | None = None) -> int | None:
        """Field ``key`` as whole ns (None when absent); must be > 0 (positive) or >= 0."""
        if key not in obj:
            return None
        return self.time_value(obj[key], label or key, what, positive=positive)

    def accepted(self, what: str, positive: bool) -> str:
        """What a time field accepts, for the fix half of a message."""
        low = "> 0" if positive else ">= 0 (0 when there is none)"
        return f"give {what} as a number of {self.unit}, {low} and at most {max_time(self.unit)}"

    def time_value(self, raw: Any, label: str, what: str, *, positive: bool) -> int:
        if isinstance(raw, _Unusable) or (isinstance(raw, float) and not math.isfinite(raw)):
            finite = isinstance(raw, float) or raw.text.lstrip("-") in ("NaN", "Infinity")
            problem = "is not a finite number" if finite else "is out of range"
            raise self.err(f"{label} {_raw(raw)} {problem}; {self.accepted(what, positive)}")
        v = _number(raw)
        if v is None:
            raise self.err(f"{label} {_raw(raw)} is not a number; {self.accepted(what, positive)}")
        if positive and v <= 0:
            raise self.err(f"{label} {_raw(raw)} {self.unit} must be > 0; {self.accepted(what, positive)}")
        if v < 0:
            raise self.err(f"{label} {_raw(raw)} {self.unit} must be >= 0; {self.accepted(what, positive)}")
        ns = v * self.scale
        if ns > MAX_TIME_NS:
            raise self.err(f"{label} {_raw(raw)} {self.unit} is too large; {self.accepted(what, positive)}")
        if ns.denominator != 1:
            raise self.err(f"{label} {_raw(raw)} {self.unit} is not a whole number of nanoseconds; "
                           f"round it to {_show(Fraction(1, self.scale))} {self.unit}")
        return ns.numerator


def from_dict(obj: Any) -> TaskSet:
    """Validate a decoded task-set object (numbers as int / Fraction) into a :class:`TaskSet`."""
    if not isinstance(obj, dict):
        raise TaskSetError('the file is not a JSON object; write {"time_unit": "ms", "tasks": [...]}')
    unknown = sorted(set(obj) - {"time_unit", "tasks"})
    if unknown:
        raise TaskSetError(f"unknown top-level field {unknown[0]!r}; "
                           "only \"time_unit\" and \"tasks\" are allowed")
    if "time_unit" not in obj:
        raise TaskSetError('missing "time_unit"; add "time_unit": "ms" (or "us", "ns")')
    unit = obj["time_unit"]
    if not isinstance(unit, str) or unit not in TIME_UNITS:
        raise TaskSetError(f"time_unit {_raw(unit)} is not a unit; "
                           'use "ms", "us" or "ns"')
    raw_tasks = obj.get("tasks")
    if not isinstance(raw_tasks, list):
        raise TaskSetError('missing "tasks" list; add "tasks": [{"name": ..., "period": ..., '
                           '"wcet": ...}, ...]')
    if not raw_tasks:
        raise TaskSetError('"tasks" is empty; list at least one task')
    scale = TIME_UNITS[unit]
    parsed: list[dict[str, Any]] = []
    names: dict[str, int] = {}
    for i, raw in enumerate(raw_tasks):
        parsed.append(_parse_task(raw, i, unit, scale, names))
    given = [p["priority"] is not None for p in parsed]
    if any(given) and not all(given):
        missing = next(p["name"] for p in parsed if p["priority"] is None)
        raise TaskSetError(f"task {missing!r}: no priority while other tasks have one; "
                           "give every task a priority, or none for deadline-monotonic order")
    if not any(given):
        if len(parsed) > PRIO_MAX:
            raise TaskSetError(f"{len(parsed)} tasks but L4 has only {PRIO_MAX} priorities; "
                               "split the task set")
        order = sorted(range(len(parsed)), key=lambda k: (parsed[k]["deadline"], k))
        for rank, k in enumerate(order):
            parsed[k]["priority"] = len(parsed) - rank
    return TaskSet(unit, tuple(Task(**p) for p in parsed))


def _parse_task(raw: Any, i: int, unit: str, scale: int, names: dict[str, int]) -> dict[str, Any]:
    ctx = _Ctx(unit, scale, f"task #{i + 1}")
    if not isinstance(raw, dict):
        raise ctx.err('is not an object; write {"name": ..., "period": ..., "wcet": ...}')
    name = raw.get("name")
    if name is None:
        raise ctx.err('missing "name"; give each task a unique "name"')
    if not isinstance(name, str) or not name.strip():
        raise ctx.err(f"name {_raw(name)} is not a non-empty string; "
                      "give each task a unique name")
    if name in names:
        raise ctx.err(f"name {name!r} is already used by task #{names[name] + 1}; "
                      "give each task a unique name")
    names[name] = i
    ctx.who = f"task {name!r}"
    unknown = sorted(set(raw) - set(TASK_FIELDS))
    if unknown:
        raise ctx.err(f"unknown field {unknown[0]!r}; the fields are {', '.join(TASK_FIELDS)}")
    for key, what in (("period", "the period"), ("wcet", "the worst-case execution time")):
        if key not in raw:
            raise ctx.err(f'missing "{key}"; give {what} in {unit}')
    period = ctx.time(raw, "period", "the period (minimum inter-arrival time)", positive=True)
    wcet = ctx.time(raw, "wcet", "the worst-case execution time", positive=True)
    deadline = ctx.time(raw, "deadline", "the relative deadline (default: the period)",
                        positive=True)
    jitter = ctx.time(raw, "jitter", "the release jitter", positive=False) or 0
    offset = ctx.time(raw, "offset", "the release offset", positive=False) or 0
    blocking = ctx.time(raw, "blocking", "the blocking time", positive=False) or 0
    prio = raw.get("priority")
    if prio is not None and (isinstance(prio, bool) or not isinstance(prio, int)
                             or not PRIO_MIN <= prio <= PRIO_MAX):
        raise ctx.err(f"priority {_raw(prio)} is not an integer in "
                      f"{PRIO_MIN}..{PRIO_MAX}; use {PRIO_MIN}..{PRIO_MAX} (higher runs first)")
    optional = _parse_optional(raw["optional"], ctx) if "optional" in raw else None
    assert period is not None and wcet is not None
    return {"name": name, "period": period, "wcet": wcet,
            "deadline": period if deadline is None else deadline, "priority": prio,
            "jitter": jitter, "offset": offset, "blocking": blocking, "optional": optional,
            "index": i}


def _parse_optional(raw: Any, ctx: _Ctx) -> OptionalPart:
    hint = ('write "optional": {"distribution": {"uniform": [min, max]} or '
            '{"discrete": [[time, probability], ...]}, "quality": 0.9}')
    if not isinstance(raw, dict):
        raise ctx.err(f"optional is not an object; {hint}")
    unknown = sorted(set(raw) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ctx.err(f"unknown field optional.{unknown[0]}; the fields are "
                      f"{', '.join(OPTIONAL_FIELDS)}")
    if "quality" not in raw:
        raise ctx.err('missing optional.quality; give the fraction of jobs (0..1) whose '
                      "optional part must complete")
    q = _number(raw["quality"])
    if q is None or not 0 <= q <= 1:
        raise ctx.err(f"optional.quality {_raw(raw['quality'])} is not a "
                      "number in 0..1; give the fraction of jobs, e.g. 0.9")
    wcet = ctx.time(raw, "wcet", "the optional part's worst-case execution time",
                    positive=False, label="optional.wcet")
    dist: Distribution
    if "distribution" in raw:
        dist = _parse_distribution(raw["distribution"], ctx, hint)
        if wcet is not None and dist.max > wcet:
            raise ctx.err(f"optional.distribution reaches {fmt_time(dist.max, ctx.unit)} "
                          f"{ctx.unit}, beyond optional.wcet {fmt_time(wcet, ctx.unit)}; "
                          "raise optional.wcet or drop it")
        if wcet is None:
            wcet = dist.max
    elif wcet is not None:
        dist = Discrete(((wcet, Fraction(1)),))
    else:
        raise ctx.err(f"optional needs a distribution or a wcet; {hint}")
    return OptionalPart(wcet=wcet, quality=q, distribution=dist)


def _parse_distribution(raw: Any, ctx: _Ctx, hint: str) -> Distribution:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("uniform", "discrete"):
        raise ctx.err(f"optional.distribution must have exactly one of uniform, discrete; {hint}")
    kind, val = next(iter(raw.items()))
    what = "an optional execution time"
    if kind == "uniform":
        if not isinstance(val, list) or len(val) != 2:
            raise ctx.err("optional.distribution.uniform is not [min, max]; "
                          "write e.g. {\"uniform\": [1, 4]}")
        lo = ctx.time_value(val[0], "optional.distribution.uniform min", what, positive=False)
        hi = ctx.time_value(val[1], "optional.distribution.uniform max", what, positive=False)
        if lo > hi:
            raise ctx.err("optional.distribution.uniform has min > max; write [min, max]")
        if lo == hi:
            return Discrete(((lo, Fraction(1)),))
        return Uniform(lo, hi)
    if not isinstance(val, list) or not val:
        raise ctx.err("optional.distribution.discrete is not a non-empty list of "
                      "[time, probability]; write e.g. {\"discrete\": [[1, 0.5], [3, 0.5]]}")
    acc: dict[int, Fraction] = {}
    for pair in val:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ctx.err(f"optional.distribution.discrete entry {_raw(pair)} "
                          "is not [time, probability]; write e.g. [1.5, 0.25]")
        t = ctx.time_value(pair[0], "optional.distribution.discrete time", what, positive=False)
        p = _number(pair[1])
        if p is None or p <= 0:
            raise ctx.err(f"optional.distribution.discrete probability "
                          f"{_raw(pair[1])} is not a number > 0; "
                          "give each time's probability (or weight)")
        acc[t] = acc.get(t, Fraction(0)) + p
    total = sum(acc.values(), Fraction(0))
    return Discrete(tuple((t, p / total) for t, p in sorted(acc.items())))
