"""Compare l4sim's schedules with SimSo's on the same task set: a validation, not a test dependency.

SimSo (Chéramy, Hladik and Déplanche, "SimSo: a simulation tool to evaluate
real-time multiprocessor scheduling algorithms", WATERS 2014; pip package
``simso``) is an independent discrete-event scheduling simulator.  This
script runs one task set in both and compares them job by job::

    l4sim rt compare-simso FILE [--policy fp|edf] [--duration T] [--json]
    python -m l4sim.tools.simso_compare FILE [--policy fp|edf] [--duration T] [--json]

**What runs.**  l4sim: ``rt simulate --ideal --optional off`` -- periodic
threads with reservations on the kernel, every kernel operation free, jobs of
exactly their WCET, no optional parts (SimSo has no imprecise computation).
SimSo: one processor without overheads, scheduler ``simso.schedulers.FP``
with the task set's priorities (``fp``) or ``simso.schedulers.EDF_mono``
(``edf``), jobs of exactly their WCET (SimSo's ``WCET`` execution-time
model), no abort on a miss.  Times go to SimSo as integer nanoseconds (one
SimSo cycle per ns, ``cycles_per_ms = 1``), so neither side rounds.  A task
with an offset starts there; a task with release jitter becomes a SimSo
*sporadic* task released exactly when l4sim released its jobs (l4sim draws
the jitter), so both schedule the same jobs.  Blocking terms are not
simulated by either.

**What is compared.**  The schedules: which task runs when, as maximal
segments (idle time left out); identical or the first instant where they
differ.  The jobs: for every job finished in both, its response time from its
release; per task the largest on each side and the jobs that differ.  Under
EDF with jitter the deadlines differ by definition (SimSo: release + D,
l4sim: arrival + D), which the report says; equal deadlines are broken by
release order in both, so other EDF schedules should agree too.

**Installing SimSo.**  ``pip install simso`` installs 0.8.5 (an sdist) and
pins ``SimPy==2.3.1``, the old SimPy API SimSo is written against; both run
on Python 3.11.  Keep them out of l4sim's own environment if other code
needs a current SimPy: a venv that sees l4sim works::

    python -m venv --system-site-packages /tmp/simso-venv
    /tmp/simso-venv/bin/pip install simso
    /tmp/simso-venv/bin/python -m l4sim.tools.simso_compare set.json

Without SimSo the script fails with one line saying so (exit status 2);
``l4sim bench rt`` then says that SimSo's figure was not measured.

Exit status: 0 when schedules and response times agree, 1 when they differ,
2 when the file or an option is unusable or SimSo is not importable.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from l4sim.realtime.sim import SimResult, simulate, zero_costs
from l4sim.realtime.taskset import TaskSet

#: the SimSo scheduler class per l4sim policy
SCHEDULERS = {"fp": "simso.schedulers.FP", "edf": "simso.schedulers.EDF_mono"}
INSTALL_HINT = ("install it with: pip install simso (it pins SimPy 2.3.1; "
                "a venv with --system-site-packages keeps it apart, see docs/realtime.md)")

Segment = tuple[int, int, str]  # (start ns, end ns, task name)
Job = tuple[int, int]  # (release ns, end ns)


class SimsoUnavailable(RuntimeError):
    """SimSo cannot be imported here; the message says why and how to install it."""


def simso_status() -> str | None:
    """None when SimSo (and the SimPy it needs) can be imported, else why not, in one line."""
    try:
        for module in ("simso.configuration", "simso.core"):
            importlib.import_module(module)
    except ImportError as e:  # SimSo missing, or its SimPy 2 missing / replaced by SimPy 3+
        return f"SimSo is not importable here ({e})"
    except Exception as e:  # a broken install must not crash l4sim
        return f"SimSo fails to import here ({type(e).__name__}: {e})"
    return None


def merge(segments: list[Segment]) -> list[Segment]:
    """Drop empty segments and join touching ones of the same task: the schedule's canonical form."""
    out: list[Segment] = []
    for start, end, name in segments:
        if end <= start:
            continue
        if out and out[-1][2] == name and out[-1][1] == start:
            out[-1] = (out[-1][0], end, name)
        else:
            out.append((start, end, name))
    return out


def first_difference(a: list[Segment], b: list[Segment]) -> int | None:
    """The first instant at which two merged schedules differ (None when identical)."""
    for x, y in zip(a, b, strict=False):
        if x != y:
            if x[0] != y[0] or x[2] != y[2]:
                return min(x[0], y[0])
            return min(x[1], y[1])
    if len(a) != len(b):
        longer = a if len(a) > len(b) else b
        return longer[min(len(a), len(b))][0]
    return None


