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
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import click

from l4sim.tools.linuxrun import check_writable as _check_writable
from l4sim.tools.linuxrun import fail as _fail
from l4sim.tools.linuxrun import interrupted as _interrupted
from l4sim.tools.linuxrun import saved as _saved
from l4sim.tools.linuxrun import write_traces as _write_traces


class _Main(click.Group):
    """The command group: Ctrl-C in any command is one line and status 130, not click's
    ``Aborted!`` and status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            _interrupted()


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
@click.option("--comm-model", default=None, metavar="MODEL",
              help="communication control: capabilities (default), global-ids, clans-chiefs, "
                   "redirection, redirectors, pclans, virtual-threads (docs/models.md)")
@click.option("--kmem-model", default=None, metavar="MODEL",
              help="kernel memory: quotas (default), global-pool, lend-to-kernel, kpager (docs/models.md)")
@click.option("--pcap", "pcap_path", default=None, metavar="FILE",
              help="record every frame on the board's network cables into FILE (pcap, for tcpdump)")
@click.option("--disk", "disk_path", default=None, metavar="FILE",
              help="the host image file of the script's first disk (created when missing)")
@click.option("--crash-at", "crash_at", default=None, metavar="TIME",
              help="cut the power at this simulated time (e.g. 30ms): disks keep only what reached them")
@click.option("--input", "input_path", default=None, metavar="FILE",
              help="keyboard and pointer input at simulated instants (docs/security.md, input scripts)")
@click.option("--screenshot", "shots", multiple=True, metavar="[TIME:]FILE.png",
              help="the screen as a PNG at the end, or at TIME (e.g. 40ms:shot.png); repeatable")
def boot_cmd(scenario: str, cores: int, seed: int, until: str | None, trace_path: str | None,
             jsonl_path: str | None, as_json: bool, comm_model: str | None,
             kmem_model: str | None, pcap_path: str | None, disk_path: str | None,
             crash_at: str | None, input_path: str | None, shots: tuple[str, ...]) -> None:
    """Boot SCENARIO (a name, or a path to a .py file) and print what happened.

    Ctrl-C stops the run: the trace files get what was traced so far, exit status 130.
    """
    from l4sim.tools.boot import (
        BootError,
        BootInterrupted,
        boot,
        format_attacks,
        format_summary,
        parse_time,
        terminal_progress,
    )
    from l4sim.tools.display import (
        InputError,
        parse_input,
        parse_screenshot,
        read_input_text,
        write_screenshots,
    )

    try:
        limit = parse_time(until, "--until") if until is not None else None
        crash = parse_time(crash_at, "--crash-at") if crash_at is not None else None
        input_text = read_input_text(input_path) if input_path is not None else None
        actions = parse_input(input_text, input_path) if input_path is not None and input_text is not None else None
        screenshots = [parse_screenshot(s) for s in shots]
    except (BootError, InputError) as e:
        _fail(str(e))
        return
    _check_writable("the trace", trace_path, jsonl_path)
    _check_writable("the capture", pcap_path)
    _check_writable("the screenshot", *(s.path for s in screenshots))
    if disk_path is not None and Path(disk_path).is_dir():
        _fail(f"--disk {disk_path} is a directory; give an image file (created when missing)")
    console: Any = _Colour(sys.stdout) if sys.stdout.isatty() else sys.stdout
    if _several_boots(scenario, console, seed=seed, cores=cores, as_json=as_json,
                      refused={"--until": until, "--trace": trace_path, "--jsonl": jsonl_path,
                               "--comm-model": comm_model, "--kmem-model": kmem_model,
                               "--pcap": pcap_path, "--disk": disk_path, "--crash-at": crash_at,
                               "--input": input_path, "--screenshot": shots[0] if shots else None}):
        return
    show = terminal_progress(sys.stderr) if sys.stderr.isatty() and not as_json else None
    from l4sim.tools.runfile import boot_header

    header = boot_header(scenario, seed, cores, limit, comm_model, kmem_model,
                         disk=disk_path, crash_at=crash, input_text=input_text)
    try:
        res = boot(scenario, cores=cores, seed=seed, until=limit,
                   trace=bool(trace_path or jsonl_path), console=console, progress=show,
                   comm_model=comm_model, kmem_model=kmem_model, pcap=pcap_path, disk=disk_path,
                   crash_at=crash, input_actions=actions, screenshots=screenshots)
    except BootError as e:
        _fail(str(e))
        return
    except BootInterrupted as e:
        if e.tracer is not None:
            _write_traces(e.tracer.records, trace_path, jsonl_path, header)
        _interrupted(_saved(trace_path, jsonl_path))
        return
    finally:
        if show is not None:
            sys.stderr.write("\r" + " " * 60 + "\r")
    summary = res.summary()
    if res.tracer is not None:
        _write_traces(res.tracer.records, trace_path, jsonl_path, header)
    try:
        write_screenshots(res.screenshots)
    except OSError as e:
        _fail(f"cannot write the screenshot: {e.strerror} ({e.filename}); choose a writable path")
    if res.report is not None:  # a scenario's own findings (an attack table) join the summary
        summary.update(res.report)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        click.echo("")
        click.echo(format_summary(summary))
        if res.report is not None and "attacks" in res.report:
            click.echo("")
            click.echo(format_attacks(res.report))
        if res.report_text is not None:
            click.echo("")
            click.echo(res.report_text)
        if trace_path:
            click.echo(f"\ntrace written to {trace_path} (open it in ui.perfetto.dev)")


@main.command("tcb", context_settings={"ignore_unknown_options": False})
@click.argument("words", nargs=-1, required=True, metavar="SCENARIO COMPONENT | compare SCENARIO")
@click.option("--json", "as_json", is_flag=True, help="the result as JSON on the last line")
@click.option("--graph", "graph_path", default=None, metavar="FILE.svg",
              help="draw the authority graph (Graphviz; .dot writes its source)")
@click.option("--cores", default=2, show_default=True, help="number of simulated cores")
@click.option("--seed", default=0, show_default=True, help="seed of the scenario's random generator")
def tcb_cmd(words: tuple[str, ...], as_json: bool, graph_path: str | None, cores: int, seed: int) -> None:
    """The TCB of COMPONENT in SCENARIO, from the live authority graph, in lines of code.

    `l4sim tcb compare SCENARIO` sets the monolithic application beside the split one.
    """
    from l4sim.tools.boot import BootError
    from l4sim.tools.tcb import compare, format_compare, format_tcb, render, tcb, to_json

    if len(words) != 2:
        _fail("give SCENARIO COMPONENT (e.g. l4sim tcb split-demo appcore) or compare SCENARIO")
        return
    _check_writable("the graph", graph_path)
    try:
        if words[0] == "compare":
            r = compare(words[1], cores=cores, seed=seed)
            if as_json:
                click.echo(json.dumps({k: r[k] for k in ("monolithic_loc", "split_loc", "ratio",
                                                         "monolithic", "split")}, sort_keys=True))
            else:
                click.echo(format_compare(r))
            return
        t = tcb(words[0], words[1], cores=cores, seed=seed)
    except BootError as e:
        _fail(str(e))
        return
    if graph_path:
        note = render(t, graph_path)
        if note is not None:
            click.echo(f"l4sim: {note}", err=True)
    if as_json:
        click.echo(json.dumps(to_json(t), sort_keys=True))
    else:
        click.echo(format_tcb(t))
        if graph_path and not Path(graph_path).exists():
            pass
        elif graph_path:
            click.echo(f"\ngraph written to {graph_path}")


def _several_boots(scenario: str, console: Any, *, seed: int, cores: int, as_json: bool,
                   refused: dict[str, str | None]) -> bool:
    """Run a built-in scenario that boots the machine several times (it defines ``run_boots``, as
    ``secure-storage`` does): each boot's console, then its table or JSON.  False for any other."""
    if scenario.endswith(".py") or "/" in scenario:
        return False
    from l4sim.tools.boot import BootError, load_scenario

    try:
        mod = load_scenario(scenario)
    except BootError as e:
        _fail(str(e))
    run = getattr(mod, "run_boots", None)
    if not callable(run):
        return False
    given = [opt for opt, value in refused.items() if value is not None]
    if given:
        _fail(f"{scenario} boots the machine several times: {', '.join(given)} cannot apply; leave it out")
    if not 1 <= cores <= 64:
        _fail(f"--cores {cores} is out of range: a machine has 1..64 cores")
    result = run(seed=seed, cores=cores, console=console, banner=lambda text: click.echo(f"--- {text}"))
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo("")
        click.echo(mod.format_result(result))
    return True


