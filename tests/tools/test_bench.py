"""Tests for the host benchmarks (``l4sim bench``): they run and report, at small sizes.

No assertion here is about speed: only that the figures exist, are positive,
and that the work the benchmark claims to do was really done.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.kernel.caps import MapNode, subtree
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.vspace import MemMap
from l4sim.tools.bench import (
    _chunks,
    bench_ipc,
    bench_mem,
    build_chain,
    build_fan_tree,
    host_map_touch_unmap,
    program_map_touch_unmap,
    time_revoke,
)

MEM_KEYS = ("map_touch_unmap_ns_per_page", "revoke_10k_s", "revoke_100k_s",
            "revoke_growth_100k_over_10k", "chain_10k_s")


def test_bench_mem_reports_required_keys_positive() -> None:
    """bench_mem at a small size returns every required figure as a positive number."""
    r = bench_mem(500, repeat=1)
    for key in MEM_KEYS:
        assert isinstance(r[key], int | float) and r[key] > 0, key


def test_bench_mem_revoke_sizes_follow_pages() -> None:
    """The revoked trees hold pages/10 and pages mappings."""
    r = bench_mem(1000, repeat=1)
    assert (r["revoke_small_mappings"], r["revoke_large_mappings"]) == (100, 1000)


def test_program_path_times_each_phase() -> None:
    """The sigma0-program path finishes and times map, touch and unmap."""
    r = program_map_touch_unmap(300)
    assert all(r[k] > 0 for k in ("map", "touch", "unmap"))


def test_host_path_times_each_phase() -> None:
    """The kernel-API path times map, touch and unmap."""
    r = host_map_touch_unmap(300)
    assert all(r[k] > 0 for k in ("map", "touch", "unmap"))


@pytest.mark.parametrize("n", [1, 7, 1024, 2000, 5000])
def test_chunks_cover_pages_aligned(n: int) -> None:
    """The request pieces cover exactly n pages, each aligned to its own size, at most 1024."""
    pieces = _chunks(n)
    assert sum(1 << o for _, o in pieces) == n
    assert all(off % (1 << o) == 0 and o <= 10 for off, o in pieces)
    assert [off for off, _ in pieces] == sorted({off for off, _ in pieces})


def test_fan_tree_has_the_mappings_it_reports() -> None:
    """build_fan_tree derives the requested number of mappings from sigma0's root."""
    _, root, count = build_fan_tree(2000)
    assert count == 2000 and len(subtree(root)) == 2000 and len(root.children) == 100


def test_chain_is_as_deep_as_asked() -> None:
    """build_chain makes a single line of n derived mappings."""
    _, root, count = build_chain(300)
    depth = 0
    node: MapNode = root
    while node.children:
        assert len(node.children) == 1
        node = next(iter(node.children.values()))
        depth += 1
    assert count == depth == 300


def test_time_revoke_removes_everything() -> None:
    """time_revoke returns a positive time after one revoke emptied every task's pages."""
    built: list[tuple[Kernel, MemMap, int]] = []

    def build(n: int) -> tuple[Kernel, MemMap, int]:
        res = build_fan_tree(n)
        built.append(res)
        return res

    assert time_revoke(build, 500, repeat=1) > 0
    k, root, _ = built[0]
    assert not root.children
    assert [t.name for t in k.tasks if t.vspace.pages and t.name != "sigma0"] == []


