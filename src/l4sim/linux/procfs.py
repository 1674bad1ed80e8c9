"""The text of ``/proc`` files, in Linux's formats (fs/proc/array.c, task_mmu.c, meminfo.c).

A :class:`~l4sim.linux.vfs.ProcFile` gets its text when it is opened: :func:`render` is
called by ``open`` with the process (or None for a system-wide file).  Figures come from
the personality's own records: ids, the VMA list, the page table, the signal state, and CPU
times from :mod:`l4sim.linux.misc` (simulated time, in clock ticks of 100 Hz).

- ``/proc/PID/stat``: the 52 fields of Linux 6.1, in order; ``tty_nr`` and ``tpgid`` are the
  console's (5, 1) and its foreground group for the console's session, 0 and -1 for others;
  fields the model has no notion of (flags, majflt, wchan, kernel stack pointers...) are 0.
- ``/proc/PID/status``: the common lines (Name ... Threads, the signal masks,
  Cpus_allowed), not every line of a real kernel.
- ``/proc/PID/maps``, ``cmdline``, ``comm``; ``/proc/uptime``, ``/proc/meminfo`` (the
  main lines), ``/proc/loadavg`` (load 0.00: no load average is kept).
"""

from __future__ import annotations

from l4sim.kernel.abi import MemRights
from l4sim.linux.misc import NS_PER_TICK, cpu_times
from l4sim.linux.net.ifaces import proc_net
from l4sim.linux.net.stack import of
from l4sim.linux.state import POOL_BASE, LinuxThread, Personality, Proc, text_bytes
from l4sim.linux.vfs import EPOCH

PAGE = 4096
RLIM_INFINITY = (1 << 64) - 1
#: the console's device number (5, 1), as tty_nr shows it
CONSOLE_DEV = (5 << 8) | 1
STATE_NAMES = {"R": "R (running)", "S": "S (sleeping)", "D": "D (disk sleep)", "T": "T (stopped)",
               "Z": "Z (zombie)"}


def _leader(p: Proc) -> LinuxThread | None:
    return p.threads.get(p.pid) or next(iter(p.threads.values()), None)


def _state(k: Personality, p: Proc) -> str:
    """Z once ended, T while stopped, R while one of its threads is being served (``k.cur`` is
    the serving thread's tid) or is not waiting in a call, else D when one is in an L4 call,
    else S."""
    if p.status is not None:
        return "Z"
    if p.stopped:
        return "T"
    serving = k.threads.get(k.cur)
    if (serving is None or serving.proc is not p) and p.threads \
            and all(t.blocked is not None or t.l4call for t in p.threads.values()):
        # a thread in an L4 call (linux/l4.py) waits uninterruptibly: Linux's D
        return "D" if any(t.l4call for t in p.threads.values()) else "S"
    return "R"


def _mask(sigs: set[int]) -> int:
    return sum(1 << (s - 1) for s in sigs if 1 <= s <= 64)


def _vsize(p: Proc) -> int:
    return sum(v.end - v.start for v in p.vmas)


def _code(p: Proc) -> tuple[int, int]:
    code = [v for v in p.vmas if v.name == "elf" and v.rights & MemRights.X]
    return (code[0].start, code[0].end) if code else (0, 0)


async def stat(k: Personality, p: Proc) -> bytes:
    t = _leader(p)
    a = p.acct
    ticks = NS_PER_TICK
    user, system = await cpu_times(k, p)
    utime, stime = user // ticks, system // ticks
    pending = _mask(p.pending | (t.pending if t is not None else set()))
    blocked = t.sigmask if t is not None else 0
    start_code, end_code = _code(p)
    exit_code = 0 if p.status is None else (p.term_sig & 0x7F if p.term_sig else (p.exit_code & 0xFF) << 8)
    tty = k.vfs.tty
    ctty = tty.session != 0 and p.sid == tty.session  # the console is its controlling terminal
    fields = [
        p.pid, f"({p.name})", _state(k, p), p.ppid, p.pgid, p.sid, CONSOLE_DEV if ctty else 0,
        tty.pgrp if ctty else -1, 0,
        a.minflt, a.child_minflt, 0, 0, utime, stime, a.child_cpu_ns // ticks, a.child_sys_ns // ticks, 20, 0,
        max(1, len(p.threads)), 0, a.start_ns // ticks, _vsize(p), len(p.pages), RLIM_INFINITY,
        start_code, end_code, a.start_stack, 0, 0, pending, blocked, _mask(p.sigign), _mask(p.sighand),
        0, 0, 0, p.exit_signal, 0, 0, 0, 0, 0, 0, 0, 0, p.brk_start, *a.args, exit_code,
    ]
    assert len(fields) == 52
    return text_bytes(" ".join(str(f) for f in fields) + "\n")


