"""The system-call table of the Linux personality, xv6-style.

:data:`TABLE` maps an x86-64 system-call number to a :class:`Syscall`: its
name, a thin ``async`` function ``fn(k, p, c) -> int`` (``k`` the
:class:`~l4sim.linux.state.Personality`, ``p`` the calling process,
``c`` the :class:`Call` with its six arguments), and an argument format for
``--strace``.  The result goes back in rax (a negative errno on failure).
A number not in the table returns ``-ENOSYS`` and is counted.

Format letters: ``d`` signed decimal, ``u`` unsigned, ``x`` hex, ``o`` octal,
``p`` pointer (NULL or hex), ``s`` C string in guest memory, ``b`` a buffer
whose length is the next argument, ``v`` an iovec array whose count is the
next argument; ``B`` and ``V`` are ``b`` and ``v`` filled by the call (read,
readv): shown after it returns, as much as it returned.  A call outside the
table is printed with its name from :mod:`l4sim.linux.sysnames` and its
arguments in hex (``syscall_0x1f4()`` for a number Linux does not have).
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from l4sim.kernel.abi import MapItem
from l4sim.linux import (
    events,
    fileio,
    files,
    futex,
    ipc,
    jobs,
    locks,
    memory,
    misc,
    process,
    sched,
    signals,
    threads,
    timers,
    xattr,
)
from l4sim.linux.net import inet
from l4sim.linux.signals import ERESTARTSYS, deliver
from l4sim.linux.state import BLOCK, WAITING, Call, Personality, Proc
from l4sim.linux.state import quote as _quote
from l4sim.linux.sysnames import ERRNOS, NAMES
from l4sim.linux.vfs import EPOCH

PAGE = 4096
#: errno values (x86-64 Linux)
EPERM, ENOENT, ESRCH, EINTR, EIO, EBADF, ENOMEM, EFAULT, EINVAL = 1, 2, 3, 4, 5, 9, 12, 14, 22
ENOTTY, ESPIPE, ENODEV, ENOSYS = 25, 29, 19, 38
ERRNO_NAMES = {e: name for e, (name, _) in ERRNOS.items()}
ERRNO_TEXT = {e: text for e, (_, text) in ERRNOS.items()}
INDEX = {"fs_base": 18, "gs_base": 19}

Fn = Callable[["Personality", "Proc", Call], Awaitable[int]]


@dataclass(frozen=True)
class Syscall:
    name: str
    fn: Fn
    fmt: str


def _s(v: int) -> int:
    """A register as a signed 64-bit integer."""
    return v - (1 << 64) if v >> 63 else v


def _i(v: int) -> int:
    """A register's low 32 bits as a signed int."""
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


# --------------------------------------------------------------------------- misc
async def sys_zero(k: Personality, p: Proc, c: Call) -> int:
    """Calls that succeed and do nothing here (ids of root, masks, hints)."""
    return 0


async def sys_sched_yield(k: Personality, p: Proc, c: Call) -> int:
    """sched_yield: the caller goes behind the other ready threads of its priority.  The call
    waits and is answered in the same round, through its saved reply capability: the kernel
    queues a thread so answered behind the others, where an answer to the call being served
    would resume it ahead of them (kernel/ipc.py ``wake``)."""
    if c.state is None:
        c.state = True
        k.runnable.append(p.cur.tid)
        return BLOCK
    return 0


async def sys_enosys(k: Personality, p: Proc, c: Call) -> int:
    return -ENOSYS


async def sys_arch_prctl(k: Personality, p: Proc, c: Call) -> int:
    code, addr = c.a[0], c.a[1]
    if code == 0x1002:  # ARCH_SET_FS
        c.set_regs["fs_base"] = addr
        return 0
    if code == 0x1001:  # ARCH_SET_GS
        c.set_regs["gs_base"] = addr
        return 0
    if code in (0x1003, 0x1004):  # ARCH_GET_FS / ARCH_GET_GS
        v = c.words[18 if code == 0x1003 else 19]
        return 0 if await k.write(p, addr, v.to_bytes(8, "little")) else -EFAULT
    return -EINVAL


