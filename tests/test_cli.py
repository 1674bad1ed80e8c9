"""The ``l4sim`` command: boot, its options and errors, and the cost table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from l4sim.cli import main


def run(*args: str) -> Result:
    """Invoke ``l4sim ARGS`` in-process, stdout and stderr kept apart."""
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(res: Result) -> str:
    """The run failed with status 2 and exactly one ``l4sim:`` line on stderr, no traceback."""
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("l4sim: ")
    assert "Traceback" not in res.output
    return lines[0]


def test_boot_prints_the_console_and_a_summary_table() -> None:
    """``l4sim boot`` runs the default system, shows its console and a table per program."""
    res = run("boot")
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "hello from a task of its own" in out
    assert "ned: crasher: fault: segmentation fault" in out
    assert "simulated time" in out and "context switches" in out
    header = next(ln for ln in out.splitlines() if ln.startswith("program"))
    assert header.split()[:3] == ["program", "core", "thr"] and header.endswith("status")
    assert any(ln.startswith("client-a") and ln.endswith("exited 0") for ln in out.splitlines())
    assert any(ln.startswith("crasher") and "segmentation fault" in ln for ln in out.splitlines())


def test_boot_json_summary_on_the_last_line() -> None:
    """``boot --json`` ends with one JSON object holding the figures and the components."""
    res = run("boot", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"simulated_ns", "ipcs", "context_switches", "components"} <= set(summary)
    assert summary["simulated_ns"] > 0 and summary["ipcs"] > 0
    comps = {c["name"]: c for c in summary["components"]}
    assert set(comps) >= {"sigma0", "moe", "ned", "hello", "client-a", "crasher"}
    for c in comps.values():
        assert {"name", "status", "exit", "fault", "threads", "thread_states", "cpu", "cpu_ns", "ipcs",
                "page_faults", "switches"} <= set(c)
    assert comps["hello"]["status"] == "exited" and comps["hello"]["exit"] == 0
    assert comps["crasher"]["status"] == "fault" and comps["crasher"]["exit"] is None
    assert comps["crasher"]["fault"].startswith("segmentation fault (read at 0x10")
    assert comps["crasher"]["page_faults"] == 1
    assert comps["sigma0"]["status"] == "running" and comps["sigma0"]["thread_states"] == ["blocked in receive"]


def test_boot_kernel_scenario_json() -> None:
    """The kernel-only scenario still boots and every program exits 0."""
    res = run("boot", "kernel", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    for c in summary["components"]:
        if c["name"] != "sigma0":  # the root pager serves on
            assert c["status"] == "exited" and c["exit"] == 0, c


def test_boot_unknown_scenario_is_one_line_and_status_2() -> None:
    """An unknown scenario name ends in one ``l4sim:`` line naming it, exit status 2."""
    line = assert_one_line_error(run("boot", "nosuch"))
    assert "nosuch" in line and "default" in line


@pytest.mark.parametrize("cores", ["0", "65"])
def test_boot_with_a_bad_core_count_is_status_2(cores: str) -> None:
    """``--cores`` outside 1..64 is refused with one line."""
    line = assert_one_line_error(run("boot", "--cores", cores))
    assert "--cores" in line


@pytest.mark.parametrize("until", ["soon", "5", "20 parsecs", "1e99999s", "-3ms"])
def test_boot_with_a_bad_time_is_status_2(until: str) -> None:
    """``--until`` must be a number with a unit (a bare ``5`` too is refused), not beyond ~31 years;
    the line names the option, the text and the units accepted."""
    line = assert_one_line_error(run("boot", "--until", until))
    assert f"--until {until!r}" in line
    assert "ns, us, ms or s" in line or "at most" in line


def test_boot_until_stops_early() -> None:
    """``--until 100us`` stops the simulation at 100 us, before the demo has finished."""
    res = run("boot", "--until", "100us", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    # at the limit, or a little past it where a core finished the chain of traps it was running
    assert 100_000 <= summary["simulated_ns"] < 200_000
    assert summary["stopped_because"] == "until"
    assert "consumer: 24 items" not in res.stdout
    assert any(c["exit"] is None for c in summary["components"])


def test_boot_cores_option_is_used() -> None:
    """``--cores 1`` runs the demo on a single core."""
    res = run("boot", "--cores", "1", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["cores"] == 1
    assert {c["cpu"] for c in summary["components"]} == {0}


def test_boot_trace_writes_valid_chrome_json(tmp_path: Path) -> None:
    """``--trace FILE`` writes a Chrome trace that parses and has events on core tracks."""
    path = tmp_path / "trace.json"
    res = run("boot", "--trace", str(path))
    assert res.exit_code == 0, res.output
    assert str(path) in res.stdout
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    assert len(events) > 50
    assert any(e.get("ph") == "X" for e in events)
    assert all(e["pid"] == 0 for e in events)


@pytest.mark.parametrize("option", ["--trace", "--jsonl"])
@pytest.mark.parametrize("where", ["missing directory", "a directory", "/proc/version"])
def test_boot_trace_to_an_unwritable_path_is_refused_before_the_run(tmp_path: Path, option: str,
                                                                     where: str) -> None:
    """A trace path that cannot be written (in a missing directory, a directory, a file not even
    root may write) is refused in one line before the run: nothing of the boot is printed."""
    path = {"missing directory": str(tmp_path / "no" / "such" / "t.json"), "a directory": str(tmp_path),
            "/proc/version": "/proc/version"}[where]
    if not Path(path).parent.exists() and where == "/proc/version":
        pytest.skip("no /proc here")
    res = run("boot", option, path)
    line = assert_one_line_error(res)
    assert line.startswith("l4sim: cannot write the trace: ") and f"({path})" in line
    assert res.stdout == "", "the run did not start"
    assert list(tmp_path.iterdir()) == [], "the check leaves nothing behind"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_boot_trace_without_permission_is_refused_before_the_run(tmp_path: Path) -> None:
    """A trace in a directory we may not write to is refused before the run."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = assert_one_line_error(run("boot", "--trace", str(folder / "t.json")))
    finally:
        folder.chmod(0o700)
    assert "Permission denied" in line


