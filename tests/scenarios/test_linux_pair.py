"""The ``linux-pair`` scenario: two Linux instances and a native store between them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.tools.boot import boot, scenario_names

pytestmark = pytest.mark.skipif(shutil.which("busybox") is None and not Path("/bin/busybox").is_file(),
                                reason="busybox is not installed")
README = Path(__file__).resolve().parents[2] / "README.md"


def test_a_record_goes_from_one_instance_to_the_other_and_nothing_else_does() -> None:
    """alice stores a record through /dev/l4/store and bob reads it back through his own stub;
    bob has his own pid 1 and /proc, none of alice's files, and no device for a capability he
    was not given (ENOENT).  The console lines are the README's."""
    assert "linux-pair" in scenario_names()
    res = boot("linux-pair")
    text = res.kernel.machine.uart.text()
    assert "bob     | bob: read back through my own stub: hello from alice\n" in text
    assert "bob     | bob: I am pid 1 of my own instance; /proc has 1 3\n" in text
    assert "cat: can't open '/tmp/note': No such file or directory" in text
    assert "cat: can't open '/dev/l4/secret': No such file or directory" in text
    readme = README.read_text()
    block = readme[readme.index("$ l4sim boot linux-pair\n"):]
    block = block[: block.index("```")]
    shown = [ln for ln in block.splitlines() if "|" in ln]
    assert shown == [ln for ln in text.splitlines() if "|" in ln]
    rows = res.summary()["linux"]
    assert [(r["name"], r["status"]) for r in rows] == [("alice", 0), ("bob", 0)]
    for r in rows:
        assert re.search(rf"^{r['name']} +{r['processes']} +{r['syscalls']}  exit 0$", block, re.M)


def test_the_trace_is_the_same_in_two_runs() -> None:
    """Deterministic: the same scenario and seed give the same trace, record for record."""
    a, b = boot("linux-pair", trace=True), boot("linux-pair", trace=True)
    assert a.tracer is not None and b.tracer is not None
    assert len(a.tracer.records) > 1000 and a.tracer.records == b.tracer.records


def test_json_carries_a_linux_list() -> None:
    """``--json``'s last line has "linux": a list of {name, processes, syscalls, status}."""
    r = CliRunner().invoke(main, ["boot", "linux-pair", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert [sorted(x) for x in summary["linux"]] == [["name", "processes", "status", "syscalls"]] * 2
    assert [x["name"] for x in summary["linux"]] == ["alice", "bob"]
