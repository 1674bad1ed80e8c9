"""Tests for ``l4sim bench linux``: it runs and reports at tiny sizes (no speed assertions)."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.tools import bench_linux as bl

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")

KEYS = ("syscalls_per_s", "bare_hook_syscalls_per_s", "syscall_ratio", "instructions_per_s",
        "slowdown_vs_native")


@needs_gcc
def test_bench_linux_reports_required_keys_positive() -> None:
    """bench_linux at tiny sizes returns every required figure as a positive number, announcing its
    five steps in order as they start (what ``l4sim bench linux`` draws on a terminal)."""
    seen: list[tuple[int, int, str]] = []
    r = bl.bench_linux(calls=50, loops=1000, repeat=1, bare_factor=1, native_factor=1,
                       progress=lambda done, total, step: seen.append((done, total, step)))
    for key in KEYS:
        assert isinstance(r[key], int | float) and r[key] > 0, key
    assert [(d, t) for d, t, _ in seen] == [(i, 5) for i in range(5)]
    assert seen[1][2] == "getpid under l4sim" and seen[4][2] == "compute loop natively"


@needs_gcc
def test_bare_harness_runs_getpid_program_to_exit_zero() -> None:
    """The bare unicorn harness runs the getpid program to its exit(0)."""
    _, status = bl.bare_seconds(bl.build("getpid"), 10)
    assert status == 0


@needs_gcc
def test_loop_program_result_matches_formula_under_l4sim() -> None:
    """The loop program's exit status under l4sim is (3^n - 1)/2 mod 128."""
    _, status = bl.l4sim_seconds(bl.build("loop"), 37)
    assert status == bl._expected_status(37)


@needs_gcc
def test_loop_program_result_matches_formula_natively() -> None:
    """The loop program's native exit status is (3^n - 1)/2 mod 128."""
    _, status = bl.native_seconds(bl.build("loop"), 37)
    assert status == bl._expected_status(37)


def test_expected_status_small_values() -> None:
    """The formula gives 0, 1, 4, 13, 40 for the first rounds of x = 3x + 1."""
    assert [bl._expected_status(n) for n in range(5)] == [0, 1, 4, 13, 40]


@needs_gcc
def test_cli_json_last_line_has_keys() -> None:
    """`bench linux --json` prints the figures as JSON on its last line."""
    res = CliRunner().invoke(main, ["bench", "linux", "--json", "--calls", "20", "--loops", "100"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    for key in KEYS:
        assert r[key] > 0, key


def test_cli_without_gcc_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without gcc the command fails with one line on stderr and status 2."""
    monkeypatch.setattr(bl.shutil, "which", lambda name: None)
    monkeypatch.setattr(bl, "_cache_dir", lambda: __import__("pathlib").Path("/nonexistent-l4sim-cache"))
    res = CliRunner().invoke(main, ["bench", "linux", "--calls", "5", "--loops", "5"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "gcc" in res.output
