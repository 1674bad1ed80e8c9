"""The personality's file system: an in-memory tree of inodes, pipes and devices.

The root is built from a host directory (read lazily, read-only: a host
file is read the first time its data is needed, and every change lives in
memory) or a tar file, or is empty with the program copied in at its path.
``/tmp`` is an ordinary in-memory directory (everything is in memory),
``/dev`` holds ``null``, ``zero``, ``urandom``, ``tty`` and ``console`` (the
console's session and foreground group: :class:`Tty`), ``/proc/self`` (and
``/proc/PID``) has ``exe`` and ``fd/N``, symbolic links made up when they are
looked up, and ``stat``, ``status``, ``maps``, ``cmdline``, ``comm``: files
whose text is made when they are opened (:class:`ProcFile`, the text from
:mod:`l4sim.linux.procfs`), as are ``/proc/uptime``, ``meminfo`` and the like.
A directory knows its parent and its name, so a cwd or a directory fd held as
the :class:`Dir` itself finds its path after a rename (:func:`dir_path`);
sizes, link counts and blocks are what Linux's tmpfs reports.  Named pipes are
:class:`Fifo` inodes.

Names are bytes: any byte but ``/`` and NUL.  They are held in ``str`` as UTF-8 with every
other byte a surrogate escape (:func:`guest_str`), and encoded back to the same bytes with
``surrogateescape`` wherever the guest sees them.

Nothing here does IPC: the system calls in :mod:`l4sim.linux.files` use it.
"""

from __future__ import annotations

import itertools
import os
import stat as _st
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

S_IFMT, S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR, S_IFIFO = 0o170000, 0o040000, 0o100000, 0o120000, 0o020000, 0o010000
ENOENT, EBADF, EEXIST, ENOTDIR, EISDIR, EINVAL, ENOTEMPTY, ELOOP, ENAMETOOLONG = 2, 9, 17, 20, 21, 22, 39, 40, 36
EACCES, EXDEV, EBUSY = 13, 18, 16
#: the simulated wall clock starts at this Unix time (2026-01-01)
EPOCH = 1_767_225_600
EPOCH_NS = EPOCH * 1_000_000_000
PIPE_BUF_SIZE = 65536
#: relatime: a read updates atime when it is not after mtime or ctime, or is a day old
RELATIME_NS = 24 * 3600 * 1_000_000_000


def stamp(node: Inode, now: int, a: bool = False, m: bool = False, c: bool = False) -> None:
    """Set the times of ``node`` that an operation changes to ``now`` (ns): a write sets
    mtime and ctime, chmod ctime (as tmpfs does)."""
    if a:
        node.atime = now
    if m:
        node.mtime = now
    if c:
        node.ctime = now


def accessed(node: Inode, now: int) -> None:
    """A read of ``node`` (read, getdents, readlink): atime follows Linux's relatime rule --
    updated when it is not later than mtime or ctime, or older than a day."""
    if node.atime <= node.mtime or node.atime <= node.ctime or now - node.atime >= RELATIME_NS:
        node.atime = now


def created(node: Inode, now: int) -> Inode:
    """A new inode's times: all ``now``."""
    node.atime = node.mtime = node.ctime = node.btime = now
    return node

_ino = itertools.count(2)


def guest_str(host: str) -> str:
    """A name or path from the host (a directory listing, a link, a tar member, the command
    line) as the file system holds names: any bytes but ``/`` and NUL, kept in a ``str`` as
    UTF-8 with every other byte a surrogate escape -- what the system calls decode from a
    guest's paths, whatever the host's locale (under the C locale Python decodes host
    names as ASCII)."""
    return os.fsencode(host).decode("utf-8", "surrogateescape")


