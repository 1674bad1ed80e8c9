"""Guest CPUs of dead processes are reused with their translated code, and that changes nothing.

A forked child takes the unicorn instance a dead process left in the kernel's
pool (``Kernel.guest_pool_max``), so it runs its parent's code without
translating it again.  These tests check that the run is the same with and
without the pool (every trace event and its time) and that code which
changed in between is never run from an old translation.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import l4sim.kernel.guest as guest
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Tracer
from l4sim.linux.run import run

Build = Callable[..., Path]


def _traced(exe: Path, args: list[str], pool: int, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bytes, list[Any]]:
    monkeypatch.setattr(Kernel, "guest_pool_max", pool)
    out = bytearray()
    tr = Tracer()
    res = run(exe, args, out=lambda fd, b: out.extend(b), tracer=tr)
    return res.status, bytes(out), list(tr)


def test_changed_code_is_never_run_from_an_old_translation(build: Build,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent rewrites an executable page between forks (and a child rewrites its copy):
    every child runs what the page holds now, as natively."""
    exe = build("recode")
    native = subprocess.run([str(exe)], capture_output=True, timeout=60).stdout
    assert native == b"1234 7 4 4\n"
    made: list[int] = []
    real_init = guest.GuestCPU.__init__

    def counting_init(self: guest.GuestCPU, *a: Any) -> None:
        made.append(1)
        real_init(self, *a)

    monkeypatch.setattr(guest.GuestCPU, "__init__", counting_init)
    pooled = _traced(exe, [], 4, monkeypatch)
    assert pooled[:2] == (0, native)
    assert len(made) <= 3  # init's, then six children, each on a pooled instance after the first
    made.clear()
    fresh = _traced(exe, [], 0, monkeypatch)
    assert len(made) == 8 and fresh == pooled


@pytest.mark.parametrize("name", ["pipefork", "cow", "execer"])
def test_same_trace_with_and_without_the_pool(build: Build, name: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    exe = build(name)
    with_pool = _traced(exe, [], 4, monkeypatch)
    assert len(with_pool[2]) > 20 and with_pool == _traced(exe, [], 0, monkeypatch)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_busybox_loop_same_with_and_without_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    bb = Path(shutil.which("busybox") or "")
    args = ["sh", "-c", "for i in 1 2 3 4 5 6; do echo $i | md5sum; done | sort | uniq -c | wc -l"]
    with_pool = _traced(bb, args, 4, monkeypatch)
    assert with_pool[:2] == (0, b"6\n") and with_pool == _traced(bb, args, 0, monkeypatch)


def test_text_pages_come_from_the_page_cache_and_stay_the_files(build: Build) -> None:
    """A process that patches its own text (mprotect + store) gets a private copy of the page:
    when it execs itself, the new program runs the file's code from the shared cached frames."""
    exe = build("textpatch")
    native = subprocess.run([str(exe)], capture_output=True, timeout=60).stdout
    assert native == b"2 1\n"
    out = bytearray()
    res = run(exe, [], out=lambda fd, b: out.extend(b))
    assert (res.status, bytes(out)) == (0, native)
    assert res.stats["text_pages_shared"] > 0  # the exec mapped the image's cached text
    assert res.stats["cow_copies"] >= 1  # the patch wrote a copy, not the cached frame


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_exec_of_the_same_program_shares_its_text() -> None:
    bb = Path(shutil.which("busybox") or "")
    out = bytearray()
    res = run(bb, ["sh", "-c", f"for i in 1 2 3; do {bb} echo $i; done"], out=lambda fd, b: out.extend(b))
    assert (res.status, bytes(out)) == (0, b"1\n2\n3\n")
    assert res.stats["text_pages_shared"] > 100  # three execs of busybox, its text mapped, not copied


def test_the_tlb_grows_for_a_large_working_set_and_changes_nothing_else(build: Build,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A process sweeping 16 MiB again and again misses a small TLB on every page: the CPU
    flushes it a few times so that unicorn grows it; the run -- output and every trace
    record -- is the same as with the growth turned off, and as natively."""
    exe = build("pagesweep")
    native = subprocess.run([str(exe)], capture_output=True, timeout=60).stdout
    before = guest.tlb_grown
    grown = _traced(exe, [], 4, monkeypatch)
    assert grown[:2] == (0, native) and guest.tlb_grown > before
    monkeypatch.setattr(guest, "_TLB_MAX", guest._TLB_START)  # no growth
    before = guest.tlb_grown
    assert _traced(exe, [], 4, monkeypatch) == grown and guest.tlb_grown == before
