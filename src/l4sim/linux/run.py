"""Host side of ``l4sim linux run``: boot a machine with sigma0 and the personality, run one program.

The personality is the root task (every initial capability, sigma0 as its
pager), not a program on the runtime: it needs only frames, which it takes
from sigma0 directly.  The executable's bytes are read on the host and
handed to it (standing for the file-system server); the seed of its random
bytes is drawn from the machine's seeded generator.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Record, Tracer
from l4sim.linux.elf import ElfError, Image, parse
from l4sim.linux.net.config import etc_hosts
from l4sim.linux.personality import personality
from l4sim.linux.state import Config
from l4sim.linux.sysnames import NAMES
from l4sim.linux.vfs import Dir, Vfs, guest_str
from l4sim.machine.board import LINE_UART, Machine
from l4sim.runtime.sigma0 import sigma0
from l4sim.user.env import INITIAL, SIGMA0_CAPS, Env, TaskLocal


class LinuxError(Exception):
    """The program cannot be started; ``str()`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")))


def shown(text: str | Path) -> str:
    """A path or argument as a message shows it: bytes that are not UTF-8 (which Python holds
    as surrogate escapes) as ``\\xNN``, so the line prints anywhere."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass
class Result:
    status: int
    stats: dict[str, Any] = field(default_factory=dict)
    sim_ns: int = 0


def load(path: str | Path) -> Image:
    """Read and check a host executable; :class:`LinuxError` with one line otherwise."""
    p = Path(path)
    try:
        if p.exists() and not p.is_file() and not p.is_dir():  # a FIFO or a device: never read it
            raise LinuxError(f"{shown(path)}: not a regular file")
        data = p.read_bytes()
    except FileNotFoundError:
        raise LinuxError(f"{shown(path)}: no such file") from None
    except IsADirectoryError:
        raise LinuxError(f"{shown(path)}: is a directory") from None
    except OSError as e:
        raise LinuxError(f"{shown(path)}: cannot read ({e.strerror})") from None
    try:
        return parse(data, shown(path))
    except ElfError as e:
        raise LinuxError(str(e)) from None


def make_root(root: str | Path | None) -> Dir:
    """The file system's root: a host directory (read lazily), a tar file, or empty."""
    if root is None:
        return Vfs.empty()
    r = Path(root)
    if r.is_dir():
        return Vfs.from_host(r)
    if r.is_file():
        try:
            return Vfs.from_tar(r)
        except (tarfile.TarError, EOFError, UnicodeError, ValueError):
            raise LinuxError(f"{shown(root)}: not a directory or a tar file; --root takes one of them") from None
        except OSError as e:
            raise LinuxError(f"{shown(root)}: cannot read ({e.strerror})") from None
    if r.exists() or r.is_symlink():
        raise LinuxError(f"{shown(root)}: not a directory or a tar file; --root takes one of them")
    raise LinuxError(f"{shown(root)}: no such directory or tar file")


def run(path: str | Path, args: Sequence[str | bytes] = (), *, out: Callable[[int, bytes], None],
        strace: Callable[[str], None] | None = None, cores: int = 1, seed: int = 0,
        tracer: Tracer | None = None, ram: int = 256 << 20, root: str | Path | None = None,
        stdin: Callable[[], bytes] = lambda: b"", interrupts: list[int] | None = None) -> Result:
    """Run the static executable ``path`` with ``args``; its output goes to ``out(fd, bytes)``,
    its stdin comes from ``stdin()`` (chunks, b"" at the end).  Signal numbers appended to
    ``interrupts`` (the host's Ctrl-C: 2) go to the console's foreground process group."""
    tree = make_root(root)  # the options' errors first, as they come first on the command line
    etc_hosts(tree, None, None)  # "localhost" resolves, as on any Linux system
    image = load(path)
    argv = [guest_str(os.fsdecode(a)) for a in args]  # any bytes (see vfs.guest_str)
    m = Machine(cores=cores, seed=seed, ram=ram)
    k = Kernel(m, tracer=tracer)
    nframes = m.mem.nframes
    exe = guest_str(str(Path(path).absolute()))
    cfg = Config(image, [guest_str(str(path)), *argv], seed=m.rng.getrandbits(64), out=out, strace=strace,
                 root=tree, exe=exe, exe_bytes=Path(path).read_bytes(), stdin=stdin, ram=ram)
    if interrupts is not None:
        cfg.interrupts = interrupts
    cfg.keyboard = True
    s0 = k.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS)), nframes))
    k.create_root("linux", lambda sp: personality(Env(TaskLocal(INITIAL)), cfg), prio=100, pager=s0)

    def stop() -> bool:
        # a key typed at the host's terminal (Ctrl-C appends to ``interrupts``) is the UART's
        # receive interrupt: the personality's terminal driver takes it even while guests spin
        # (raised until it has taken them; a masked line only latches)
        if cfg.interrupts:
            m.ic.raise_line(LINE_UART)
        return bool(cfg.result)

    try:
        k.run(stop=stop)
    finally:
        k.drop_guest_pool()
    if not cfg.result:
        raise LinuxError(f"{shown(path)}: the system went idle before the program ended")
    return Result(cfg.result[0], cfg.stats, max([k.events.now, *(c.time for c in k.cores)]))


def syscall_records(records: Iterable[Record]) -> list[Record]:
    """The trace records with each guest system call named: an ``exception`` record of a
    ``syscall`` (its ``code`` is the number in rax) gets an argument ``syscall`` with the
    call's name, which the Perfetto exporter shows with the event."""
    out: list[Record] = []
    for rec in records:
        t, cpu, kind, tid, args = rec
        if kind == "exception" and args.get("why") == "syscall":
            nr = args.get("code")
            known = NAMES.get(nr) if isinstance(nr, int) else None
            rec = (t, cpu, kind, tid, {**args, "syscall": known[0] if known else f"syscall_{nr}"})
        out.append(rec)
    return out
