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
from typing import TYPE_CHECKING

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
#: result of a call that ended the process (no reply)
EXITED = object()
INDEX = {"fs_base": 18, "gs_base": 19}


@dataclass
class Call:
    """One system call: number, the six arguments, registers the reply must set."""

    nr: int
    a: tuple[int, int, int, int, int, int]
    words: tuple[int, ...]
    set_regs: dict[str, int] = field(default_factory=dict)
    ended: bool = False


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


# --------------------------------------------------------------------------- I/O on fds 0-2
async def sys_read(k: Personality, p: Proc, c: Call) -> int:
    fd = _i(c.a[0])
    if fd == 0:
        return 0  # stdin is empty (host stdin is not connected yet)
    return -EBADF


async def sys_write(k: Personality, p: Proc, c: Call) -> int:
    fd, buf, n = _i(c.a[0]), c.a[1], c.a[2]
    if fd not in (1, 2):
        return -EBADF
    data = await k.read(p, buf, n)
    if data is None:
        return -EFAULT
    k.cfg.out(fd, data)
    return n


async def sys_writev(k: Personality, p: Proc, c: Call) -> int:
    fd, iov, cnt = _i(c.a[0]), c.a[1], c.a[2]
    if fd not in (1, 2):
        return -EBADF
    if cnt > 1024:
        return -EINVAL
    raw = await k.read(p, iov, 16 * cnt)
    if raw is None:
        return -EFAULT
    out = bytearray()
    for i in range(cnt):
        base, n = struct.unpack_from("<QQ", raw, 16 * i)
        data = await k.read(p, base, n)
        if data is None:
            return -EFAULT
        out += data
    k.cfg.out(fd, bytes(out))
    return len(out)


async def sys_close(k: Personality, p: Proc, c: Call) -> int:
    return 0 if _i(c.a[0]) in (0, 1, 2) else -EBADF


async def sys_lseek(k: Personality, p: Proc, c: Call) -> int:
    return -ESPIPE if _i(c.a[0]) in (0, 1, 2) else -EBADF


async def sys_ioctl(k: Personality, p: Proc, c: Call) -> int:
    return -ENOTTY if _i(c.a[0]) in (0, 1, 2) else -EBADF  # not a terminal (TCGETS, TIOCGWINSZ, ...)


def _chr_stat() -> bytes:
    """struct stat of a character device (a pty, as a console would be)."""
    mode = 0o20620
    rdev = (136 << 8) | 0
    return struct.pack("<QQQIIIIQqqq6q3q", 22, 3, 1, mode, 0, 5, 0, rdev, 0, 1024, 0, *([EPOCH, 0] * 3),
                       0, 0, 0)


async def sys_fstat(k: Personality, p: Proc, c: Call) -> int:
    if _i(c.a[0]) not in (0, 1, 2):
        return -EBADF
    return 0 if await k.write(p, c.a[1], _chr_stat()) else -EFAULT


async def sys_newfstatat(k: Personality, p: Proc, c: Call) -> int:
    dirfd, path, buf, flags = _i(c.a[0]), c.a[1], c.a[2], c.a[3]
    name = await k.read_str(p, path)
    if name is None:
        return -EFAULT
    if name == b"" and flags & 0x1000:  # AT_EMPTY_PATH: the fd itself
        if dirfd not in (0, 1, 2):
            return -EBADF
        return 0 if await k.write(p, buf, _chr_stat()) else -EFAULT
    return -ENOENT  # no file system yet


async def sys_enoent(k: Personality, p: Proc, c: Call) -> int:
    return -ENOENT


async def sys_getcwd(k: Personality, p: Proc, c: Call) -> int:
    if c.a[1] < 2:
        return -34  # ERANGE
    return 2 if await k.write(p, c.a[0], b"/\0") else -EFAULT


# --------------------------------------------------------------------------- process
async def sys_exit(k: Personality, p: Proc, c: Call) -> int:
    status = c.a[0] & 0xFF
    if k.cfg.strace is not None:
        k.cfg.strace(f"{TABLE[c.nr].name}({_i(c.a[0])}) = ?")
        k.cfg.strace(f"+++ exited with {status} +++")
    await k.kill(p, status)
    c.ended = True
    return 0