async def status(k: Personality, p: Proc) -> bytes:
    t = _leader(p)
    kb = PAGE // 1024
    stack = sum(v.end - v.start for v in p.vmas if v.name == "stack") // 1024
    exe = sum(v.end - v.start for v in p.vmas if v.name == "elf" and v.rights & MemRights.X) // 1024
    data = sum(v.end - v.start for v in p.vmas if v.rights & MemRights.W and v.name != "stack"
               and not v.shared) // 1024
    lines = [
        ("Name", p.name), ("Umask", f"{p.umask:04o}"), ("State", STATE_NAMES[_state(k, p)]),
        ("Tgid", p.pid), ("Ngid", 0), ("Pid", p.pid), ("PPid", p.ppid), ("TracerPid", 0),
        ("Uid", "0\t0\t0\t0"), ("Gid", "0\t0\t0\t0"), ("FDSize", 64 if len(p.fds) <= 64 else 1024),
        ("Groups", ""),
        ("VmSize", f"{_vsize(p) // 1024:8d} kB"), ("VmRSS", f"{len(p.pages) * kb:8d} kB"),
        ("VmData", f"{data:8d} kB"), ("VmStk", f"{stack:8d} kB"), ("VmExe", f"{exe:8d} kB"),
        ("Threads", max(1, len(p.threads))), ("SigQ", "0/63455"),
        ("SigPnd", f"{_mask(t.pending) if t is not None else 0:016x}"), ("ShdPnd", f"{_mask(p.pending):016x}"),
        ("SigBlk", f"{t.sigmask if t is not None else 0:016x}"), ("SigIgn", f"{_mask(p.sigign):016x}"),
        ("SigCgt", f"{_mask(p.sighand):016x}"),
        ("CapInh", f"{0:016x}"), ("CapPrm", "000001ffffffffff"), ("CapEff", "000001ffffffffff"),
        ("Cpus_allowed", "1"), ("Cpus_allowed_list", "0"),
        ("voluntary_ctxt_switches", 0), ("nonvoluntary_ctxt_switches", 0),
    ]
    return text_bytes("".join(f"{name}:\t{value}\n" for name, value in lines))


def maps(p: Proc) -> bytes:
    out = []
    for v in sorted(p.vmas, key=lambda v: v.start):
        if v.start >= v.end:
            continue
        perms = ("r" if v.rights & MemRights.R else "-") + ("w" if v.rights & MemRights.W else "-") \
            + ("x" if v.rights & MemRights.X else "-") + ("s" if v.shared else "p")
        ino = v.file.ino if v.file is not None else 0
        head = f"{v.start:08x}-{v.end:08x} {perms} {v.off:08x} 00:00 {ino} "
        name = {"heap": "[heap]", "stack": "[stack]", "elf": p.exe}.get(v.name, "" if v.file is None else v.name)
        if v.name == "mmap" and v.shared:
            name = "/dev/zero (deleted)"
        out.append((head.ljust(72) + " " + name if name else head) + "\n")
    return text_bytes("".join(out))


async def cmdline(k: Personality, p: Proc) -> bytes:
    start, end = p.acct.args[0], p.acct.args[1]
    if p.status is not None or end <= start:
        return b""
    raw = await k.read(p, start, min(end - start, 1 << 16))
    return raw or b""


async def render(k: Personality, p: Proc | None, what: str) -> bytes:
    """The text of ``/proc/PID/what`` (``p`` given) or ``/proc/what``."""
    if p is not None:
        if what == "stat":
            return await stat(k, p)
        if what == "status":
            return await status(k, p)
        if what == "maps":
            return maps(p) if p.status is None else b""
        if what == "cmdline":
            return await cmdline(k, p)
        if what == "comm":
            return text_bytes(p.name) + b"\n"
        return b""
    if what.startswith("net/"):
        return proc_net(of(k), what[4:])
    up = k.now_ns // 10_000_000
    if what == "uptime":
        return f"{up // 100}.{up % 100:02d} 0.00\n".encode()
    if what == "loadavg":
        running = sum(1 for q in k.procs.values() if _state(k, q) == "R")
        total = sum(max(1, len(q.threads)) for q in k.procs.values())
        return f"0.00 0.00 0.00 {running}/{total} {k.last_pid}\n".encode()
    if what == "mounts":
        return b"".join(f"{dev} {at} {kind} rw,relatime 0 0\n".encode() for dev, at, kind in
                        (("l4sim", "/", "tmpfs"), ("tmpfs", "/tmp", "tmpfs"), ("devtmpfs", "/dev", "devtmpfs"),
                         ("tmpfs", "/dev/shm", "tmpfs"), ("proc", "/proc", "proc")))
    if what == "stat":
        times = [await cpu_times(k, q) for q in list(k.all.values())]
        user = sum(u for u, _ in times) // NS_PER_TICK
        system = sum(s for _, s in times) // NS_PER_TICK
        busy = user + system
        idle = max(0, up * k.ncores - busy)
        lines = [f"cpu  {user} 0 {system} {idle} 0 0 0 0 0 0"]
        lines += [f"cpu{i} {user if i == 0 else 0} 0 {system if i == 0 else 0} "
                  f"{max(0, up - busy) if i == 0 else up} 0 0 0 0 0 0" for i in range(k.ncores)]
        running = sum(1 for q in k.procs.values() if _state(k, q) == "R")
        lines += ["intr 0", "ctxt 0", f"btime {EPOCH}", f"processes {k.made}",
                  f"procs_running {running}", "procs_blocked 0"]
        return ("\n".join(lines) + "\n").encode()
    if what == "meminfo":
        total = k.cfg.ram // 1024
        used = ((k.pool_next - POOL_BASE) // PAGE - len(k.free)) * PAGE // 1024
        free = max(0, total - used)
        rows = [("MemTotal", total), ("MemFree", free), ("MemAvailable", free), ("Buffers", 0),
                ("Cached", 0), ("SwapCached", 0), ("SwapTotal", 0), ("SwapFree", 0)]
        return "".join(f"{name + ':':<16}{n:>8} kB\n" for name, n in rows).encode()
    return b""