def l4sim_run(ts: TaskSet, policy: str, duration: int, seed: int = 0) -> tuple[
        SimResult, list[Segment], dict[str, list[Job]], dict[str, list[int]]]:
    """The ideal l4sim run (mandatory parts only): its merged schedule, its finished jobs per task and
    every release per task."""
    res = simulate(ts, policy, duration, costs=zero_costs(), seed=seed, trace=True, optional="off")
    assert res.tracer is not None
    name = {t.thread: t.name for t in res.tasks}
    segs: list[Segment] = []
    running, since = -1, 0
    release: dict[int, int] = {}
    jobs: dict[str, list[Job]] = {t.name: [] for t in res.tasks}
    releases: dict[str, list[int]] = {t.name: [] for t in res.tasks}
    # a job of a task without jitter is released at its arrival (its end less its response, which the
    # kernel counts from the arrival); one with jitter when the kernel released it (the "release"
    # record: the drawn instant, or later if the thread only then asked for the job -- it was busy or
    # waiting for the CPU, so the schedule is the same)
    jittered = {t.thread for t in res.tasks if ts.task(t.name).jitter}
    for t, cpu, kind, tid, args in res.tracer.records:
        if kind == "switch" and cpu == 0:
            if running in name:
                segs.append((since, t, name[running]))
            running, since = tid, t
        elif kind == "release" and tid in name:
            release[tid] = t
            releases[name[tid]].append(t)
        elif kind == "job_end" and tid in name:
            response = args["response"]
            assert isinstance(response, int)
            jobs[name[tid]].append((release[tid] if tid in jittered else t - response, t))
    if running in name:
        segs.append((since, duration, name[running]))
    return res, merge(segs), jobs, releases


def simso_model(ts: TaskSet, policy: str, duration: int, releases: dict[str, list[int]] | None = None) -> Any:
    """A SimSo model of ``ts`` (integer ns as SimSo cycles); ``releases`` fixes a task's release times."""
    why = simso_status()
    if why is not None:
        raise SimsoUnavailable(f"{why}; {INSTALL_HINT}")
    from simso.configuration import Configuration  # type: ignore[import-not-found]
    from simso.core import Model  # type: ignore[import-not-found]

    conf = Configuration()
    conf.cycles_per_ms = 1  # SimSo's "ms" are our ns: every time is an exact integer
    conf.duration = duration
    conf.task_data_fields = {"priority": "int"}
    for i, t in enumerate(ts.tasks):
        common = {"name": t.name, "identifier": i + 1, "wcet": t.wcet, "deadline": t.deadline,
                  "abort_on_miss": False, "data": {"priority": t.priority}}
        dates = (releases or {}).get(t.name)
        if dates is not None:
            conf.add_task(task_type="Sporadic", list_activation_dates=list(dates), period=t.period, **common)
        else:
            conf.add_task(period=t.period, activation_date=t.offset, **common)
    conf.add_processor(name="CPU", identifier=1)
    conf.scheduler_info.clas = SCHEDULERS[policy]
    conf.check_all()
    return Model(conf)


def simso_results(model: Any, duration: int) -> tuple[list[Segment], dict[str, list[Job]]]:
    """The merged schedule (from the processor's RUN/IDLE events) and the finished jobs per task."""
    from simso.core.ProcEvent import ProcEvent  # type: ignore[import-not-found]

    segs: list[Segment] = []
    running: str | None = None
    since = 0
    for t, ev in model.processors[0].monitor:
        if ev.event == ProcEvent.RUN or ev.event == ProcEvent.IDLE:
            if running is not None:
                segs.append((since, int(t), running))
            running = ev.args.task.name if ev.event == ProcEvent.RUN else None
            since = int(t)
    if running is not None:
        segs.append((since, duration, running))
    jobs = {task.name: [(round(j.activation_date), int(j.end_date)) for j in task.jobs if j.end_date is not None]
            for task in model.results.tasks}
    return merge(segs), jobs


@dataclass
class Comparison:
    policy: str
    duration: int
    identical: bool
    segments: int
    first_difference: int | None
    tasks: list[dict[str, Any]]
    notes: list[str]
    simso_wall_s: float
    l4sim_wall_s: float

    @property
    def agree(self) -> bool:
        return self.identical and all(t["differing_jobs"] == 0 for t in self.tasks)

    def to_json(self, ts: TaskSet) -> dict[str, Any]:
        u = ts.to_unit
        return {"policy": self.policy, "duration": u(self.duration), "time_unit": ts.time_unit,
                "agree": self.agree,
                "schedule": {"identical": self.identical, "segments": self.segments,
                             "first_difference": None if self.first_difference is None
                             else u(self.first_difference)},
                "tasks": [{**t, "l4sim_max_response": u(t["l4sim_max_response"]),
                           "simso_max_response": u(t["simso_max_response"])} for t in self.tasks],
                "notes": self.notes, "l4sim_wall_s": round(self.l4sim_wall_s, 4),
                "simso_wall_s": round(self.simso_wall_s, 4)}