@main.command("attest")
@click.argument("script", required=False)
@click.option("--nonce", required=True, help="the verifier's challenge, hex (1..64 bytes)")
@click.option("--out", "out_dir", default=None, help="write quote.msg, quote.sig, pcrs.bin, ak.pub.pem, "
              "eventlog.bin here (for tpm2_checkquote)")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON on the last line")
@click.option("--seed", default=0, show_default=True, help="seed of the run (and of the TPM's keys)")
@click.option("--cores", default=2, show_default=True, help="number of simulated cores (1..64)")
def attest_cmd(script: str | None, nonce: str, out_dir: str | None, as_json: bool, seed: int, cores: int) -> None:
    """Boot SCRIPT measured (default: the default system), challenge it with NONCE, verify its quote.

    Prints the event log, replays it against the quoted PCRs and verifies the
    quote; exit status 1 when the replay or the quote fails.  See docs/security.md.
    """
    from pathlib import Path

    from l4sim.tools.attest import AttestError, attest, format_result

    try:
        raw = bytes.fromhex(nonce)
    except ValueError:
        _fail(f"--nonce {nonce!r} is not hex: give 2 to 128 hex digits, e.g. --nonce 1f2e3d4c")
        return
    if not 1 <= cores <= 64:
        _fail(f"--cores {cores} is out of range: a machine has 1..64 cores")
    path = Path(script) if script else Path(__file__).resolve().parent / "scenarios" / "scripts" / "default.py"
    if not path.is_file():
        _fail(f"startup script {script} not found: give the path of a .py startup script")
    console: Any = _Colour(sys.stdout) if sys.stdout.isatty() else sys.stdout
    try:
        res = attest(path, raw, Path(out_dir) if out_dir else None, seed=seed, cores=cores, console=console)
    except AttestError as e:
        _fail(str(e))
        return
    if as_json:
        click.echo(json.dumps(res.json(), sort_keys=True))
    else:
        click.echo("")
        click.echo(format_result(res))
    if not (res.replay_ok and res.quote_verified):
        sys.exit(1)


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
        click.echo(f"bare loop:  {r['bare_round_trips_per_s']:,} round trips/s "
                   "(two coroutines passing a tuple)")
        click.echo(f"library:    {r['library_round_trips_per_s']:,} round trips/s "
                   "(the same programs' traps, no kernel)")
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


