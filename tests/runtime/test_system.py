"""The runtime booted from a startup script: slots, quotas, failed starts, ends, identity.

The programs are defined here and named ``{__name__}:function`` in the
scripts (the module is imported already, so the loader finds it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from l4sim.kernel.abi import Fpage
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.objects import TS
from l4sim.machine.board import Machine
from l4sim.machine.memory import PAGE_SIZE
from l4sim.runtime.loader import HEAP_SIZE, MIN_QUOTA, STACK_SIZE, Child, min_quota
from l4sim.runtime.moe import OBJECT_CHARGE
from l4sim.runtime.ned import Plan, load_script
from l4sim.runtime.system import System, boot_plan
from l4sim.scenarios.programs.demo import ADD, OPEN
from l4sim.tools.boot import BootResult, boot
from l4sim.user.env import Env, Gate

ME = __name__
DEMO = "l4sim.scenarios.programs.demo"
#: ned's own capabilities: task, factory, thread, log, icu, scheduler, mem, ns, its delete Irq
NED_INITIAL = {1, 2, 3, 5, 6, 7, 8, 9, 10}


# --- programs ---------------------------------------------------------------------------------


async def work(env: Env, ns: int, code: int = 0) -> int:
    await env.compute(ns)
    return code


async def session_then_memory(env: Env) -> int:
    """Receive a session capability into a fresh slot, then use the whole stack and heap."""
    slot = env.alloc_slot()
    r = await env.cap("svc").call(OPEN, rcv=(Fpage.obj(slot),))
    if r.error or r.proto < 0:
        return 10
    session = Gate(env, slot)
    if (await session.call(ADD, 5)).words != (5,):
        return 11
    for base, size in (env.stack, env.heap):
        for addr in range(base, base + size, PAGE_SIZE):
            await env.mem.write_word(addr, addr)
        for addr in range(base, base + size, PAGE_SIZE):
            if await env.mem.read_word(addr) != addr:
                return 12
    return 0 if (await session.call(ADD, 1)).words == (6,) else 13


async def asks_for_a_capability_it_lacks(env: Env) -> int:
    try:
        env.cap("stats")
    except KeyError as e:
        await env.print(f"caught: {e}")
    env.cap("stats")  # this time uncaught: the program faults
    return 0


# --- helpers ----------------------------------------------------------------------------------


def script(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "system.py"
    p.write_text(text)
    return p


def start_plan(plan: Plan, cores: int = 2) -> tuple[Kernel, System]:
    k = Kernel(Machine(cores=cores))
    return k, boot_plan(k, plan)


def run_plan(plan: Plan, cores: int = 2) -> tuple[Kernel, System, str]:
    k, s = start_plan(plan, cores)
    reason = k.run(until=10_000_000_000, stop=s.done)
    return k, s, reason


def ned_slots(s: System) -> set[int]:
    th = s.ned_thread()
    assert th is not None and th.task is not None
    return set(th.task.caps.slots)


def ned_waits(s: System) -> bool:
    """ned is in its open wait for the next message (not inside a call)."""
    th = s.ned_thread()
    return th is not None and th.state is TS.RECV and th.partner is None


def run_until(k: Kernel, cond: Callable[[], bool]) -> None:
    assert k.run(until=10_000_000_000, stop=cond) == "stop"


def child_slots(c: Child) -> set[int]:
    return {cap.slot for cap in (c.task, c.thread, c.rm, c.parent, c.session, c.kmem, c.watcher)
            if cap is not None}


def statuses(s: System) -> dict[str, str]:
    return {c.name: c.status for c in s.programs}


# --- 1. one slot allocator per task -----------------------------------------------------------


def test_a_capability_received_into_a_fresh_slot_leaves_stack_and_heap_alone(tmp_path: Path) -> None:
    """The program's first allocated slot is not one of its region manager's: after receiving a
    session there, every page of its stack and heap still works."""
    p = script(tmp_path, f'''
svc = channel("svc")
start("counter", "{DEMO}:counter_server", caps={{"svc": svc.server(), "factory": factory(64 * 1024)}},
      prio=30, daemon=True)
start("user", "{ME}:session_then_memory", caps={{"svc": svc}}, prio=20)
''')
    _, s, reason = run_plan(load_script(p, 2))
    assert reason == "stop"
    assert statuses(s)["user"] == "exit 0"


# --- 2. quota -----------------------------------------------------------------------------------


def test_the_minimum_quota_is_what_the_loader_creates_from_the_session() -> None:
    """Log stream, scheduler proxy, stack and heap at moe's charges: 328,704 bytes for the default
    sizes; each further scheduler proxy one object more."""
    assert MIN_QUOTA == min_quota() == 4 * OBJECT_CHARGE + STACK_SIZE + HEAP_SIZE == 328_704
    assert min_quota(stack=1, heap=0) == 3 * OBJECT_CHARGE + PAGE_SIZE
    assert min_quota(schedulers=3) == MIN_QUOTA + 2 * OBJECT_CHARGE


def test_the_minimum_quota_suffices_for_a_whole_run(tmp_path: Path) -> None:
    """A program given exactly the minimum starts, and may touch every page of its stack and heap."""
    p = script(tmp_path, f'''
svc = channel("svc")
start("counter", "{DEMO}:counter_server", caps={{"svc": svc.server(), "factory": factory(64 * 1024)}},
      prio=30, daemon=True)
start("user", "{ME}:session_then_memory", caps={{"svc": svc}}, prio=20, quota={MIN_QUOTA})
''')
    _, s, _ = run_plan(load_script(p, 2))
    assert statuses(s)["user"] == "exit 0"


def test_one_byte_less_really_cannot_start_and_ned_goes_on(tmp_path: Path) -> None:
    """Past the check (the plan altered), minimum - 1 fails in the loader: ned says so on the
    console, starts the next program, and keeps nothing of the one that failed."""
    p = script(tmp_path, f'''
start("small", "{ME}:work", args=(1000,))
start("next", "{ME}:work", args=(1000,))
''')
    plan = load_script(p, 2)
    plan.programs[0].quota = MIN_QUOTA - 1
    k, s, reason = run_plan(plan)
    text = k.machine.uart.text()
    assert "ned: small: could not start: " in text and "ENOMEM" in text
    assert "ned: next: exit 0" in text
    assert reason == "stop" and statuses(s) == {"next": "exit 0"}
    assert ned_slots(s) == NED_INITIAL
    assert not any(t.alive for t in k.tasks if t.name == "small"), "the half-started task is deleted"


def test_a_program_that_cannot_get_its_factory_is_reported_and_the_rest_run(tmp_path: Path) -> None:
    """ned's kernel memory runs out for the second factory: that program is reported, the third
    runs, and ned exits with the count of failures."""
    p = script(tmp_path, f'''
start("a", "{ME}:work", caps={{"factory": factory(40 << 20)}}, args=(1000,))
start("b", "{ME}:work", caps={{"factory": factory(40 << 20)}}, args=(1000,))
start("c", "{ME}:work", args=(1000,))
''')
    k, s, reason = run_plan(load_script(p, 2))
    text = k.machine.uart.text()
    assert "ned: b: could not start: " in text and "ENOMEM" in text
    assert statuses(s) == {"a": "exit 0", "c": "exit 0"}
    ned = s.ned_thread()
    assert reason == "stop" and ned is not None and ned.exit_code == 1
    assert ned_slots(s) == NED_INITIAL


# --- 3. identity, not names ---------------------------------------------------------------------


def test_a_program_called_ned_neither_ends_the_run_nor_takes_neds_row(tmp_path: Path) -> None:
    """Past the check (the plan altered), a program named ned that ends early does not stop the
    run, and the summary keeps it apart from the real ned."""
    p = script(tmp_path, f'''
start("imposter", "{ME}:work", args=(1000, 7))
start("long", "{ME}:work", args=(2_000_000,))
''')
    plan = load_script(p, 2)
    plan.programs[0].name = "ned"
    k, s, reason = run_plan(plan)
    assert reason == "stop"
    assert statuses(s) == {"ned": "exit 7", "long": "exit 0"}
    summary = BootResult(k, None, reason, None, programs=s.programs, scenario=s).summary()
    rows = sorted((c["threads"], c["status"], c["exit"]) for c in summary["components"]
                  if c["name"] == "ned")
    # the program (two threads), then the real ned (its own thread and one watcher per program)
    assert rows == [(2, "exited", 7), (3, "exited", 1)]
    real = next(c for c in summary["components"] if c["name"] == "ned" and c["threads"] == 3)
    assert real["exit"] == 1  # ned's own exit status: one program exited non-zero


def test_every_program_row_is_found_by_its_task() -> None:
    """The default system's summary matches each program to the task ned created for it."""
    r = boot("default")
    s = r.scenario
    assert isinstance(s, System)
    for c in s.programs:
        task = next(t for t in r.kernel.tasks if s.program_of(t) is c)
        assert task.name == c.name
    assert all(s.program_of(t) is None for t in r.kernel.tasks if t.name in ("sigma0", "moe", "ned"))


