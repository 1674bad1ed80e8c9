"""Exceptions of native threads: exception IPC to the handler, stopping, resuming, restarting."""

from __future__ import annotations

import zlib
from collections.abc import Generator
from typing import Any

import pytest

from l4sim.kernel.abi import TRAP_BAD_TRAP, TRAP_PY_EXCEPTION, Proto, unpack_bytes
from l4sim.kernel.fault import DESC_BYTES, describe_exception, exception_words
from l4sim.kernel.objects import TS
from l4sim.kernel.traps import Compute, Ipc, Msg
from l4sim.user.env import Env, ThreadCap

from .conftest import run_system, thread_named


class NotATrap:
    """An awaitable that yields a plain int to the kernel instead of a trap."""

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield 42)


def exc_records(tr):  # type: ignore[no-untyped-def]
    """The ``exception`` trace records as (tid, args)."""
    return [(r[3], r[4]) for r in tr.by_kind("exception")]


def test_uncaught_python_exception_goes_to_the_handler() -> None:
    """A program that raises sends its handler proto -5 with trapno, code, ip and trap count."""
    seen: list[Msg] = []

    async def handler(env: Env) -> int:
        seen.append(await env.wait())
        await env.reply(0)  # a raised exception has no frame to resume: the thread ends
        return 0

    async def faulty(env: Env) -> int:
        await env.compute(1_000)
        await env.compute(1_000)
        raise ValueError("boom")

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        await env.spawn(faulty, name="faulty", prio=10, exc_handler=h.slot)
        return 0

    k, tr = run_system(root)
    assert len(seen) == 1
    msg = seen[0]
    assert msg.error == 0 and msg.proto == Proto.EXCEPTION == -5
    assert type(msg.proto) is int, "a plain int label, so a handler can forward it"
    f = thread_named(k, "faulty")
    trapno, code, ip, traps = msg.words[:4]
    assert trapno == TRAP_PY_EXCEPTION
    assert code == zlib.crc32(b"ValueError")
    assert ip == f.ip
    assert traps == 2, "two compute traps ran before the raise"
    line = faulty.__code__.co_firstlineno + 3
    assert unpack_bytes(msg.words[4:]) == f"ValueError: boom (test_exceptions.py:{line})".encode()
    assert f.state is TS.DEAD and f.exit_code is None
    assert thread_named(k, "handler").exit_code == 0
    assert [(tid, a["trapno"], a["handler"]) for tid, a in exc_records(tr)] == [
        (f.kid, TRAP_PY_EXCEPTION, thread_named(k, "handler").kid)]
    assert k.exceptions == 1


def test_exception_without_handler_stops_only_that_thread() -> None:
    """Without a handler the faulting thread dies faulted; other threads run on."""
    later: list[int] = []

    async def faulty(env: Env) -> int:
        raise RuntimeError("no handler")

    async def other(env: Env) -> int:
        await env.compute(50_000)
        later.append(await env.clock())
        return 7

    async def root(env: Env) -> int:
        await env.spawn(other, name="other", prio=5)
        await env.spawn(faulty, name="faulty", prio=10)
        return 0

    k, tr = run_system(root)
    f = thread_named(k, "faulty")
    assert f.state is TS.DEAD and f.faulted and f.exit_code is None
    recs = exc_records(tr)
    assert len(recs) == 1
    tid, args = recs[0]
    assert tid == f.kid and args["trapno"] == TRAP_PY_EXCEPTION and args["handler"] == -1
    assert thread_named(k, "other").exit_code == 7
    assert len(later) == 1 and later[0] >= 50_000
    exits = {r[3]: r[4] for r in tr.by_kind("exit")}
    assert "unhandled" in str(exits[f.kid]["reason"])


def test_fault_returns_the_handlers_reply_and_the_thread_resumes() -> None:
    """``env.fault`` hands the handler its words; a proto-0 reply resumes with the reply's words."""
    seen: list[tuple[int, ...]] = []
    after: list[tuple[int, int, tuple[int, ...]]] = []

    async def handler(env: Env) -> int:
        msg = await env.wait()
        seen.append(msg.words)
        await env.reply(0, msg.words[4] + 1, 0xBEEF)  # "fix the state" and resume
        return 0

    async def faulty(env: Env) -> int:
        r = await env.fault(13, 0x77, 41)
        after.append((r.error, r.proto, r.words))
        await env.compute(1_000)
        return 3

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        await env.spawn(faulty, name="faulty", prio=10, exc_handler=h.slot)
        return 0

    k, _ = run_system(root)
    f = thread_named(k, "faulty")
    assert seen == [(13, 0x77, f.ip, 1, 41)]
    assert after == [(0, 0, (42, 0xBEEF))]
    assert f.exit_code == 3 and not f.faulted


