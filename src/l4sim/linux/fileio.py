"""More file calls of the Linux personality: positioned vector I/O, memfd, close_range,
the old getdents, fallocate and copy_file_range.

- ``preadv``, ``pwritev``, ``preadv2``, ``pwritev2``: readv/writev at a position (the
  file's offset stays); the -2 forms with position -1 use and move the offset, and take
  ``RWF_*`` flags (``RWF_NOWAIT``: EAGAIN instead of waiting; ``RWF_APPEND``).
- ``memfd_create``: an anonymous regular file (``/memfd:NAME (deleted)`` in
  ``/proc/PID/fd``, mode 0777), shared as any open file; sealing is not there.
- ``close_range``: closes (or with ``CLOSE_RANGE_CLOEXEC`` marks close-on-exec) a range.
- ``getdents``: ``getdents64``'s listing in the old ``linux_dirent`` layout.
- ``fallocate``: tmpfs's modes -- 0 extends the file, ``FALLOC_FL_KEEP_SIZE`` changes
  nothing visible, ``FALLOC_FL_PUNCH_HOLE`` zeroes the range; the others EOPNOTSUPP.
- ``copy_file_range``: bytes from one regular file to another, at their offsets or at
  positions given.
"""

from __future__ import annotations

import struct

from l4sim.linux.files import _i, _write_common, do_read, gather, iovecs, list_dir, scatter
from l4sim.linux.signals import RESTART_SYS, interrupt
from l4sim.linux.state import BLOCK, Call, Personality, Proc, close_fd, get, install
from l4sim.linux.vfs import (
    DT,
    O_APPEND,
    O_NONBLOCK,
    Dir,
    File,
    OFile,
    PipeNode,
    ProcFile,
    accessed,
    stamp,
)

EBADF, EAGAIN, EFAULT, EINVAL, ESPIPE, EISDIR, ENODEV, EOPNOTSUPP, EFBIG = 9, 11, 14, 22, 29, 21, 19, 95, 27
RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND = 1, 2, 4, 8, 16
RWF_SUPPORTED = RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND
MFD_CLOEXEC, MFD_ALLOW_SEALING, MFD_HUGETLB, MFD_NOEXEC_SEAL, MFD_EXEC = 1, 2, 4, 8, 0x10
MFD_NAME_MAX = 249
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 1, 2
#: the largest file (MAX_LFS_FILESIZE)
MAX_FILE = (1 << 63) - 1


# --------------------------------------------------------------------------- preadv and friends
def _where(p: Proc, c: Call, v2: int) -> tuple[OFile, int | None, int] | int:
    """preadv's and pwritev's file, position (None: the file's own) and flags: the calls
    numbered ``v2`` (preadv2, pwritev2) have flags and take position -1 for the file's own."""
    flags = c.a[5] & 0xFFFF_FFFF if c.nr == v2 else 0
    pos = c.a[3] - (1 << 64) if c.a[3] >> 63 else c.a[3]
    if flags & ~RWF_SUPPORTED:
        return -EOPNOTSUPP
    f = get(p, _i(c.a[0]))
    if f is None:
        return -EBADF
    if pos == -1 and c.nr == v2:
        return f, None, flags
    if pos < 0:
        return -EINVAL
    if not isinstance(f.node, File):
        return -ESPIPE
    return f, pos, flags


async def sys_preadv(k: Personality, p: Proc, c: Call) -> int:
    """preadv(fd, iov, cnt, pos), preadv2(..., flags): position -1 (preadv2) is readv."""
    w = _where(p, c, 327)
    if isinstance(w, int):
        return w
    f, at, flags = w
    vecs = await iovecs(k, p, c.a[1], c.a[2])
    if isinstance(vecs, int):
        return vecs
    r = do_read(k, p, f, min(sum(n for _, n in vecs), 1 << 20), at)
    if r == BLOCK:
        if flags & RWF_NOWAIT:
            return -EAGAIN
        return await interrupt(k, p, c, RESTART_SYS)
    if isinstance(r, int):
        return r
    if not await scatter(k, p, vecs, r):
        return -EFAULT
    return len(r)


async def sys_pwritev(k: Personality, p: Proc, c: Call) -> int:
    """pwritev(fd, iov, cnt, pos), pwritev2(..., flags): position -1 (pwritev2) is writev;
    RWF_APPEND writes at the end."""
    w = _where(p, c, 328)
    if isinstance(w, int):
        return w
    f, at, flags = w
    vecs = await iovecs(k, p, c.a[1], c.a[2])
    if isinstance(vecs, int):
        return vecs
    out = await gather(k, p, vecs)
    if isinstance(out, int):
        return out
    if flags & RWF_APPEND and isinstance(f.node, File):
        at = f.node.size()
    if flags & RWF_NOWAIT and f.flags & O_NONBLOCK == 0:
        saved = f.flags
        f.flags |= O_NONBLOCK
        try:
            return await _write_common(k, p, c, _i(c.a[0]), out, at)
        finally:
            f.flags = saved
    return await _write_common(k, p, c, _i(c.a[0]), out, at)


# --------------------------------------------------------------------------- memfd, close_range
async def sys_memfd_create(k: Personality, p: Proc, c: Call) -> int:
    flags = c.a[1] & 0xFFFF_FFFF
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC) \
            or (flags & MFD_NOEXEC_SEAL and flags & MFD_EXEC):
        return -EINVAL
    if flags & MFD_HUGETLB:
        return -EINVAL  # no huge pages here
    raw = await k.read_str(p, c.a[0], MFD_NAME_MAX + 2)
    if raw is None:
        return -EFAULT
    if len(raw) > MFD_NAME_MAX:
        return -EINVAL
    node = File(b"", 0o777 if not flags & MFD_NOEXEC_SEAL else 0o666)
    now = k.wall_ns()
    node.atime = node.mtime = node.ctime = node.btime = now
    node.nlink = 0  # no name in any directory
    name = raw.decode("utf-8", "surrogateescape")
    return install(p, OFile(node, 2, f"/memfd:{name} (deleted)"), bool(flags & MFD_CLOEXEC))


