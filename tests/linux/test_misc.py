"""/proc files, accounting (times, getrusage, sysinfo), prctl, CPU affinity, the strace
format (every call named, iovecs decoded) and `linux run --trace`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

pytest.importorskip("unicorn")
pytest.importorskip("elftools")

from l4sim.cli import main
from l4sim.linux.run import Result as RunResult
from l4sim.linux.run import run
from l4sim.linux.syscalls import TABLE
from l4sim.linux.sysnames import NAMES

from .conftest import native

Build = Callable[..., Path]
BUSYBOX = Path("/bin/busybox")
needs_busybox = pytest.mark.skipif(not BUSYBOX.is_file(), reason="busybox is not installed (busybox-static)")


def _run(exe: Path, *args: str, strace: bool = False, cores: int = 1) -> tuple[RunResult, bytes, list[str]]:
    out = bytearray()
    lines: list[str] = []
    res = run(exe, list(args), out=lambda fd, b: out.extend(b) if fd == 1 else None,
              strace=lines.append if strace else None, cores=cores)
    return res, bytes(out), lines


def l4sim(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


# --------------------------------------------------------------------------- /proc
PROCSTAT = (b"stat: fields=52 pid_ok=1 comm=procstat state=R ppid_ok=1 pgrp_ok=1 sid_ok=1 threads=1\n"
            b"stat: vsize_pos=1 sigignore=512 sigcatch=2048 exit_signal=17 itreal=0 rsslim=18446744073709551615\n"
            b"status: name=procstat state=R (running) tgid_ok=1 pid_ok=1 threads=1 sigign=0000000000000200 "
            b"sigcgt=0000000000000800\n"
            b"maps: stack=1 file=1\n"
            b"cmdline: procstat|\n"
            b"comm: procstat\n"
            b"child: state=S ppid_ok=1 comm=procstat\n"
            b"ended: state=Z exit_code=768\n"
            b"reaped: status=3 gone=1\n")


def test_proc_self_stat_status_maps(build: Build) -> None:
    """/proc/self/stat has Linux's 52 fields (ids, state, signal masks, exit signal), status its
    lines, maps the stack and a file mapping with offset and path, cmdline and comm the program;
    /proc/PID/stat of a child shows it sleeping in read(), then a zombie with its status."""
    res, out, _ = _run(build("procstat"))
    assert (res.status, out) == (0, PROCSTAT)


def test_proc_stat_same_as_native(build: Build) -> None:
    """The /proc program prints the same natively and under l4sim."""
    exe = build("procstat")
    res = l4sim("linux", "run", "--", str(exe))
    assert (res.stdout_bytes, res.exit_code) == native(exe)


# --------------------------------------------------------------------------- accounting
ACCT = (b"times: now>=0=1 stime>=0=1\n"
        b"rusage: wait4>0=1 self>0=1 children>0=1 maxrss>0=1 minflt>0=1 einval=1\n"
        b"sysinfo: rc=0 ram>0=1 free<=total=1 procs>0=1\n"
        b"affinity: rc=0 count>0=1 nprocs>0=1\n"
        b"prctl: name=[renamed-process] comm=[renamed-process] unknown=EINVAL:1 dumpable=1\n")


def test_accounting_same_as_native(build: Build) -> None:
    """times, getrusage (self, children, wait4's), sysinfo, sched_getaffinity and prctl names
    behave natively and under l4sim alike."""
    exe = build("acct")
    res = l4sim("linux", "run", "--", str(exe))
    assert (res.stdout_bytes, res.exit_code) == (ACCT, 0) == native(exe)


def _figures(out: bytes) -> dict[str, int]:
    pairs = (w.split("=", 1) for w in out.decode().split() if "=" in w)
    return {k: int(v) for k, v in pairs if v.isdigit()}


def test_cpu_times_are_simulated_time(build: Build) -> None:
    """The CPU times are the simulated time the threads ran: the parent's and the child's loop
    take the same, wait4's rusage is the child's, RUSAGE_CHILDREN and times' cutime count it
    once it is reaped, and the clock-tick figures agree with the microsecond ones."""
    res, out, _ = _run(build("acct"), "raw")
    f = _figures(out)
    assert res.status == 0
    assert f["wait4_utime_us"] == f["kids_utime_us"] > 10_000
    assert f["self_utime_us"] >= f["kids_utime_us"]
    assert f["utime"] == f["self_utime_us"] // 10_000 or f["utime"] == f["kids_utime_us"] // 10_000
    assert f["cutime"] == f["kids_utime_us"] // 10_000
    assert f["ticks"] >= f["utime"]
    assert f["minflt"] >= 1 and f["maxrss_kb"] >= 4


def test_system_time_is_the_personalitys_work_for_the_process(build: Build) -> None:
    """System time is the simulated time the personality (and the servers it calls) spent on a
    process's calls: it grows with the number of calls, wait4 and RUSAGE_CHILDREN report the
    child's, and the tick figures agree with the microsecond ones."""
    runs = {}
    for n in (1000, 2000):
        res, out, _ = _run(build("stime"), str(n))
        assert res.status == 0
        runs[n] = _figures(out)
    f1, f2 = runs[1000], runs[2000]
    assert 0 < f1["self_stime_us"] < f2["self_stime_us"]
    assert 1.9 < f2["self_stime_us"] / f1["self_stime_us"] < 2.1  # per call the same
    assert f1["wait4_stime_us"] == f1["kids_stime_us"] > 0
    # parent and child make the same calls (the parent's fork and wait4 on top)
    assert f1["self_stime_us"] >= f1["kids_stime_us"]
    assert f2["stime"] == f2["self_stime_us"] // 10_000 and f2["cstime"] == f2["kids_stime_us"] // 10_000


def test_sysinfo_and_affinity_describe_the_machine(build: Build) -> None:
    """sysinfo reports the machine's RAM (256 MiB) in units of 1 and the live processes (init
    and the program);
    sched_getaffinity and nproc see the machine's cores."""
    for cores in (1, 3):
        res, out, _ = _run(build("acct"), "raw", cores=cores)
        f = _figures(out)
        assert res.status == 0
        assert (f["totalram"], f["unit"], f["procs"]) == (256 << 20, 1, 2)
        assert 0 < f["freeram"] < f["totalram"]
        assert (f["affinity"], f["count"], f["cpu0"], f["nprocs"]) == (0, cores, 1, cores)


# --------------------------------------------------------------------------- strace
def test_every_linux_call_has_a_name() -> None:
    """The name table covers 0-334 and 424-467 and agrees with the implemented table."""
    assert set(range(335)) | set(range(424, 468)) == set(NAMES)
    for nr, sc in TABLE.items():
        assert NAMES[nr][0] == sc.name, nr
    assert NAMES[204] == ("sched_getaffinity", 3) and NAMES[9] == ("mmap", 6)


def test_strace_decodes_iovecs_and_names_unimplemented_calls(build: Build) -> None:
    """writev's iovecs are printed before the call, readv's with the data it read (as strace
    does), a call Linux has but the personality not by name with its arguments in hex, and a
    number Linux does not have as syscall_0x...."""
    res, out, lines = _run(build("iovec"), strace=True)
    assert res.status == 0 and out.startswith(b"w=13 r=13 [hello|, world\n] io_setup=-1/38 500=-1/38")
    assert 'writev(4, [{iov_base="hello, ", iov_len=7}, {iov_base="world\\n", iov_len=6}], 2) = 13' in lines
    assert 'readv(3, [{iov_base="hello", iov_len=5}, {iov_base=", world\\n", iov_len=20}], 2) = 13' in lines
    assert "io_setup(0x1, 0x0) = -1 ENOSYS (Function not implemented)" in lines
    assert "syscall_0x1f4() = -1 ENOSYS (Function not implemented)" in lines
    assert res.stats["unimplemented"] == {206: 1, 500: 1}


def test_strace_shows_what_read_returned(build: Build) -> None:
    """read's buffer is shown after the call, as much as it returned; errors show names."""
    _, _, lines = _run(build("fileio"), strace=True)
    assert any(ln.startswith('read(3, "file\\n", ') and ln.endswith(") = 5") for ln in lines)
    assert any("-1 ENOTEMPTY (Directory not empty)" in ln for ln in lines)


# --------------------------------------------------------------------------- --trace
def test_run_writes_a_perfetto_trace_with_named_system_calls(build: Build, tmp_path: Path) -> None:
    """`linux run --trace FILE --jsonl FILE2` writes the kernel's records; each guest system
    call's exception event carries its name, and the process's thread has its slices."""
    trace, jsonl = tmp_path / "t.json", tmp_path / "t.jsonl"
    res = l4sim("linux", "run", "--trace", str(trace), "--jsonl", str(jsonl), "--", str(build("hello")))
    assert res.exit_code == 0 and res.stdout_bytes == b"hello, world\n"
    events = json.loads(trace.read_text())["traceEvents"]
    calls = [e["args"]["syscall"] for e in events if e.get("args", {}).get("syscall")]
    assert calls[0] == "arch_prctl" and "wait4" in calls  # the program's first call; init's wait (pid 1)
    assert "exit_group" in calls[calls.index("writev"):]  # (init's wait4 may reap it last)
    assert any(e["ph"] == "X" and e["name"] == "hello" for e in events)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["syscall"] for r in records if "syscall" in r] == calls


