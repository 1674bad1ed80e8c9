"""The inspector without a browser: run files, the model, export, server, replay and diff."""

from __future__ import annotations

import base64
import io
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.tools.boot import boot, thread_state
from l4sim.tools.extras import have
from l4sim.tools.inspector.model import build, rights_text, screen_at, state_at
from l4sim.tools.runfile import RunFileError, read_run


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def one_line_error(res: Any, status: int = 2) -> str:
    """The command failed with exactly one line on stderr, no traceback."""
    assert res.exit_code == status, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("l4sim: "), res.output
    assert "Traceback" not in res.output
    return str(lines[0])


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "default.jsonl"
    res = run("boot", "default", "--jsonl", str(path))
    assert res.exit_code == 0, res.output
    return path


# -- run files ----------------------------------------------------------------------------------


def test_a_run_file_reads_back_header_and_records(default_run: Path) -> None:
    """The header is set apart; every other line is a record of the kernel's shape."""
    r = read_run(str(default_run))
    assert r.header is not None and r.header["command"] == "boot" and r.header["scenario"] == "default"
    lines = default_run.read_text().splitlines()
    assert len(r.records) == len(lines) - 1
    assert r.records[0][2] == "new" and r.records[0][3] == -1


def test_an_argument_named_like_a_field_comes_back(tmp_path: Path) -> None:
    """The exporter writes an argument ``cpu`` as ``arg_cpu``; reading restores its name."""
    from l4sim.tools.trace_export import write_jsonl

    path = tmp_path / "r.jsonl"
    write_jsonl([(5, 1, "sched", 3, {"cpu": 7, "prio": 9})], path)
    assert read_run(str(path)).records == [(5, 1, "sched", 3, {"cpu": 7, "prio": 9})]


@pytest.mark.parametrize(("text", "says"), [
    (None, "no such file"),
    ("", "no trace records"),
    ("{not json\n", ":1: not JSON"),
    ('{"t": 0}\n', ":1: not a trace record"),
    ('{"t": "x", "cpu": 0, "kind": "wake", "tid": 1}\n', "must be integers"),
    ('{"t":0,"cpu":0,"kind":"wake","tid":1}\n{"t":0,"cpu":-1,"kind":"run","tid":-1}\n', ":2: a run header after"),
    ('{"t":0,"cpu":-1,"kind":"run","tid":-1,"format":99}\n', "newer l4sim"),
])
def test_a_file_that_is_no_trace_is_one_line(tmp_path: Path, text: str | None, says: str) -> None:
    """Each way a file can fail to be a trace is a RunFileError naming it, and the CLI says it
    in one line."""
    path = tmp_path / "bad.jsonl"
    if text is not None:
        path.write_text(text)
    with pytest.raises(RunFileError, match=says.replace("(", r"\(")):
        read_run(str(path))
    assert says in one_line_error(run("inspect", str(path), "--export", str(tmp_path / "out")))


# -- the model ----------------------------------------------------------------------------------


def test_the_model_at_the_end_is_the_kernels_state() -> None:
    """At the last record the model's capabilities, mappings and thread states are the
    kernel's own at the end of the run (thread states in the boot summary's words)."""
    from l4sim.tools.runfile import Run

    res = boot("default", trace=True, console=io.StringIO())
    assert res.tracer is not None
    model = build(Run("x.jsonl", None, list(res.tracer.records)))
    st = state_at(model, model["count"] - 1)
    for task in res.kernel.tasks:
        if not task.alive:
            assert task.kid not in st["caps"]
            continue
        want = sorted([slot, repr(e.obj), int(e.rights)] for slot, e in task.caps.slots.items())
        assert [[slot, text, rights] for slot, _obj, text, rights in st["caps"].get(task.kid, [])] == want
        pages = sorted([vpn, f"frame {m.pfn:#x}", int(m.rights)] for vpn, m in task.vspace.pages.items())
        got = [[slot, text, rights] for table, slot, text, rights in st["mem"].get(task.kid, []) if table == "mem"]
        assert got == pages
    for th in res.kernel.threads:
        assert st["threads"][th.kid][0] == thread_state(th), th


