"""The runtime API a program needs: threads under ned, scheduler proxies, the ICU, other programs'
threads and tasks with rights the script chooses -- and the script check of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.abi import SLOT_THREAD, Err, Proto
from l4sim.machine.board import LINE_PIT
from l4sim.runtime.loader import min_quota
from l4sim.runtime.ned import ScriptError, load_script
from l4sim.user.env import Env, L4Error, ThreadCap

from .test_system import run_plan, script, start_plan, statuses

ME = __name__
EPERM = int(Err.EPERM)


# --- programs ---------------------------------------------------------------------------------


async def _report(env: Env, n: int) -> int:
    """A spawned thread: send ``n`` to the main thread (slot 3) and end."""
    await ThreadCap(env, SLOT_THREAD).send(1, n)
    return 0


async def spawner(env: Env, name: str) -> int:
    """Start two threads with env.spawn and receive a word from each."""
    await env.spawn(_report, 20, name=f"{name}.w1")
    await env.spawn(_report, 22, name=f"{name}.w2")
    total = 0
    for _ in range(2):
        msg = await env.wait()
        total += msg.words[0] if not msg.error else 1000
    await env.print(f"{name}: two threads said {total}")
    return 0 if total == 42 else 1


async def _err_of(coro: Any) -> int:
    """0 when the operation went through, else its error number."""
    try:
        await coro
    except L4Error as e:
        return e.err or e.ipc_err
    return 0


async def _idle(env: Env) -> int:
    await env.receive(env.thread, timeout=1_000_000)
    return 0


async def proxy_limits(env: Env) -> int:
    """Against the scheduler proxy every program holds: within its limits, above them."""
    sched = env.scheduler
    th = await env.spawn(_idle, name="helper", prio=5)
    results = {
        "info": await sched.info(),
        "lower": await _err_of(sched.run_thread(th, 3)),
        "own prio": await _err_of(sched.run_thread(th, 10)),
        "above": await _err_of(sched.run_thread(th, 11)),
        "other cpu": await _err_of(sched.run_thread(th, 5, cpus=0b10)),
        "reservation": await _err_of(sched.set_reservation(th, 1000, 1_000_000)),
        "idle time elsewhere": await _err_of(sched.idle_time(1)),
    }
    await env.print(f"proxy: {results}")
    return 0


async def explicit_proxy(env: Env) -> int:
    """A proxy the script limited to priority 5 on core 1: the main thread moves itself there."""
    sched = env.scheduler
    results = {
        "info": await sched.info(),
        "above": await _err_of(sched.run_thread(env.thread, 6, cpus=0b10)),
        "core 0": await _err_of(sched.run_thread(env.thread, 5, cpus=0b01)),
        "move": await _err_of(sched.run_thread(env.thread, 5, cpus=0b10)),
    }
    await env.print(f"explicit: {results}")
    return 0


async def two_proxies(env: Env) -> int:
    """Its own proxy in slot 7 and a second one the script named ``boss``."""
    mine, boss = await env.scheduler.info(), await env.cap("boss").info()
    await env.print(f"proxies: {mine} {boss} {type(env.cap('boss')).__name__}")
    return 0


async def victim(env: Env, ns: int) -> int:
    await env.compute(ns)
    await env.print("victim: untouched")
    return 0


async def meddler(env: Env) -> int:
    """Given another program's main thread read-only: stats work, ex_regs and run_thread do not."""
    v: ThreadCap = env.cap("victim")
    results = {
        "stats": len(await v.stats()),
        "ex_regs": await _err_of(v.ex_regs(cancel=True)),
        "control": await _err_of(v.control(exc_handler=0)),
        "run_thread": await _err_of(env.scheduler.run_thread(v, 1)),
    }
    await env.print(f"meddler: {results}")
    return 0


async def writer(env: Env) -> int:
    """Given another program's main thread with W: ex_regs goes through."""
    regs = await env.cap("victim").ex_regs()
    await env.print(f"writer: ex_regs answered {len(regs)} words")
    return 0


