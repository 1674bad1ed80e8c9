"""A root file system and working directory a user expects (issue 14, section 4): the small
Linux without ``--root`` (busybox's applets, /etc, init), the host's working directory
imported at its path, ``--write-back``, and init as pid 1 with the program as pid 2.  Each
behaviour is compared with the same binary run natively where Linux can run it."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.linux import rootfs
from l4sim.linux.rootfs import INIT_PATH, RootFsError, busybox_applets, init_program, small_linux
from l4sim.linux.run import LinuxError, Result, run
from l4sim.linux.state import DEFAULT_ENV
from l4sim.linux.vfs import Dir, File, Symlink

Build = Callable[..., Path]
BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox not installed")


def _guest(exe: Path | str, *args: str, **kw: object) -> tuple[bytes, int, bytes, Result]:
    """stdout, status, stderr and the result under l4sim."""
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    res = run(exe, list(args), out=lambda fd, b: out[fd].extend(b), **kw)  # type: ignore[arg-type]
    return bytes(out[1]), res.status, bytes(out[2]), res


def _native(exe: Path | str, *args: str, cwd: Path | None = None, prefix: tuple[str, ...] = ()) -> tuple[bytes, int]:
    """stdout and status on the host, in the guest's environment."""
    env = dict(e.split("=", 1) for e in DEFAULT_ENV)
    r = subprocess.run([*prefix, str(exe), *args], capture_output=True, timeout=120, env=env,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    return r.stdout, r.returncode if r.returncode >= 0 else 128 - r.returncode


def _cli(*args: str, cwd: Path | None = None) -> tuple[int, bytes, bytes]:
    """``l4sim ARGS`` as a user types it, in directory ``cwd``."""
    r = subprocess.run([sys.executable, "-m", "l4sim", *args], capture_output=True, timeout=300,
                       stdin=subprocess.DEVNULL, cwd=cwd)
    return r.returncode, r.stdout, r.stderr


# --------------------------------------------------------------------------- the small Linux
def test_programs_find_the_shell_and_commands(build: Build) -> None:
    """popen("echo hello"), posix_spawnp("echo"), system() (a pipeline too) and
    execl("/bin/sh", ...) work without --root, as natively."""
    if BUSYBOX is None:
        pytest.skip("busybox not installed: the small Linux has no shell")
    exe = build("shellout")
    want = _native(exe)
    got = _guest(exe)
    assert got[:2] == want, f"native {want!r}\nl4sim  {got[:3]!r}"
    assert got[0] == (b"popen: [hello] status=0\nspawned\nposix_spawnp: 0 status=0\nsystem: exit=7\n"
                      b"FROM SYSTEM\nsystem: pipeline=0\nfrom execl\nexecl: status=5\n")


@needs_busybox
def test_every_applet_has_its_link(tmp_path: Path) -> None:
    """/bin/busybox is there with a link to it at every path ``busybox --list-full`` gives."""
    assert BUSYBOX is not None
    listed = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(busybox_applets(Path(BUSYBOX))) == sorted(listed)
    script = ("for p in " + " ".join("/" + p for p in listed if p != "bin/busybox")
              + '; do [ "$(readlink "$p")" = /bin/busybox ] || echo "missing $p"; done; '
              "ls -l /bin/busybox | cut -c1-10; readlink /bin/sh; readlink /usr/bin/sort")
    out, status, err, _ = _guest(BUSYBOX, "sh", "-c", script)
    assert (out, status, err) == (b"-rwxr-xr-x\n/bin/busybox\n/bin/busybox\n", 0, b"")


@needs_busybox
def test_tar_czf_works_out_of_the_box(native_dir: Path, tmp_path: Path) -> None:
    """``tar czf`` runs gzip by name (it used to fail with ENOENT): the archive lists the
    same as natively."""
    assert BUSYBOX is not None
    script = "mkdir -p d/e; echo x > d/f; echo y > d/e/g; tar czf a.tgz d && tar tzf a.tgz | sort; gzip -t a.tgz; echo $?"
    want = _native(BUSYBOX, "sh", "-c", script, cwd=native_dir)
    got = _guest(BUSYBOX, "sh", "-c", script, workdir=tmp_path)
    assert got[:2] == want and got[0] == b"d/\nd/e/\nd/e/g\nd/f\n0\n"


@needs_busybox
def test_etc_has_the_files_a_user_expects() -> None:
    """/etc/passwd and /etc/group name root, /etc/hostname is uname's, /etc/hosts has localhost."""
    script = "id; cat /etc/hostname; hostname; grep -c localhost /etc/hosts; ls /etc; ls -d /root"
    out, status, _, _ = _guest(BUSYBOX or "", "sh", "-c", script)
    assert status == 0
    assert out == b"uid=0(root) gid=0(root)\nl4sim\nl4sim\n2\ngroup\nhostname\nhosts\npasswd\n/root\n"


def test_without_busybox_there_are_no_applets_but_etc_and_init(build: Build) -> None:
    """A host without busybox: the tree has /etc and /init, and no /bin/busybox or links."""
    tree = small_linux(None)
    assert isinstance(tree.children["bin"], Dir) and not tree.children["bin"].children
    etc = tree.children["etc"]
    assert isinstance(etc, Dir) and sorted(etc.children) == ["group", "hostname", "hosts", "passwd"]
    init = tree.children[INIT_PATH.lstrip("/")]
    assert isinstance(init, File) and bytes(init.data) == init_program()


@needs_busybox
def test_the_program_itself_is_in_the_tree() -> None:
    """The program is at its own host path in the small Linux (here beside busybox's
    applets, the same bytes as /bin/busybox), which /proc/self/exe names."""
    assert BUSYBOX is not None
    out, status, _, _ = _guest(BUSYBOX, "sh", "-c", f"cmp {BUSYBOX} /bin/busybox && readlink /proc/$$/exe")
    assert (out, status) == (f"{BUSYBOX}\n".encode(), 0)


# --------------------------------------------------------------------------- init
def test_init_is_a_real_program_that_runs_natively(tmp_path: Path) -> None:
    """/init's bytes are a static x86-64 executable Linux runs: with no child it waits in
    pause() (state S), and a signal ends it."""
    path = tmp_path / "init"
    path.write_bytes(init_program())
    path.chmod(0o755)
    p = subprocess.Popen([str(path)])
    try:
        state = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = Path(f"/proc/{p.pid}/stat").read_text()
            state = text.rsplit(")", 1)[1].split()[0]
            syscall = Path(f"/proc/{p.pid}/syscall").read_text().split()[0] if os.access(
                f"/proc/{p.pid}/syscall", os.R_OK) else "34"
            if state == "S" and syscall == "34":  # pause
                break
            time.sleep(0.01)
        assert state == "S" and p.poll() is None
    finally:
        p.terminate()
        p.wait(timeout=30)
    assert p.returncode == -15


def _unshare() -> tuple[str, ...] | None:
    """The prefix that runs a program as pid 1 of a new pid namespace (None: the host
    refuses)."""
    tool = shutil.which("unshare")
    if tool is None:
        return None
    for prefix in ((tool, "-pf", "--mount-proc"), (tool, "-Urpf", "--mount-proc")):
        try:
            r = subprocess.run([*prefix, "true"], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        if r.returncode == 0:
            return prefix
    return None


PIDINIT = (b"pid=2 ppid=1\nchild: ppid=2\norphan: ppid=1\norphan reaped: yes\n"
           b"kill(1, ...) = 0 0 0 0; init alive: 1, state S\n"
           b"children of init reaped, the program still pid 2\n")


def test_the_program_is_pid_2_and_init_reaps_orphans(build: Build) -> None:
    """The program is pid 2, init's child; its children see 2 as their parent; an orphan
    goes to init (ppid 1), which reaps it; kill(1, SIGKILL/SIGTERM/SIGSTOP/SIGINT) returns 0
    and leaves init waiting; the run ends with the program's status (3) -- as in a pid
    namespace on Linux whose init reaps its children."""
    exe = build("pidinit")
    got = _guest(exe)
    assert got[:3] == (PIDINIT, 3, b"")
    prefix = _unshare()
    if prefix is None:
        pytest.skip("the host makes no pid namespace (unshare): the native half is not run")
    assert _native(exe, "init", str(exe), prefix=prefix) == (PIDINIT, 3)


@needs_busybox
def test_a_guest_cannot_end_the_run_by_signalling_init() -> None:
    """kill -9 1, kill -STOP 1 and kill -9 -1 from the shell: the shell and init live on, the
    run ends with the shell's own status."""
    out, status, _, _ = _guest(BUSYBOX or "", "sh", "-c",
                               "kill -9 1; kill -STOP 1; sleep 5 & kill -9 -1; cut -d' ' -f3 /proc/1/stat; echo $$; exit 4")
    assert (out, status) == (b"S\n2\n", 4)


def test_strace_does_not_show_init(build: Build) -> None:
    """strace shows the program's calls (its own unprefixed, its children's with [pid N]),
    not init's."""
    lines: list[str] = []
    _guest(build("pidinit"), strace=lines.append)
    assert not any(ln.startswith("[pid 1]") for ln in lines)
    assert any(ln.startswith("getpid() = 2") for ln in lines)
    assert any(ln.startswith("[pid 3] ") for ln in lines)


def test_without_init_the_program_is_pid_1(build: Build) -> None:
    """``init=False`` (a personality that wants none): the program is pid 1, as before."""
    out, status, _, _ = _guest(build("misc"), init=False)
    assert status == 0 and b" pid=1 tid=1 " in out


# --------------------------------------------------------------------------- the working directory
def _workdir(tmp: Path, exe: Path) -> Path:
    d = tmp / "work dir"
    (d / "sub").mkdir(parents=True)
    (d / "data.txt").write_text("line one\nline two\n")
    shutil.copy(exe, d / "prog")
    return d


def test_the_working_directory_is_the_host_s(build: Build, tmp_path: Path) -> None:
    """`l4sim linux run -- ./prog data.txt` starts in the host's current directory, reads
    data.txt, lists what the user sees and writes there (in memory: the host's directory is
    left as it was); natively the same."""
    d = _workdir(tmp_path, build("workdir"))
    status, out, err = _cli("linux", "run", "--", "./prog", "data.txt", cwd=d)
    assert (status, err) == (0, b"")
    assert sorted(p.name for p in d.iterdir()) == ["data.txt", "prog", "sub"]  # nothing written
    assert (out, status) == _native("./prog", "data.txt", cwd=d)
    assert out.startswith(f"cwd={d}\nread: line one\nread: line two\n".encode())


def test_workdir_picks_another_directory(build: Build, tmp_path: Path) -> None:
    """--workdir DIR: that directory is imported and the program starts there."""
    d = _workdir(tmp_path, build("workdir"))
    status, out, _ = _cli("linux", "run", "--workdir", str(d), "--", str(d / "prog"), cwd=tmp_path)
    assert (out, status) == _native(d / "prog", cwd=d)


@needs_busybox
def test_ls_lists_what_the_user_sees(tmp_path: Path) -> None:
    """busybox ls in the working directory lists the host's entries, hidden ones with -a."""
    for name in ("b.txt", "a.txt", ".hidden", "dir"):
        (tmp_path / name).mkdir() if name == "dir" else (tmp_path / name).write_text(name)
    status, out, _ = _cli("linux", "run", "--", BUSYBOX or "", "ls", "-a", "-F", cwd=tmp_path)
    assert (out, status) == _native(BUSYBOX or "", "ls", "-a", "-F", cwd=tmp_path)
    assert out == b"./\n../\n.hidden\na.txt\nb.txt\ndir/\n"


@pytest.mark.parametrize("where", ["/", "/proc"])
def test_root_and_proc_are_not_imported(build: Build, where: str) -> None:
    """A working directory of / or in /proc is not imported (the guest has its own): the
    program starts in /."""
    fs = rootfs.build(workdir=where)
    assert fs.cwd == "/" and fs.mounts == [] and fs.workdir is None


@pytest.mark.parametrize(("arg", "line"), [
    ("missing", "no such directory; --workdir takes a host directory"),
    ("file", "not a directory; --workdir takes a host directory")])
def test_a_bad_workdir_is_one_line(tmp_path: Path, arg: str, line: str) -> None:
    """--workdir naming nothing, or a file: one line, status 2."""
    (tmp_path / "file").write_text("x")
    status, out, err = _cli("linux", "run", "--workdir", str(tmp_path / arg), "/bin/true", cwd=tmp_path)
    assert (status, out, err) == (2, b"", f"l4sim: {tmp_path / arg}: {line}\n".encode())
    with pytest.raises(LinuxError):
        run("/bin/true", out=lambda fd, b: None, workdir=tmp_path / arg)
    with pytest.raises(RootFsError):
        rootfs.build(workdir=tmp_path / arg)


def test_a_workdir_in_dev_shm_is_mounted_over_the_guest_s(build: Build, native_dir: Path) -> None:
    """A working directory in /dev/shm (or /tmp) is mounted over the guest's own tmpfs."""
    d = _workdir(native_dir, build("workdir"))
    out, status, _, _ = _guest(d / "prog", workdir=d)
    assert (out, status) == _native(d / "prog", cwd=d)


# --------------------------------------------------------------------------- --write-back
def _tree(d: Path) -> dict[str, tuple[str, str | bytes, int]]:
    """What a directory holds: per relative path its kind, bytes or link target, permissions."""
    out: dict[str, tuple[str, str | bytes, int]] = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(d))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p), 0)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", b"", st.st_mode & 0o7777)
        else:
            out[rel] = ("file", p.read_bytes(), st.st_mode & 0o7777)
    return out


