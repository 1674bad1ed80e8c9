"""The SimSo comparison script: its pure helpers and the path without SimSo (SimSo is no test dependency)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.realtime.taskset import build
from l4sim.tools import simso_compare as sc

DOC_SET = {"time_unit": "ms", "tasks": [{"name": "audio", "period": 5, "wcet": 1.25},
                                        {"name": "log", "period": 100, "wcet": 7}]}


@pytest.fixture
def no_simso(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend SimSo is not installed, whether or not it is."""
    monkeypatch.setattr(sc, "simso_status", lambda: "SimSo is not importable here (No module named 'simso')")


def _file(tmp_path: Any, obj: Any = DOC_SET) -> str:
    p = tmp_path / "set.json"
    p.write_text(json.dumps(obj))
    return str(p)


def test_merge_joins_touching_segments_and_drops_empty_ones() -> None:
    """Adjacent segments of one task become one; zero-length ones (a switch through) vanish."""
    segs = [(0, 5, "a"), (5, 5, "b"), (5, 8, "a"), (9, 12, "a"), (12, 15, "b")]
    assert sc.merge(segs) == [(0, 8, "a"), (9, 12, "a"), (12, 15, "b")]


@pytest.mark.parametrize(("a", "b", "at"), [
    ([(0, 5, "a"), (5, 9, "b")], [(0, 5, "a"), (5, 9, "b")], None),
    ([(0, 5, "a"), (5, 9, "b")], [(0, 4, "a"), (4, 9, "b")], 4),
    ([(0, 5, "a"), (6, 9, "b")], [(0, 5, "a"), (5, 9, "b")], 5),
    ([(0, 5, "a"), (5, 9, "b")], [(0, 5, "a"), (5, 9, "c")], 5),
    ([(0, 5, "a")], [(0, 5, "a"), (7, 9, "b")], 7),
])
def test_first_difference(a: list[Any], b: list[Any], at: int | None) -> None:
    """The first instant where two merged schedules part, or None when they are the same."""
    assert sc.first_difference(a, b) == at
    assert sc.first_difference(b, a) == at


def test_compare_jobs_counts_responses_that_differ() -> None:
    """Jobs pair by order; a different release or response counts, extra jobs on one side do not."""
    l4 = [(0, 3), (10, 12), (20, 27)]
    ss = [(0, 3), (10, 13), (20, 27), (30, 31)]
    r = sc.compare_jobs(l4, ss)
    assert r == {"jobs_compared": 3, "l4sim_max_response": 7, "simso_max_response": 7,
                 "differing_jobs": 1, "first_differing_job": 2}


def test_l4sim_side_gives_schedule_and_jobs() -> None:
    """The l4sim half of a comparison: the schedule's segments cover exactly the executed wcets, and every
    job's response is measured from its release (here the arrival)."""
    ts = build([{"name": "a", "period": 4, "wcet": 1}, {"name": "b", "period": 6, "wcet": 2}], "ns")
    _, segs, jobs, releases = sc.l4sim_run(ts, "fp", 12)
    assert segs == [(0, 1, "a"), (1, 3, "b"), (4, 5, "a"), (6, 8, "b"), (8, 9, "a")]
    assert jobs == {"a": [(0, 1), (4, 5), (8, 9)], "b": [(0, 3), (6, 8)]}
    assert releases["a"] == [0, 4, 8, 12]  # a release at the very end is in the run too


def test_cli_without_simso_fails_with_one_line(tmp_path: Any, no_simso: None) -> None:
    """Without SimSo, `l4sim rt compare-simso` ends in one line naming the package, exit status 2."""
    r = CliRunner().invoke(main, ["rt", "compare-simso", _file(tmp_path)])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and r.output.startswith("l4sim: SimSo is not importable")
    assert "pip install simso" in r.output


def test_module_without_simso_fails_with_one_line(tmp_path: Any, no_simso: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m l4sim.tools.simso_compare` says the same on stderr and returns 2."""
    assert sc.main([_file(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install simso" in err


def test_bad_file_and_options_are_one_line_errors(tmp_path: Any) -> None:
    """A missing file, a bad policy or duration are refused before SimSo is even looked for."""
    for args in ([str(tmp_path / "nope.json")], [_file(tmp_path), "--policy", "rr"],
                 [_file(tmp_path), "--duration", "soon"]):
        r = CliRunner().invoke(main, ["rt", "compare-simso", *args])
        assert r.exit_code == 2 and r.output.count("\n") == 1 and r.output.startswith("l4sim: "), args


def test_compare_raises_without_simso(no_simso: None) -> None:
    """The Python API raises SimsoUnavailable with the install hint."""
    with pytest.raises(sc.SimsoUnavailable, match="pip install simso"):
        sc.compare(build([{"name": "a", "period": 4, "wcet": 1}], "ns"))


def test_random_tasksets_are_reproducible_and_of_their_kind() -> None:
    """The sweep's sets depend only on the seed; offsets and jitter appear only in their kind."""
    import random

    a = [sc.random_taskset(random.Random(5), k) for k in ("plain", "offset", "jitter")]
    b = [sc.random_taskset(random.Random(5), k) for k in ("plain", "offset", "jitter")]
    assert a == b
    assert not any(t.offset or t.jitter for t in a[0].tasks)
    assert not any(t.jitter for t in a[1].tasks) and not any(t.offset for t in a[2].tasks)


def test_module_needs_a_file_or_a_sweep(no_simso: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Without FILE and --sweep, or with --sweep but no SimSo, the module says so in one line (exit 2)."""
    assert sc.main([]) == 2
    assert sc.main(["--sweep", "3"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "l4sim: give a task-set FILE (or --sweep N)" and "pip install simso" in err[1]
