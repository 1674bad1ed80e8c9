"""Tests for the trace collector and the JSONL / Chrome trace exporters."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l4sim.kernel.trace import Tracer
from l4sim.tools.trace_export import (
    DEVICES_TID,
    RecordLike,
    check_writable,
    thread_names_from,
    to_chrome,
    to_jsonl,
    write_chrome,
    write_jsonl,
)

# Two cores: "client" (tid 10) calls "server" (tid 20) on core 1, a device
# raises an interrupt off-core, and the last slices are still open at the end.
RECORDS: list[RecordLike] = [
    (0, 0, "thread", 10, {"name": "client", "task": "app"}),
    (0, 0, "thread", 20, {"name": "server", "task": "srv"}),
    (1000, 0, "switch", 10, {"from": -1}),
    (1500, 1, "switch", 20, {"from": -1}),
    (2000, 1, "block", 20, {"state": "recv", "on": -1}),
    (2000, 1, "switch", -1, {"from": 20}),
    (
        3000,
        0,
        "ipc",
        10,
        {"to": 20, "proto": 0, "label": 7, "words": 2, "items": 0, "flow": 42, "op": "call"},
    ),
    (3500, 0, "switch", -1, {"from": 10}),
    (4000, -1, "irq", -1, {"irq": 99, "line": 5, "delivered": 1}),
    (4200, 1, "switch", 20, {"from": -1}),
    (4200, 1, "recv", 20, {"from": 10, "flow": 42}),
    (5000, 1, "sched", 20, {"prio": 3, "cpus": 3, "cpu": 0}),
    (6000, 1, "frobnicate", 20, {"widget": "x", "n": None}),
    (7500, 0, "log", -1, {"text": "done"}),
]


def chrome_events(trace: dict[str, Any], ph: str) -> list[dict[str, Any]]:
    """Return the events of one phase, in output order."""
    return [ev for ev in trace["traceEvents"] if ev["ph"] == ph]


def test_tracer_collects_records_in_order() -> None:
    """The tracer appends emitted records and filters them by kind."""
    tracer = Tracer()
    assert len(tracer) == 0
    tracer.emit((5, 0, "wake", 3, {}))
    tracer.emit((6, 0, "log", -1, {"text": "hi"}))
    tracer.emit((7, 1, "wake", 4, {}))
    assert len(tracer) == 3
    assert [rec[3] for rec in tracer.by_kind("wake")] == [3, 4]
    assert tracer.by_kind("ipc") == []
    assert list(tracer) == tracer.records
    tracer.clear()
    assert len(tracer) == 0


def test_jsonl_round_trips_through_json_loads() -> None:
    """Each JSONL line parses back to the record's fields merged with its args."""
    buf = io.StringIO()
    to_jsonl(RECORDS, buf)
    lines = buf.getvalue().splitlines()
    assert len(lines) == len(RECORDS)
    for line, (t, cpu, kind, tid, args) in zip(lines, RECORDS, strict=True):
        obj = json.loads(line)
        assert obj["t"] == t and obj["cpu"] == cpu and obj["kind"] == kind and obj["tid"] == tid
        for key, value in args.items():
            assert obj[key if key not in ("t", "cpu", "kind", "tid") else "arg_" + key] == value
        assert line == json.dumps(obj, sort_keys=True, separators=(",", ":"))


def test_jsonl_keeps_record_cpu_when_an_arg_is_named_cpu() -> None:
    """A sched record's ``cpu`` argument is written as ``arg_cpu`` beside the record's cpu."""
    buf = io.StringIO()
    to_jsonl([(5000, 1, "sched", 20, {"prio": 3, "cpus": 3, "cpu": 0})], buf)
    assert json.loads(buf.getvalue()) == {
        "t": 5000,
        "cpu": 1,
        "kind": "sched",
        "tid": 20,
        "prio": 3,
        "cpus": 3,
        "arg_cpu": 0,
    }


def test_chrome_has_process_and_core_track_metadata() -> None:
    """The Chrome trace names the machine process, one track per core and a devices track."""
    trace = to_chrome(RECORDS)
    assert trace["displayTimeUnit"] == "ns"
    meta = chrome_events(trace, "M")
    assert trace["traceEvents"][: len(meta)] == meta
    process = [ev for ev in meta if ev["name"] == "process_name"]
    assert process == [
        {"ph": "M", "pid": 0, "tid": 0, "name": "process_name", "args": {"name": "l4sim machine"}}
    ]
    tracks = {ev["tid"]: ev["args"]["name"] for ev in meta if ev["name"] == "thread_name"}
    assert tracks == {0: "core 0", 1: "core 1", DEVICES_TID: "devices"}
    assert all(ev["pid"] == 0 for ev in trace["traceEvents"])


