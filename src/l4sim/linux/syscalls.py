"""The system-call table of the Linux personality, xv6-style.

:data:`TABLE` maps an x86-64 system-call number to a :class:`Syscall`: its
name, a thin ``async`` function ``fn(k, p, c) -> int`` (``k`` the
:class:`~l4sim.linux.personality.Personality`, ``p`` the calling process,
``c`` the :class:`Call` with its six arguments), and an argument format for
``--strace``.  The result goes back in rax (a negative errno on failure).
A number not in the table returns ``-ENOSYS`` and is counted.

Format letters: ``d`` signed decimal, ``u`` unsigned, ``x`` hex, ``p``
pointer (NULL or hex), ``s`` C string in guest memory, ``b`` a buffer whose
length is the next argument.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from l4sim.kernel.abi import Fpage, MapItem, MemRights
from l4sim.linux.personality import Vma

if TYPE_CHECKING:
    from l4sim.linux.personality import Personality, Proc

PAGE = 4096
#: errno values (x86-64 Linux)
EPERM, ENOENT, ESRCH, EINTR, EIO, EBADF, ENOMEM, EFAULT, EINVAL = 1, 2, 3, 4, 5, 9, 12, 14, 22
ENOTTY, ESPIPE, ENODEV, ENOSYS = 25, 29, 19, 38
ERRNO_NAMES = {1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 9: "EBADF", 12: "ENOMEM",
               14: "EFAULT", 19: "ENODEV", 22: "EINVAL", 25: "ENOTTY", 29: "ESPIPE", 38: "ENOSYS"}
ERRNO_TEXT = {1: "Operation not permitted", 2: "No such file or directory", 3: "No such process",
              9: "Bad file descriptor", 12: "Cannot allocate memory", 14: "Bad address",
              19: "No such device", 22: "Invalid argument", 25: "Inappropriate ioctl for device",
              29: "Illegal seek", 38: "Function not implemented"}
#: the simulated wall clock starts at this Unix time (2026-01-01)
EPOCH = 1_767_225_600
#: result of a call that must wait: the personality keeps the reply capability and runs it again
BLOCK = -(1 << 70)
#: what dispatch returns for a call that waits
WAITING: tuple[int, tuple[int, ...], tuple[MapItem, ...]] = (BLOCK, (), ())
INDEX = {"fs_base": 18, "gs_base": 19}


@dataclass
class Call:
    """One system call: number, the six arguments, registers the reply must set."""

    nr: int
    a: tuple[int, int, int, int, int, int]
    words: tuple[int, ...]
    set_regs: dict[str, int] = field(default_factory=dict)
    ended: bool = False
    name: str = ""
    args: str = ""
    #: what a waiting call remembers between its runs (a deadline, a mask installed)
    state: Any = None
    #: every register of the reply (rt_sigreturn)
    all_regs: tuple[int, ...] | None = None


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


# --------------------------------------------------------------------------- process
async def sys_exit(k: Personality, p: Proc, c: Call) -> int:
    status = c.a[0] & 0xFF
    if k.cfg.strace is not None:
        k.cfg.strace(f"{TABLE[c.nr].name}({_i(c.a[0])}) = ?")
        k.cfg.strace(f"+++ exited with {status} +++")
    await k.kill(p, status)
    c.ended = True
    return 0


async def sys_getpid(k: Personality, p: Proc, c: Call) -> int:
    return p.pid


async def sys_zero(k: Personality, p: Proc, c: Call) -> int:
    """Calls that succeed and do nothing here (ids of root, masks, hints)."""
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


async def sys_prlimit64(k: Personality, p: Proc, c: Call) -> int:
    pid, res, old = _i(c.a[0]), c.a[1], c.a[3]  # new limits (c.a[2]) are accepted and ignored
    if pid not in (0, p.pid):
        return -ESRCH
    inf = (1 << 64) - 1
    lim = {3: (8 << 20, inf), 7: (1024, 4096)}.get(res, (inf, inf))
    if old and not await k.write(p, old, struct.pack("<QQ", *lim)):
        return -EFAULT
    return 0


async def sys_getrlimit(k: Personality, p: Proc, c: Call) -> int:
    inf = (1 << 64) - 1
    lim = {3: (8 << 20, inf), 7: (1024, 4096)}.get(c.a[0], (inf, inf))
    return 0 if await k.write(p, c.a[1], struct.pack("<QQ", *lim)) else -EFAULT


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


# --------------------------------------------------------------------------- memory
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 1, 2, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
#: the heap may grow to this size
BRK_MAX = 1 << 30


def _prot_rights(prot: int) -> int:
    return (MemRights.R if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) else 0) \
        | (MemRights.W if prot & PROT_WRITE else 0) | (MemRights.X if prot & PROT_EXEC else 0)


def _carve(p: Proc, start: int, end: int) -> list[Vma]:
    """Remove [start, end) from p's VMAs (splitting them); returns the removed pieces."""
    keep, cut = [], []
    for v in p.vmas:
        if v.end <= start or v.start >= end:
            keep.append(v)
            continue
        if v.start < start:
            keep.append(Vma(v.start, start, v.rights, v.name))
        if v.end > end:
            keep.append(Vma(end, v.end, v.rights, v.name))
        cut.append(Vma(max(v.start, start), min(v.end, end), v.rights, v.name))
    p.vmas = keep
    return cut


