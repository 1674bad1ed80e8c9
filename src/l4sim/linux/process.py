"""Process system calls of the Linux personality: fork, execve, wait4, kill, ids, signal dispositions.

fork is copy-on-write (see :meth:`Personality.fork`); execve reads the ELF
from the VFS; wait4 blocks through a saved reply capability until a child
ends.  Signals: dispositions are recorded (``rt_sigaction``); a signal whose
action is the default ends (or, for SIGCHLD/SIGURG/SIGWINCH/SIGCONT, does not
touch) its target; an ignored one, or one with a handler, is not delivered
(handlers do not run yet).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from l4sim.linux.elf import ElfError, parse
from l4sim.linux.vfs import Dir, File

if TYPE_CHECKING:
    from l4sim.linux.personality import Personality, Proc
    from l4sim.linux.syscalls import Call

EPERM, ENOENT, ESRCH, ECHILD, EFAULT, EACCES, EINVAL, ENOSYS, ENOEXEC, E2BIG = 1, 2, 3, 10, 14, 13, 22, 38, 8, 7
WNOHANG = 1
CLONE_VM, CLONE_VFORK, CLONE_THREAD, CLONE_PARENT_SETTID, CLONE_CHILD_SETTID = (
    0x100, 0x4000, 0x10000, 0x100000, 0x1000000)
#: signals whose default action does nothing
IGNORED_BY_DEFAULT = {17, 18, 23, 28}
SIGSTOPS = {19, 20, 21, 22}


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


async def sys_fork(k: Personality, p: Proc, c: Call) -> int:
    child = await k.fork(p, c.words)
    return child.pid


async def sys_clone(k: Personality, p: Proc, c: Call) -> int:
    flags, stack, ptid, ctid = c.a[0], c.a[1], c.a[2], c.a[3]
    if flags & (CLONE_VM | CLONE_THREAD) and not flags & CLONE_VFORK:
        return -ENOSYS  # threads are not there yet
    words = list(c.words)
    if stack:
        words[16] = stack
    child = await k.fork(p, tuple(words))
    tid = struct.pack("<i", child.pid)
    if flags & CLONE_PARENT_SETTID and ptid:
        await k.write(p, ptid, tid)
    if flags & CLONE_CHILD_SETTID and ctid:
        await k.write(child, ctid, tid)
    return child.pid


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
    if path is None:
        return -EFAULT
    argv = await _strings(k, p, c.a[1])
    if isinstance(argv, int):
        return argv
    envp = await _strings(k, p, c.a[2])
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
            image = k.elf_cache.get(data)
            if image is None:
                image = parse(data, full)
                k.elf_cache.clear()
                k.elf_cache[data] = image
        except ElfError:
            return -ENOEXEC
        if k.cfg.strace is not None:
            k.cfg.strace(f"execve({full!r}, {argv!r}) = 0")
        await k.exec(p, image, argv, envp, full)
        c.ended = True  # the old thread is gone; the new one starts by itself
        return 0
    return -ELOOP


ELOOP = 40


def _status_word(q: Proc) -> int:
    if q.term_sig:
        return q.term_sig & 0x7F
    return (q.exit_code & 0xFF) << 8


async def sys_wait4(k: Personality, p: Proc, c: Call) -> int:
    pid, wstatus, options, rusage = _i(c.a[0]), c.a[1], c.a[2], c.a[3]

    def match(q: Proc) -> bool:
        if pid > 0:
            return q.pid == pid
        if pid == 0:
            return q.pgid == p.pgid
        if pid < -1:
            return q.pgid == -pid
        return True

    kids = [q for q in k.all.values() if q.ppid == p.pid and match(q)]
    if not kids:
        return -ECHILD
    dead = [q for q in kids if q.status is not None]
    if dead:
        q = min(dead, key=lambda q: q.ended_seq)
        if wstatus and not await k.write(p, wstatus, struct.pack("<i", _status_word(q))):
            return -EFAULT
        if rusage and not await k.write(p, rusage, bytes(144)):
            return -EFAULT
        del k.all[q.pid]
        return q.pid
    if options & WNOHANG:
        return 0
    p.child_waiters.add(p.pid)
    from l4sim.linux.syscalls import BLOCK

    return BLOCK


async def sys_getppid(k: Personality, p: Proc, c: Call) -> int:
    return p.ppid


async def sys_setpgid(k: Personality, p: Proc, c: Call) -> int:
    pid, pgid = _i(c.a[0]), _i(c.a[1])
    q = p if pid == 0 else k.all.get(pid)
    if q is None or (q is not p and q.ppid != p.pid):
        return -ESRCH
    q.pgid = q.pid if pgid == 0 else pgid
    return 0


async def sys_getpgid(k: Personality, p: Proc, c: Call) -> int:
    pid = _i(c.a[0])
    q = p if pid == 0 else k.all.get(pid)
    return q.pgid if q is not None else -ESRCH


async def sys_getpgrp(k: Personality, p: Proc, c: Call) -> int:
    return p.pgid


async def sys_setsid(k: Personality, p: Proc, c: Call) -> int:
    if p.pgid == p.pid:
        return -EPERM
    p.sid = p.pgid = p.pid
    return p.pid


async def sys_getsid(k: Personality, p: Proc, c: Call) -> int:
    pid = _i(c.a[0])
    q = p if pid == 0 else k.all.get(pid)
    return q.sid if q is not None else -ESRCH


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
        targets = [q for q in k.procs.values() if q.pid != 1 and q is not p] + [p]
    else:
        targets = [q for q in k.procs.values() if q.pgid == -pid]
    if not targets:
        return -ESRCH
    return await _send(k, p, c, targets, sig)


async def sys_tgkill(k: Personality, p: Proc, c: Call) -> int:
    tid, sig = _i(c.a[1]), _i(c.a[2])
    q = k.procs.get(tid)
    if q is None:
        return -ESRCH
    return await _send(k, p, c, [q], sig)


async def sys_tkill(k: Personality, p: Proc, c: Call) -> int:
    q = k.procs.get(_i(c.a[0]))
    if q is None:
        return -ESRCH
    return await _send(k, p, c, [q], _i(c.a[1]))


async def _send(k: Personality, p: Proc, c: Call, targets: list[Proc], sig: int) -> int:
    if not 0 <= sig <= 64:
        return -EINVAL
    if sig == 0:
        return 0
    self_hit = False
    for q in targets:
        if sig in q.sighand:
            k.post(q, sig)
            continue
        if not k.default_action(q, sig) or sig in IGNORED_BY_DEFAULT or sig in SIGSTOPS:
            continue
        if q is p:
            self_hit = True
            continue
        await k.signal_death(q, sig, 0)
    if self_hit:
        if k.cfg.strace is not None:
            k.cfg.strace(f"{c.name}(...) = 0")
        await k.signal_death(p, sig, 0)
        c.ended = True
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    13: ("rt_sigaction", sys_rt_sigaction, "dpp"),
    56: ("clone", sys_clone, "xppp"),
    57: ("fork", sys_fork, ""),
    58: ("vfork", sys_fork, ""),
    59: ("execve", sys_execve, "spp"),
    61: ("wait4", sys_wait4, "dpxp"),
    62: ("kill", sys_kill, "dd"),
    109: ("setpgid", sys_setpgid, "dd"),
    110: ("getppid", sys_getppid, ""),
    111: ("getpgrp", sys_getpgrp, ""),
    112: ("setsid", sys_setsid, ""),
    121: ("getpgid", sys_getpgid, "d"),
    124: ("getsid", sys_getsid, "d"),
    200: ("tkill", sys_tkill, "dd"),
    234: ("tgkill", sys_tgkill, "ddd"),
}