async def driver(env: Env) -> int:
    """Given the ICU and a factory: bind the timer line to an Irq and receive one interrupt."""
    irq = await env.factory.create_irq()
    await irq.attach(env.thread, 0x10)
    await env.icu.bind(LINE_PIT, irq)
    msg = await env.receive(irq, timeout=10_000_000)
    await env.icu.unbind(LINE_PIT, irq)
    await env.print(f"driver: interrupt proto {msg.proto} label {msg.label:#x} error {msg.error}")
    return 0 if msg.proto == Proto.IRQ and not msg.error else 1


async def icu_reader(env: Env) -> int:
    """Given the ICU read-only: info works, bind is refused."""
    irq = await env.factory.create_irq()
    lines = (await env.icu.info())[1]
    err = await _err_of(env.icu.bind(LINE_PIT, irq))
    await env.print(f"reader: {lines} lines, bind -> {err}")
    return 0


# --- threads under ned ------------------------------------------------------------------------


def test_a_program_with_a_factory_starts_threads_under_ned(tmp_path: Path) -> None:
    """env.spawn works for a program ned started: its threads run (on its own core by default,
    core 1 for the second program) and talk to the main thread."""
    p = script(tmp_path, f'''
start("a", "{ME}:spawner", caps={{"factory": factory()}}, prio=10, args=("a",))
start("b", "{ME}:spawner", caps={{"factory": factory()}}, prio=10, cpus=[1], args=("b",))
''')
    k, s, reason = run_plan(load_script(p, 2))
    text = k.machine.uart.text()
    assert "a: two threads said 42" in text and "b: two threads said 42" in text
    assert statuses(s) == {"a": "exit 0", "b": "exit 0"} and reason == "stop"
    cores = {t.name: t.cpu for t in k.threads if t.name.endswith((".w1", ".w2"))}
    assert cores == {"a.w1": 0, "a.w2": 0, "b.w1": 1, "b.w2": 1}


def test_without_a_factory_spawn_fails_with_the_programs_own_error(tmp_path: Path) -> None:
    """No factory, no threads: creating one fails in the program (an L4Error it may catch), and
    uncaught it ends that program like any exception."""
    p = script(tmp_path, f'start("a", "{ME}:spawner", args=("a",))\n')
    _, s, _ = run_plan(load_script(p, 2))
    assert statuses(s)["a"].startswith("L4Error: create ThreadCap failed: ENOT_EXISTENT")


# --- scheduler proxies ------------------------------------------------------------------------


def test_the_default_proxy_allows_the_programs_own_priority_and_cores_and_refuses_more(tmp_path: Path) -> None:
    """A program at priority 10 on core 0: up to 10 on core 0 goes through; 11, core 1, a
    reservation and another core's idle time are refused with -EPERM; info reports the limits."""
    p = script(tmp_path, f'start("p", "{ME}:proxy_limits", caps={{"factory": factory()}}, prio=10)\n')
    k, s, _ = run_plan(load_script(p, 2))
    want = {"info": (2, 10, 0b01), "lower": 0, "own prio": 0, "above": EPERM, "other cpu": EPERM,
            "reservation": EPERM, "idle time elsewhere": EPERM}
    assert f"proxy: {want}" in k.machine.uart.text()
    assert statuses(s) == {"p": "exit 0"}


def test_a_script_chosen_proxy_has_the_scripts_limits(tmp_path: Path) -> None:
    """scheduler(max_prio=5, cpus=[1]) given as ``scheduler``: priority 6 and core 0 are refused,
    and the program's main thread moves itself to core 1 at priority 5."""
    p = script(tmp_path, f'''
start("x", "{ME}:explicit_proxy", caps={{"scheduler": scheduler(max_prio=5, cpus=[1])}}, prio=20)
''')
    k, s = start_plan(load_script(p, 2))
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"
    want = {"info": (2, 5, 0b10), "above": EPERM, "core 0": EPERM, "move": 0}
    assert f"explicit: {want}" in k.machine.uart.text()
    main = next(t for t in k.threads if t.name == "x")
    assert (main.cpu, main.prio) == (1, 5)


