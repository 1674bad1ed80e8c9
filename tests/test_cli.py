"""The ``l4sim`` command: boot, its options and errors, and the cost table."""

from __future__ import annotations

import json
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


def test_boot_with_a_bad_time_is_status_2() -> None:
    """``--until`` must be a number with a unit."""
    line = assert_one_line_error(run("boot", "--until", "soon"))
    assert "soon" in line


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


def test_boot_trace_to_an_unwritable_path_is_one_line(tmp_path: Path) -> None:
    """A trace path in a missing directory fails with one line, not a traceback."""
    line = assert_one_line_error(run("boot", "--trace", str(tmp_path / "no" / "such" / "t.json")))
    assert "trace" in line


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
    """``l4sim costs`` prints one line per cost entry, syscall among them."""
    res = run("costs")
    assert res.exit_code == 0, res.output
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.stdout.splitlines() if ln.strip()}
    assert rows["syscall"][1] == "ns" and int(rows["syscall"][0]) > 0
    assert {"ipc_base", "context_switch", "irq_entry"} <= set(rows)
