"""Host side of ``l4sim linux run``: boot a machine with sigma0 and the personality, run one program.

The personality is the root task (every initial capability, sigma0 as its
pager), not a program on the runtime: it needs only frames, which it takes
from sigma0 directly.  The executable's bytes are read on the host and
handed to it (standing for the file-system server); the seed of its random
bytes is drawn from the machine's seeded generator.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import Thread
from l4sim.kernel.trace import Record, Tracer
from l4sim.linux.elf import ElfError, Image, parse
from l4sim.linux.net.config import etc_hosts
from l4sim.linux.personality import personality
from l4sim.linux.rootfs import RootFs, RootFsError, WriteBack, build
from l4sim.linux.state import Config, comm
from l4sim.linux.sysnames import NAMES
from l4sim.linux.vfs import Dir, File, Vfs, guest_str
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
    #: what --write-back did (None: not asked)
    write_back: WriteBack | None = None


def file_image(node: File, name: str) -> tuple[Image, bytes]:
    """The executable in a file of a guest's tree, and its bytes; :class:`LinuxError` with
    one line when it is not one we run."""
    data = bytes(node.data)
    try:
        return parse(data, name), data
    except ElfError as e:
        raise LinuxError(str(e)) from None


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


#: where a program named without a slash is looked for in the guest's tree (its PATH)
GUEST_PATH = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin")


def find_program(path: str | Path, fs: RootFs) -> tuple[Image, str, str, bytes]:
    """The program ``l4sim linux run`` was given: its image, its path in the guest (links
    followed: ``/proc/self/exe``), the path it was found at (its name, as ``/bin/ls`` names
    busybox's ``ls``) and its bytes.  A name without a slash is looked up as a shell looks it up, in the guest's tree
    first (``ls`` is busybox's applet of the small Linux, or the ``--root`` tree's own
    ``/bin/ls``), then on the host's PATH (as ``strace ls`` finds it), then in the current
    directory; a path is a host file, put into the guest at its absolute path."""
    name = os.fspath(path)
    if not name:
        raise LinuxError("the program's name is empty; give a path or a name in the guest's PATH")
    if "/" not in name and name not in (".", ".."):
        vfs = Vfs(fs.root, mounts=fs.mounts)
        for d in GUEST_PATH:
            node, err, where = vfs.walk(fs.root, f"{d}/{guest_str(name)}", None)
            if err == 0 and isinstance(node, File) and node.mode & 0o111:
                image, data = file_image(node, where)
                return image, where, f"{d}/{guest_str(name)}", data
        host = shutil.which(name) or (name if Path(name).is_file() else None)
        if host is None:
            raise LinuxError(f"{shown(name)}: no such program in the guest's {':'.join(GUEST_PATH[:3])} "
                             f"or on the host's PATH; give its path (./{shown(name)} for one here)")
        path = host
    image = load(path)
    exe = guest_str(str(Path(path).absolute()))
    return image, exe, exe, Path(path).read_bytes()


def make_root(root: str | Path | None) -> Dir:
    """The file system's root: a host directory (read lazily), a tar file, or (None) the small
    Linux of :mod:`l4sim.linux.rootfs`."""
    try:
        return build(root, init=False).root
    except RootFsError as e:
        raise LinuxError(str(e)) from None


def run(path: str | Path, args: Sequence[str | bytes] = (), *, out: Callable[[int, bytes], None],
        strace: Callable[[str], None] | None = None, cores: int = 1, seed: int = 0,
        tracer: Tracer | None = None, ram: int = 256 << 20, root: str | Path | None = None,
        stdin: Callable[[], bytes] = lambda: b"", interrupts: list[int] | None = None,
        workdir: str | Path | None = None, write_back: bool = False, init: bool = True,
        first_instruction: Callable[[], None] | None = None) -> Result:
    """Run the static executable ``path`` with ``args``; its output goes to ``out(fd, bytes)``,
    its stdin comes from ``stdin()`` (chunks, b"" at the end).  Signal numbers appended to
    ``interrupts`` (the host's Ctrl-C: 2) go to the console's foreground process group.

    The tree is :func:`l4sim.linux.rootfs.build`'s: ``root`` (None: the small Linux),
    ``workdir`` imported at its path as the working directory (None: none, the program
    starts in ``/``; ``l4sim linux run`` gives the host's current directory), init as pid 1
    unless ``init`` is False.  ``write_back``: when the run ends, what the guest changed in
    the working directory is written to the host (``Result.write_back`` says what was done
    and what was left).  ``first_instruction`` is called (once, from the kernel's guest
    executor) just before the program's first instruction: a tool's probe of the start-up
    time."""
    try:  # the options' errors first, as they come first on the command line
        fs = build(root, workdir=workdir, init=init)
    except RootFsError as e:
        raise LinuxError(str(e)) from None
    etc_hosts(fs.root, None, None)  # "localhost" resolves, as on any Linux system
    image, exe, named, data = find_program(path, fs)
    argv = [guest_str(os.fsdecode(a)) for a in args]  # any bytes (see vfs.guest_str)
    m = Machine(cores=cores, seed=seed, ram=ram)
    k = Kernel(m, tracer=tracer)
    nframes = m.mem.nframes
    cfg = Config(image, [guest_str(str(path)), *argv], seed=m.rng.getrandbits(64), out=out, strace=strace,
                 root=fs.root, mounts=fs.mounts, cwd=fs.cwd, init=fs.init, exe=exe, exe_named=named,
                 exe_bytes=data, stdin=stdin, ram=ram)
    if interrupts is not None:
        cfg.interrupts = interrupts
    cfg.keyboard = True
    if first_instruction is not None:
        name = comm(exe)

        def first_run(th: Thread) -> None:
            if th.name == name and k.guest_first_run is not None:
                k.guest_first_run = None
                first_instruction()

        k.guest_first_run = first_run
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
    res = Result(cfg.result[0], cfg.stats, max([k.events.now, *(c.time for c in k.cores)]))
    if write_back:
        res.write_back = fs.write_back()
    return res


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
