"""l4sim tcb: the TCB from the live authority graph, lines of code, the graph, the comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.tools.tcb import ROOT, TcbError, compare, dot, loc, tcb


def test_loc_counts_code_lines_only(tmp_path: Path) -> None:
    """Blank lines, comments and docstrings are not code; a multi-line statement counts each line."""
    p = tmp_path / "m.py"
    p.write_text('"""doc\nstring"""\n\n# comment\nx = (1,\n     2)\n\n\ndef f():\n    """doc"""\n    return x  # end\n')
    assert loc(p) == 4


def test_the_appcores_tcb_has_the_gui_and_its_drivers_but_not_the_browser() -> None:
    """The AppCore depends on the GUI (a gate it holds), the drivers beneath it, moe, sigma0,
    io and ned (which holds its task), and on nothing of the browser or the bank."""
    t = tcb("split-demo", "appcore")
    assert t.why["appcore"] == "itself"
    assert t.why["gui"] == "serves a gate appcore holds"
    assert t.why["ned"] == "holds appcore's task"
    assert {"fb-drv", "input-drv", "io", "moe", "sigma0"} <= set(t.members)
    assert "browser" not in t.members and "bank" not in t.members
    rows = {r["name"]: r for r in t.rows()}
    assert "scenarios/programs/split_appcore.py" in rows["appcore"]["modules"]
    assert "scenarios/programs/split_browser.py" not in rows["appcore"]["modules"]
    assert rows["kernel"]["loc"] == sum(loc(p) for p in sorted((ROOT / "kernel").glob("*.py")))
    assert t.total() < sum(r["loc"] for r in t.rows())  # shared modules counted once


def test_the_browsers_tcb_includes_the_appcore_it_calls() -> None:
    t = tcb("split-demo", "browser")
    assert t.why["appcore"] == "serves a gate browser holds"
    assert "bank" in t.members


def test_an_unknown_component_is_one_line() -> None:
    with pytest.raises(TcbError, match=r"split-demo has no component 'nobody': choose one of .*appcore"):
        tcb("split-demo", "nobody")


def test_the_graph_names_every_component_and_marks_the_tcb() -> None:
    t = tcb("gui", "editor")
    src = dot(t)
    assert src.startswith("digraph tcb {") and '"editor" -> "gui" [label="uses"' in src
    assert '"editor" [label="editor\\n' in src and "fillcolor" in src


def test_compare_gives_the_ratio_and_the_names() -> None:
    r = compare("split-demo")
    assert r["monolithic_loc"] > r["split_loc"] > 0
    assert r["ratio"] == round(r["monolithic_loc"] / r["split_loc"], 2)
    assert "browser" in r["monolithic"] and "browser" not in r["split"]


def test_cli_json_and_dot_graph(tmp_path: Path) -> None:
    g = tmp_path / "g.dot"
    r = CliRunner().invoke(main, ["tcb", "gui", "viewer", "--json", "--graph", str(g)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["component"] == "viewer" and out["total_loc"] > 0
    assert [row["name"] for row in out["tcb"]][:2] == ["kernel", "viewer"]
    assert g.read_text().startswith("digraph")
    r = CliRunner().invoke(main, ["tcb", "compare", "split-demo", "--json"])
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.output.strip().splitlines()[-1])) == {
        "monolithic_loc", "split_loc", "ratio", "monolithic", "split"}


def test_cli_errors_are_one_line() -> None:
    r = CliRunner().invoke(main, ["tcb", "gui"])
    assert r.exit_code == 2 and "give SCENARIO COMPONENT" in r.output
    r = CliRunner().invoke(main, ["tcb", "compare", "gui"])
    assert r.exit_code == 2 and "defines no monolithic and split pair" in r.output
    r = CliRunner().invoke(main, ["tcb", "nosuch", "x"])
    assert r.exit_code == 2 and "unknown scenario 'nosuch'" in r.output
