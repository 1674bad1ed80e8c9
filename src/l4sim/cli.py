"""The ``l4sim`` command.

Every error a person can cause ends in one line on stderr naming the problem
and the fix, and exit status 2; never a traceback.  Ctrl-C ends any command
with ``l4sim: interrupted`` on stderr and exit status 130 (128 + SIGINT, as a
shell reports it); trace files are written whole or not at all, so an
interrupted command leaves none half-written (``boot`` and ``linux run``
write the trace of the run so far before they stop).  Long benchmarks draw a progress bar on stderr when it is a
terminal, and nothing otherwise.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import click

from l4sim.tools.boot import (
    BootError,
    BootInterrupted,
    boot,
    format_summary,
    parse_time,
    terminal_progress,
)

#: the exit status of a command ended by Ctrl-C (SIGINT)
INTERRUPTED = 130


class _Main(click.Group):
    """The command group: Ctrl-C in any command is one line and status 130, not click's
    ``Aborted!`` and status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()


def _interrupted(detail: str = "") -> None:
    """Leave after Ctrl-C: flush what was printed, one line on stderr, status 130."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    click.echo(f"l4sim: interrupted{detail}", err=True)
    sys.exit(INTERRUPTED)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="l4sim")
def main() -> None:
    """l4sim: the L4 microkernel system on a simulated machine."""


class _Colour:
    """The console on a terminal: each program's log lines in a colour of their own."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        from l4sim.runtime.moe import colourize

        return self.out.write(colourize(text))

    def flush(self) -> None:
        self.out.flush()


def _fail(msg: str) -> None:
    click.echo(f"l4sim: {msg}", err=True)
    sys.exit(2)


def _check_writable(what: str, *paths: str | None) -> None:
    """Refuse, before a run, an output path that could not be written (a missing directory, a
    directory, no permission): a bad path must not cost the run."""
    from l4sim.tools.trace_export import check_writable

    for path in paths:
        if path:
            try:
                check_writable(path)
            except OSError as e:
                _fail(f"cannot write {what}: {e.strerror} ({path}); choose a writable path")


def _write_traces(records: Any, trace_path: str | None, jsonl_path: str | None) -> None:
    """Write the trace files asked for (each whole or not at all)."""
    from l4sim.tools.trace_export import write_chrome, write_jsonl

    try:
        if trace_path:
            write_chrome(records, trace_path)
        if jsonl_path:
            write_jsonl(records, jsonl_path)
    except OSError as e:
        _fail(f"cannot write the trace: {e.strerror} ({e.filename}); choose a writable path")


def _saved(trace_path: str | None, jsonl_path: str | None) -> str:
    """The end of the ``interrupted`` line when traces of the run so far were written."""
    paths = [p for p in (trace_path, jsonl_path) if p]
    return f"; the trace so far is in {' and '.join(paths)}" if paths else ""


@contextlib.contextmanager
def _bench_progress(label: str) -> Iterator[Callable[[int, int, str], None] | None]:
    """A benchmark's progress bar on stderr (click's), only when stderr is a terminal: None
    otherwise, so a pipe or a log file gets nothing.  stdout (the figures, the JSON) is never
    touched."""
    if not sys.stderr.isatty():
        yield None
        return
    bar: Any = None
    shown = [0]

    def step(done: int, total: int, what: str) -> None:
        nonlocal bar
        if bar is None:
            bar = click.progressbar(length=total, label=label, file=sys.stderr, show_eta=False,
                                    show_percent=False, show_pos=True,
                                    item_show_func=lambda item: item)
            bar.__enter__()
        bar.update(done - shown[0], what)
        shown[0] = done

    try:
        yield step
    finally:
        if bar is not None:
            bar.update(bar.length - shown[0], "done")
            bar.__exit__(None, None, None)