class Inode:
    mode: int = 0
    rdev: int = 0
    #: owner and group (chown); everybody is root, so nothing checks them
    uid: int = 0
    gid: int = 0

    def __init__(self, mode: int) -> None:
        self.mode = mode
        self.ino = next(_ino)
        #: access, modification, status change and birth times, in nanoseconds of the wall clock
        #: (tmpfs keeps nanoseconds); set by :func:`stamp` and :func:`accessed`
        self.atime = self.mtime = self.ctime = self.btime = EPOCH_NS
        self.nlink = 1

    @property
    def kind(self) -> int:
        return self.mode & S_IFMT

    def size(self) -> int:
        return 0

    def links(self) -> int:
        """st_nlink."""
        return self.nlink

    def blocks(self) -> int:
        """st_blocks (512-byte units) as tmpfs counts them: the pages the inode holds."""
        return 0


class File(Inode):
    def __init__(self, data: bytes = b"", mode: int = 0o644, host: Path | None = None,
                 host_size: int = 0, track: bool = False) -> None:
        super().__init__(S_IFREG | (mode & 0o7777))
        self._data: bytearray | None = None if host is not None else bytearray(data)
        self._host = host
        self._host_size = host_size
        #: in a tree that may be written back (:mod:`l4sim.linux.rootfs`): the digest of the
        #: bytes the host file had when they were read, so a change of the guest's is seen
        self._track = track
        self.host_digest = b""
        #: its permissions when imported (write-back sees a chmod)
        self.host_mode = self.mode

    @property
    def data(self) -> bytearray:
        if self._data is None:
            assert self._host is not None
            try:
                self._data = bytearray(self._host.read_bytes())
            except OSError:
                self._data = bytearray()
            if self._track:
                self.host_digest = digest(self._data)
        return self._data

    @property
    def host(self) -> Path | None:
        """The host file this one was imported from (None: made in the guest)."""
        return self._host

    @property
    def loaded(self) -> bool:
        """Its bytes are in memory (a host file's are read when first needed)."""
        return self._data is not None

    def size(self) -> int:
        return len(self._data) if self._data is not None else self._host_size

    def blocks(self) -> int:
        return (self.size() + 4095) // 4096 * 8


class ProcFile(File):
    """A file of ``/proc``: its text is made when it is opened (:func:`l4sim.linux.procfs.render`
    for ``what`` of process ``proc``, or of the system when ``proc`` is None); its size is 0,
    as on Linux."""

    def __init__(self, proc: Any, what: str) -> None:
        super().__init__(b"", 0o444)
        self.proc = proc
        self.what = what

    def size(self) -> int:
        return 0

    def fill(self, text: bytes) -> None:
        self._data = bytearray(text)


class Symlink(Inode):
    def __init__(self, target: str | Callable[[], str], host: Path | None = None) -> None:
        super().__init__(S_IFLNK | 0o777)
        self._target = target
        #: the host link this one was imported from (None: made in the guest)
        self.host = host

    @property
    def target(self) -> str:
        t = self._target
        return t if isinstance(t, str) else t()

    def size(self) -> int:
        return len(self.target.encode("utf-8", "surrogateescape"))

    def blocks(self) -> int:
        return 8 if self.size() >= 128 else 0  # tmpfs keeps short targets in the inode


