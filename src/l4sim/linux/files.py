"""File system calls of the Linux personality: fds, the VFS, pipes, devices.

Each call is a thin ``async`` function ``fn(k, p, c) -> int`` as in
:mod:`l4sim.linux.syscalls`.  A call that must wait (read of an empty pipe,
write to a full one) registers the process on the pipe's ``waiters`` and
returns :data:`~l4sim.linux.state.BLOCK`; the personality keeps the
caller's reply capability and runs the call again when the pipe changes.
The fd table itself (:class:`~l4sim.linux.state.Fd`, ``install``, ``get``,
``release``, ``close_all``) is part of the personality's state
(:mod:`l4sim.linux.state`): starting, forking and ending processes use it too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from l4sim.linux import lifetime
from l4sim.linux.jobs import JOB_IOCTLS, background_read, tty_ioctl
from l4sim.linux.locks import LOCK_CMDS, fcntl_lock
from l4sim.linux.procfs import render
from l4sim.linux.signals import KILLABLE, RESTART_NOHAND, RESTART_SYS, interrupt, signal_death
from l4sim.linux.state import (
    BLOCK,
    MAX_FDS,
    RLIMIT_NOFILE,
    Call,
    Fd,
    Personality,
    Proc,
    Special,
    Wait,
    close_fd,
    get,
    install,
    opened,
    release,
)
from l4sim.linux.vfs import (
    O_ACCMODE,
    O_APPEND,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOFOLLOW,
    O_NONBLOCK,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    PIPE_BUF_SIZE,
    S_IFCHR,
    S_IFDIR,
    S_IFIFO,
    S_IFMT,
    S_IFREG,
    Device,
    Dir,
    Fifo,
    File,
    Inode,
    OFile,
    Pipe,
    PipeNode,
    ProcFile,
    Symlink,
    accessed,
    created,
    dir_path,
    dirent,
    stamp,
    stat_bytes,
    statx_bytes,
    unreachable,
)

EPERM, ENOENT, EBADF, EAGAIN, EFAULT, EEXIST, ENOTDIR, EISDIR, EINVAL = 1, 2, 9, 11, 14, 17, 20, 21, 22
EMFILE, ENOTTY, ESPIPE, EPIPE, ERANGE, ENOTEMPTY, ELOOP = 24, 25, 29, 32, 34, 39, 40
EACCES, EXDEV, EBUSY, ENXIO, ENOSPC = 13, 18, 16, 6, 28
S_IFBLK, S_IFSOCK = 0o060000, 0o140000
#: character devices mknod makes: (major, minor) -> what they are (vfs.Device names)
DEVICE_NAMES = {(1, 3): "null", (1, 5): "zero", (1, 7): "full", (1, 8): "random", (1, 9): "urandom", (5, 0): "tty",
                (5, 1): "console"}
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW, AT_REMOVEDIR, AT_EMPTY_PATH = 0x100, 0x200, 0x1000
SIGPIPE = 13
#: renameat2 flags
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
TTY_DEVICES = ("tty", "console")


def _i(v: int) -> int:
    v &= 0xFFFF_FFFF
    return v - (1 << 32) if v >> 31 else v


def _block() -> int:
    return BLOCK


# --------------------------------------------------------------------------- reading / writing
def _is_tty(f: OFile) -> bool:
    return isinstance(f.node, Device) and f.node.name in TTY_DEVICES


def _stdin(k: Personality, p: Proc, n: int) -> bytes | int:
    """Console input: what is buffered, b"" at its end, or BLOCK while the personality
    asks the console server for more."""
    if not k.stdin_buf and not k.stdin_eof:
        k.stdin_want = True
        k.stdin_waiters.add(p.cur.tid)
        return _block()
    out = bytes(k.stdin_buf[:n])
    del k.stdin_buf[:n]
    return out


def do_read(k: Personality, p: Proc, f: OFile, n: int, pos: int | None = None) -> bytes | int:
    """Up to ``n`` bytes from ``f``; a negative errno; or BLOCK."""
    if not f.readable:
        return -EBADF
    node = f.node
    if isinstance(node, Special):
        return node.read(k, p, f, n)
    if isinstance(node, PipeNode):
        pipe = node.pipe
        if pipe.buf:
            data = bytes(pipe.buf[:n])
            del pipe.buf[:n]
            if (w := k.cfg.watch) is not None and w.lifetime is not None:  # data lifetime
                lifetime.pipe_taken(k, w.lifetime, pipe, len(data))
            pipe.gen += 1  # a change an edge-triggered epoll sees
            k.wake(pipe.waiters)
            return data
        if pipe.writers == 0:
            return b""
        if f.flags & O_NONBLOCK:
            return -EAGAIN
        pipe.waiters.add(p.cur.tid)
        return _block()
    if isinstance(node, Device):
        if node.name == "null":
            return b""
        if node.name in ("zero", "full"):
            return bytes(n)
        if node.name in ("urandom", "random"):
            return bytes(k.rng.getrandbits(8) for _ in range(min(n, 1 << 16)))
        return _stdin(k, p, n)
    if isinstance(node, Dir):
        return -EISDIR
    if isinstance(node, File):
        at = f.pos if pos is None else pos
        data = bytes(node.data[at : at + n])
        if pos is None:
            f.pos += len(data)
        if n:
            accessed(node, k.wall_ns())
        if (w := k.cfg.watch) is not None and w.lifetime is not None:  # data lifetime
            lifetime.file_read(k, w.lifetime, node, at, len(data))
        return data
    return -EINVAL


def do_write(k: Personality, p: Proc, f: OFile, data: bytes, pos: int | None = None) -> int:
    """Write ``data``: the count, a negative errno, or BLOCK (a full pipe)."""
    if not f.writable:
        return -EBADF
    node = f.node
    if isinstance(node, Special):
        return node.write(k, p, f, data)
    if isinstance(node, PipeNode):
        pipe = node.pipe
        if pipe.readers == 0:
            return -EPIPE
        room = PIPE_BUF_SIZE - len(pipe.buf)
        if room <= 0 or (len(data) <= 4096 and room < len(data)):
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            pipe.waiters.add(p.cur.tid)
            return _block()
        chunk = data[:room]
        pipe.buf += chunk
        if (w := k.cfg.watch) is not None and w.lifetime is not None:  # data lifetime
            lifetime.pipe_wrote(k, w.lifetime, pipe, len(pipe.buf) - len(chunk), len(chunk))
        pipe.gen += 1  # a change an edge-triggered epoll sees
        k.wake(pipe.waiters)
        return len(chunk)
    if isinstance(node, Device):
        if node.name == "full":
            return -ENOSPC  # /dev/full: the device is always full
        if node.name == "stderr":
            k.console_out.append((2, data))  # to the console server before the reply
        elif node.name in ("stdout", *TTY_DEVICES):
            k.console_out.append((1, data))
        return len(data)
    if isinstance(node, File):
        buf = node.data
        at = len(buf) if f.flags & O_APPEND else (f.pos if pos is None else pos)
        if at > len(buf):
            buf += bytes(at - len(buf))
        buf[at : at + len(data)] = data
        if (w := k.cfg.watch) is not None and w.lifetime is not None:  # data lifetime
            lifetime.file_wrote(k, w.lifetime, node, f.path, at, len(data))
        if pos is None:
            f.pos = at + len(data)
        if data:
            stamp(node, k.wall_ns(), m=True, c=True)
        return len(data)
    return -EINVAL


async def _guest_path(k: Personality, p: Proc, addr: int) -> str | int:
    s = await k.read_str(p, addr)
    if s is None:
        return -EFAULT
    return s.decode("utf-8", "surrogateescape")


def _base(p: Proc, dirfd: int, path: str) -> Dir | int:
    """The directory a relative path starts from: the cwd or the dirfd's directory (inodes,
    not paths: they stay right when a directory above them is renamed)."""
    if path.startswith("/") or dirfd == AT_FDCWD:
        cwd: Dir = p.cwd
        return cwd
    f = get(p, dirfd)
    if f is None:
        return -EBADF
    if not isinstance(f.node, Dir):
        return -ENOTDIR
    return f.node


async def _lookup(k: Personality, p: Proc, dirfd: int, addr: int, follow: bool = True,
                  empty_ok: bool = False) -> tuple[Inode | None, int, str]:
    path = await _guest_path(k, p, addr)
    if isinstance(path, int):
        return None, -path, ""
    if path == "" and empty_ok:
        f = p.fds.get(dirfd) if dirfd != AT_FDCWD else None
        if dirfd == AT_FDCWD:
            return p.cwd, 0, dir_path(p.cwd)
        if f is None:
            return None, EBADF, ""
        return f.file.node, 0, f.file.path
    base = _base(p, dirfd, path)
    if isinstance(base, int):
        return None, -base, path
    return k.vfs.walk(base, path, p, follow)


# --------------------------------------------------------------------------- the calls
async def sys_read(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    bg = await background_read(k, p, c, f)
    if bg is not None:
        return bg
    r = do_read(k, p, f, min(c.a[2], 1 << 20))
    if isinstance(r, int):
        return await interrupt(k, p, c, RESTART_SYS) if r == BLOCK else r
    return len(r) if await k.write(p, c.a[1], r) else -EFAULT


async def sys_pread64(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    if not isinstance(f.node, File):
        return -ESPIPE
    r = do_read(k, p, f, min(c.a[2], 1 << 20), c.a[3])
    if isinstance(r, int):
        return r
    return len(r) if await k.write(p, c.a[1], r) else -EFAULT


async def _write_common(k: Personality, p: Proc, c: Call, fd: int, data: bytes, pos: int | None = None) -> int:
    f = get(p, fd)
    if f is None:
        return -EBADF
    r = do_write(k, p, f, data, pos)
    if r == -EPIPE:
        return await _broken_pipe(k, p, c)
    if r == BLOCK:
        return await interrupt(k, p, c, KILLABLE if isinstance(f.node, Special) and f.node.killable
                               else RESTART_SYS)
    return r


async def _broken_pipe(k: Personality, p: Proc, c: Call) -> int:
    """A write to a pipe without readers raises SIGPIPE in the writing thread (Linux's
    send_sig): a handler runs when the call returns, a blocked signal stays pending, an
    ignored one does nothing -- and the call returns EPIPE; the default action ends the
    process at once."""
    t = p.cur
    if SIGPIPE in p.sigign:
        return -EPIPE
    if SIGPIPE in p.sighand or t.sigmask >> (SIGPIPE - 1) & 1:
        k.post(p, SIGPIPE, t)
        return -EPIPE
    if k.cfg.strace is not None:
        k.cfg.strace(f"{c.name}(...) = -1 EPIPE (Broken pipe)")
    await signal_death(k, p, SIGPIPE, 0)
    c.ended = True
    return 0


async def sys_write(k: Personality, p: Proc, c: Call) -> int:
    data = await k.read(p, c.a[1], c.a[2])
    if data is None:
        return -EFAULT
    return await _write_common(k, p, c, _i(c.a[0]), data)


async def sys_sendfile(k: Personality, p: Proc, c: Call) -> int:
    """sendfile(out, in, offset*, count) from a regular file; the input moves on by what was written."""
    out_fd, fin, offp, count = _i(c.a[0]), get(p, _i(c.a[1])), c.a[2], c.a[3]
    if fin is None or get(p, out_fd) is None:
        return -EBADF
    if not isinstance(fin.node, File) or not fin.readable:
        return -EINVAL
    if offp:
        raw = await k.read(p, offp, 8)
        if raw is None:
            return -EFAULT
        pos = int.from_bytes(raw, "little")
    else:
        pos = fin.pos
    data = bytes(fin.node.data[pos : pos + min(count, 1 << 20)])
    if not data:
        return 0
    r = await _write_common(k, p, c, out_fd, data)
    if r > 0:
        if offp:
            await k.write(p, offp, (pos + r).to_bytes(8, "little"))
        else:
            fin.pos = pos + r
    return r


async def sys_pwrite64(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    if not isinstance(f.node, File):
        return -ESPIPE
    data = await k.read(p, c.a[1], c.a[2])
    if data is None:
        return -EFAULT
    return await _write_common(k, p, c, _i(c.a[0]), data, c.a[3])


async def iovecs(k: Personality, p: Proc, iov: int, cnt: int, too_many: int = EINVAL) -> list[tuple[int, int]] | int:
    """The (base, length) pairs of a struct iovec array, for readv and writev's family and for
    sendmsg and recvmsg: more than 1024 is ``-too_many`` (EINVAL for the first, EMSGSIZE for
    the sockets', as Linux answers)."""
    if cnt > 1024:
        return -too_many
    raw = await k.read(p, iov, 16 * cnt)
    if raw is None:
        return -EFAULT
    return [struct.unpack_from("<QQ", raw, 16 * i) for i in range(cnt)]


async def gather(k: Personality, p: Proc, vecs: list[tuple[int, int]]) -> bytes | int:
    """The bytes of the buffers ``vecs`` names, one after the other (-EFAULT if one is not
    readable): what writev's family and sendmsg send."""
    out = bytearray()
    for base, n in vecs:
        data = await k.read(p, base, n)
        if data is None:
            return -EFAULT
        out += data
    return bytes(out)


async def scatter(k: Personality, p: Proc, vecs: list[tuple[int, int]], data: bytes) -> bool:
    """Writes ``data`` across the buffers ``vecs`` names, each filled before the next (False:
    one was not writable, EFAULT): where readv's family and recvmsg put what they read."""
    at = 0
    for base, n in vecs:
        part = data[at : at + n]
        if part and not await k.write(p, base, part):
            return False
        at += len(part)
    return True


async def sys_writev(k: Personality, p: Proc, c: Call) -> int:
    vecs = await iovecs(k, p, c.a[1], c.a[2])
    if isinstance(vecs, int):
        return vecs
    out = await gather(k, p, vecs)
    if isinstance(out, int):
        return out
    return await _write_common(k, p, c, _i(c.a[0]), out)


async def sys_readv(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    vecs = await iovecs(k, p, c.a[1], c.a[2])
    if isinstance(vecs, int):
        return vecs
    bg = await background_read(k, p, c, f)
    if bg is not None:
        return bg
    r = do_read(k, p, f, min(sum(n for _, n in vecs), 1 << 20))
    if isinstance(r, int):
        return await interrupt(k, p, c, RESTART_SYS) if r == BLOCK else r
    if not await scatter(k, p, vecs, r):
        return -EFAULT
    return len(r)


async def sys_open(k: Personality, p: Proc, c: Call) -> int:
    return await _open(k, p, c, AT_FDCWD, c.a[0], c.a[1], c.a[2])


async def sys_openat(k: Personality, p: Proc, c: Call) -> int:
    return await _open(k, p, c, _i(c.a[0]), c.a[1], c.a[2], c.a[3])


async def sys_creat(k: Personality, p: Proc, c: Call) -> int:
    return await _open(k, p, c, AT_FDCWD, c.a[0], O_CREAT | O_WRONLY | O_TRUNC, c.a[1])


async def _open(k: Personality, p: Proc, c: Call, dirfd: int, addr: int, flags: int, mode: int) -> int:
    if c.state is not None:  # the open of a FIFO, waiting for the other end
        return await _fifo_wait(k, p, c)
    path = await _guest_path(k, p, addr)
    if isinstance(path, int):
        return path
    base = _base(p, dirfd, path)
    if isinstance(base, int):
        return base
    vfs = k.vfs
    node, err, full = vfs.walk(base, path, p, follow=not flags & O_NOFOLLOW)
    created = False
    if node is None and err == ENOENT and flags & O_CREAT:
        d, name, err2 = vfs.parent(base, path, p)
        if d is None:
            return -(err2 or EISDIR)
        if d.lookup(name, p) is None:
            now = k.wall_ns()
            node = File(b"", mode & ~p.umask & 0o7777)
            node.atime = node.mtime = node.ctime = node.btime = now
            d.add(name, node)
            stamp(d, now, m=True, c=True)
            created = True
            node, err, full = vfs.walk(base, path, p)
    if node is None:
        return -err
    if flags & O_CREAT and flags & O_EXCL and not created:
        return -EEXIST
    if isinstance(node, Symlink):
        return -ELOOP
    acc = flags & O_ACCMODE
    if isinstance(node, Dir):
        if acc != 0:
            return -EISDIR
    elif flags & O_DIRECTORY:
        return -ENOTDIR
    if isinstance(node, File) and flags & O_TRUNC and acc in (O_WRONLY, O_RDWR):
        node.data.clear()
        if (w := k.cfg.watch) is not None and w.lifetime is not None:  # data lifetime
            lifetime.file_cut(k, w.lifetime, node, 0, "truncated")
        stamp(node, k.wall_ns(), m=True, c=True)
    if isinstance(node, Fifo):
        return await _fifo_open(k, p, c, node, flags, full)
    if isinstance(node, ProcFile):
        if acc != 0:
            return -EACCES
        node.fill(await render(k, node.proc, node.what))
    f = OFile(node, flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC), full)
    if isinstance(node, Special):
        node.opened(k, f)
    return install(p, f, bool(flags & O_CLOEXEC))


@dataclass(eq=False)
class FifoOpen(Wait):
    """An open of a FIFO waiting for the other end (Linux's fifo_open): the end is counted
    already, so the other side's open sees it."""

    file: OFile
    cloexec: bool
    #: the other end's open count when this open began: it waits until that moves
    seen: int

    def forget(self, k: Personality, c: Call) -> None:
        """The open ends without an fd (interrupted, or its thread ended): the end is let go."""
        c.state = None
        release(k, self.file)


async def _fifo_open(k: Personality, p: Proc, c: Call, node: Fifo, flags: int, full: str) -> int:
    """Open a FIFO: for reading it waits for a writer, for writing for a reader (O_NONBLOCK:
    a reader goes on at once, a writer without readers gets ENXIO); O_RDWR does not wait."""
    pipe = node.pipe
    acc = flags & O_ACCMODE
    if acc == O_WRONLY and flags & O_NONBLOCK and pipe.readers == 0:
        return -ENXIO
    f = OFile(node, flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC), full)
    opened(f)
    if f.readable:
        pipe.read_opens += 1
    if f.writable:
        pipe.write_opens += 1
    pipe.gen += 1  # a change an edge-triggered epoll sees
    k.wake(pipe.waiters)
    c.state = FifoOpen(f, bool(flags & O_CLOEXEC), pipe.write_opens if acc == 0 else pipe.read_opens)
    return await _fifo_wait(k, p, c)


