"""The default scenario's programs: hello, a session server and its client,
a producer and a consumer sharing a ring buffer, and a program that crashes.

Each is ``async def name(env, *args) -> int``, started by ned with exactly
the capabilities the startup script names.
"""

from __future__ import annotations

import contextlib

from l4sim.kernel.abi import WORD_MASK, Err, Fpage, MapItem, Proto, Rights
from l4sim.kernel.traps import Msg
from l4sim.runtime.protocols import RM, RmFlag, RmOp
from l4sim.user.env import Env, Gate, L4Error
from l4sim.user.server import request_failed

# --- hello -----------------------------------------------------------------


async def hello(env: Env) -> int:
    await env.print("hello from a task of its own")
    return 0


# --- a server with sessions --------------------------------------------------

OPEN, ADD, CLOSE = 1, 2, 3
SESSION_LABEL0 = 0x100


async def counter_server(env: Env) -> int:
    """Counters, one per session: OPEN gives a session gate (granted: the
    client holds the only capability), ADD(n) adds to the session's counter,
    CLOSE ends the session.  A client that dies takes its session gate with
    it; the delete Irq tells us, and we free the session.

    Every request gets an answer and the server goes on serving: ADD without
    a number is ``-EINVAL``, an ADD that would carry the counter past 2**64-1
    ``-ERANGE`` (the counter keeps its value), an OPEN when the server's
    factory is out of quota ``-ENOMEM`` (a session that ends makes room
    again), an OPEN without a factory ``-ENOSYS``.  An OPEN whose answer the
    client cannot take (no receive buffer, or it is gone) deletes the new
    gate again.  Anything else that raises is answered ``-EIO``, with a line
    on the log."""
    svc: Gate = env.cap("svc")
    await svc.bind(env.thread, 0x10)
    irq = await env.factory.create_irq() if env.has("factory") else None
    sessions: dict[int, list[int]] = {}  # label -> [counter, gate slot]
    next_label = SESSION_LABEL0
    if irq is not None:
        await irq.attach(env.thread, 0x20)
        await env.thread.register_delete_irq(irq)
    msg = await env.wait()
    while True:
        reply: tuple[int, ...] | None = None
        items: tuple[MapItem, ...] = ()
        opened: int | None = None  # the label of a session the reply grants
        try:
            if msg.error:  # a receive that failed, or a reply nobody could take: nobody waits
                pass
            elif msg.proto == Proto.IRQ and msg.label == 0x20:  # sessions whose client is gone
                for label in msg.words:
                    s = sessions.pop(label, None)
                    if s is not None:
                        env.free_slot(s[1])
                        await env.print(f"server: session {label:#x} closed by the death of its client "
                                        f"(counter was {s[0]}), {len(sessions)} left")
            elif msg.label & ~3 == 0x10 and msg.proto == OPEN:
                if irq is None:
                    reply = (-Err.ENOSYS,)  # no factory: no gates to hand out
                else:
                    try:
                        gate = await env.factory.create_gate(env.thread, next_label)
                    except L4Error as e:  # the factory is full: refuse, serve the sessions we have
                        reply = (-(e.err or Err.ENOMEM),)
                    else:
                        opened = next_label
                        next_label += 4
                        sessions[opened] = [0, gate.slot]
                        items = (MapItem(gate.fpage(Rights.R | Rights.W), grant=True),)
                        reply = (0, opened)
            elif msg.label & ~3 in sessions and msg.proto == ADD:
                s = sessions[msg.label & ~3]
                if not msg.words:
                    reply = (-Err.EINVAL,)
                elif s[0] + msg.words[0] > WORD_MASK:  # the answer would not fit a word
                    reply = (-Err.ERANGE,)
                else:
                    s[0] += msg.words[0]
                    reply = (0, s[0])
            elif msg.label & ~3 in sessions and msg.proto == CLOSE:
                s = sessions.pop(msg.label & ~3)  # the client drops its gate; the label is retired
                env.free_slot(s[1])
                reply = (0, s[0])
            else:
                reply = (-Err.ENOSYS,)
        except Exception as exc:  # a request nothing above foresaw: answer it, keep the others
            reply, items = (await request_failed(env, "counter", msg, exc),), ()
        if reply is None:
            msg = await env.wait()
            continue
        msg = await env.reply_and_wait(reply[0], *reply[1:], items=items)
        if msg.error and not msg.error & 1 and opened is not None:
            # the client never got its session gate (no receive buffer, or it is gone): it is
            # still ours, so delete it, or every such OPEN would keep a gate of the factory's
            s = sessions.pop(opened)
            with contextlib.suppress(L4Error):
                await env.task.delete(s[1])
            env.free_slot(s[1])


async def counter_client(env: Env, name: str, rounds: int, crash: bool = False) -> int:
    svc: Gate = env.cap("svc")
    slot = env.alloc_slot()
    r = await svc.call(OPEN, rcv=(Fpage.obj(slot),))
    if r.error or r.proto < 0:
        await env.print(f"{name}: open failed ({r.error}, {r.proto})")
        return 1
    session = Gate(env, slot)
    total = 0
    for i in range(1, rounds + 1):
        r = await session.call(ADD, i)
        total = r.words[0]
        await env.compute(3_000)
    await env.print(f"{name}: counter is {total} after {rounds} calls")
    if crash:
        await env.mem.write(0xDEAD000, b"\x01")  # nothing is attached there: a segmentation fault
    return 0


# --- a producer and a consumer sharing a ring buffer ---------------------------

RING_SLOTS = 16
RING_HEADER = 16  # head, tail: two words


async def _attach(env: Env, ds: Gate, size: int) -> int:
    """Attach a shared dataspace through our region manager; returns its address."""
    rm = env.cap("rm", Gate)
    r: Msg = await rm.call(RM, RmOp.ATTACH, 0, size, RmFlag.SEARCH_ADDR, 0,
                           items=(MapItem(ds.fpage()),))
    if r.error or r.proto < 0:
        raise RuntimeError(f"attach failed: {r.error} {r.proto}")
    return r.words[0]


async def producer(env: Env, count: int) -> int:
    base = await _attach(env, env.cap("ring"), 4096)
    for n in range(1, count + 1):
        while True:  # wait for a free slot
            head = await env.mem.read_word(base)
            tail = await env.mem.read_word(base + 8)
            if head - tail < RING_SLOTS:
                break
            await env.receive(env.thread, timeout=20_000)
        await env.compute(8_000)  # produce an item
        await env.mem.write_word(base + RING_HEADER + 8 * (head % RING_SLOTS), n * n)
        await env.mem.write_word(base, head + 1)
    await env.print(f"producer: {count} items written to the shared ring")
    return 0


async def consumer(env: Env, count: int) -> int:
    base = await _attach(env, env.cap("ring"), 4096)
    total = 0
    got = 0
    while got < count:
        head = await env.mem.read_word(base)
        tail = await env.mem.read_word(base + 8)
        if head == tail:
            await env.receive(env.thread, timeout=10_000)  # nothing yet: sleep a little
            continue
        total += await env.mem.read_word(base + RING_HEADER + 8 * (tail % RING_SLOTS))
        await env.mem.write_word(base + 8, tail + 1)
        got += 1
        await env.compute(5_000)
    await env.print(f"consumer: {got} items, sum {total}")
    return 0


async def crasher(env: Env) -> int:
    await env.print("crasher: about to touch unmapped memory")
    await env.mem.read(0x10, 8)  # page 0 is in no region
    return 0
