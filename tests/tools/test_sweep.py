"""Parameter sweeps: the sweep file, the grid, runs on a pool and on Dask, tables, resume, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.tools.experiments import ExperimentError, find, generate_taskset, uunifast
from l4sim.tools.extras import have
from l4sim.tools.sweep import (
    RunSpec,
    SweepError,
    columns,
    execute,
    flatten,
    load_spec,
    read_table,
    sweep,
)


def spec_file(tmp_path: Path, text: str, name: str = "s.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def one_line_error(res: Any) -> str:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("l4sim: ") and "Traceback" not in res.output, res.output
    return str(lines[0])


RT = '''scenario = "experiment:rt-simulate"
seeds = [0, 1]
[params]
util = [0.6, 1.0]
n_tasks = [4]
policy = ["fp", "edf"]
'''

MIXED = '''scenarios = ["kernel", "experiment:rt-simulate", "default"]
seeds = {first = 3, count = 2}
'''


# -- the sweep file -----------------------------------------------------------------------------


def test_the_grid_is_scenarios_then_parameters_then_seeds(tmp_path: Path) -> None:
    spec = load_spec(spec_file(tmp_path, RT))
    runs = spec.runs()
    assert len(runs) == 8 and [r.index for r in runs] == list(range(8))
    assert [(dict(r.params)["util"], dict(r.params)["policy"], r.seed) for r in runs[:4]] == [
        (0.6, "fp", 0), (0.6, "fp", 1), (0.6, "edf", 0), (0.6, "edf", 1)]
    mixed = load_spec(spec_file(tmp_path, MIXED, "m.toml"))
    assert [(r.scenario, r.seed) for r in mixed.runs()] == [
        ("kernel", 3), ("kernel", 4), ("experiment:rt-simulate", 3), ("experiment:rt-simulate", 4),
        ("default", 3), ("default", 4)]


@pytest.mark.parametrize(("text", "says"), [
    ('scenario = "default"\nscenarios = ["kernel"]\n', "either scenario"),
    ('seeds = [1]\n', "either scenario"),
    ('scenario = "nosuch"\n', "unknown scenario 'nosuch'"),
    ('scenario = "experiment:nosuch"\n', "unknown experiment 'experiment:nosuch'; known: experiment:rt-simulate"),
    ('scenario = "default"\nseeds = [1, 1]\n', "a seed twice"),
    ('scenario = "default"\nseeds = [-1]\n', "seeds must be"),
    ('scenario = "default"\nseeds = {count = 0}\n', "count >= 1"),
    ('scenario = "default"\n[params]\npolicy = ["fp"]\n', "default takes no parameter 'policy'; its parameters: cores, until"),
    ('scenario = "default"\n[params]\ncores = [0]\n', "cores = 0: give a number of cores"),
    ('scenario = "default"\n[params]\nuntil = ["5 furlongs"]\n', "until = '5 furlongs'"),
    ('scenario = "experiment:rt-simulate"\n[params]\nutil = [0.5, 3]\n', "util = 3: give a utilisation"),
    ('scenario = "experiment:rt-simulate"\n[params]\nutil = [0.5, 0.5]\n', "lists 0.5 twice"),
    ('scenario = "default"\n[params]\nstatus = [1]\n', "cannot be named 'status'"),
    ('scenario = "default"\nseed = 3\n', "unknown key 'seed'"),
    ('scenario = "default\n', "not valid TOML"),
])
def test_a_bad_sweep_file_is_one_line_before_any_run(tmp_path: Path, text: str, says: str) -> None:
    """Every mistake in a sweep file is found before the first run and named in one line."""
    path = spec_file(tmp_path, text)
    with pytest.raises(SweepError, match=None) as e:
        load_spec(path)
    assert says in str(e.value)
    assert says in one_line_error(run("sweep", path, "--workers", "1"))


def test_a_missing_sweep_file_is_one_line(tmp_path: Path) -> None:
    assert "no such file" in one_line_error(run("sweep", str(tmp_path / "none.toml")))


# -- one run ------------------------------------------------------------------------------------


def test_a_summary_is_flattened_to_columns() -> None:
    """Nested objects join with dots, named lists key by name (repeats numbered), other lists
    are JSON text; the summary's own figures come first."""
    flat = flatten({"b": 1, "components": [{"name": "x", "cpu": 3, "deep": {"k": 1}}, {"name": "x", "cpu": 4}],
                    "a": {"z": None}, "idle_ns": [1, 2]})
    assert list(flat) == ["b", "a.z", "components.x.cpu", "components.x.deep.k", "components.x#2.cpu", "idle_ns"]
    assert flat["idle_ns"] == "[1, 2]" and flat["components.x#2.cpu"] == 4