async def _fifo_wait(k: Personality, p: Proc, c: Call) -> int:
    st: FifoOpen = c.state
    f = st.file
    pipe = f.node.pipe  # type: ignore[attr-defined]
    acc = f.flags & O_ACCMODE
    if acc == O_RDWR or (acc == 0 and (f.flags & O_NONBLOCK or pipe.writers or pipe.write_opens != st.seen)) \
            or (acc == O_WRONLY and (pipe.readers or pipe.read_opens != st.seen)):
        c.state = None
        fd = install(p, f, st.cloexec)
        if fd < 0:
            release(k, f)
        return fd
    pipe.waiters.add(p.cur.tid)
    return await interrupt(k, p, c, RESTART_SYS)


async def _mknod(k: Personality, p: Proc, dirfd: int, addr: int, mode: int, dev: int) -> int:
    """mknod, mknodat: a FIFO, a regular file, or one of the character devices the
    personality has (by number: /dev/null's 1:3 ...); other devices EPERM."""
    kind = mode & S_IFMT
    perm = mode & ~p.umask & 0o7777
    node: Inode
    if kind in (0, S_IFREG):
        node = File(b"", perm)
    elif kind == S_IFIFO:
        node = Fifo(perm)
    elif kind == S_IFCHR:
        major, minor = (dev >> 8) & 0xFFF, (dev & 0xFF) | ((dev >> 12) & 0xFFF00)
        name = DEVICE_NAMES.get((major, minor))
        if name is None:
            return -EPERM
        node = Device(name, major, minor, perm)
    elif kind in (S_IFBLK, S_IFSOCK, S_IFDIR):
        return -EPERM
    else:
        return -EINVAL
    d, name2, err = await _parent_of(k, p, dirfd, addr, DOTS_EXIST)
    if d is None:
        return -err
    if d.lookup(name2, p) is not None:
        return -EEXIST
    stamp(d, created(node, k.wall_ns()).ctime, m=True, c=True)
    d.add(name2, node)
    return 0


