"""``l4sim linux run``'s quick start: the command lines it parses without click are parsed to
what click makes of them, and everything else is left to click."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from l4sim.cli import linux_run_cmd
from l4sim.tools.linuxrun import parse_fast


def _click(argv: list[str]) -> dict[str, object] | None:
    """What click makes of ``linux run ARGV`` (None: a usage error)."""
    try:
        ctx = linux_run_cmd.make_context("run", list(argv))
    except click.exceptions.Exit:
        return None
    except click.UsageError:
        return None
    except SystemExit:  # the one-line usage errors end the command
        return None
    return dict(ctx.params)


PLAIN = [
    ["/bin/true"], ["--", "/bin/true"], ["--strace", "--", "/bin/true", "-x", "--cores", "9"],
    ["--cores", "4", "--seed", "7", "prog", "a", "b"], ["--cores=2", "--seed=-3", "prog"],
    ["--root", "/r", "--workdir", "/w", "--write-back", "--trace", "t.json", "--jsonl", "t.jsonl", "p"],
    ["--first-instruction-file", "/tmp/x", "--", "p"], ["--cores", "3", "--cores", "5", "p"],
    ["--cores", " 6 ", "p"], ["--seed", "+2", "p"], ["--root=", "p"], ["p", "--strace"], ["-", "p"],
]
OTHER = [
    [], ["--strace"], ["--help"], ["-h", "p"], ["--bogus", "p"], ["--cores", "x", "p"], ["--cores"],
    ["--root", "--strace", "p"], ["--strace=1", "p"], ["--cores", "\udcfe", "p"], ["--"],
]


@pytest.mark.parametrize("argv", PLAIN)
def test_a_plain_command_line_is_parsed_as_click_parses_it(argv: list[str]) -> None:
    """The quick parser's parameters are click's, for every plain command line."""
    fast = parse_fast(argv)
    assert fast is not None
    slow = _click(argv)
    assert slow is not None and fast == slow


@pytest.mark.parametrize("argv", OTHER)
def test_anything_else_is_left_to_click(argv: list[str]) -> None:
    """Help, unknown, malformed or missing options and arguments are not parsed quickly."""
    assert parse_fast(argv) is None


def test_linux_run_starts_without_click(tmp_path: Path) -> None:
    """A plain `l4sim linux run` never imports click (it costs a fifth of the start-up)."""
    code = ("import sys; sys.argv = ['l4sim', 'linux', 'run', '--', '/no/such/program']\n"
            "from l4sim.launch import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'click' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.stdout == "2 False\n" and r.stderr == "l4sim: /no/such/program: no such file\n"


def test_a_usage_error_still_gets_click_s_line(tmp_path: Path) -> None:
    """An unknown option through the quick entry point: click's one line, status 2."""
    r = subprocess.run([sys.executable, "-m", "l4sim", "linux", "run", "--bogus", "/bin/true"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "l4sim: no such option '--bogus'; see l4sim linux run --help\n")
