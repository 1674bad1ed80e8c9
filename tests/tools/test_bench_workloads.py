"""``l4sim bench workloads``: busybox work natively and under ``l4sim linux run``, ratios, the
geometric mean and linux run's start-up time; the figures' shape, not their values (those
depend on the machine)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("unicorn")

from l4sim.cli import main
from l4sim.tools import bench_workloads as bw

needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox not installed")


def test_the_exit_program_exits_at_once_natively(tmp_path: Path) -> None:
    """The start-up probe's program is a static executable that exits with 0."""
    exe = tmp_path / "exit0"
    exe.write_bytes(bw.exit_program())
    exe.chmod(0o755)
    assert subprocess.run([str(exe)], timeout=30).returncode == 0


@needs_busybox
def test_one_workload_both_ways_with_figures_that_add_up() -> None:
    """A workload runs natively and under l4sim with the same output; the ratio is l4sim over
    native, the geometric mean of one ratio is that ratio, the start-up is positive; every
    step is announced."""
    seen: list[tuple[int, int, str]] = []
    r = bw.bench_workloads(["find"], repeat=1, startup_repeat=1,
                           progress=lambda done, total, what: seen.append((done, total, what)))
    (row,) = r["workloads"]
    assert row["name"] == "find" and row["native_s"] > 0 and row["l4sim_s"] > 0
    assert row["ratio"] == pytest.approx(row["l4sim_s"] / row["native_s"], rel=0.02)
    assert r["geomean_ratio"] == pytest.approx(row["ratio"], rel=0.02)
    assert 0 < r["startup_s"] < 60
    assert [(d, t) for d, t, _ in seen] == [(i, 4) for i in range(4)]
    assert [w for _, _, w in seen] == ["data", "find native", "find l4sim", "start-up"]


@needs_busybox
def test_the_json_line_has_the_issue_s_shape(monkeypatch: Any) -> None:
    """--json: the last line is {"workloads": [{name, native_s, l4sim_s, ratio}],
    "geomean_ratio", "startup_s"}; --only takes names, repeated or with commas."""
    real = bw.bench_workloads
    monkeypatch.setattr(bw, "bench_workloads", lambda names, progress=None: real(
        names, repeat=1, startup_repeat=1, progress=progress))
    res = CliRunner().invoke(main, ["bench", "workloads", "--json", "--only", "arith,find"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    assert set(out) == {"workloads", "geomean_ratio", "startup_s"}
    assert [w["name"] for w in out["workloads"]] == ["find", "arith"]
    assert all(set(w) == {"name", "native_s", "l4sim_s", "ratio"} for w in out["workloads"])
    geo = math.sqrt(out["workloads"][0]["ratio"] * out["workloads"][1]["ratio"])
    assert out["geomean_ratio"] == pytest.approx(geo, rel=0.03)


def test_an_unknown_workload_is_one_line() -> None:
    """--only with a name that is none: one line naming the workloads, status 2."""
    res = CliRunner().invoke(main, ["bench", "workloads", "--only", "sorting"])
    assert res.exit_code == 2
    assert res.stderr == ("l4sim: --only sorting: no such workload; choose from "
                          "forkexec, sort, sed, awk, sha256, find, tar, arith\n")


@pytest.mark.parametrize("as_json", [False, True])
def test_without_busybox_the_benchmark_is_skipped_with_one_line(monkeypatch: Any, as_json: bool) -> None:
    """No busybox on PATH: one line says so (a JSON object with --json), status 0."""
    monkeypatch.setattr(bw.shutil, "which", lambda name: None)
    res = CliRunner().invoke(main, ["bench", "workloads", *(["--json"] if as_json else [])])
    assert res.exit_code == 0 and len(res.output.splitlines()) == 1
    if as_json:
        assert json.loads(res.output) == {"skipped": "busybox is not on PATH (install it, e.g. Debian's busybox-static)"}
    else:
        assert res.output == "bench workloads: skipped: busybox is not on PATH (install it, e.g. Debian's busybox-static)\n"


@needs_busybox
def test_the_first_instruction_probe_is_within_the_command(tmp_path: Path) -> None:
    """`linux run --first-instruction-file F` writes the host's CLOCK_MONOTONIC at the
    program's first instruction: after the command started, before it ended."""
    import time

    exe = tmp_path / "exit0"
    exe.write_bytes(bw.exit_program())
    exe.chmod(0o755)
    probe = tmp_path / "t"
    t0 = time.monotonic_ns()
    r = subprocess.run([sys.executable, "-m", "l4sim", "linux", "run", "--first-instruction-file", str(probe),
                        "--", str(exe)], capture_output=True, timeout=120)
    t1 = time.monotonic_ns()
    assert r.returncode == 0 and t0 < int(probe.read_text()) < t1


@needs_busybox
def test_progress_on_a_terminal() -> None:
    """With stderr on a terminal the benchmark draws its progress bar there, to the end;
    stdout has the table."""
    from test_bench import _bench  # tests/tools is on sys.path (no package)

    status, out, err = _bench(["workloads", "--only", "find"], tty=True)
    assert status == 0, err
    assert "bench workloads  [" in err and "done" in err and "8/8" in err
    assert out.splitlines()[1].startswith("find ") and "geometric mean of the ratios" in out