class Dir(Inode):
    """A directory: its entries, and its place in the tree (``parent`` and ``name``, kept by
    :meth:`add`, so that a directory held as a cwd or an fd knows its path after a rename)."""

    def __init__(self, mode: int = 0o755, host: Path | None = None, track: bool = False,
                 fill: Callable[[Dir], None] | None = None) -> None:
        super().__init__(S_IFDIR | (mode & 0o7777))
        self._children: dict[str, Inode] | None = None if host is not None or fill is not None else {}
        self._host = host
        #: made in memory when first looked into (``fill(self)`` adds the entries)
        self._fill = fill
        self.parent: Dir = self
        self.name = ""
        #: rmdir'ed (or replaced by rename): nothing can be made in it, it lists nothing
        self.removed = False
        #: a tree that may be written back (see File): what the host held when this directory
        #: was first looked into, name -> (lstat signature, the node made for it)
        self._track = track
        self.seen: dict[str, tuple[tuple[int, ...], Inode]] = {}
        #: host entries looked up by name before the directory was listed (see lookup)
        self._looked: dict[str, Inode] = {}

    @property
    def host(self) -> Path | None:
        """The host directory this one was imported from (None: made in the guest)."""
        return self._host

    @property
    def loaded(self) -> bool:
        """Its entries are known (a host directory's are read when first looked into)."""
        return self._children is not None or self._fill is not None

    @property
    def known(self) -> dict[str, Inode]:
        """The entries the guest may have seen, without listing a host directory: all of them
        once listed, else those looked up by name."""
        return self.children if self._children is not None or self._fill is not None else self._looked

    @property
    def children(self) -> dict[str, Inode]:
        if self._children is None and self._fill is not None:
            fill, self._fill = self._fill, None
            self._children = {}
            fill(self)
        if self._children is None:
            assert self._host is not None
            looked = self._looked
            self._children = {}
            try:
                entries = sorted(self._host.iterdir())
            except OSError:
                entries = []
            for e in entries:
                name = guest_str(e.name)
                node = looked.pop(name, None) if looked else None
                if node is None:  # (a name looked up before keeps its node: open files hold it)
                    got = _host_node(e, self._track)
                    if got is None:
                        continue
                    node, sig = got
                    if self._track:
                        self.seen[name] = (sig, node)
                self.add(name, node)
            for name, node in looked.items():  # gone from the host since: the guest saw it
                self.add(name, node)
            looked.clear()
        return self._children

    def lookup(self, name: str, ctx: Any) -> Inode | None:
        """The entry ``name``.  In a host directory not listed yet only that name is looked
        at on the host (one lstat): resolving a path costs its components, not the size of
        the directories on the way."""
        if self._children is not None or self._fill is not None:
            return self.children.get(name)
        node = self._looked.get(name)
        if node is None:
            assert self._host is not None
            got = _host_node(self._host / os.fsdecode(name.encode("utf-8", "surrogateescape")), self._track)
            if got is None:
                return None
            node, sig = got
            self._looked[name] = node
            if isinstance(node, Dir):
                node.parent, node.name = self, name
            if self._track:
                self.seen[name] = (sig, node)
        return node

    def names(self, ctx: Any) -> list[tuple[str, Inode]]:
        return list(self.children.items())

    def add(self, name: str, node: Inode) -> None:
        self.children[name] = node
        if isinstance(node, Dir):
            node.parent = self
            node.name = name

    def size(self) -> int:
        return 40 + 20 * len(self.children)  # tmpfs: 20 bytes per entry, "." and ".." included

    def links(self) -> int:
        """2 ("." and the parent's entry) + one ".." per subdirectory, as tmpfs; 0 once removed."""
        if self.removed:
            return 0
        return 2 + sum(1 for c in self.children.values() if isinstance(c, Dir))


def dir_path(d: Dir) -> str:
    """The absolute path of directory ``d`` (by its parents and names, so renames show)."""
    parts: list[str] = []
    while d.parent is not d:
        up = d.parent
        known = up.known  # (a host directory is not listed for it)
        if known.get(d.name) is not d:  # moved without add(): find its entry
            d.name = next((n for n, c in known.items() if c is d), d.name)
        parts.append(d.name)
        d = up
    return "/" + "/".join(reversed(parts))


def cwd_path(d: Dir) -> str:
    """What /proc/PID/cwd shows: the path, with " (deleted)" once the directory is gone."""
    return dir_path(d) + (" (deleted)" if unreachable(d) else "")


def unreachable(d: Dir) -> bool:
    """``d`` or a directory above it has been removed (getcwd: ENOENT)."""
    while True:
        if d.removed:
            return True
        if d.parent is d:
            return False
        d = d.parent


