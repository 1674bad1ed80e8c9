"""``l4sim sweep SPEC.toml``: a grid of runs on a local process pool or a Dask cluster.

A sweep file names what to run and over what::

    scenarios = ["drops", "drops-noreserve"]    # or: scenario = "default"
    seeds = [0, 1, 2]                           # or: seeds = {first = 0, count = 50}

    [params]                                    # optional: lists crossed into the grid
    cores = [1, 2]

Each scenario is anything ``l4sim boot`` starts or a registered experiment
(``experiment:rt-simulate``; see :mod:`l4sim.tools.experiments`).  The grid is every scenario
x every combination of the parameters x every seed, in that order; each point is one run, a
task of its own for the pool or the cluster.

Every run is deterministic -- a function of its scenario, seed and parameters -- so a sweep's
result table does not depend on where or in what order its runs ran: the rows come back in
grid order, their columns in one order, whatever the workers did.  A table has one row per
run: ``scenario``, ``seed``, each parameter, ``status`` (``ok`` or ``failed``), ``error`` (the
one-line error of a failed run) and the fields of the run's summary flattened to columns
(:func:`flatten`).  It is written as Parquet (``.parquet``, the ``dist`` extra) or CSV.

``resume`` keeps the runs an earlier sweep already wrote to the output with status ``ok``
and runs the others (a failed run is tried again).
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import json
import math
import os
import signal
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l4sim.tools.experiments import ExperimentError, find
from l4sim.tools.extras import need

#: the columns every row starts with (the parameters follow ``seed``)
FIXED = ("scenario", "seed", "status", "error")
#: most runs one sweep may have (a typing mistake in a grid should not start a million)
MAX_RUNS = 1_000_000


class SweepError(Exception):
    """A sweep that cannot run as asked: one line naming the problem and the fix."""


# -- the sweep file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    """One point of the grid (what a worker is handed: plain data, picklable)."""

    index: int
    scenario: str
    seed: int
    params: tuple[tuple[str, Any], ...]

    def key(self) -> tuple[str, ...]:
        """What identifies the run in a table (values as text: a CSV reads them back so)."""
        return (self.scenario, str(self.seed), *(_text(v) for _, v in self.params))


@dataclass
class Spec:
    """A parsed sweep file."""

    path: str
    scenarios: list[str]
    seeds: list[int]
    params: dict[str, list[Any]] = field(default_factory=dict)

    def runs(self) -> list[RunSpec]:
        """The grid, in order: scenario, then parameter combination, then seed."""
        names = list(self.params)
        out: list[RunSpec] = []
        for scenario in self.scenarios:
            for combo in itertools.product(*(self.params[n] for n in names)):
                for seed in self.seeds:
                    out.append(RunSpec(len(out), scenario, seed, tuple(zip(names, combo, strict=True))))
        return out


def _text(v: Any) -> str:
    return "" if v is None else str(v)


def load_spec(path: str) -> Spec:
    """Read and check a sweep file; every scenario and parameter value is checked here, before
    any run starts."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: no such file; give a sweep file (TOML, see docs/inspector.md)") from None
    except IsADirectoryError:
        raise SweepError(f"{path} is a directory; give a sweep file (TOML)") from None
    except UnicodeDecodeError:
        raise SweepError(f"{path}: not UTF-8 text; save the sweep file as UTF-8 TOML") from None
    except OSError as e:
        raise SweepError(f"{path}: cannot read ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: not valid TOML ({e}); fix the syntax") from None
    unknown = sorted(set(data) - {"scenario", "scenarios", "seeds", "params"})
    if unknown:
        raise SweepError(f"{path}: unknown key {unknown[0]!r}; a sweep file has scenario or scenarios, "
                         "seeds and [params]")
    if ("scenario" in data) == ("scenarios" in data):
        raise SweepError(f'{path}: give either scenario = "NAME" or scenarios = ["NAME", ...]')
    scenarios = [data["scenario"]] if "scenario" in data else data["scenarios"]
    if not isinstance(scenarios, list) or not scenarios or not all(isinstance(s, str) and s for s in scenarios):
        raise SweepError(f'{path}: scenarios must be a list of names, e.g. ["default", "experiment:rt-simulate"]')
    seeds = _seeds(path, data.get("seeds"))
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise SweepError(f"{path}: params must be a table ([params]) of lists")
    grid: dict[str, list[Any]] = {}
    for name, values in params.items():
        if name in FIXED:
            raise SweepError(f"{path}: a parameter cannot be named {name!r} (a column of its own); rename it")
        vals = values if isinstance(values, list) else [values]
        if not vals:
            raise SweepError(f"{path}: params.{name} is empty; give at least one value")
        if any(isinstance(v, dict | list) for v in vals):
            raise SweepError(f"{path}: params.{name} must be a list of numbers, strings or booleans")
        texts = [_text(v) for v in vals]
        if len(set(texts)) != len(texts):
            twice = next(t for t in texts if texts.count(t) > 1)
            raise SweepError(f"{path}: params.{name} lists {twice} twice; give each value once")
        grid[name] = vals
    spec = Spec(path, scenarios, seeds, grid)
    total = len(scenarios) * len(seeds) * math.prod(len(v) for v in grid.values())
    if total > MAX_RUNS:
        raise SweepError(f"{path}: {total:,} runs is more than {MAX_RUNS:,}; make the grid smaller")
    for scenario in scenarios:  # every value checked now: a bad one must not cost a sweep
        try:
            exp = find(scenario)
            for combo in itertools.product(*grid.values()):
                exp.settle(dict(zip(grid, combo, strict=True)))
        except ExperimentError as e:
            raise SweepError(f"{path}: {e}") from None
    return spec