def test_trace_to_an_unwritable_path_is_one_line(build: Build, tmp_path: Path) -> None:
    """--trace into a directory that does not exist: one line, status 2, before the run."""
    res = l4sim("linux", "run", "--trace", str(tmp_path / "no" / "t.json"), "--", str(build("hello")))
    assert res.exit_code == 2 and res.stdout_bytes == b""
    assert res.stderr.startswith("l4sim: cannot write the trace: ") and len(res.stderr.splitlines()) == 1


# --------------------------------------------------------------------------- busybox
@needs_busybox
def test_busybox_ps_free_nproc() -> None:
    """busybox ps reads /proc/PID/stat and cmdline, free and uptime sysinfo, nproc the affinity."""
    res, out, lines = _run(BUSYBOX, "sh", "-c", "ps -o pid,ppid,stat,comm; free | head -n 2 | tail -n 1 | "
                           "tr -s ' ' | cut -d' ' -f1,2; nproc; id; uptime | cut -c1-22", cores=2)
    assert res.status == 0
    assert out.decode().splitlines() == [
        "PID   PPID  STAT COMMAND", "    1     0 S    init", "    2     1 S    busybox", "    3     2 R    ps",
        "Mem: 262144", "2", "uid=0(root) gid=0(root)", " 00:00:00 up 0 min,  0"]
    assert not any("ENOSYS" in ln and not ln.startswith(("rseq", "[pid")) for ln in lines)