def test_switch_records_become_slices_in_microseconds() -> None:
    """Consecutive switches on a core give X slices with µs ts/dur on that core's track."""
    slices = chrome_events(to_chrome(RECORDS), "X")
    got = [(ev["tid"], ev["name"], ev["ts"], ev["dur"], ev["args"]["tid"]) for ev in slices]
    assert got == [
        (0, "client", 1.0, 2.5, 10),
        (1, "server", 1.5, 0.5, 20),
        (1, "server", 4.2, 3.3, 20),  # still running: closes at the last record (7500 ns)
    ]
    assert all(isinstance(ev["ts"], float) and isinstance(ev["dur"], float) for ev in slices)


def test_thread_names_argument_overrides_and_unknown_threads_get_a_default() -> None:
    """Explicit thread names override the thread records and unnamed threads show as "thread <tid>"."""
    records: list[RecordLike] = [
        (0, 0, "thread", 1, {"name": "a", "task": "t"}),
        (10, 0, "switch", 1, {"from": -1}),
        (20, 0, "switch", 2, {"from": 1}),
        (30, 0, "idle", -1, {}),
    ]
    assert thread_names_from(records) == {1: "a"}
    slices = chrome_events(to_chrome(records, {1: "renamed"}), "X")
    assert [(ev["name"], ev["ts"], ev["dur"]) for ev in slices] == [
        ("renamed", 0.01, 0.01),
        ("thread 2", 0.02, 0.01),
    ]


def test_ipc_and_recv_become_matching_flow_events() -> None:
    """An ipc/recv pair gives an s/f flow pair with one id, each at its instant's ts and track."""
    events = to_chrome(RECORDS)["traceEvents"]
    starts = [ev for ev in events if ev["ph"] == "s"]
    ends = [ev for ev in events if ev["ph"] == "f"]
    assert len(starts) == len(ends) == 1
    start, end = starts[0], ends[0]
    assert start["id"] == end["id"] == 42
    assert start["cat"] == end["cat"] == "ipc" and start["name"] == end["name"] == "ipc"
    assert end["bp"] == "e" and "bp" not in start
    assert (start["tid"], start["ts"]) == (0, 3.0)
    assert (end["tid"], end["ts"]) == (1, 4.2)
    # each flow event directly follows the instant it belongs to
    for flow, kind in ((start, "ipc"), (end, "recv")):
        before = events[events.index(flow) - 1]
        assert (before["ph"], before["name"], before["tid"], before["ts"]) == (
            "i",
            kind,
            flow["tid"],
            flow["ts"],
        )


def test_flow_without_its_other_end_gets_no_arrow() -> None:
    """An ipc whose recv is missing stays an instant but emits no flow event."""
    records: list[RecordLike] = [(0, 0, "ipc", 1, {"to": 2, "flow": 7, "op": "send"})]
    trace = to_chrome(records)
    assert [ev["ph"] for ev in trace["traceEvents"] if ev["ph"] != "M"] == ["i"]


def test_instants_carry_args_and_unknown_kinds_are_exported() -> None:
    """Instant events carry the record args plus tid, including for an unknown kind."""
    instants = chrome_events(to_chrome(RECORDS), "i")
    assert [ev["name"] for ev in instants] == ["ipc", "irq", "recv", "sched", "frobnicate", "log"]
    assert all(ev["s"] == "t" and ev["cat"] == ev["name"] for ev in instants)
    unknown = instants[4]
    assert (unknown["tid"], unknown["ts"]) == (1, 6.0)
    assert unknown["args"] == {"tid": 20, "widget": "x", "n": None}
    irq = instants[1]
    assert irq["tid"] == DEVICES_TID and irq["args"]["irq"] == 99


def test_timed_events_are_sorted_by_timestamp() -> None:
    """Timed events are in ts order even when the records are not."""
    records: list[RecordLike] = [
        (300, 0, "log", -1, {"text": "late"}),
        (100, 0, "log", -1, {"text": "early"}),
        (100, 0, "log", -1, {"text": "early, second"}),
    ]
    timed = [ev for ev in to_chrome(records)["traceEvents"] if ev["ph"] != "M"]
    assert [ev["args"]["text"] for ev in timed] == ["early", "early, second", "late"]