def test_a_further_proxy_under_another_name_and_the_quota_it_needs(tmp_path: Path) -> None:
    """A scheduler(...) named ``boss`` lands in slot 9 as a SchedulerCap beside the default one;
    the program starts with exactly the minimum quota for two proxies."""
    p = script(tmp_path, f'''
start("p", "{ME}:two_proxies", prio=9, cpus=[1], quota={min_quota(schedulers=2)},
      caps={{"boss": scheduler(max_prio=2, cpus=[0, 1])}})
''')
    k, s, _ = run_plan(load_script(p, 2))
    assert "proxies: (2, 9, 2) (2, 2, 3) SchedulerCap" in k.machine.uart.text()
    assert statuses(s) == {"p": "exit 0"}


def test_the_proxy_is_a_gate_to_moe_not_the_kernel_scheduler(tmp_path: Path) -> None:
    """Slot 7 of a started program holds an IPC gate (moe's), granted: its only capability."""
    p = script(tmp_path, f'start("p", "{ME}:victim", args=(1_000_000,))\n')
    k, s = start_plan(load_script(p, 2))
    k.run(until=500_000)
    task = next(t for t in k.tasks if t.name == "p")
    e = task.caps.slots[7]
    assert e.obj.KIND == "gate" and e.parent is None and e.obj.refs == 1
    assert s.moe.stats()["schedulers"] == 1
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"
    assert s.moe.stats()["schedulers"] == 0, "the proxy died with the program"


# --- other programs' threads and tasks --------------------------------------------------------


def test_another_programs_thread_given_read_only_cannot_be_ex_regsed(tmp_path: Path) -> None:
    """program("victim").thread.m("r"): stats answer; ex_regs and control are refused by the
    kernel, run_thread by the proxy (no W); the victim runs on untouched."""
    p = script(tmp_path, f'''
start("victim", "{ME}:victim", prio=5, args=(300_000,))
start("meddler", "{ME}:meddler", caps={{"victim": program("victim").thread.m("r")}}, prio=10)
''')
    k, s, _ = run_plan(load_script(p, 2))
    text = k.machine.uart.text()
    want = {"stats": 5, "ex_regs": EPERM, "control": EPERM, "run_thread": EPERM}  # five stats words
    assert f"meddler: {want}" in text
    assert "victim: untouched" in text
    assert statuses(s) == {"victim": "exit 0", "meddler": "exit 0"}
    task = next(t for t in k.tasks if t.name == "meddler")
    assert task.alive is False


def test_with_the_write_right_the_same_thread_is_the_holders_to_change(tmp_path: Path) -> None:
    """The default rights of ``.thread`` are R W: ex_regs goes through."""
    p = script(tmp_path, f'''
start("victim", "{ME}:victim", prio=5, args=(300_000,))
start("writer", "{ME}:writer", caps={{"victim": program("victim").thread}}, prio=10)
''')
    k, s, _ = run_plan(load_script(p, 2))
    assert "writer: ex_regs answered 3 words" in k.machine.uart.text()
    assert statuses(s)["writer"] == "exit 0"


def test_another_programs_task_arrives_with_the_scripts_rights(tmp_path: Path) -> None:
    """program("a").task.m("r") lands in the holder's space as a task capability with R only."""
    p = script(tmp_path, f'''
start("a", "{ME}:victim", prio=5, args=(1_000_000,))
start("b", "{ME}:victim", caps={{"peer": program("a").task.m("r")}}, prio=5, args=(1_000_000,))
''')
    k, s = start_plan(load_script(p, 2))
    k.run(until=500_000)
    a = next(t for t in k.tasks if t.name == "a")
    b = next(t for t in k.tasks if t.name == "b")
    e = b.caps.slots[9]
    assert e.obj is a and e.rights == 4  # R
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"


# --- the ICU ----------------------------------------------------------------------------------


def test_a_program_given_the_icu_binds_an_irq_and_receives_an_interrupt(tmp_path: Path) -> None:
    """icu() as ``icu``: the program binds the timer line to an Irq of its own and gets a tick."""
    p = script(tmp_path, f'start("drv", "{ME}:driver", caps={{"icu": icu(), "factory": factory()}})\n')
    k, s = start_plan(load_script(p, 2))
    k.machine.pit.program(100_000)
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"
    assert "driver: interrupt proto -1 label 0x10 error 0" in k.machine.uart.text()
    assert statuses(s) == {"drv": "exit 0"}