def test_boot_trace_check_keeps_an_existing_file(tmp_path: Path) -> None:
    """Checking an existing trace path changes nothing; the run then replaces the file whole."""
    path = tmp_path / "t.jsonl"
    path.write_text("old\n")
    res = run("boot", "kernel", "--jsonl", str(path))
    assert res.exit_code == 0, res.output
    lines = path.read_text().splitlines()
    assert lines[0] != "old" and all(json.loads(ln) for ln in lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl"], "no temporary file left"


def test_boot_scenario_file(tmp_path: Path) -> None:
    """A scenario given as a .py path is loaded and run."""
    path = tmp_path / "mini.py"
    path.write_text(
        "from l4sim.user.env import INITIAL, Env, TaskLocal\n"
        "async def root(env):\n"
        "    await env.print('mini scenario ran')\n"
        "    return 0\n"
        "def setup(kernel, args=None):\n"
        "    return kernel.create_root('root', lambda sp: root(Env(TaskLocal(INITIAL))))\n"
    )
    res = run("boot", str(path))
    assert res.exit_code == 0, res.output
    assert "mini scenario ran" in res.stdout


def test_boot_scenario_file_with_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    """A scenario file that does not parse ends in one line naming file:line."""
    path = tmp_path / "broken.py"
    path.write_text("def setup(kernel):\n    return 1\n\ndef oops(:\n    pass\n")
    line = assert_one_line_error(run("boot", str(path)))
    assert f"{path}:4" in line
    assert "syntax error" in line


def test_boot_scenario_file_without_setup_is_one_line(tmp_path: Path) -> None:
    """A scenario file with no setup() is refused with a line saying what to define."""
    path = tmp_path / "nosetup.py"
    path.write_text("x = 1\n")
    line = assert_one_line_error(run("boot", str(path)))
    assert "setup" in line


def test_boot_missing_scenario_file_is_one_line(tmp_path: Path) -> None:
    """A path to a file that does not exist is refused with one line."""
    line = assert_one_line_error(run("boot", str(tmp_path / "absent.py")))
    assert "absent.py" in line


def test_costs_lists_the_cost_model() -> None:
    """``l4sim costs`` prints a table: every entry of the cost model with its value and unit, what
    it charges and where the value comes from."""
    from l4sim.kernel.costs import CostModel

    res = run("costs")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["entry", "value", "unit"]
    rows = {ln.split()[0]: ln.split()[1:3] for ln in lines[1:] if ln and not ln.startswith(" ")}
    assert list(rows) == [name for name, _ in CostModel().table()]
    assert rows["syscall"] == ["60", "ns"] and rows["guest_skew"] == ["10,000", "ns"]
    text = " ".join(ln.strip() for ln in lines)
    for entry in CostModel().describe():  # each description is there in full (wrapped, never cut)
        assert " ".join(entry["charges"].split()) in text
        assert " ".join(f"source: {entry['source']}".split()) in text


def test_costs_json_has_the_descriptions() -> None:
    """``l4sim costs --json`` is one JSON list: name, value, default, unit, charges, source per entry."""
    from l4sim.kernel.costs import CostModel

    res = run("costs", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["name"] for r in rows] == [name for name, _ in CostModel().table()]
    for r in rows:
        assert set(r) == {"name", "value", "default", "unit", "charges", "source"}
        assert r["value"] == r["default"] and r["unit"].startswith("ns") and r["charges"] and r["source"]


def test_every_cost_entry_is_described() -> None:
    """A new cost-model field cannot come without its description: each has charges, unit, source."""
    from dataclasses import fields

    from l4sim.kernel.costs import CostModel

    for f in fields(CostModel):
        assert {"charges", "unit", "source"} <= set(f.metadata), f.name
        assert all(len(f.metadata[k]) > 1 for k in ("charges", "unit", "source")), f.name


# -- Ctrl-C -----------------------------------------------------------------------------------------

#: runs ``l4sim ARGS`` after making the named functions print "started" when first called: the
#: test then knows the command is inside its run when it sends SIGINT (the run itself is real)
_WRAPPER = """
import sys
import importlib

for spec in sys.argv[1].split(","):
    if not spec:
        continue
    mod_name, name = spec.split(":")
    mod = importlib.import_module(mod_name)
    orig = getattr(mod, name)

    def marked(*a, _orig=orig, **k):
        print("started", flush=True)
        return _orig(*a, **k)

    setattr(mod, name, marked)
from l4sim.cli import main

sys.argv[:2] = ["l4sim"]
main()
"""


def interrupt(args: list[str], cwd: Path, started: str = "started", mark: str = "") -> tuple[int, str, str]:
    """Run ``l4sim ARGS`` in a subprocess, send it SIGINT once it printed the line ``started``, and
    return its exit status, stdout and stderr."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, mark, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.strip().endswith(started):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, "".join(seen) + out, err


SPIN = (
    "from l4sim.user.env import INITIAL, Env, TaskLocal\n"
    "async def root(env):\n"
    "    await env.print('spinning: started')\n"
    "    while True:\n"
    "        await env.compute(1000)\n"
    "def setup(kernel, args=None):\n"
    "    return kernel.create_root('root', lambda sp: root(Env(TaskLocal(INITIAL))))\n"
)


def test_ctrl_c_during_boot_keeps_the_trace_so_far(tmp_path: Path) -> None:
    """Ctrl-C during ``boot`` of a system that never ends: ``l4sim: interrupted`` on stderr, status
    130, and both trace files hold the run so far, complete (an old file is replaced whole)."""
    (tmp_path / "spin.py").write_text(SPIN)
    (tmp_path / "t.json").write_text("old")
    status, _, err = interrupt(["boot", "spin.py", "--trace", "t.json", "--jsonl", "t.jsonl"], tmp_path)
    assert status == 130, err
    assert err == "l4sim: interrupted; the trace so far is in t.json and t.jsonl\n"
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert any(e.get("name") == "root" for e in events)
    records = [json.loads(ln) for ln in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert records and all({"t", "cpu", "kind", "tid"} <= set(r) for r in records)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spin.py", "t.json", "t.jsonl"]


def test_ctrl_c_during_boot_without_a_trace(tmp_path: Path) -> None:
    """Without trace files the interrupted boot says just ``l4sim: interrupted`` (no ``Aborted!``)."""
    (tmp_path / "spin.py").write_text(SPIN)
    status, _, err = interrupt(["boot", "spin.py"], tmp_path)
    assert (status, err) == (130, "l4sim: interrupted\n")


def test_ctrl_c_during_rt_simulate(tmp_path: Path) -> None:
    """Ctrl-C during a long ``rt simulate``: one line, status 130, no trace file half-written."""
    (tmp_path / "set.json").write_text(json.dumps(
        {"time_unit": "ms", "tasks": [{"name": "a", "period": 1, "wcet": 0.5}]}))
    status, _, err = interrupt(["rt", "simulate", "set.json", "--duration", "100000s", "--trace", "t.json"],
                               tmp_path, mark="l4sim.realtime.sim:simulate")
    assert (status, err) == (130, "l4sim: interrupted\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.json"]


def test_ctrl_c_during_a_benchmark(tmp_path: Path) -> None:
    """Ctrl-C during ``bench ipc``: one line, status 130."""
    status, out, err = interrupt(["bench", "ipc", "--rounds", "100000000"], tmp_path,
                                 mark="l4sim.tools.bench:kernel_round_trips")
    assert (status, err) == (130, "l4sim: interrupted\n")
    assert out == "started\n"


# -- l4sim rt: absurd numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("command", [["rt", "analyze"], ["rt", "analyze", "--policy", "edf"],
                                     ["rt", "simulate"], ["rt", "simulate", "--policy", "edf"],
                                     ["rt", "compare-simso"]])
@pytest.mark.parametrize(("literal", "problem"), [
    ("1e400", "period 1e400 ms is too large"),
    ("NaN", "period NaN is not a finite number"),
    ("Infinity", "period Infinity is not a finite number"),
    ("-5", "period -5 ms must be > 0"),
    ("0", "period 0 ms must be > 0"),
])
def test_every_rt_command_refuses_absurd_numbers_in_one_line(tmp_path: Path, command: list[str],
                                                             literal: str, problem: str) -> None:
    """Each ``l4sim rt`` command refuses a task set with an absurd period when it loads the file: one
    line naming the file, the task, the field, the value and what is accepted; status 2."""
    path = tmp_path / "set.json"
    path.write_text('{"time_unit": "ms", "tasks": [{"name": "audio", "period": ' + literal + ', "wcet": 1}]}')
    line = assert_one_line_error(run(*command[:2], str(path), *command[2:]))
    assert line == (f"l4sim: {path}: task 'audio': {problem}; give the period (minimum inter-arrival "
                    "time) as a number of ms, > 0 and at most 1e12")


@pytest.mark.parametrize("command", [["rt", "simulate"], ["rt", "compare-simso"]])
@pytest.mark.parametrize(("duration", "needle"), [
    ("1e400", "is too long"), ("99999999999999999999s", "is too long"), ("nan", "is not a time"),
    ("inf", "is not a time"), ("0", "must be > 0"), ("-1", "is not a time"), ("1e999999999", "is not a time"),
])
def test_rt_duration_is_refused_when_absurd(tmp_path: Path, command: list[str], duration: str,
                                            needle: str) -> None:
    """``--duration`` beyond 10^18 ns, not finite, zero or negative is one line naming the option."""
    path = tmp_path / "set.json"
    path.write_text('{"time_unit": "ms", "tasks": [{"name": "a", "period": 10, "wcet": 1}]}')
    line = assert_one_line_error(run(*command, str(path), "--duration", duration))
    assert line.startswith(f"l4sim: --duration {duration!r} {needle}")


def test_rt_simulate_trace_to_an_unwritable_path_is_refused_before_the_run(tmp_path: Path) -> None:
    """``rt simulate --trace`` into a missing directory is refused before the simulation."""
    path = tmp_path / "set.json"
    path.write_text('{"time_unit": "ms", "tasks": [{"name": "a", "period": 10, "wcet": 1}]}')
    line = assert_one_line_error(run("rt", "simulate", str(path), "--trace", str(tmp_path / "no" / "t.json")))
    assert line.startswith("l4sim: cannot write the trace: No such file or directory")


def test_a_wcet_above_its_period_is_analysed_and_simulated(tmp_path: Path) -> None:
    """wcet > period is an overloaded task, not a malformed one: ``rt analyze`` says it is not
    schedulable (status 1) and ``rt simulate`` shows its misses (status 1), without a traceback."""
    path = tmp_path / "set.json"
    path.write_text('{"time_unit": "ms", "tasks": [{"name": "a", "period": 10, "wcet": 12}]}')
    res = run("rt", "analyze", str(path))
    assert res.exit_code == 1 and "NOT schedulable" in res.stdout, res.output
    res = run("rt", "simulate", str(path), "--json", "--duration", "100")
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout.splitlines()[-1])["tasks"][0]["deadline_misses"] > 0


def test_ctrl_c_during_fuzz(tmp_path: Path) -> None:
    """Ctrl-C during ``fuzz``: one line, status 130 (not a violation, not Hypothesis's report)."""
    status, out, err = interrupt(["fuzz", "--steps", "1000000"], tmp_path, mark="l4sim.tools.fuzz:fuzz")
    assert (status, err) == (130, "l4sim: interrupted\n")
    assert out == "started\n"