def signature(s: os.stat_result) -> tuple[int, ...]:
    """What says a host entry is still the one imported: its kind and inode, and for a file
    or link its size, modification time and mode (a directory's mtime moves with every entry
    made in it, write-back's own included)."""
    if _st.S_ISDIR(s.st_mode):
        return (_st.S_IFMT(s.st_mode), s.st_dev, s.st_ino)
    return (_st.S_IFMT(s.st_mode), s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_mode)


def digest(data: bytes | bytearray) -> bytes:
    """A file's bytes in short (write-back compares what the guest left with what it read)."""
    import hashlib  # (only a tree that may be written back needs it)

    return hashlib.blake2b(data, digest_size=16).digest()


def _host_node(p: Path, track: bool = False) -> tuple[Inode, tuple[int, ...]] | None:
    """The node for host entry ``p`` (a directory, a regular file or a symbolic link; other
    kinds are not imported) and its :func:`signature`."""
    try:
        s = p.lstat()
    except OSError:
        return None
    node: Inode
    if _st.S_ISLNK(s.st_mode):
        try:
            node = Symlink(guest_str(str(p.readlink())), host=p)
        except OSError:
            return None
    elif _st.S_ISDIR(s.st_mode):
        node = Dir(s.st_mode, host=p, track=track)
    elif _st.S_ISREG(s.st_mode):
        node = File(mode=s.st_mode, host=p, host_size=s.st_size, track=track)
    else:
        return None
    return node, signature(s)


class Device(Inode):
    """A character device: ``name`` says what reading and writing do (see files.py)."""

    def __init__(self, name: str, major: int, minor: int, mode: int = 0o666) -> None:
        super().__init__(S_IFCHR | mode)
        self.name = name
        self.rdev = (major << 8) | minor


@dataclass(eq=False)
class Pipe:
    """A pipe's buffer and its ends' counts; blocked calls wait on it."""

    buf: bytearray = field(default_factory=bytearray)
    readers: int = 0
    writers: int = 0
    ino: int = field(default_factory=lambda: next(_ino))
    waiters: set[int] = field(default_factory=set)
    #: opens of each end so far: a FIFO's blocked open waits for the other side's count to move
    read_opens: int = 0
    write_opens: int = 0
    #: changes so far (data in or out, an end closed): an edge-triggered epoll reports again after one
    gen: int = 0


class PipeNode(Inode):
    def __init__(self, pipe: Pipe) -> None:
        super().__init__(S_IFIFO | 0o600)
        self.pipe = pipe
        self.ino = pipe.ino

    def size(self) -> int:
        return len(self.pipe.buf)


class Fifo(PipeNode):
    """A named pipe (mkfifo, mknod S_IFIFO): a pipe reached by its path; what is in it is
    dropped when the last end is closed, as Linux frees the pipe."""

    def __init__(self, mode: int) -> None:
        super().__init__(Pipe())
        self.mode = S_IFIFO | (mode & 0o7777)

    def size(self) -> int:
        return 0


O_ACCMODE, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND = 3, 1, 2, 0o100, 0o200, 0o1000, 0o2000
O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW, O_CLOEXEC = 0o4000, 0o200000, 0o400000, 0o2000000


@dataclass(eq=False)
class OFile:
    """An open file description (shared by dup and fork)."""

    node: Inode
    flags: int
    path: str
    pos: int = 0
    refs: int = 1

    @property
    def readable(self) -> bool:
        return (self.flags & O_ACCMODE) != O_WRONLY

    @property
    def writable(self) -> bool:
        return (self.flags & O_ACCMODE) in (O_WRONLY, O_RDWR)


# --------------------------------------------------------------------------- /proc
#: files of /proc/PID and of /proc (their text: l4sim.linux.procfs)
PROCESS_FILES = ("stat", "status", "maps", "cmdline", "comm")
SYSTEM_FILES = ("uptime", "meminfo", "loadavg", "stat", "mounts")
#: files of /proc/net (their text: l4sim.linux.net.ifaces)
NET_FILES = ("dev", "if_inet6", "route", "arp", "tcp", "tcp6", "udp", "udp6")

