"""The kernel fuzzer: a bounded run of its state machine, its world, and ``l4sim fuzz``.

The bounded run is the fuzzer as CI runs it: a fixed number of examples,
derandomized (the same every time), invariants after every event and trap.
Long runs are ``l4sim fuzz --steps N --seed S``.
"""

from __future__ import annotations

import importlib.util
import json
import re
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings

from l4sim.cli import main
from l4sim.kernel.abi import (
    CALL,
    SEND,
    WAIT,
    Err,
    Fpage,
    FpageType,
    MapItem,
    MemRights,
    Rights,
    StrBuf,
    StrItem,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.traps import Clock, Compute, Fault, Ipc, LoadCode, Trap
from l4sim.kernel.vspace import IoAccess, MemAccess
from l4sim.machine.board import COM1
from l4sim.tools import fuzz as fz
from l4sim.tools.fuzz import (
    DOORBELL_LINE,
    MEM,
    S_INBOX,
    S_LOG,
    S_VGATE,
    Edit,
    FuzzMachine,
    HostileEntry,
    Lying,
    Raise,
    Raising,
    Raw,
    Spawn,
    Spin,
    Start,
    Tamper,
    Violation,
    World,
    entry_raises,
    fuzz,
    source,
)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # reprs of large strategies
class TestFuzzMachine(FuzzMachine.TestCase):  # type: ignore[misc,name-defined]
    """Hostile programs' random traps never crash the kernel nor break an invariant (a bounded run)."""

    settings = settings(max_examples=10, stateful_step_count=30, deadline=None, derandomize=True,
                        database=None, suppress_health_check=list(HealthCheck))


def run(*args: str) -> Result:
    """Invoke ``l4sim ARGS`` in-process, stdout and stderr apart."""
    return CliRunner().invoke(main, list(args))


def _break_hostile_ipc(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deliberately broken kernel: every IPC a hostile program takes (but its idle wait)
    miscounts the live objects."""
    ipc = Kernel._sys_ipc_fast

    def broken(self: Kernel, core: Any, th: Any, t: Any) -> None:
        ipc(self, core, th, t)
        if th.name.startswith("hostile") and t.flags != WAIT:
            self.objects_alive += 1

    monkeypatch.setattr(Kernel, "_sys_ipc_fast", broken)


# ---------------------------------------------------------------- l4sim fuzz
def test_a_clean_run_exits_0_with_its_counts() -> None:
    """``l4sim fuzz`` without a violation prints the steps and traps it ran and exits 0."""
    res = run("fuzz", "--steps", "60", "--seed", "2")
    assert res.exit_code == 0, res.output
    m = re.fullmatch(r"no violation: 60 steps, ([\d,]+) traps, [\d,]+ events on 2 machines \(seed 2\)\n",
                     res.stdout)
    assert m is not None, res.stdout
    assert int(m.group(1).replace(",", "")) > 60


def test_json_is_the_last_line() -> None:
    """``--json`` prints the result as one JSON object on the last line."""
    res = run("fuzz", "--steps", "60", "--seed", "1", "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    assert out["steps"] == 60 and out["traps"] > 0 and out["seed"] == 1
    assert out["violation"] is None and out["reproduction"] is None


def test_a_run_is_the_same_for_the_same_seed() -> None:
    """The same steps and seed run the same traps and events; another seed does not."""
    a, b, c = fuzz(50, 5), fuzz(50, 5), fuzz(50, 6)
    assert (a.steps, a.traps, a.events) == (b.steps, b.traps, b.events)
    assert (a.traps, a.events) != (c.traps, c.events)


def test_a_broken_invariant_is_found_shrunk_and_printed_as_a_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel that corrupts its state is caught: the violation, a reproduction of a step or two
    that is a test to paste (it fails the same way, and passes on the sound kernel), exit 1."""
    _break_hostile_ipc(monkeypatch)
    res = run("fuzz", "--steps", "200", "--seed", "1")
    assert res.exit_code == 1, res.output
    out = res.stdout
    assert re.match(r"violation after [\d,]+ steps \(seed 1\):\ninvariants violated:\n- objects_alive is \d+ "
                    r"but \d+ live objects are reachable\n", out), out
    head, test = out.split("paste it into a test and run it with pytest:\n\n")
    assert re.search(r"minimal reproduction \((1 step|2 steps)\)", head)
    assert "def test_fuzz_seed_1() -> None:" in test and "with World() as fz:" in test
    ns: dict[str, Any] = {}
    exec(compile(test, "reproduction", "exec"), ns)
    with pytest.raises(Violation, match="objects_alive"):
        ns["test_fuzz_seed_1"]()
    monkeypatch.undo()
    ns["test_fuzz_seed_1"]()  # the sound kernel passes it


def test_the_json_of_a_violation_has_the_reproduction(monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--json`` a violation is the last line too, the reproduction in it; exit 1."""
    _break_hostile_ipc(monkeypatch)
    res = run("fuzz", "--steps", "200", "--seed", "1", "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout.splitlines()[-1])
    assert "objects_alive" in out["violation"] and out["found_at_step"] >= 1
    assert "def test_fuzz_seed_1() -> None:" in out["reproduction"] and out["reproduction_steps"] <= 2


def test_without_hypothesis_fuzz_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Hypothesis ``l4sim fuzz`` is one line naming the extra to install, exit 2."""
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "hypothesis" else find(name, *a))
    res = run("fuzz", "--steps", "10")
    assert res.exit_code == 2
    assert res.stderr == "l4sim: fuzz needs hypothesis, which is not installed; install it with: pip install 'l4sim[fuzz]'\n"


@pytest.mark.parametrize("steps", ["0", "-5"])
def test_a_bad_step_count_is_one_line(steps: str) -> None:
    res = run("fuzz", "--steps", steps)
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [f"l4sim: --steps {steps}: give 1 .. 1000000000 steps"]


# ---------------------------------------------------------------- the world
def test_hostile_values_reach_the_kernel_and_change_nothing_they_should_not() -> None:
    """Ints that raise or lie, a trap changed while it waits, a result changed after it arrived:
    the victim echoes the words as values, the kernel raises nothing, the invariants hold."""
    with World() as w:
        r = w.issue(0, 0, Ipc(S_VGATE, CALL, 0, (Raising(3), Lying(4, 99))))
        assert r[0].error == 0 and r[0].words == (3, 4) and all(type(x) is int for x in r[0].words)
        item = MapItem(Fpage.obj(S_LOG, 0, Lying(int(Rights.R), 0xF)))
        r = w.meddle(1, Ipc(S_VGATE, CALL, 5, (1,), (item,), rcv=(Fpage.obj(20),)),
                     Edit("items.0.fpage.rights", Raising(15)), Edit("words", ("x",)), busy=True)
        assert r[-1].error == 0 and r[-1].words == (1,)
        r = w.issue(2, 0, Ipc(S_VGATE, CALL, 0, (7,)), Tamper((Edit("items.0.rights", 0xF),)), Clock())
        assert r[0].words == (7,) and type(r[2]) is int


def test_programs_share_memory_and_send_each_other_items() -> None:
    """A string and a page from one program arrive in another's windows; ports are there to use."""
    with World() as w:
        w.issue(0, 0, MemAccess(MEM, 4, b"ping"))
        r = w.issue(0, 0, Ipc(S_INBOX + 1, SEND, 0, (1,), (StrItem(MEM, 4), MapItem(Fpage.mem(MEM))), 0))
        assert r[0].error == 0
        r = w.issue(1, 0, MemAccess(fz.RCV_STR, 4), MemAccess(fz.RCV_MEM, 4), IoAccess(fz.PORTS))
        assert r == [b"ping", b"ping", 0xFF]


def test_a_program_that_raises_or_dies_is_started_again() -> None:
    """After its thread raised (SystemExit, a hostile __str__) a program runs the next command."""
    with World() as w:
        for kind in ("SystemExit", "LoudError", "KeyboardInterrupt"):
            assert w.issue(1, 0, Raise(kind)) == []
            assert type(w.issue(1, 0, Clock())[0]) is int
        assert w.launched[1] == 4 and w.rescues >= 3


def test_code_that_raises_when_started_faults_its_thread_only() -> None:
    """Code loaded with LoadCode that raises at ex_regs, and objects that are no traps: the
    program goes on."""
    with World() as w:
        r = w.issue(0, 0, LoadCode(1, entry_raises), Ipc(2, CALL, -15, (-12 & (2**64 - 1),), rcv=(Fpage.obj(20),)),
                    Ipc(20, CALL, -12, (0, fz.CTL_BIND_TASK, 0, 0, 1)), Ipc(20, CALL, -12, (1, 2, 0x1000, 0)))
        assert r[0] == 2 and all(m.error == 0 and m.proto == 0 for m in r[1:])
        w.issue(0, 0, Spin(50, Compute(0)), Spawn("spinner0", 120, 0, 299))
        assert type(w.issue(0, 1, Clock())[0]) is int


def test_an_exception_out_of_the_kernel_is_a_violation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel raising is reported as a violation naming the exception and its line."""
    def clock(self: Kernel, core: Any, th: Any, t: Any) -> None:
        raise ZeroDivisionError("in the clock")

    monkeypatch.setattr(Kernel, "_sys_clock", clock)
    with World() as w, pytest.raises(Violation, match=r"the kernel raised ZeroDivisionError: in the clock"):
        w.issue(2, 1, Clock())


def test_no_program_can_take_the_doorbell() -> None:
    """The doorbell's line is bound to the supervisor's Irq: binding or unbinding it fails."""
    with World() as w:
        r = w.issue(0, 0, Ipc(fz.S_ICU, CALL, -1, (0, DOORBELL_LINE, fz.S_IRQ)),
                    Ipc(fz.S_ICU, CALL, -1, (1, DOORBELL_LINE, fz.S_IRQ)))
        assert [m.proto for m in r] == [-Err.EBUSY, -Err.ENOENT]


def test_the_log_is_a_test_that_runs_the_same_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step is logged as Python; running the log in a new world gives the same run."""
    with World() as w:
        w.issue(0, 0, Ipc(S_VGATE, CALL, 9, (1, 2)), Fault(13, 0, (1,)))
        w.meddle(2, Ipc(S_INBOX, CALL, 0, (), (MapItem(Fpage.obj(5)),)), Edit("items.0.fpage.base", 1))
        w.issue(1, 1, Start("pinger", 50, 2, ((S_VGATE, int(Rights.RW)),), 8), Raw(Trap()))
        w.idle(50_000)
        text = w.reproduction("test_again")
        figures = (w.events, w.traps, w.k.machine.now)
    ns: dict[str, Any] = {}
    exec(compile(text, "log", "exec"), ns)
    worlds: list[World] = []
    close = World.close

    def keep(self: World) -> None:
        worlds.append(self)
        close(self)

    monkeypatch.setattr(World, "close", keep)
    ns["test_again"]()
    assert (worlds[0].events, worlds[0].traps, worlds[0].k.machine.now) == figures


@pytest.mark.parametrize("value", [
    Ipc(8, 3, -12, (1, Raising(2), Lying(3, 15)), (MapItem(Fpage.obj(5, 0, 4), True, 3), StrItem(MEM, 8)),
        None, 50_000, (Fpage.mem(MEM, 14, MemRights.RW), StrBuf(0x1000, 8), Fpage.io(0x80, 3))),
    Fpage(FpageType.SPECIAL, 1, 2, 3), Fpage(Raising(3), None, "x", 1.5),  # type: ignore[arg-type]
    MemAccess(MEM, 8, b"\x00ab"), IoAccess(0x80), LoadCode(1, HostileEntry()), Raw(Ipc),
    Spin(3, Compute(0)), Raise("cycle"), Tamper((Edit("items.0.base", [1]),)), Spawn("echo", 1, 2),
    Start("raiser", 50, 0, ((8, 5),), 3, None), (1, "two", b"3", None, 2**64, -1, float("inf")),
])
def test_source_builds_the_same_value(value: object) -> None:
    """The source of a value the fuzzer hands a program builds an equal one again (its own source)."""
    names: set[str] = set()
    text = source(value, names)
    ns = {n: getattr(fz, n) for n in names}
    again = eval(text, ns)
    assert type(again) is type(value)
    assert source(again) == text


def test_a_program_reaching_a_device_breaks_isolation() -> None:
    """Nobody in the world is given a device port: an access to one is reported as a violation,
    and a program mapping its own ports at COM1's number does not reach the UART."""
    with World() as w:
        r = w.issue(0, 0, Ipc(fz.S_TASK, CALL, -11, (0, fz.S_TASK, Fpage.io(fz.PORTS, 3, 6).word(), COM1 << 12)),
                    IoAccess(COM1, 0x41), IoAccess(COM1 + 5))
        assert r[0].words == (8,) and r[2] == 0xFF  # mapped; the alias reads port 0x85: nothing there
        w.k.machine.ports[COM1][1](COM1, 0x41)  # as if a program had reached the UART
        with pytest.raises(Violation, match="isolation broken: a program reached device port 0x3f8"):
            w.check()
