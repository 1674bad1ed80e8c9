"""The root file system a Linux instance sees, its working directory, and writing changes back.

:func:`build` makes the tree the personality serves (a :class:`RootFs`): what a user of a
small Linux expects to find, and the host directory they work in.

- **The small Linux** (without a root of the user's own): ``/bin/busybox`` -- the host's
  busybox, read when first needed -- with a symbolic link to it for every applet at the path
  ``busybox --list-full`` gives (``/bin/sh``, ``/bin/echo``, ``/usr/bin/gzip``, ...; the
  list is asked of the host's busybox once per binary and kept in l4sim's cache directory);
  ``/etc/passwd``, ``/etc/group``, ``/etc/hosts``, ``/etc/hostname``; ``/root``; and
  ``/init``, the first process (below).  Without busybox on the host there are no applets.
  ``--root DIR|TAR`` replaces all of it with the user's tree (read-only, lazily).
- **The working directory**: a host directory (``l4sim linux run`` takes the current one,
  ``--workdir`` another) is imported read-only at its own absolute path -- a directory is
  read when first looked into, a file when its bytes are first needed -- and is where the
  program starts, so ``./prog data.txt`` reads the user's ``data.txt``.  It is mounted over
  whatever the tree has at that path, ``/tmp`` and ``/dev/shm`` included.  ``/``, ``/dev``,
  ``/proc`` and anything in ``/proc`` or ``/sys`` are not imported (the guest has its own):
  the program then starts in ``/``.
- **init**: the personality starts :data:`INIT` as pid 1 before the program (pid 2, its
  child).  It is a 36-byte x86-64 program written out below: ``wait4(-1, NULL, 0, NULL)``
  in a loop -- it reaps the orphans it inherits, as a container's init does -- and
  ``pause()`` when it has no child.  It has no signal handlers, and a signal to init
  without one is dropped (Linux's ``SIGNAL_UNKILLABLE``), so a guest cannot end the run by
  signalling it.
- **Writing back** (:meth:`RootFs.write_back`, ``--write-back``): what the guest changed
  stays in memory unless asked; asked, when the run ends the working directory on the host
  is made what the guest left, for what the guest changed and nothing else, and never
  outside it:

  * a regular file the guest created or whose bytes or permissions it changed is written
    (into a new file beside it, renamed over the old one: a link on the host is replaced,
    never followed); a directory it made is made; a symbolic link it made is made;
  * a file, link or directory that the run found there and that the guest removed (unlink,
    rmdir, or renamed elsewhere) is removed from the host -- a directory once it is empty;
  * nothing is written over, or removed, that changed on the host since the run read it
    (the host's lstat: kind, inode, size, mtime, mode): the host's version stays and one
    line says so (:attr:`WriteBack.conflicts`);
  * FIFOs, sockets and devices are not written; ownership and times are the host's.

  A directory the guest never looked into is never visited, so the cost is what the guest
  touched.
"""

from __future__ import annotations

import contextlib
import os
import stat as _st
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from l4sim.linux.elf import Image, parse
from l4sim.linux.vfs import Dir, File, Inode, Symlink, Vfs, digest, guest_str, signature

#: the host name of the guest (uname's nodename, /etc/hostname)
HOSTNAME = "l4sim"
#: where init lives in the small Linux (an initramfs's ``/init``)
INIT_PATH = "/init"

# --------------------------------------------------------------------------- init
#: init's code, loaded at INIT_BASE + 120 (after the ELF and program headers):
#:   loop: mov eax, 61          ; wait4
#:         mov rdi, -1          ; any child
#:         xor esi, esi         ; no status wanted
#:         xor edx, edx         ; options 0: wait
#:         xor r10d, r10d       ; no rusage
#:         syscall
#:         cmp rax, -10         ; -ECHILD: no child at all
#:         jne loop
#:         mov eax, 34          ; pause
#:         syscall
#:         jmp loop
_INIT_CODE = bytes.fromhex(
    "b83d000000" "48c7c7ffffffff" "31f6" "31d2" "4531d2" "0f05" "4883f8f6" "75e5"
    "b822000000" "0f05" "ebdc")