@main.command("boot")
@click.argument("scenario", default="default")
@click.option("--cores", default=2, show_default=True, help="number of simulated cores (1..64)")
@click.option("--seed", default=0, show_default=True, help="seed of the scenario's random generator")
@click.option("--until", "until", default=None, help="stop at this simulated time (e.g. 20ms; a unit is required)")
@click.option("--trace", "trace_path", default=None, help="write a Perfetto/Chrome trace JSON here")
@click.option("--jsonl", "jsonl_path", default=None, help="write the raw trace records as JSON lines here")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON on the last line")
def boot_cmd(scenario: str, cores: int, seed: int, until: str | None, trace_path: str | None,
             jsonl_path: str | None, as_json: bool) -> None:
    """Boot SCENARIO (a name, or a path to a .py file) and print what happened.

    Ctrl-C stops the run: the trace files get what was traced so far, exit status 130.
    """
    try:
        limit = parse_time(until, "--until") if until is not None else None
    except BootError as e:
        _fail(str(e))
        return
    _check_writable("the trace", trace_path, jsonl_path)
    show = terminal_progress(sys.stderr) if sys.stderr.isatty() and not as_json else None
    console: Any = _Colour(sys.stdout) if sys.stdout.isatty() else sys.stdout
    try:
        res = boot(scenario, cores=cores, seed=seed, until=limit,
                   trace=bool(trace_path or jsonl_path), console=console, progress=show)
    except BootError as e:
        _fail(str(e))
        return
    except BootInterrupted as e:
        if e.tracer is not None:
            _write_traces(e.tracer.records, trace_path, jsonl_path)
        _interrupted(_saved(trace_path, jsonl_path))
        return
    finally:
        if show is not None:
            sys.stderr.write("\r" + " " * 60 + "\r")
    summary = res.summary()
    if res.tracer is not None:
        _write_traces(res.tracer.records, trace_path, jsonl_path)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo("")
        click.echo(format_summary(summary))
        if trace_path:
            click.echo(f"\ntrace written to {trace_path} (open it in ui.perfetto.dev)")


def _no_progress(done: int, total: int, step: str) -> None:
    """No progress to show (stderr is not a terminal)."""


@main.group("bench")
def bench() -> None:
    """Measure how fast the model runs on this host (a progress bar on stderr when it is a terminal)."""


@bench.command("ipc")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON on the last line")
@click.option("--rounds", default=200_000, show_default=True, help="round trips per measurement")
def bench_ipc_cmd(as_json: bool, rounds: int) -> None:
    """Call/reply-and-wait round trips per second, against a bare coroutine baseline."""
    from l4sim.tools.bench import bench_ipc

    if rounds < 1000:
        _fail(f"--rounds {rounds} is too few to measure: use at least 1000")
    with _bench_progress("bench ipc") as progress:
        r = bench_ipc(rounds, progress=progress or _no_progress)
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
    else:
        click.echo(f"kernel IPC: {r['round_trips_per_s']:,} round trips/s")
        click.echo(f"bare loop:  {r['bare_round_trips_per_s']:,} round trips/s")
        click.echo(f"ratio bare/kernel: {r['ratio']}")


@bench.command("mem")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON on the last line")
@click.option("--pages", default=100_000, show_default=True,
              help="pages mapped, touched and unmapped; the revoked trees have pages/10 and pages mappings")
def bench_mem_cmd(as_json: bool, pages: int) -> None:
    """Mapping database: map+touch+unmap ns per page, recursive revoke of trees and a chain."""
    from l4sim.tools.bench import bench_mem

    if pages < 1000:
        _fail(f"--pages {pages} is too few to measure: use at least 1000")
    with _bench_progress("bench mem") as progress:
        r = bench_mem(pages, progress=progress or _no_progress)
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
        return
    small, large = r["revoke_small_mappings"], r["revoke_large_mappings"]
    rows = [
        (f"map+touch+unmap, program via sigma0 ({pages:,} pages)", f"{r['map_touch_unmap_ns_per_page']:,.0f} ns/page"),
        ("  map (sigma0 IPC map items)", f"{r['map_ns_per_page']:,.0f} ns/page"),
        ("  touch (env.mem.write trap)", f"{r['touch_ns_per_page']:,.0f} ns/page"),
        ("  unmap (task.unmap)", f"{r['unmap_ns_per_page']:,.0f} ns/page"),
        ("map+touch+unmap, kernel API from the host", f"{r['host_map_touch_unmap_ns_per_page']:,.0f} ns/page"),
        ("host OS first touch of a RAM frame (untimed above)", f"{r['host_os_first_touch_ns_per_page']:,.0f} ns/page"),
        (f"revoke a tree of {small:,} mappings", f"{r['revoke_10k_s'] * 1e3:,.2f} ms"),
        (f"revoke a tree of {large:,} mappings", f"{r['revoke_100k_s'] * 1e3:,.2f} ms"),
        ("growth large/small (linear: 10)", f"{r['revoke_growth_100k_over_10k']}"),
        (f"revoke a chain {small:,} deep", f"{r['chain_10k_s'] * 1e3:,.2f} ms"),
    ]
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        click.echo(f"{a:<{width}}  {b:>16}")


