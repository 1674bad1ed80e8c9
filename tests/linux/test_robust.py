"""Guest input never harms the system, and the CPU state Linux gives a process (issue 14,
sections 1, 2 and 5): privileged instructions fault as on Linux, x87/SSE state per thread,
file names that are any bytes, a call that fails inside the personality ends only its
process, memory and process limits that bound the host, address-space calls that cost what
they change, and the errors of ``l4sim linux run``.  Each guest program is compared with the
same binary run natively where that is possible."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.linux.run import Result, run
from l4sim.linux.state import DEFAULT_ENV

Build = Callable[..., Path]


def _guest(exe: Path | str, *args: str | bytes, cores: int = 1, strace: list[str] | None = None,
           **kw: object) -> tuple[bytes, int, bytes, Result]:
    """stdout, status, stderr and the result under l4sim."""
    out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
    res = run(exe, list(args), out=lambda fd, b: out[fd].extend(b), cores=cores,
              strace=strace.append if strace is not None else None, **kw)  # type: ignore[arg-type]
    return bytes(out[1]), res.status, bytes(out[2]), res


def _native(exe: Path | str, *args: str | bytes) -> tuple[bytes, int]:
    """stdout and status (128+N when killed by N) on the host, in the guest's environment."""
    env = dict(e.split("=", 1) for e in DEFAULT_ENV)
    r = subprocess.run([str(exe), *args], capture_output=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    return r.stdout, r.returncode if r.returncode >= 0 else 128 - r.returncode


def _same(exe: Path, *args: str | bytes, cores: int = 1) -> bytes:
    want = _native(exe, *args)
    got = _guest(exe, *args, cores=cores)
    assert got[:2] == want, f"native {want!r}\nl4sim  {got[:3]!r}"
    return got[0]


# --------------------------------------------------------------------------- privileged instructions
def test_privileged_instructions_raise_sigsegv_as_on_linux(build: Build) -> None:
    """cli, sti, hlt, in, out, ins, rdmsr, wrmsr, moves to and from control and debug
    registers, lgdt, lidt, ltr, invlpg and wbinvd each raise SIGSEGV with si_code SI_KERNEL,
    si_addr 0 and the saved RIP on the instruction -- and a handler survives all of them
    (and three divide errors in a row); rdtsc and rdtscp work."""
    out = _same(build("privileged"))
    lines = out.decode().splitlines()
    assert len([ln for ln in lines if "sig 11 code 128 addr 0 rip at the instruction" in ln]) == 17
    assert lines[-3:-2] == ["idiv by 0      sig 8 code 1 addr 0x" + lines[-3].split("0x")[1]]
    assert lines[-2:] == ["rdtsc went back 0 times", "0 instructions did not fault"]


def test_a_privileged_instruction_without_a_handler_kills_with_sigsegv(build: Build) -> None:
    """Without a handler the process dies of the SIGSEGV (139), as natively; strace shows
    Linux's si_code."""
    exe = build("privileged")
    lines: list[str] = []
    _, status, _, _ = _guest(exe, "cli", strace=lines)
    assert status == _native(exe, "cli")[1] == 139
    assert "--- SIGSEGV {si_signo=SIGSEGV, si_code=SI_KERNEL, si_addr=NULL} ---" in lines


def test_rdtsc_counts_simulated_nanoseconds(build: Build) -> None:
    """The time stamp counter is the core's simulated time in ns: across a 10 ms nanosleep it
    moves by 10 ms and a little, the same in every run."""
    out1, status, _, _ = _guest(build("privileged"), "tsc")
    out2 = _guest(build("privileged"), "tsc")[0]
    assert status == 0 and out1 == out2
    start, delta = map(int, out1.split())
    assert 10_000_000 <= delta < 10_100_000 and start < 1_000_000


# --------------------------------------------------------------------------- x87/SSE state
@pytest.mark.parametrize("cores", (1, 4))
def test_x87_and_sse_state_as_linux_gives_it(build: Build, cores: int) -> None:
    """At exec the control word is 0x37f and MXCSR 0x1f80 (long double printf, strtold and %g
    right); fork and pthread_create copy the state, threads keep their own across switches;
    a signal frame holds it at uc_mcontext.fpregs (64-byte aligned, above the ucontext,
    FP_XSTATE_MAGIC1), the handler starts with the initial state, and rt_sigreturn restores
    the interrupted one with the handler's changes."""
    out = _same(build("fpu", "-pthread"), cores=cores)
    assert out.startswith(b"at exec: control word 0x37f mxcsr 0x1f80\n1/3 = 0.33333333333333333334\n")
    assert b"thread 2: started with control word 0x27f mxcsr 0x3f80; 0 changes seen" in out
    assert b"after sigreturn: control word 0x7f mxcsr 0x5f80 xmm0 0x1122334455667788 42" in out


# --------------------------------------------------------------------------- fault containment
def test_an_internal_error_kills_only_the_process_it_served(build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python exception while the personality serves a call (injected: uname raises) kills
    that process with SIGKILL and prints one line on stderr; the parent runs on, sees the
    child killed by signal 9 and ends normally."""
    from l4sim.linux import syscalls

    async def broken(k: object, p: object, c: object) -> int:
        raise RuntimeError("injected failure")

    monkeypatch.setitem(syscalls.TABLE, 63, syscalls.Syscall("uname", broken, "p"))
    out, status, err, _ = _guest(build("contain"))
    assert (out, status) == (b"child killed by signal 9\nparent goes on\n", 0)
    assert err == b"l4sim: internal error in uname (pid 3): RuntimeError: injected failure\n"


def test_an_internal_error_in_the_first_process_ends_the_run_with_137(build: Build,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same failure in the program itself: status 137 (SIGKILL), the one line, no hang."""
    from l4sim.linux import syscalls

    async def broken(k: object, p: object, c: object) -> int:
        raise ValueError("bad state\nsecond line")

    monkeypatch.setitem(syscalls.TABLE, 20, syscalls.Syscall("writev", broken, "dvd"))
    out, status, err, _ = _guest(build("hello"))
    assert (out, status) == (b"", 137)
    assert err == b"l4sim: internal error in writev (pid 2): ValueError: bad state second line\n"


def test_out_of_memory_names_the_process_killed(build: Build) -> None:
    """No frame left: the OOM killer ends the process with the most pages (SIGKILL, 137) and
    says so on stderr."""
    out, status, err, _ = _guest(build("hog"), ram=16 << 20)
    assert (out, status) == (b"mapped\n", 137)
    assert err == b"l4sim: out of memory: killed process 2 (hog)\n"


# --------------------------------------------------------------------------- names are bytes
BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox is not installed (busybox-static)")


def test_file_names_argv_and_envp_are_bytes(build: Build, tmp_path: Path) -> None:
    """Names with any byte but '/' and NUL: made, listed (getdents64), stat'ed, renamed,
    unlinked, as symbolic links' targets (readlink), in /proc/self/fd/N, /proc/self/cwd and
    getcwd of a directory whose name is not UTF-8; argv and envp across execve -- as natively."""
    exe = build("names")
    want = _native(exe, str(tmp_path / "w"))
    got = _guest(exe, "/tmp/w")
    assert got[:2] == want and want[1] == 0
    assert b"  entry a\\xfeb\n" in want[0] and b"getcwd ends in /dir\\xfe\narg x\\xfey\n" in want[0]


def test_strace_escapes_names_as_strace_does(build: Build) -> None:
    """--strace shows a name's bytes as strace does: octal escapes, three digits before a
    digit."""
    lines: list[str] = []
    _guest(build("names"), "/tmp/w", strace=lines)
    assert 'open("a\\376b", 0x80c1, 0644) = 3' in lines
    assert 'open("\\1\\177\\200", 0x80c1, 0644) = 3' in lines
    assert 'rename("a\\376b", "re\\375named") = 0' in lines
    assert any(ln.startswith('execve("/proc/self/exe", [') and '"x\\376y", "caf\\303\\251", "\\377"], ' in ln
               and ln.endswith(" /* 3 vars */) = 0") for ln in lines)


def test_arguments_from_the_command_line_are_bytes(build: Build) -> None:
    """run()'s arguments may be bytes that are not UTF-8; the program gets them unchanged."""
    out, status, _, _ = _guest(build("names"), "--args", b"x\xfey", b"\xff")
    assert (out, status) == (b"arg x\\xfey\narg \\xff\n", 0)


@needs_busybox
@pytest.mark.parametrize("kind", ("dir", "tar"))
def test_a_root_whose_names_are_not_utf8_is_listed(tmp_path: Path, kind: str) -> None:
    """A --root directory or tar holding the name a\\376b: ls lists it (it used to stop the
    whole run), cat reads it, as busybox does natively."""
    import tarfile

    tree = tmp_path / "tree"
    (tree / "d").mkdir(parents=True)
    (tree / "d" / "plain").write_bytes(b"plain\n")
    odd = Path(tree / "d").joinpath(__import__("os").fsdecode(b"a\xfeb"))
    odd.write_bytes(b"odd\n")
    root: Path = tree
    if kind == "tar":
        root = tmp_path / "tree.tar"
        with tarfile.open(root, "w") as tf:
            tf.add(tree / "d", arcname="d")
    script = "cd /d; ls | wc -l; for f in *; do echo \"$f\"; done | od -c; cat a$(printf '\\376')b"
    want = subprocess.run([str(BUSYBOX), "sh", "-c", script.replace("/d", str(tree / "d"))],
                          capture_output=True, timeout=60).stdout
    out, status, err, _ = _guest(BUSYBOX, "sh", "-c", script, root=root)
    assert (out, status, err) == (want, 0, b"")
    assert out.startswith(b"2\n") and b"a 376   b" in out and out.endswith(b"odd\n")


# --------------------------------------------------------------------------- errors of linux run
def _cli(*args: str | bytes) -> tuple[int, bytes, bytes]:
    """``l4sim ARGS`` as a user types it (a separate process: arguments may be any bytes)."""
    import sys

    r = subprocess.run([sys.executable, "-m", "l4sim", *args], capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize(("args", "line"), [
    (("--bogus", "/bin/true"), b"l4sim: no such option '--bogus'; see l4sim linux run --help\n"),
    (("--cores", b"\xfe", "/bin/true"),
     b"l4sim: invalid value for '--cores': '\\xfe' is not a valid integer; see l4sim linux run --help\n"),
    ((), b"l4sim: missing argument 'PROGRAM'; see l4sim linux run --help\n"),
    (("--root", "/dev/null", "/bin/true"), b"l4sim: /dev/null: not a directory or a tar file; --root takes one of them\n"),
    ((b"/no/such/\xfeprogram",), b"l4sim: /no/such/\\xfeprogram: no such file\n"),
])
def test_run_usage_errors_are_one_line(args: tuple[str | bytes, ...], line: bytes) -> None:
    """An unknown option, a bad or non-UTF-8 value, a missing program, a --root of another
    kind, a program path that is not UTF-8: one line, status 2."""
    status, out, err = _cli("linux", "run", *args)
    assert (status, out, err) == (2, b"", line)


def test_a_root_that_is_not_a_tar_is_one_line(tmp_path: Path) -> None:
    """--root naming a file that is no tar (it used to print five lines of tarfile's
    internals): one line, status 2."""
    bad = tmp_path / "file.json"
    bad.write_text('{"not": "a tar"}\n')
    status, out, err = _cli("linux", "run", "--root", str(bad), "/bin/true")
    assert (status, out, err) == (2, b"", f"l4sim: {bad}: not a directory or a tar file; --root takes one of "
                                           "them\n".encode())


@needs_busybox
def test_a_failed_execve_shows_its_path_in_strace() -> None:
    """strace's line of a failed execve names the path and the arguments."""
    lines: list[str] = []
    _, status, _, _ = _guest(BUSYBOX, "sh", "-c", "exec /bin/no-such-program -d", strace=lines)
    assert status == 127
    assert any(ln.startswith('execve("/bin/no-such-program", ["/bin/no-such-program", "-d"], 0x')
               and ln.endswith(" vars */) = -1 ENOENT (No such file or directory)") for ln in lines), lines


# --------------------------------------------------------------------------- processes and host memory
@pytest.mark.parametrize(("mode", "limit", "want"), [
    ("fork", "10", b"fork: made 8, then EAGAIN\nreaped 8; fork afterwards works\n"),
    ("zombie", "10", b"zombie: made 8, then EAGAIN\nreaped 8; fork afterwards works\n"),
    ("thread", "10", b"thread: made 8, then EAGAIN\n"),
    ("fork", None, b"fork: made 62, then EAGAIN\nreaped 62; fork afterwards works\n"),
    ("fork", "1000", b"fork: made 126, then EAGAIN\nreaped 126; fork afterwards works\n"),
])
def test_fork_and_clone_fail_with_eagain_at_the_limits(build: Build, mode: str, limit: str | None,
                                                       want: bytes) -> None:
    """RLIMIT_NPROC (setrlimit, ``ulimit -u``) bounds the tasks -- processes (init and the
    program among them), zombies not yet reaped and threads -- and so does the machine's threads-max (16 MiB: 128; RLIMIT_NPROC
    starts at half of it, 64): fork and pthread_create fail with EAGAIN there, and work again
    once the children are reaped."""
    out, status, _, _ = _guest(build("forkmax", "-pthread"), mode, *([limit] if limit else []), ram=16 << 20)
    assert (out, status) == (want, 0)


@needs_busybox
def test_ulimit_u_is_rlimit_nproc() -> None:
    """busybox's ``ulimit -u`` shows the default (half of threads-max: 1024 on the default
    machine) and sets it; a shell past it cannot fork."""
    out, status, err, _ = _guest(BUSYBOX, "sh", "-c", "ulimit -u; ulimit -u 3; ulimit -u; sleep 1 & sleep 1 & sleep 1 & wait")
    assert out == b"1024\n3\n" and status == 2
    assert err == b"sh: can't fork: Resource temporarily unavailable\n"


@needs_busybox
def test_a_fork_bomb_is_bounded() -> None:
    """``bomb(){ bomb|bomb& };bomb``: the forks fail with EAGAIN once RLIMIT_NPROC (32 tasks
    on an 8 MiB machine) is reached, the run ends when the shell does, and the unicorn
    instances -- what costs the host memory -- stay within Kernel.guest_cpus_max (one more while
    the running one is busy), and the pool, however many tasks there are."""
    from l4sim.kernel import guest
    from l4sim.kernel.kernel import Kernel

    guest.peak_instances = guest.live_instances
    before = guest.live_instances
    out, status, err, res = _guest(BUSYBOX, "sh", "-c", "bomb(){ bomb|bomb& };bomb; sleep 0.005; echo done",
                                   ram=8 << 20)
    assert (out, status) == (b"done\n", 0)
    assert b"can't fork: Resource temporarily unavailable" in err
    assert res.stats["tasks_peak"] == 32
    assert guest.peak_instances - before <= Kernel.guest_cpus_max + 1 + Kernel.guest_pool_max < 32


def test_state_survives_unicorn_instances_passed_between_tasks(build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    """With one unicorn instance for all tasks, every switch between processes hands it over
    (registers, x87/SSE state and all): the x87/SSE program still prints what it prints
    natively."""
    from l4sim.kernel import guest
    from l4sim.kernel.kernel import Kernel

    monkeypatch.setattr(Kernel, "guest_cpus_max", 1)
    monkeypatch.setattr(Kernel, "guest_pool_max", 0)
    exe = build("fpu", "-pthread")
    guest.peak_instances = before = guest.live_instances
    _same(exe)
    # parent and child took turns on one instance (a second one only while the parent's
    # instance was busy in its own fork)
    assert guest.peak_instances <= before + 2


# --------------------------------------------------------------------------- address space
def test_filling_the_address_space_costs_what_it_changes(build: Build) -> None:
    """All of user space mapped PROT_NONE in a few huge mmaps, then sbrk and mmap fail with
    ENOMEM at once -- within a second of simulated work (the calls cost what they change,
    not the size they name) -- and a page can be mapped again after a munmap; as natively."""
    exe = build("addrspace")
    want = _native(exe, "fill")
    out, status, _, res = _guest(exe, "fill")
    assert (out, status) == want and b"sbrk fails: ENOMEM, after a few pages at most\nmmap of a page: ENOMEM\n" in out
    assert res.sim_ns < 1_000_000_000


@pytest.mark.parametrize("mode", ("as", "data"))
def test_rlimit_as_and_data_bound_mmap_and_brk(build: Build, mode: str) -> None:
    """RLIMIT_AS bounds the address space (PROT_NONE included, a MAP_FIXED over a mapping not
    growing it, brk and mremap too); RLIMIT_DATA bounds private writable memory (mmap and
    brk), not read-only, PROT_NONE or shared mappings: ENOMEM as natively."""
    out = _same(build("addrspace"), mode)
    assert b"ENOMEM" in out and b"ok" in out


def test_the_old_getdents_lists_in_getdents64s_order(build: Build) -> None:
    """getdents and getdents64 list a directory in the same order (names as bytes), names
    that are not UTF-8 included: b"\xfe" after U+FF01's bytes, where an order of the names as
    text (surrogate escapes) put it first."""
    out, status, _, _ = _guest(build("dirorder"), "/tmp")
    assert status == 0
    lines = out.decode().split("\n")
    old = [ln[4:] for ln in lines if ln.startswith("old ")]
    new = [ln[4:] for ln in lines if ln.startswith("new ")]
    assert len(new) == 8 and old == new
    names = [bytes.fromhex(h) for h in new[2:]]
    assert names == sorted(names) and b"\xfe" in names
