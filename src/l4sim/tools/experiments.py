"""What a sweep can run: every scenario ``l4sim boot`` starts, and the registered experiments.

A sweep names what to run as ``scenario``: a scenario name or a ``.py`` path (booted as
``l4sim boot`` does, with the parameters ``cores`` and ``until``), or ``experiment:NAME`` for an
experiment from :data:`EXPERIMENTS`.  Each run is a function of its seed and parameters
only, returning the JSON summary a ``--json`` run would print; that is what makes a sweep's
results independent of where and in which order its runs ran.

An experiment joins the registry with the :func:`experiment` decorator in a module listed in
:data:`EXPERIMENT_MODULES` (imported when a sweep first looks an experiment up)::

    @experiment("kmem", Param("quota", 65536, positive_int, "the factory's quota in bytes"),
                doc="kernel-memory exhaustion under a quota")
    def kmem(seed: int, params: dict[str, Any]) -> dict[str, Any]:
        ...  # run it; return the summary

Built in: ``experiment:rt-simulate``, ``l4sim rt simulate`` over a task set generated from the
seed (UUniFast utilisations, periods from a harmonic menu) with the parameters ``util``,
``n_tasks`` and ``policy``.
"""

from __future__ import annotations

import importlib
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: the prefix that names a registered experiment
PREFIX = "experiment:"
#: modules that register experiments (a later experiment adds its module here)
EXPERIMENT_MODULES = ("l4sim.tools.experiments",)


class ExperimentError(ValueError):
    """A scenario, experiment or parameter a sweep cannot run: one line naming it and the fix."""


@dataclass(frozen=True)
class Param:
    """One parameter of an experiment: its name, default, check (returns the value to use or
    raises ValueError with the fix) and what it means."""

    name: str
    default: Any
    check: Callable[[Any], Any]
    help: str


@dataclass(frozen=True)
class Experiment:
    """Something a sweep runs: ``run(seed, params)`` returns the run's summary."""

    name: str
    run: Callable[[int, dict[str, Any]], dict[str, Any]]
    params: tuple[Param, ...]
    doc: str = ""

    def settle(self, given: dict[str, Any]) -> dict[str, Any]:
        """``given`` checked and completed with the defaults (ExperimentError when a name is
        unknown or a value unusable)."""
        known = {p.name: p for p in self.params}
        for name in given:
            if name not in known:
                accepted = ", ".join(known) or "none"
                raise ExperimentError(f"{self.name} takes no parameter {name!r}; its parameters: {accepted}")
        out = {}
        for p in self.params:
            value = given.get(p.name, p.default)
            try:
                out[p.name] = p.check(value) if value is not None else None
            except ValueError as e:
                raise ExperimentError(f"{self.name}: {p.name} = {value!r}: {e}") from None
        return out


#: registered experiments by name (without the prefix)
EXPERIMENTS: dict[str, Experiment] = {}


