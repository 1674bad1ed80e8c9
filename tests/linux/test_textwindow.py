"""Program pages in flexpages: the text windows, fault-around and the hot set (linux/state.py).

A program in the page cache has its read-only pages mapped once more in the personality's
space (``TextWindow``), so that a start maps them with a few flexpages, a fault maps the
cached pages around it (``FAULT_AROUND``), and fork maps the pages the program's forked
children use at once (``HOT_AFTER``).  These tests check that fewer page faults come of
it, that the output is the same, that runs stay identical, and that a program leaving the
page cache while it runs goes on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import l4sim.linux.state as state
from l4sim.kernel.trace import Tracer
from l4sim.linux.run import run

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
needs_busybox = pytest.mark.skipif(not Path(BUSYBOX).is_file(), reason="busybox is not installed (busybox-static)")

LOOP = "for i in 1 2 3 4 5 6 7 8; do echo $i | cat; done | wc -l"


def _run(args: list[str], workdir: Path | None = None) -> tuple[int, bytes, list[object]]:
    out = bytearray()
    tr = Tracer()
    res = run(BUSYBOX, args, out=lambda fd, b: out.extend(b), tracer=tr, workdir=workdir)
    return res.status, bytes(out), list(tr)


def _faults(trace: list[object]) -> int:
    return sum(1 for r in trace if r[2] == "pagefault")  # type: ignore[index]


@needs_busybox
def test_fault_around_and_the_hot_set_save_page_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell that forks 16 children: the same output with neither mechanism, with
    fault-around only and with both; each takes fewer page faults than the one before."""
    monkeypatch.setattr(state, "FAULT_AROUND", 0)
    monkeypatch.setattr(state, "HOT_AFTER", 1 << 30)
    plain = _run(["sh", "-c", LOOP])
    monkeypatch.setattr(state, "FAULT_AROUND", 2)
    around = _run(["sh", "-c", LOOP])
    monkeypatch.setattr(state, "HOT_AFTER", 2)
    both = _run(["sh", "-c", LOOP])
    assert plain[:2] == around[:2] == both[:2] == (0, b"8\n")
    assert _faults(both[2]) < 0.8 * _faults(around[2]) < 0.8 * 0.8 * _faults(plain[2])


@needs_busybox
def test_runs_stay_identical() -> None:
    """Same program, same trace: every record and its time."""
    assert _run(["sh", "-c", LOOP]) == _run(["sh", "-c", LOOP])


@needs_busybox
def test_a_program_that_leaves_the_page_cache_while_it_runs_goes_on(tmp_path: Path) -> None:
    """One more program than the cache keeps (copies of busybox that differ in bytes after
    the end, so each is a program of its own) started from the shell: the shell's own program
    and the first copies leave the page cache -- their windows and the hot set are unmapped,
    from the running shell too -- and everything goes on faulting single pages."""
    data = Path(BUSYBOX).read_bytes()
    for i in range(state.TEXT_CACHE + 1):
        p = tmp_path / f"d{i}" / "busybox"  # named so, it takes the applet from its first argument
        p.parent.mkdir()
        p.write_bytes(data + bytes([i]) * (i + 1))
        p.chmod(0o755)
    script = "; ".join(f"./d{i}/busybox echo {i} | ./d{i}/busybox cat" for i in range(state.TEXT_CACHE + 1))
    script += "; ./d0/busybox echo again; echo done"
    status, out, _ = _run(["sh", "-c", script], workdir=tmp_path)
    assert (status, out) == (0, b"0\n1\n2\n3\n4\nagain\ndone\n")
