"""System calls answered inside unicorn's hook give exactly the run that stopping for each does.

The kernel delivers a guest's ``syscall`` from inside the CPU's hook and
resumes it there when it can (``Kernel.guest_inhook``); these tests run the
same programs both ways and compare the whole kernel trace, timestamps
included, and the programs' output.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.kernel import Kernel
from l4sim.kernel.trace import Tracer
from l4sim.linux.run import run

Build = Callable[..., Path]


def _traced(exe: Path, args: list[str], inhook: bool, monkeypatch: pytest.MonkeyPatch,
            cores: int = 1) -> tuple[int, bytes, list[Any]]:
    monkeypatch.setattr(Kernel, "guest_inhook", inhook)
    out = bytearray()
    tr = Tracer()
    res = run(exe, args, out=lambda fd, b: out.extend(b), tracer=tr, cores=cores)
    return res.status, bytes(out), list(tr)


@pytest.mark.parametrize(("name", "args"), [
    ("hello", []), ("cow", []), ("pipefork", []), ("sighandler", []), ("misc", []), ("malloc", [])])
def test_same_trace_inside_the_hook_and_stopping(build: Build, name: str, args: list[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event (and its time) is the same whether calls are answered in the hook or not."""
    exe = build(name)
    fast = _traced(exe, args, True, monkeypatch)
    slow = _traced(exe, args, False, monkeypatch)
    assert fast[0] == slow[0] and fast[1] == slow[1]
    assert len(fast[2]) > 20 and fast[2] == slow[2]


def test_hook_keeps_several_cores_identical(build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    """With four cores (events from other cores bound each slice) both ways agree too."""
    exe = build("pipefork")
    assert _traced(exe, [], True, monkeypatch, cores=4) == _traced(exe, [], False, monkeypatch, cores=4)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_busybox_pipeline_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell pipeline (fork, exec, pipes, blocking reads, wait4) runs the same both ways."""
    bb = Path(shutil.which("busybox") or "")
    args = ["sh", "-c", "for i in 1 2 3; do echo $i; done | sort -r | head -n 2"]
    fast = _traced(bb, args, True, monkeypatch)
    slow = _traced(bb, args, False, monkeypatch)
    assert fast[1] == b"3\n2\n" and fast == slow


def test_a_kernel_error_inside_the_hook_is_not_lost(build: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python error raised while the kernel works inside the hook surfaces from the run
    (ctypes would otherwise print and drop it)."""

    def boom(*_: Any) -> None:
        raise RuntimeError("kernel bug")

    monkeypatch.setattr(Kernel, "_fast_call", boom)
    with pytest.raises(RuntimeError, match="kernel bug"):
        run(build("hello"), [], out=lambda fd, b: None)