async def sys_mknod(k: Personality, p: Proc, c: Call) -> int:
    return await _mknod(k, p, AT_FDCWD, c.a[0], c.a[1] & 0xFFFF_FFFF, c.a[2])


async def sys_mknodat(k: Personality, p: Proc, c: Call) -> int:
    return await _mknod(k, p, _i(c.a[0]), c.a[1], c.a[2] & 0xFFFF_FFFF, c.a[3])


async def sys_close(k: Personality, p: Proc, c: Call) -> int:
    return close_fd(k, p, _i(c.a[0]))


async def sys_lseek(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    off = c.a[1] - (1 << 64) if c.a[1] >> 63 else c.a[1]
    whence = c.a[2]
    if isinstance(f.node, Dir):
        if whence == 0 and off == 0:
            f.pos = 0
            return 0
        return -EINVAL
    if not isinstance(f.node, File) and not (isinstance(f.node, Special) and f.node.seekable):
        return -ESPIPE
    base = {0: 0, 1: f.pos, 2: f.node.size()}.get(whence)
    if base is None or base + off < 0:
        return -EINVAL
    f.pos = base + off
    return f.pos


async def sys_fstat(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    return 0 if await k.write(p, c.a[1], stat_bytes(f.node)) else -EFAULT


async def sys_stat(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0], follow=c.nr != 6)
    if node is None:
        return -err
    return 0 if await k.write(p, c.a[1], stat_bytes(node)) else -EFAULT


async def sys_newfstatat(k: Personality, p: Proc, c: Call) -> int:
    flags = c.a[3]
    node, err, _ = await _lookup(k, p, _i(c.a[0]), c.a[1], not flags & AT_SYMLINK_NOFOLLOW,
                                 bool(flags & AT_EMPTY_PATH))
    if node is None:
        return -err
    return 0 if await k.write(p, c.a[2], stat_bytes(node)) else -EFAULT


async def sys_statx(k: Personality, p: Proc, c: Call) -> int:
    flags = c.a[2]
    node, err, _ = await _lookup(k, p, _i(c.a[0]), c.a[1], not flags & AT_SYMLINK_NOFOLLOW,
                                 bool(flags & AT_EMPTY_PATH))
    if node is None:
        return -err
    return 0 if await k.write(p, c.a[4], statx_bytes(node)) else -EFAULT


async def sys_getdents64(k: Personality, p: Proc, c: Call) -> int:
    return await list_dir(k, p, c, dirent)


async def list_dir(k: Personality, p: Proc, c: Call, record: Callable[[int, int, int, str], bytes]) -> int:
    """getdents64's and the old getdents's listing, which differ only in the record
    (``record(ino, off, kind, name)``): ".", ".." and the names in byte order, from the
    file's position on, as many whole records as fit the buffer (EINVAL if not even one
    does); the position moves past them."""
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    d = f.node
    if not isinstance(d, Dir):
        return -ENOTDIR
    if d.removed:
        return 0  # Linux lists nothing in a removed directory, not even "." and ".."
    ents: list[tuple[str, Inode]] = [(".", d), ("..", d.parent),
                                     *sorted(d.names(p), key=lambda e: e[0].encode("utf-8", "surrogateescape"))]
    out = bytearray()
    i = f.pos
    while i < len(ents):
        name, node = ents[i]
        rec = record(node.ino, i + 1, node.kind, name)
        if len(out) + len(rec) > c.a[2]:
            if not out:
                return -EINVAL
            break
        out += rec
        i += 1
    if out and not await k.write(p, c.a[1], bytes(out)):
        return -EFAULT
    f.pos = i
    accessed(d, k.wall_ns())
    return len(out)


async def sys_dup(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    fd = install(p, f)
    if fd >= 0:
        f.refs += 1
    return fd


async def _dup2(k: Personality, p: Proc, old: int, new: int, cloexec: bool) -> int:
    f = get(p, old)
    if f is None:
        return -EBADF
    if not 0 <= new < min(MAX_FDS, p.rlimits[RLIMIT_NOFILE][0]):
        return -EBADF
    if old == new:
        return new
    close_fd(k, p, new)
    f.refs += 1
    p.fds[new] = Fd(f, cloexec)
    return new


async def sys_dup2(k: Personality, p: Proc, c: Call) -> int:
    return await _dup2(k, p, _i(c.a[0]), _i(c.a[1]), False)


async def sys_dup3(k: Personality, p: Proc, c: Call) -> int:
    if _i(c.a[0]) == _i(c.a[1]) or c.a[2] & ~O_CLOEXEC:
        return -EINVAL
    return await _dup2(k, p, _i(c.a[0]), _i(c.a[1]), bool(c.a[2] & O_CLOEXEC))


async def sys_pipe2(k: Personality, p: Proc, c: Call) -> int:
    flags = c.a[1] if c.nr == 293 else 0
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        return -EINVAL
    pipe = Pipe()
    node = PipeNode(pipe)
    created(node, k.wall_ns())
    extra = flags & O_NONBLOCK
    r, w = OFile(node, 0 | extra, "pipe"), OFile(node, O_WRONLY | extra, "pipe")
    opened(r)
    opened(w)
    fr = install(p, r, bool(flags & O_CLOEXEC))
    fw = install(p, w, bool(flags & O_CLOEXEC)) if fr >= 0 else -EMFILE
    if fr < 0 or fw < 0:
        if fr >= 0:
            close_fd(k, p, fr)
        return -EMFILE
    if not await k.write(p, c.a[0], struct.pack("<ii", fr, fw)):
        close_fd(k, p, fr)
        close_fd(k, p, fw)
        return -EFAULT
    return 0


F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030


async def sys_fcntl(k: Personality, p: Proc, c: Call) -> int:
    fd, cmd, arg = _i(c.a[0]), _i(c.a[1]), c.a[2]
    e = p.fds.get(fd)
    if e is None:
        return -EBADF
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        n = install(p, e.file, cmd == F_DUPFD_CLOEXEC, low=_i(arg))
        if n >= 0:
            e.file.refs += 1
        return n
    if cmd == F_GETFD:
        return 1 if e.cloexec else 0
    if cmd == F_SETFD:
        e.cloexec = bool(arg & 1)
        return 0
    if cmd == F_GETFL:
        return int(e.file.flags & ~O_CLOEXEC)
    if cmd == F_SETFL:
        f = e.file
        f.flags = (f.flags & ~(O_APPEND | O_NONBLOCK)) | (arg & (O_APPEND | O_NONBLOCK))
        return 0
    if cmd in LOCK_CMDS:  # record locks: linux/locks.py
        return await fcntl_lock(k, p, c, fd, cmd, arg)
    return -EINVAL


POLLIN, POLLPRI, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 1, 2, 4, 8, 16, 32


def ready(k: Personality, f: OFile) -> int:
    """poll's ready bits of an open file (regular files and devices are always ready)."""
    node = f.node
    if isinstance(node, Special):
        return node.ready(k, f)
    if isinstance(node, PipeNode):
        pipe = node.pipe
        r = 0
        if f.readable:
            r |= (POLLIN if pipe.buf else 0) | (POLLHUP if pipe.writers == 0 else 0)
        if f.writable:
            r |= POLLERR if pipe.readers == 0 else POLLOUT if len(pipe.buf) < PIPE_BUF_SIZE else 0
        return r
    return (POLLIN if f.readable else 0) | (POLLOUT if f.writable else 0)


def watch(k: Personality, f: OFile, tid: int) -> None:
    """Wake ``tid`` when ``f``'s readiness may change (a pipe's or a special file's change)."""
    node = f.node
    if isinstance(node, Special):
        node.watch(k, tid)
    elif isinstance(node, PipeNode):
        node.pipe.waiters.add(tid)


def next_change(k: Personality, files: list[OFile]) -> int | None:
    """The earliest simulated time one of ``files`` becomes ready by itself (a timer)."""
    times = [t for f in files if isinstance(f.node, Special) and (t := f.node.deadline(k)) is not None]
    return min(times) if times else None


async def _poll_deadline(k: Personality, p: Proc, c: Call, timeout_ns: int | None) -> None:
    if c.state is None:
        c.state = (k.now_ns + timeout_ns) if timeout_ns is not None else -1


def _poll_wait(k: Personality, p: Proc, c: Call, files: list[OFile]) -> int:
    """0 when the timeout has passed, else BLOCK (woken by the files or the deadline)."""
    if c.state != -1 and k.now_ns >= c.state:
        k.sleepers.pop(p.cur.tid, None)
        return 0
    tid = p.cur.tid
    for f in files:
        watch(k, f, tid)
    at = next_change(k, files)
    if c.state != -1:
        at = c.state if at is None else min(at, c.state)
    if at is not None:
        k.sleepers[tid] = at
    return _block()


async def _poll(k: Personality, p: Proc, c: Call, fds: int, nfds: int, timeout_ns: int | None) -> int:
    if nfds > MAX_FDS:
        return -EINVAL
    raw = await k.read(p, fds, 8 * nfds)
    if raw is None:
        return -EFAULT
    entries = [struct.unpack_from("<ihh", raw, 8 * i) for i in range(nfds)]
    out = bytearray(raw)
    n = 0
    files: list[OFile] = []
    for i, (fd, events, _) in enumerate(entries):
        rev = 0
        if fd >= 0:
            f = get(p, fd)
            if f is None:
                rev = POLLNVAL
            else:
                files.append(f)
                rev = ready(k, f) & (events | POLLERR | POLLHUP | POLLNVAL)
        struct.pack_into("<h", out, 8 * i + 6, rev)
        n += bool(rev)
    await _poll_deadline(k, p, c, timeout_ns)
    if n == 0:
        r = _poll_wait(k, p, c, files)
        if r != 0:
            return await interrupt(k, p, c, RESTART_NOHAND)
    k.sleepers.pop(p.cur.tid, None)
    return n if await k.write(p, fds, bytes(out)) else -EFAULT


async def sys_poll(k: Personality, p: Proc, c: Call) -> int:
    ms = _i(c.a[2])
    return await _poll(k, p, c, c.a[0], c.a[1], None if ms < 0 else ms * 1_000_000)


async def _timespec_ns(k: Personality, p: Proc, addr: int) -> int | None:
    if not addr:
        return None
    raw = await k.read(p, addr, 16)
    if raw is None:
        return -1
    sec, nsec = struct.unpack("<qq", raw)
    return int(sec * 10**9 + nsec)


async def sys_ppoll(k: Personality, p: Proc, c: Call) -> int:
    t = await _timespec_ns(k, p, c.a[2])
    if t is not None and t < 0:
        return -EFAULT if t == -1 else -EINVAL
    return await _poll(k, p, c, c.a[0], c.a[1], t)


async def _select(k: Personality, p: Proc, c: Call, nfds: int, sets: tuple[int, int, int],
                  timeout_ns: int | None) -> int:
    if not 0 <= nfds <= MAX_FDS:
        return -EINVAL
    nbytes = ((nfds + 63) // 64) * 8
    masks = []
    for addr in sets:
        if addr and nbytes:
            raw = await k.read(p, addr, nbytes)
            if raw is None:
                return -EFAULT
            masks.append(int.from_bytes(raw, "little"))
        else:
            masks.append(0)
    res = [0, 0, 0]
    files: list[OFile] = []
    for fd in range(nfds):
        want = [(m >> fd) & 1 for m in masks]
        if not any(want):
            continue
        f = get(p, fd)
        if f is None:
            return -EBADF
        files.append(f)
        r = ready(k, f)
        if want[0] and r & (POLLIN | POLLHUP | POLLERR):
            res[0] |= 1 << fd
        if want[1] and r & (POLLOUT | POLLERR):
            res[1] |= 1 << fd
    n = sum(bin(x).count("1") for x in res)
    await _poll_deadline(k, p, c, timeout_ns)
    if n == 0:
        r2 = _poll_wait(k, p, c, files)
        if r2 != 0:
            return await interrupt(k, p, c, RESTART_NOHAND)
    k.sleepers.pop(p.cur.tid, None)
    for addr, m in zip(sets, res, strict=True):
        if addr and nbytes and not await k.write(p, addr, m.to_bytes(nbytes, "little")):
            return -EFAULT
    return n


async def sys_select(k: Personality, p: Proc, c: Call) -> int:
    t = None
    if c.a[4]:
        raw = await k.read(p, c.a[4], 16)
        if raw is None:
            return -EFAULT
        sec, usec = struct.unpack("<qq", raw)
        t = sec * 10**9 + usec * 1000
    return await _select(k, p, c, _i(c.a[0]), (c.a[1], c.a[2], c.a[3]), t)


async def sys_pselect6(k: Personality, p: Proc, c: Call) -> int:
    t = await _timespec_ns(k, p, c.a[4])
    if t is not None and t < 0:
        return -EFAULT if t == -1 else -EINVAL
    return await _select(k, p, c, _i(c.a[0]), (c.a[1], c.a[2], c.a[3]), t)


TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, FIONREAD = 0x5401, 0x5402, 0x5403, 0x5404, 0x5413, 0x541B
FIONBIO = 0x5421


async def sys_ioctl(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    req, arg = c.a[1] & 0xFFFF_FFFF, c.a[2]
    if req == FIONREAD:
        n = len(f.node.pipe.buf) if isinstance(f.node, PipeNode) else max(0, f.node.size() - f.pos) \
            if isinstance(f.node, File) else f.node.nread() if isinstance(f.node, Special) else 0
        return 0 if await k.write(p, arg, struct.pack("<i", n)) else -EFAULT
    if req == FIONBIO:  # any file: O_NONBLOCK on or off
        raw = await k.read(p, arg, 4)
        if raw is None:
            return -EFAULT
        f.flags = f.flags | O_NONBLOCK if int.from_bytes(raw, "little") else f.flags & ~O_NONBLOCK
        return 0
    if isinstance(f.node, Special):  # a socket, an event file, an L4 stub (linux/l4.py)
        return await f.node.ioctl(k, p, c, f, req, arg)
    if not _is_tty(f):
        return -ENOTTY
    if req in JOB_IOCTLS:
        return await tty_ioctl(k, p, f, req, arg)
    if req == TCGETS:
        # c_iflag ICRNL|IXON, c_oflag OPOST|ONLCR, c_cflag B38400|CS8|CREAD, c_lflag ISIG|ICANON|ECHO...
        termios = struct.pack("<IIIIB19s", 0o2400, 0o5, 0o277, 0o105073, 0,
                              bytes([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]))
        return 0 if await k.write(p, arg, termios) else -EFAULT
    if req in (TCSETS, TCSETSW, TCSETSF):
        return 0
    if req == TIOCGWINSZ:
        return 0 if await k.write(p, arg, struct.pack("<HHHH", 24, 80, 0, 0)) else -EFAULT
    return -EINVAL


async def sys_access(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0])
    return 0 if node is not None else -err


async def sys_faccessat(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, _i(c.a[0]), c.a[1])
    return 0 if node is not None else -err


async def _readlink(k: Personality, p: Proc, dirfd: int, addr: int, buf: int, size: int) -> int:
    if _i(size) <= 0:
        return -EINVAL
    node, err, _ = await _lookup(k, p, dirfd, addr, follow=False)
    if node is None:
        return -err
    if not isinstance(node, Symlink):
        return -EINVAL
    accessed(node, k.wall_ns())
    data = node.target.encode("utf-8", "surrogateescape")[:size]
    return len(data) if await k.write(p, buf, data) else -EFAULT


async def sys_readlink(k: Personality, p: Proc, c: Call) -> int:
    return await _readlink(k, p, AT_FDCWD, c.a[0], c.a[1], c.a[2])


async def sys_readlinkat(k: Personality, p: Proc, c: Call) -> int:
    return await _readlink(k, p, _i(c.a[0]), c.a[1], c.a[2], c.a[3])


#: what a call whose path ends in no name ("/", "." or "..", existing) fails with, by that
#: last component: making something there finds it exists; rmdir, unlink, rename as Linux
DOTS_EXIST = {"": EEXIST, ".": EEXIST, "..": EEXIST}
DOTS_RMDIR = {"": EBUSY, ".": EINVAL, "..": ENOTEMPTY}
DOTS_UNLINK = {"": EISDIR, ".": EISDIR, "..": EISDIR}
DOTS_RENAME = {"": EBUSY, ".": EBUSY, "..": EBUSY}


async def _parent_of(k: Personality, p: Proc, dirfd: int, addr: int,
                     dots: dict[str, int]) -> tuple[Dir | None, str, int]:
    """The directory holding ``addr``'s last component and that name, or (None, _, errno)."""
    path = await _guest_path(k, p, addr)
    if isinstance(path, int):
        return None, "", -path
    base = _base(p, dirfd, path)
    if isinstance(base, int):
        return None, "", -base
    d, name, err = k.vfs.parent(base, path, p)
    if d is None and err == 0:
        err = dots[name]
    return d, name, err


async def _mkdir(k: Personality, p: Proc, dirfd: int, addr: int, mode: int) -> int:
    d, name, err = await _parent_of(k, p, dirfd, addr, DOTS_EXIST)
    if d is None:
        return -err
    if d.lookup(name, p) is not None:
        return -EEXIST
    nd = Dir(mode & ~p.umask & 0o7777)
    stamp(d, created(nd, k.wall_ns()).ctime, m=True, c=True)
    d.add(name, nd)
    return 0


async def sys_mkdir(k: Personality, p: Proc, c: Call) -> int:
    return await _mkdir(k, p, AT_FDCWD, c.a[0], c.a[1])


async def sys_mkdirat(k: Personality, p: Proc, c: Call) -> int:
    return await _mkdir(k, p, _i(c.a[0]), c.a[1], c.a[2])


async def _unlink(k: Personality, p: Proc, dirfd: int, addr: int, rmdir: bool) -> int:
    d, name, err = await _parent_of(k, p, dirfd, addr, DOTS_RMDIR if rmdir else DOTS_UNLINK)
    if d is None:
        return -err
    node = d.lookup(name, p)
    if node is None:
        return -ENOENT
    if name not in d.children:
        return -EPERM  # made-up /proc entries
    if rmdir:
        if not isinstance(node, Dir):
            return -ENOTDIR
        if node.children:
            return -ENOTEMPTY
    elif isinstance(node, Dir):
        return -EISDIR
    del d.children[name]
    node.nlink -= 1
    if isinstance(node, File) and not node.nlink and (w := k.cfg.watch) is not None and w.lifetime is not None:
        lifetime.file_cut(k, w.lifetime, node, 0, "removed")  # data lifetime
    if isinstance(node, Dir):
        node.removed = True  # a process whose cwd it is lists nothing there and makes nothing
    now = k.wall_ns()
    stamp(d, now, m=True, c=True)
    stamp(node, now, c=True)
    return 0


async def sys_unlink(k: Personality, p: Proc, c: Call) -> int:
    return await _unlink(k, p, AT_FDCWD, c.a[0], False)


async def sys_rmdir(k: Personality, p: Proc, c: Call) -> int:
    return await _unlink(k, p, AT_FDCWD, c.a[0], True)


async def sys_unlinkat(k: Personality, p: Proc, c: Call) -> int:
    return await _unlink(k, p, _i(c.a[0]), c.a[1], bool(c.a[2] & AT_REMOVEDIR))


async def _rename(k: Personality, p: Proc, odir: int, oaddr: int, ndir: int, naddr: int,
                  flags: int = 0) -> int:
    """rename(at)(2): flags RENAME_NOREPLACE 1 (EEXIST when the target exists) and
    RENAME_EXCHANGE 2 (swap two existing names); RENAME_WHITEOUT is EINVAL."""
    if flags & ~3 or flags == 3:
        return -EINVAL
    d1, n1, e1 = await _parent_of(k, p, odir, oaddr, DOTS_RENAME)
    if d1 is None:
        return -e1
    d2, n2, e2 = await _parent_of(k, p, ndir, naddr, DOTS_RENAME)
    if d2 is None:
        return -e2
    node = d1.children.get(n1)
    if node is None:
        return -ENOENT
    old = d2.children.get(n2)
    if flags & RENAME_NOREPLACE and old is not None:
        return -EEXIST
    if flags & RENAME_EXCHANGE:
        if old is None:
            return -ENOENT
        if old is not node:
            for moving, into in ((node, d2), (old, d1)):
                if isinstance(moving, Dir) and _inside(into, moving):
                    return -EINVAL
            d1.add(n1, old)
            d2.add(n2, node)
            now = k.wall_ns()
            for x in (d1, d2):
                stamp(x, now, m=True, c=True)
            stamp(node, now, c=True)
            stamp(old, now, c=True)
        return 0
    if old is node:
        return 0
    if old is not None:
        if isinstance(old, Dir):
            if not isinstance(node, Dir):
                return -EISDIR
            if old.children:
                return -ENOTEMPTY
        elif isinstance(node, Dir):
            return -ENOTDIR
    if isinstance(node, Dir) and _inside(d2, node):  # not into itself
        return -EINVAL
    del d1.children[n1]
    now = k.wall_ns()
    if isinstance(old, Dir):
        old.removed = True
    elif old is not None:
        old.nlink -= 1
        stamp(old, now, c=True)
    d2.add(n2, node)
    stamp(d1, now, m=True, c=True)
    stamp(d2, now, m=True, c=True)
    stamp(node, now, c=True)
    return 0


async def sys_rename(k: Personality, p: Proc, c: Call) -> int:
    return await _rename(k, p, AT_FDCWD, c.a[0], AT_FDCWD, c.a[1])


async def sys_renameat(k: Personality, p: Proc, c: Call) -> int:
    return await _rename(k, p, _i(c.a[0]), c.a[1], _i(c.a[2]), c.a[3])


async def sys_renameat2(k: Personality, p: Proc, c: Call) -> int:
    return await _rename(k, p, _i(c.a[0]), c.a[1], _i(c.a[2]), c.a[3], c.a[4] & 0xFFFF_FFFF)


def _inside(d: Dir, node: Dir) -> bool:
    """``d`` is ``node`` or below it."""
    q = d
    while True:
        if q is node:
            return True
        if q.parent is q:
            return False
        q = q.parent


async def sys_chdir(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0])
    if node is None:
        return -err
    if not isinstance(node, Dir):
        return -ENOTDIR
    p.cwd = node
    return 0


async def sys_fchdir(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    if not isinstance(f.node, Dir):
        return -ENOTDIR
    p.cwd = f.node
    return 0


async def sys_getcwd(k: Personality, p: Proc, c: Call) -> int:
    """The cwd's path, made from the directory itself (ENOENT once it has been removed)."""
    if unreachable(p.cwd):
        return -ENOENT
    data = dir_path(p.cwd).encode("utf-8", "surrogateescape") + b"\0"
    if c.a[1] < len(data):
        return -ERANGE
    return len(data) if await k.write(p, c.a[0], data) else -EFAULT


async def sys_umask(k: Personality, p: Proc, c: Call) -> int:
    old, p.umask = p.umask, c.a[0] & 0o777
    return old


def _chmod(k: Personality, node: Inode, mode: int) -> None:
    node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
    stamp(node, k.wall_ns(), c=True)


async def sys_chmod(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0])
    if node is None:
        return -err
    _chmod(k, node, c.a[1])
    return 0


async def sys_fchmodat(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, _i(c.a[0]), c.a[1])
    if node is None:
        return -err
    _chmod(k, node, c.a[2])
    return 0


async def sys_fchmod(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    _chmod(k, f.node, c.a[1])
    return 0


UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


def set_times(k: Personality, node: Inode, atime: int | None, mtime: int | None) -> None:
    """utimensat's change: atime and mtime to the values given (ns; None: left alone), ctime
    to now -- unless both are left alone, when nothing changes."""
    if atime is None and mtime is None:
        return
    now = k.wall_ns()
    if atime is not None:
        node.atime = atime
    if mtime is not None:
        node.mtime = mtime
    node.ctime = now


async def _times_arg(k: Personality, p: Proc, addr: int, usec: bool) -> tuple[int | None, int | None] | int:
    """The two times of utimensat (timespecs, UTIME_NOW and UTIME_OMIT) or utimes (timevals)
    at ``addr`` as nanoseconds (None: left alone); 0 for NULL: both now; or a negative errno."""
    now = k.wall_ns()
    if not addr:
        return now, now
    raw = await k.read(p, addr, 32)
    if raw is None:
        return -EFAULT
    out: list[int | None] = []
    for sec, frac in (struct.unpack_from("<qq", raw, 0), struct.unpack_from("<qq", raw, 16)):
        if usec:
            if not 0 <= frac < 1_000_000:
                return -EINVAL
            out.append(sec * 10**9 + frac * 1000)
        elif frac == UTIME_NOW:
            out.append(now)
        elif frac == UTIME_OMIT:
            out.append(None)
        elif not 0 <= frac < 10**9:
            return -EINVAL
        else:
            out.append(sec * 10**9 + frac)
    return out[0], out[1]


async def _utimes(k: Personality, p: Proc, dirfd: int, addr: int, times: int, flags: int, usec: bool) -> int:
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -EINVAL
    tv = await _times_arg(k, p, times, usec)
    if isinstance(tv, int):
        return tv
    if addr == 0:  # utimensat(fd, NULL, ...): the open file itself
        f = get(p, dirfd)
        if f is None:
            return -EBADF
        node: Inode | None = f.node
    else:
        node, err, _ = await _lookup(k, p, dirfd, addr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                                     empty_ok=bool(flags & AT_EMPTY_PATH))
        if node is None:
            return -err
    assert node is not None
    set_times(k, node, *tv)
    return 0


async def sys_utimensat(k: Personality, p: Proc, c: Call) -> int:
    return await _utimes(k, p, _i(c.a[0]), c.a[1], c.a[2], c.a[3] & 0xFFFF_FFFF, False)


async def sys_utimes(k: Personality, p: Proc, c: Call) -> int:
    """utimes(path, timevals) and futimesat(dirfd, path, timevals): microseconds."""
    if c.nr == 261:  # futimesat
        return await _utimes(k, p, _i(c.a[0]), c.a[1], c.a[2], 0, True)
    return await _utimes(k, p, AT_FDCWD, c.a[0], c.a[1], 0, True)


async def sys_utime(k: Personality, p: Proc, c: Call) -> int:
    """utime(path, struct utimbuf {actime, modtime}): whole seconds; NULL: now."""
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0])
    if node is None:
        return -err
    if c.a[1]:
        raw = await k.read(p, c.a[1], 16)
        if raw is None:
            return -EFAULT
        a, m = struct.unpack("<qq", raw)
        set_times(k, node, a * 10**9, m * 10**9)
    else:
        now = k.wall_ns()
        set_times(k, node, now, now)
    return 0


# --------------------------------------------------------------------------- links, owners, sizes, sync
AT_SYMLINK_FOLLOW = 0x400
TMPFS_MAGIC = 0x01021994


async def _symlink(k: Personality, p: Proc, taddr: int, dirfd: int, addr: int) -> int:
    target = await _guest_path(k, p, taddr)
    if isinstance(target, int):
        return target
    if not target:
        return -ENOENT
    d, name, err = await _parent_of(k, p, dirfd, addr, DOTS_EXIST)
    if d is None:
        return -err
    if d.lookup(name, p) is not None:
        return -EEXIST
    node = Symlink(target)
    stamp(d, created(node, k.wall_ns()).ctime, m=True, c=True)
    d.add(name, node)
    return 0


async def sys_symlink(k: Personality, p: Proc, c: Call) -> int:
    return await _symlink(k, p, c.a[0], AT_FDCWD, c.a[1])


async def sys_symlinkat(k: Personality, p: Proc, c: Call) -> int:
    return await _symlink(k, p, c.a[0], _i(c.a[1]), c.a[2])


async def _link(k: Personality, p: Proc, odir: int, oaddr: int, ndir: int, naddr: int, flags: int) -> int:
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -EINVAL
    node, err, _ = await _lookup(k, p, odir, oaddr, follow=bool(flags & AT_SYMLINK_FOLLOW),
                                 empty_ok=bool(flags & AT_EMPTY_PATH))
    if node is None:
        return -err
    if isinstance(node, Dir):
        return -EPERM
    if isinstance(node, ProcFile | Device) or type(node) is PipeNode:
        return -EXDEV  # not on the same file system as anything one can link into
    d, name, err = await _parent_of(k, p, ndir, naddr, DOTS_EXIST)
    if d is None:
        return -err
    if d.lookup(name, p) is not None:
        return -EEXIST
    node.nlink += 1
    d.add(name, node)
    now = k.wall_ns()
    stamp(d, now, m=True, c=True)
    stamp(node, now, c=True)
    return 0


async def sys_link(k: Personality, p: Proc, c: Call) -> int:
    return await _link(k, p, AT_FDCWD, c.a[0], AT_FDCWD, c.a[1], 0)


async def sys_linkat(k: Personality, p: Proc, c: Call) -> int:
    return await _link(k, p, _i(c.a[0]), c.a[1], _i(c.a[2]), c.a[3], c.a[4])


def _chown(k: Personality, node: Inode, uid: int, gid: int) -> int:
    if uid != -1:
        node.uid = uid & 0xFFFF_FFFF
    if gid != -1:
        node.gid = gid & 0xFFFF_FFFF
    stamp(node, k.wall_ns(), c=True)
    return 0


async def sys_chown(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0], follow=c.nr != 94)  # 94: lchown
    return _chown(k, node, _i(c.a[1]), _i(c.a[2])) if node is not None else -err