def test_the_icu_given_read_only_answers_info_and_refuses_bind(tmp_path: Path) -> None:
    """icu().m("r"): info, but no bind (the kernel wants W)."""
    p = script(tmp_path, f'start("r", "{ME}:icu_reader", caps={{"icu": icu().m("r"), "factory": factory()}})\n')
    k, s, _ = run_plan(load_script(p, 2))
    assert statuses(s) == {"r": "exit 0"}
    assert f"reader: {k.machine.ic.nlines} lines, bind -> {EPERM}" in k.machine.uart.text()


# --- the script check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ('start("a", "{P}:victim", caps={{"t": program("b").thread}})', 2,
         "capability 't' of 'a' is the thread of program 'b', which the script does not start: start it, "
         "or fix the name"),
        ('start("a", "{P}:victim", caps={{"t": program("b").task}})\nstart("b", "{P}:victim")', 2,
         "capability 't' of 'a' is the task of program 'b', which starts later: start 'b' before 'a'"),
        ('start("a", "{P}:victim", caps={{"t": program("a").thread}})', 2,
         "capability 't' of 'a' is its own thread: a program holds its own task and main thread already"),
        ('start("a", "{P}:victim", caps={{"t": program("a")}})', 2,
         "capability 't' of 'a': program('a') names a program, not an object: pass program('a').thread "
         "or .task"),
        ('start("b", "{P}:victim")\nstart("a", "{P}:victim", caps={{"t": program("b").thread.m("rx")}})', 3,
         "rights 'rx' of program('b').thread: give letters of 'rwsd' (read, write, special, delete)"),
        ('start("a", "{P}:victim", caps={{"icu": icu().m("")}})', 2, "rights '' of icu()"),
        ('start("a", "{P}:victim", caps={{"s": scheduler(max_prio=300)}})', 2,
         "scheduler max_prio 300 is out of range: use 1 .. 254"),
        ('start("a", "{P}:victim", caps={{"s": scheduler(cpus=[5])}})', 2,
         "cpu 5 of 'scheduler()' does not exist: this machine has cores 0 .. 1"),
        ('start("a", "{P}:victim", caps={{"s": 7}})', 2,
         "pass a channel(...), channel.session(), dataspace(...), factory(), memory(...), scheduler(...), "
         "icu(), io.bus(...), ioports(...), eventlog() or program(...).thread / .task"),
        ('start("a", "{P}:victim", quota=328704, caps={{"s": scheduler()}})', 2,
         "quota 328704 of 'a' is too small for its log, scheduler, stack and heap: give at least 328960 bytes"),
        ('x = program("no name")', 2, "program name 'no name' is not allowed"),
    ],
)
def test_script_mistakes_with_the_new_names_are_one_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    """Each mistake: FILE:LINE and what to fix."""
    p = script(tmp_path, "\n" + body.format(P=ME) + "\n")
    with pytest.raises(ScriptError) as e:
        load_script(p, 2)
    msg = str(e.value)
    assert msg.startswith(f"{p}:{line}: "), msg
    assert words in msg, msg


def test_a_script_names_its_new_capabilities_in_the_plan(tmp_path: Path) -> None:
    """scheduler() without limits takes the program's priority and cores; icu() and program
    objects carry their rights (R W by default)."""
    p = script(tmp_path, f'''
start("b", "{ME}:victim", prio=7)
start("a", "{ME}:victim", prio=9, cpus=[0, 1],
      caps={{"s": scheduler(), "s2": scheduler(max_prio=3, cpus=1), "icu": icu(),
             "t": program("b").thread, "k": program("b").task.m("rwsd")}})
''')
    a = load_script(p, 2).programs[1]
    s, s2, icu_, t, k = (a.caps[n] for n in ("s", "s2", "icu", "t", "k"))
    assert (s.max_prio, s.cpus, s2.max_prio, s2.cpus) == (9, 0b11, 3, 0b10)
    assert icu_.rights == 5 and (t.program, t.kind, t.rights) == ("b", "thread", 5)
    assert (k.kind, k.rights) == ("task", 15)
