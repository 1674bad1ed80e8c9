"""The demo's counter server survives its clients: every request is answered, the others served on.

Each test boots the runtime with a startup script that starts the demo's
``counter_server`` (with the default system's 64 KiB factory: room for one
delete Irq and 511 session gates) and hostile or greedy clients defined
here, named ``{__name__}:function`` (the module is imported already, so the
loader finds them).  Clients hand their observations to the test through
:data:`OUT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from l4sim.kernel.abi import WORD_MASK, Err, Fpage, IpcErr
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.traps import Msg
from l4sim.machine.board import Machine
from l4sim.runtime.ned import load_script
from l4sim.runtime.system import System, boot_plan
from l4sim.scenarios.programs.demo import ADD, CLOSE, OPEN
from l4sim.user.env import Env, Gate

ME = __name__
DEMO = "l4sim.scenarios.programs.demo"
#: sessions the counter server's 64 KiB factory has room for (128-byte gates, one 128-byte Irq)
ROOM = 64 * 1024 // 128 - 1

#: what the clients saw, by name
OUT: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _fresh_out() -> None:
    OUT.clear()


def answer(r: Msg) -> tuple[int, int, tuple[int, ...]]:
    return r.error, r.proto, r.words


async def open_session(env: Env) -> tuple[Msg, Gate]:
    slot = env.alloc_slot()
    r = await env.cap("svc").call(OPEN, rcv=(Fpage.obj(slot),))
    return r, Gate(env, slot)


# --- clients --------------------------------------------------------------------------------------


async def overflows(env: Env) -> int:
    """Carry the counter to 2**64 - 6, then past the top, then exactly to it, then ADD nothing."""
    _, s = await open_session(env)
    got = [answer(await s.call(ADD, WORD_MASK - 5))]
    got.append(answer(await s.call(ADD, 6)))  # 2**64: does not fit the reply word
    OUT["refused_at"] = await env.clock()
    got.append(answer(await s.call(ADD, 5)))  # 2**64 - 1: fits
    got.append(answer(await s.call(ADD)))  # no number at all
    OUT["overflows"] = got
    return 0


async def counts(env: Env, rounds: int) -> int:
    """ADD 1 ``rounds`` times, a little apart; record every answer and when the last came."""
    _, s = await open_session(env)
    got = []
    for _ in range(rounds):
        got.append(answer(await s.call(ADD, 1)))
        await env.compute(20_000)
    OUT["last_answer_at"] = await env.clock()
    OUT["counts"] = got
    return 0


async def opens_many(env: Env, n: int) -> int:
    """Open ``n`` sessions; use the first and last; close ten and open ten again; one more."""
    opened: list[Gate] = []
    refused: list[tuple[int, int]] = []
    for _ in range(n):
        r, g = await open_session(env)
        if r.error or r.proto:
            refused.append((r.error, r.proto))
            env.free_slot(g.slot)
        else:
            opened.append(g)
    OUT["opened"] = len(opened)
    OUT["refused"] = refused
    OUT["first_last"] = [answer(await opened[0].call(ADD, 7)), answer(await opened[-1].call(ADD, 8))]
    for g in opened[:10]:  # a client ends a session: CLOSE, then it drops its gate
        await g.call(CLOSE)
        await env.task.delete(g.slot)
    again = [await open_session(env) for _ in range(10)]
    OUT["again"] = [(r.error, r.proto) for r, _ in again]
    OUT["again_work"] = [answer(await g.call(ADD, 1)) for _, g in again]
    OUT["full_again"] = answer((await open_session(env))[0])
    return 0


async def opens_without_a_buffer(env: Env, n: int) -> int:
    """OPEN ``n`` times with nowhere to receive the session gate, then once properly."""
    errors = set()
    for _ in range(n):
        errors.add((await env.cap("svc").call(OPEN)).error)
    OUT["errors"] = errors
    r, g = await open_session(env)
    OUT["proper"] = (r.error, r.proto, answer(await g.call(ADD, 3)))
    return 0


# --- helpers ---------------------------------------------------------------------------------------


def run(tmp_path: Path, clients: str) -> tuple[Kernel, System]:
    p = tmp_path / "system.py"
    p.write_text(f'''
svc = channel("svc")
start("counter", "{DEMO}:counter_server", caps={{"svc": svc.server(), "factory": factory(64 * 1024)}},
      prio=30, daemon=True)
{clients}
''')
    k = Kernel(Machine(cores=2))
    s = boot_plan(k, load_script(p, 2))
    assert k.run(until=10_000_000_000, stop=s.done) == "stop"
    return k, s


def statuses(s: System) -> dict[str, str]:
    return {c.name: c.status for c in s.programs}


# --- tests ------------------------------------------------------------------------------------------


def test_a_counter_pushed_past_the_top_is_refused_and_the_other_client_is_served(tmp_path: Path) -> None:
    """ADD that would carry the counter past 2**64 - 1 is -ERANGE and changes nothing; ADD without a
    number -EINVAL; the server, which used to die of the reply word that no longer fit, answers the
    other client's calls before and after."""
    _, s = run(tmp_path, f'''
start("greedy", "{ME}:overflows", caps={{"svc": svc}}, prio=20)
start("steady", "{ME}:counts", caps={{"svc": svc}}, prio=20, args=(40,))
''')
    assert OUT["overflows"] == [(0, 0, (WORD_MASK - 5,)), (0, -Err.ERANGE, ()), (0, 0, (WORD_MASK,)),
                                (0, -Err.EINVAL, ())]
    assert OUT["counts"] == [(0, 0, (i,)) for i in range(1, 41)]
    assert OUT["last_answer_at"] > OUT["refused_at"], "the steady client was served after the refusal"
    assert statuses(s) == {"counter": "killed at the end", "greedy": "exit 0", "steady": "exit 0"}


def test_sessions_past_the_factorys_room_are_enomem_and_closing_makes_room(tmp_path: Path) -> None:
    """600 OPENs: the first 511 get sessions, the rest -ENOMEM (the server used to die at the
    512th); the first and last sessions still count; ten closed sessions make room for ten new
    ones, and the eleventh is -ENOMEM again."""
    k, s = run(tmp_path, f'start("greedy", "{ME}:opens_many", caps={{"svc": svc}}, prio=20, args=(600,))')
    assert OUT["opened"] == ROOM
    assert OUT["refused"] == [(0, -Err.ENOMEM)] * (600 - ROOM)
    assert OUT["first_last"] == [(0, 0, (7,)), (0, 0, (8,))]
    assert OUT["again"] == [(0, 0)] * 10
    assert OUT["again_work"] == [(0, 0, (1,))] * 10
    assert OUT["full_again"] == (0, -Err.ENOMEM, ())
    assert statuses(s)["greedy"] == "exit 0"
    assert "counter: request" not in k.machine.uart.text(), "every refusal was decided, none raised"


def test_an_open_whose_gate_cannot_be_delivered_leaves_nothing_behind(tmp_path: Path) -> None:
    """600 OPENs without a receive buffer: each fails in delivery, and the server deletes the gate it
    made, so the factory is not filled by sessions nobody holds; a proper OPEN then works."""
    _, s = run(tmp_path, f'start("careless", "{ME}:opens_without_a_buffer", caps={{"svc": svc}}, '
                         f'prio=20, args=(600,))')
    assert OUT["errors"] == {IpcErr.REMSGCUT}
    assert OUT["proper"] == (0, 0, (0, 0, (3,)))
    assert statuses(s)["careless"] == "exit 0"
