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

from l4sim.kernel.comm import COMM_MODELS
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.kmem import KMEM_MODELS
from l4sim.kernel.objects import TS, Thread
from l4sim.kernel.trace import Tracer
from l4sim.machine.board import MAX_CORES, Machine
from l4sim.tools.timeparse import BootError, parse_time

__all__ = ["BootError", "BootInterrupted", "boot", "parse_time"]


class BootInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: still a KeyboardInterrupt, with the run's ``tracer`` (None when it was
    not traced) so that the trace so far can be kept."""

    def __init__(self, tracer: Tracer | None) -> None:
        super().__init__()
        self.tracer = tracer


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
    #: the screenshots taken (``l4sim.tools.display.Screenshot``), in the order asked for
    screenshots: list[Any] = field(default_factory=list)
    #: what the scenario's ``report(result)`` found (an attack table), merged into the summary
    report: dict[str, Any] | None = None
    #: the report as the scenario's ``format_report(report)`` words it for the text summary
    report_text: str | None = None

    def summary(self) -> dict[str, Any]:
        """The run in figures: totals, and one entry per program (task) with its threads' sums.

        The fields, and the text table that shows them, are described in docs/runtime.md
        ("The boot summary").  A program's ``status`` is its lifecycle, in one vocabulary
        (:data:`STATUSES`): what its parent (ned) recorded when it has one, else what its
        threads tell; ``thread_states`` is what each of its threads is doing in the kernel at
        the end (:data:`THREAD_STATES`), a separate vocabulary.
        """
        k = self.kernel
        # the parent's record of the program in a task, matched by identity (a runtime system's
        # ``program_of``), never by name: a program cannot take over the row of the runtime's own tasks
        program_of = getattr(self.scenario, "program_of", None)
        threads_of: dict[int, list[Thread]] = {}
        for th in k.threads:
            if th.task is not None:
                threads_of.setdefault(th.task.kid, []).append(th)
        end, ahead = _reached(k)
        counted_fn = getattr(self.scenario, "realtime_stats", None)
        counted = counted_fn(end) if callable(counted_fn) else {}
        comps = []
        for task in k.tasks:
            ths = threads_of.get(task.kid, [])
            if not ths:
                continue
            child = program_of(task) if program_of is not None else None
            status, exit_code, fault = _program_status(ths, child)
            comps.append({
                "name": task.name,
                # the kernel's ids of the task and of the task that made it (-1: made at boot)
                "task": task.kid,
                "creator": task.creator,
                "status": status,
                "exit": exit_code,
                "fault": fault,
                # how a program ned started ended without a word (its task or main thread deleted)
                "ended": getattr(child, "ended", None) if status == "ended" else None,
                "threads": len(ths),
                "thread_states": [thread_state(t) for t in ths],
                "cpu": ths[0].cpu,
                "cpu_ns": sum(t.cpu_ns - ahead.get(t.kid, 0) for t in ths),
                "ipcs": sum(t.ipcs for t in ths),
                "page_faults": sum(t.pfaults for t in ths),
                "switches": sum(t.switches for t in ths),
                **_realtime(ths, counted.get(task.name), end),
            })
        out: dict[str, Any] = {
            "simulated_ns": end,
            "ipcs": k.ipc_count,
            "kernel_invocations": k.kinvokes,
            "context_switches": k.context_switches,
            "exceptions": k.exceptions,
            "cores": len(k.cores),
            "comm_model": k.comm_model,
            "kmem_model": k.kmem_model,
            # a core idle at the end has been idle since idle_since, up to where the run got
            "idle_ns": [c.idle_ns + (max(0, end - c.idle_since) if c.idle_since is not None else 0)
                        for c in k.cores],
            "stopped_because": self.reason,
            "components": comps,
            # the hardware's own counters, on a board with devices
            **({"devices": k.machine.device_stats()} if k.machine.board else {}),
        }
        # a startup script's Linux instances (``linux(...)``): figures only their personalities know
        linux_rows = getattr(self.scenario, "linux_rows", None)
        rows = linux_rows() if callable(linux_rows) else []
        if rows:
            out["linux"] = rows
        return out


#: a program's lifecycle (``status`` in the summary): still running; exited with a code of its
#: own; ended by a fault; killed by its parent (ned) without either; or ended without a word:
#: its task or main thread deleted, or its parent capability given up (ned says how, in
#: ``ended``), or its threads deleted by whoever held them, with no parent record to say how
#: (a Linux process, whose exit status only its personality knows)
STATUSES = ("running", "exited", "fault", "killed", "ended")

#: what a thread is doing in the kernel at the end of a run (``thread_states``), by kernel state
THREAD_STATES = {
    TS.INACTIVE: "inactive",
    TS.READY: "ready",
    TS.SEND: "blocked in send",
    TS.RECV: "blocked in receive",
    TS.DEAD: "dead",
    TS.DEPLETED: "out of budget",
    TS.WAIT_RELEASE: "waiting for its release",
}


def thread_state(th: Thread) -> str:
    """One thread's kernel state in the summary's words; a thread the kernel stopped because
    nobody handled its exception is "stopped by a fault" rather than "inactive"."""
    if th.state is TS.INACTIVE and th.faulted:
        return "stopped by a fault"
    return THREAD_STATES[th.state]


def _program_status(ths: list[Thread], child: Any) -> tuple[str, int | None, str | None]:
    """(status, exit code, fault description) of a program with threads ``ths``.

    A program ned started (``child``, a loader ``Child``) is what ned recorded: running until
    it ended, then exited with its code, ended by a fault (the description ned printed), ended
    without a word (``child.ended`` says how), or killed (ended by ned without any of these: a
    daemon at the end).  Any other program (sigma0, moe,
    ned itself, a kernel-level scenario's tasks) is judged by its threads: a fault when one of
    them stopped on an exception nobody handled, running while one is alive, else exited with
    its first thread's exit code, or ended when that thread was deleted without one.
    """
    if child is not None:
        if not child.done:
            return "running", None, None
        if child.fault is not None:
            return "fault", None, str(child.fault)
        if child.exit is not None:
            return "exited", int(child.exit), None
        if getattr(child, "ended", None) is not None:
            return "ended", None, None
        return "killed", None, None
    if any(t.faulted for t in ths):
        return "fault", None, "exception with no handler"
    if any(t.state is not TS.DEAD for t in ths):
        return "running", None, None
    code = ths[0].exit_code
    return ("exited", code, None) if code is not None else ("ended", None, None)


def _reached(k: Kernel) -> tuple[int, dict[int, int]]:
    """How far the run got (ns), and the CPU time charged to threads beyond that point.

    The answer is the furthest a core's clock advanced: a core that ran a chain of traps is
    ahead of the event queue (a run without timers or timeouts never moves the queue's clock
    at all).  A core in the middle of a computation counts up to its start or the queue's
    time, whichever is later: the kernel charges a computation when it begins and sets the
    core's clock to its end, but the part after the stop never ran.  The queue's own time
    counts too: with ``--until`` time passes up to the limit while the cores idle.  The second
    value maps each thread that was computing past the end to the nanoseconds charged for it
    (taken out of its CPU time in the summary).
    """
    now = k.machine.now
    end = max([now, *(max(c.comp_start, now) if c.computing else c.time for c in k.cores)])
    ahead: dict[int, int] = {}
    for c in k.cores:
        if c.computing and c.current is not None and c.time > end:
            ahead[c.current.kid] = ahead.get(c.current.kid, 0) + c.time - end
    return end, ahead


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
         progress: Callable[[Kernel], None] | None = None, comm_model: str | None = None,
         kmem_model: str | None = None, pcap: str | None = None, disk: str | None = None,
         crash_at: int | None = None,
         stop_when: Callable[[Kernel], bool] | None = None, zero_on_free: bool = False,
         input_actions: list[Any] | None = None, screenshots: list[Any] | None = None) -> BootResult:
    """Boot ``scenario`` and run it to its end.

    The result's ``reason`` says why the run stopped: ``stop`` (the system ended, or
    ``stop_when(kernel)`` said so between two events), ``idle`` (nothing was left to happen),
    ``until`` (the time limit) or ``crash`` (the power was cut at ``crash_at``).  Ctrl-C during
    the run raises :class:`BootInterrupted`, which carries the trace recorded so far.
    ``pcap`` records every cable of the board's NICs, ``disk`` is the image of the script's
    disk (docs/drivers.md).  The machine's power goes at the end of every run: capture files
    are closed, disks lose what their write caches held.

    ``input_actions`` (:func:`l4sim.tools.display.parse_input`) drive the keyboard and
    pointer; without them a scenario's own ``DEFAULT_INPUT`` script does, if it has one.
    ``screenshots`` (:class:`l4sim.tools.display.Screenshot`) are taken during and at the
    end of the run, into the result's ``screenshots`` (the caller writes the files).
    """
    if not 1 <= cores <= MAX_CORES:
        raise BootError(f"--cores {cores} is out of range: a machine has 1..{MAX_CORES} cores")
    if comm_model is not None and comm_model not in COMM_MODELS:
        raise BootError(f"unknown communication model {comm_model!r}: choose one of {', '.join(COMM_MODELS)}")
    if kmem_model is not None and kmem_model not in KMEM_MODELS:
        raise BootError(f"unknown kernel-memory model {kmem_model!r}: choose one of {', '.join(KMEM_MODELS)}")
    mod = load_scenario(scenario)
    machine = Machine(cores=cores, seed=seed, console=console)
    machine.options.update({k: v for k, v in (("pcap", pcap), ("disk", disk)) if v is not None})
    if zero_on_free:
        machine.options["zero_on_free"] = True  # moe clears freed frames (kernel/lifetime.py)
    if crash_at is not None:
        until = crash_at if until is None else min(until, crash_at)
    tracer = Tracer() if trace else None
    kernel = Kernel(machine, tracer=tracer, comm_model=comm_model or "capabilities",
                    kmem_model=kmem_model or "quotas")
    try:
        root = mod.setup(kernel)
    except OSError as e:  # a device's host file (--pcap, --disk, a script's image)
        machine.power_off()
        raise BootError(f"cannot open {e.filename}: {e.strerror}; choose a writable path") from None
    except Exception as e:
        from l4sim.runtime.ned import ScriptError

        if isinstance(e, ScriptError):
            raise BootError(str(e)) from None
        raise
    from l4sim.tools.display import InputError, parse_input, schedule_input, schedule_screenshots

    try:
        if input_actions is None and isinstance(getattr(mod, "DEFAULT_INPUT", None), str):
            input_actions = parse_input(mod.DEFAULT_INPUT, f"{scenario}'s input")
        if input_actions:
            schedule_input(machine, input_actions)
        shots = list(screenshots or [])
        at_end = schedule_screenshots(machine, shots)
    except InputError as e:
        kernel.shutdown()  # nothing ran: its programs' coroutines are closed, not left to warn
        machine.power_off()
        raise BootError(str(e)) from None
    if isinstance(root, Thread):
        stop: Callable[[], bool] | None = lambda: root.state is TS.DEAD  # noqa: E731
    else:
        stop = getattr(root, "done", None)
    if stop_when is not None:
        ended = stop
        stop = lambda: stop_when(kernel) or (ended is not None and ended())  # noqa: E731
    try:
        while True:
            reason = kernel.run(until=until, stop=stop, max_events=PROGRESS_EVENTS if progress else None)
            if reason != "events":
                break
            assert progress is not None
            progress(kernel)
    except KeyboardInterrupt:
        # Ctrl-C: the run ends here; what it traced so far goes with the interrupt (the records
        # are whole: each is appended at once), and the caller decides what to keep
        kernel.shutdown()
        machine.power_off()
        raise BootInterrupted(tracer) from None
    at_end()
    kernel.shutdown()
    machine.power_off()
    if crash_at is not None and reason == "until" and machine.now >= crash_at:
        reason = "crash"
    res = BootResult(kernel, tracer, reason, root if isinstance(root, Thread) else None,
                     programs=list(getattr(root, "programs", []) or []), scenario=root,
                     screenshots=shots)
    report = getattr(mod, "report", None)
    if callable(report):
        res.report = report(res)
        fmt = getattr(mod, "format_report", None)
        if callable(fmt):
            res.report_text = fmt(res.report)
    return res


#: events between two progress reports of a long boot
PROGRESS_EVENTS = 20_000


def terminal_progress(out: TextIO) -> Callable[[Kernel], None]:
    """A progress line for a terminal, rewritten in place (``\r``); its time is the summary's
    (:func:`_reached`)."""

    def show(kernel: Kernel) -> None:
        out.write(f"\r  ... simulated {_reached(kernel)[0] / 1e6:10.3f} ms, {kernel.ipc_count:,} IPCs ")
        out.flush()

    return show


#: ``stopped_because`` in words
_STOPPED = {"stop": "the system ended", "idle": "nothing was left to happen",
            "until": "the --until limit was reached", "events": "the event limit was reached",
            "crash": "the power was cut (--crash-at)"}


def status_text(c: dict[str, Any]) -> str:
    """A program's status as the table shows it: ``running``, ``exited N``, ``fault:
    DESCRIPTION`` (never shortened), ``killed``, ``ended: HOW`` or ``ended``."""
    if c["status"] == "exited":
        return f"exited {c['exit']}"
    if c["status"] == "fault":
        return f"fault: {c['fault']}"
    if c["status"] == "ended" and c.get("ended"):
        return f"ended: {c['ended']}"
    return str(c["status"])


def threads_text(states: list[str]) -> str:
    """``thread_states`` counted, in the order they first appear: ``1 blocked in receive, 1 dead``."""
    counts: dict[str, int] = {}
    for st in states:
        counts[st] = counts.get(st, 0) + 1
    return ", ".join(f"{n} {st}" for st, n in counts.items())


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable summary: the run's figures, then a table with one row per program.

    Columns are as wide as their widest entry, so long program names stay aligned; the
    status comes last and is never cut.
    """
    idle = ", ".join(f"{ns / 1e6:.3f}" for ns in s["idle_ns"])
    lines = [
        f"simulated time {s['simulated_ns'] / 1e6:.3f} ms on {s['cores']} core{'s' if s['cores'] != 1 else ''} "
        f"(idle {idle} ms); stopped because {_STOPPED.get(s['stopped_because'], s['stopped_because'])}",
        f"{s['ipcs']} IPCs, {s['kernel_invocations']} kernel invocations, "
        f"{s['context_switches']} context switches, {s['exceptions']} exceptions",
        "",
    ]
    header = ("program", "core", "thr", "cpu time", "IPCs", "page faults", "switches",
              "threads at the end", "status")
    right = (False, True, True, True, True, True, True, False, False)
    rows: list[tuple[str, ...]] = [header]
    comps, guests = _guests_apart(s)
    for c in comps:
        rows.append(_row(c["name"], c))
        for g in guests.get(c.get("task", -1), ()):
            rows.append(g)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        cells = [f"{v:>{w}}" if ra else f"{v:<{w}}" for v, w, ra in zip(r[:-1], widths, right, strict=False)]
        lines.append("  ".join([*cells, r[-1]]))
    if s.get("devices"):
        lines.append("")
        for name, st in s["devices"].items():
            lines.append(f"{name}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in st.items()))
    if s.get("linux"):
        lines.append("")
        lrows: list[tuple[str, str, str, str]] = [("linux", "processes", "system calls", "status")]
        for li in s["linux"]:
            lrows.append((li["name"], str(li["processes"]), str(li["syscalls"]),
                          "running" if li["status"] is None else f"exit {li['status']}"))
        lw = [max(len(row[i]) for row in lrows) for i in range(3)]
        for row in lrows:
            lines.append(f"{row[0]:<{lw[0]}}  {row[1]:>{lw[1]}}  {row[2]:>{lw[2]}}  {row[3]}")
    rt = [c for c in s["components"] if "jobs" in c]
    if rt:
        lines.append("")
        width = max(len(c["name"]) for c in rt)
        for c in rt:
            kind = "real time (reservation)" if c["realtime"] else "periodic, best effort"
            lines.append(f"{c['name']:<{width}}  {kind}: {c['jobs']} jobs, {c['deadline_misses']} deadline misses")
    return "\n".join(lines)


def _row(name: str, c: dict[str, Any]) -> tuple[str, ...]:
    """A component's row of the summary's table, under ``name``."""
    return (name, str(c["cpu"]), str(c["threads"]), f"{c['cpu_ns'] / 1e3:.1f} us", str(c["ipcs"]),
            str(c["page_faults"]), str(c["switches"]), threads_text(c["thread_states"]), status_text(c))


def _guests_apart(s: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[int, list[tuple[str, ...]]]]:
    """The summary's programs without the tasks a Linux instance made (its processes: exec
    makes a new task), and for each instance's task the rows that stand for them: one row of
    sums for those that ended (an instance runs hundreds in a shell loop) and one per task
    still alive, named ``  INSTANCE: NAME``.  The JSON summary keeps every task as a
    component, with ``task`` and ``creator`` to group them."""
    instances = {li["name"] for li in s.get("linux", ())}
    by_kid = {c.get("task", -1): c for c in s["components"]}
    inst_kids = {kid for kid, c in by_kid.items() if c["name"] in instances and c.get("creator", -1) != kid}

    def instance_of(c: dict[str, Any]) -> int | None:
        seen = 0
        while c.get("creator", -1) in by_kid and seen < len(by_kid):
            if c["creator"] in inst_kids:
                return int(c["creator"])
            c = by_kid[c["creator"]]
            seen += 1
        return None

    comps: list[dict[str, Any]] = []
    grouped: dict[int, list[dict[str, Any]]] = {}
    for c in s["components"]:
        owner = instance_of(c) if inst_kids else None
        if owner is None:
            comps.append(c)
        else:
            grouped.setdefault(owner, []).append(c)
    rows: dict[int, list[tuple[str, ...]]] = {}
    for owner, cs in grouped.items():
        name = by_kid[owner]["name"]
        out = rows.setdefault(owner, [])
        for c in cs:
            if c["status"] != "ended":
                out.append(_row(f"  {name}: {c['name']}", c))
        done = [c for c in cs if c["status"] == "ended"]
        if done:
            cores = sorted({c["cpu"] for c in done})
            out.append((f"  {name}: {len(done)} tasks", ",".join(map(str, cores)),
                        str(sum(c["threads"] for c in done)), f"{sum(c['cpu_ns'] for c in done) / 1e3:.1f} us",
                        str(sum(c["ipcs"] for c in done)), str(sum(c["page_faults"] for c in done)),
                        str(sum(c["switches"] for c in done)), "", "ended"))
    return comps, rows


def stdout() -> TextIO:
    return sys.stdout


def format_attacks(report: dict[str, Any]) -> str:
    """A scenario's attack table: each attack, whether it was refused, and by what."""
    rows = [("attack", "refused", "by")] + [
        (a["name"], "yes" if a["refused"] else "NO", a["by"]) for a in report["attacks"]]
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    lines.append(f"the honest run {'worked' if report.get('honest_ok') else 'FAILED'}")
    return "\n".join(lines)