INIT_BASE = 0x40_0000


def init_program() -> bytes:
    """The bytes of :data:`INIT_PATH`: a static x86-64 ELF executable with one segment (the
    headers and :data:`_INIT_CODE`, read and execute) -- it runs natively too."""
    ehsize, phentsize = 64, 56
    entry = INIT_BASE + ehsize + phentsize
    size = ehsize + phentsize + len(_INIT_CODE)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, version 1, SysV
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, entry, ehsize, 0, 0, ehsize, phentsize, 1,
                               0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, INIT_BASE, INIT_BASE, size, size, 0x1000)  # PT_LOAD, R+X
    return ehdr + phdr + _INIT_CODE


_init_image: Image | None = None


def init_image() -> Image:
    """:func:`init_program` parsed (once per process)."""
    global _init_image
    if _init_image is None:
        _init_image = parse(init_program(), INIT_PATH)
    return _init_image


# --------------------------------------------------------------------------- the small Linux
ETC = {
    "passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "group": b"root:x:0:\nnogroup:x:65534:\n",
    "hosts": f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n".encode(),
    "hostname": f"{HOSTNAME}\n".encode(),
}


def find_busybox() -> Path | None:
    """The host's busybox (the first on PATH), or None."""
    for d in os.get_exec_path():
        p = Path(d or ".") / "busybox"
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def _cache_dir() -> Path:
    from l4sim.kernel.guest import _cache_dir as cache

    return cache()