async def sys_close_range(k: Personality, p: Proc, c: Call) -> int:
    first, last, flags = c.a[0] & 0xFFFF_FFFF, c.a[1] & 0xFFFF_FFFF, c.a[2] & 0xFFFF_FFFF
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        return -EINVAL
    for fd in sorted(fd for fd in p.fds if first <= fd <= last):
        if flags & CLOSE_RANGE_CLOEXEC:
            p.fds[fd].cloexec = True
        else:
            close_fd(k, p, fd)
    return 0


# --------------------------------------------------------------------------- getdents
async def sys_getdents(k: Personality, p: Proc, c: Call) -> int:
    """The old getdents: struct linux_dirent {ino, off, reclen, name, NUL, pad, type}, in
    getdents64's order (names as bytes)."""
    return await list_dir(k, p, c, _old_dirent)


def _old_dirent(ino: int, off: int, kind: int, name: str) -> bytes:
    """struct linux_dirent: the type in the record's last byte, after the name's padding."""
    b = name.encode("utf-8", "surrogateescape")
    reclen = (18 + len(b) + 2 + 7) & ~7
    rec = struct.pack("<QqH", ino, off, reclen) + b + b"\0"
    return rec + bytes(reclen - 1 - len(rec)) + bytes([DT.get(kind, 0)])


# --------------------------------------------------------------------------- fallocate, copy_file_range
async def sys_fallocate(k: Personality, p: Proc, c: Call) -> int:
    fd, mode, off, length = _i(c.a[0]), _i(c.a[1]), c.a[2], c.a[3]
    off = off - (1 << 64) if off >> 63 else off
    length = length - (1 << 64) if length >> 63 else length
    if off < 0 or length <= 0:
        return -EINVAL
    if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE):
        return -EOPNOTSUPP  # collapse, insert, zero range, unshare: not tmpfs's
    if mode & FALLOC_FL_PUNCH_HOLE and not mode & FALLOC_FL_KEEP_SIZE:
        return -EOPNOTSUPP
    f = get(p, fd)
    if f is None or not f.writable:
        return -EBADF
    node = f.node
    if isinstance(node, PipeNode):
        return -ESPIPE
    if isinstance(node, Dir):
        return -EISDIR
    if not isinstance(node, File) or isinstance(node, ProcFile):
        return -ENODEV
    if off + length > MAX_FILE:
        return -EFBIG
    data = node.data
    if mode & FALLOC_FL_PUNCH_HOLE:
        end = min(len(data), off + length)
        if off < end:
            data[off:end] = bytes(end - off)
        stamp(node, k.wall_ns(), m=True, c=True)
    elif not mode & FALLOC_FL_KEEP_SIZE and off + length > len(data):
        data += bytes(off + length - len(data))
        stamp(node, k.wall_ns(), m=True, c=True)
    return 0


async def _offset(k: Personality, p: Proc, addr: int) -> int | None:
    raw = await k.read(p, addr, 8)
    return None if raw is None else struct.unpack("<q", raw)[0]


async def sys_copy_file_range(k: Personality, p: Proc, c: Call) -> int:
    fin, inp, fout, outp, length, flags = _i(c.a[0]), c.a[1], _i(c.a[2]), c.a[3], c.a[4], c.a[5]
    if flags:
        return -EINVAL
    a, b = get(p, fin), get(p, fout)
    if a is None or b is None or not a.readable or not b.writable or b.flags & O_APPEND:
        return -EBADF
    if not isinstance(a.node, File) or not isinstance(b.node, File) \
            or isinstance(a.node, ProcFile) or isinstance(b.node, ProcFile):
        return -EINVAL
    src = a.pos if not inp else await _offset(k, p, inp)
    dst = b.pos if not outp else await _offset(k, p, outp)
    if src is None or dst is None:
        return -EFAULT
    if src < 0 or dst < 0:
        return -EINVAL
    chunk = bytes(a.node.data[src:src + min(length, 1 << 30)])
    if a.node is b.node and src < dst + len(chunk) and dst < src + len(chunk):
        return -EINVAL  # overlapping ranges of one file
    if chunk:
        data = b.node.data
        if dst > len(data):
            data += bytes(dst - len(data))
        data[dst:dst + len(chunk)] = chunk
        stamp(b.node, k.wall_ns(), m=True, c=True)
        accessed(a.node, k.wall_ns())
    n = len(chunk)
    if inp:
        await k.write(p, inp, struct.pack("<q", src + n))
    else:
        a.pos += n
    if outp:
        await k.write(p, outp, struct.pack("<q", dst + n))
    else:
        b.pos += n
    return n


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    78: ("getdents", sys_getdents, "dpu"),
    285: ("fallocate", sys_fallocate, "dddd"),
    295: ("preadv", sys_preadv, "dpdd"),
    296: ("pwritev", sys_pwritev, "dvdd"),
    319: ("memfd_create", sys_memfd_create, "sx"),
    326: ("copy_file_range", sys_copy_file_range, "dpdpux"),
    327: ("preadv2", sys_preadv, "dpddx"),
    328: ("pwritev2", sys_pwritev, "dvddx"),
    436: ("close_range", sys_close_range, "uux"),
}