def test_handler_reply_with_nonzero_label_kills_the_thread() -> None:
    """A handler that answers with a non-zero protocol label ends the faulting thread."""
    reached: list[str] = []

    async def handler(env: Env) -> int:
        await env.wait()
        await env.reply(1)
        return 0

    async def faulty(env: Env) -> int:
        await env.fault(6)
        reached.append("after fault")
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        await env.spawn(faulty, name="faulty", prio=10, exc_handler=h.slot)
        return 0

    k, tr = run_system(root)
    f = thread_named(k, "faulty")
    assert reached == []
    assert f.state is TS.DEAD and f.exit_code is None
    exits = {r[3]: r[4] for r in tr.by_kind("exit")}
    assert "killed by its exception handler" in str(exits[f.kid]["reason"])


def test_handler_restarts_the_thread_at_new_code_with_ex_regs() -> None:
    """The handler loads a new entry and ex_regs the faulted thread there; it runs and exits."""
    ran: list[int] = []

    async def recovered(env: Env, sp: int) -> int:
        ran.append(sp)
        return 5

    async def faulty(env: Env) -> int:
        raise KeyError("lost")

    async def handler(env: Env, victim_slot: int) -> int:
        msg = await env.wait()
        assert msg.proto == Proto.EXCEPTION
        local, kinds = env.local, env.kinds

        def entry(sp: int) -> Any:
            return recovered(Env(local, victim_slot, kinds), sp)

        ip = await env.task.load_code(entry)
        await ThreadCap(env, victim_slot).ex_regs(ip, 99)
        return 0

    async def root(env: Env) -> int:
        # create the victim first so the handler can name it, then start both
        victim = await env.factory.create_thread("faulty")
        await victim.control(bind=env.task)
        h = await env.spawn(handler, victim.slot, name="handler", prio=50)
        await victim.control(exc_handler=h.slot)
        local, kinds = env.local, env.kinds

        def entry(sp: int) -> Any:
            return faulty(Env(local, victim.slot, kinds))

        ip = await env.task.load_code(entry)
        await env.scheduler.run_thread(victim, 10)
        await victim.ex_regs(ip, 0)
        return 0

    k, _ = run_system(root)
    f = thread_named(k, "faulty")
    assert ran == [99]
    assert f.exit_code == 5 and not f.faulted and f.state is TS.DEAD


def test_awaiting_a_non_trap_raises_a_bad_trap_exception() -> None:
    """Yielding something that is not a trap is exception TRAP_BAD_TRAP; a reply resumes it."""
    seen: list[tuple[int, ...]] = []
    resumed: list[Any] = []

    async def handler(env: Env) -> int:
        msg = await env.wait()
        seen.append(msg.words)
        await env.reply(0, 1, 2)
        return 0

    async def faulty(env: Env) -> int:
        r = await NotATrap()
        resumed.append(r.words)
        return 0

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        await env.spawn(faulty, name="faulty", prio=10, exc_handler=h.slot)
        return 0

    k, _ = run_system(root)
    assert len(seen) == 1 and seen[0][0] == TRAP_BAD_TRAP
    assert resumed == [(1, 2)]
    assert thread_named(k, "faulty").exit_code == 0


def test_bad_trap_without_handler_stops_the_thread() -> None:
    """A thread awaiting a non-trap with no handler stops, faulted, and never runs again."""
    reached: list[str] = []

    async def faulty(env: Env) -> int:
        await NotATrap()
        reached.append("resumed")
        return 0

    async def root(env: Env) -> int:
        await env.spawn(faulty, name="faulty", prio=10)
        return 0

    k, tr = run_system(root)
    f = thread_named(k, "faulty")
    assert reached == []
    assert f.faulted and f.state in (TS.INACTIVE, TS.DEAD)
    assert [a["trapno"] for _, a in exc_records(tr)] == [TRAP_BAD_TRAP]


