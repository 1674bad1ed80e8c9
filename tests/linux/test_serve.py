"""The personality's serving loop: what it asks the kernel for per system call."""

from __future__ import annotations

import inspect

from l4sim.linux.syscalls import TABLE, TIMELESS


def test_timeless_calls_read_no_clock() -> None:
    """A call served without reading the clock must not look at it (it would see a stale
    time): none of their functions mention the personality's clock."""
    assert {TABLE[nr].name for nr in TIMELESS} >= {"getpid", "brk", "mmap", "rt_sigprocmask"}
    for nr in TIMELESS:
        src = inspect.getsource(TABLE[nr].fn)
        for word in ("now_ns", "wall(", "clock("):
            assert word not in src, f"{TABLE[nr].name} reads the clock ({word})"
