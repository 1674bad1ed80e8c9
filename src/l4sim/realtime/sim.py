"""Run a task set as periodic threads on the kernel itself: ``l4sim rt simulate``.

Each task becomes one native thread on a one-core machine.  The thread has a
kernel reservation (budget = the task's wcet plus the kernel entry of its
``next_period`` call, period, relative deadline, first release at the task's
offset) and runs::

    await env.next_period(jitter)          # wait for the first release
    while True:
        await env.compute(wcet)            # the mandatory part
        await env.next_period(jitter)      # the job ends; sleep until the next release

Under ``fp`` the threads have the task set's priorities; under ``edf`` the
core orders reserved threads by absolute deadline.  Release jitter is drawn
from the machine's seeded generator, uniformly in ``0..jitter`` ns per job.

**Optional (QAS) parts** run as imprecise computations (Liu et al.; the
DROPS QAS model, Hamann et al. 2001).  After its mandatory part a job draws
its optional execution time X from the task's distribution (one seeded
generator per task) and runs ``min(X, r)`` of it inside its reservation,
where r is what the QAS analysis reserved per job (the quality-quantile of
the distribution; the budget is wcet + r).  If X > r the optional part has
reached the point reserved for it.  With ``optional="slack"`` (the default)
its rest is handed to the task's *background* thread, a best-effort thread
and so below every reservation, which runs it in the slack; a *watchdog*
thread (best effort, above every background thread) aborts it at the job's
deadline with ``ex_regs`` -- imprecise computation: the mandatory result is
kept, the optional one dropped.  With ``optional="reserve"`` the part is
aborted at its reserved point; ``"off"`` runs no optional parts.  Either way
an optional part can take no time that the analysis gave to a mandatory part,
so aborts never cause a mandatory deadline miss.

The statistics come from the kernel's own per-thread accounting
(:class:`l4sim.kernel.sched.Reservation`); nothing here schedules.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from l4sim.kernel.abi import IP_UNCHANGED, RESV_PERIODIC, Rights
from l4sim.kernel.costs import CostModel
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.kernel.sched import Reservation
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import Machine
from l4sim.realtime.taskset import OptionalPart, Task, TaskSet, build
from l4sim.user.env import INITIAL, Env, TaskLocal, ThreadCap

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


def qas_overhead(cm: CostModel) -> int:
    """Kernel time a QAS job adds beyond :func:`job_overhead` (ns): the clock read after its
    optional part and, when it hands the rest to the background, the ``ex_regs`` that wakes the
    watchdog (a system call and a kernel-object invocation)."""
    return cm.clock_read + cm.syscall + cm.kobject_op


def _reserve(t: Task, optional: str) -> int:
    """The optional time (ns) the job runs inside its reservation: the QAS reserve, 0 when off."""
    return t.optional.budget() if t.optional is not None and optional != "off" else 0


def analysed_wcrt(ts: TaskSet, costs: CostModel | None = None, optional: str = "slack") -> dict[str, int | None]:
    """FP response times for the simulation: each wcet (plus the QAS reserve of a task with an
    optional part, unless ``optional`` is "off") plus :func:`job_overhead` of ``costs`` (and
    :func:`qas_overhead` for QAS jobs); the kernel's default costs when None; with
    :func:`zero_costs` the plain (QAS) analysis."""
    from l4sim.realtime.analysis import analyze_fp

    cm = costs if costs is not None else CostModel()
    ov = job_overhead(cm)
    qov = qas_overhead(cm)
    res = analyze_fp(ts, {t.name: t.wcet + ov + (_reserve(t, optional) + qov if t.optional and optional != "off"
                                                 else 0) for t in ts.tasks})
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
class Quality:
    """A QAS task's optional parts over a run: ``parts`` is the jobs whose deadline passed before
    the end, ``completed`` those of them whose optional part completed by the deadline (inside
    the reservation or in the slack)."""

    requested: Fraction
    guaranteed: Fraction  # P(X <= reserve): what the reservation alone assures
    parts: int
    completed: int
    in_reserve: int
    in_slack: int

    @property
    def achieved(self) -> Fraction | None:
        return Fraction(self.completed, self.parts) if self.parts else None

    def to_json(self) -> dict[str, Any]:
        a = self.achieved
        return {"requested": float(self.requested), "achieved": None if a is None else float(a),
                "guaranteed": float(self.guaranteed), "parts": self.parts, "completed": self.completed,
                "in_reserve": self.in_reserve, "in_slack": self.in_slack}


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
    quality: Quality | None = None


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
        tasks = []
        for t in self.tasks:
            row: dict[str, Any] = {"name": t.name, "jobs": t.jobs, "deadline_misses": t.deadline_misses,
                                   "max_response": ts.to_unit(t.max_response)}
            if t.quality is not None:
                row["quality"] = t.quality.to_json()
            tasks.append(row)
        return {"policy": self.policy, "duration": ts.to_unit(self.duration), "time_unit": ts.time_unit,
                "tasks": tasks}


async def _periodic(env: Env, wcet: int, jitter: int) -> None:
    await env.next_period(jitter)
    while True:
        await env.compute(wcet)
        await env.next_period(jitter)


# -- optional parts at run time --------------------------------------------------------------
#
# All threads of a simulation live in one task, so the worker, background and watchdog threads
# of the QAS machinery share these Python objects as threads share their address space.  On the
# one core a thread's code between two traps runs without interruption, which is what makes the
# hand-over below free of lost wake-ups.


@dataclass(slots=True)
class _Rest:
    """The rest of one job's optional part, waiting for (or running in) the slack."""

    deadline: int  # the job's absolute deadline (ns)
    left: int  # optional time still to run (ns)