@bench.command("rt")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON on the last line")
@click.option("--seconds", default=10.0, show_default=True, help="simulated seconds per policy")
def bench_rt_cmd(as_json: bool, seconds: float) -> None:
    """Scheduling events simulated per wall-clock second: 20 periodic reserved threads, FP and EDF;
    and SimSo's figures for the same set when SimSo is importable."""
    from l4sim.tools.bench import bench_rt

    if not 0 < seconds <= 3600:
        _fail(f"--seconds {seconds}: give 0 < seconds <= 3600")
    with _bench_progress("bench rt") as progress:
        r = bench_rt(seconds, progress=progress or _no_progress)
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
        return
    for pol in ("fp", "edf"):
        click.echo(f"{pol.upper():<3} {r['tasks']} tasks, {seconds:g} s simulated: {r[pol + '_sched_events']:,} "
                   f"scheduling events in {r[pol + '_wall_s']} s = {r[pol + '_events_per_s']:,} events/s, "
                   f"{r[pol + '_deadline_misses']} deadline misses")
    ss = r["simso"]
    if ss is None:
        click.echo(f"SimSo: not measured: {r['simso_missing']} (pip install simso; see docs/realtime.md)")
        return
    for pol in ("fp", "edf"):
        click.echo(f"SimSo {pol.upper():<3} same set and time: {ss[pol + '_sched_events']:,} events "
                   f"({ss[pol + '_activations']:,} activations + {ss[pol + '_dispatches']:,} dispatches) "
                   f"in {ss[pol + '_wall_s']} s = {ss[pol + '_events_per_s']:,} events/s, "
                   f"{ss[pol + '_deadline_misses']} deadline misses; "
                   f"wall time {ss[pol + '_wall_ratio']}x l4sim's")


@bench.command("linux")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON on the last line")
@click.option("--calls", default=20_000, show_default=True, help="getpid calls per measurement (bare: 10x)")
@click.option("--loops", default=20_000_000, show_default=True,
              help="compute-loop rounds per measurement, 3 instructions each (native: 20x)")
def bench_linux_cmd(as_json: bool, calls: int, loops: int) -> None:
    """Guest system calls/s (vs a bare unicorn hook) and guest instructions/s (vs native)."""
    from l4sim.tools.bench_linux import BenchError, bench_linux

    if calls < 1 or loops < 1:
        _fail(f"--calls {calls} --loops {loops}: give at least 1 each")
    try:
        with _bench_progress("bench linux") as progress:
            r = bench_linux(calls, loops, progress=progress)
    except BenchError as e:
        _fail(str(e))
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
        return
    click.echo(f"getpid via exception IPC + personality: {r['syscalls_per_s']:,} calls/s ({calls:,} calls)")
    click.echo(f"getpid in a bare unicorn syscall hook:  {r['bare_hook_syscalls_per_s']:,} calls/s")
    click.echo(f"ratio bare/ours: {r['syscall_ratio']}")
    click.echo(f"compute loop under l4sim: {r['instructions_per_s']:,} instructions/s "
               f"({r['loop_iterations_per_s']:,} rounds/s x {r['instructions_per_loop_iteration']})")
    click.echo(f"compute loop native:      {r['native_instructions_per_s']:,} instructions/s")
    click.echo(f"slowdown vs native: {r['slowdown_vs_native']}x")


@main.command("fuzz")
@click.option("--steps", default=10_000, show_default=True,
              help="steps to run, in examples of up to 40 steps each on a new machine (rounded up to "
                   "whole examples)")
