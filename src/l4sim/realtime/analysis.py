"""Schedulability analysis of a task set on one processor, in exact integers.

* **FP** (fixed priorities, preemptive): response-time analysis with release
  jitter, blocking and arbitrary deadlines (Tindell, Burns & Wellings 1994;
  Lehoczky 1990).  For task *i* and the jobs ``q = 0, 1, ...`` of its level-i
  busy period::

      w(q) = B_i + (q+1) C_i + sum_{j in hep(i)} ceil((w(q) + J_j) / T_j) C_j
      R_i  = max_q  w(q) - q T_i + J_i

  until ``w(q) <= (q+1) T_i - J_i`` (the busy period ends before job q+1 is
  released).  ``hep(i)`` is every other task with priority >= i's: a task of
  equal priority is counted as interference (safe for FIFO and round robin).
  ``R_i`` is measured from the arrival, so it includes the task's own jitter.
  The response time is ``None`` when the recurrence diverges: the utilisation
  of the task and those of higher or equal priority is above 1, or exactly 1
  with blocking or jitter among them; or when it needs more than
  :data:`STEP_LIMIT` recurrence steps (then the analysis gives up and the
  task counts as missing its deadline).
* **EDF** (preemptive earliest deadline first): the processor-demand test
  (Baruah, Rosier & Howell 1990) with jitter (Spuri 1996), checked with QPA
  (Zhang & Burns 2009).  ``h(t) = sum_i max(0, floor((t + J_i - D_i) / T_i) + 1) C_i``;
  the set is schedulable iff U <= 1 and ``h(t) + B(t) <= t`` at every absolute
  deadline t up to a bound: the synchronous busy period or, for U < 1,
  ``max(max_i D_i - J_i, (sum_i (T_i - D_i + J_i) U_i + max_i B_i) / (1 - U))``,
  for U = 1 the hyperperiod plus ``max_i(D_i - J_i)``.
  ``B(t) = max{B_i : D_i - J_i <= t}``, the largest blocking of a task whose
  deadline fits in t (SRP, Baker 1991), makes the test sufficient; without
  blocking it is exact.  EDF response times are not computed (``None``).

Offsets are ignored: both analyses assume the worst phasing, so a verdict of
"schedulable" holds for any offsets, but a set whose offsets prevent the
critical instant may be refused.

QAS (quality-assuring scheduling, the DROPS reservation model): a task with
an ``optional`` part reserves per job its mandatory wcet plus the
``quality``-quantile of the optional execution time distribution; if the
mandatory parts are schedulable and the set with those reservations is too,
every job's optional part gets at least its reserved time before the
deadline, so (independent execution times) a fraction of at least
``P(X <= reserve) >= quality`` of the optional parts completes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from l4sim.realtime.taskset import Task, TaskSet

Policy = Literal["fp", "edf"]
POLICIES: tuple[Policy, ...] = ("fp", "edf")
#: recurrence (FP) or demand-check (EDF) steps per analysis before giving up
STEP_LIMIT = 200_000


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def fmt_u(u: Fraction) -> str:
    """A utilisation for people: 4 significant digits, more when that would round to 1."""
    text = f"{float(u):.4g}"
    if u != 1 and text == "1":
        text = f"{float(u):.12g}"
        if text == "1":
            text = "1 - " if u < 1 else "1 + "
            text += f"{float(abs(1 - u)):.3g}"
    return text


def _cost(task: Task, costs: Mapping[str, int] | None) -> int:
    return task.wcet if costs is None else costs.get(task.name, task.wcet)


def utilisation(ts: TaskSet, costs: Mapping[str, int] | None = None) -> Fraction:
    """Sum of C/T, exactly (with ``costs`` overriding wcets by task name)."""
    return sum((Fraction(_cost(t, costs), t.period) for t in ts.tasks), Fraction(0))


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskResult:
    """One task's verdict; times in ns.

    ``ok`` is ``wcrt <= deadline`` under FP and ``None`` under EDF (a demand
    failure is not one task's).  ``note`` says why ``wcrt`` is ``None``.
    """

    name: str
    wcrt: int | None
    deadline: int
    priority: int | None
    ok: bool | None
    note: str = ""


@dataclass(frozen=True)
class QasTask:
    """A task's QAS reservation: ``budget`` = wcet + ``optional_budget`` ns per job."""

    name: str
    quality: Fraction
    optional_budget: int
    budget: int
    guaranteed_quality: Fraction
    wcrt: int | None


@dataclass(frozen=True)
class QasResult:
    admitted: bool
    reason: str
    tasks: tuple[QasTask, ...]


@dataclass(frozen=True)
class Analysis:
    """The verdict on a task set under one policy; ``reason`` explains it in one sentence."""

    policy: Policy
    schedulable: bool
    reason: str
    utilisation: Fraction
    tasks: tuple[TaskResult, ...]
    qas: QasResult | None = None

    def to_json(self, ts: TaskSet) -> dict[str, Any]:
        """The ``--json`` object, times in the file's unit (ints where whole, else floats)."""

        def unit(ns: int | None) -> int | float | None:
            return None if ns is None else ts.to_unit(ns)

        out: dict[str, Any] = {
            "policy": self.policy,
            "schedulable": self.schedulable,
            "tasks": [{"name": r.name, "wcrt": unit(r.wcrt), "deadline": unit(r.deadline),
                       "priority": r.priority, "ok": r.ok} for r in self.tasks],
            "time_unit": ts.time_unit,
            "utilization": float(self.utilisation),
            "reason": self.reason,
        }
        if self.qas is not None:
            out["qas"] = {
                "admitted": self.qas.admitted,
                "reason": self.qas.reason,
                "tasks": [{"name": q.name, "quality": float(q.quality),
                           "optional_budget": unit(q.optional_budget), "budget": unit(q.budget),
                           "guaranteed_quality": float(q.guaranteed_quality),
                           "wcrt": unit(q.wcrt)} for q in self.qas.tasks],
            }
        return out


# -- fixed priorities ----------------------------------------------------------------------------


def fp_response_time(ts: TaskSet, task: Task, costs: Mapping[str, int] | None = None,
                     limit: int = STEP_LIMIT) -> tuple[int | None, str]:
    """Worst-case response time (ns) of ``task`` under FP, or ``(None, why)``."""
    hep = [j for j in ts.tasks if j is not task and j.priority >= task.priority]
    c_i, t_i, j_i, b_i = _cost(task, costs), task.period, task.jitter, task.blocking
    terms = [(j.period, j.jitter, _cost(j, costs)) for j in hep]
    u = Fraction(c_i, t_i) + sum((Fraction(c, t) for t, _, c in terms), Fraction(0))
    if u > 1 or (u == 1 and (b_i or j_i or any(jj for _, jj, _ in terms))):
        why = "with blocking or jitter" if u == 1 else ""
        return None, (f"diverges: utilisation of the task and higher-priority ones is "
                      f"{fmt_u(u)}{' ' + why if why else ''} (needs < 1)")
    steps = 0
    w = b_i + sum(c for _, _, c in terms)  # + (q+1) C_i below: a lower bound of w(0)
    worst = 0
    q = 0
    while True:
        w += c_i
        while True:
            nxt = b_i + (q + 1) * c_i + sum(_ceil_div(w + jj, t) * c for t, jj, c in terms)
            steps += 1
            if nxt == w:
                break
            if steps >= limit:
                at_least = max(worst, nxt - q * t_i + j_i)
                return None, (f"unknown: gave up after {limit} recurrence steps "
                              f"(it is at least {ts.fmt(at_least)} {ts.time_unit})")
            w = nxt
        worst = max(worst, w - q * t_i + j_i)
        if w <= (q + 1) * t_i - j_i:
            return worst, ""
        q += 1


def analyze_fp(ts: TaskSet, costs: Mapping[str, int] | None = None) -> Analysis:
    """Response-time analysis of every task (results in file order)."""
    u = utilisation(ts, costs)
    results = []
    for t in ts.tasks:
        r, note = fp_response_time(ts, t, costs)
        results.append(TaskResult(t.name, r, t.deadline, t.priority,
                                  r is not None and r <= t.deadline, note))
    ok = all(r.ok for r in results)
    if ok:
        reason = f"every task meets its deadline (U = {fmt_u(u)})"
    else:
        by_prio = {t.name: (-t.priority, t.index) for t in ts.tasks}
        bad = min((r for r in results if not r.ok), key=lambda r: by_prio[r.name])
        fmt = ts.fmt
        if bad.wcrt is None:
            reason = f"task {bad.name!r}: response time {bad.note}"
        else:
            reason = (f"task {bad.name!r} misses its deadline: worst-case response time "
                      f"{fmt(bad.wcrt)} {ts.time_unit} > deadline {fmt(bad.deadline)} "
                      f"{ts.time_unit}")
        if u > 1:
            reason = f"U = {fmt_u(u)} > 1; " + reason
    return Analysis("fp", ok, reason, u, tuple(results))


# -- EDF -----------------------------------------------------------------------------------------


class _Demand:
    """h(t) = dbf(t) + B(t) for the processor-demand test."""

    def __init__(self, ts: TaskSet, costs: Mapping[str, int] | None) -> None:
        # (effective relative deadline D - J, period, cost)
        self.terms = [(t.deadline - t.jitter, t.period, _cost(t, costs)) for t in ts.tasks]
        self.blocks = sorted((t.deadline - t.jitter, t.blocking) for t in ts.tasks if t.blocking)
        self.d_min = min(d for d, _, _ in self.terms)

    def dbf(self, t: int) -> int:
        return sum(((t - d) // p + 1) * c for d, p, c in self.terms if t >= d)

    def block(self, t: int) -> int:
        return max((b for d, b in self.blocks if d <= t), default=0)

    def __call__(self, t: int) -> int:
        return self.dbf(t) + self.block(t)

    def last_deadline_before(self, t: int) -> int | None:
        """The largest absolute deadline strictly below t (synchronous release)."""
        best = None
        for d, p, _ in self.terms:
            if d < t:
                x = d + (t - 1 - d) // p * p
                if best is None or x > best:
                    best = x
        return best

    def first_failure(self, upto: int, limit: int) -> int | None:
        """The smallest deadline <= upto where h(t) > t, by forward enumeration (None: too many)."""
        heap = [(d, p) for d, p, _ in self.terms]
        heapq.heapify(heap)
        steps = 0
        while heap and heap[0][0] <= upto and steps < limit:
            d, p = heapq.heappop(heap)
            if self(d) > d:
                return d
            heapq.heappush(heap, (d + p, p))
            steps += 1
        return None


def _edf_bound(ts: TaskSet, dem: _Demand, u: Fraction, limit: int) -> int:
    """A time L such that h(t) <= t for all deadlines t <= L implies it for all t."""
    b_max = max((t.blocking for t in ts.tasks), default=0)
    d_max = max(d for d, _, _ in dem.terms)
    bounds: list[int] = []
    if u < 1:
        slack = sum((Fraction((p - d) * c, p) for d, p, c in dem.terms), Fraction(0)) + b_max
        bounds.append(max(d_max, math.ceil(slack / (1 - u))))
    else:
        # h(t + H) <= h(t) + H once t >= max D - J (B(t) is constant from there)
        bounds.append(math.lcm(*(p for _, p, _ in dem.terms)) + d_max)
    # the synchronous busy period (with jitter and blocking), when it converges quickly
    if u < 1 or (b_max == 0 and not any(t.jitter for t in ts.tasks)):
        terms = [(t.period, t.jitter, c) for t, (_, _, c) in zip(ts.tasks, dem.terms, strict=True)]
        w = b_max + sum(c for _, _, c in terms)
        for _ in range(min(limit, 10_000)):
            nxt = b_max + sum(_ceil_div(w + j, p) * c for p, j, c in terms)
            if nxt == w:
                bounds.append(w)
                break
            w = nxt
    return min(bounds)


def edf_demand_test(ts: TaskSet, costs: Mapping[str, int] | None = None,
                    limit: int = STEP_LIMIT) -> tuple[bool, str]:
    """The processor-demand test for preemptive EDF: ``(schedulable, reason)``."""
    unit = ts.time_unit
    fmt = ts.fmt
    u = utilisation(ts, costs)
    if u > 1:
        return False, f"U = {fmt_u(u)} > 1: the processor is overloaded"
    for task in ts.tasks:
        c = _cost(task, costs)
        if task.jitter + c > task.deadline:
            return False, (f"task {task.name!r}: jitter {fmt(task.jitter)} {unit} + wcet "
                           f"{fmt(c)} {unit} exceeds its deadline {fmt(task.deadline)} {unit}")
    if all(k.deadline - k.jitter >= k.period and not k.blocking for k in ts.tasks):
        # h(t) <= sum floor(t / T_i) C_i <= U t: U <= 1 is enough (Liu & Layland)
        return True, f"U = {fmt_u(u)} <= 1 with every deadline (minus jitter) at least the period"
    dem = _Demand(ts, costs)
    bound = _edf_bound(ts, dem, u, limit)
    # QPA: walk the deadlines down from the bound, jumping to h(t) whenever h(t) < t
    x = dem.last_deadline_before(bound + 1)
    steps = 0
    while x is not None:
        h = dem(x)
        steps += 1
        if h > x or h <= dem.d_min:
            break
        if steps >= limit:
            return False, (f"undecided: the demand test gave up after {limit} steps "
                           f"(checking deadlines up to {fmt(bound)} {unit}); not admitted")
        x = h if h < x else dem.last_deadline_before(x)
    if x is None or dem(x) <= x:
        return True, f"the processor demand never exceeds the time (U = {fmt_u(u)})"
    first = dem.first_failure(x, limit)
    if first is None:
        first = x
    return False, (f"jobs with release and deadline inside an interval of {fmt(first)} {unit} "
                   f"may demand {fmt(dem(first))} {unit} (U = {fmt_u(u)})")


def analyze_edf(ts: TaskSet, costs: Mapping[str, int] | None = None) -> Analysis:
    """The EDF verdict; per-task response times are not computed."""
    ok, reason = edf_demand_test(ts, costs)
    results = tuple(TaskResult(t.name, None, t.deadline, None, None) for t in ts.tasks)
    return Analysis("edf", ok, reason, utilisation(ts, costs), results)


# -- QAS and admission ---------------------------------------------------------------------------


def _analyze(ts: TaskSet, policy: Policy, costs: Mapping[str, int] | None) -> Analysis:
    if policy == "fp":
        return analyze_fp(ts, costs)
    if policy == "edf":
        return analyze_edf(ts, costs)
    raise ValueError(f"unknown policy {policy!r}; use fp or edf")


def analyze_qas(ts: TaskSet, policy: Policy, mandatory: Analysis | None = None) -> QasResult | None:
    """QAS admission of the optional parts (None when no task has one)."""
    opt = [t for t in ts.tasks if t.optional is not None]
    if not opt:
        return None
    if mandatory is None:
        mandatory = _analyze(ts, policy, None)
    costs = {}
    for t in opt:
        assert t.optional is not None
        costs[t.name] = t.wcet + t.optional.budget()
    with_opt = _analyze(ts, policy, costs)
    wcrt = {r.name: r.wcrt for r in with_opt.tasks}
    rows = []
    for t in opt:
        assert t.optional is not None
        rows.append(QasTask(t.name, t.optional.quality, t.optional.budget(), costs[t.name],
                            t.optional.guaranteed_quality(), wcrt[t.name]))
    if not mandatory.schedulable:
        return QasResult(False, "the mandatory parts are not schedulable", tuple(rows))
    if not with_opt.schedulable:
        return QasResult(False, "with the optional reservations: " + with_opt.reason, tuple(rows))
    return QasResult(True, "every optional part gets its quality-quantile reservation",
                     tuple(rows))


def analyze(ts: TaskSet, policy: Policy = "fp") -> Analysis:
    """The mandatory parts' verdict under ``policy``, with the QAS admission if any task has one."""
    res = _analyze(ts, policy, None)
    qas = analyze_qas(ts, policy, res)
    if qas is None:
        return res
    return Analysis(res.policy, res.schedulable, res.reason, res.utilisation, res.tasks, qas)


def admit(taskset: TaskSet, policy: Policy = "fp") -> tuple[bool, str]:
    """Whether to admit ``taskset`` under ``policy``: mandatory parts and QAS reservations."""
    res = analyze(taskset, policy)
    name = policy.upper()
    if not res.schedulable:
        return False, f"not schedulable under {name}: {res.reason}"
    if res.qas is not None and not res.qas.admitted:
        return False, f"QAS not admitted under {name}: {res.qas.reason}"
    return True, f"schedulable under {name}: {res.reason}"


# -- report --------------------------------------------------------------------------------------


def format_report(ts: TaskSet, res: Analysis) -> str:
    """A readable table (name, C, T, D, prio, wcrt, ok) and the verdict with its reason."""
    unit = ts.time_unit
    fmt = ts.fmt
    rows = [("task", f"C/{unit}", f"T/{unit}", f"D/{unit}", "prio", f"wcrt/{unit}", "ok")]
    results = {r.name: r for r in res.tasks}
    for t in ts.tasks:
        r = results[t.name]
        rows.append((t.name, fmt(t.wcet), fmt(t.period), fmt(t.deadline),
                     "-" if r.priority is None else str(r.priority),
                     ("-" if res.policy == "edf" else "unbounded") if r.wcrt is None
                     else fmt(r.wcrt),
                     "-" if r.ok is None else ("yes" if r.ok else "MISS")))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                       for k, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
             for row in rows]
    name = res.policy.upper()
    lines.append("")
    lines.append(f"utilisation U = {float(res.utilisation):.4g}")
    if res.schedulable:
        lines.append(f"schedulable under {name}: {res.reason}")
    else:
        lines.append(f"NOT schedulable under {name}: {res.reason}")
    if res.qas is not None:
        lines.append("")
        q_rows = [("optional part", "quality", f"reserve/{unit}", f"budget/{unit}", "guaranteed")]
        for q in res.qas.tasks:
            q_rows.append((q.name, f"{float(q.quality):.4g}", fmt(q.optional_budget),
                           fmt(q.budget), f"{float(q.guaranteed_quality):.4g}"))
        qw = [max(len(row[k]) for row in q_rows) for k in range(len(q_rows[0]))]
        lines.extend("  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                               for k, (c, w) in enumerate(zip(row, qw, strict=True))).rstrip()
                     for row in q_rows)
        verdict = "admitted" if res.qas.admitted else "NOT admitted"
        lines.append(f"QAS {verdict}: {res.qas.reason}")
    if any(t.offset for t in ts.tasks):
        lines.append("note: offsets are ignored (worst-case phasing assumed): "
                     "the verdict is safe but may be pessimistic")
    return "\n".join(lines)
