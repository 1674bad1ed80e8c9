"""Process system calls of the Linux personality: fork, vfork, execve, wait4, waitid, kill, ids,
signal dispositions.

fork is copy-on-write (see :meth:`Personality.fork`); vfork is a fork whose
parent waits until the child execs or ends; execve reads the ELF from the
VFS (and ends the caller's other threads) and names the process after the
file; wait4 and waitid block through a saved reply capability until a child
ends (or, asked for, stops or continues).  Signals: dispositions are
recorded (``rt_sigaction``) per process; a signal whose action is the
default ends its target's whole thread group, stops it (SIGSTOP, SIGTSTP,
SIGTTIN, SIGTTOU) or does nothing (SIGCHLD, SIGURG, SIGWINCH; SIGCONT
continues a stopped process whatever its disposition); an ignored one is
dropped; one with a handler becomes pending in the process (``kill``) or in
one thread (``tgkill``, ``tkill``) and is delivered by
:mod:`l4sim.linux.signals`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from l4sim.linux.elf import ElfError, Image
from l4sim.linux.misc import child_rusage, reap
from l4sim.linux.signals import (
    IGNORED_BY_DEFAULT,
    KILLABLE,
    RESTART_SYS,
    SIGSTOPS,
    cont,
    doom,
    drop_space,
    interrupt,
    signal_death,
    stop_discarded,
)
from l4sim.linux.state import (
    Call,
    LinuxThread,
    Personality,
    PidFd,
    Proc,
    close_all,
    comm,
    get,
    quote,
    text_bytes,
)
from l4sim.linux.vfs import Dir, File

EPERM, ENOENT, ESRCH, ECHILD, EFAULT, EACCES, EINVAL, ENOSYS, ENOEXEC, E2BIG = 1, 2, 3, 10, 14, 13, 22, 38, 8, 7
WNOHANG, WSTOPPED, WEXITED, WCONTINUED, WNOWAIT = 1, 2, 4, 8, 0x01000000
__WNOTHREAD, __WALL, __WCLONE = 0x20000000, 0x40000000, 0x80000000
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
EBADF = 9
SIGCHLD, CLD_EXITED, CLD_KILLED = 17, 1, 2
SIGCONT, CLD_STOPPED, CLD_CONTINUED, WUNTRACED = 18, 5, 6, 2
#: si_code of a signal from kill, and from tgkill or tkill
SI_USER, SI_TKILL = 0, -6


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


async def sys_fork(k: Personality, p: Proc, c: Call) -> int:
    child = k.fork_limit(p) or await k.fork(p, c.words)
    return child if isinstance(child, int) else child.pid


async def sys_vfork(k: Personality, p: Proc, c: Call) -> int:
    """A fork (copy-on-write, not shared memory) whose parent waits until the child execs or ends."""
    if c.state is None:
        child = k.fork_limit(p) or await k.fork(p, c.words)
        if isinstance(child, int):
            return child
        child.vfork_waiter = p.cur.tid
        c.state = child
    child = c.state
    return child.pid if child.vfork_waiter == 0 else await interrupt(k, p, c, KILLABLE)


async def _strings(k: Personality, p: Proc, addr: int) -> list[str] | int:
    out: list[str] = []
    while addr:
        raw = await k.read(p, addr + 8 * len(out), 8)
        if raw is None:
            return -EFAULT
        ptr = int.from_bytes(raw, "little")
        if ptr == 0:
            return out
        s = await k.read_str(p, ptr, 1 << 17)
        if s is None:
            return -EFAULT
        out.append(s.decode("utf-8", "surrogateescape"))
        if len(out) > 4096:
            return -E2BIG
    return out


async def sys_execve(k: Personality, p: Proc, c: Call) -> int:
    path = await k.read_str(p, c.a[0])
    argv = await _strings(k, p, c.a[1]) if path is not None else -EFAULT
    envp = await _strings(k, p, c.a[2]) if isinstance(argv, list) else argv
    if k.cfg.strace is not None:  # the path given, argv, and envp's count, as strace shows them
        c.args = ", ".join((
            quote(path, 4096) if path is not None else _ptr(c.a[0]),
            "[" + ", ".join(quote(text_bytes(a)) for a in argv) + "]" if isinstance(argv, list) else _ptr(c.a[1]),
            f"{_ptr(c.a[2])} /* {len(envp)} vars */" if isinstance(envp, list) else _ptr(c.a[2])))
    if path is None:
        return -EFAULT
    if isinstance(argv, int):
        return argv
    if isinstance(envp, int):
        return envp
    name = path.decode("utf-8", "surrogateescape")
    for _ in range(4):  # #! interpreters, a few deep
        node, err, full = k.vfs.walk(p.cwd, name, p)
        if node is None:
            return -err
        if isinstance(node, Dir) or not isinstance(node, File) or not node.mode & 0o111:
            return -EACCES
        data = bytes(node.data)
        if data[:2] == b"#!":
            line = data[2:].split(b"\n", 1)[0].decode("utf-8", "surrogateescape").strip()
            if not line:
                return -ENOEXEC
            interp, _, arg = line.partition(" ")
            argv = [interp, *([arg.strip()] if arg.strip() else []), name, *argv[1:]]
            name = interp
            continue
        try:
            image = k.program(data, full)
        except ElfError:
            return -ENOEXEC
        if k.cfg.strace is not None:
            k.cfg.strace(f"execve({c.args}) = 0")
        await exec_image(k, p, image, argv, envp, full, path.decode("utf-8", "surrogateescape"))
        c.ended = True  # the old thread is gone; the new one starts by itself
        return 0
    return -ELOOP


def _ptr(v: int) -> str:
    return "NULL" if v == 0 else hex(v)


ELOOP = 40


async def exec_image(k: Personality, p: Proc, image: Image, argv: list[str], envp: list[str], exe: str,
                     path: str = "") -> None:
    """Replace ``p``'s program: the other threads end, a new task and main thread (tid = pid)
    keep the pid, the caller's signal mask and the fds that are not close-on-exec.  The
    process is named after ``path``, the file execve was given (Linux's comm: its last
    component, not argv[0]; for a script the script's, not its interpreter's)."""
    mask = p.cur.sigmask
    caller = p.cur
    await drop_space(k, p)
    close_all(k, p, only_cloexec=True)
    p.sighand.clear()
    p.sigact = {s: v for s, v in p.sigact.items() if s in p.sigign}
    p.exe = exe
    p.name = comm(path or exe)
    p.leader_status = None
    k.vfork_done(p)
    await k.start_program(p, image, argv, envp, mask, caller)


def _status_word(q: Proc) -> int:
    if q.term_sig:
        return q.term_sig & 0x7F
    return (q.exit_code & 0xFF) << 8


def _children(k: Personality, p: Proc, match: Callable[[Proc], bool]) -> tuple[list[Proc], Proc | None]:
    """``p``'s children that ``match`` (of every thread: Linux's default), and the one that
    ended first (None: none has ended)."""
    kids = [q for q in k.all.values() if q.ppid == p.pid and match(q)]
    dead = [q for q in kids if q.status is not None]
    return kids, min(dead, key=lambda q: q.ended_seq) if dead else None


def _changed(kids: list[Proc], options: int) -> tuple[Proc | None, int]:
    """A live child with a stop (``WUNTRACED``/``WSTOPPED``) or a continue (``WCONTINUED``)
    to report, and the signal: the stop signal, or SIGCONT."""
    for q in kids:
        if q.status is not None:
            continue
        if options & WUNTRACED and q.stop_report:
            return q, q.stop_report
        if options & WCONTINUED and q.cont_report:
            return q, SIGCONT
    return None, 0


async def sys_wait4(k: Personality, p: Proc, c: Call) -> int:
    pid, wstatus, options, rusage = _i(c.a[0]), c.a[1], c.a[2], c.a[3]
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE):
        return -EINVAL

    def match(q: Proc) -> bool:
        if pid > 0:
            return q.pid == pid
        if pid == 0:
            return q.pgid == p.pgid
        if pid < -1:
            return q.pgid == -pid
        return True

    kids, q = _children(k, p, match)
    if not kids:
        return -ECHILD
    if q is not None:
        if wstatus and not await k.write(p, wstatus, struct.pack("<i", _status_word(q))):
            return -EFAULT
        if rusage and not await k.write(p, rusage, await child_rusage(k, q)):
            return -EFAULT
        reap(p, q)
        del k.all[q.pid]
        return q.pid
    q, sig = _changed(kids, options)
    if q is not None:  # stopped: (sig << 8) | 0x7f; continued: 0xffff
        word = 0xFFFF if sig == SIGCONT else (sig << 8) | 0x7F
        if wstatus and not await k.write(p, wstatus, struct.pack("<i", word)):
            return -EFAULT
        if rusage and not await k.write(p, rusage, await child_rusage(k, q)):
            return -EFAULT
        if sig == SIGCONT:
            q.cont_report = False
        else:
            q.stop_report = 0
        return q.pid
    if options & WNOHANG:
        return 0
    p.child_waiters.add(p.cur.tid)
    return await interrupt(k, p, c, RESTART_SYS)


async def sys_waitid(k: Personality, p: Proc, c: Call) -> int:
    """waitid(idtype, id, infop, options, rusage): like wait4, the child's end in a siginfo."""
    idtype, ident, infop, options, rusage = c.a[0], _i(c.a[1]), c.a[2], c.a[3], c.a[4]
    if options & ~(WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE) \
            or not options & (WEXITED | WSTOPPED | WCONTINUED):
        return -EINVAL
    if idtype == P_PID:
        if ident <= 0:
            return -EINVAL

        def match(q: Proc) -> bool:
            return q.pid == ident
    elif idtype == P_PGID:
        if ident < 0:
            return -EINVAL
        pgid = ident or p.pgid

        def match(q: Proc) -> bool:
            return q.pgid == pgid
    elif idtype == P_ALL:
        def match(q: Proc) -> bool:
            return True
    elif idtype == P_PIDFD:  # the process a pid file descriptor names
        f = get(p, ident)
        if f is None:
            return -EBADF
        if not isinstance(f.node, PidFd):
            return -EINVAL
        target = f.node.pid

        def match(q: Proc) -> bool:
            return q.pid == target
    else:
        return -EINVAL
    kids, q = _children(k, p, match)
    if not kids:
        return -ECHILD
    changed, sig = (None, 0) if q is not None and options & WEXITED else \
        _changed(kids, (WUNTRACED if options & WSTOPPED else 0) | (options & WCONTINUED))
    if changed is not None:
        q = None
        code, status = (CLD_CONTINUED, sig) if sig == SIGCONT else (CLD_STOPPED, sig)
        info = struct.pack("<8iqq", SIGCHLD, 0, code, 0, changed.pid, 0, status, 0, 0, 0).ljust(128, b"\0")
        if not options & WNOWAIT:
            if sig == SIGCONT:
                changed.cont_report = False
            else:
                changed.stop_report = 0
    elif q is None or not options & WEXITED:
        if not options & WNOHANG:
            p.child_waiters.add(p.cur.tid)
            return await interrupt(k, p, c, RESTART_SYS)
        info = bytes(128)  # nothing to report: si_signo and si_pid 0
    else:
        code, status = (CLD_KILLED, q.term_sig) if q.term_sig else (CLD_EXITED, q.exit_code)
        info = struct.pack("<8iqq", SIGCHLD, 0, code, 0, q.pid, 0, status, 0, 0, 0).ljust(128, b"\0")
    if infop and not await k.write(p, infop, info):
        return -EFAULT
    who = q if q is not None else changed
    if rusage and not await k.write(p, rusage, await child_rusage(k, who) if who is not None else bytes(144)):
        return -EFAULT
    if q is not None and options & WEXITED and not options & WNOWAIT:
        reap(p, q)
        del k.all[q.pid]
    return 0


