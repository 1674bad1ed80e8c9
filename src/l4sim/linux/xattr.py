"""Extended attributes of the Linux personality, as tmpfs keeps them.

``setxattr``, ``lsetxattr``, ``fsetxattr``, ``getxattr``, ``lgetxattr``, ``fgetxattr``,
``listxattr``, ``llistxattr``, ``flistxattr``, ``removexattr``, ``lremovexattr``,
``fremovexattr``: name-value pairs on an inode, in the ``user.``, ``trusted.`` and
``security.`` namespaces (everybody is root; no security module claims ``security.``).
Linux's rules: ``user.`` attributes only on regular files and directories (EPERM to set,
ENODATA to get elsewhere); other namespaces (``system.``: POSIX ACLs are not there)
EOPNOTSUPP; a name of 1-255 bytes (ERANGE), a value of at most 64 KiB (E2BIG);
``XATTR_CREATE`` (EEXIST), ``XATTR_REPLACE`` (ENODATA); a buffer too small ERANGE, size 0
asks for the size.  Setting and removing change ctime.  ``/proc`` files, pipes, sockets
and other special files have none (EOPNOTSUPP).  ``listxattr`` lists in the order the
attributes were made; Linux's order is its hash table's.
"""

from __future__ import annotations

from l4sim.linux.files import AT_FDCWD, _lookup
from l4sim.linux.state import Call, Facility, Personality, Proc, Special, get
from l4sim.linux.vfs import Dir, File, Inode, PipeNode, ProcFile, stamp

EPERM, ENOENT, EBADF, EFAULT, EEXIST, EINVAL, E2BIG, ERANGE, ENODATA, EOPNOTSUPP = \
    1, 2, 9, 14, 17, 22, 7, 34, 61, 95
XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX = 255, 65536, 65536
NAMESPACES = ("user.", "trusted.", "security.")


class Xattrs(Facility):
    """The extended attributes of the system's inodes."""

    def __init__(self) -> None:
        self.of: dict[Inode, dict[bytes, bytes]] = {}


async def _name(k: Personality, p: Proc, addr: int) -> bytes | int:
    raw = await k.read_str(p, addr, XATTR_NAME_MAX + 2)
    if raw is None:
        return -EFAULT
    if not raw or len(raw) > XATTR_NAME_MAX:
        return -ERANGE
    if not any(raw.startswith(ns.encode()) for ns in NAMESPACES):
        return -EOPNOTSUPP
    if raw.rstrip(b"\0") in (ns.encode() for ns in NAMESPACES):
        return -EINVAL  # a namespace without a name
    return raw


async def _node(k: Personality, p: Proc, c: Call, how: str) -> Inode | int:
    """The inode a call names: by path (following links, or not for the l- calls) or fd."""
    if how == "f":
        f = get(p, c.a[0] - (1 << 32) if c.a[0] & 0x8000_0000 else c.a[0] & 0xFFFF_FFFF)
        return f.node if f is not None else -EBADF
    node, err, _ = await _lookup(k, p, AT_FDCWD, c.a[0], follow=how != "l")
    return node if node is not None else -err


def _user_ok(node: Inode) -> bool:
    return isinstance(node, (File, Dir)) and not isinstance(node, ProcFile)


#: the calls that name a link itself, and those that take an fd
L_CALLS, F_CALLS = frozenset((189, 192, 195, 198)), frozenset((190, 193, 196, 199))


def _how(c: Call) -> str:
    return "l" if c.nr in L_CALLS else "f" if c.nr in F_CALLS else ""


def _refused(node: Inode, name: bytes, denied: int) -> int:
    """Why ``name`` may not be set, read or removed on ``node`` (0: it may): a user.
    attribute of anything but a regular file or a directory is ``-denied`` (EPERM to change,
    ENODATA to read, as Linux answers); /proc's files, sockets and event files, and pipes
    have no attributes at all."""
    if name.startswith(b"user.") and not _user_ok(node):
        return -denied
    if isinstance(node, (ProcFile, Special)) or type(node) is PipeNode:
        return -EOPNOTSUPP
    return 0


async def _reply(k: Personality, p: Proc, buf: int, size: int, data: bytes) -> int:
    """getxattr's and listxattr's answer: size 0 asks only how long ``data`` is."""
    if size == 0:
        return len(data)
    if size < len(data):
        return -ERANGE
    return len(data) if not data or await k.write(p, buf, data) else -EFAULT


async def sys_setxattr(k: Personality, p: Proc, c: Call) -> int:
    value_addr, size, flags = c.a[2], c.a[3], c.a[4] & 0xFFFF_FFFF
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        return -EINVAL
    name = await _name(k, p, c.a[1])
    if isinstance(name, int):
        return name
    if size > XATTR_SIZE_MAX:
        return -E2BIG
    value = await k.read(p, value_addr, size) if size else b""
    if value is None:
        return -EFAULT
    node = await _node(k, p, c, _how(c))
    if isinstance(node, int):
        return node
    refused = _refused(node, name, EPERM)
    if refused:
        return refused
    attrs = k.facility(Xattrs).of.setdefault(node, {})
    if flags & XATTR_CREATE and name in attrs:
        return -EEXIST
    if flags & XATTR_REPLACE and name not in attrs:
        return -ENODATA
    attrs[name] = value
    stamp(node, k.wall_ns(), c=True)
    return 0


async def sys_getxattr(k: Personality, p: Proc, c: Call) -> int:
    buf, size = c.a[2], c.a[3]
    name = await _name(k, p, c.a[1])
    if isinstance(name, int):
        return name
    node = await _node(k, p, c, _how(c))
    if isinstance(node, int):
        return node
    refused = _refused(node, name, ENODATA)
    if refused:
        return refused
    value = k.facility(Xattrs).of.get(node, {}).get(name)
    if value is None:
        return -ENODATA
    return await _reply(k, p, buf, size, value)


async def sys_listxattr(k: Personality, p: Proc, c: Call) -> int:
    buf, size = c.a[1], c.a[2]
    node = await _node(k, p, c, _how(c))
    if isinstance(node, int):
        return node
    data = b"".join(n + b"\0" for n in k.facility(Xattrs).of.get(node, {}))
    return await _reply(k, p, buf, size, data)


async def sys_removexattr(k: Personality, p: Proc, c: Call) -> int:
    name = await _name(k, p, c.a[1])
    if isinstance(name, int):
        return name
    node = await _node(k, p, c, _how(c))
    if isinstance(node, int):
        return node
    refused = _refused(node, name, EPERM)
    if refused:
        return refused
    attrs = k.facility(Xattrs).of.get(node, {})
    if name not in attrs:
        return -ENODATA
    del attrs[name]
    stamp(node, k.wall_ns(), c=True)
    return 0


TABLE_ENTRIES: dict[int, tuple[str, object, str]] = {
    188: ("setxattr", sys_setxattr, "sspux"),
    189: ("lsetxattr", sys_setxattr, "sspux"),
    190: ("fsetxattr", sys_setxattr, "dspux"),
    191: ("getxattr", sys_getxattr, "sspu"),
    192: ("lgetxattr", sys_getxattr, "sspu"),
    193: ("fgetxattr", sys_getxattr, "dspu"),
    194: ("listxattr", sys_listxattr, "spu"),
    195: ("llistxattr", sys_listxattr, "spu"),
    196: ("flistxattr", sys_listxattr, "dpu"),
    197: ("removexattr", sys_removexattr, "ss"),
    198: ("lremovexattr", sys_removexattr, "ss"),
    199: ("fremovexattr", sys_removexattr, "ds"),
}