def busybox_applets(busybox: Path) -> list[str]:
    """The paths ``busybox --list-full`` gives (relative: ``bin/sh``, ``usr/bin/[``), asked of
    the host's busybox once per binary (its device, inode, size and mtime) and kept in the
    cache directory, one a line; [] when it cannot say."""
    try:
        s = busybox.resolve().stat()
    except OSError:
        return []
    key = f"{s.st_dev:x}-{s.st_ino:x}-{s.st_size:x}-{s.st_mtime_ns:x}"
    cache = _cache_dir() / f"busybox_applets_{key}.txt"
    try:
        text = cache.read_bytes()
        if text.endswith(b"\n"):  # written whole (see below)
            return os.fsdecode(text).splitlines()
    except OSError:
        pass
    import subprocess  # (once per busybox binary)

    try:
        r = subprocess.run([str(busybox), "--list-full"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    if r.returncode != 0:
        return []
    paths = [ln for ln in os.fsdecode(r.stdout).splitlines() if ln and not ln.startswith("/")]
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(b"".join(os.fsencode(p) + b"\n" for p in paths))
        os.replace(tmp, cache)
    except OSError:
        pass  # asked again next time
    return paths


def small_linux(busybox: Path | None) -> Dir:
    """The tree of the small Linux (see the module docstring); ``busybox``: the host's binary,
    None for none.  The applets' directories are filled when first looked into."""
    root = Dir(0o755)
    etc = Vfs.dirs(root, ["etc"])
    for name, text in ETC.items():
        etc.add(name, File(text, 0o644))
    Vfs.dirs(root, ["root"]).mode = _st.S_IFDIR | 0o700
    root.add(INIT_PATH.lstrip("/"), File(init_program(), 0o755))
    size = -1
    if busybox is not None:
        with contextlib.suppress(OSError):
            size = busybox.stat().st_size
    if size < 0:
        for path in ("bin", "sbin", "usr/bin", "usr/sbin"):
            Vfs.dirs(root, path.split("/"))
        return root
    host = busybox.resolve() if busybox is not None else None
    links: dict[tuple[str, ...], list[str]] = {}  # directory -> applet names in it
    for rel in busybox_applets(busybox) if busybox is not None else []:
        names = [x for x in guest_str(rel).split("/") if x]
        if names and names != ["bin", "busybox"]:
            links.setdefault(tuple(names[:-1]), []).append(names[-1])
    for usual in ("bin", "sbin", "usr/bin", "usr/sbin"):
        links.setdefault(tuple(usual.split("/")), [])

    def filler(names: list[str], busybox_file: bool) -> Callable[[Dir], None]:
        def fill(d: Dir) -> None:
            if busybox_file:
                d.add("busybox", File(mode=0o755, host=host, host_size=size))
            for name in names:
                if name not in d.children:
                    d.add(name, Symlink("/bin/busybox"))
        return fill

    for where, applets in sorted(links.items()):
        if not where:  # in / itself (linuxrc)
            for name in applets:
                root.add(name, Symlink("/bin/busybox"))
            continue
        parent = Vfs.dirs(root, list(where[:-1]))
        parent.add(where[-1], Dir(0o755, fill=filler(applets, where == ("bin",))))
    return root


# --------------------------------------------------------------------------- building
class RootFsError(Exception):
    """The tree cannot be built as asked; ``str()`` is one line."""


#: host directories never imported as the working directory (the guest has its own)
_NOT_IMPORTED = ("/", "/dev", "/proc")
_NOT_BELOW = ("/proc/", "/sys/")


@dataclass
class RootFs:
    """What :func:`build` made: give ``root``, ``mounts`` and ``cwd`` to the personality's
    :class:`~l4sim.linux.state.Config` (``init`` too, for an init as pid 1)."""

    #: the tree (the personality's Vfs adds /tmp, /dev and /proc)
    root: Dir
    #: the guest path where the program starts
    cwd: str = "/"
    #: (guest path, directory) placed over the tree last: the working directory
    mounts: list[tuple[str, Dir]] = field(default_factory=list)
    #: the host directory imported as the working directory (None: none)
    workdir: Path | None = None
    #: the image the personality starts as pid 1
    init: Image | None = None
    #: the imported working directory's device and inode (write-back checks it is the same)
    host_id: tuple[int, int] = (0, 0)

    def write_back(self) -> WriteBack:
        """Make the host's working directory what the guest left (see the module docstring);
        what was done and what was not."""
        wb = WriteBack()
        if self.workdir is None or not self.mounts:
            return wb
        top = self.mounts[0][1]
        host = os.fsencode(self.workdir)
        try:
            st = os.lstat(host)
        except OSError:
            wb.conflicts.append(f"{shown(host)}: gone from the host; nothing written back")
            return wb
        if not _st.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino) != self.host_id:
            wb.conflicts.append(f"{shown(host)}: replaced on the host during the run; nothing written back")
            return wb
        _write(top, host, wb)
        _remove_gone(top, host, wb)
        return wb


@dataclass
class WriteBack:
    """What :meth:`RootFs.write_back` did: host paths written and removed, and one line for
    each change it left out (the host changed it meanwhile, or it cannot be written)."""

    written: list[bytes] = field(default_factory=list)
    removed: list[bytes] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def build(root: str | Path | Dir | None = None, *, workdir: str | Path | None = None,
          busybox: Path | bool | None = True, init: bool = True) -> RootFs:
    """The tree of a Linux instance: ``root`` a host directory or tar file (read-only, lazily),
    a tree already made, or None for the small Linux (with ``busybox``: True finds it on
    PATH, a path, or None/False for none); ``workdir`` a host directory imported at its own
    path as the working directory (None: none, the program starts in ``/``); ``init``: start
    :data:`INIT_PATH` as pid 1.  :class:`RootFsError` with one line when a path is not what
    it must be."""
    if isinstance(root, Dir):
        tree = root
    elif root is None:
        bb = find_busybox() if busybox is True else busybox or None
        tree = small_linux(bb)
    else:
        tree = host_root(root)
    fs = RootFs(tree, init=init_image() if init else None)
    if workdir is None:
        return fs
    w = Path(workdir)
    try:
        if not w.is_dir():
            raise RootFsError(f"{shown(workdir)}: {'not a directory' if w.exists() else 'no such directory'}; "
                              "--workdir takes a host directory")
        absolute = Path(os.path.abspath(w))
        st = absolute.stat()
    except OSError as e:
        raise RootFsError(f"{shown(workdir)}: cannot read ({e.strerror})") from None
    path = guest_str(str(absolute))
    if path in _NOT_IMPORTED or any(path.startswith(p) for p in _NOT_BELOW) or path == "/sys":
        return fs
    mount = Dir(st.st_mode, host=absolute, track=True)
    fs.host_id = (st.st_dev, st.st_ino)
    fs.mounts.append((path, mount))
    fs.cwd = path
    fs.workdir = absolute
    return fs


def host_root(root: str | Path) -> Dir:
    """``--root``: a host directory (read lazily) or a tar file; :class:`RootFsError` otherwise."""
    import tarfile

    r = Path(root)
    if r.is_dir():
        return Vfs.from_host(r)
    if r.is_file():
        try:
            return Vfs.from_tar(r)
        except (tarfile.TarError, EOFError, UnicodeError, ValueError):
            raise RootFsError(f"{shown(root)}: not a directory or a tar file; --root takes one of them") from None
        except OSError as e:
            raise RootFsError(f"{shown(root)}: cannot read ({e.strerror})") from None
    if r.exists() or r.is_symlink():
        raise RootFsError(f"{shown(root)}: not a directory or a tar file; --root takes one of them")
    raise RootFsError(f"{shown(root)}: no such directory or tar file")


def shown(text: str | bytes | Path) -> str:
    """A path as a message shows it: bytes that are not UTF-8 as ``\\xNN``."""
    raw = text if isinstance(text, bytes) else os.fsencode(str(text))
    return raw.decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- writing back
def _name(name: str) -> bytes:
    return name.encode("utf-8", "surrogateescape")


def _lstat(path: bytes) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _now(path: bytes) -> tuple[int, ...] | None:
    """The host entry's signature now (None: nothing there)."""
    s = _lstat(path)
    return signature(s) if s is not None else None


def _is_original(d: Dir, name: str, node: Inode) -> bool:
    """``node`` is the one the run imported at ``d``/``name`` (not made, nor moved there)."""
    got = d.seen.get(name)
    return got is not None and got[1] is node


def _changed(f: File) -> bool:
    """The guest changed imported file ``f``'s bytes or permissions."""
    if f.mode & 0o7777 != f.host_mode & 0o7777:
        return True
    if not f.loaded:
        return False
    return digest(f.data) != f.host_digest


def _write(d: Dir, host: bytes, wb: WriteBack) -> None:
    """Write what the guest made or changed in ``d`` (at host directory ``host``, which is the
    one imported, or was made by this write-back), then in its subdirectories."""
    for name, node in list(d.known.items()):  # (never looked into: nothing in it changed)
        path = host + b"/" + _name(name)
        original = _is_original(d, name, node)
        before = d.seen[name][0] if name in d.seen else None
        if isinstance(node, Dir):
            if original:
                now = _lstat(path)
                if now is None or not _st.S_ISDIR(now.st_mode) or signature(now) != before:
                    if node.known:
                        wb.conflicts.append(f"{shown(path)}: replaced on the host during the run; "
                                            "what the run changed in it was not written back")
                    continue
                _write(node, path, wb)
                continue
            if not _clear(d, name, path, wb):
                continue
            try:
                _mkdir(path, node.mode)
            except OSError as e:
                wb.conflicts.append(f"{shown(path)}: cannot make the directory ({e.strerror})")
                continue
            wb.written.append(path)
            _write_new(node, path, wb)
        elif isinstance(node, File):
            if original and not _changed(node):
                continue
            if _now(path) != before:
                wb.conflicts.append(f"{shown(path)}: changed on the host during the run; "
                                    "the host's version was kept")
                continue
            if _clear(d, name, path, wb, keep_file=True):
                _put_file(node, host, path, wb)
        elif isinstance(node, Symlink):
            if original:
                continue
            if not _clear(d, name, path, wb):
                continue
            try:
                os.symlink(_name(node.target), path)
                wb.written.append(path)
            except OSError as e:
                wb.conflicts.append(f"{shown(path)}: cannot make the link ({e.strerror})")


def _write_new(d: Dir, host: bytes, wb: WriteBack) -> None:
    """Write all of directory ``d``, made (or moved) by the guest, into the new host directory
    ``host``."""
    for name, node in list(d.children.items()):
        path = host + b"/" + _name(name)
        try:
            if isinstance(node, Dir):
                _mkdir(path, node.mode)
                wb.written.append(path)
                _write_new(node, path, wb)
            elif isinstance(node, File):
                _put_file(node, host, path, wb)
            elif isinstance(node, Symlink):
                os.symlink(_name(node.target), path)
                wb.written.append(path)
        except OSError as e:
            wb.conflicts.append(f"{shown(path)}: cannot write ({e.strerror})")


def _mkdir(path: bytes, mode: int) -> None:
    """A directory with the guest's permissions (not the host's umask's)."""
    os.mkdir(path, 0o700)
    os.chmod(path, mode & 0o7777)


def _put_file(f: File, host: bytes, path: bytes, wb: WriteBack) -> None:
    """Write ``f``'s bytes and permissions to ``path``: a new file in directory ``host``,
    renamed over whatever is at ``path`` (a link there is replaced, not followed)."""
    try:
        data = f.data
    except OSError as e:
        wb.conflicts.append(f"{shown(path)}: cannot read what the run had ({e.strerror})")
        return
    import tempfile  # (write-back only)

    fd, tmp = tempfile.mkstemp(prefix=b".l4sim-", dir=host)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, f.mode & 0o7777)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        wb.conflicts.append(f"{shown(path)}: cannot write ({e.strerror})")
        return
    wb.written.append(path)