@click.option("--seed", default=0, show_default=True, help="seed of the generator: the same seed, the same run")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON on the last line")
def fuzz_cmd(steps: int, seed: int, as_json: bool) -> None:
    """Attack the kernel: hostile programs issue random traps, the invariants are checked after every
    trap and event.

    Three hostile programs on three cores, sharing capabilities, take random
    system calls with bad slots, words, items, flexpages, rights and
    timeouts, ints that raise or lie, traps changed after they were taken,
    code that raises, trap loops and exceptions of every kind.  Exit status 0
    when no invariant broke (the steps and traps run are printed), 1 at the
    first violation, printed with a minimal reproduction: a test to paste.
    """
    import importlib.util

    if importlib.util.find_spec("hypothesis") is None:
        _fail("fuzz needs hypothesis, which is not installed; install it with: pip install 'l4sim[fuzz]'")
    if not 1 <= steps <= 10**9:
        _fail(f"--steps {steps}: give 1 .. 1000000000 steps")
    from l4sim.tools.fuzz import Budget, fuzz

    show = sys.stderr.isatty() and not as_json
    shown = [0]

    def progress(b: Budget) -> None:
        if b.found_at is None:
            if b.steps - shown[0] >= 25 or b.steps >= b.planned:
                shown[0] = b.steps
                sys.stderr.write(f"\r  ... {b.steps:,} of {max(b.steps, b.planned):,} steps, {b.traps:,} traps, "
                                 f"{b.examples:,} machines ")
        elif b.replays % 5 == 0:
            sys.stderr.write(f"\r  ... violation after {b.found_at:,} steps; shrinking it: "
                             f"{b.replays:,} replays ")
        sys.stderr.flush()

    try:
        res = fuzz(steps, seed, progress if show else None)
    finally:
        if show:
            sys.stderr.write("\r" + " " * 78 + "\r")
    if as_json:
        click.echo(json.dumps(res.to_json(), sort_keys=True))
    elif res.violation is None:
        click.echo(f"no violation: {res.steps:,} steps, {res.traps:,} traps, {res.events:,} events "
                   f"on {res.examples:,} machines (seed {seed})")
    else:
        click.echo(f"violation after {res.found_at:,} steps (seed {seed}):")
        click.echo(res.violation)
        if res.reproduction is not None:
            n = res.reproduction_steps
            click.echo(f"\nminimal reproduction ({n} step{'' if n == 1 else 's'}); paste it into a test "
                       "and run it with pytest:\n")
            click.echo(res.reproduction, nl=False)
    sys.exit(1 if res.violation is not None else 0)


@main.group("linux")
def linux() -> None:
    """The Linux personality: static x86-64 Linux programs on the kernel."""


@linux.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--strace", is_flag=True, help="print each system call and its result to stderr")
@click.option("--cores", default=1, show_default=True, help="number of simulated cores (1..64)")
@click.option("--seed", default=0, show_default=True, help="seed of the machine's random generator")
@click.option("--root", default=None, metavar="DIR|TAR",
              help="the guest's root file system (imported read-only; changes stay in memory)")
@click.option("--trace", "trace_path", default=None, metavar="FILE",
              help="write a Perfetto/Chrome trace JSON here (system calls named)")
@click.option("--jsonl", "jsonl_path", default=None, metavar="FILE",
              help="write the raw trace records as JSON lines here")
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def linux_run_cmd(strace: bool, cores: int, seed: int, root: str | None, trace_path: str | None,
                  jsonl_path: str | None, program: str, args: tuple[str, ...]) -> None:
    """Run the static x86-64 executable PROGRAM with ARGS; exit with its status (128+N: signal N)."""
    import signal

    from l4sim.kernel.trace import Tracer
    from l4sim.linux.run import LinuxError, run, syscall_records

    def out(fd: int, data: bytes) -> None:
        stream = sys.stdout.buffer if fd == 1 else sys.stderr.buffer
        stream.write(data)
        stream.flush()

    def trace(line: str) -> None:
        sys.stdout.buffer.flush()
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def stdin() -> bytes:
        buf = sys.stdin.buffer
        read1 = getattr(buf, "read1", None)
        return bytes(read1(65536) if read1 is not None else buf.read(65536))

    if not 1 <= cores <= 64:
        _fail(f"--cores {cores}: a machine has 1..64 cores")
    _check_writable("the trace", trace_path, jsonl_path)
    tracer = Tracer() if trace_path or jsonl_path else None
    interrupts: list[int] = []

    def ctrl_c(signum: int, frame: object) -> None:
        if interrupts:  # the first one has not been delivered yet: stop the run
            raise KeyboardInterrupt
        interrupts.append(signal.SIGINT)  # the guest's foreground group gets SIGINT

    try:
        old = signal.signal(signal.SIGINT, ctrl_c)
    except ValueError:  # not the main thread: Ctrl-C stays Python's
        old = None
    try:
        res = run(program, list(args), out=out, strace=trace if strace else None, cores=cores, seed=seed,
                  root=root, stdin=stdin, tracer=tracer, interrupts=interrupts)
    except LinuxError as e:
        _fail(str(e))
        return
    except KeyboardInterrupt:  # the second Ctrl-C: the run stops; its trace so far is kept
        if old is not None:
            signal.signal(signal.SIGINT, old)
        if tracer is not None:
            _write_traces(syscall_records(tracer.records), trace_path, jsonl_path)
        _interrupted(_saved(trace_path, jsonl_path))
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if tracer is not None:
        _write_traces(syscall_records(tracer.records), trace_path, jsonl_path)
    sys.exit(res.status)