def _populate(d: Path) -> None:
    (d / "gone" / "x").mkdir(parents=True)
    (d / "olddir" / "deep").mkdir(parents=True)
    (d / "kept").mkdir()
    for name, text in (("changed.txt", "c\n"), ("modeonly.txt", "m\n"), ("deleted.txt", "d\n"),
                       ("gone/x/f", "g\n"), ("moved.txt", "mv\n"), ("olddir/f", "od\n"),
                       ("olddir/deep/g", "odg\n"), ("kept/same.txt", "s\n"), ("replaced", "r\n"),
                       ("untouched.txt", "u\n")):
        (d / name).write_text(text)
    (d / "oldlink").symlink_to("changed.txt")


WRITE_BACK_SCRIPT = (
    "echo new > created.txt; mkdir -p newdir/sub; echo deep > newdir/sub/f; chmod 700 newdir/sub; "
    "echo more >> changed.txt; chmod 600 modeonly.txt; rm deleted.txt; rm -r gone; "
    "mv moved.txt renamed.txt; mv olddir newname; echo odx >> newname/deep/g; "
    "ln -s created.txt link; rm oldlink; ln -s renamed.txt oldlink; cat kept/same.txt > /dev/null; "
    "rm replaced; mkdir replaced; echo inside > replaced/f; printf '\\376' > \"$(printf 'b\\376d')\"; "
    "cat untouched.txt")