async def _revoke(k: Personality, p: Proc, start: int, end: int) -> None:
    """Unmap p's pages in [start, end) but keep their frames (they refault with new rights)."""
    for vpn in range(start >> 12, end >> 12):
        if vpn in p.pages:
            await p.task.unmap(Fpage.mem(vpn << 12, 12, MemRights.RWX), include_self=True)


async def sys_brk(k: Personality, p: Proc, c: Call) -> int:
    new = c.a[0]
    if new < p.brk_start or new > p.brk_start + BRK_MAX:
        return p.brk
    old_top = (p.brk + PAGE - 1) & ~(PAGE - 1)
    new_top = (new + PAGE - 1) & ~(PAGE - 1)
    heap = next(v for v in p.vmas if v.name == "heap")
    if new_top < old_top:
        await k.unmap_range(p, new_top, old_top)
    elif new_top > old_top and any(v.start < new_top and v.end > old_top for v in p.vmas if v is not heap):
        return p.brk  # would run into a mapping
    heap.end = max(new_top, heap.start)
    p.brk = new
    return new


async def sys_mmap(k: Personality, p: Proc, c: Call) -> int:
    addr, length, prot, flags, fd = c.a[0], c.a[1], c.a[2], c.a[3], _i(c.a[4])
    if length == 0 or length >= 1 << 46:
        return -EINVAL
    if not flags & MAP_ANONYMOUS:
        return -EBADF if fd not in p.fds else -ENODEV  # no file mappings yet
    if not flags & (MAP_PRIVATE | MAP_SHARED):
        return -EINVAL
    size = (length + PAGE - 1) & ~(PAGE - 1)
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if addr & 0xFFF or addr + size > 1 << 47:
            return -EINVAL
        if flags & MAP_FIXED_NOREPLACE and any(v.start < addr + size and v.end > addr for v in p.vmas):
            return -17  # EEXIST
        _carve(p, addr, addr + size)
        await k.unmap_range(p, addr, addr + size)
    else:
        addr = p.mmap_next - size
        while any(v.start < addr + size and v.end > addr for v in p.vmas):
            addr = min(v.start for v in p.vmas if v.start < addr + size and v.end > addr) - size
        if addr < p.brk_start + BRK_MAX:
            return -ENOMEM
        p.mmap_next = addr
    p.vmas.append(Vma(addr, addr + size, _prot_rights(prot), "mmap"))
    return addr


async def sys_munmap(k: Personality, p: Proc, c: Call) -> int:
    addr, length = c.a[0], c.a[1]
    if addr & 0xFFF or length == 0:
        return -EINVAL
    end = (addr + length + PAGE - 1) & ~(PAGE - 1)
    _carve(p, addr, end)
    await k.unmap_range(p, addr, end)
    return 0


async def sys_mprotect(k: Personality, p: Proc, c: Call) -> int:
    addr, length, prot = c.a[0], c.a[1], c.a[2]
    if addr & 0xFFF:
        return -EINVAL
    end = (addr + length + PAGE - 1) & ~(PAGE - 1)
    pieces = _carve(p, addr, end)
    if not pieces:
        return -ENOMEM
    r = _prot_rights(prot)
    p.vmas += [Vma(v.start, v.end, r, v.name) for v in pieces]
    await _revoke(k, p, addr, end)
    return 0