GARBAGE: list[Any] = [
    42,
    None,
    "ipc",
    Compute(-5),
    Compute("1ms"),  # type: ignore[arg-type]
    Ipc(3, 1, 0, ("not", "words")),  # type: ignore[arg-type]
    Ipc(3, 1, 0, (1 << 64,)),
    Ipc("slot", 3),  # type: ignore[arg-type]
    Ipc(99999, 1, 0, (1,)),
    Ipc(3, 1, 1 << 60),
    Ipc(0, 2, rcv_timeout=-1),
    Ipc(0, 6, rcv=("buffer",)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("junk", GARBAGE, ids=[repr(g)[:40] for g in GARBAGE])
def test_the_kernel_never_raises_on_garbage(junk: Any) -> None:
    """Whatever a program yields, the kernel answers with an error or an exception, never a crash."""
    after: list[str] = []

    class Yield:
        def __await__(self) -> Generator[Any, Any, Any]:
            return (yield junk)

    async def victim(env: Env) -> int:
        await Yield()
        after.append("resumed")
        return 0

    async def bystander(env: Env) -> int:
        await env.compute(10_000)
        after.append("bystander")
        return 0

    async def root(env: Env) -> int:
        await env.spawn(bystander, name="bystander", prio=5)
        await env.spawn(victim, name="victim", prio=10)
        return 0

    k, _ = run_system(root)
    assert "bystander" in after
    assert thread_named(k, "bystander").exit_code == 0
    v = thread_named(k, "victim")
    assert v.faulted != ("resumed" in after), "either an error value resumed it, or it faulted"


def _caught(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as e:
        return e


class _HostileError(Exception):
    """An exception whose every hook raises: the kernel must describe it without calling one."""

    def __str__(self) -> str:
        raise AssertionError("the kernel called __str__")

    def __repr__(self) -> str:
        raise AssertionError("the kernel called __repr__")

    @property  # type: ignore[override]
    def __traceback__(self) -> Any:
        raise AssertionError("the kernel read __traceback__ through the class")


class _LyingMeta(type):
    @property
    def __name__(cls) -> str:  # type: ignore[override]
        raise AssertionError("the kernel read __name__ through the metaclass")


class _MetaError(Exception, metaclass=_LyingMeta):
    pass


def test_an_exception_is_described_without_running_program_code() -> None:
    """Type, builtin-typed message and the innermost place come from slots, never from the program's hooks."""
    assert describe_exception(_caught(_HostileError("x")))[1].startswith("_HostileError: x (test_exceptions.py:")
    assert describe_exception(_caught(_MetaError(1, "two")))[0] == "_MetaError"
    assert describe_exception(_caught(_MetaError(1, "two")))[1].startswith("_MetaError: 1, 'two' (")
    assert describe_exception(_caught(ValueError(object())))[1].startswith("ValueError: <1 argument> (")
    assert describe_exception(_caught(KeyError("k")))[1].startswith("KeyError: 'k' (")
    assert describe_exception(ValueError("never raised")) == ("ValueError", "ValueError: never raised")


def test_a_long_description_is_cut_to_fit_one_message() -> None:
    """The packed description never overflows an exception message and stays valid UTF-8."""
    words = exception_words("é" * 1000)
    assert len(words) + 4 <= 63
    text = unpack_bytes(words)
    assert len(text) <= DESC_BYTES and text.decode() == "é" * (len(text) // 2)


def test_a_hostile_exception_is_reported_and_the_kernel_goes_on() -> None:
    """A program raising an exception whose hooks raise ends with its description; others run on."""
    seen: list[Msg] = []

    async def handler(env: Env) -> int:
        seen.append(await env.wait())
        await env.reply(0)
        return 0

    async def faulty(env: Env) -> int:
        raise _HostileError("nasty")

    async def root(env: Env) -> int:
        h = await env.spawn(handler, name="handler", prio=50)
        await env.spawn(faulty, name="faulty", prio=10, exc_handler=h.slot)
        return 0

    k, _ = run_system(root)
    assert unpack_bytes(seen[0].words[4:]).startswith(b"_HostileError: nasty (test_exceptions.py:")
    assert thread_named(k, "handler").exit_code == 0