# --- 5. daemons ---------------------------------------------------------------------------------


def test_a_daemon_that_ends_on_its_own_is_reported(tmp_path: Path) -> None:
    """A daemon that exits while others run gets its ned: line and its status."""
    p = script(tmp_path, f'''
start("d", "{ME}:work", daemon=True, prio=30, args=(1000, 3))
start("a", "{ME}:work", args=(500_000,))
''')
    k, s, _ = run_plan(load_script(p, 2))
    text = k.machine.uart.text()
    assert "ned: d: exit 3" in text and text.index("ned: d: exit 3") < text.index("ned: a: exit 0")
    assert statuses(s)["d"] == "exit 3"


def test_a_daemon_ending_with_the_last_program_is_reported_not_killed(tmp_path: Path) -> None:
    """Whenever a daemon's own end reaches ned before ned ends the daemons, it is reported with
    its status; ``killed at the end`` only when it was still running.  Swept over the moment
    the daemon ends, around the last program's end, to hit the end arriving while ned handles
    the last program."""
    late = 0
    for ns in range(100_000, 200_000, 2_000):
        p = script(tmp_path, f'''
start("d", "{ME}:work", daemon=True, cpus=[1], prio=10, args=({ns}, 3))
start("a", "{ME}:work", prio=10, args=(100_000,))
''')
        k, s, _ = run_plan(load_script(p, 2))
        text = k.machine.uart.text()
        st = statuses(s)["d"]
        if st != "killed at the end":
            assert st == "exit 3" and "ned: d: exit 3" in text, (ns, st)
            late += text.index("ned: d: exit 3") > text.index("ned: a: exit 0")
        else:
            assert "ned: d:" not in text
    assert late, "no daemon ended while ned handled the last program's end"