@linux.command("syscalls")
def linux_syscalls_cmd() -> None:
    """List the system calls the personality implements."""
    from l4sim.linux.syscalls import TABLE

    for nr in sorted(TABLE):
        click.echo(f"{nr:>4}  {TABLE[nr].name}")
    click.echo(f"{len(TABLE)} system calls")


@main.command("costs")
@click.option("--json", "as_json", is_flag=True, help="print the table as JSON on the last line")
def costs_cmd(as_json: bool) -> None:
    """Print the kernel's cost model: each entry's value, unit, what it charges and why that value."""
    from l4sim.kernel.costs import CostModel

    rows = CostModel().describe()
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    import shutil
    import textwrap

    header = ("entry", "value", "unit", "what it charges; where the value comes from")
    cells = [(r["name"], f"{r['value']:,}", r["unit"]) for r in rows]
    w = [max(len(header[i]), *(len(c[i]) for c in cells)) for i in range(3)]
    indent = w[0] + w[1] + w[2] + 6
    # the last column wraps at the terminal's width (at least 40 characters): never cut
    text_width = max(40, shutil.get_terminal_size((100, 24)).columns - indent)
    click.echo(f"{header[0]:<{w[0]}}  {header[1]:>{w[1]}}  {header[2]:<{w[2]}}  {header[3]}")
    for (name, value, unit), r in zip(cells, rows, strict=True):
        lines = (textwrap.wrap(r["charges"], text_width)
                 + textwrap.wrap(f"source: {r['source']}", text_width))
        click.echo("")
        click.echo(f"{name:<{w[0]}}  {value:>{w[1]}}  {unit:<{w[2]}}  {lines[0]}")
        for line in lines[1:]:
            click.echo(" " * indent + line)


@main.group("rt")
def rt() -> None:
    """Real-time task sets: schedulability analysis and admission."""


@rt.command("analyze")
@click.argument("file")
@click.option("--policy", default="fp", show_default=True,
              help="fp (fixed priorities) or edf (earliest deadline first)")
@click.option("--json", "as_json", is_flag=True, help="print the verdict as JSON on the last line")
def rt_analyze_cmd(file: str, policy: str, as_json: bool) -> None:
    """Response-time / processor-demand analysis of the task set in FILE (JSON).

    Exit status 0 when the set (and any QAS reservation) is admitted, 1 when
    not, 2 when FILE cannot be analysed.
    """
    from l4sim.realtime.analysis import POLICIES, analyze, format_report
    from l4sim.realtime.taskset import TaskSetError, load

    pol = policy.lower()
    if pol not in POLICIES:
        _fail(f"unknown policy {policy!r}; use --policy fp or --policy edf")
    try:
        ts = load(file)
    except TaskSetError as e:
        _fail(f"{file}: {e}")
        return
    res = analyze(ts, "edf" if pol == "edf" else "fp")
    if as_json:
        click.echo(json.dumps(res.to_json(ts)))
    else:
        click.echo(format_report(ts, res))
    admitted = res.schedulable and (res.qas is None or res.qas.admitted)
    sys.exit(0 if admitted else 1)



@rt.command("simulate")
@click.argument("file")
@click.option("--policy", default="fp", show_default=True,
              help="fp (fixed priorities) or edf (earliest deadline first)")
@click.option("--duration", default=None,
              help="simulated time: a number in the file's unit, or with a unit (20ms, 1.5s); "
                   "default: offsets + hyperperiod + largest deadline, at most ~200000 jobs")
@click.option("--gantt", "gantt", default=None, help="draw the schedule to FILE.png or FILE.svg (needs matplotlib)")
@click.option("--trace", "trace_path", default=None, help="write a Perfetto/Chrome trace JSON here")
@click.option("--ideal", is_flag=True, help="kernel operations take no time (the schedule the analysis assumes)")
@click.option("--seed", default=0, show_default=True,
              help="seed of the release-jitter and optional-execution-time generators")