def compare_jobs(a: list[Job], b: list[Job]) -> dict[str, Any]:
    """Pair the jobs of one task by their order; count those whose release or response differ."""
    n = min(len(a), len(b))
    diff = [k for k in range(n) if a[k][0] != b[k][0] or a[k][1] - a[k][0] != b[k][1] - b[k][0]]
    return {"jobs_compared": n,
            "l4sim_max_response": max((e - r for r, e in a[:n]), default=0),
            "simso_max_response": max((e - r for r, e in b[:n]), default=0),
            "differing_jobs": len(diff), "first_differing_job": diff[0] + 1 if diff else None}


def compare(ts: TaskSet, policy: str = "fp", duration: int | None = None, seed: int = 0) -> Comparison:
    """Run ``ts`` in l4sim and in SimSo and compare (raises :class:`SimsoUnavailable` without SimSo)."""
    from l4sim.realtime.sim import default_duration

    why = simso_status()
    if why is not None:
        raise SimsoUnavailable(f"{why}; {INSTALL_HINT}")
    end = default_duration(ts) if duration is None else duration
    res, l4_segs, l4_jobs, l4_releases = l4sim_run(ts, policy, end, seed)
    jittered = {t.name for t in ts.tasks if t.jitter}
    model = simso_model(ts, policy, end, {name: l4_releases[name] for name in jittered})
    t0 = time.perf_counter()
    model.run_model()
    wall = time.perf_counter() - t0
    ss_segs, ss_jobs = simso_results(model, end)
    notes = []
    if jittered:
        notes.append(f"tasks with jitter ({', '.join(sorted(jittered))}) are SimSo sporadic tasks released "
                     "when l4sim released their jobs")
        if policy == "edf":
            notes.append("under EDF with jitter SimSo's deadlines count from the release, l4sim's from the "
                         "arrival: the schedules may differ")
    if any(t.optional is not None for t in ts.tasks):
        notes.append("optional (QAS) parts are left out: SimSo has no imprecise computation")
    if any(t.blocking for t in ts.tasks):
        notes.append("blocking terms are not simulated by either")
    first = first_difference(l4_segs, ss_segs)
    tasks = [{"name": t.name, **compare_jobs(l4_jobs[t.name], ss_jobs.get(t.name, []))} for t in ts.tasks]
    return Comparison(policy, end, first is None, len(l4_segs), first, tasks, notes, wall, res.wall_s)


def format_comparison(c: Comparison, ts: TaskSet) -> str:
    """A table per task (jobs compared, largest response on each side, jobs that differ) and the verdict."""
    u = ts.time_unit
    rows = [("task", "jobs", f"l4sim max/{u}", f"SimSo max/{u}", "differ")]
    for t in c.tasks:
        rows.append((t["name"], str(t["jobs_compared"]), ts.fmt(t["l4sim_max_response"]),
                     ts.fmt(t["simso_max_response"]),
                     str(t["differing_jobs"]) + (f" (first: job {t['first_differing_job']})"
                                                 if t["differing_jobs"] else "")))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c_.ljust(w) if k in (0, 4) else c_.rjust(w)
                       for k, (c_, w) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    lines.append("")
    if c.identical:
        lines.append(f"schedules identical: {c.segments} segments over {ts.fmt(c.duration)} {u} "
                     f"({c.policy.upper()})")
    else:
        assert c.first_difference is not None
        lines.append(f"schedules DIFFER from {ts.fmt(c.first_difference)} {u} on ({c.policy.upper()})")
    lines.extend(f"note: {n}" for n in c.notes)
    lines.append(f"wall time: l4sim {c.l4sim_wall_s:.3f} s (traced), SimSo {c.simso_wall_s:.3f} s")
    lines.append("agree" if c.agree else "DIFFER")
    return "\n".join(lines)


# -- a sweep over random sets ----------------------------------------------------------------


