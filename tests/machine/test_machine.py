"""The simulated hardware: event queue, periodic timer, UART, board and seed."""

from __future__ import annotations

import io

import pytest

from l4sim.machine.board import LINE_LOCAL_TIMER_BASE, LINE_PIT, MAX_CORES, Machine
from l4sim.machine.devices import InterruptController, PeriodicTimer, Uart
from l4sim.machine.events import PRIO_CORE, PRIO_IRQ, PRIO_TIMEOUT, EventQueue


def drain(q: EventQueue, until: int | None = None) -> None:
    """Pop and run events (up to time ``until``)."""
    while True:
        t = q.next_time()
        if t is None or (until is not None and t > until):
            return
        ev = q.pop()
        assert ev is not None
        ev.fn(*ev.args)


# --- event queue ----------------------------------------------------------------
def test_events_pop_in_time_order() -> None:
    """Events run in order of their time, whatever order they were scheduled in."""
    q = EventQueue()
    seen: list[tuple[int, str]] = []
    for t, name in ((30, "c"), (10, "a"), (20, "b")):
        q.at(t, lambda n=name: seen.append((q.now, n)))
    drain(q)
    assert seen == [(10, "a"), (20, "b"), (30, "c")]


def test_events_at_equal_time_order_by_priority() -> None:
    """At one instant, lower priority numbers run first (IRQ, then timeout, then core)."""
    q = EventQueue()
    seen: list[str] = []
    q.at(5, seen.append, "core", prio=PRIO_CORE)
    q.at(5, seen.append, "timeout", prio=PRIO_TIMEOUT)
    q.at(5, seen.append, "irq", prio=PRIO_IRQ)
    drain(q)
    assert seen == ["irq", "timeout", "core"]


def test_events_with_equal_time_and_priority_keep_insertion_order() -> None:
    """Ties in time and priority break by sequence number: first scheduled, first run."""
    q = EventQueue()
    seen: list[int] = []
    for i in range(20):
        q.at(7, seen.append, i)
    drain(q)
    assert seen == list(range(20))


def test_cancelled_events_are_skipped() -> None:
    """A cancelled event never runs and does not count as pending."""
    q = EventQueue()
    seen: list[str] = []
    a = q.at(1, seen.append, "a")
    q.at(2, seen.append, "b")
    c = q.at(3, seen.append, "c")
    a.cancel()
    c.cancel()
    assert len(q) == 1
    assert q.next_time() == 2
    drain(q)
    assert seen == ["b"]
    assert q.next_time() is None
    assert q.pop() is None


def test_after_is_relative_to_now_and_pop_advances_time() -> None:
    """``after`` schedules relative to the current time; popping moves ``now`` forward."""
    q = EventQueue()
    q.at(100, lambda: q.after(50, lambda: None))
    ev = q.pop()
    assert ev is not None and q.now == 100
    ev.fn()
    assert q.next_time() == 150
    q.pop()
    assert q.now == 150


# --- devices -----------------------------------------------------------------------
def test_periodic_timer_raises_its_line_every_period() -> None:
    """A programmed timer raises its line once per period until stopped with program(0)."""
    q = EventQueue()
    ic = InterruptController(4)
    raised: list[tuple[int, int]] = []
    ic.handler = lambda line: raised.append((q.now, line))
    pit = PeriodicTimer(q, ic, 2)
    pit.program(1_000)
    drain(q, until=5_500)
    assert raised == [(1_000, 2), (2_000, 2), (3_000, 2), (4_000, 2), (5_000, 2)]
    assert ic.counts[2] == 5
    pit.program(0)
    drain(q)
    assert len(raised) == 5
    assert q.next_time() is None


def test_reprogramming_a_timer_restarts_its_period() -> None:
    """program() with a new period cancels the old tick and counts from now."""
    q = EventQueue()
    ic = InterruptController(1)
    raised: list[int] = []
    ic.handler = lambda line: raised.append(q.now)
    pit = PeriodicTimer(q, ic, 0)
    pit.program(1_000)
    drain(q, until=1_500)
    pit.program(300)
    drain(q, until=2_500)
    assert raised == [1_000, 1_300, 1_600, 1_900, 2_200, 2_500]


def test_interrupt_controller_rejects_a_missing_line() -> None:
    """Raising a line that does not exist is a hardware-model error."""
    ic = InterruptController(3)
    with pytest.raises(ValueError, match="does not exist"):
        ic.raise_line(3)


def test_uart_buffers_output_and_echoes_it() -> None:
    """Bytes written to the UART are kept in ``output`` and echoed as text."""
    echo = io.StringIO()
    u = Uart(echo)
    u.write(b"hello ")
    u.write("w\u00f6rld\n".encode())
    assert bytes(u.output) == "hello w\u00f6rld\n".encode()
    assert u.text() == "hello w\u00f6rld\n"
    assert echo.getvalue() == "hello w\u00f6rld\n"


def test_uart_without_echo_only_buffers() -> None:
    """A UART with no echo stream keeps the output silently."""
    u = Uart()
    u.write(b"quiet")
    assert u.text() == "quiet"


# --- board -------------------------------------------------------------------------
@pytest.mark.parametrize("cores", [0, MAX_CORES + 1])
def test_machine_rejects_bad_core_counts(cores: int) -> None:
    """A machine has 1..64 cores; 0 or 65 is refused."""
    with pytest.raises(ValueError, match="cores"):
        Machine(cores=cores)


def test_machine_has_a_local_timer_line_per_core() -> None:
    """Lines: the PIT on 0, then one local timer per core from line 16."""
    m = Machine(cores=MAX_CORES)
    assert m.pit.line == LINE_PIT
    assert [t.line for t in m.local_timers] == [LINE_LOCAL_TIMER_BASE + n for n in range(MAX_CORES)]
    assert m.ic.nlines == LINE_LOCAL_TIMER_BASE + MAX_CORES


def test_seeded_rng_is_reproducible() -> None:
    """Two machines with the same seed draw the same numbers; another seed draws others."""

    def draws(seed: int) -> list[int]:
        rng = Machine(seed=seed).rng
        return [rng.getrandbits(64) for _ in range(8)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(43)
    assert Machine(seed=42).seed == 42


def test_machine_now_follows_the_event_queue() -> None:
    """``machine.now`` is the event queue's current time."""
    m = Machine()
    m.events.at(123, lambda: None)
    m.events.pop()
    assert m.now == 123