def test_a_boot_row_carries_the_boot_summary() -> None:
    """A booted scenario's row is its --json summary, flattened, after the run's identity."""
    row = execute(RunSpec(0, "kernel", 0, (("cores", 1),)))
    res = run("boot", "kernel", "--cores", "1", "--json")
    summary = json.loads(res.output.splitlines()[-1])
    assert row["status"] == "ok" and row["error"] == ""
    assert row["simulated_ns"] == summary["simulated_ns"] and row["ipcs"] == summary["ipcs"]
    assert row["components.client.ipcs"] == next(c["ipcs"] for c in summary["components"] if c["name"] == "client")


def test_a_run_that_fails_is_a_row_with_its_error(tmp_path: Path) -> None:
    """A scenario that raises is a failed row with a one-line error; the sweep goes on."""
    bad = tmp_path / "broken.py"
    bad.write_text("def setup(kernel):\n    raise RuntimeError('the scenario broke\\nsecond line')\n")
    row = execute(RunSpec(0, str(bad), 0, ()))
    assert (row["status"], row["error"]) == ("failed", "RuntimeError: the scenario broke")


def test_generated_task_sets_depend_on_the_seed_only() -> None:
    """UUniFast gives utilisations summing to the target; the same seed gives the same set,
    and the periods do not depend on the utilisation asked for."""
    import random

    us = uunifast(8, 0.9, random.Random(5))
    assert len(us) == 8 and abs(sum(us) - 0.9) < 1e-12 and min(us) > 0
    a, b = generate_taskset(6, 0.8, 11), generate_taskset(6, 0.8, 11)
    assert a == b and abs(float(a.utilisation()) - 0.8) < 0.01
    assert [t.period for t in generate_taskset(6, 0.5, 11).tasks] == [t.period for t in a.tasks]
    assert generate_taskset(6, 0.8, 12) != a


def test_rt_simulate_rows_count_jobs_and_misses() -> None:
    """The rt-simulate experiment: totals, each task's figures and the analysis's verdict; an
    overloaded set misses deadlines, a light one does not."""
    light = execute(RunSpec(0, "experiment:rt-simulate", 1, (("util", 0.3), ("n_tasks", 5), ("policy", "edf"))))
    heavy = execute(RunSpec(1, "experiment:rt-simulate", 1, (("util", 1.3), ("n_tasks", 5), ("policy", "edf"))))
    assert light["status"] == heavy["status"] == "ok"
    assert light["misses"] == 0 and light["schedulable"] is True and heavy["misses"] > 0 and heavy["schedulable"] is False
    assert light["jobs"] == sum(light[f"tasks.t0{i}.jobs"] for i in range(5))
    assert "result.policy" not in light and "policy" in light


def test_an_experiment_names_its_parameters() -> None:
    exp = find("experiment:rt-simulate")
    assert [p.name for p in exp.params] == ["util", "n_tasks", "policy", "duration", "ideal"]
    with pytest.raises(ExperimentError, match="its parameters: util, n_tasks, policy, duration, ideal"):
        exp.settle({"cores": 2})


# -- running sweeps -----------------------------------------------------------------------------


def test_a_pool_sweep_is_the_same_with_one_or_two_workers(tmp_path: Path) -> None:
    """Rows come back in grid order with the same values whatever the number of workers."""
    spec = load_spec(spec_file(tmp_path, RT))
    one = sweep(spec, workers=1)
    two = sweep(spec, workers=2)
    assert one.rows == two.rows and one.ran == two.ran == 8 and not one.failed
    assert [(r["util"], r["policy"], r["seed"]) for r in one.rows][:3] == [(0.6, "fp", 0), (0.6, "fp", 1), (0.6, "edf", 0)]