class ProcDir(Dir):
    """``/proc``: ``self`` and one directory per live process (ctx is the vfs's process lookup)."""

    def __init__(self, vfs: Vfs) -> None:
        super().__init__(0o555)
        self.vfs = vfs

    def lookup(self, name: str, ctx: Any) -> Inode | None:
        if name == "self":
            return Symlink(str(ctx.pid)) if ctx is not None else None
        if name in SYSTEM_FILES:
            return ProcFile(None, name)
        if name == "net":
            return ProcNetDir()
        if name.isascii() and name.isdigit():
            p = self.vfs.procs(int(name))
            if p is not None:
                d = PidDir(p)
                d.parent, d.name = self, name
                return d
        return None

    def size(self) -> int:
        return 0

    def names(self, ctx: Any) -> list[tuple[str, Inode]]:
        out: list[tuple[str, Inode]] = [("self", Symlink(str(ctx.pid)))]
        out += [(name, ProcFile(None, name)) for name in SYSTEM_FILES]
        out.append(("net", ProcNetDir()))
        for pid in self.vfs.pids():
            node = self.lookup(str(pid), ctx)
            if node is not None:
                out.append((str(pid), node))
        return out


class ProcNetDir(Dir):
    """``/proc/net``: the network's files (``ProcFile``s of ``net/NAME``)."""

    def __init__(self) -> None:
        super().__init__(0o555)

    def lookup(self, name: str, ctx: Any) -> Inode | None:
        return ProcFile(None, f"net/{name}") if name in NET_FILES else None

    def size(self) -> int:
        return 0

    def names(self, ctx: Any) -> list[tuple[str, Inode]]:
        return [(name, ProcFile(None, f"net/{name}")) for name in NET_FILES]


class PidDir(Dir):
    def __init__(self, proc: Any) -> None:
        super().__init__(0o555)
        self.proc = proc

    def lookup(self, name: str, ctx: Any) -> Inode | None:
        p = self.proc
        if name == "exe":
            return Symlink(p.exe)
        if name == "cwd":
            return Symlink(lambda: cwd_path(p.cwd))
        if name == "fd":
            d = FdDir(p)
            d.parent, d.name = self, name
            return d
        if name in PROCESS_FILES:
            return ProcFile(p, name)
        return None

    def size(self) -> int:
        return 0

    def names(self, ctx: Any) -> list[tuple[str, Inode]]:
        return [(n, node) for n in ("exe", "cwd", "fd", *PROCESS_FILES)
                if (node := self.lookup(n, ctx)) is not None]


class FdDir(Dir):
    def __init__(self, proc: Any) -> None:
        super().__init__(0o500)
        self.proc = proc

    def lookup(self, name: str, ctx: Any) -> Inode | None:
        if not (name.isascii() and name.isdigit()) or int(name) not in self.proc.fds:
            return None
        f: OFile = self.proc.fds[int(name)].file
        if type(f.node) is PipeNode:
            return Symlink(f"pipe:[{f.node.ino}]")
        if isinstance(f.node, Dir):
            d = f.node
            return Symlink(lambda: cwd_path(d))
        return Symlink(f.path)

    def size(self) -> int:
        return 0

    def names(self, ctx: Any) -> list[tuple[str, Inode]]:
        return [(str(fd), node) for fd in sorted(self.proc.fds) if (node := self.lookup(str(fd), ctx)) is not None]


@dataclass
class Tty:
    """The console as a controlling terminal: its session and foreground process group
    (see :mod:`l4sim.linux.jobs`); 0: none."""

    session: int = 1
    pgrp: int = 1