class OptionalRun:
    """One QAS task's optional parts at run time: the draws, the hand-over, the counts."""

    def __init__(self, task: Task, opt: OptionalPart, seed: int, end: int) -> None:
        self.task = task
        self.opt = opt
        self.reserve = opt.budget()
        # one generator per task (string seeds are hashed with SHA-512: the same on every host)
        self.rng = random.Random(f"l4sim-qas:{seed}:{task.name}")
        self.end = end
        #: rests handed to the background thread, oldest (earliest deadline) first
        self.queue: deque[_Rest] = deque()
        #: the rest the background thread is running, and whether it sleeps
        self.current: _Rest | None = None
        self.idle = True
        self.bg_slot = 0  # the task's slot of the background thread's capability
        self.bg_ip = 0  # its entry (ex_regs restarts it there)
        self.in_reserve = 0
        self.in_slack = 0

    def draw(self) -> int:
        return self.opt.distribution.sample(self.rng)

    def completed(self, deadline: int, in_reserve: bool) -> None:
        """An optional part completed by ``deadline``; counted only when the deadline is before the end."""
        if deadline < self.end:
            if in_reserve:
                self.in_reserve += 1
            else:
                self.in_slack += 1


class _Watch:
    """The watchdog's state as the workers see it."""

    def __init__(self) -> None:
        self.sleeping = False
        self.slot = 0  # the task's slot of the watchdog thread's capability


async def _qas_worker(env: Env, t: Task, run: OptionalRun, watch: _Watch | None) -> None:
    """A QAS task's reserved thread: mandatory part, then the optional part up to its reserve;
    the rest (with ``watch``) goes to the background, else it is aborted here."""
    wcet, jitter, r = t.wcet, t.jitter, run.reserve
    first_deadline = t.offset + t.deadline
    job = await env.next_period(jitter)
    while True:
        await env.compute(wcet)
        x = run.draw()
        deadline = first_deadline + (job - 1) * t.period
        if x <= r:
            if x:
                await env.compute(x)
            if await env.clock() <= deadline:
                run.completed(deadline, True)
        else:
            if r:
                await env.compute(r)  # the optional part reaches the point reserved for it
            if watch is not None and await env.clock() < deadline:
                was_empty = not run.queue
                run.queue.append(_Rest(deadline, x - r))
                if was_empty and watch.sleeping:  # the watchdog must start the background thread
                    watch.sleeping = False
                    await ThreadCap(env, watch.slot).ex_regs(IP_UNCHANGED, cancel=True)
        job = await env.next_period(jitter)


async def _background(env: Env, run: OptionalRun) -> None:
    """Run the queued rests one after another in the slack (best effort: below every reservation).
    The watchdog starts this thread and restarts it to abort a rest at its deadline."""
    q = run.queue
    while q:
        rest = q[0]
        run.current = rest
        await env.compute(rest.left)
        now = await env.clock()
        q.popleft()
        run.current = None
        if now <= rest.deadline:
            run.completed(rest.deadline, False)
    run.idle = True
    await env.receive(env.thread)  # nobody sends to ourselves: sleep until restarted