async def sys_getppid(k: Personality, p: Proc, c: Call) -> int:
    return p.ppid


async def sys_rt_sigaction(k: Personality, p: Proc, c: Call) -> int:
    sig, act, oact = _i(c.a[0]), c.a[1], c.a[2]
    if not 1 <= sig <= 64 or (act and sig in (9, 19)):
        return -EINVAL
    old = p.sigact.get(sig, bytes(32))
    if act:
        raw = await k.read(p, act, 32)
        if raw is None:
            return -EFAULT
        handler = int.from_bytes(raw[:8], "little")
        p.sigign.discard(sig)
        p.sighand.discard(sig)
        if handler == 1:
            p.sigign.add(sig)
        elif handler != 0:
            p.sighand.add(sig)
        p.sigact[sig] = raw
        if handler in (0, 1):
            p.pending.discard(sig)
            for t in p.threads.values():
                t.pending.discard(sig)
    if oact and not await k.write(p, oact, old):
        return -EFAULT
    return 0


async def sys_kill(k: Personality, p: Proc, c: Call) -> int:
    pid, sig = _i(c.a[0]), _i(c.a[1])
    if pid > 0:
        targets = [q for q in k.procs.values() if q.pid == pid]
    elif pid == 0:
        targets = [q for q in k.procs.values() if q.pgid == p.pgid]
    elif pid == -1:
        targets = [q for q in k.procs.values() if q.pid != 1 and q is not p]  # Linux: not init, not the caller
    else:
        targets = [q for q in k.procs.values() if q.pgid == -pid]
    if not targets:
        return -ESRCH
    return await send_signal(k, p, c, targets, sig)