def experiment(name: str, *params: Param, doc: str = "") -> Callable[[Callable[[int, dict[str, Any]], dict[str, Any]]],
                                                                       Callable[[int, dict[str, Any]], dict[str, Any]]]:
    """Register the decorated ``run(seed, params) -> summary`` as ``experiment:NAME``."""

    def register(fn: Callable[[int, dict[str, Any]], dict[str, Any]]) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
        EXPERIMENTS[name] = Experiment(name, fn, params, doc or (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return register


def _load_modules() -> None:
    for mod in EXPERIMENT_MODULES:
        importlib.import_module(mod)


def experiment_names() -> list[str]:
    """Every registered experiment, as a sweep names it."""
    _load_modules()
    return [PREFIX + n for n in sorted(EXPERIMENTS)]


# -- parameter checks ---------------------------------------------------------------------------


def positive_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError("give a whole number >= 1")
    return v


def cores_count(v: Any) -> int:
    from l4sim.machine.board import MAX_CORES

    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_CORES:
        raise ValueError(f"give a number of cores 1..{MAX_CORES}")
    return v


def time_ns(v: Any) -> int:
    """A time with a unit (``"20ms"``) as nanoseconds."""
    from l4sim.tools.boot import BootError, parse_time

    if not isinstance(v, str):
        raise ValueError('give a time with a unit as a string, e.g. "20ms"')
    try:
        return parse_time(v, "the time", positive=True)
    except BootError as e:
        raise ValueError(str(e).replace("the time ", "", 1)) from None


def utilisation(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 2:
        raise ValueError("give a utilisation 0 < util <= 2 (1.0: the core fully loaded)")
    return float(v)


def policy_name(v: Any) -> str:
    if v not in ("fp", "edf"):
        raise ValueError('give "fp" or "edf"')
    return str(v)


def flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("give true or false")
    return v


# -- boot scenarios -----------------------------------------------------------------------------


#: what every booted scenario accepts
BOOT_PARAMS = (
    Param("cores", 2, cores_count, "simulated cores (l4sim boot --cores)"),
    Param("until", None, time_ns, 'stop at this simulated time, e.g. "20ms" (l4sim boot --until)'),
)


def _boot_run(scenario: str) -> Callable[[int, dict[str, Any]], dict[str, Any]]:
    def run(seed: int, params: dict[str, Any]) -> dict[str, Any]:
        from l4sim.tools.boot import boot

        res = boot(scenario, cores=params["cores"], seed=seed, until=params["until"], console=io.StringIO())
        return res.summary()

    return run


def find(scenario: str) -> Experiment:
    """The experiment a sweep's ``scenario`` names (ExperimentError when there is none)."""
    if scenario.startswith(PREFIX):
        _load_modules()
        exp = EXPERIMENTS.get(scenario[len(PREFIX):])
        if exp is None:
            raise ExperimentError(f"unknown experiment {scenario!r}; known: {', '.join(experiment_names())}")
        return exp
    from l4sim.tools.boot import BootError, load_scenario

    try:
        load_scenario(scenario)
    except BootError as e:
        raise ExperimentError(f"{e} (or an experiment: {', '.join(experiment_names())})") from None
    return Experiment(scenario, _boot_run(scenario), BOOT_PARAMS, "l4sim boot " + scenario)


# -- rt simulate over generated task sets -------------------------------------------------------

#: periods (ms) a generated task takes from: all divide 200 ms, so a set's hyperperiod (and
#: the default simulated time) stays short whatever the draw
PERIODS_MS = (10, 20, 25, 40, 50, 100, 200)


def uunifast(n: int, util: float, rng: random.Random) -> list[float]:
    """``n`` task utilisations summing to ``util``, uniformly distributed over that simplex
    (Bini and Buttazzo, "Measuring the performance of schedulability tests", 2005)."""
    out = []
    rest = util
    for i in range(1, n):
        nxt = rest * rng.random() ** (1.0 / (n - i))
        out.append(rest - nxt)
        rest = nxt
    out.append(rest)
    return out


def generate_taskset(n: int, util: float, seed: int) -> Any:
    """A periodic task set of ``n`` tasks with total utilisation about ``util`` (each wcet a
    whole number of microseconds, at least 1), drawn from ``seed`` alone."""
    from l4sim.realtime.taskset import build

    rng = random.Random(seed)
    rows = []
    for i, u in enumerate(uunifast(n, util, rng)):
        period_us = rng.choice(PERIODS_MS) * 1000
        rows.append({"name": f"t{i:02d}", "period": period_us,
                     "wcet": max(1, min(period_us, round(u * period_us)))})
    return build(rows, "us")


@experiment(
    "rt-simulate",
    Param("util", 0.7, utilisation, "the task set's total utilisation"),
    Param("n_tasks", 10, positive_int, "tasks in the set"),
    Param("policy", "fp", policy_name, '"fp" (rate monotonic) or "edf"'),
    Param("duration", None, time_ns, 'simulated time, e.g. "400ms" (default: as rt simulate)'),
    Param("ideal", False, flag, "kernel operations take no time (rt simulate --ideal)"),
    doc="l4sim rt simulate over a task set generated from the seed",
)
def rt_simulate(seed: int, params: dict[str, Any]) -> dict[str, Any]:
    """``l4sim rt simulate`` of a generated task set: its ``--json`` result, each task's period
    and wcet, and the totals ``jobs``, ``misses`` and ``utilisation`` (as generated), and the
    analysis's verdict ``schedulable``."""
    from l4sim.realtime.analysis import analyze
    from l4sim.realtime.sim import simulate, zero_costs

    if params["n_tasks"] > 100:
        raise ExperimentError(f"n_tasks = {params['n_tasks']}: give at most 100 tasks")
    ts = generate_taskset(params["n_tasks"], params["util"], seed)
    pol = params["policy"]
    res = simulate(ts, pol, params["duration"], costs=zero_costs() if params["ideal"] else None, seed=seed)
    out = res.to_json(ts)
    for row, task in zip(out["tasks"], ts.tasks, strict=True):
        row["period"], row["wcet"] = ts.to_unit(task.period), ts.to_unit(task.wcet)
    out["jobs"] = sum(t.jobs for t in res.tasks)
    out["misses"] = res.misses
    out["utilisation"] = round(float(ts.utilisation()), 6)
    out["schedulable"] = analyze(ts, "edf" if pol == "edf" else "fp").schedulable
    return out