def test_written_files_are_byte_identical(tmp_path: Path) -> None:
    """Writing the same records twice gives byte-identical Chrome and JSONL files."""
    first, second = tmp_path / "a.trace.json", tmp_path / "b.trace.json"
    write_chrome(RECORDS, first)
    write_chrome([(t, c, k, tid, dict(a)) for t, c, k, tid, a in RECORDS], second)
    assert first.read_bytes() == second.read_bytes()
    assert json.loads(first.read_text(encoding="utf-8")) == to_chrome(RECORDS)
    write_jsonl(RECORDS, tmp_path / "a.jsonl")
    write_jsonl(RECORDS, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()


def test_empty_record_list_gives_a_valid_trace(tmp_path: Path) -> None:
    """No records still give a loadable trace holding only the process metadata."""
    path = tmp_path / "empty.trace.json"
    write_chrome([], path)
    trace = json.loads(path.read_text(encoding="utf-8"))
    assert trace["displayTimeUnit"] == "ns"
    assert [ev["name"] for ev in trace["traceEvents"]] == ["process_name"]
    buf = io.StringIO()
    to_jsonl([], buf)
    assert buf.getvalue() == ""


_ARG = st.one_of(st.none(), st.integers(-(2**40), 2**40), st.text(max_size=5))
_RECORD = st.tuples(
    st.integers(0, 10**9),
    st.integers(-1, 3),
    st.sampled_from(["switch", "idle", "ipc", "recv", "thread", "block", "irq", "mystery"]),
    st.integers(-1, 5),
    st.dictionaries(st.sampled_from(["from", "flow", "name", "t", "tid", "x"]), _ARG, max_size=4),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_RECORD, max_size=25))
def test_arbitrary_records_export_deterministically(records: list[RecordLike]) -> None:
    """Any well-shaped record list exports without error, sorted and reproducibly."""
    records = sorted(records, key=lambda rec: rec[0])
    text = json.dumps(to_chrome(records), sort_keys=True, separators=(",", ":"))
    assert text == json.dumps(to_chrome(list(records)), sort_keys=True, separators=(",", ":"))
    timed = [ev for ev in json.loads(text)["traceEvents"] if ev["ph"] != "M"]
    assert [ev["ts"] for ev in timed] == sorted(ev["ts"] for ev in timed)
    assert all(ev["dur"] >= 0 for ev in timed if ev["ph"] == "X")
    buf = io.StringIO()
    to_jsonl(records, buf)
    assert len([json.loads(line) for line in buf.getvalue().splitlines()]) == len(records)


def test_every_kind_the_kernel_emits_is_listed() -> None:
    """The KINDS table names every record kind the kernel's trace points emit, and no other."""
    import re
    from pathlib import Path

    import l4sim.kernel as kpkg
    from l4sim.kernel.trace import KINDS

    src = "".join(p.read_text() for p in Path(kpkg.__file__).parent.glob("*.py"))
    emitted = set(re.findall(r'_trace\([^,]+, "([a-z_]+)"', src))
    assert emitted == set(KINDS), (emitted ^ set(KINDS))


# -- writing files whole ------------------------------------------------------------------------


def _interrupted_records() -> Any:
    """The records, then Ctrl-C half-way through the file."""
    yield from RECORDS[:3]
    raise KeyboardInterrupt


@pytest.mark.parametrize("write", [write_jsonl, write_chrome])
def test_an_interrupted_write_leaves_the_old_file(tmp_path: Path, write: Any) -> None:
    """Ctrl-C while a trace is written leaves the file as it was and no temporary file beside it."""
    path = tmp_path / "t.out"
    path.write_text("the previous trace\n")
    with pytest.raises(KeyboardInterrupt):
        write(_interrupted_records(), path)
    assert path.read_text() == "the previous trace\n"
    assert [p.name for p in tmp_path.iterdir()] == ["t.out"]


@pytest.mark.parametrize("write", [write_jsonl, write_chrome])
def test_a_write_replaces_the_file_whole(tmp_path: Path, write: Any) -> None:
    """A completed write replaces the old file with the whole new one (through a link: the link stays)."""
    target = tmp_path / "real.out"
    target.write_text("old")
    link = tmp_path / "link.out"
    link.symlink_to(target)
    write(RECORDS, link)
    assert link.is_symlink() and target.read_text() != "old"
    if write is write_chrome:
        assert json.loads(target.read_text())["traceEvents"]
    else:
        assert len(target.read_text().splitlines()) == len(RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.out", "real.out"]


def test_a_device_is_written_in_place() -> None:
    """A path that is a device (/dev/null) is written as it is, not replaced by a file."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    check_writable("/dev/null")
    write_jsonl(RECORDS, "/dev/null")
    assert Path("/dev/null").is_char_device()


def test_check_writable_creates_nothing(tmp_path: Path) -> None:
    """The check passes for a new file in a writable directory and leaves nothing there; it raises
    OSError naming the path for a missing directory or a directory."""
    check_writable(tmp_path / "new.json")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError) as e:
        check_writable(tmp_path / "no" / "t.json")
    assert e.value.filename == str(tmp_path / "no" / "t.json")
    with pytest.raises(IsADirectoryError):
        check_writable(tmp_path)
