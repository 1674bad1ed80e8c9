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
from types import ModuleType
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


def load_scenario(name: str) -> ModuleType:
    """Find a scenario by name (``l4sim.scenarios.NAME``) or by path to a .py file."""
    if name.endswith(".py") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise BootError(f"scenario file {name} not found: give an existing .py file or a scenario name")
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
    wall: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        k = self.kernel
        comps = []
        for th in k.threads:
            comps.append({
                "name": th.name,
                "task": th.task.name if th.task is not None else "",
                "exit": th.exit_code if th.state is TS.DEAD else None,
                "state": th.state.name.lower() + (" (faulted)" if th.faulted else ""),
                "cpu": th.cpu,
                "cpu_ns": th.cpu_ns,
                "ipcs": th.ipcs,
                "faults": th.pfaults,
                "faulted": th.faulted,
                "switches": th.switches,
            })
        return {
            "simulated_ns": k.machine.now,
            "ipcs": k.ipc_count,
            "kernel_invocations": k.kinvokes,
            "context_switches": k.context_switches,
            "exceptions": k.exceptions,
            "cores": len(k.cores),
            "idle_ns": [c.idle_ns for c in k.cores],
            "stopped_because": self.reason,
            "components": comps,
        }


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
    root = mod.setup(kernel)
    stop = (lambda: root.state is TS.DEAD) if isinstance(root, Thread) else None
    while True:
        reason = kernel.run(until=until, stop=stop, max_events=PROGRESS_EVENTS if progress else None)
        if reason != "events":
            break
        assert progress is not None
        progress(kernel)
    return BootResult(kernel, tracer, reason, root if isinstance(root, Thread) else None)


#: events between two progress reports of a long boot
PROGRESS_EVENTS = 20_000


def terminal_progress(out: TextIO) -> Callable[[Kernel], None]:
    """A progress line for a terminal, rewritten in place (``\r``)."""

    def show(kernel: Kernel) -> None:
        out.write(f"\r  ... simulated {kernel.machine.now / 1e6:10.3f} ms, {kernel.ipc_count:,} IPCs ")
        out.flush()

    return show


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable summary table."""
    lines = [
        f"simulated time {s['simulated_ns'] / 1e6:.3f} ms on {s['cores']} cores, "
        f"{s['ipcs']} IPCs, {s['kernel_invocations']} kernel invocations, "
        f"{s['context_switches']} context switches, {s['exceptions']} exceptions",
        "",
        f"{'thread':<14} {'task':<12} {'cpu':>3} {'state':<16} {'exit':>5} {'cpu time':>12} {'IPCs':>6}"
        f" {'faults':>6}",
    ]
    for c in s["components"]:
        ex = "-" if c["exit"] is None else str(c["exit"])
        lines.append(f"{c['name'][:14]:<14} {c['task'][:12]:<12} {c['cpu']:>3} {c['state']:<16} {ex:>5} "
                     f"{c['cpu_ns'] / 1e3:>9.1f} us {c['ipcs']:>6} {c['faults']:>6}")
    return "\n".join(lines)


def stdout() -> TextIO:
    return sys.stdout
