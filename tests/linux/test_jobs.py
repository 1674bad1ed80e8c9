"""Job control as far as a shell needs it: process groups and sessions, the console's
foreground group, background jobs with wait, and SIGINT typed at the console."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.cli import main
from l4sim.linux.run import Result, run

from .conftest import native

Build = Callable[..., Path]
BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox is not installed (busybox-static)")


def _run(exe: Path, *args: str, stdin: list[bytes] | None = None, ctrl_c_on_read: bool = False,
         strace: bool = False) -> tuple[Result, bytes, list[str]]:
    """Run under l4sim; with ``ctrl_c_on_read`` every read of the host's stdin comes with a
    Ctrl-C, as if typed while the program waited for input."""
    out = bytearray()
    lines: list[str] = []
    chunks = list(stdin or [])
    interrupts: list[int] = []

    def host_stdin() -> bytes:
        if ctrl_c_on_read:
            interrupts.append(2)
        return chunks.pop(0) if chunks else b""

    res = run(exe, list(args), out=lambda fd, b: out.extend(b) if fd == 1 else None, stdin=host_stdin,
              interrupts=interrupts, strace=lines.append if strace else None)
    return res, bytes(out), lines


JOBS = (b"setpgid child: ok group=child:1\n"
        b"setpgid into a missing group: EPERM\n"
        b"setpgid of a stranger: ESRCH\n"
        b"setpgid negative: EINVAL\n"
        b"join the child's group: ok same=1\n"
        b"setpgid after exec: EACCES\n"
        b"setsid in a child: ok=1\n"
        b"kill group: ok\n"
        b"group members: 15 15\n")


def test_groups_and_sessions(build: Build) -> None:
    """setpgid moves a child into its own or an existing group (EPERM for a missing one, ESRCH
    for a stranger, EINVAL for a negative one, EACCES once the child has exec'd), setsid makes
    a session once, kill(-pgid) reaches every member."""
    res, out, _ = _run(build("jobs"))
    assert (res.status, out) == (0, JOBS)


def test_groups_and_sessions_same_as_native(build: Build) -> None:
    """The group and session program prints the same natively and under l4sim."""
    exe = build("jobs")
    res = CliRunner().invoke(main, ["linux", "run", "--", str(exe)])
    assert (res.stdout_bytes, res.exit_code) == native(exe)


def test_console_foreground_group(build: Build) -> None:
    """/dev/tty is the first session's controlling terminal: tcgetpgrp names its foreground
    group, tcsetpgrp moves it to a group of the session (ESRCH for none); a process in
    another session has no controlling terminal (ENOTTY)."""
    res, out, _ = _run(build("jobs"), "tty")
    assert res.status == 0
    assert out == (b"tty: fg=me:1\ntcsetpgrp child group: ok fg=child:1\ntcsetpgrp no group: ESRCH\n"
                   b"other session: ENOTTY=1 fg=me:1\n")


@needs_busybox
@pytest.mark.parametrize("script", [
    "sleep 0.2 & sleep 0.1 & wait; echo all",
    "true & wait $!; echo $?; false & wait $!; echo $?; (exit 7) & p=$!; sleep 0.1; wait $p; echo $?",
    "sleep 5 & kill -INT $!; kill $!; wait $!; echo st=$?",
    "(sleep 0.1; echo late) & echo early; wait; echo after",
    "for i in 1 2 3; do (sleep 0.$i; echo job$i) & done; wait; echo done",
    "sh -c 'kill -INT $$'; echo st=$?; trap 'echo trapped' INT; kill -INT $$; echo after",
    "sleep 1 & p=$!; wait -n 2>/dev/null; echo w=$?; kill $p 2>/dev/null; wait",
])
def test_background_jobs_same_as_native(script: str) -> None:
    """`cmd &` and `wait` (one job, all jobs, exit statuses, a background job ignoring SIGINT
    as a non-interactive shell makes it, SIGINT to the shell itself) print what they print natively."""
    res = CliRunner().invoke(main, ["linux", "run", "--", str(BUSYBOX), "sh", "-c", script])
    assert (res.stdout_bytes, res.exit_code) == native(BUSYBOX, "sh", "-c", script)


@needs_busybox
def test_job_control_with_set_m() -> None:
    """With `set -m` the shell puts each job in its own group (setpgid) and makes it the
    console's foreground group while it runs; `jobs` lists a running background job."""
    res, out, lines = _run(BUSYBOX, "sh", "-c", "set -m; sleep 0.1 & jobs; cut -d' ' -f5,8 /proc/self/stat; "
                           "echo shell=$(cut -d' ' -f5 /proc/$$/stat); wait", strace=True)
    assert res.status == 0
    listing, groups, shell = out.decode().splitlines()
    assert listing.split() == ["[1]+", "Running", "sleep", "0.1"]
    pgrp, tpgid = groups.split()
    assert pgrp == tpgid != "2" and shell == "shell=2"  # cut ran in the foreground, in its group
    assert any(ln.startswith("ioctl(10, 0x5410, ") and ln.endswith(") = 0") for ln in lines)  # TIOCSPGRP


@needs_busybox
def test_ctrl_c_kills_the_foreground_group() -> None:
    """Ctrl-C at the console while the shell reads: SIGINT to the foreground group, whose
    default action ends the shell (status 130)."""
    res, out, lines = _run(BUSYBOX, "sh", "-c", "read x; echo not reached", stdin=[b"line\n"],
                           ctrl_c_on_read=True, strace=True)
    assert (res.status, out) == (130, b"")
    assert "--- SIGINT {si_signo=SIGINT, si_code=SI_KERNEL} ---" in lines


@needs_busybox
def test_ctrl_c_runs_a_trap() -> None:
    """A shell that traps INT runs its trap and carries on with what it read."""
    res, out, _ = _run(BUSYBOX, "sh", "-c", "trap 'echo got INT' INT; read x; echo x=$x", stdin=[b"hello\n"],
                       ctrl_c_on_read=True)
    assert (res.status, out) == (0, b"got INT\nx=hello\n")


TTIN = (b"background read: stopped=1 sig=21\n"
        b"child read: 1\n"
        b"then: exited=1 status=7\n"
        b"ignored SIGTTIN: read=-1 EIO\n"
        b"orphaned SIGTSTP: still running\n"
        b"orphaned stopped job: hup cont\n")


def _native_on_a_pty(exe: Path, typed: bytes) -> tuple[bytes, int]:
    """Run ``exe`` natively in a new session with a pty as stdin (it takes the pty as its
    controlling terminal) and ``typed`` waiting in it."""
    import os

    master, slave = os.openpty()
    try:
        os.write(master, typed)
        r = subprocess.run([str(exe)], stdin=slave, capture_output=True, timeout=60, start_new_session=True)
    finally:
        os.close(slave)
        os.close(master)
    return r.stdout, r.returncode


def test_background_reads_and_orphaned_groups(build: Build) -> None:
    """A background process reading the terminal is stopped by SIGTTIN and reads once it is
    the foreground group and continued; with SIGTTIN ignored the read is EIO; SIGTSTP does
    not stop a process of an orphaned group; a stopped job orphaned by its parent's exit
    gets SIGHUP and SIGCONT -- as natively on a pty."""
    exe = build("ttin")
    try:
        native = _native_on_a_pty(exe, b"x\n")
    except OSError as e:
        pytest.skip(f"no pty here: {e}")
    assert native == (TTIN, 0)
    res, out, _ = _run(exe, stdin=[b"x\n"])
    assert (res.status, out) == (0, TTIN)
