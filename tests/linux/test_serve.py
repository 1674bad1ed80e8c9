"""The personality's serving loop: what it asks the kernel for per system call."""

from __future__ import annotations

import inspect
import shutil

import pytest

from l4sim.kernel.trace import Tracer
from l4sim.linux.run import run
from l4sim.linux.syscalls import TABLE, TIMELESS
from l4sim.runtime.protocols import CONSOLE


def test_timeless_calls_read_no_clock() -> None:
    """A call served without reading the clock must not look at it (it would see a stale
    time): none of their functions mention the personality's clock."""
    assert {TABLE[nr].name for nr in TIMELESS} >= {"getpid", "brk", "mmap", "rt_sigprocmask"}
    for nr in TIMELESS:
        src = inspect.getsource(TABLE[nr].fn)
        for word in ("now_ns", "wall(", "clock("):
            assert word not in src, f"{TABLE[nr].name} reads the clock ({word})"


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_console_io_goes_through_the_console_server() -> None:
    """The guest's stdin, stdout and stderr are IPC between the personality and the console
    server, in the order written."""
    out: list[tuple[int, bytes]] = []
    tr = Tracer()
    res = run(shutil.which("busybox") or "", ["sh", "-c", "read x; echo got $x; echo oops >&2"],
              out=lambda fd, b: out.append((fd, b)), tracer=tr, stdin=iter([b"abc\n", b""]).__next__)
    assert res.status == 0 and out == [(1, b"got abc\n"), (2, b"oops\n")]
    assert sum(1 for r in tr.by_kind("ipc") if r[4].get("proto") == CONSOLE) >= 3