@bench.command("workloads")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON on the last line")
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="run only this workload (repeat the option, or NAME,NAME; a wrong name lists them)")
def bench_workloads_cmd(as_json: bool, only: tuple[str, ...]) -> None:
    """busybox workloads natively and under l4sim linux run (best of three each), their ratios
    and geometric mean, and linux run's start-up time."""
    from l4sim.tools.bench_workloads import NAMES, WORKLOADS, WorkloadsError, bench_workloads

    names = [n for item in only for n in item.split(",") if n]
    bad = [n for n in names if n not in NAMES]
    if bad:
        _fail(f"--only {bad[0]}: no such workload; choose from {', '.join(NAMES)}")
    try:
        with _bench_progress("bench workloads") as progress:
            r = bench_workloads(names, progress=progress)
    except WorkloadsError as e:
        if str(e).startswith("busybox is not on PATH"):
            if as_json:
                click.echo(json.dumps({"skipped": str(e)}, sort_keys=True))
            else:
                click.echo(f"bench workloads: skipped: {e}")
            return
        _fail(f"bench workloads: {e}")
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
        return
    what = {w.name: w.what for w in WORKLOADS}
    click.echo(f"{'workload':<10} {'':<34} {'native':>9} {'l4sim':>9} {'ratio':>7}")
    for row in r["workloads"]:
        click.echo(f"{row['name']:<10} {what[row['name']]:<34} {row['native_s']:>8.3f}s "
                   f"{row['l4sim_s']:>8.3f}s {row['ratio']:>6.1f}x")
    click.echo(f"geometric mean of the ratios: {r['geomean_ratio']}x")
    click.echo(f"start-up of l4sim linux run (command to the program's first instruction): "
               f"{r['startup_s'] * 1000:.0f} ms")


@bench.command("net")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON on the last line")
@click.option("--frames", default=2000, show_default=True, help="frames through the switch (pings: a tenth)")
@click.option("--tcp-mib", default=8, show_default=True,
              help="MiB fetched over TCP between two Linux instances (0: no TCP and VPN figures)")