# --- 6. ned keeps nothing of an ended program ------------------------------------------------


def test_ned_holds_nothing_of_a_program_once_it_has_ended(tmp_path: Path) -> None:
    """After handling a program's end, ned's capability space has lost exactly that program's
    task, threads, parent gate and session; its factory ned never kept."""
    p = script(tmp_path, f'''
ring = dataspace("ring", 4096)
start("a", "{ME}:work", caps={{"factory": factory(), "ring": ring}}, args=(100_000,))
start("b", "{ME}:work", args=(2_000_000,))
''')
    k, s = start_plan(load_script(p, 2))
    run_until(k, lambda: len(s.programs) == 2 and ned_waits(s))
    a = s.programs[0]
    assert not a.done
    before = ned_slots(s)
    assert child_slots(a) <= before
    th = s.ned_thread()
    assert th is not None and th.task is not None
    factories = sorted(slot for slot, e in th.task.caps.slots.items() if e.obj.KIND == "factory")
    kmem = [c.kmem.slot for c in s.programs if c.kmem is not None]
    assert factories == sorted([2, *kmem]), "a's factory went to a; ned kept its own and the kernel memory"
    run_until(k, lambda: a.done and ned_waits(s))
    assert ned_slots(s) == before - child_slots(a)
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"
    ring = 11  # the shared dataspace is the script's, not a program's: it stays
    assert ned_slots(s) == NED_INITIAL | {ring}


# --- B. errors a program can act on -------------------------------------------------------------


def test_a_missing_capability_names_the_program_the_name_and_what_it_has(tmp_path: Path) -> None:
    """env.cap() of a name the script did not give: one message the program can show, and the
    same text on the console when it is not caught."""
    p = script(tmp_path, f'''
ring = dataspace("ring", 4096)
start("counter", "{ME}:asks_for_a_capability_it_lacks", caps={{"ring": ring}})
''')
    k, s, _ = run_plan(load_script(p, 2))
    text = k.machine.uart.text()
    msg = "counter: no capability 'stats' (it has: log, parent, ring, rm, scheduler, task, thread)"
    assert f"counter | caught: {msg}\n" in text
    line = asks_for_a_capability_it_lacks.__code__.co_firstlineno + 5
    want = f"NoCapability: {msg} (test_system.py:{line})"
    assert f"ned: counter: {want}\n" in text
    assert statuses(s)["counter"] == want