def _seeds(path: str, raw: Any) -> list[int]:
    if raw is None:
        return [0]
    if isinstance(raw, dict):
        extra = sorted(set(raw) - {"first", "count"})
        first, count = raw.get("first", 0), raw.get("count")
        if extra or not isinstance(count, int) or not isinstance(first, int) or count < 1 or first < 0:
            raise SweepError(f"{path}: seeds = {{first = 0, count = N}} needs a count >= 1 and a first >= 0")
        return list(range(first, first + count))
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw)):
        raise SweepError(f"{path}: seeds must be a list of whole numbers >= 0, or {{first = 0, count = N}}")
    if len(set(raw)) != len(raw):
        raise SweepError(f"{path}: seeds lists a seed twice; give each once")
    return list(raw)


# -- one run ------------------------------------------------------------------------------------


def flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A run's summary as flat columns (its own fields first, then the nested ones): nested
    objects joined with dots; a list of objects that have a ``name`` keyed by it (``components.moe.cpu_ns``; a repeated name gets ``#2``,
    ``#3``); any other list as its JSON text."""
    out: dict[str, Any] = {}
    # the summary's own figures first, then what is nested (per program, per task), each sorted
    for key in sorted(summary, key=lambda k: (isinstance(summary[k], dict | list), k)):
        value = summary[key]
        col = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, col + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) and isinstance(v.get("name"), str)
                                                       for v in value):
            seen: dict[str, int] = {}
            for item in value:
                name = item["name"]
                seen[name] = seen.get(name, 0) + 1
                label = name if seen[name] == 1 else f"{name}#{seen[name]}"
                out.update(flatten({k: v for k, v in item.items() if k != "name"}, f"{col}.{label}."))
        elif isinstance(value, list):
            out[col] = json.dumps(value, sort_keys=True)
        else:
            out[col] = value
    return out


def execute(run: RunSpec) -> dict[str, Any]:
    """Run one point of the grid (in a worker) and return its row."""
    row: dict[str, Any] = {"scenario": run.scenario, "seed": run.seed, **dict(run.params)}
    try:
        exp = find(run.scenario)
        summary = exp.run(run.seed, exp.settle(dict(run.params)))
    except Exception as e:  # a failed run is a row with its error, never a failed sweep
        from l4sim.tools.boot import BootError

        text = str(e) if isinstance(e, BootError | ExperimentError) else f"{type(e).__name__}: {e}"
        row.update(status="failed", error=text.splitlines()[0] if text else type(e).__name__)
        return row
    row.update(status="ok", error="")
    for col, value in flatten(summary).items():
        if col in row:
            if row[col] == value:
                continue  # a parameter the summary repeats (rt-simulate's policy)
            col = "result." + col
        row[col] = value
    return row


def _worker_init() -> None:
    """A pool worker leaves Ctrl-C to the sweep, which stops the pool and keeps what is done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- running the grid ---------------------------------------------------------------------------

#: ``progress(done, total, failed)`` after each run
Progress = Callable[[int, int, int], None]


def run_pool(runs: list[RunSpec], workers: int) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """The runs on ``workers`` local processes; (run, row) as each finishes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter per worker, whatever threads the caller has (fork would copy them)
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
    finished = False
    try:
        futures = {pool.submit(execute, r): r for r in runs}
        for fut in as_completed(futures):
            run = futures[fut]
            try:
                yield run, fut.result()
            except Exception as e:  # the worker died (out of memory, a crash in native code)
                yield run, _lost(run, e)
        finished = True
    finally:
        if not finished:  # stopped early (Ctrl-C): the runs under way are not waited for
            stop = getattr(pool, "terminate_workers", None)  # Python 3.14
            if stop is not None:
                stop()
            else:
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
        pool.shutdown(wait=finished, cancel_futures=True)