async def sys_fchown(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    return _chown(k, f.node, _i(c.a[1]), _i(c.a[2])) if f is not None else -EBADF


async def sys_fchownat(k: Personality, p: Proc, c: Call) -> int:
    flags = c.a[4]
    node, err, _ = await _lookup(k, p, _i(c.a[0]), c.a[1], not flags & AT_SYMLINK_NOFOLLOW,
                                 bool(flags & AT_EMPTY_PATH))
    return _chown(k, node, _i(c.a[2]), _i(c.a[3])) if node is not None else -err


def _truncate(k: Personality, node: Inode, length: int) -> int:
    if length < 0:
        return -EINVAL
    if isinstance(node, Dir):
        return -EISDIR
    if not isinstance(node, File) or isinstance(node, ProcFile):
        return -EINVAL
    data = node.data
    if length < len(data):
        del data[length:]
        if (w := k.cfg.watch) is not None and w.lifetime is not None:  # data lifetime
            lifetime.file_cut(k, w.lifetime, node, length, "truncated")
    else:
        data += bytes(length - len(data))
    stamp(node, k.wall_ns(), m=True, c=True)
    return 0


async def sys_truncate(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0])
    if node is None:
        return -err
    return _truncate(k, node, c.a[1] - (1 << 64) if c.a[1] >> 63 else c.a[1])


