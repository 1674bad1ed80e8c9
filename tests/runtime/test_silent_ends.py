"""A program that ends without a word: it deletes its own task, its main thread, or gives up all
of its capabilities.  ned learns it from the kernel and reports it like any end; the boot ends.

Two of the kernel's mechanisms carry the news: the deletion notification (each program holds the
only capability to its parent gate, which is bound to ned, so the gate's death reaches ned's
delete Irq) and the closed wait of ned's watcher thread on the program's main thread (aborted by
the kernel when that thread dies).  Each case is booted with ``l4sim boot SCRIPT --json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.kernel.abi import Fpage
from l4sim.runtime.ned import load_script
from l4sim.user.env import Env

from .test_system import NED_INITIAL, ned_slots, run_plan, script, statuses

ME = __name__


# --- programs ---------------------------------------------------------------------------------


async def deletes_its_task(env: Env) -> int:
    await env.print("deleting my task")
    await env.task.delete(1)  # it holds its task with D: the kernel destroys it, and this thread
    return 0


async def deletes_its_thread(env: Env) -> int:
    await env.print("deleting my main thread")
    await env.task.delete(3)
    return 0


async def deletes_its_thread_later(env: Env) -> int:
    await env.compute(1_000_000)
    await env.task.delete(3)
    return 0


async def drops_every_capability(env: Env) -> int:
    """Unmap every slot of its own space (task and thread included) and go on computing: it can
    reach nothing any more, not even its parent, yet its thread runs."""
    await env.print("dropping all my capabilities")
    await env.task.unmap(Fpage.obj(0, 6), include_self=True)  # slots 0 .. 63
    while True:
        await env.compute(1_000_000)


async def drops_its_capabilities_then_returns(env: Env) -> int:
    """Unmap every slot, then return: the exit status cannot reach its parent any more."""
    await env.task.unmap(Fpage.obj(0, 6), include_self=True)
    return 0


async def lives(env: Env, ns: int) -> int:
    await env.compute(ns)
    await env.print("still here")
    return 0


# --- helpers ----------------------------------------------------------------------------------


def boot_json(path: Path) -> tuple[str, dict[str, Any]]:
    """``l4sim boot PATH --json``: the console and the summary."""
    res = CliRunner().invoke(main, ["boot", str(path), "--json"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    return "\n".join(lines[:-1]), json.loads(lines[-1])


def row(summary: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in summary["components"] if c["name"] == name)


# --- the three ways ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("program", "how"),
    [
        ("deletes_its_task", "its task was deleted"),
        ("deletes_its_thread", "its main thread was deleted"),
        ("drops_every_capability", "it gave up its parent capability"),
    ],
)
def test_a_program_that_ends_without_a_word_is_reported_and_the_boot_ends(
        tmp_path: Path, program: str, how: str) -> None:
    """``ned: NAME: ended: HOW`` on the console, status ``ended`` with how in the summary, the
    other program runs to its end, and the boot stops because the system ended."""
    p = script(tmp_path, f'''
start("quiet", "{ME}:{program}", prio=20)
start("other", "{ME}:lives", prio=10, cpus=[1], args=(200_000,))
''')
    console, summary = boot_json(p)
    assert f"ned     | ned: quiet: ended: {how}" in console.splitlines()
    assert "ned     | ned: other: exit 0" in console.splitlines()
    q = row(summary, "quiet")
    assert (q["status"], q["ended"], q["exit"], q["fault"]) == ("ended", how, None, None)
    assert row(summary, "other")["status"] == "exited"
    assert summary["stopped_because"] == "stop"
    assert row(summary, "ned")["exit"] == 1, "an end without a word counts against ned's exit status"


def test_the_summary_table_shows_how_it_ended(tmp_path: Path) -> None:
    """The text summary's status column: ``ended: its task was deleted``."""
    p = script(tmp_path, f'start("quiet", "{ME}:deletes_its_task")\n')
    res = CliRunner().invoke(main, ["boot", str(p)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("quiet ") and "|" not in ln)
    assert line.endswith("ended: its task was deleted")


def test_a_main_thread_that_ends_without_telling_its_parent_is_noticed(tmp_path: Path) -> None:
    """A program that drops its capabilities and then returns: whichever news comes first, ned
    reports it ended, and does not wait for an exit status that cannot come."""
    p = script(tmp_path, f'start("quiet", "{ME}:drops_its_capabilities_then_returns")\n')
    console, summary = boot_json(p)
    assert "ned: quiet: ended: " in console
    assert row(summary, "quiet")["status"] == "ended" and summary["stopped_because"] == "stop"


def test_a_daemon_that_deletes_its_task_is_reported_too(tmp_path: Path) -> None:
    """Daemons are watched like every program: one that deletes its task gets its line."""
    p = script(tmp_path, f'''
start("d", "{ME}:deletes_its_task", daemon=True, prio=30)
start("a", "{ME}:lives", args=(300_000,))
''')
    console, summary = boot_json(p)
    assert "ned: d: ended: its task was deleted" in console
    assert row(summary, "d")["status"] == "ended"


def test_ned_keeps_nothing_of_a_program_that_ended_without_a_word(tmp_path: Path) -> None:
    """After the news ned has deleted everything it held of the program: its watcher, threads,
    session and kernel-memory factory are gone, and ned's capability space is its own again."""
    p = script(tmp_path, f'''
start("quiet", "{ME}:deletes_its_thread_later", prio=5)
start("other", "{ME}:lives", prio=1, args=(2_000_000,))
''')
    k, s, reason = run_plan(load_script(p, 2))
    assert reason == "stop"
    assert statuses(s) == {"quiet": "ended: its main thread was deleted", "other": "exit 0"}
    assert ned_slots(s) == NED_INITIAL
    quiet = [t for t in k.threads if t.name.startswith("quiet")]
    assert sorted(t.name for t in quiet) == ["quiet", "quiet.rm", "quiet.watch"]
    assert not any(t.alive for t in quiet) and not any(t.alive for t in k.tasks if t.name == "quiet")
    task = next(t for t in k.tasks if t.name == "quiet")
    assert task.factory is not None and not task.factory.alive, "its kernel memory went back to ned"