def test_threads_and_tasks_are_known_by_id_even_with_one_name() -> None:
    """Two tasks of one name are two tasks; each thread sits in its own."""
    from l4sim.tools.runfile import Run

    recs: list[Any] = [
        (0, -1, "new", -1, {"obj": 4, "type": "task", "name": "sh"}),
        (0, -1, "new", -1, {"obj": 6, "type": "task", "name": "sh"}),
        (0, -1, "thread", 5, {"name": "sh", "task": "sh", "space": 4}),
        (0, -1, "thread", 7, {"name": "sh", "task": "", "space": -1}),
        (1, 0, "bind", 7, {"task": "sh", "space": 6}),
        (2, -1, "map", -1, {"task": "sh", "space": 6, "slot": 3, "obj": "<thread #7 sh>", "rights": 15}),
        (3, 0, "wake", 7, {}),
        (4, 0, "switch", 7, {"from": -1}),
        (5, 0, "block", 7, {"state": "recv", "on": -1}),
    ]
    m = build(Run("x.jsonl", None, recs))
    assert [(t["kid"], t["name"]) for t in m["tasks"]] == [(4, "sh"), (6, "sh")]
    assert {th["tid"]: th["task"] for th in m["threads"]} == {5: 4, 7: 6}
    # an instant is a record's index: the state after that record
    assert state_at(m, 6)["threads"][7] == ["ready", ""]
    assert state_at(m, 7)["threads"][7] == ["running", "core 0"]
    assert state_at(m, 8)["threads"][7] == ["blocked in receive", ""]
    assert state_at(m, 5)["caps"] == {6: [[3, 7, "<thread #7 sh>", 15]]}
    assert state_at(m, 4)["caps"] == {}


def test_an_old_trace_without_task_ids_is_read_by_names() -> None:
    """Records without ``space`` (older traces): tasks are told apart by name."""
    from l4sim.tools.runfile import Run

    recs: list[Any] = [(0, -1, "map", -1, {"task": "a", "slot": 1, "obj": "<log #2>", "rights": 15}),
                       (0, -1, "map", -1, {"task": "b", "slot": 1, "obj": "<log #2>", "rights": 4}),
                       (1, -1, "unmap", -1, {"task": "a", "slot": 1, "obj": "<log #2>", "rights": 15})]
    m = build(Run("x.jsonl", None, recs))
    names = {t["kid"]: t["name"] for t in m["tasks"]}
    assert sorted(names.values()) == ["a", "b"] and all(k < 0 for k in names)
    assert list(state_at(m, 2)["caps"].values()) == [[[1, 2, "<log #2>", 4]]]


def test_rights_are_letters() -> None:
    assert rights_text(15) == "RWSD" and rights_text(5) == "RW--" and rights_text(6, memory=True) == "RW-"


def _frame(i: int, fb: int, size: tuple[int, int], rect: tuple[int, int, int, int], fmt: str,
           pixels: bytes) -> Any:
    x, y, w, h = rect
    return (i, -1, "frame", -1, {"fb": fb, "width": size[0], "height": size[1], "x": x, "y": y, "w": w,
                                  "h": h, "format": fmt, "data": base64.b64encode(pixels).decode()})


def test_the_screen_is_composed_from_frame_records() -> None:
    """A full frame, then an update of one rectangle: the screen at each instant is what the
    updates up to it drew, in every pixel format; a malformed frame is left out with a warning."""
    from l4sim.tools.runfile import Run

    red = bytes([255, 0, 0]) * 4
    blue565 = (0x001F).to_bytes(2, "little")
    recs = [(0, 0, "wake", 1, {}),
            _frame(1, 0, (2, 2), (0, 0, 2, 2), "rgb888", red),
            _frame(2, 0, (2, 2), (1, 1, 1, 1), "rgb565", blue565),
            _frame(3, 0, (2, 2), (0, 0, 1, 1), "xrgb8888", bytes([0x10, 0x20, 0x30, 0])),
            _frame(4, 0, (2, 2), (0, 0, 2, 2), "rgb888", b"short")]
    m = build(Run("x.jsonl", None, recs))
    assert len(m["frames"]) == 3 and len(m["warnings"]) == 1 and "record 4" in m["warnings"][0]
    assert screen_at(m, 0) is None
    w, h, px = screen_at(m, 1)  # type: ignore[misc]
    assert (w, h) == (2, 2) and px == bytes([255, 0, 0, 255]) * 4
    _, _, px = screen_at(m, 3)  # type: ignore[misc]
    assert px[12:16] == bytes([0, 0, 255, 255])  # bottom right: the rgb565 blue
    assert px[0:4] == bytes([0x30, 0x20, 0x10, 255])  # top left: xrgb8888 stored B, G, R, X
    assert px[4:8] == bytes([255, 0, 0, 255])