async def sys_ftruncate(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    if not f.writable:
        return -EINVAL
    return _truncate(k, f.node, c.a[1] - (1 << 64) if c.a[1] >> 63 else c.a[1])


async def sys_fsync(k: Personality, p: Proc, c: Call) -> int:
    """fsync, fdatasync, syncfs: everything is in memory, nothing to write back."""
    return 0 if get(p, _i(c.a[0])) is not None else -EBADF


async def sys_sync(k: Personality, p: Proc, c: Call) -> int:
    return 0


async def sys_fadvise64(k: Personality, p: Proc, c: Call) -> int:
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    if isinstance(f.node, PipeNode):
        return -ESPIPE
    return 0 if c.a[3] <= 5 else -EINVAL


def _statfs(k: Personality) -> bytes:
    """struct statfs of the one file system (tmpfs-like, as big as the machine's RAM)."""
    blocks = k.cfg.ram // 4096
    return struct.pack("<qqQQQQQiiqqq4q", TMPFS_MAGIC, 4096, blocks, blocks, blocks, 1 << 20, 1 << 20,
                       0, 0, 255, 4096, 0x20, 0, 0, 0, 0)


async def sys_statfs(k: Personality, p: Proc, c: Call) -> int:
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0])
    if node is None:
        return -err
    return 0 if await k.write(p, c.a[1], _statfs(k)) else -EFAULT