async def sys_kill_self(k: Personality, p: Proc, c: Call) -> int:
    """kill(pid, sig) / tgkill(tgid, tid, sig) aimed at the caller: default action, death."""
    sig = c.a[2] if c.nr == 234 else c.a[1]
    pid = _i(c.a[0])
    if pid not in (p.pid, 0, -1):
        return -ESRCH
    if sig == 0:
        return 0
    if k.cfg.strace is not None:
        k.cfg.strace(f"{TABLE[c.nr].name}(...) = 0")
        k.cfg.strace(f"+++ killed by signal {sig} +++")
    await k.kill(p, 128 + (sig & 0x7F))
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
        a = p.pages.get(vpn)
        if a is not None:
            await k.env.task.unmap(Fpage.mem(a, 12, MemRights.RWX))


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
        return -EBADF if fd < 0 or fd > 2 else -ENODEV  # no file mappings yet
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
    0: Syscall("read", sys_read, "dpu"),
    1: Syscall("write", sys_write, "dbu"),
    3: Syscall("close", sys_close, "d"),
    5: Syscall("fstat", sys_fstat, "dp"),
    8: Syscall("lseek", sys_lseek, "ddd"),
    9: Syscall("mmap", sys_mmap, "puxxdx"),
    10: Syscall("mprotect", sys_mprotect, "pux"),
    11: Syscall("munmap", sys_munmap, "pu"),
    12: Syscall("brk", sys_brk, "p"),
    13: Syscall("rt_sigaction", sys_zero, "dpp"),
    14: Syscall("rt_sigprocmask", sys_zero, "dpp"),
    16: Syscall("ioctl", sys_ioctl, "dxp"),
    20: Syscall("writev", sys_writev, "dpd"),
    21: Syscall("access", sys_enoent, "sx"),
    24: Syscall("sched_yield", sys_zero, ""),
    28: Syscall("madvise", sys_zero, "pud"),
    39: Syscall("getpid", sys_getpid, ""),
    60: Syscall("exit", sys_exit, "d"),
    62: Syscall("kill", sys_kill_self, "dd"),
    63: Syscall("uname", sys_uname, "p"),
    79: Syscall("getcwd", sys_getcwd, "pu"),
    89: Syscall("readlink", sys_enoent, "spu"),
    96: Syscall("gettimeofday", sys_gettimeofday, "pp"),
    97: Syscall("getrlimit", sys_getrlimit, "dp"),
    102: Syscall("getuid", sys_zero, ""),
    104: Syscall("getgid", sys_zero, ""),
    107: Syscall("geteuid", sys_zero, ""),
    108: Syscall("getegid", sys_zero, ""),
    110: Syscall("getppid", sys_zero, ""),
    131: Syscall("sigaltstack", sys_zero, "pp"),
    158: Syscall("arch_prctl", sys_arch_prctl, "xp"),
    186: Syscall("gettid", sys_getpid, ""),
    201: Syscall("time", sys_time, "p"),
    218: Syscall("set_tid_address", sys_getpid, "p"),
    228: Syscall("clock_gettime", sys_clock_gettime, "dp"),
    229: Syscall("clock_getres", sys_clock_getres, "dp"),
    231: Syscall("exit_group", sys_exit, "d"),
    234: Syscall("tgkill", sys_kill_self, "ddd"),
    262: Syscall("newfstatat", sys_newfstatat, "dspx"),
    267: Syscall("readlinkat", sys_enoent, "dspu"),
    269: Syscall("faccessat", sys_enoent, "dsx"),
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
        if trace is not None and sc.fn is not sys_exit and sc.fn is not sys_kill_self:
            args = await _format(k, p, sc.fmt, c.a)
        r = await sc.fn(k, p, c)
        if c.ended:
            return None
    if trace is not None:
        name = sc.name if sc is not None else f"syscall_{nr:#x}"
        trace(f"{name}({args}) = {_result(r)}")
    rax = r & 0xFFFF_FFFF_FFFF_FFFF
    if not c.set_regs:
        return (0, (rax,), ())
    regs = list(words[: 1 + max(INDEX[n] for n in c.set_regs)])
    regs[0] = rax
    for n, v in c.set_regs.items():
        regs[INDEX[n]] = v
    return (0, tuple(regs), ())
