"""A native program that raises: the console and the summary say what, and where in the program."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from l4sim.cli import main

PROGRAM = '''\
"""A program with a typo."""


async def main(env):
    await env.print("counting")
    total = 0
    for i in range(3):
        total += i
    env.prnt(total)
    return 0
'''


def test_a_raising_program_shows_its_exception_and_its_own_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``ned: NAME: Type: message (file.py:line)`` on the console and the same in the summary."""
    (tmp_path / "myprog.py").write_text(PROGRAM)
    script = tmp_path / "system.py"
    script.write_text(textwrap.dedent('''\
        start("counter", "myprog:main")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    res = CliRunner().invoke(main, ["boot", str(script), "--json"])
    want = "AttributeError: 'Env' object has no attribute 'prnt' (myprog.py:9)"
    assert f"ned: counter: {want}" in res.stdout, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    row = next(c for c in summary["components"] if c["name"] == "counter")
    assert row["fault"] == want
    assert "exception 0x40" not in res.stdout
