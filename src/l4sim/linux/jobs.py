"""Process groups, sessions and the console's foreground group: what a shell's job control uses.

Linux's rules (kernel/sys.c, drivers/tty/tty_jobctrl.c), as far as a shell needs them:

- ``setpgid(pid, pgid)`` moves the caller or one of its children that has not called execve
  (``EACCES`` otherwise) into an existing group of the caller's session or a new group
  named after the process; not a session leader (``EPERM``), not a child of another
  session (``EPERM``), not a stranger (``ESRCH``).
- ``setsid`` makes a new session and group unless a group of the caller's pid exists.
- The console (``/dev/tty``, ``/dev/console``) is the controlling terminal of the first
  session (pid 1's); it has a foreground process group, read with ``TIOCGPGRP`` and set
  with ``TIOCSPGRP`` (to a group of that session), ``TIOCGSID`` gives its session.  A
  process of another session gets ``ENOTTY``, as it has no controlling terminal.
- A background process reading the console (its session's controlling terminal) sends
  SIGTTIN to its process group, which stops it (or runs its handler) and the read
  starts again once it continues; with SIGTTIN ignored or blocked, or the group orphaned,
  the read is ``EIO`` (:func:`background_read`).  Writes are not checked: ``TOSTOP`` is
  off, as by default.
- Orphaned process groups (no member has a parent in another group of the same session):
  SIGTSTP, SIGTTIN and SIGTTOU with their default action are discarded for them
  (:func:`~l4sim.linux.signals.stop_discarded`); a group that becomes orphaned when a
  process ends, and has a stopped member, gets SIGHUP then SIGCONT
  (:func:`~l4sim.linux.signals.orphan_check`).  Those two rules are signals' default actions
  and the end of a process, so they live in :mod:`l4sim.linux.signals`.
- What is typed at the console: the host's Ctrl-C reaches the foreground group as SIGINT
  (:func:`console_signals`), when the personality next serves a system call.
"""

from __future__ import annotations

import struct

from l4sim.linux.signals import (
    RESTART_SYS,
    SIGSTOPS,
    deliver_to,
    doom,
    interrupt,
    orphaned,
    restart,
    signal_death,
    stop_discarded,
)
from l4sim.linux.state import Call, Personality, Proc
from l4sim.linux.vfs import Device, OFile

EPERM, ESRCH, EFAULT, EACCES, EINVAL, ENOTTY = 1, 3, 14, 13, 22, 25
TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCNOTTY, TIOCGSID = 0x540E, 0x540F, 0x5410, 0x5422, 0x5429
JOB_IOCTLS = frozenset((TIOCSCTTY, TIOCGPGRP, TIOCSPGRP, TIOCNOTTY, TIOCGSID))


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


async def sys_setpgid(k: Personality, p: Proc, c: Call) -> int:
    pid, pgid = _i(c.a[0]) or p.pid, _i(c.a[1])
    pgid = pgid or pid
    if pgid < 0:
        return -EINVAL
    q = k.all.get(pid)
    if q is None:
        return -ESRCH
    if q is not p:
        if q.ppid != p.pid:
            return -ESRCH
        if q.sid != p.sid:
            return -EPERM
        if q.acct.execs:
            return -EACCES  # the child has called execve
    if q.sid == q.pid:
        return -EPERM  # a session leader stays in its group
    if pgid != q.pid and not any(r.pgid == pgid and r.sid == p.sid for r in k.all.values()):
        return -EPERM  # no such group in this session
    q.pgid = pgid
    return 0


async def sys_getpgid(k: Personality, p: Proc, c: Call) -> int:
    pid = _i(c.a[0])
    q = p if pid == 0 else k.all.get(pid)
    return q.pgid if q is not None else -ESRCH


async def sys_getpgrp(k: Personality, p: Proc, c: Call) -> int:
    return p.pgid


async def sys_setsid(k: Personality, p: Proc, c: Call) -> int:
    if any(q.pgid == p.pid for q in k.all.values()):
        return -EPERM  # it leads a group (or one has its pid)
    p.sid = p.pgid = p.pid
    return p.pid


async def sys_getsid(k: Personality, p: Proc, c: Call) -> int:
    pid = _i(c.a[0])
    q = p if pid == 0 else k.all.get(pid)
    return q.sid if q is not None else -ESRCH