def test_cli_bench_mem_json() -> None:
    """`l4sim bench mem --json --pages 2000` prints parsable JSON with the figures on its last line."""
    res = CliRunner().invoke(main, ["bench", "mem", "--json", "--pages", "2000"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    for key in MEM_KEYS:
        assert r[key] > 0, key
    assert r["pages"] == 2000


def test_cli_bench_mem_table() -> None:
    """Without --json, `bench mem` prints a readable table naming each figure."""
    res = CliRunner().invoke(main, ["bench", "mem", "--pages", "1000"])
    assert res.exit_code == 0, res.output
    assert "ns/page" in res.output and "revoke a chain 100 deep" in res.output


def test_cli_bench_mem_rejects_tiny_sizes() -> None:
    """--pages below 1000 ends with exit status 2 and a one-line hint."""
    res = CliRunner().invoke(main, ["bench", "mem", "--pages", "10"])
    assert res.exit_code == 2 and "at least 1000" in res.output


def test_bench_ipc_still_reports() -> None:
    """The ipc benchmark returns its positive figures."""
    r = bench_ipc(1000, repeat=1)
    assert r["round_trips_per_s"] > 0 and r["bare_round_trips_per_s"] > 0 and r["ratio"] > 0
    assert r["library_round_trips_per_s"] > 0


def test_the_bare_loop_answers_like_the_server() -> None:
    """The lean baseline does real work: each request's answer is its word + 1, all of them."""
    from l4sim.tools.bench import _lean_client, _lean_server

    box: list[float] = []
    c, s = _lean_client(50, box), _lean_server()
    s.send(None)
    sent = []
    val = None
    try:
        while True:
            req = c.send(val)
            sent.append(req)
            val = s.send(req)
            assert val == (0, req[1] + 1)
    except StopIteration:
        pass
    assert [r[1] for r in sent] == list(range(50)) and len(box) == 1


# -- rt ----------------------------------------------------------------------------------------


def test_bench_rt_without_simso_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SimSo the rt benchmark still reports the kernel's figures, and why SimSo's are missing."""
    from l4sim.tools import bench, simso_compare

    monkeypatch.setattr(simso_compare, "simso_status", lambda: "SimSo is not importable here (test)")
    r = bench.bench_rt(0.1)
    assert r["fp_events_per_s"] > 0 and r["edf_events_per_s"] > 0
    assert r["simso"] is None and r["simso_missing"] == "SimSo is not importable here (test)"


def test_bench_rt_cli_says_simso_was_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    """`l4sim bench rt` names the missing SimSo on its last line; --json carries simso null and the reason."""
    from l4sim.tools import simso_compare

    monkeypatch.setattr(simso_compare, "simso_status", lambda: "SimSo is not importable here (test)")
    r = CliRunner().invoke(main, ["bench", "rt", "--seconds", "0.1"])
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].startswith("SimSo: not measured: SimSo is not importable")
    r = CliRunner().invoke(main, ["bench", "rt", "--seconds", "0.1", "--json"])
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["simso"] is None and "not importable" in out["simso_missing"]


# -- progress --------------------------------------------------------------------------------------


def _bench(args: list[str], tty: bool) -> tuple[int, str, str]:
    """Run ``l4sim bench ARGS`` in a subprocess; stderr on a pseudo-terminal when ``tty``, else a pipe.
    Returns the exit status, stdout and stderr."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "l4sim", "bench", *args]
    if not tty:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    got = bytearray()
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the terminal closed: the child is gone
            break
        if not chunk:
            break
        got += chunk
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=300)
    os.close(master)
    return proc.returncode, out.decode(), got.decode()


@pytest.mark.parametrize(("args", "label", "steps"), [
    (["ipc", "--rounds", "1000"], "bench ipc", 9),
    (["mem", "--pages", "1000"], "bench mem", 5),
    (["rt", "--seconds", "0.01"], "bench rt", None),
])
def test_a_benchmark_shows_progress_on_a_terminal(args: list[str], label: str, steps: int | None) -> None:
    """With stderr on a terminal a benchmark draws a progress bar there, step by step to the end;
    stdout has the figures and nothing else."""
    status, out, err = _bench(args, tty=True)
    assert status == 0, err
    assert f"{label}  [" in err and "done" in err
    if steps is not None:
        assert f"{steps}/{steps}" in err and f"1/{steps}" in err
    assert "[" not in out and label not in out


def test_a_benchmark_with_json_on_a_terminal_keeps_stdout_pure() -> None:
    """``--json`` with stderr on a terminal: the bar goes to stderr, stdout is the one JSON line."""
    status, out, err = _bench(["ipc", "--rounds", "1000", "--json"], tty=True)
    assert status == 0, err
    assert "bench ipc  [" in err
    (line,) = out.splitlines()
    assert set(json.loads(line)) == {"round_trips_per_s", "bare_round_trips_per_s",
                                     "library_round_trips_per_s", "ratio"}


@pytest.mark.parametrize("args", [["ipc", "--rounds", "1000"], ["mem", "--pages", "1000", "--json"]])
def test_a_benchmark_not_on_a_terminal_prints_no_progress(args: list[str]) -> None:
    """With stderr a pipe (a log, CI) a benchmark writes nothing there."""
    status, out, err = _bench(args, tty=False)
    assert status == 0 and out and err == ""


def test_bench_progress_counts_every_step() -> None:
    """The ipc benchmark announces each of its runs, in order, with the total."""
    seen: list[tuple[int, int, str]] = []
    bench_ipc(1000, repeat=2, progress=lambda done, total, step: seen.append((done, total, step)))
    assert [(d, t) for d, t, _ in seen] == [(i, 6) for i in range(6)]
    assert seen[0][2] == "kernel IPC, run 1 of 2" and seen[3][2] == "bare loop, run 2 of 2"