async def sys_tgkill(k: Personality, p: Proc, c: Call) -> int:
    tgid, tid, sig = _i(c.a[0]), _i(c.a[1]), _i(c.a[2])
    if tgid <= 0 or tid <= 0:
        return -EINVAL
    t = k.threads.get(tid)
    if t is None or t.proc.pid != tgid:
        return -ESRCH
    return await send_signal(k, p, c, [t.proc], sig, t)


async def sys_tkill(k: Personality, p: Proc, c: Call) -> int:
    tid = _i(c.a[0])
    if tid <= 0:
        return -EINVAL
    t = k.threads.get(tid)
    if t is None:
        return -ESRCH
    return await send_signal(k, p, c, [t.proc], _i(c.a[1]), t)


async def send_signal(k: Personality, p: Proc, c: Call, targets: list[Proc], sig: int,
                      thread: LinuxThread | None = None) -> int:
    """Send ``sig`` to the processes ``targets`` (or to their ``thread``), as Linux's
    send_signal and complete_signal: SIGCONT continues a stopped process whatever its
    disposition; a handler's signal becomes pending; a fatal one ends the caller at once and
    any other process, like a stop signal stops it, when it next runs
    (:func:`l4sim.linux.signals.doom`): the sender goes on first, as on Linux, where the
    target has to be scheduled to act on it; a signal every thread it could go to blocks
    stays pending (fatal, or a stop, when unblocked).  init (``Proc.unkillable``) takes only
    the signals it has a handler for: the others are dropped, and the call succeeds."""
    if not 0 <= sig <= 64:
        return -EINVAL
    if sig == 0:
        return 0
    self_hit = False
    bit = 1 << (sig - 1)
    info = (SI_TKILL if thread is not None else SI_USER, p.pid, 0)
    for q in targets:
        if q.unkillable and sig not in q.sighand:
            continue  # init takes only the signals it handles (SIGNAL_UNKILLABLE): kill(1, SIGKILL) is 0
        if sig == SIGCONT:
            await cont(k, q)
        elif sig in SIGSTOPS:
            q.pending.discard(SIGCONT)
        if sig in q.sighand:
            k.post(q, sig, thread, info)
            continue
        if all(t.sigmask & bit for t in ((thread,) if thread is not None else q.threads.values())) \
                and not (sig in SIGSTOPS and q.stopped):
            # blocked: pending, even when ignored (Linux's sig_ignored: the disposition may
            # change before it is unblocked; a signalfd reads it)
            k.post(q, sig, thread, info)
            continue
        if sig in q.sigign or sig in IGNORED_BY_DEFAULT or (sig in SIGSTOPS and q.stopped):
            continue
        if q is p and sig not in SIGSTOPS:
            self_hit = True
            continue
        if stop_discarded(k, q, sig):
            continue  # no stop in an orphaned group
        await doom(k, q, sig, thread)
    if self_hit:
        if k.cfg.strace is not None:
            k.cfg.strace(f"{c.name}(...) = 0")
        await signal_death(k, p, sig, 0)
        c.ended = True
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    13: ("rt_sigaction", sys_rt_sigaction, "dpp"),
    57: ("fork", sys_fork, ""),
    58: ("vfork", sys_vfork, ""),
    59: ("execve", sys_execve, "spp"),
    61: ("wait4", sys_wait4, "dpxp"),
    62: ("kill", sys_kill, "dd"),
    110: ("getppid", sys_getppid, ""),
    200: ("tkill", sys_tkill, "dd"),
    234: ("tgkill", sys_tgkill, "ddd"),
    247: ("waitid", sys_waitid, "ddpxp"),
}