# --------------------------------------------------------------------------- the table
TABLE: dict[int, Syscall] = {
    9: Syscall("mmap", sys_mmap, "puxxdx"),
    10: Syscall("mprotect", sys_mprotect, "pux"),
    11: Syscall("munmap", sys_munmap, "pu"),
    12: Syscall("brk", sys_brk, "p"),
    24: Syscall("sched_yield", sys_zero, ""),
    28: Syscall("madvise", sys_zero, "pud"),
    39: Syscall("getpid", sys_getpid, ""),
    60: Syscall("exit", sys_exit, "d"),
    63: Syscall("uname", sys_uname, "p"),
    96: Syscall("gettimeofday", sys_gettimeofday, "pp"),
    97: Syscall("getrlimit", sys_getrlimit, "dp"),
    102: Syscall("getuid", sys_zero, ""),
    104: Syscall("getgid", sys_zero, ""),
    107: Syscall("geteuid", sys_zero, ""),
    108: Syscall("getegid", sys_zero, ""),
    131: Syscall("sigaltstack", sys_zero, "pp"),
    158: Syscall("arch_prctl", sys_arch_prctl, "xp"),
    186: Syscall("gettid", sys_getpid, ""),
    201: Syscall("time", sys_time, "p"),
    218: Syscall("set_tid_address", sys_getpid, "p"),
    228: Syscall("clock_gettime", sys_clock_gettime, "dp"),
    229: Syscall("clock_getres", sys_clock_getres, "dp"),
    231: Syscall("exit_group", sys_exit, "d"),
    273: Syscall("set_robust_list", sys_zero, "pu"),
    302: Syscall("prlimit64", sys_prlimit64, "ddpp"),
    318: Syscall("getrandom", sys_getrandom, "pux"),
    334: Syscall("rseq", sys_enosys, "pudx"),
}


def _quote(b: bytes, limit: int = 32) -> str:
    s = "".join({10: "\\n", 9: "\\t", 13: "\\r", 34: '\\"', 92: "\\\\"}.get(ch, chr(ch) if 32 <= ch < 127
                else f"\\{ch:o}") for ch in b[:limit])
    return f'"{s}"' + ("..." if len(b) > limit else "")


async def _format(k: Personality, p: Proc, fmt: str, a: tuple[int, ...]) -> str:
    out = []
    for i, f in enumerate(fmt):
        v = a[i]
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
        elif f == "b":
            b = await k.read(p, v, min(a[i + 1], 32))
            out.append(_quote(b + (b"\0" if a[i + 1] > 32 else b""), 32) if b is not None else hex(v))
    return ", ".join(out)


def _result(r: int) -> str:
    if -4096 < r < 0:
        e = -r
        return f"-1 {ERRNO_NAMES.get(e, str(e))} ({ERRNO_TEXT.get(e, 'error')})"
    return hex(r) if r > 0xFFFF else str(r)


async def dispatch(k: Personality, p: Proc, words: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """Serve one system call of ``p`` (the 20 words of its exception IPC); the reply, or None
    when the call ended the process."""
    nr = words[0]
    c = Call(nr, (words[5], words[4], words[3], words[9], words[7], words[8]), words)
    k.calls += 1
    p.syscalls += 1
    sc = TABLE.get(nr)
    trace = k.cfg.strace
    args = ""
    if sc is None:
        k.unimplemented[nr] = k.unimplemented.get(nr, 0) + 1
        r = -ENOSYS
    else:
        c.name = sc.name
        if trace is not None and sc.fn is not sys_exit and sc.name not in ("kill", "tgkill", "tkill", "execve"):
            args = await _format(k, p, sc.fmt, c.a)
        c.args = args
        r = await sc.fn(k, p, c)
        if c.ended:
            return None
        if r == BLOCK:
            p.blocked = c
            return WAITING
    return await finish(k, p, c, r)


async def resume(k: Personality, p: Proc, c: Call) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """Run a waiting call again: its reply, WAITING again, or None when it ended the process."""
    r = await TABLE[c.nr].fn(k, p, c)
    if c.ended:
        return None
    if r == BLOCK:
        p.blocked = c
        return WAITING
    return await finish(k, p, c, r)


async def finish(k: Personality, p: Proc, c: Call, r: int) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]]:
    """The reply to a finished call: rax (and registers it sets), or the entry into a signal handler."""
    from l4sim.linux.signals import deliver

    trace = k.cfg.strace
    words = c.words
    if trace is not None:
        name = c.name or f"syscall_{c.nr:#x}"
        trace(f"{name}({c.args}) = {_result(r)}")
    rax = r & 0xFFFF_FFFF_FFFF_FFFF
    if c.all_regs is not None:
        regs = list(c.all_regs)
    else:
        regs = list(words[:20])
        regs[0] = rax
        for n, v in c.set_regs.items():
            regs[INDEX[n]] = v
    if p.pending:
        entered = await deliver(k, p, regs)
        if entered is not None:
            return (0, tuple(entered), ())
    if c.all_regs is not None:
        return (0, tuple(regs), ())
    if not c.set_regs:
        return (0, (rax,), ())
    return (0, tuple(regs[: 1 + max(INDEX[n] for n in c.set_regs)]), ())


def _merge() -> None:
    from l4sim.linux import files, process, signals

    for mod in (files, process, signals):
        for nr, (name, fn, fmt) in mod.TABLE_ENTRIES.items():
            TABLE[nr] = Syscall(name, cast(Fn, fn), fmt)


_merge()