# -- export, server -------------------------------------------------------------------------------


def test_export_writes_a_page_that_needs_no_server(default_run: Path, tmp_path: Path) -> None:
    """--export DIR writes index.html with its script, style and the model (as run.js and
    run.json); the model is the same each time."""
    out = tmp_path / "site"
    res = run("inspect", str(default_run), "--export", str(out))
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["app.js", "index.html", "run.js", "run.json", "style.css"]
    html = (out / "index.html").read_text()
    assert '<script src="run.js"></script>' in html and "http" not in html.replace('xmlns="http://www.w3.org', "")
    js = (out / "run.js").read_text()
    assert js.startswith("window.L4SIM_RUN = ") and js.rstrip().endswith(";")
    model = json.loads((out / "run.json").read_text())
    assert json.loads(js[len("window.L4SIM_RUN = "):].rstrip().rstrip(";")) == model
    assert model["count"] == len(read_run(str(default_run)).records)
    first = (out / "run.json").read_bytes()
    assert run("inspect", str(default_run), "--export", str(out)).exit_code == 0
    assert (out / "run.json").read_bytes() == first


@pytest.mark.parametrize("command", [["inspect"], ["replay", "--until", "10"]])
def test_without_the_web_extra_serving_says_which_extra(default_run: Path, monkeypatch: Any,
                                                         command: list[str]) -> None:
    """Without Starlette serving is one line naming the extra (and --export as the way out),
    said before any work (a replay does not run first)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "starlette" else real(name, *a))
    line = one_line_error(run(command[0], str(default_run), *command[1:]))
    assert line == ("l4sim: the inspector's server needs starlette (not installed): pip install 'l4sim[web]', "
                    "or --export DIR for a static page")


@pytest.mark.skipif(not have("starlette", "uvicorn"), reason="the web extra is not installed")
def test_the_server_serves_the_page_and_the_state(default_run: Path) -> None:
    """l4sim inspect serves the page, the model and the state at an instant; Ctrl-C stops it
    with the usual line and status."""
    proc = subprocess.Popen([sys.executable, "-m", "l4sim", "inspect", str(default_run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("inspector at http://127.0.0.1:"), line
        url = line.split()[2]

        def get(path: str) -> bytes:
            for _ in range(50):
                try:
                    with urllib.request.urlopen(url + path, timeout=10) as r:
                        return bytes(r.read())
                except ConnectionError:
                    time.sleep(0.1)
            raise AssertionError("the server did not answer")

        assert b"<title>l4sim inspector</title>" in get("")
        assert get("app.js").startswith(b"// The l4sim inspector")
        model = json.loads(get("run.json"))
        st = json.loads(get("api/state?at=500"))
        assert st["at"] == 500 and st == json.loads(json.dumps(_str_keys(state_at(model, 500))))
        with pytest.raises(urllib.error.HTTPError):
            get("api/state?at=99999999")
        with pytest.raises(urllib.error.HTTPError):
            get("nothing-here.js")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and err.strip().endswith("l4sim: interrupted"), err


def _str_keys(st: dict[str, Any]) -> dict[str, Any]:
    return {**st, **{k: {str(a): b for a, b in st[k].items()} for k in ("caps", "mem", "threads")}}


def test_a_port_in_use_is_one_line(default_run: Path) -> None:
    """A port another program listens on is refused before serving, naming --port."""
    if not have("starlette", "uvicorn"):
        pytest.skip("the web extra is not installed")
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        line = one_line_error(run("inspect", str(default_run), "--port", str(s.getsockname()[1])))
    finally:
        s.close()
    assert "in use" in line and "--port" in line


# -- replay ---------------------------------------------------------------------------------------


def test_replay_stops_at_the_event_and_reads_the_kernel_there(default_run: Path, tmp_path: Path) -> None:
    """A replay to event N shows the kernel as it was after the step that emitted N: each live
    task's capabilities and mappings are what the recorded trace says at that instant."""
    out = tmp_path / "site"
    res = run("replay", str(default_run), "--until", "700", "--export", str(out))
    assert res.exit_code == 0, res.output
    assert res.output.startswith("replayed ") and "event 700" in res.output
    model = json.loads((out / "run.json").read_text())
    live = model["live"]
    assert live["requested"] == 700 and live["at"] >= 700
    st = state_at(model, live["at"])
    assert {t["kid"] for t in live["tasks"]} == set(st["tasks"])
    for t in live["tasks"]:
        assert t["caps"] == [[slot, text, rights] for slot, _o, text, rights in st["caps"].get(t["kid"], [])]
        assert t["mem"] == [list(r) for r in st["mem"].get(t["kid"], [])]
        for tid, _name, state in t["threads"]:
            assert st["threads"][tid][0] == state