def bench_net_cmd(as_json: bool, frames: int, tcp_mib: int) -> None:
    """Frames/s through the switch, pings across a cable, TCP between two Linux instances and
    the VPN gateway's added latency, simulated and wall clock."""
    from l4sim.tools.bench_net import BASE, TCP_BASE_KIB, bench_net

    if frames <= BASE * 10:
        _fail(f"--frames {frames} is too few to measure: use more than {BASE * 10}")
    if tcp_mib and not 1 <= tcp_mib <= 256:
        _fail(f"--tcp-mib {tcp_mib} is out of range: give 1..256 MiB (more than the {TCP_BASE_KIB} KiB baseline), "
              f"or 0 for none")
    with _bench_progress("bench net") as progress:
        r = bench_net(frames, progress=progress, tcp_mib=tcp_mib)
    if as_json:
        click.echo(json.dumps(r, sort_keys=True))
        return
    click.echo(f"switch: {r['switch_frames_per_s_simulated']:,} frames/s simulated, "
               f"{r['switch_frames_per_s_wall']:,} frames/s wall clock ({frames:,} frames of 60 bytes)")
    click.echo(f"cable:  {r['cable_round_trip_us_simulated']} us simulated per ping round trip "
               f"(switch, nic, simnic under DDE, NIC, cable and back), "
               f"{r['cable_round_trips_per_s_wall']:,} round trips/s wall clock ({r['cable_pings']:,} pings)")
    if "tcp_mbytes_per_s_simulated" in r:
        click.echo(f"tcp:    {r['tcp_mbytes_per_s_simulated']} MB/s simulated, {r['tcp_mbytes_per_s_wall']} MB/s wall "
                   f"clock (wget of {tcp_mib} MiB from httpd, two Linux instances on the switch)")
        click.echo(f"vpn:    {r['vpn_gateway_latency_us_simulated']} us simulated per packet in the gateway "
                   f"(ESP seal or open and forwarding); ping round trip {r['vpn_ping_rtt_us_through_tunnel']} us "
                   f"through the tunnel, {r['vpn_ping_rtt_us_to_gateway']} us to the gateway")
    elif "tcp_skipped" in r:
        click.echo(f"tcp and vpn: skipped ({r['tcp_skipped']})")


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