@needs_busybox
def test_write_back_leaves_what_running_natively_leaves(tmp_path: Path) -> None:
    """--write-back: created, changed and chmod'ed files, new directories and links, removed
    files and directories, renames of files and directories, a file replaced by a directory,
    a name that is not UTF-8 -- the host directory ends as it does when the script runs
    natively; without --write-back it is left as it was."""
    native_d, guest_d, plain_d = tmp_path / "native", tmp_path / "guest", tmp_path / "plain"
    for d in (native_d, guest_d, plain_d):
        d.mkdir()
        _populate(d)
    before = _tree(plain_d)
    want = _native(BUSYBOX or "", "sh", "-c", WRITE_BACK_SCRIPT, cwd=native_d)
    out, status, _, res = _guest(BUSYBOX or "", "sh", "-c", WRITE_BACK_SCRIPT, workdir=guest_d, write_back=True)
    assert (out, status) == want == (b"u\n", 0)
    assert res.write_back is not None and res.write_back.conflicts == []
    assert _tree(guest_d) == _tree(native_d)
    _guest(BUSYBOX or "", "sh", "-c", WRITE_BACK_SCRIPT, workdir=plain_d)
    assert _tree(plain_d) == before


@needs_busybox
def test_write_back_through_the_command_line(tmp_path: Path) -> None:
    """`l4sim linux run --write-back` in the current directory writes a file back; nothing
    is printed when nothing was left out."""
    status, out, err = _cli("linux", "run", "--write-back", "--", BUSYBOX or "", "sh", "-c",
                            "echo made > out.txt; gzip out.txt", cwd=tmp_path)
    assert (status, out, err) == (0, b"", b"")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt.gz"]
    assert subprocess.run(["gzip", "-dc", str(tmp_path / "out.txt.gz")], capture_output=True).stdout == b"made\n"