async def tty_ioctl(k: Personality, p: Proc, f: OFile, req: int, arg: int) -> int:
    """The job-control requests on the console (``f`` is /dev/tty or /dev/console)."""
    tty = k.vfs.tty
    if req == TIOCSCTTY:
        if p.sid != p.pid:
            return -EPERM  # only a session leader takes a controlling terminal
        if tty.session not in (0, p.sid) and arg != 1 and any(q.sid == tty.session for q in k.procs.values()):
            return -EPERM  # another session has it (arg 1: take it anyway, as root may)
        tty.session, tty.pgrp = p.sid, p.pgid
        return 0
    if tty.session != p.sid:
        return -ENOTTY  # not the caller's controlling terminal
    if req == TIOCGPGRP:
        return 0 if await k.write(p, arg, struct.pack("<i", tty.pgrp)) else -EFAULT
    if req == TIOCGSID:
        return 0 if await k.write(p, arg, struct.pack("<i", tty.session)) else -EFAULT
    if req == TIOCNOTTY:
        if p.sid == p.pid:
            tty.session = tty.pgrp = 0
        return 0
    raw = await k.read(p, arg, 4)  # TIOCSPGRP
    if raw is None:
        return -EFAULT
    (pgrp,) = struct.unpack("<i", raw)
    if pgrp < 0:
        return -EINVAL
    members = [q for q in k.procs.values() if q.pgid == pgrp]
    if not members:
        return -ESRCH
    if any(q.sid != p.sid for q in members):
        return -EPERM
    tty.pgrp = pgrp
    return 0


SIGNAMES = {2: "SIGINT", 3: "SIGQUIT", 20: "SIGTSTP"}


SIGTTIN = 21
EIO = 5
#: the console devices a read of which is a read of the terminal (fd 0 is the host's stdin,
#: a stream, not the terminal: see files.TTY_DEVICES)
CONSOLE_INPUT = ("tty", "console")


async def background_read(k: Personality, p: Proc, c: Call, f: OFile) -> int | None:
    """A read of the console by a process of a background group of its session: SIGTTIN to
    the group, and the call starts again when the process continues (Linux's -ERESTARTSYS),
    or EIO (see the module docstring); None when the read may go on."""
    node = f.node
    if not isinstance(node, Device) or node.name not in CONSOLE_INPUT:
        return None
    tty = k.vfs.tty
    if not tty.session or p.sid != tty.session or p.pgid == tty.pgrp:
        return None
    if SIGTTIN in p.sigign or p.cur.sigmask >> (SIGTTIN - 1) & 1 or orphaned(k, p.pgid):
        return -EIO
    await deliver_to(k, [q for q in k.procs.values() if q.pgid == p.pgid and q.status is None], SIGTTIN)
    if SIGTTIN in p.sighand:
        return await interrupt(k, p, c, RESTART_SYS)  # the handler runs; EINTR or a restart
    return restart(c)  # stopped as it returns; after SIGCONT it reads again (and checks again)


async def console_signals(k: Personality) -> None:
    """Send the signals typed at the console (the host's Ctrl-C: ``cfg.interrupts``) to the
    console's foreground process group, as the terminal driver does."""
    sigs, k.cfg.interrupts[:] = list(k.cfg.interrupts), []
    pgrp, cur = k.vfs.tty.pgrp, k.cur
    for sig in sigs:
        name = SIGNAMES.get(sig, f"signal {sig}")
        for q in [q for q in k.procs.values() if q.pgid == pgrp]:
            if q.status is not None or sig in q.sigign:
                continue
            k.cur = q.pid  # strace lines name the process
            if k.cfg.strace is not None:
                k.cfg.strace(f"--- {name} {{si_signo={name}, si_code=SI_KERNEL}} ---")
            if sig in q.sighand:
                k.cur = cur  # the thread being served (if any) takes it on its return
                k.post(q, sig)
            elif sig in SIGSTOPS:
                if not stop_discarded(k, q, sig):
                    await doom(k, q, sig)  # Ctrl-Z: stopped when it next runs
            else:
                await signal_death(k, q, sig, 0)
    k.cur = cur


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    109: ("setpgid", sys_setpgid, "dd"),
    111: ("getpgrp", sys_getpgrp, ""),
    112: ("setsid", sys_setsid, ""),
    121: ("getpgid", sys_getpgid, "d"),
    124: ("getsid", sys_getsid, "d"),
}