@pytest.mark.skipif(not have("dask", "distributed"), reason="the dist extra is not installed")
def test_a_dask_local_cluster_gives_the_pools_table(tmp_path: Path) -> None:
    """The same sweep on a process pool and on a Dask LocalCluster (its scheduler's address,
    as for a real cluster): the result tables are the same, row for row and column for column."""
    from distributed import LocalCluster

    spec = load_spec(spec_file(tmp_path, MIXED))
    pool = sweep(spec, workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask = sweep(spec, scheduler=cluster.scheduler_address)
    assert pool.ran == dask.ran == 6 and not pool.failed and not dask.failed
    assert columns(pool.rows, spec.params) == columns(dask.rows, spec.params)
    assert pool.rows == dask.rows


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    if not have("dask", "distributed"):
        pytest.skip("the dist extra is not installed")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    line = one_line_error(run("sweep", spec_file(tmp_path, MIXED), "--scheduler", f"tcp://127.0.0.1:{port}"))
    assert "cannot reach the Dask scheduler" in line


def test_the_cli_writes_csv_and_ends_with_json(tmp_path: Path) -> None:
    """--out FILE.csv --json: the table on disk, and the last line the sweep's figures."""
    out = tmp_path / "r.csv"
    res = run("sweep", spec_file(tmp_path, RT), "--workers", "2", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    tail = json.loads(res.output.splitlines()[-1])
    assert (tail["runs"], tail["failed"], tail["out"], tail["skipped"]) == (8, 0, str(out), 0)
    assert tail["runs_per_s"] > 0
    with out.open() as fp:
        rows = list(csv.DictReader(fp))
    assert len(rows) == 8 and list(rows[0])[:7] == ["scenario", "seed", "util", "n_tasks", "policy", "status", "error"]


def test_without_out_the_table_is_csv_on_stdout(tmp_path: Path) -> None:
    res = run("sweep", spec_file(tmp_path, 'scenario = "kernel"\nseeds = [0, 1]\n'), "--workers", "1")
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(res.output.splitlines()))
    assert [(r["scenario"], r["seed"], r["status"]) for r in rows] == [("kernel", "0", "ok"), ("kernel", "1", "ok")]


def test_resume_skips_the_runs_done_and_retries_failed_ones(tmp_path: Path) -> None:
    """--resume runs only what the output lacks (a failed run counts as lacking); the table
    is then the same as a sweep in one go."""
    out = tmp_path / "r.csv"
    half = spec_file(tmp_path, RT.replace("util = [0.6, 1.0]", "util = [0.6]"), "half.toml")
    assert run("sweep", half, "--workers", "1", "--out", str(out)).exit_code == 0
    rows = read_table(str(out))
    rows[0]["status"], rows[0]["error"] = "failed", "pretend"
    out.write_text(_csv(rows))
    res = run("sweep", spec_file(tmp_path, RT), "--workers", "2", "--out", str(out), "--resume", "--json")
    assert res.exit_code == 0, res.output
    tail = json.loads(res.output.splitlines()[-1])
    assert (tail["runs"], tail["skipped"]) == (5, 3)
    whole = tmp_path / "whole.csv"
    assert run("sweep", spec_file(tmp_path, RT), "--workers", "1", "--out", str(whole)).exit_code == 0
    assert out.read_text() == whole.read_text()
    again = run("sweep", spec_file(tmp_path, RT), "--out", str(out), "--resume", "--json")
    assert json.loads(again.output.splitlines()[-1])["runs"] == 0
    # resuming a smaller grid keeps the rows outside it, after the grid's own
    smaller = run("sweep", half, "--out", str(out), "--resume", "--json")
    assert json.loads(smaller.output.splitlines()[-1])["runs"] == 0
    rows = read_table(str(out))
    assert len(rows) == 8 and [r["util"] for r in rows] == ["0.6"] * 4 + ["1.0"] * 4


def _csv(rows: list[dict[str, Any]]) -> str:
    from l4sim.tools.sweep import to_csv

    return to_csv(rows, columns(rows, []))


def test_failed_runs_are_listed_with_their_error(tmp_path: Path) -> None:
    """A failed run: its line on stderr with the error, status 1, the others still in the table."""
    bad = tmp_path / "broken.py"
    bad.write_text("def setup(kernel):\n    raise ValueError('no luck')\n")
    res = CliRunner().invoke(main, ["sweep", spec_file(tmp_path, f'scenarios = ["kernel", "{bad}"]\n'),
                                    "--workers", "1", "--out", str(tmp_path / "r.csv")])
    assert res.exit_code == 1
    assert f"failed: {bad} seed=0: ValueError: no luck" in res.output
    assert [r["status"] for r in read_table(str(tmp_path / "r.csv"))] == ["ok", "failed"]


@pytest.mark.skipif(not have("pyarrow"), reason="the dist extra is not installed")
def test_parquet_tables_keep_types(tmp_path: Path) -> None:
    """A Parquet table reads back typed: ints, floats, booleans, text, missing values."""
    out = tmp_path / "r.parquet"
    assert run("sweep", spec_file(tmp_path, RT), "--workers", "2", "--out", str(out)).exit_code == 0
    rows = read_table(str(out))
    assert rows[0]["seed"] == 0 and rows[0]["util"] == 0.6 and rows[0]["policy"] == "fp"
    assert isinstance(rows[0]["misses"], int) and isinstance(rows[0]["schedulable"], bool)


@pytest.mark.parametrize(("args", "extra", "module"), [
    (["--out", "r.parquet"], "dist", "pyarrow"),
    (["--scheduler", "tcp://127.0.0.1:1"], "dist", "distributed"),
])
def test_without_an_extra_a_sweep_says_which(tmp_path: Path, monkeypatch: Any, args: list[str], extra: str,
                                             module: str) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    monkeypatch.chdir(tmp_path)
    line = one_line_error(run("sweep", spec_file(tmp_path, MIXED), *args))
    assert f"pip install 'l4sim[{extra}]'" in line


@pytest.mark.parametrize(("args", "says"), [
    (["--json"], "--json needs --out"),
    (["--resume"], "--resume needs --out"),
    (["--out", "r.xlsx"], "ending in .parquet or .csv"),
    (["--workers", "0"], "--workers 0"),
    (["--workers", "2", "--scheduler", "tcp://x:1"], "a Dask cluster has its own workers"),
])
def test_bad_options_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    assert says in one_line_error(run("sweep", spec_file(tmp_path, MIXED), *args))


# -- plots --------------------------------------------------------------------------------------


@pytest.mark.skipif(not have("matplotlib"), reason="the plot extra is not installed")
def test_plot_draws_a_sweep(tmp_path: Path) -> None:
    """sweep plot draws y against x with one line per hue into a PNG."""
    out = tmp_path / "r.csv"
    assert run("sweep", spec_file(tmp_path, RT), "--workers", "2", "--out", str(out)).exit_code == 0
    png = tmp_path / "misses.png"
    res = run("sweep", "plot", str(out), "--x", "util", "--y", "misses", "--hue", "policy", str(png))
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"drew 8 runs into {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "says"), [
    (["--x", "utilization", "--y", "misses"], "--x utilization: no such column; columns include util"),
    (["--x", "util", "--y", "policy"], "--y policy: the column is not numeric"),
])
def test_plot_names_a_bad_column(tmp_path: Path, args: list[str], says: str) -> None:
    out = tmp_path / "r.csv"
    assert run("sweep", spec_file(tmp_path, RT), "--workers", "1", "--out", str(out)).exit_code == 0
    assert says in one_line_error(run("sweep", "plot", str(out), *args, str(tmp_path / "p.png")))