# --------------------------------------------------------------------------- the tree
class Vfs:
    """The tree and path resolution."""

    def __init__(self, root: Dir, procs: Callable[[int], Any] = lambda pid: None,
                 pids: Callable[[], list[int]] = list, mounts: Sequence[tuple[str, Dir]] = ()) -> None:
        """``mounts``: directories placed at their absolute paths last, over what is there
        (/tmp, /dev and /proc included: a working directory in /dev/shm)."""
        self.root = root
        self.procs = procs
        self.pids = pids
        self.tty = Tty()
        tmp = root.children.get("tmp")
        if not isinstance(tmp, Dir) or tmp._host is not None:
            root.add("tmp", Dir(0o1777))  # tmpfs over whatever the root had
        dev = Dir(0o755)
        root.add("dev", dev)
        for name, major, minor in (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("urandom", 1, 9),
                                   ("random", 1, 8), ("tty", 5, 0), ("console", 5, 1)):
            dev.add(name, Device(name, major, minor, 0o666 if name != "console" else 0o600))
        dev.add("shm", Dir(0o1777))  # tmpfs for shm_open and sem_open, as /tmp
        dev.add("stdin", Symlink("/proc/self/fd/0"))
        dev.add("stdout", Symlink("/proc/self/fd/1"))
        dev.add("stderr", Symlink("/proc/self/fd/2"))
        root.add("proc", ProcDir(self))
        for path, d in mounts:
            Vfs.put(root, path, d)

    # ----------------------------------------------------------------- building
    @classmethod
    def empty(cls) -> Dir:
        return Dir(0o755)

    @classmethod
    def from_host(cls, path: Path) -> Dir:
        return Dir(0o755, host=path)

    @classmethod
    def from_tar(cls, path: Path) -> Dir:
        import tarfile  # (only --root TAR needs it)

        root = Dir(0o755)
        with tarfile.open(path) as tf:
            for m in tf.getmembers():
                parts = [x for x in guest_str(m.name).split("/") if x not in ("", ".")]
                if not parts:
                    continue
                d = Vfs.dirs(root, parts[:-1])
                name = parts[-1]
                if m.isdir():
                    if not isinstance(d.children.get(name), Dir):
                        d.add(name, Dir(m.mode))
                elif m.issym():
                    d.add(name, Symlink(guest_str(m.linkname)))
                elif m.isfile():
                    fobj = tf.extractfile(m)
                    d.add(name, File(fobj.read() if fobj is not None else b"", m.mode))
                elif m.islnk():
                    tgt = root
                    node: Inode | None = tgt
                    for part in [x for x in guest_str(m.linkname).split("/") if x not in ("", ".")]:
                        node = node.children.get(part) if isinstance(node, Dir) else None
                    if node is not None:
                        node.nlink += 1
                        d.add(name, node)
        return root

    @staticmethod
    def dirs(root: Dir, parts: list[str]) -> Dir:
        """The directory at ``parts`` below ``root``, made (0755) where missing."""
        d = root
        for part in parts:
            nxt = d.children.get(part)
            if not isinstance(nxt, Dir):
                nxt = Dir(0o755)
                d.add(part, nxt)
            d = nxt
        return d

    @staticmethod
    def put(root: Dir, path: str, node: Inode) -> None:
        """Place ``node`` at absolute ``path``, making directories on the way."""
        parts = [x for x in path.split("/") if x]
        Vfs.dirs(root, parts[:-1]).add(parts[-1], node)

    # ----------------------------------------------------------------- lookup
    def walk(self, base: Dir, path: str, ctx: Any, follow: bool = True,
             depth: int = 0) -> tuple[Inode | None, int, str]:
        """Resolve ``path``, a relative one from directory ``base`` (the cwd or a dirfd's
        directory, held by reference: a renamed cwd still works): (inode, 0, absolute path)
        or (None, errno, path).  ``..`` is a directory's parent, as on Linux."""
        if depth > 40:
            return None, ELOOP, path
        if not path:
            return None, ENOENT, path
        if len(path) >= 4096:
            return None, ENAMETOOLONG, path
        node: Inode = self.root if path[0] == "/" else base
        d: Dir = base
        name = ""
        parts = [x for x in path.split("/") if x]
        trailing = path[-1] == "/"
        last = len(parts) - 1
        for i, part in enumerate(parts):
            if not isinstance(node, Dir):
                return None, ENOTDIR, path
            d = node
            if part == "." or part == "..":
                node, name = (node.parent if part == ".." else node), ""
                continue
            child = node.lookup(part, ctx)
            if child is None:
                return None, ENOENT, path
            if isinstance(child, Symlink) and (i != last or follow or trailing):
                rest = "/".join(parts[i + 1:])
                tgt = child.target
                np = tgt.rstrip("/") + "/" + rest if rest else tgt
                if trailing and not np.endswith("/"):
                    np += "/"
                return self.walk(node, np, ctx, follow, depth + 1)
            node, name = child, part
        if isinstance(node, Dir):
            return node, 0, dir_path(node)
        if trailing:
            return None, ENOTDIR, path
        return node, 0, dir_path(d).rstrip("/") + "/" + name

    def parent(self, base: Dir, path: str, ctx: Any) -> tuple[Dir | None, str, int]:
        """The directory that holds (or would hold) ``path``'s last component, and that name.
        A path whose last component is no name ("/", "." or "..") gives (None, that
        component, 0) when it exists: what that means depends on the call (mkdir: EEXIST,
        rmdir: EBUSY, EINVAL or ENOTEMPTY)."""
        if not path:
            return None, "", ENOENT
        stripped = path.rstrip("/")
        head, slash, name = stripped.rpartition("/")
        if name in ("", ".", ".."):
            node, err, _ = self.walk(base, path, ctx)
            return None, name, err if node is None else 0
        if slash:
            d, err, _ = self.walk(base, head or "/", ctx)
            if d is None:
                return None, name, err
        else:
            d = base
        if not isinstance(d, Dir):
            return None, name, ENOTDIR
        if d.removed:
            return None, name, ENOENT
        return d, name, 0