@needs_busybox
def test_write_back_never_writes_outside_the_working_directory(tmp_path: Path) -> None:
    """Writes to the parent, to /tmp, and through a link to a host path outside the working
    directory stay in memory; the link itself is not replaced."""
    d = tmp_path / "wd"
    d.mkdir()
    outside = tmp_path / "outside"
    (d / "outlink").symlink_to(outside)
    (d / "abslink").symlink_to("/etc/hostname")
    out, status, _, res = _guest(
        BUSYBOX or "", "sh", "-c",
        "echo esc > ../escape.txt; echo t > /tmp/t; echo via > outlink; echo over > abslink; cat /etc/hostname",
        workdir=d, write_back=True)
    assert (out, status) == (b"over\n", 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wd"]
    assert os.readlink(d / "outlink") == str(outside) and os.readlink(d / "abslink") == "/etc/hostname"
    assert res.write_back is not None and res.write_back.written == [] and res.write_back.removed == []


@needs_busybox
def test_write_back_keeps_what_changed_on_the_host_meanwhile(tmp_path: Path) -> None:
    """A file the guest changed (or removed) that the host changed during the run keeps the
    host's version, with one line each; the guest's other changes are written."""
    d = tmp_path / "wd"
    d.mkdir()
    (d / "both.txt").write_text("original\n")
    (d / "removed.txt").write_text("original\n")
    (d / "appeared.txt").write_text("")
    (d / "appeared.txt").unlink()

    def meanwhile() -> bytes:  # the host changes files while the guest waits for input
        (d / "both.txt").write_text("host's version\n")
        (d / "removed.txt").write_text("host's version\n")
        (d / "appeared.txt").write_text("host made it\n")
        return b""

    out, status, _, res = _guest(
        BUSYBOX or "", "sh", "-c",
        "cat both.txt; echo guest > both.txt; rm removed.txt; touch appeared.txt; read x; echo ok > mine.txt",
        workdir=d, write_back=True, stdin=meanwhile)
    assert (out, status) == (b"original\n", 0)
    assert res.write_back is not None
    assert res.write_back.conflicts == [
        f"{d}/both.txt: changed on the host during the run; the host's version was kept",
        f"{d}/appeared.txt: changed on the host during the run; the host's version was kept",
        f"{d}/removed.txt: changed on the host during the run; not removed"]
    assert (d / "both.txt").read_text() == "host's version\n"
    assert (d / "removed.txt").read_text() == "host's version\n"
    assert (d / "appeared.txt").read_text() == "host made it\n"
    assert (d / "mine.txt").read_text() == "ok\n"  # what the host did not touch is written


def test_write_back_writes_only_what_the_guest_touched(build: Build, tmp_path: Path) -> None:
    """A directory the guest never looked into is not read by write-back, and a file it only
    read is not rewritten (its inode stays)."""
    d = _workdir(tmp_path, build("workdir"))
    (d / "sub" / "deep.txt").write_text("deep\n")
    ino = (d / "data.txt").stat().st_ino
    _, status, _, res = _guest(d / "prog", workdir=d, write_back=True)
    assert status == 0 and res.write_back is not None
    assert res.write_back.written == [os.fsencode(d / "written.txt")] and res.write_back.removed == []
    assert (d / "data.txt").stat().st_ino == ino
    assert (d / "written.txt").read_text() == "written by the program\n"


def test_symlink_host_nodes_are_recorded(tmp_path: Path) -> None:
    """Links imported from the host remember where they came from (write-back leaves them)."""
    (tmp_path / "l").symlink_to("x")
    fs = rootfs.build(workdir=tmp_path)
    node = fs.mounts[0][1].children["l"]
    assert isinstance(node, Symlink) and node.host == tmp_path / "l" and node.target == "x"


def test_write_back_has_what_a_shared_mapping_stored(build: Build, tmp_path: Path) -> None:
    """A store through a MAP_SHARED mapping of a file in the working directory, never
    unmapped nor synced, is written back, as it is in the file natively."""
    exe = build("mapwrite")
    native_d, guest_d = tmp_path / "native", tmp_path / "guest"
    for d in (native_d, guest_d):
        d.mkdir()
        (d / "mapped.txt").write_text("original text\n")
    assert _native(exe, cwd=native_d) == (b"", 0)
    out, status, _, res = _guest(exe, workdir=guest_d, write_back=True)
    assert (out, status) == (b"", 0) and res.write_back is not None
    assert (guest_d / "mapped.txt").read_bytes() == (native_d / "mapped.txt").read_bytes() == b"STOREDal text\n"


def test_a_path_is_resolved_without_listing_the_directories_on_the_way(build: Build, tmp_path: Path) -> None:
    """Opening ./data.txt looks at that name only: a host directory of many files is not
    listed (nor each file stat'ed) unless the guest lists it; a file changed through such a
    lookup is still written back."""
    d = tmp_path / "big"
    d.mkdir()
    for i in range(300):
        (d / f"f{i}").write_text("x")
    (d / "data.txt").write_text("data\n")
    fs = rootfs.build(workdir=d)
    mount = fs.mounts[0][1]
    node = mount.lookup("data.txt", None)
    assert isinstance(node, File) and not mount.loaded and list(mount.known) == ["data.txt"]
    assert mount.lookup("missing", None) is None and not mount.loaded
    assert len(mount.children) == 301 and mount.children["data.txt"] is node  # listed: the same node
    if BUSYBOX is None:
        return
    out, status, _, res = _guest(BUSYBOX, "sh", "-c", "cat data.txt; echo more >> data.txt", workdir=d, write_back=True)
    assert (out, status) == (b"data\n", 0) and res.write_back is not None
    assert res.write_back.written == [os.fsencode(d / "data.txt")]
    assert (d / "data.txt").read_text() == "data\nmore\n"


def test_a_deep_path_lists_none_of_the_directories_above_it(tmp_path: Path) -> None:
    """Resolving a/b/c/f in a host tree (and the path it gives back) looks at those names
    only: none of a, b, c is listed."""
    from l4sim.linux.vfs import Vfs

    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "f").write_text("x")
    for d in ("a", "a/b", "a/b/c"):
        (tmp_path / d / "other").write_text("y")
    fs = rootfs.build(workdir=tmp_path)
    vfs = Vfs(fs.root, mounts=fs.mounts)
    node, err, path = vfs.walk(vfs.root, f"{tmp_path}/a/b/c/f", None)
    assert isinstance(node, File) and err == 0 and path == f"{tmp_path}/a/b/c/f"
    d = fs.mounts[0][1]
    for name in ("a", "b", "c"):
        assert not d.loaded
        nxt = d.known[name]
        assert isinstance(nxt, Dir)
        d = nxt
    assert not d.loaded and list(d.known) == ["f"]