async def _watchdog(env: Env, runs: list[OptionalRun], watch: _Watch) -> None:
    """Abort every rest still queued or running at its deadline, and start idle background threads.

    Best effort above all background threads: when it wakes at a deadline it preempts the
    background thread at once, and when reserved threads held the core past the deadline it runs
    before the background thread does, so no rest runs after its deadline (with kernel costs: up
    to the few ns between its clock read and its sleep).
    """
    while True:
        now = await env.clock()
        acted = False
        for run in runs:
            q = run.queue
            stop = False
            while q and q[0].deadline <= now:
                if q.popleft() is run.current:  # imprecise computation: drop the optional result
                    run.current = None
                    stop = True
            if stop or (run.idle and q):
                run.idle = False
                await ThreadCap(env, run.bg_slot).ex_regs(run.bg_ip)
                acted = True
        if acted:
            continue  # time went by: look again
        heads = [run.queue[0].deadline for run in runs if run.queue]
        watch.sleeping = True
        await env.receive(env.thread, timeout=min(heads) - now if heads else None)
        watch.sleeping = False


OptionalMode = Literal["slack", "reserve", "off"]
OPTIONAL_MODES: tuple[OptionalMode, ...] = ("slack", "reserve", "off")


def simulate(ts: TaskSet, policy: str = "fp", duration: int | None = None, *, costs: CostModel | None = None,
             seed: int = 0, trace: bool = False, optional: str = "slack") -> SimResult:
    """Run ``ts`` under ``policy`` ("fp" | "edf") for ``duration`` ns (default :func:`default_duration`).

    ``costs`` is the kernel's cost model (default: the kernel's own, so context
    switches and system calls take time; :func:`zero_costs` gives the ideal
    schedule the analysis assumes).  ``trace`` keeps the kernel trace records.
    ``optional`` says how optional (QAS) parts run: "slack" (reserve, then the
    slack until the deadline), "reserve" (aborted at the reserved point) or
    "off" (not at all); see the module docstring.

    A job that has not completed when the run ends but whose deadline has
    passed counts as a miss (and gets a ``deadline_miss`` record with
    ``unfinished: 1``); its response time is not in ``max_response``.
    """
    if policy not in ("fp", "edf"):
        raise ValueError(f"unknown policy {policy!r}; use fp or edf")
    if optional not in OPTIONAL_MODES:
        raise ValueError(f"unknown optional mode {optional!r}; use slack, reserve or off")
    end = default_duration(ts) if duration is None else duration
    cm = costs if costs is not None else CostModel()
    m = Machine(cores=1, seed=seed)
    tracer = Tracer() if trace else None
    k = Kernel(m, costs=cm, tracer=tracer)
    k.set_policy(0, policy)
    task = k.create_task("rt")
    local = TaskLocal(INITIAL)
    qas = [t for t in ts.tasks if t.optional is not None] if optional != "off" else []
    runs: dict[str, OptionalRun] = {}
    watch = _Watch() if qas and optional == "slack" else None
    if watch is not None:
        wd = k.create_thread("qas-watchdog", task)
        watch.slot = _thread_slot(k, task, local, wd)
    threads = []
    background: dict[int, str] = {}  # background thread id -> task name
    for t in ts.tasks:
        th = k.create_thread(t.name, task)
        ip = len(task.code)
        budget = t.wcet + cm.syscall
        if t in qas:
            assert t.optional is not None
            run = runs[t.name] = OptionalRun(t, t.optional, seed, end)
            budget += run.reserve + qas_overhead(cm)
            task.code.append(lambda sp, t=t, run=run: _qas_worker(Env(local), t, run, watch))
            if watch is not None:  # its background thread, best effort at the task's priority
                bg = k.create_thread(f"{t.name}-optional", task)
                run.bg_slot = _thread_slot(k, task, local, bg)
                run.bg_ip = len(task.code)
                task.code.append(lambda sp, run=run: _background(Env(local, run.bg_slot), run))
                k.start(bg, run.bg_ip, 0, prio=t.priority, cpu=0)
                background[bg.kid] = t.name
        else:
            task.code.append(lambda sp, t=t: _periodic(Env(local), t.wcet, t.jitter))
        k.start(th, ip, 0, prio=t.priority if policy == "fp" else 1, cpu=0)
        # the budget covers the job and the kernel entry of its next_period call
        k.set_reservation(th, min(budget, t.period), t.period, t.deadline, RESV_PERIODIC, start=t.offset)
        threads.append(th)
    if watch is not None:  # best effort above every background thread
        task.code.append(lambda sp: _watchdog(Env(local, watch.slot), list(runs.values()), watch))
        k.start(wd, len(task.code) - 1, 0, prio=255, cpu=0)
    t0 = time.perf_counter()
    k.run(until=end)
    wall = time.perf_counter() - t0
    stats = [_stats(k, t, th, end, runs.get(t.name)) for t, th in zip(ts.tasks, threads, strict=True)]
    k.shutdown()
    return SimResult(policy, end, stats, k, tracer, wall, {"optional": optional if qas else None, "background": background})