# --------------------------------------------------------------------------- stat
def stat_bytes(node: Inode, dev: int = 0x16) -> bytes:
    """struct stat (x86-64)."""
    size = node.size()
    a, m, c = node.atime, node.mtime, node.ctime
    return struct.pack("<QQQIIIIQqqq6q3q", dev, node.ino, node.links(), node.mode, node.uid, node.gid, 0, node.rdev,
                       size, 4096, node.blocks(), a // 10**9, a % 10**9, m // 10**9, m % 10**9,
                       c // 10**9, c % 10**9, 0, 0, 0)


def statx_bytes(node: Inode, dev: int = 0x16) -> bytes:
    """struct statx with the basic fields and the birth time (mask 0xfff, as tmpfs)."""
    size = node.size()
    head = struct.pack("<IIQIIIHHQQQQ", 0xFFF, 4096, 0, node.links(), node.uid, node.gid, node.mode, 0, node.ino, size,
                       node.blocks(), 0)
    times = b"".join(struct.pack("<qIi", t // 10**9, t % 10**9, 0)
                     for t in (node.atime, node.btime, node.ctime, node.mtime))
    devs = struct.pack("<IIII", node.rdev >> 8, node.rdev & 0xFF, dev >> 8, dev & 0xFF)
    out = head + times + devs
    return out + bytes(256 - len(out))


DT = {S_IFDIR: 4, S_IFREG: 8, S_IFLNK: 10, S_IFCHR: 2, S_IFIFO: 1, 0o140000: 12}


def dirent(ino: int, off: int, kind: int, name: str) -> bytes:
    b = name.encode("utf-8", "surrogateescape") + b"\0"
    reclen = (19 + len(b) + 7) & ~7
    return struct.pack("<QqHB", ino, off, reclen, DT.get(kind, 0)) + b + bytes(reclen - 19 - len(b))