def _clear(d: Dir, name: str, path: bytes, wb: WriteBack, keep_file: bool = False) -> bool:
    """Make room at ``path`` for something the guest made there: what the run found there
    (the guest removed or replaced it) goes, when the host has not changed it; anything that
    appeared on the host during the run stays (False, with a line).  ``keep_file``: a file
    there may stay (the new bytes are renamed over it)."""
    got = d.seen.get(name)
    now = _lstat(path)
    if now is None:
        return True
    if got is None or signature(now) != got[0]:
        wb.conflicts.append(f"{shown(path)}: changed on the host during the run; the host's version was kept")
        return False
    if keep_file and not _st.S_ISDIR(now.st_mode):
        return True
    return _remove(got[1], path, wb, got[0])


def _remove_gone(d: Dir, host: bytes, wb: WriteBack) -> None:
    """Remove from the host what the run found in ``d`` and the guest removed (or moved away),
    then the same in its subdirectories that are still the imported ones."""
    for name, (_, node) in list(d.seen.items()):
        path = host + b"/" + _name(name)
        cur = d.known.get(name)
        if cur is node:
            if isinstance(node, Dir):
                now = _lstat(path)
                if now is not None and _st.S_ISDIR(now.st_mode) and signature(now) == d.seen[name][0]:
                    _remove_gone(node, path, wb)
            continue
        if cur is None:
            _remove(node, path, wb, d.seen[name][0])


def _remove(node: Inode, path: bytes, wb: WriteBack, sig: tuple[int, ...]) -> bool:
    """Remove ``path``, imported as ``node``, and what the run found in it: each entry only
    when the host has not changed it since (a line for each kept); a directory once empty.
    True when it is gone."""
    now = _lstat(path)
    if now is None:
        return True
    if signature(now) != sig:
        wb.conflicts.append(f"{shown(path)}: changed on the host during the run; not removed")
        return False
    try:
        if not isinstance(node, Dir):
            os.unlink(path)
            wb.removed.append(path)
            return True
        if not node.loaded:
            wb.conflicts.append(f"{shown(path)}: the run never listed it; not removed")
            return False
        ok = True
        for name, (s, child) in node.seen.items():
            ok = _remove(child, path + b"/" + _name(name), wb, s) and ok
        if not ok:
            return False
        os.rmdir(path)
        wb.removed.append(path)
        return True
    except OSError as e:
        wb.conflicts.append(f"{shown(path)}: cannot remove ({e.strerror})")
        return False