def test_replay_takes_a_time_too(default_run: Path, tmp_path: Path) -> None:
    """--until 0.2ms replays to the first event at or after 0.2 ms."""
    res = run("replay", str(default_run), "--until", "0.2ms", "--export", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    recs = read_run(str(default_run)).records
    n = next(i for i, r in enumerate(recs) if r[0] >= 200_000)
    assert f"to event {n}" in res.output


def test_replay_refuses_a_run_that_differs(default_run: Path, tmp_path: Path) -> None:
    """A recording that the rerun does not reproduce is refused at its first differing event."""
    lines = default_run.read_text().splitlines()
    rec = json.loads(lines[101])
    rec["t"] += 1
    lines[101] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
    bad = tmp_path / "changed.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    line = one_line_error(run("replay", str(bad), "--until", "500", "--export", str(tmp_path / "s")))
    assert "differs from" in line and "at event 100" in line


def test_a_run_with_input_replays_with_that_input(tmp_path: Path) -> None:
    """--input is the world outside the scenario: the header keeps the script's text, and a
    replay feeds the keyboard and pointer the same events (the scenario's own default input
    would make the rerun differ)."""
    inp = tmp_path / "session.txt"
    inp.write_text("40ms click 100 100\n50ms type hi\n")
    path = tmp_path / "gui.jsonl"
    res = run("boot", "gui", "--until", "150ms", "--input", str(inp), "--jsonl", str(path))
    assert res.exit_code == 0, res.output
    assert read_run(str(path)).header["input"] == inp.read_text()  # type: ignore[index]
    res = run("replay", str(path), "--until", "100ms", "--export", str(tmp_path / "s"))
    assert res.exit_code == 0, res.output
    lines = path.read_text().splitlines()  # the same trace without the input in its header
    head = json.loads(lines[0])
    del head["input"]
    lines[0] = json.dumps(head, sort_keys=True, separators=(",", ":"))
    (tmp_path / "no-input.jsonl").write_text("\n".join(lines) + "\n")
    line = one_line_error(run("replay", str(tmp_path / "no-input.jsonl"), "--until", "100ms",
                              "--export", str(tmp_path / "t")))
    assert "differs from" in line


def test_replay_refuses_a_changed_scenario_file(tmp_path: Path) -> None:
    """The header keeps the scenario file's hash: an edited file is named, not replayed."""
    script = tmp_path / "mini.py"
    script.write_text((Path(__file__).parents[2] / "src/l4sim/scenarios/scripts/default.py").read_text())
    trace = tmp_path / "mini.jsonl"
    res = run("boot", str(script), "--jsonl", str(trace))
    assert res.exit_code == 0, res.output
    script.write_text(script.read_text() + "\n# edited\n")
    line = one_line_error(run("replay", str(trace), "--until", "10", "--export", str(tmp_path / "s")))
    assert "changed since the run was recorded" in line


@pytest.mark.parametrize(("first_line", "says"), [
    (None, "no run header"),
    ({"command": "linux run", "program": "x"}, "replay reruns runs of l4sim boot"),
])
def test_replay_needs_a_boot_header(default_run: Path, tmp_path: Path, first_line: Any, says: str) -> None:
    lines = default_run.read_text().splitlines()[1:]
    if first_line is not None:
        lines.insert(0, json.dumps({**first_line, "t": 0, "cpu": -1, "kind": "run", "tid": -1}))
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert says in one_line_error(run("replay", str(path), "--until", "3", "--export", str(tmp_path / "s")))


@pytest.mark.parametrize("until", ["99999999", "5 parsecs", "1s"])
def test_replay_names_a_bad_event(default_run: Path, until: str, tmp_path: Path) -> None:
    assert "--until" in one_line_error(run("replay", str(default_run), "--until", until,
                                           "--export", str(tmp_path / "s")))


# -- diff -----------------------------------------------------------------------------------------


def test_diff_of_the_same_run_is_empty(default_run: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.jsonl"
    assert run("boot", "default", "--jsonl", str(again)).exit_code == 0
    res = run("diff", str(default_run), str(again))
    assert res.exit_code == 0 and "have the same" in res.output


def test_diff_shows_the_first_diverging_record_with_context(default_run: Path, tmp_path: Path) -> None:
    """Two scenarios part at their first different record: the report names it, the fields
    that differ, the shared records before it and each run's records after it."""
    other = tmp_path / "kernel.jsonl"
    assert run("boot", "kernel", "--jsonl", str(other)).exit_code == 0
    res = run("diff", str(default_run), str(other), "--context", "2")
    assert res.exit_code == 1
    out = res.output.splitlines()
    assert out[0] == 'the runs were started differently: scenario "default" | "kernel"'
    assert "part at record 11" in out[1]
    minus = [ln for ln in out if ln.startswith("- ")]
    plus = [ln for ln in out if ln.startswith("+ ")]
    assert len(minus) == len(plus) == 3 and '"moe"' in minus[0] and '"root"' in plus[0]
    assert any(ln.startswith("  differs in: name") for ln in out)
    res = run("diff", str(default_run), str(other), "--json")
    d = json.loads(res.output.splitlines()[-1])
    assert d["index"] == 11 and d["identical"] is False and d["fields"] == [{"field": "name", "a": "moe", "b": "root"}]


def test_diff_of_a_run_and_its_beginning(default_run: Path, tmp_path: Path) -> None:
    """A trace cut short is the same up to its end: the report says which run goes on."""
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(default_run.read_text().splitlines()[:51]) + "\n")
    res = run("diff", str(short), str(default_run))
    assert res.exit_code == 1 and f"{short} ends after 50 records" in res.output



@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_a_linux_run_has_its_header_and_is_inspected(tmp_path: Path) -> None:
    """l4sim linux run --jsonl starts its file with the run's program, arguments, seed and cores;
    the inspector reads it (replay says it reruns boots only)."""
    busybox = shutil.which("busybox")
    assert busybox is not None
    trace = tmp_path / "l.jsonl"
    res = run("linux", "run", "--jsonl", str(trace), busybox, "echo", "hi")
    assert res.exit_code == 0, res.output
    r = read_run(str(trace))
    assert r.header is not None
    assert (r.header["command"], r.header["argv"], r.header["seed"], r.header["cores"]) == (
        "linux run", [busybox, "echo", "hi"], 0, 1)
    assert r.header["path"] == str(Path(busybox).absolute())
    model = build(r)
    assert any(t["name"] == "busybox" for t in model["tasks"]) and model["faults"]
    assert "replay reruns runs of l4sim boot" in one_line_error(
        run("replay", str(trace), "--until", "5", "--export", str(tmp_path / "s")))