# --------------------------------------------------------------------------- the program's name
@needs_busybox
def test_a_program_named_without_a_slash_is_found_in_the_guests_path(tmp_path: Path) -> None:
    """``l4sim linux run -- cat data.txt`` runs the small Linux's cat (busybox's applet), as a
    shell finds it; the process is named after the link (comm ``sh``), /proc/self/exe is the
    file the link names, as on Linux."""
    (tmp_path / "data.txt").write_text("hello data\n")
    out, status, _, _ = _guest("cat", "data.txt", workdir=tmp_path)
    assert (out, status) == (b"hello data\n", 0)
    out, status, _, _ = _guest("sh", "-c", "cat /proc/$$/comm; readlink /proc/$$/exe", workdir=tmp_path)
    assert (out, status) == (b"sh\n/bin/busybox\n", 0)
    code, out, err = _cli("linux", "run", "--", "cat", "data.txt", cwd=tmp_path)
    assert (code, out, err) == (0, b"hello data\n", b"")


def test_a_program_found_nowhere_is_one_line_naming_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(LinuxError, match=r"^no-such-prog-4711: no such program in the guest's "
                                         r"/usr/local/bin:/usr/bin:/bin or on the host's PATH; give its path "
                                         r"\(\./no-such-prog-4711 for one here\)$"):
        _guest("no-such-prog-4711", workdir=tmp_path)
    with pytest.raises(LinuxError, match=r"^the program's name is empty; give a path or a name in the guest's PATH$"):
        _guest("", workdir=tmp_path)
    code, out, err = _cli("linux", "run", "--", "no-such-prog-4711", cwd=tmp_path)
    assert code == 2 and out == b"" and err.decode().count("\n") == 1 and "give its path" in err.decode()


def test_a_file_here_named_without_a_slash_still_runs(tmp_path: Path, build: Build) -> None:
    """Found in neither PATH, a file of the current directory is the program (as before)."""
    exe = build("hello")
    local = tmp_path / "my-hello-4711"
    shutil.copy(exe, local)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        out, status, _, _ = _guest("my-hello-4711", workdir=tmp_path)
    finally:
        os.chdir(cwd)
    assert status == 0 and out