def _thread_slot(k: Kernel, task: Any, local: TaskLocal, th: Any) -> int:
    """Give ``task`` a capability to thread ``th`` in a fresh slot (host side, as a boot would)."""
    slot = local.next_slot
    local.next_slot += 1
    k.cap_insert(task, slot, th, Rights.RWSD, None)
    return slot


def _stats(k: Kernel, t: Task, th: Any, end: int, run: OptionalRun | None) -> TaskStats:
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
    quality = None
    if run is not None:
        quality = Quality(run.opt.quality, run.opt.guaranteed_quality(), due,
                          run.in_reserve + run.in_slack, run.in_reserve, run.in_slack)
    return TaskStats(t.name, t.priority, r.jobs, misses, r.max_response, r.depletions, th.kid, quality)


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
    by_name = {s.name: i for i, s in enumerate(res.tasks)}
    # background threads of optional parts: drawn pale in their task's row
    slack = {tid: by_name[name] for tid, name in res.extra.get("background", {}).items()}
    scale = ts.scale
    spans: dict[int, list[tuple[float, float]]] = {tid: [] for tid in (*row, *slack)}
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
    for tid, i in slack.items():
        ax.broken_barh(spans[tid], (n - 1 - i - 0.35, 0.7), facecolors=colours(i % 10), alpha=0.35)
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
    pale = "pale: optional part in the slack, " if slack else ""
    ax.set_title(f"{res.policy.upper()} schedule: {res.misses} deadline misses "
                 f"(bars: running, {pale}^: release, x: miss)")
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
    qas = any(s.quality is not None for s in res.tasks)
    if qas:
        head += ["quality", "achieved"]
    rows = [head]
    for s in res.tasks:
        t = ts.task(s.name)
        r = [s.name, str(t.priority) if res.policy == "fp" else "", ts.fmt(t.wcet), ts.fmt(t.period),
             ts.fmt(t.deadline), str(s.jobs), str(s.deadline_misses), ts.fmt(s.max_response)]
        if wcrt is not None:
            w = wcrt.get(s.name)
            r.append("-" if w is None else ts.fmt(w))
        if qas:
            q = s.quality
            a = None if q is None else q.achieved
            r += ["" if q is None else f"{float(q.requested):.4g}",
                  "" if q is None else "-" if a is None else f"{float(a):.4g}"]
        rows.append(r)
    keep = [j for j in range(len(head)) if any(row[j] for row in rows)]
    widths = [max(len(row[j]) for row in rows) for j in keep]
    lines = ["  ".join((row[j].ljust(w) if j == 0 else row[j].rjust(w))
                       for j, w in zip(keep, widths, strict=True)).rstrip()
             for row in rows]
    lines.append("")
    lines.append(f"{res.policy.upper()} for {ts.fmt(res.duration)} {u}: {res.misses} deadline misses")
    if qas:
        how = {"slack": "each optional part runs its QAS reserve in the reservation, the rest in the slack "
                        "until the deadline",
               "reserve": "each optional part is aborted at the end of its QAS reserve"}[res.extra["optional"]]
        lines.append(f"optional parts: {how}; achieved = fraction completed by the deadline")
        for s in res.tasks:
            q = s.quality
            if q is not None and q.achieved is not None and q.achieved < q.requested:
                lines.append(f"  {s.name}: quality {float(q.achieved):.4g} below the requested "
                             f"{float(q.requested):.4g} ({q.completed} of {q.parts} optional parts)")
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


def bench_rt(seconds: float = 10.0, progress: Callable[[int, str], None] | None = None) -> dict[str, Any]:
    """Scheduling events per wall second: the 20-task set over ``seconds`` of simulated time (FP and EDF).
    (``l4sim bench rt`` adds SimSo's figures: :func:`l4sim.tools.bench.bench_rt`.)  ``progress(i,
    policy)`` is called as the ``i``-th policy's run starts."""
    ts = bench_taskset()
    out: dict[str, Any] = {"tasks": len(ts.tasks), "simulated_s": seconds}
    for i, pol in enumerate(("fp", "edf")):
        if progress is not None:
            progress(i, pol)
        res = simulate(ts, pol, int(seconds * 1e9))
        ev = res.sched_events()
        out[f"{pol}_sched_events"] = ev
        out[f"{pol}_wall_s"] = round(res.wall_s, 3)
        out[f"{pol}_events_per_s"] = int(ev / res.wall_s) if res.wall_s > 0 else None
        out[f"{pol}_deadline_misses"] = res.misses
    return out
