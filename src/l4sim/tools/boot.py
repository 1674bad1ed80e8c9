"""Booting a scenario: machine, kernel, tracer, run loop, and the summary.

A scenario is a module (``l4sim.scenarios.NAME`` or a ``.py`` file) with a
``setup(kernel)`` function that programs devices and creates the root task,
returning the root thread.  The run ends when the root thread has exited,
nothing is left to happen, or the time limit is reached.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS, Thread
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import MAX_CORES, Machine


class BootError(Exception):
    """A problem the user caused: one line naming it and the fix."""


_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def parse_time(text: str) -> int:
    """``"250ms"``, ``"3s"``, ``"100us"``, ``"1500"`` (ns) -> nanoseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s)?\s*", text)
    if not m:
        raise BootError(f"bad time {text!r}: use a number with a unit, e.g. 500us, 20ms, 2s")
    value, unit = m.group(1), m.group(2) or "ns"
    return round(float(value) * _UNITS[unit])


class _ScriptScenario:
    """A startup script booted on the runtime (what ``l4sim boot PATH.py`` means)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def setup(self, kernel: Kernel) -> Any:
        from l4sim.runtime.ned import ScriptError
        from l4sim.runtime.system import setup_script

        try:
            return setup_script(kernel, self.path)
        except ScriptError as e:
            raise BootError(str(e)) from None


def load_scenario(name: str) -> Any:
    """Find a scenario by name (``l4sim.scenarios.NAME``) or a startup script by path.

    A ``.py`` path is a startup script for ned (``start(...)``, ``channel(...)``);
    a scenario module written for l4sim's own kernel-level setup (one that
    defines ``setup(kernel)``) is accepted by path too.
    """
    if name.endswith(".py") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise BootError(f"scenario file {name} not found: give an existing .py file or a scenario name")
        try:
            source = path.read_text()
        except OSError as e:
            raise BootError(f"{name}: cannot read ({e.strerror})") from None
        if "def setup(" not in source:
            return _ScriptScenario(path)
        spec = importlib.util.spec_from_file_location(f"l4sim_scenario_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except SyntaxError as e:
            raise BootError(f"{path}:{e.lineno}: syntax error: {e.msg}") from None
    else:
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise BootError(f"bad scenario name {name!r}: use one of {', '.join(scenario_names())}")
        try:
            mod = importlib.import_module(f"l4sim.scenarios.{name.replace('-', '_')}")
        except ModuleNotFoundError:
            raise BootError(
                f"unknown scenario {name!r}: use one of {', '.join(scenario_names())} or a path to a .py file"
            ) from None
    if not callable(getattr(mod, "setup", None)):
        raise BootError(f"scenario {name} has no setup(kernel) function: define one that creates the root task")
    return mod


def scenario_names() -> list[str]:
    """Names of the built-in scenarios (found by file, not imported: they sit above us)."""
    folder = Path(__file__).resolve().parent.parent / "scenarios"
    return sorted(p.stem.replace("_", "-") for p in folder.glob("*.py") if not p.stem.startswith("_"))


@dataclass
class BootResult:
    kernel: Kernel
    tracer: Tracer | None
    reason: str
    root: Thread | None
    programs: list[Any] = field(default_factory=list)
    #: what the scenario's setup returned (for ``realtime_stats``, see :func:`_realtime`)
    scenario: Any = None

    def summary(self) -> dict[str, Any]:
        """The run in figures: totals, and per program (task) its threads' sums.

        A program's exit status is what its parent (ned) recorded when there
        is one, else its first thread's exit code; ``fault`` says how a
        program that faulted ended.
        """
        k = self.kernel
        # the parent's record of the program in a task, matched by identity (a runtime system's
        # ``program_of``), never by name: a program cannot take over the row of the runtime's own tasks
        program_of = getattr(self.scenario, "program_of", None)
        threads_of: dict[int, list[Thread]] = {}
        for th in k.threads:
            if th.task is not None:
                threads_of.setdefault(th.task.kid, []).append(th)
        comps = []
        end = k.machine.now if self.reason == "until" else max(k.machine.now, *(c.time for c in k.cores))
        counted_fn = getattr(self.scenario, "realtime_stats", None)
        counted = counted_fn(end) if callable(counted_fn) else {}
        for task in k.tasks:
            ths = threads_of.get(task.kid, [])
            if not ths:
                continue
            main = ths[0]
            child = program_of(task) if program_of is not None else None
            if child is not None:
                exit_code, fault = (child.exit, child.fault) if child.done else (None, None)
                state = child.status
            else:
                dead = main.state is TS.DEAD
                exit_code = main.exit_code if dead else None
                fault = "exception" if any(t.faulted for t in ths) else None
                state = main.state.name.lower() + (" (faulted)" if main.faulted else "")
            comps.append({
                "name": task.name,
                "threads": len(ths),
                "exit": exit_code,
                "fault": fault,
                "state": state,
                "cpu": main.cpu,
                "cpu_ns": sum(t.cpu_ns for t in ths),
                "ipcs": sum(t.ipcs for t in ths),
                "faults": sum(t.pfaults for t in ths),
                "faulted": fault is not None,
                "switches": sum(t.switches for t in ths),
                **_realtime(ths, counted.get(task.name), end),
            })
        return {
            # where the cores got to (a run that ends between events), or the limit it was given
            "simulated_ns": end,
            "ipcs": k.ipc_count,
            "kernel_invocations": k.kinvokes,
            "context_switches": k.context_switches,
            "exceptions": k.exceptions,
            "cores": len(k.cores),
            "idle_ns": [c.idle_ns for c in k.cores],
            "stopped_because": self.reason,
            "components": comps,
        }


def _realtime(ths: list[Thread], counted: dict[str, int] | None, end: int) -> dict[str, Any]:
    """A program's real-time fields: ``realtime`` (some thread has a reservation), ``jobs`` and
    ``deadline_misses``.

    With reservations the figures are the kernel's (``thread.resv``), summed over the reserved
    threads; a periodic job whose deadline passed before ``end`` without completing counts as a
    miss, as in ``l4sim rt simulate``.  A program without one may have counted its own periodic
    jobs (``counted``, from the scenario's ``realtime_stats``): then ``realtime`` is false and the
    figures are the program's.  Otherwise there are no such fields.
    """
    resvs = [t.resv for t in ths if t.resv is not None]
    if resvs:
        jobs = misses = 0
        for r in resvs:
            jobs += r.jobs
            misses += r.misses
            if r.periodic and end > r.origin + r.deadline:
                misses += max(0, (end - 1 - r.origin - r.deadline) // r.period + 1 - r.jobs)
        return {"realtime": True, "jobs": jobs, "deadline_misses": misses}
    if counted is not None:
        return {"realtime": False, "jobs": counted["jobs"], "deadline_misses": counted["deadline_misses"]}
    return {}


def boot(scenario: str = "default", cores: int = 2, seed: int = 0, until: int | None = None,
         trace: bool = False, console: TextIO | None = None,
         progress: Callable[[Kernel], None] | None = None) -> BootResult:
    """Boot ``scenario`` and run it to its end."""
    if not 1 <= cores <= MAX_CORES:
        raise BootError(f"--cores {cores} is out of range: a machine has 1..{MAX_CORES} cores")
    mod = load_scenario(scenario)
    machine = Machine(cores=cores, seed=seed, console=console)
    tracer = Tracer() if trace else None
    kernel = Kernel(machine, tracer=tracer)
    try:
        root = mod.setup(kernel)
    except Exception as e:
        from l4sim.runtime.ned import ScriptError

        if isinstance(e, ScriptError):
            raise BootError(str(e)) from None
        raise
    if isinstance(root, Thread):
        stop: Callable[[], bool] | None = lambda: root.state is TS.DEAD  # noqa: E731
    else:
        stop = getattr(root, "done", None)
    while True:
        reason = kernel.run(until=until, stop=stop, max_events=PROGRESS_EVENTS if progress else None)
        if reason != "events":
            break
        assert progress is not None
        progress(kernel)
    kernel.shutdown()
    return BootResult(kernel, tracer, reason, root if isinstance(root, Thread) else None,
                      programs=list(getattr(root, "programs", []) or []), scenario=root)


#: events between two progress reports of a long boot
PROGRESS_EVENTS = 20_000


def terminal_progress(out: TextIO) -> Callable[[Kernel], None]:
    """A progress line for a terminal, rewritten in place (``\r``)."""

    def show(kernel: Kernel) -> None:
        out.write(f"\r  ... simulated {kernel.machine.now / 1e6:10.3f} ms, {kernel.ipc_count:,} IPCs ")
        out.flush()

    return show


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable summary table, one line per program."""
    lines = [
        f"simulated time {s['simulated_ns'] / 1e6:.3f} ms on {s['cores']} cores, "
        f"{s['ipcs']} IPCs, {s['kernel_invocations']} kernel invocations, "
        f"{s['context_switches']} context switches, {s['exceptions']} exceptions",
        "",
        f"{'program':<14} {'thr':>3} {'cpu':>3} {'status':<40} {'cpu time':>12} {'IPCs':>6} {'faults':>6}",
    ]
    for c in s["components"]:
        if c["fault"] is not None and c["fault"] != "exception":
            status = c["fault"]
        elif c["exit"] is not None:
            status = f"exit {c['exit']}"
        else:
            status = c["state"]
        lines.append(f"{c['name'][:14]:<14} {c['threads']:>3} {c['cpu']:>3} {status[:40]:<40} "
                     f"{c['cpu_ns'] / 1e3:>9.1f} us {c['ipcs']:>6} {c['faults']:>6}")
    rt = [c for c in s["components"] if "jobs" in c]
    if rt:
        lines.append("")
        for c in rt:
            kind = "real time (reservation)" if c["realtime"] else "periodic, best effort"
            lines.append(f"{c['name'][:14]:<14} {kind}: {c['jobs']} jobs, {c['deadline_misses']} deadline misses")
    return "\n".join(lines)


def stdout() -> TextIO:
    return sys.stdout