class _OneLineUsage(click.Command):
    """A command whose usage errors (an unknown option, a bad value, a missing argument) are
    one line on stderr and status 2, like its other errors, instead of click's usage block."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            msg = e.format_message().rstrip(".")
            msg = (msg[:1].lower() + msg[1:]).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            msg = re.sub(r"\\udc([89a-f][0-9a-f])", r"\\x\1", msg)  # a byte not UTF-8, as click's repr shows it
            names, c = [], ctx
            while c.parent is not None:  # the command's path below ``l4sim``, however it was started
                names.append(c.info_name or "")
                c = c.parent
            _fail(f"{msg}; see l4sim {' '.join(reversed(names))} --help")
            raise  # not reached: _fail exits


@linux.command("run", cls=_OneLineUsage, context_settings={"allow_interspersed_args": False})
@click.option("--strace", is_flag=True, help="print each system call and its result to stderr")
@click.option("--cores", default=1, show_default=True, help="number of simulated cores (1..64)")
@click.option("--seed", default=0, show_default=True, help="seed of the machine's random generator")
@click.option("--root", default=None, metavar="DIR|TAR",
              help="the guest's root file system (imported read-only; changes stay in memory); "
                   "default: a small Linux with busybox's applets")
@click.option("--workdir", default=None, metavar="DIR",
              help="the host directory imported read-only at its path as the working directory "
                   "[default: the current one]")
@click.option("--write-back", "write_back", is_flag=True,
              help="when the run ends, write what the guest created, changed and removed in the "
                   "working directory back to the host")
@click.option("--trace", "trace_path", default=None, metavar="FILE",
              help="write a Perfetto/Chrome trace JSON here (system calls named)")
@click.option("--jsonl", "jsonl_path", default=None, metavar="FILE",
              help="write the raw trace records as JSON lines here")
# the start-up probe of ``l4sim bench workloads``: CLOCK_MONOTONIC (ns) at the program's first
# instruction is written to FILE
@click.option("--first-instruction-file", "first_insn_path", default=None, hidden=True)
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def linux_run_cmd(strace: bool, cores: int, seed: int, root: str | None, workdir: str | None,
                  write_back: bool, trace_path: str | None, jsonl_path: str | None,
                  first_insn_path: str | None, program: str, args: tuple[str, ...]) -> None:
    """Run the static x86-64 executable PROGRAM with ARGS; exit with its status (128+N: signal N).

    PROGRAM with a slash is a host file; a name alone is looked up in the guest's /usr/local/bin,
    /usr/bin and /bin (busybox's applets in the small Linux), then on the host's PATH.
    """
    from l4sim.tools.linuxrun import run_command

    run_command(strace, cores, seed, root, workdir, write_back, trace_path, jsonl_path, first_insn_path,
                program, args)


@linux.command("syscalls")
def linux_syscalls_cmd() -> None:
    """List the system calls the personality implements (not those it only answers with ENOSYS)."""
    from l4sim.linux.syscalls import implemented

    calls = implemented()
    for nr, name in calls:
        click.echo(f"{nr:>4}  {name}")
    click.echo(f"{len(calls)} system calls")


@linux.command("include")
def linux_include_cmd() -> None:
    """Print the directory of <l4sim/l4.h>, the C header of hybrid programs (for -I)."""
    from l4sim.linux.instance import include_dir

    click.echo(str(include_dir()))


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


@main.group("experiment")
def experiment() -> None:
    """Experiments that compare kernel designs on one workload (docs/models.md)."""


@experiment.command("comm-control")
@click.option("--json", "as_json", is_flag=True, help="print the table as JSON on the last line")
@click.option("--trace-dir", default=None, metavar="DIR",
              help="write a Perfetto trace of each model's run to DIR/comm-MODEL.json")
def experiment_comm_cmd(as_json: bool, trace_dir: str | None) -> None:
    """A client in domain A calls a server in domain B under every communication model.

    Per model: messages and kernel entries per cross-domain request, its simulated latency,
    the calls inside domain A, what revoking A's way to B takes and whether it holds, whether
    the server can tell the client from an impostor, whether thread ids outside A can be
    scanned, and whether a completed send means delivery.
    """
    from l4sim.tools.experiment_comm import comm_control

    if trace_dir is not None:
        path = Path(trace_dir)
        if not path.is_dir():
            _fail(f"--trace-dir {trace_dir}: not a directory; create it first")
            return
    rows = comm_control(trace_dir=trace_dir)
    if as_json:
        click.echo(json.dumps({"models": rows}, sort_keys=True))
        return
    head = ("model", "IPCs/req", "entries", "latency", "intra", "auth", "scan", "delivered", "revoking A -> B")
    table = [head] + [(r["model"], str(r["ipcs_per_request"]), str(r["kernel_entries"]),
                       f"{r['latency_ns']} ns", str(r["intra_ipcs"]),
                       "yes" if r["sender_authenticated"] else "no",
                       "yes" if r["scannable"] else "no",
                       "yes" if r["delivery_on_completion"] else "no",
                       r["policy_change"] + (f" ({r['policy_change_ops']} op, {r['policy_change_ns']} ns)"
                                             if r["policy_change_ops"] else "")
                       + ("" if r["policy_enforced"] else "; not enforced"))
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    if trace_dir is not None:
        click.echo(f"\ntraces written to {trace_dir}/comm-MODEL.json (open them in ui.perfetto.dev)")


@experiment.command("kmem")
@click.option("--json", "as_json", is_flag=True, help="print the table as JSON on the last line")
def experiment_kmem_cmd(as_json: bool) -> None:
    """A hostile task exhausts kernel memory while two victims work, under every model.

    Per model: the hostile's mappings and objects before it was refused, the real-time and
    best-effort victims' operations and the real-time victim's missed jobs, the kernel memory
    the hostile held, and whether any of it could be taken back without deleting the task.
    """
    from l4sim.tools.experiment_kmem import kmem_experiment

    rows = kmem_experiment()
    if as_json:
        click.echo(json.dumps({"models": rows}, sort_keys=True))
        return
    head = ("model", "hostile maps", "objects", "held", "rt ops", "rt missed", "be ops", "be failed",
            "taken back")
    table = [head] + [(r["model"], str(r["hostile_mappings"]), str(r["hostile_objects"]),
                       f"{r['kernel_bytes'] // 1024} KiB", str(r["victim_ops"][0]),
                       str(r["victim_deadline_misses"]), str(r["victim_ops"][1]),
                       str(r["victim_failed_ops"][1]),
                       f"{r['reclaimed_bytes'] // 1024} KiB" if r["reclaimable"] else "no")
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())


@main.command("lifetime")
@click.argument("scenario", default="lifetime")
@click.option("--zero-on-free", is_flag=True, help="moe clears a freed dataspace's frames at once, a Linux "
              "personality the frames a process lets go")
@click.option("--compare", is_flag=True, help="run without and with zero-on-free and set the counts side by side")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON on the last line")
def lifetime_cmd(scenario: str, zero_on_free: bool, compare: bool, as_json: bool) -> None:
    """Where copies of the run's secrets lived, and which outlived their last use.

    A program marks a secret with env.mark_secret(addr, n, name); the kernel follows its bytes
    through the copies the system makes (docs/lifetime.md).  Copies marked ! outlived the
    secret's last use.  secure-storage follows its two honest boots, each on its own.
    """
    from l4sim.tools.boot import BootError
    from l4sim.tools.lifetime import compare as both
    from l4sim.tools.lifetime import format_report, lifetime

    try:
        if compare:
            r = both(scenario)
            if as_json:
                click.echo(json.dumps(r, sort_keys=True))
                return
            for label, part in (("without zero-on-free", r["before"]), ("with zero-on-free", r["after"])):
                for s in part["secrets"]:
                    where = f"boot {s['boot']}: " if "boot" in s else ""
                    click.echo(f"{label:22}  {where}{s['secret']!r}: {len(s['copies'])} copies, "
                               f"{s['outliving']} outlived its use, {s['at_end']} at the end")
            return
        rep = lifetime(scenario, zero_on_free)
    except BootError as e:
        _fail(str(e))
        return
    if as_json:
        click.echo(json.dumps(rep, sort_keys=True))
    else:
        click.echo(format_report(rep))


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
        from l4sim.tools.boot import BootError, parse_time

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


# -- recorded runs: the inspector, replay and diff -------------------------------------------


def _read_run(path: str) -> Any:
    """A recorded run, or one line and status 2."""
    from l4sim.tools.runfile import RunFileError, read_run

    try:
        return read_run(path)
    except RunFileError as e:
        _fail(str(e))


def _need_server(export_dir: str | None) -> None:
    """Without --export the page is served: the web extra must be there (checked first)."""
    if export_dir is None:
        from l4sim.tools.extras import MissingExtra
        from l4sim.tools.inspector import server

        try:
            server.require()
        except MissingExtra as e:
            _fail(str(e))


def _show_inspector(model: dict[str, Any], port: int, host: str, export_dir: str | None) -> None:
    """Write the page into ``export_dir``, or serve it on ``host:port`` until Ctrl-C."""
    if export_dir is not None:
        from l4sim.tools.inspector.site import export

        try:
            index = export(model, export_dir)
        except OSError as e:
            _fail(f"cannot write the page to {export_dir}: {e.strerror}; choose a writable folder")
            return
        click.echo(f"wrote {index} (open it in a browser; no server needed)")
        return
    from l4sim.tools.inspector import server

    _need_server(None)
    if not 0 <= port <= 65535:
        _fail(f"--port {port}: give 0..65535 (0 picks a free port)")
    try:
        sock = server.bind(host, port)
    except OSError as e:
        if e.errno == 98:  # EADDRINUSE
            _fail(f"port {port} on {host} is in use; choose another with --port N (0 picks a free one)")
        _fail(f"cannot listen on {host}:{port}: {e.strerror}; choose another --host or --port")
        return

    def ready(url: str) -> None:
        click.echo(f"inspector at {url} (Ctrl-C stops it)")
        sys.stdout.flush()

    server.serve(model, sock, ready)


@main.command("inspect")
@click.argument("run_file", metavar="RUN.jsonl")
@click.option("--port", default=8000, show_default=True, help="the port to serve on (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to serve on")
@click.option("--export", "export_dir", default=None, metavar="DIR",
              help="write a static page to DIR (index.html, its JS and JSON) instead of serving")
def inspect_cmd(run_file: str, port: int, host: str, export_dir: str | None) -> None:
    """A web page over a recorded run (l4sim boot --jsonl, l4sim linux run --jsonl).

    Tasks and threads with their states, the capability graph, an IPC sequence diagram,
    page faults and the screen, all at one instant chosen with a slider.  Serving needs the
    web extra (pip install 'l4sim[web]'); --export DIR needs nothing more.
    """
    from l4sim.tools.inspector.model import build

    _need_server(export_dir)
    _show_inspector(build(_read_run(run_file)), port, host, export_dir)


@main.command("replay")
@click.argument("run_file", metavar="RUN.jsonl")
@click.option("--until", "until", required=True, metavar="EVENT",
              help="stop at this event: a record number, or a time with a unit (the first event then)")
@click.option("--port", default=8000, show_default=True, help="the port to serve on (0: any free port)")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to serve on")
@click.option("--export", "export_dir", default=None, metavar="DIR",
              help="write a static page to DIR instead of serving")
def replay_cmd(run_file: str, until: str, port: int, host: str, export_dir: str | None) -> None:
    """Rerun the boot recorded in RUN.jsonl up to EVENT and open the inspector there.

    The page shows the recorded run at EVENT together with the rerun kernel's own tables;
    a rerun that differs from the recording is refused, naming the first differing event.
    """
    from l4sim.tools.inspector.model import build
    from l4sim.tools.inspector.replay import ReplayError, event_index, replay

    _need_server(export_dir)
    run = _read_run(run_file)
    try:
        n = event_index(run, until)
        live = replay(run, n)
    except ReplayError as e:
        _fail(str(e))
        return
    note = "" if live["at"] == n else f" (the kernel step that emitted it ended at event {live['at']})"
    click.echo(f"replayed {run_file} to event {n}{note}")
    _show_inspector(build(run, live=live), port, host, export_dir)


@main.command("diff")
@click.argument("a", metavar="A.jsonl")
@click.argument("b", metavar="B.jsonl")
@click.option("--context", default=3, show_default=True, help="records shown before and after")
@click.option("--json", "as_json", is_flag=True, help="print the divergence as JSON on the last line")
def diff_cmd(a: str, b: str, context: int, as_json: bool) -> None:
    """The first record in which two recorded runs differ, with context.

    Exit status 0 when the records are the same, 1 when they differ, 2 when a file cannot be read.
    """
    from l4sim.tools.tracediff import diff, format_divergence

    if context < 0:
        _fail(f"--context {context}: give 0 or more records")
    d = diff(_read_run(a), _read_run(b))
    if as_json:
        click.echo(json.dumps(d.to_json(context), sort_keys=True))
    else:
        click.echo(format_divergence(d, context))
    sys.exit(0 if d.identical else 1)


# -- sweeps -------------------------------------------------------------------------------------


class _SweepGroup(click.Group):
    """``l4sim sweep SPEC.toml`` runs a sweep (the ``run`` command) unless the first word is
    one of the group's commands (``plot``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group("sweep", cls=_SweepGroup)
def sweep_group() -> None:
    """Parameter sweeps: l4sim sweep SPEC.toml runs one (see l4sim sweep run --help);
    l4sim sweep plot draws its results."""


@contextlib.contextmanager
def _sweep_progress(total: int) -> Iterator[Callable[[int, int, int], None] | None]:
    """A progress bar on stderr when it is a terminal (rich's, else click's); None otherwise."""
    if not sys.stderr.isatty() or total == 0:
        yield None
        return
    from l4sim.tools.extras import have

    if have("rich"):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                      TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
            task = bar.add_task("", total=total)

            def step(done: int, total: int, failed: int) -> None:
                bar.update(task, completed=done, description=f"{failed} failed" if failed else "")

            yield step
        return
    with _bench_progress("sweep") as show:
        if show is None:
            yield None
            return
        shown = show

        def step_click(done: int, total: int, failed: int) -> None:
            shown(done, total, f"{failed} failed" if failed else "")

        yield step_click


@sweep_group.command("run")
@click.argument("spec_file", metavar="SPEC.toml")
@click.option("--workers", default=None, type=int,
              help="local worker processes (default: the host's cores); with --scheduler local, Dask workers")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="run on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786), "
                   "or 'local' for a Dask cluster on this host (needs the dist extra)")