async def sys_fstatfs(k: Personality, p: Proc, c: Call) -> int:
    if get(p, _i(c.a[0])) is None:
        return -EBADF
    return 0 if await k.write(p, c.a[1], _statfs(k)) else -EFAULT


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    0: ("read", sys_read, "dBu"),
    1: ("write", sys_write, "dbu"),
    2: ("open", sys_open, "sxo"),
    3: ("close", sys_close, "d"),
    4: ("stat", sys_stat, "sp"),
    5: ("fstat", sys_fstat, "dp"),
    6: ("lstat", sys_stat, "sp"),
    7: ("poll", sys_poll, "pud"),
    8: ("lseek", sys_lseek, "ddd"),
    16: ("ioctl", sys_ioctl, "dxp"),
    17: ("pread64", sys_pread64, "dBud"),
    18: ("pwrite64", sys_pwrite64, "dbud"),
    19: ("readv", sys_readv, "dVd"),
    20: ("writev", sys_writev, "dvd"),
    21: ("access", sys_access, "sx"),
    22: ("pipe", sys_pipe2, "p"),
    23: ("select", sys_select, "dpppp"),
    32: ("dup", sys_dup, "d"),
    40: ("sendfile", sys_sendfile, "ddpu"),
    33: ("dup2", sys_dup2, "dd"),
    72: ("fcntl", sys_fcntl, "ddx"),
    79: ("getcwd", sys_getcwd, "pu"),
    80: ("chdir", sys_chdir, "s"),
    81: ("fchdir", sys_fchdir, "d"),
    82: ("rename", sys_rename, "ss"),
    83: ("mkdir", sys_mkdir, "so"),
    84: ("rmdir", sys_rmdir, "s"),
    85: ("creat", sys_creat, "so"),
    87: ("unlink", sys_unlink, "s"),
    89: ("readlink", sys_readlink, "sBu"),
    90: ("chmod", sys_chmod, "so"),
    91: ("fchmod", sys_fchmod, "do"),
    95: ("umask", sys_umask, "o"),
    217: ("getdents64", sys_getdents64, "dpu"),
    257: ("openat", sys_openat, "dsxo"),
    258: ("mkdirat", sys_mkdirat, "dso"),
    262: ("newfstatat", sys_newfstatat, "dspx"),
    263: ("unlinkat", sys_unlinkat, "dsx"),
    264: ("renameat", sys_renameat, "dsds"),
    316: ("renameat2", sys_renameat2, "dsdsx"),
    267: ("readlinkat", sys_readlinkat, "dsBu"),
    268: ("fchmodat", sys_fchmodat, "dso"),
    269: ("faccessat", sys_faccessat, "dsx"),
    280: ("utimensat", sys_utimensat, "dspx"),
    132: ("utime", sys_utime, "sp"),
    235: ("utimes", sys_utimes, "sp"),
    261: ("futimesat", sys_utimes, "dsp"),
    270: ("pselect6", sys_pselect6, "dppppp"),
    271: ("ppoll", sys_ppoll, "pupp"),
    292: ("dup3", sys_dup3, "ddx"),
    293: ("pipe2", sys_pipe2, "px"),
    332: ("statx", sys_statx, "dsxxp"),
    439: ("faccessat2", sys_faccessat, "dsxx"),
    74: ("fsync", sys_fsync, "d"),
    75: ("fdatasync", sys_fsync, "d"),
    76: ("truncate", sys_truncate, "sd"),
    77: ("ftruncate", sys_ftruncate, "dd"),
    86: ("link", sys_link, "ss"),
    133: ("mknod", sys_mknod, "sox"),
    259: ("mknodat", sys_mknodat, "dsox"),
    88: ("symlink", sys_symlink, "ss"),
    92: ("chown", sys_chown, "sdd"),
    93: ("fchown", sys_fchown, "ddd"),
    94: ("lchown", sys_chown, "sdd"),
    137: ("statfs", sys_statfs, "sp"),
    138: ("fstatfs", sys_fstatfs, "dp"),
    162: ("sync", sys_sync, ""),
    221: ("fadvise64", sys_fadvise64, "dddd"),
    260: ("fchownat", sys_fchownat, "dsddx"),
    265: ("linkat", sys_linkat, "dsdsx"),
    266: ("symlinkat", sys_symlinkat, "sds"),
    306: ("syncfs", sys_fsync, "d"),
}