def test_plot_without_matplotlib_says_which_extra(tmp_path: Path, monkeypatch: Any) -> None:
    import importlib.util

    rows = [{"scenario": "x", "seed": 0, "status": "ok", "error": "", "a": 1, "b": 2}]
    table = tmp_path / "r.csv"
    table.write_text(_csv(rows))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert "pip install 'l4sim[plot]'" in one_line_error(
        run("sweep", "plot", str(table), "--x", "a", "--y", "b", str(tmp_path / "p.png")))


SPIN = (
    "from pathlib import Path\n"
    "from l4sim.user.env import INITIAL, Env, TaskLocal\n"
    "async def root(env):\n"
    "    while True:\n"
    "        await env.compute(1000)\n"
    "def setup(kernel, args=None):\n"
    "    Path('spinning').write_text('')\n"
    "    return kernel.create_root('root', lambda sp: root(Env(TaskLocal(INITIAL))))\n"
)


def test_ctrl_c_keeps_the_finished_runs(tmp_path: Path) -> None:
    """Ctrl-C during a sweep stops the workers (a run that never ends included), writes the
    runs finished so far and says --resume goes on from there; status 130."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "spin.py").write_text(SPIN)
    spec = spec_file(tmp_path, 'scenarios = ["kernel", "spin.py"]\n')
    proc = subprocess.Popen([sys.executable, "-m", "l4sim", "sweep", spec, "--workers", "1", "--out", "r.csv"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "spinning").exists():  # the second run has started: the first is done
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.startswith("l4sim: interrupted; ") and err.rstrip().endswith("runs written to r.csv (--resume goes on from there)")
    rows = read_table(str(tmp_path / "r.csv"))
    assert all(r["scenario"] == "kernel" and r["status"] == "ok" for r in rows)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_a_terminal_gets_a_progress_bar(tmp_path: Path) -> None:
    """On a terminal (stderr a tty) the sweep draws its progress; the results still go to --out."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    spec = spec_file(tmp_path, RT)
    proc = subprocess.Popen([sys.executable, "-m", "l4sim", "sweep", spec, "--workers", "1", "--out", "r.csv"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=slave, text=True,
                            env={**os.environ, "COLUMNS": "100"})
    os.close(slave)
    out, _ = proc.communicate(timeout=120)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert proc.returncode == 0 and out.startswith("8 runs, 0 failed")
    assert b"sweep" in shown and b"8" in shown
    assert len(read_table(str(tmp_path / "r.csv"))) == 8
