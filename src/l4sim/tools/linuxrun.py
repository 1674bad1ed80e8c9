"""``l4sim linux run`` without click: the command's work, and its quick start.

The command is declared with the others in :mod:`l4sim.cli` (click: its help, its usage
errors); what it does is :func:`run_command`, here, in a module that imports neither click nor
anything it does not need, together with the helpers of a run's output (the one-line
errors, the trace files, Ctrl-C).

**Quick start.** Importing click costs about a fifth of the start-up budget of ``linux run``
(0.1 s from the command to the program's first instruction), so :mod:`l4sim.launch` asks
:func:`parse_fast` first: a command line of ``linux run`` whose options are all known and
well-formed is run at once, without click; anything else -- ``--help``, an unknown or
malformed option, a missing program -- goes to click, which parses it again and says what is
wrong in its usual one line.  :func:`parse_fast` accepts only what click parses to the same
values (``tests/tools/test_linuxrun.py`` holds the two side by side).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

#: the exit status of a command ended by Ctrl-C (SIGINT)
INTERRUPTED = 130

#: ``linux run``'s options: flags, and options with a value (``int`` or ``str``), by the name of
#: the parameter they set (the same names as :func:`l4sim.cli.linux_run_cmd`'s)
FLAGS = {"--strace": "strace", "--write-back": "write_back"}
VALUES: dict[str, tuple[str, type]] = {
    "--cores": ("cores", int), "--seed": ("seed", int), "--root": ("root", str), "--workdir": ("workdir", str),
    "--trace": ("trace_path", str), "--jsonl": ("jsonl_path", str), "--first-instruction-file": ("first_insn_path", str)}
DEFAULTS: dict[str, Any] = {"strace": False, "write_back": False, "cores": 1, "seed": 0, "root": None,
                            "workdir": None, "trace_path": None, "jsonl_path": None, "first_insn_path": None}


def parse_fast(argv: Sequence[str]) -> dict[str, Any] | None:
    """The parameters of ``linux run ARGV`` (after the two words), or None when the command
    line is anything but a plain run: click is to parse it then."""
    opts = dict(DEFAULTS)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break  # the program: everything after it is its own
        name, eq, value = a.partition("=")
        if name in FLAGS and not eq:
            opts[FLAGS[name]] = True
            i += 1
            continue
        if name not in VALUES:
            return None  # --help, an unknown option: click says what it is
        if not eq:
            if i + 1 >= len(argv) or argv[i + 1].startswith("-"):
                return None
            value = argv[i + 1]
            i += 1
        i += 1
        key, kind = VALUES[name]
        if kind is int:
            try:
                opts[key] = int(value)  # what click's INT does
            except (ValueError, UnicodeError):
                return None
        else:
            opts[key] = value
    if i >= len(argv):
        return None  # no program
    opts["program"] = argv[i]
    opts["args"] = tuple(argv[i + 1:])
    return opts


# --------------------------------------------------------------------------- a command's output
def fail(msg: str) -> NoReturn:
    """One line on stderr, status 2."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.stderr.write(f"l4sim: {msg}\n")
    sys.stderr.flush()
    sys.exit(2)


def interrupted(detail: str = "") -> NoReturn:
    """Leave after Ctrl-C: flush what was printed, one line on stderr, status 130."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    sys.stderr.write(f"l4sim: interrupted{detail}\n")
    sys.stderr.flush()
    sys.exit(INTERRUPTED)


def check_writable(what: str, *paths: str | None) -> None:
    """Refuse, before a run, an output path that could not be written (a missing directory, a
    directory, no permission): a bad path must not cost the run."""
    for path in paths:
        if path:
            from l4sim.tools.trace_export import check_writable as check

            try:
                check(path)
            except OSError as e:
                fail(f"cannot write {what}: {e.strerror} ({path}); choose a writable path")


def write_traces(records: Any, trace_path: str | None, jsonl_path: str | None,
                 header: dict[str, Any] | None = None) -> None:
    """Write the trace files asked for (each whole or not at all); the JSON Lines file starts
    with the run's ``header`` (how to start the same run again: ``l4sim replay``)."""
    from l4sim.tools.runfile import header_line
    from l4sim.tools.trace_export import write_chrome, write_jsonl

    try:
        if trace_path:
            write_chrome(records, trace_path)
        if jsonl_path:
            write_jsonl(records, jsonl_path, header_line(header) if header is not None else None)
    except OSError as e:
        fail(f"cannot write the trace: {e.strerror} ({e.filename}); choose a writable path")


def saved(trace_path: str | None, jsonl_path: str | None) -> str:
    """The end of the ``interrupted`` line when traces of the run so far were written."""
    paths = [p for p in (trace_path, jsonl_path) if p]
    return f"; the trace so far is in {' and '.join(paths)}" if paths else ""


def _first_instruction_probe(path: str) -> Callable[[], None]:
    """What ``--first-instruction-file`` runs at the program's first instruction: the host's
    CLOCK_MONOTONIC (shared by every process: the benchmark subtracts its own reading from
    before it started the command) into ``path``."""

    def probe() -> None:
        import time

        with open(path, "w") as f:
            f.write(str(time.monotonic_ns()))

    return probe


# --------------------------------------------------------------------------- the command
def run_command(strace: bool, cores: int, seed: int, root: str | None, workdir: str | None,
                write_back: bool, trace_path: str | None, jsonl_path: str | None,
                first_insn_path: str | None, program: str, args: Sequence[str]) -> NoReturn:
    """``l4sim linux run``: run PROGRAM with ARGS; exit with its status (128+N: signal N)."""
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
        fail(f"--cores {cores}: a machine has 1..64 cores")
    check_writable("the trace", trace_path, jsonl_path)
    tracer = Tracer() if trace_path or jsonl_path else None
    interrupts: list[int] = []
    if workdir is None:
        try:
            workdir = os.getcwd()
        except OSError:  # the current directory is gone: nothing to import
            workdir = "/"
    header = None
    if tracer is not None:  # (importlib.metadata, for the version, is read only then)
        from l4sim.tools.runfile import linux_header

        header = linux_header(program, list(args), seed, cores, root, workdir)

    def ctrl_c(signum: int, frame: object) -> None:
        if interrupts:  # the first one has not been delivered yet: stop the run
            raise KeyboardInterrupt
        interrupts.append(signal.SIGINT)  # the guest's foreground group gets SIGINT

    try:
        old: Any = signal.signal(signal.SIGINT, ctrl_c)
    except ValueError:  # not the main thread: Ctrl-C stays Python's
        old = None
    first_insn = _first_instruction_probe(first_insn_path) if first_insn_path is not None else None
    try:
        res = run(program, list(args), out=out, strace=trace if strace else None, cores=cores, seed=seed,
                  root=root, stdin=stdin, tracer=tracer, interrupts=interrupts, workdir=workdir,
                  write_back=write_back, first_instruction=first_insn)
    except LinuxError as e:
        fail(str(e))
    except KeyboardInterrupt:  # the second Ctrl-C: the run stops; its trace so far is kept
        if old is not None:
            signal.signal(signal.SIGINT, old)
        if tracer is not None:
            write_traces(syscall_records(tracer.records), trace_path, jsonl_path, header)
        interrupted(saved(trace_path, jsonl_path))
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if tracer is not None:
        write_traces(syscall_records(tracer.records), trace_path, jsonl_path, header)
    if res.write_back is not None:
        for line in res.write_back.conflicts:
            sys.stderr.write(f"l4sim: write-back: {line}\n")
        sys.stderr.flush()
    sys.exit(res.status)