@click.option("--out", "out", default=None, metavar="FILE",
              help="write the results to FILE (.parquet needs the dist extra, or .csv); default: CSV on stdout")
@click.option("--resume", is_flag=True, help="keep the runs already in --out and run the others")
@click.option("--json", "as_json", is_flag=True,
              help='with --out: end with {"runs", "failed", "out", "runs_per_s", "skipped"} as JSON')
def sweep_run_cmd(spec_file: str, workers: int | None, scheduler: str | None, out: str | None,
                  resume: bool, as_json: bool) -> None:
    """Run the grid of scenarios x parameters x seeds in SPEC.toml, one run per task.

    Failed runs are listed on stderr with their error; exit status 0 when every run
    succeeded, 1 when some failed, 2 when the sweep cannot start.  Ctrl-C writes the runs
    finished so far to --out (--resume then goes on from there).
    """
    import os

    from l4sim.tools.extras import MissingExtra, need
    from l4sim.tools.sweep import (
        SweepError,
        columns,
        load_spec,
        out_format,
        read_table,
        sweep,
        to_csv,
        write_table,
    )

    if (as_json or resume) and out is None:
        _fail(f"{'--json' if as_json else '--resume'} needs --out FILE (where the results go)")
    if workers is not None and not 1 <= workers <= 256:
        _fail(f"--workers {workers}: give 1..256")
    if workers is not None and scheduler not in (None, "local"):
        _fail("--workers is for the local pool or --scheduler local; a Dask cluster has its own workers")
    try:
        if out is not None and out_format(out) == "parquet":
            need("dist", "writing Parquet", "pyarrow", instead="a .csv file")
        if scheduler is not None:
            need("dist", "l4sim sweep --scheduler", "dask", "distributed")
        spec = load_spec(spec_file)
        done = read_table(out) if resume and out is not None and os.path.exists(out) else None
    except (SweepError, MissingExtra) as e:
        _fail(str(e))
        return
    _check_writable("the results", out)
    cluster: Any = None
    address = scheduler
    if scheduler == "local":
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=True, dashboard_address=None)
        address = cluster.scheduler_address
    try:
        with _sweep_progress(len(spec.runs())) as progress:
            res = sweep(spec, workers=workers or os.cpu_count() or 1, scheduler=address, done=done,
                        progress=progress)
    except SweepError as e:
        _fail(str(e))
        return
    finally:
        if cluster is not None:
            cluster.close()
    cols = columns(res.rows, spec.params)
    if out is not None:
        try:
            write_table(res.rows, cols, out)
        except OSError as e:
            _fail(f"cannot write the results: {e.strerror} ({out}); choose a writable path")
    for row in res.failed:
        params = " ".join(f"{k}={row.get(k)}" for k in spec.params)
        click.echo(f"failed: {row['scenario']} seed={row['seed']}{' ' + params if params else ''}: {row['error']}",
                   err=True)
    if res.interrupted:
        _interrupted(f"; {len(res.rows)} runs written to {out} (--resume goes on from there)" if out else "")
    if out is None:
        click.echo(to_csv(res.rows, cols), nl=False)
    elif as_json:
        click.echo(json.dumps({"runs": res.ran, "failed": len(res.failed), "out": out,
                               "runs_per_s": res.runs_per_s, "skipped": res.skipped}, sort_keys=True))
    else:
        kept = f" ({res.skipped} kept from the earlier output)" if res.skipped else ""
        click.echo(f"{res.ran} runs{kept}, {len(res.failed)} failed, in {res.seconds:.1f} s "
                   f"({res.runs_per_s} runs/s); results in {out}")
    sys.exit(1 if res.failed else 0)


@sweep_group.command("plot")
@click.argument("table", metavar="RESULTS")
@click.argument("image", metavar="FILE.png")
@click.option("--x", "x", required=True, help="the column along the x axis (e.g. util)")
@click.option("--y", "y", required=True, help="the numeric column to draw (e.g. misses)")
@click.option("--hue", default=None, help="one line per value of this column (e.g. policy)")
def sweep_plot_cmd(table: str, image: str, x: str, y: str, hue: str | None) -> None:
    """Draw a sweep's results (RESULTS: .parquet or .csv) into FILE.png (.svg, .pdf).

    Each point is the mean over the runs with that x (and hue), with bars from the smallest
    to the largest; failed runs are left out.  Needs the plot extra (matplotlib).
    """
    from l4sim.tools.extras import MissingExtra
    from l4sim.tools.sweep import SweepError, plot, read_table

    _check_writable("the drawing", image)
    try:
        n = plot(read_table(table), x, y, hue, image)
    except (SweepError, MissingExtra) as e:
        _fail(str(e))
        return
    except OSError as e:
        _fail(f"cannot write {image}: {e.strerror}; choose a writable path")
        return
    click.echo(f"drew {n} runs into {image}")


if __name__ == "__main__":  # pragma: no cover
    main()