def random_taskset(rng: random.Random, kind: str) -> TaskSet:
    """A small random set in us (1..5 tasks, periods 20..120 us, mostly schedulable); ``kind`` is
    "plain", "offset" (each task a random first release) or "jitter" (each a random release jitter)."""
    from l4sim.realtime.taskset import build

    n = rng.randint(1, 5)
    rows = []
    for k in range(n):
        period = rng.choice([20, 30, 40, 60, 80, 120])
        wcet = rng.randint(1, max(1, period // (n + 1)))
        row: dict[str, Any] = {"name": f"t{k}", "period": period, "wcet": wcet,
                               "deadline": rng.randint(wcet, 2 * period)}
        if kind == "offset":
            row["offset"] = rng.randint(0, period)
        elif kind == "jitter":
            row["jitter"] = rng.randint(0, period // 2)
        rows.append(row)
    return build(rows, "us")


def sweep(n: int, seed: int = 0) -> dict[str, dict[str, list[int]]]:
    """Compare ``n`` random sets of each kind under both policies: ``{policy: {kind: [agree, total]}}``."""
    rng = random.Random(seed)
    out: dict[str, dict[str, list[int]]] = {p: {} for p in SCHEDULERS}
    for i in range(n):
        for kind in ("plain", "offset", "jitter"):
            ts = random_taskset(rng, kind)
            for policy in SCHEDULERS:
                c = compare(ts, policy, None, seed=i)
                cell = out[policy].setdefault(kind, [0, 0])
                cell[0] += c.agree
                cell[1] += 1
    return out


# -- the benchmark ---------------------------------------------------------------------------


def bench_simso(ts: TaskSet, seconds: float, policy: str = "fp") -> dict[str, Any]:
    """SimSo's figures for ``ts`` over ``seconds`` of simulated time: wall time, and scheduling events
    per wall second counted as l4sim counts them as far as SimSo shows them (job activations plus
    dispatches of a job on the processor)."""
    from simso.core.ProcEvent import ProcEvent

    end = int(seconds * 1e9)
    model = simso_model(ts, policy, end)
    t0 = time.perf_counter()
    model.run_model()
    wall = time.perf_counter() - t0
    activations = sum(len(task.jobs) for task in model.results.tasks)
    dispatches = sum(1 for _, ev in model.processors[0].monitor if ev.event == ProcEvent.RUN)
    misses = sum(1 for task in model.results.tasks for j in task.jobs
                 if j.end_date is not None and j.end_date > j.absolute_deadline)
    events = activations + dispatches
    return {"sched_events": events, "activations": activations, "dispatches": dispatches,
            "wall_s": round(wall, 3), "events_per_s": int(events / wall) if wall > 0 else None,
            "deadline_misses": misses}


# -- command line ----------------------------------------------------------------------------


class CompareError(ValueError):
    """A file or option the comparison cannot use; the message is one line with the fix."""


def prepare(file: str, policy: str, duration: str | None) -> tuple[TaskSet, str, int | None]:
    """The task set, policy and duration (ns, None: the default) of a command line, checked: SimSo
    importable, file valid, options sensible; else :class:`CompareError`."""
    from l4sim.realtime.taskset import TaskSetError, load
    from l4sim.tools.boot import BootError, parse_time

    pol = policy.lower()
    if pol not in SCHEDULERS:
        raise CompareError(f"unknown policy {policy!r}; use --policy fp or --policy edf")
    try:
        ts = load(file)
    except TaskSetError as e:
        raise CompareError(f"{file}: {e}") from None
    end: int | None = None
    if duration is not None:
        try:
            end = parse_time(duration, "--duration", ts.time_unit, positive=True)
        except BootError as e:
            raise CompareError(str(e)) from None
    why = simso_status()
    if why is not None:
        raise CompareError(f"{why}; {INSTALL_HINT}")
    return ts, pol, end


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m l4sim.tools.simso_compare",
                                description="Compare l4sim's schedule of a task set with SimSo's.")
    p.add_argument("file", nargs="?", help="task-set JSON file")
    p.add_argument("--sweep", type=int, default=0, metavar="N",
                   help="instead of FILE: compare N random sets of each kind (plain, offsets, jitter)")
    p.add_argument("--policy", default="fp", help="fp or edf (default fp)")
    p.add_argument("--duration", default=None, help="simulated time (default: as rt simulate)")
    p.add_argument("--seed", type=int, default=0, help="seed of l4sim's jitter generator")
    p.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    a = p.parse_args(argv)
    if a.sweep > 0:
        why = simso_status()
        if why is not None:
            print(f"l4sim: {why}; {INSTALL_HINT}", file=sys.stderr)
            return 2
        result = sweep(a.sweep, a.seed)
        if a.as_json:
            print(json.dumps(result))
        else:
            for policy, kinds in result.items():
                print(f"{policy.upper():<3} " + ", ".join(f"{kind}: {ok}/{total} agree"
                                                          for kind, (ok, total) in kinds.items()))
        return 0 if all(ok == total for kinds in result.values() for ok, total in kinds.values()) else 1
    if a.file is None:
        print("l4sim: give a task-set FILE (or --sweep N)", file=sys.stderr)
        return 2
    try:
        ts, pol, end = prepare(a.file, a.policy, a.duration)
    except CompareError as e:
        print(f"l4sim: {e}", file=sys.stderr)
        return 2
    c = compare(ts, pol, end, a.seed)
    print(json.dumps(c.to_json(ts)) if a.as_json else format_comparison(c, ts))
    return 0 if c.agree else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