def run_dask(runs: list[RunSpec], address: str) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """The runs on the Dask cluster whose scheduler is at ``address``; (run, row) as each
    finishes."""
    need("dist", "l4sim sweep --scheduler", "dask", "distributed")
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise SweepError(f"cannot reach the Dask scheduler at {address} ({e}); start one "
                         "(dask scheduler) or check the address") from None
    try:
        futures = client.map(execute, runs, pure=False, key=[f"l4sim-run-{r.index}" for r in runs])
        by_key = {f.key: r for f, r in zip(futures, runs, strict=True)}
        for fut in as_completed(futures, loop=client.loop):
            run = by_key[fut.key]
            try:
                yield run, fut.result()
            except Exception as e:  # the worker died, or could not import l4sim
                yield run, _lost(run, e)
        futures = []
    finally:
        if futures:  # stopped early (Ctrl-C): what is left is cancelled on the cluster
            client.cancel(futures)
        client.close()


def _lost(run: RunSpec, e: BaseException) -> dict[str, Any]:
    return {"scenario": run.scenario, "seed": run.seed, **dict(run.params), "status": "failed",
            "error": f"the worker failed: {type(e).__name__}: {e}".splitlines()[0]}


@dataclass
class Outcome:
    """What a sweep did: the table's rows (grid order), the runs it ran, failed and skipped."""

    rows: list[dict[str, Any]]
    ran: int
    failed: list[dict[str, Any]]
    skipped: int
    seconds: float
    interrupted: bool = False

    @property
    def runs_per_s(self) -> float:
        return round(self.ran / self.seconds, 3) if self.seconds > 0 else 0.0


def sweep(spec: Spec, *, workers: int = 1, scheduler: str | None = None,
          done: list[dict[str, Any]] | None = None, progress: Progress | None = None) -> Outcome:
    """Run ``spec``'s grid; ``done`` holds the rows of an earlier sweep to keep (``--resume``).

    Ctrl-C stops the sweep: the outcome then has the rows finished so far and
    ``interrupted`` set.
    """
    runs = spec.runs()
    kept: dict[tuple[str, ...], dict[str, Any]] = {}
    names = list(spec.params)
    for row in done or []:
        if row.get("status") == "ok":
            kept[_row_key(row, names)] = row
    todo = [r for r in runs if r.key() not in kept]
    got: dict[int, dict[str, Any]] = {}
    failed: list[dict[str, Any]] = []
    start = time.perf_counter()
    rows_iter = run_dask(todo, scheduler) if scheduler is not None else run_pool(todo, workers)
    interrupted = False
    try:
        if todo:
            for run, row in rows_iter:
                got[run.index] = row
                if row["status"] != "ok":
                    failed.append(row)
                if progress is not None:
                    progress(len(got), len(todo), len(failed))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        close = getattr(rows_iter, "close", None)
        if close is not None:
            close()
    seconds = time.perf_counter() - start
    table: list[dict[str, Any]] = []
    grid_keys = set()
    for r in runs:
        k = r.key()
        grid_keys.add(k)
        if r.index in got:
            table.append(got[r.index])
        elif k in kept:
            table.append(kept[k])
    # rows of the earlier output that are not in this grid stay, after it: nothing is lost
    table.extend(row for row in done or [] if _row_key(row, names) not in grid_keys)
    order = {id(row): i for i, row in got.items()}
    failed.sort(key=lambda row: order[id(row)])
    return Outcome(table, len(got), failed, len(runs) - len(todo), seconds, interrupted)


def _row_key(row: dict[str, Any], names: list[str]) -> tuple[str, ...]:
    return (_text(row.get("scenario")), _text(row.get("seed")), *(_text(row.get(n)) for n in names))


# -- the table ----------------------------------------------------------------------------------


def columns(rows: Iterable[dict[str, Any]], params: Iterable[str]) -> list[str]:
    """The table's columns: scenario, seed, the parameters, status, error, then every summary
    field in the order the rows first show it."""
    head = ["scenario", "seed", *params, "status", "error"]
    seen = dict.fromkeys(head)
    for row in rows:
        for k in row:
            if k not in seen:
                seen[k] = None
    return list(seen)


def out_format(path: str) -> str:
    """``parquet`` or ``csv``, by the file name (SweepError for anything else)."""
    low = path.lower()
    if low.endswith((".parquet", ".pq")):
        return "parquet"
    if low.endswith(".csv"):
        return "csv"
    raise SweepError(f"--out {path}: give a file name ending in .parquet or .csv")