async def _rlimit(k: Personality, p: Proc, res: int, new: int, old: int) -> int:
    """Read the limit ``res`` into ``old`` and set it from ``new`` (guest addresses, 0: none).

    Linux's rules: an unknown resource is EINVAL, a soft limit above the hard one is EINVAL;
    the (root) process may raise the hard limit.  RLIMIT_NOFILE bounds new descriptors."""
    if res not in p.rlimits:
        return -EINVAL
    lim = None
    if new:
        raw = await k.read(p, new, 16)
        if raw is None:
            return -EFAULT
        lim = struct.unpack("<QQ", raw)
        if lim[0] > lim[1]:
            return -EINVAL
    if old and not await k.write(p, old, struct.pack("<QQ", *p.rlimits[res])):
        return -EFAULT
    if lim is not None:
        p.rlimits[res] = lim
    return 0


async def sys_prlimit64(k: Personality, p: Proc, c: Call) -> int:
    pid = _i(c.a[0])
    q = p if pid in (0, p.pid) else k.procs.get(pid)
    if q is None or q.status is not None:
        return -ESRCH
    return await _rlimit(k, q, c.a[1], c.a[2], c.a[3])


async def sys_getrlimit(k: Personality, p: Proc, c: Call) -> int:
    return await _rlimit(k, p, c.a[0], 0, c.a[1]) if c.a[1] else -EFAULT


async def sys_setrlimit(k: Personality, p: Proc, c: Call) -> int:
    return await _rlimit(k, p, c.a[0], c.a[1], 0) if c.a[1] else -EFAULT


async def sys_uname(k: Personality, p: Proc, c: Call) -> int:
    fields = (b"Linux", b"l4sim", b"6.1.0-l4sim", b"#1 SMP l4sim", b"x86_64", b"(none)")
    data = b"".join(f.ljust(65, b"\0") for f in fields)
    return 0 if await k.write(p, c.a[0], data) else -EFAULT


async def sys_getrandom(k: Personality, p: Proc, c: Call) -> int:
    n = min(c.a[1], 1 << 20)
    data = bytes(k.rng.getrandbits(8) for _ in range(n))
    return n if await k.write(p, c.a[0], data) else -EFAULT


# --------------------------------------------------------------------------- time
async def _now(k: Personality) -> int:
    return int(await k.env.clock())


