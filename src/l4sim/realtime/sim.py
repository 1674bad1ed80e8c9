"""Run a task set as periodic threads on the kernel itself: ``l4sim rt simulate``.

Each task becomes one native thread on a one-core machine.  The thread has a
kernel reservation (budget = the task's wcet plus the kernel entry of its
``next_period`` call, period, relative deadline, first release at the task's
offset) and runs::

    await env.next_period(jitter)          # wait for the first release
    while True:
        await env.compute(wcet)            # the mandatory part
        await env.next_period(jitter)      # the job ends; sleep until the next release

Optional (QAS) parts are not run: every job executes exactly its mandatory
wcet.  Under ``fp`` the threads have the task set's priorities; under
``edf`` the core orders reserved threads by absolute deadline.  Release
jitter is drawn from the machine's seeded generator, uniformly in
``0..jitter`` ns per job.

The statistics come from the kernel's own per-thread accounting
(:class:`l4sim.kernel.sched.Reservation`); nothing here schedules.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel.abi import RESV_PERIODIC
from l4sim.kernel.costs import CostModel
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.sched import Reservation
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import Machine
from l4sim.realtime.taskset import Task, TaskSet, build
from l4sim.user.env import INITIAL, Env, TaskLocal

#: the default run ends after at most this many job releases (see :func:`default_duration`)
MAX_DEFAULT_JOBS = 200_000


def zero_costs() -> CostModel:
    """A cost model in which every kernel operation is free (ideal scheduling, for validation)."""
    cm = CostModel()
    return CostModel(**{name: 0 for name, _ in cm.table()})


def job_overhead(cm: CostModel) -> int:
    """Kernel time one job adds to the schedule (ns): the switch to it, the switch back to the
    thread it preempted (or to the next one), and its ``next_period`` system call."""
    return 2 * (cm.context_switch + cm.space_switch) + cm.syscall


def analysed_wcrt(ts: TaskSet, costs: CostModel | None = None) -> dict[str, int | None]:
    """FP response times for the simulation: each wcet plus :func:`job_overhead` of ``costs``
    (the kernel's default costs when None; with :func:`zero_costs` the plain analysis)."""
    from l4sim.realtime.analysis import analyze_fp

    ov = job_overhead(costs if costs is not None else CostModel())
    res = analyze_fp(ts, {t.name: t.wcet + ov for t in ts.tasks})
    return {r.name: r.wcrt for r in res.tasks}


def hyperperiod(ts: TaskSet) -> int:
    """The least common multiple of the periods (ns)."""
    return math.lcm(*(t.period for t in ts.tasks))


def default_duration(ts: TaskSet) -> int:
    """The largest offset plus the hyperperiod plus the largest deadline (so every job released
    in the first hyperperiod reaches its deadline), cut to about :data:`MAX_DEFAULT_JOBS` releases."""
    full = max(t.offset for t in ts.tasks) + hyperperiod(ts) + max(t.deadline for t in ts.tasks)
    rate = sum(1 / t.period for t in ts.tasks)  # releases per ns
    cap = max(max(t.period for t in ts.tasks), int(MAX_DEFAULT_JOBS / rate))
    return min(full, cap)


@dataclass
class TaskStats:
    """One task's observed behaviour; times in ns."""

    name: str
    priority: int
    jobs: int
    deadline_misses: int
    max_response: int
    depletions: int
    thread: int  # the thread's kernel id (trace tid)


@dataclass
class SimResult:
    policy: str
    duration: int
    tasks: list[TaskStats]
    kernel: Kernel
    tracer: Tracer | None
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def misses(self) -> int:
        return sum(t.deadline_misses for t in self.tasks)

    def sched_events(self) -> int:
        """Scheduling events simulated: job releases, replenishments and context switches."""
        return self.kernel.releases + self.kernel.context_switches

    def to_json(self, ts: TaskSet) -> dict[str, Any]:
        return {"policy": self.policy, "duration": ts.to_unit(self.duration), "time_unit": ts.time_unit,
                "tasks": [{"name": t.name, "jobs": t.jobs, "deadline_misses": t.deadline_misses,
                           "max_response": ts.to_unit(t.max_response)} for t in self.tasks]}


async def _periodic(env: Env, wcet: int, jitter: int) -> None:
    await env.next_period(jitter)
    while True:
        await env.compute(wcet)
        await env.next_period(jitter)


def simulate(ts: TaskSet, policy: str = "fp", duration: int | None = None, *, costs: CostModel | None = None,
             seed: int = 0, trace: bool = False) -> SimResult:
    """Run ``ts`` under ``policy`` ("fp" | "edf") for ``duration`` ns (default :func:`default_duration`).

    ``costs`` is the kernel's cost model (default: the kernel's own, so context
    switches and system calls take time; :func:`zero_costs` gives the ideal
    schedule the analysis assumes).  ``trace`` keeps the kernel trace records.

    A job that has not completed when the run ends but whose deadline has
    passed counts as a miss (and gets a ``deadline_miss`` record with
    ``unfinished: 1``); its response time is not in ``max_response``.
    """
    if policy not in ("fp", "edf"):
        raise ValueError(f"unknown policy {policy!r}; use fp or edf")
    end = default_duration(ts) if duration is None else duration
    cm = costs if costs is not None else CostModel()
    m = Machine(cores=1, seed=seed)
    tracer = Tracer() if trace else None
    k = Kernel(m, costs=cm, tracer=tracer)
    k.set_policy(0, policy)
    task = k.create_task("rt")
    threads = []
    for t in ts.tasks:
        th = k.create_thread(t.name, task)
        ip = len(task.code)
        task.code.append(lambda sp, t=t: _periodic(Env(TaskLocal(INITIAL)), t.wcet, t.jitter))
        k.start(th, ip, 0, prio=t.priority if policy == "fp" else 1, cpu=0)
        # the budget covers the job and the kernel entry of its next_period call
        k.set_reservation(th, min(t.wcet + cm.syscall, t.period), t.period, t.deadline, RESV_PERIODIC,
                          start=t.offset)
        threads.append(th)
    t0 = time.perf_counter()
    k.run(until=end)
    wall = time.perf_counter() - t0
    stats = [_stats(k, t, th, end) for t, th in zip(ts.tasks, threads, strict=True)]
    k.shutdown()
    return SimResult(policy, end, stats, k, tracer, wall)


def _stats(k: Kernel, t: Task, th: Any, end: int) -> TaskStats:
    r: Reservation = th.resv
    misses = r.misses
    # jobs whose deadline passed before the end but that did not complete
    due = 0 if end <= t.offset + t.deadline else (end - 1 - t.offset - t.deadline) // t.period + 1
    unfinished = max(0, due - r.jobs)
    if unfinished:
        misses += unfinished
        if k.tracer is not None:
            first = r.jobs  # the oldest unfinished job's index (0-based)
            dl = t.offset + first * t.period + t.deadline
            k.tracer.emit((end, 0, "deadline_miss", th.kid,
                           {"job": first + 1, "lateness": end - dl, "unfinished": unfinished}))
    if th.state is TS.DEAD:  # pragma: no cover - a periodic thread never exits
        raise RuntimeError(f"task {t.name!r}: its thread died ({th.exit_code})")
    return TaskStats(t.name, t.priority, r.jobs, misses, r.max_response, r.depletions, th.kid)


# -- the Gantt chart -----------------------------------------------------------------------


class GanttUnavailable(RuntimeError):
    """matplotlib is not installed."""


def draw_gantt(res: SimResult, ts: TaskSet, path: str) -> None:
    """Draw the schedule of a traced run (one row per task, releases and misses marked)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise GanttUnavailable("--gantt needs matplotlib; install it with: pip install 'l4sim[plot]'") from None
    assert res.tracer is not None, "draw_gantt needs a traced run"
    row = {s.thread: i for i, s in enumerate(res.tasks)}
    scale = ts.scale
    spans: dict[int, list[tuple[float, float]]] = {tid: [] for tid in row}
    releases: dict[int, list[float]] = {tid: [] for tid in row}
    misses: dict[int, list[float]] = {tid: [] for tid in row}
    running, since = -1, 0
    for t, cpu, kind, tid, _args in res.tracer.records:
        if kind == "switch" and cpu == 0:
            if running in spans and t > since:
                spans[running].append((since / scale, (t - since) / scale))
            running, since = tid, t
        elif kind == "release" and tid in releases:
            releases[tid].append(t / scale)
        elif kind == "deadline_miss" and tid in misses:
            misses[tid].append(t / scale)
    if running in spans and res.duration > since:
        spans[running].append((since / scale, (res.duration - since) / scale))
    n = len(res.tasks)
    fig, ax = plt.subplots(figsize=(12, 1 + 0.5 * n))
    colours = plt.get_cmap("tab10")
    for tid, i in row.items():
        y = n - 1 - i
        ax.broken_barh(spans[tid], (y - 0.35, 0.7), facecolors=colours(i % 10))
        if releases[tid]:
            ax.plot(releases[tid], [y + 0.4] * len(releases[tid]), "k^", markersize=3)
        if misses[tid]:
            ax.plot(misses[tid], [y] * len(misses[tid]), "rx", markersize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels([s.name for s in reversed(res.tasks)])
    ax.set_xlim(0, res.duration / scale)
    ax.set_xlabel(f"time ({ts.time_unit})")
    ax.set_title(f"{res.policy.upper()} schedule: {res.misses} deadline misses "
                 "(bars: running, ^: release, x: miss)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- text report --------------------------------------------------------------------------


def format_table(res: SimResult, ts: TaskSet, wcrt: dict[str, int | None] | None = None) -> str:
    u = ts.time_unit
    head = ["task", "prio" if res.policy == "fp" else "", f"C/{u}", f"T/{u}", f"D/{u}", "jobs", "misses",
            f"max resp/{u}"]
    if wcrt is not None:
        head.append(f"wcrt/{u}")
    rows = [head]
    for s in res.tasks:
        t = ts.task(s.name)
        r = [s.name, str(t.priority) if res.policy == "fp" else "", ts.fmt(t.wcet), ts.fmt(t.period),
             ts.fmt(t.deadline), str(s.jobs), str(s.deadline_misses), ts.fmt(s.max_response)]
        if wcrt is not None:
            w = wcrt.get(s.name)
            r.append("-" if w is None else ts.fmt(w))
        rows.append(r)
    keep = [j for j in range(len(head)) if any(row[j] for row in rows)]
    widths = [max(len(row[j]) for row in rows) for j in keep]
    lines = ["  ".join((row[j].ljust(w) if j == 0 else row[j].rjust(w)) for j, w in zip(keep, widths, strict=True))
             for row in rows]
    lines.append("")
    lines.append(f"{res.policy.upper()} for {ts.fmt(res.duration)} {u}: {res.misses} deadline misses")
    return "\n".join(lines)


# -- benchmark -----------------------------------------------------------------------------


def bench_taskset(n: int = 20) -> TaskSet:
    """A fixed ``n``-task set (U ~ 0.75, periods 5..100 ms, harmonic-ish) for ``l4sim bench rt``."""
    periods = [5, 10, 10, 20, 20, 25, 25, 40, 40, 50, 50, 50, 100, 100, 100, 100, 100, 100, 100, 100]
    rows = []
    for i in range(n):
        p = periods[i % len(periods)]
        rows.append({"name": f"t{i:02d}", "period": p, "wcet": round(p * 0.75 / n, 3)})
    return build(rows, "ms")


def bench_rt(seconds: float = 10.0) -> dict[str, Any]:
    """Scheduling events per wall second: the 20-task set over ``seconds`` of simulated time (FP and EDF)."""
    ts = bench_taskset()
    out: dict[str, Any] = {"tasks": len(ts.tasks), "simulated_s": seconds}
    for pol in ("fp", "edf"):
        res = simulate(ts, pol, int(seconds * 1e9))
        ev = res.sched_events()
        out[f"{pol}_sched_events"] = ev
        out[f"{pol}_wall_s"] = round(res.wall_s, 3)
        out[f"{pol}_events_per_s"] = int(ev / res.wall_s) if res.wall_s > 0 else None
        out[f"{pol}_deadline_misses"] = res.misses
    try:
        import simso  # type: ignore[import-not-found]  # noqa: F401
        out["simso"] = "installed, not compared (see docs/realtime.md)"
    except ImportError:
        out["simso"] = None
    return out