@click.option("--optional", "optional", default="slack", show_default=True,
              help="QAS optional parts: slack (reserve, then the slack until the deadline), "
                   "reserve (aborted at the reserved point) or off")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON on the last line")
def rt_simulate_cmd(file: str, policy: str, duration: str | None, gantt: str | None, trace_path: str | None,
                    ideal: bool, seed: int, optional: str, as_json: bool) -> None:
    """Run the task set in FILE as periodic threads with reservations on the kernel.

    Reports per task the jobs completed, deadline misses and the largest
    observed response time, and for tasks with an optional part the quality
    achieved against the quality requested.  Exit status 0 without deadline
    misses, 1 with some, 2 when FILE cannot be run.
    """
    import importlib.util

    from l4sim.realtime.sim import (
        OPTIONAL_MODES,
        analysed_wcrt,
        draw_gantt,
        format_table,
        job_overhead,
        qas_overhead,
        simulate,
        zero_costs,
    )
    from l4sim.realtime.taskset import TaskSetError, load

    pol = policy.lower()
    if pol not in ("fp", "edf"):
        _fail(f"unknown policy {policy!r}; use --policy fp or --policy edf")
    if optional not in OPTIONAL_MODES:
        _fail(f"unknown --optional {optional!r}; use slack, reserve or off")
    if gantt is not None:
        if not gantt.lower().endswith((".png", ".svg")):
            _fail(f"--gantt {gantt}: give a file name ending in .png or .svg")
        if importlib.util.find_spec("matplotlib") is None:
            _fail("--gantt needs matplotlib, which is not installed; install it with: pip install 'l4sim[plot]'")
    try:
        ts = load(file)
    except TaskSetError as e:
        _fail(f"{file}: {e}")
        return
    end: int | None = None
    if duration is not None:
        try:
            end = parse_time(duration, "--duration", ts.time_unit, positive=True)
        except BootError as e:
            _fail(str(e))
    _check_writable("the trace", trace_path)
    _check_writable("the schedule drawing", gantt)
    costs = zero_costs() if ideal else None
    res = simulate(ts, pol, end, costs=costs, seed=seed, trace=bool(gantt or trace_path), optional=optional)
    try:
        if trace_path and res.tracer is not None:
            from l4sim.tools.trace_export import write_chrome

            write_chrome(res.tracer.records, trace_path)
        if gantt:
            draw_gantt(res, ts, gantt)
    except OSError as e:
        _fail(f"cannot write {e.filename}: {e.strerror}; choose a writable path")
    if as_json:
        click.echo(json.dumps(res.to_json(ts)))
    else:
        click.echo(format_table(res, ts, analysed_wcrt(ts, costs, optional) if pol == "fp" else None))
        if res.extra.get("optional"):
            click.echo("(wcrt of a task with an optional part: its wcet plus the QAS reserve"
                       + ("" if ideal else f" plus {qas_overhead(res.kernel.costs)} ns") + ")")
        if not ideal:
            click.echo(f"(the kernel's costs included: wcrt is the analysis with each wcet plus "
                       f"{job_overhead(res.kernel.costs)} ns per job; --ideal leaves them out)")
    sys.exit(1 if res.misses else 0)



@rt.command("compare-simso")
@click.argument("file")
@click.option("--policy", default="fp", show_default=True, help="fp or edf")
@click.option("--duration", default=None, help="simulated time (default: as rt simulate)")
@click.option("--seed", default=0, show_default=True, help="seed of l4sim's release-jitter generator")
@click.option("--json", "as_json", is_flag=True, help="print the comparison as JSON on the last line")
def rt_compare_simso_cmd(file: str, policy: str, duration: str | None, seed: int, as_json: bool) -> None:
    """Run the task set in FILE in l4sim (ideal kernel) and in SimSo and compare schedules and responses.

    A validation against an independent simulator; needs the pip package simso.
    Exit status 0 when they agree, 1 when not, 2 when FILE, an option or SimSo is unusable.
    """
    from l4sim.tools.simso_compare import CompareError, compare, format_comparison, prepare

    try:
        ts, pol, end = prepare(file, policy, duration)
    except CompareError as e:
        _fail(str(e))
        return
    c = compare(ts, pol, end, seed)
    click.echo(json.dumps(c.to_json(ts)) if as_json else format_comparison(c, ts))
    sys.exit(0 if c.agree else 1)


if __name__ == "__main__":  # pragma: no cover
    main()