async def sys_clock_gettime(k: Personality, p: Proc, c: Call) -> int:
    clk = c.a[0]
    ns = await _now(k)
    if clk in (0, 5, 8, 11):  # REALTIME, REALTIME_COARSE, REALTIME_ALARM, TAI: the wall clock
        ns += EPOCH * 1_000_000_000
    elif clk > 11:
        return -EINVAL
    return 0 if await k.write(p, c.a[1], struct.pack("<qq", ns // 10**9, ns % 10**9)) else -EFAULT


async def sys_clock_getres(k: Personality, p: Proc, c: Call) -> int:
    if c.a[1] and not await k.write(p, c.a[1], struct.pack("<qq", 0, 1)):
        return -EFAULT
    return 0


async def sys_gettimeofday(k: Personality, p: Proc, c: Call) -> int:
    ns = await _now(k) + EPOCH * 10**9
    if c.a[0] and not await k.write(p, c.a[0], struct.pack("<qq", ns // 10**9, ns % 10**9 // 1000)):
        return -EFAULT
    return 0


async def sys_time(k: Personality, p: Proc, c: Call) -> int:
    t = (await _now(k)) // 10**9 + EPOCH
    if c.a[0] and not await k.write(p, c.a[0], t.to_bytes(8, "little")):
        return -EFAULT
    return t


# --------------------------------------------------------------------------- the table
TABLE: dict[int, Syscall] = {
    24: Syscall("sched_yield", sys_sched_yield, ""),
    63: Syscall("uname", sys_uname, "p"),
    96: Syscall("gettimeofday", sys_gettimeofday, "pp"),
    97: Syscall("getrlimit", sys_getrlimit, "dp"),
    160: Syscall("setrlimit", sys_setrlimit, "dp"),
    102: Syscall("getuid", sys_zero, ""),
    104: Syscall("getgid", sys_zero, ""),
    107: Syscall("geteuid", sys_zero, ""),
    108: Syscall("getegid", sys_zero, ""),
    158: Syscall("arch_prctl", sys_arch_prctl, "xp"),
    201: Syscall("time", sys_time, "p"),
    228: Syscall("clock_gettime", sys_clock_gettime, "dp"),
    229: Syscall("clock_getres", sys_clock_getres, "dp"),
    302: Syscall("prlimit64", sys_prlimit64, "ddpp"),
    318: Syscall("getrandom", sys_getrandom, "pux"),
    334: Syscall("rseq", sys_enosys, "pudx"),
}


async def _iov(k: Personality, p: Proc, addr: int, cnt: int, limit: int | None) -> str:
    """An iovec array as strace prints it; ``limit``: show only that many bytes of data in all
    (what readv filled), None: up to every iov_len (what writev takes)."""
    raw = await k.read(p, addr, 16 * min(cnt, 32)) if 0 < cnt <= 1024 else None
    if raw is None:
        return hex(addr)
    out = []
    for i in range(len(raw) // 16):
        base, n = struct.unpack_from("<QQ", raw, 16 * i)
        avail = n if limit is None else min(n, limit)
        if limit is not None:
            limit -= avail
        data = await k.read(p, base, min(avail, 33)) if avail else b""
        out.append(f"{{iov_base={hex(base) if data is None else _quote(data)}, iov_len={n}}}")
    return "[" + ", ".join(out) + (", ..." if cnt > 32 else "") + "]"


async def _format(k: Personality, p: Proc, fmt: str, a: tuple[int, ...], r: int | None = None) -> str:
    """The arguments of a call for --strace.  Upper-case letters show what the call wrote:
    given its result ``r``, the data; before it returned, or after an error, the pointer."""
    out = []
    for i, f in enumerate(fmt):
        v = a[i]
        if f in "BV" and (r is None or r < 0):
            out.append("NULL" if v == 0 else hex(v))
            continue
        if f == "d":
            out.append(str(_i(v)) if v < 1 << 32 or v >> 63 else str(_s(v)))
        elif f == "u":
            out.append(str(v))
        elif f == "x":
            out.append(hex(v))
        elif f == "o":
            out.append(oct(v).replace("o", ""))
        elif f == "p":
            out.append("NULL" if v == 0 else hex(v))
        elif f == "s":
            s = await k.read_str(p, v) if v else None
            out.append(_quote(s, 64) if s is not None else hex(v))
        elif f in "bB":
            n = a[i + 1] if f == "b" else r
            assert n is not None
            b = await k.read(p, v, min(n, 33))
            out.append(_quote(b, 32) if b is not None else hex(v))
        elif f in "vV":
            out.append(await _iov(k, p, v, a[i + 1], None if f == "v" else r))
    return ", ".join(out)


#: calls that print their own strace line (they may end the caller)
_OWN_TRACE = frozenset(("exit", "exit_group", "kill", "tgkill", "tkill", "execve"))


def _result(r: int) -> str:
    if r == -ERESTARTSYS:  # interrupted, to run again after the handler (SA_RESTART)
        return "? ERESTARTSYS (To be restarted if SA_RESTART is set)"
    if -4096 < r < 0:
        e = -r
        return f"-1 {ERRNO_NAMES.get(e, str(e))} ({ERRNO_TEXT.get(e, 'error')})"
    return hex(r) if r > 0xFFFF else str(r)


async def dispatch(k: Personality, p: Proc, words: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """Serve one system call of ``p`` (the 20 words of its exception IPC); the reply, or None
    when the call ended the process."""
    if k.cfg.interrupts:  # Ctrl-C at the console: the foreground group first
        await jobs.console_signals(k)
        if p.status is not None:
            return None
    nr = words[0]
    c = Call(nr, (words[5], words[4], words[3], words[9], words[7], words[8]), words)
    k.calls += 1
    p.syscalls += 1
    sc = TABLE.get(nr)
    trace = k.cfg.strace
    args = ""
    if sc is None:
        k.unimplemented[nr] = k.unimplemented.get(nr, 0) + 1
        known = NAMES.get(nr)
        if known is not None:
            c.name = known[0]
            if trace is not None:
                c.args = ", ".join(hex(v) for v in c.a[: known[1]])
        r = -ENOSYS
    else:
        c.name = sc.name
        if trace is not None and sc.name not in _OWN_TRACE:
            args = await _format(k, p, sc.fmt, c.a)
        c.args = args
        synced = bool(k.file_pages) and nr in FILE_DATA  # MAP_SHARED pages and files in step
        if synced:
            for node in list(k.file_pages):
                await k.pull_file(node)
        r = await sc.fn(k, p, c)
        if synced:
            for node in list(k.file_pages):
                await k.push_file(node)
        if c.ended:
            return None
        if r == BLOCK:
            p.cur.blocked = c
            return WAITING
    return await finish(k, p, c, r)


async def resume(k: Personality, p: Proc, c: Call) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """Run a waiting call again: its reply, WAITING again, or None when it ended the process."""
    r = await TABLE[c.nr].fn(k, p, c)
    if c.ended:
        return None
    if r == BLOCK:
        p.cur.blocked = c
        return WAITING
    return await finish(k, p, c, r)


async def finish(k: Personality, p: Proc, c: Call, r: int) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """The reply to a finished call: rax (and registers it sets), the entry into a signal
    handler, or None when a signal it unblocked ended the process."""
    trace = k.cfg.strace
    words = c.words
    if trace is not None:
        sc = TABLE.get(c.nr)
        if sc is not None and ("B" in sc.fmt or "V" in sc.fmt):
            c.args = await _format(k, p, sc.fmt, c.a, r)  # what the call read, now that it has
        name = c.name or f"syscall_{c.nr:#x}"
        trace(f"{name}({c.args}) = {_result(r)}")
    rax = r & 0xFFFF_FFFF_FFFF_FFFF
    if c.all_regs is None and not c.set_regs and not p.pending and not p.cur.pending:
        return (0, (rax,), ())  # the common case: rax alone
    if c.all_regs is not None:
        regs = list(c.all_regs)
    else:
        regs = list(words[:20])
        regs[0] = rax
        for n, v in c.set_regs.items():
            regs[INDEX[n]] = v
    if p.pending or p.cur.pending:
        entered = await deliver(k, p, regs)
        if entered is not None:
            return (0, tuple(entered), ())
        if p.status is not None:
            return None
    if c.all_regs is not None:
        return (0, tuple(regs), ())
    if not c.set_regs:
        return (0, (rax,), ())
    return (0, tuple(regs[: 1 + max(INDEX[n] for n in c.set_regs)]), ())


def _merge() -> None:
    """The calls of each area's module join the table."""
    for mod in (events, fileio, files, futex, ipc, jobs, locks, memory, misc, process, sched, signals, threads,
                timers, xattr, inet):  # (inet's socket calls pass AF_UNIX's on to sockets)
        for nr, (name, fn, fmt) in mod.TABLE_ENTRIES.items():
            TABLE[nr] = Syscall(name, cast(Fn, fn), fmt)


_merge()


def implemented() -> list[tuple[int, str]]:
    """The calls the table implements, by number: an entry that only answers ENOSYS (kept for
    strace's argument format, as rseq) is not one."""
    return [(nr, TABLE[nr].name) for nr in sorted(TABLE) if TABLE[nr].fn is not sys_enosys]

#: calls that read or write files' bytes: before each, what MAP_SHARED mappings of files wrote
#: is copied into the files, after it what it wrote is copied into the mapped pages
#: (:meth:`Personality.pull_file`, :meth:`Personality.push_file`)
FILE_DATA = frozenset(nr for nr, sc in TABLE.items() if sc.name in {
    "read", "write", "open", "openat", "creat", "pread64", "pwrite64", "readv", "writev",
    "sendfile", "truncate", "ftruncate", "execve", "preadv", "pwritev", "preadv2", "pwritev2",
    "fallocate", "copy_file_range"})

#: calls that read no clock (neither ``k.now_ns`` nor ``k.wall()``): the personality does not
#: ask the kernel for the time before serving them (a real server reads no clock per call
#: either); anything they wake is run after a fresh reading (see :func:`l4sim.linux.personality.serve`)
TIMELESS = frozenset(nr for nr, sc in TABLE.items() if sc.name in {
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getpgrp",
    "rt_sigprocmask", "rt_sigaction", "sigaltstack", "arch_prctl", "set_tid_address",
    "set_robust_list", "brk", "mmap", "munmap", "mprotect", "madvise", "lseek", "fstat",
    "getcwd", "uname", "getrandom", "prlimit64", "fcntl", "dup", "dup2", "dup3", "umask",
    "sched_getaffinity", "ioctl", "close"})