def _column_values(values: list[Any]) -> tuple[str, list[Any]]:
    """One type for a column: bool, int, float or text (anything else as its JSON)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "bool", values
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if all(-(2**63) <= v < 2**63 for v in present):
            return "int", values
        return "text", [None if v is None else str(v) for v in values]
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "float", [None if v is None else float(v) for v in values]
    return "text", [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]


def to_csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """The table as CSV text (an empty cell for a missing value)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for row in rows:
        w.writerow(["" if row.get(c) is None else row[c] for c in cols])
    return buf.getvalue()


def write_table(rows: list[dict[str, Any]], cols: list[str], path: str) -> None:
    """Write the table to ``path`` (Parquet or CSV by its name), whole or not at all."""
    from l4sim.tools.trace_export import replacing

    fmt = out_format(path)
    if fmt == "csv":
        with replacing(path) as fp:
            fp.write(to_csv(rows, cols))
        return
    need("dist", "writing Parquet", "pyarrow", instead="a .csv file")
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "text": pa.string()}
    arrays, fields = [], []
    for c in cols:
        kind, values = _column_values([row.get(c) for row in rows])
        arrays.append(pa.array(values, type=types[kind]))
        fields.append(pa.field(c, types[kind]))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_table(path: str) -> list[dict[str, Any]]:
    """The rows of a table written by :func:`write_table` (CSV cells come back as text; an
    empty cell as None)."""
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"{path}: no such file; give a table written by l4sim sweep --out")
    if out_format(path) == "csv":
        try:
            with p.open(newline="", encoding="utf-8") as fp:
                return [{k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(fp)]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise SweepError(f"{path}: cannot read it as CSV ({e})") from None
    need("dist", "reading Parquet", "pyarrow")
    import pyarrow.parquet as pq

    try:
        return list(pq.read_table(path).to_pylist())
    except Exception as e:  # pyarrow raises its own error types for a damaged file
        raise SweepError(f"{path}: cannot read it as Parquet ({e})") from None


# -- plots --------------------------------------------------------------------------------------


def _number(v: Any) -> float | None:
    """A cell as a number (CSV cells are text), None when it is not one."""
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def plot(rows: list[dict[str, Any]], x: str, y: str, hue: str | None, path: str) -> int:
    """Draw ``y`` against ``x`` (one line per value of ``hue``) from a sweep's table into
    ``path``: the mean over the runs at each point, bars from the smallest to the largest.
    Failed runs are left out.  Returns the number of runs drawn."""
    if not path.lower().endswith((".png", ".svg", ".pdf")):
        raise SweepError(f"{path}: give a file name ending in .png, .svg or .pdf")
    cols = columns(rows, [])
    for name, opt in ((x, "--x"), (y, "--y"), (hue, "--hue")):
        if name is not None and name not in cols:
            low = name.lower()
            near = [c for c in cols if low in c.lower() or (c.lower() in low and len(c) > 2)]
            near += [c for c in difflib.get_close_matches(name, cols, n=4) if c not in near]
            near = near[:8] or cols[:12]
            raise SweepError(f"{opt} {name}: no such column; columns include {', '.join(near)}")
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        raise SweepError("the table has no successful run to draw")
    if any(_number(r.get(y)) is None for r in ok):
        raise SweepError(f"--y {y}: the column is not numeric in every run; choose a numeric column")
    need("plot", "l4sim sweep plot", "matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric_x = all(_number(r.get(x)) is not None for r in ok)
    groups: dict[str, dict[Any, list[float]]] = {}
    order: list[Any] = []
    for r in ok:
        xv = _number(r.get(x)) if numeric_x else _text(r.get(x))
        if xv not in order:
            order.append(xv)
        yv = _number(r.get(y))
        assert yv is not None
        groups.setdefault(_text(r.get(hue)) if hue else y, {}).setdefault(xv, []).append(yv)
    xs = sorted(order) if numeric_x else order
    fig, ax = plt.subplots(figsize=(8, 5))
    for label in sorted(groups):
        pts = [xv for xv in xs if xv in groups[label]]
        means = [sum(groups[label][xv]) / len(groups[label][xv]) for xv in pts]
        lows = [m - min(groups[label][xv]) for m, xv in zip(means, pts, strict=True)]
        highs = [max(groups[label][xv]) - m for m, xv in zip(means, pts, strict=True)]
        pos = pts if numeric_x else [xs.index(xv) for xv in pts]
        ax.errorbar(pos, means, yerr=[lows, highs], marker="o", capsize=3, label=label)
    if not numeric_x:
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([str(v) for v in xs])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{y} by {x}: mean over the runs at each point, bars from min to max")
    if hue:
        ax.legend(title=hue)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path)
    finally:
        plt.close(fig)
    return len(ok)
