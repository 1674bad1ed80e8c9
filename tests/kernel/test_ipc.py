"""IPC: operations, message content, every IPC error code of the kernel core, malformed messages.

Each test builds a small system around a root program (priority 100, one
core).  Threads spawned with a lower priority run only once the root blocks
or exits; with a higher one they run at once.  Programs report to the test
by appending to lists captured by closure.
"""

from __future__ import annotations

import pytest

from l4sim.kernel.abi import (
    CALL,
    CAP_SLOTS,
    LABEL_MIN,
    MSG_WORDS,
    RECV,
    SEND,
    TRAP_PY_EXCEPTION,
    WORD_MASK,
    Fpage,
    FpageType,
    IpcErr,
    MapItem,
    Rights,
)
from l4sim.kernel.objects import TS
from l4sim.kernel.traps import Ipc
from l4sim.user.env import ThreadCap, start_task

from .conftest import ipc_errors, run_system, thread_named


def _blocks(tr, tid: int, state: str) -> list:
    return [r for r in tr.by_kind("block") if r[3] == tid and r[4]["state"] == state]


# ----------------------------------------------------------------- operations
def test_send_to_waiting_receiver_is_delivered_without_blocking():
    """A send to a thread already in open wait is delivered at once and the sender never blocks."""
    got = []

    async def receiver(env):
        got.append(await env.wait())

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)  # runs now and waits
        gate = await env.factory.create_gate(th, 0x40)
        got.append(await gate.send(7, 1, 2, 3))

    k, tr = run_system(root)
    msg, res = got
    assert res.error == 0
    assert (msg.error, msg.proto, msg.words) == (0, 7, (1, 2, 3))
    assert not _blocks(tr, thread_named(k, "root").kid, "send")


def test_send_blocks_sender_until_receiver_comes():
    """A sender whose receiver is busy blocks in the send phase and resumes when it receives."""
    got = []

    async def receiver(env):
        await env.compute(50_000)
        msg = await env.wait()
        got.append(("rcv", msg.words))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        t0 = await env.clock()
        r = await gate.send(0, 99)
        got.append(("snd", r.error, await env.clock() - t0))

    k, tr = run_system(root)
    assert got[0][0] == "snd" and got[0][1] == 0
    assert got[0][2] >= 50_000  # the receiver's computation came first
    assert got[1] == ("rcv", (99,))
    assert len(_blocks(tr, thread_named(k, "root").kid, "send")) == 1


def test_closed_wait_accepts_only_its_partner():
    """A receive from one thread takes that thread's message; an earlier sender stays queued."""
    got = []
    slots = {}

    async def sender(env, tag):
        r = await ThreadCap(env, slots["rcv"]).send(0, tag)
        got.append(("sent", tag, r.error))

    async def receiver(env):
        m = await env.receive(ThreadCap(env, slots["a"]))
        got.append(("closed", m.words))
        got.append(("b-state", (await ThreadCap(env, slots["b"]).stats())[2]))
        m = await env.wait()
        got.append(("open", m.words))

    async def root(env):
        slots["rcv"] = (await env.spawn(receiver, name="rcv", prio=10)).slot
        slots["b"] = (await env.spawn(sender, 2, name="b", prio=50)).slot  # queues first
        slots["a"] = (await env.spawn(sender, 1, name="a", prio=50)).slot

    run_system(root)
    # a woken sender (priority 50) runs before the receiver (10) reports
    assert got == [
        ("sent", 1, 0),
        ("closed", (1,)),
        ("b-state", TS.SEND),
        ("sent", 2, 0),
        ("open", (2,)),
    ]


def test_open_wait_takes_messages_from_any_gate():
    """An open wait receives from every gate bound to the thread, telling them apart by label."""
    got = []

    async def receiver(env):
        for _ in range(2):
            m = await env.wait()
            got.append((m.label, m.words))

    async def sender(env, slot, w):
        await ThreadCap(env, slot).send(0, w)

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=10)
        g1 = await env.factory.create_gate(th, 0x10)
        g2 = await env.factory.create_gate(th, 0x20)
        await env.spawn(sender, g1.slot, 1, name="s1", prio=50)
        await env.spawn(sender, g2.slot, 2, name="s2", prio=50)

    run_system(root)
    assert got == [(0x10 | 3, (1,)), (0x20 | 3, (2,))]


def test_call_and_reply():
    """A call sends, then waits for the reply that the server sends with reply()."""
    got = []

    async def server(env):
        m = await env.wait()
        got.append(("srv", m.proto, m.words))
        got.append(("reply", (await env.reply(0, m.words[0] * 2)).error))

    async def root(env):
        th = await env.spawn(server, name="srv", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        r = await gate.call(5, 21)
        got.append(("client", r.error, r.proto, r.words))

    run_system(root)
    assert ("srv", 5, (21,)) in got
    assert ("reply", 0) in got
    assert ("client", 0, 0, (42,)) in got


def test_reply_and_wait_loop_serves_several_calls():
    """A server in a reply-and-wait loop answers each call and waits for the next one."""
    got = []

    async def server(env):
        m = await env.wait()
        while True:
            m = await env.reply_and_wait(0, m.words[0] + 100)

    async def root(env):
        th = await env.spawn(server, name="srv", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        for i in range(3):
            r = await gate.call(0, i)
            got.append((r.error, r.words))

    k, tr = run_system(root)
    assert got == [(0, (100,)), (0, (101,)), (0, (102,))]
    srv = thread_named(k, "srv")
    assert srv.state is TS.RECV and srv.partner is None  # back in its open wait
    assert sum(1 for r in tr.by_kind("ipc") if r[4]["op"] == "reply") == 3


def test_send_and_wait_sends_then_waits_openly():
    """send_and_wait sends, then receives from anyone; the receiver gets no reply capability."""
    got = []

    async def server(env):
        m = await env.wait()
        got.append(("srv", m.words))
        got.append(("srv-reply", (await env.reply(0, 1)).error))

    async def other(env, root_slot):
        await ThreadCap(env, root_slot).send(0, 6)

    async def root(env):
        th = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        await env.spawn(other, env.thread.slot, name="other", prio=10)
        m = await gate.send_and_wait(0, 5)
        got.append(("root", m.error, m.words, m.label))

    run_system(root)
    assert got == [
        ("srv", (5,)),
        ("srv-reply", IpcErr.ENOT_EXISTENT),
        ("root", 0, (6,), 0),
    ]


# ------------------------------------------------------------- message content
def test_63_words_arrive_intact():
    """The largest message, 63 words including 0 and 2**64-1, arrives unchanged."""
    words = (0, WORD_MASK, *range(1, MSG_WORDS - 1))
    assert len(words) == MSG_WORDS
    got = []

    async def receiver(env):
        got.append(await env.wait())

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        got.append(await gate.send(0, *words))

    run_system(root)
    assert got[0].words == words
    assert got[1].error == 0


@pytest.mark.parametrize("proto", [-7, -1, LABEL_MIN, 12345])
def test_proto_label_arrives(proto):
    """The sender's protocol label, negative ones included, reaches the receiver unchanged."""
    got = []

    async def receiver(env):
        got.append(await env.wait())

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        await gate.send(proto, 1)

    run_system(root)
    assert got[0].error == 0 and got[0].proto == proto


@pytest.mark.parametrize(("rights", "low"), [(Rights.R | Rights.W, 1), (Rights.RWS, 3)])
def test_gate_label_carries_w_and_s_rights_of_sender_cap(rights, low):
    """The receiver sees the gate label with the W and S rights of the sender's capability in bits 0-1."""
    got = []

    async def server(env):
        m = await env.wait()
        got.append(m.label)

    async def client(env):
        await env.cap("g").send(0, 1)

    async def root(env):
        th = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(th, 0x100)
        await start_task(env, "client", client, {"g": (gate, rights)}, prio=10)

    run_system(root)
    assert got == [0x100 | low]


# ------------------------------------------------------------------ error codes
def test_zero_send_timeout_without_receiver_fails_with_setimeout():
    """A send with a zero timeout to a thread that is not receiving fails at once with SETIMEOUT."""
    got = []

    async def idle(env):
        await env.compute(1_000)

    async def root(env):
        th = await env.spawn(idle, name="idle", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        t0 = await env.clock()
        r = await gate.send(0, 1, timeout=0)
        got.append((r.error, await env.clock() - t0))

    k, tr = run_system(root)
    err, dt = got[0]
    assert err == IpcErr.SETIMEOUT
    assert dt < 10_000  # no waiting
    assert not _blocks(tr, thread_named(k, "root").kid, "send")


def test_relative_send_timeout_expires_with_setimeout():
    """A blocked send with a relative timeout fails with SETIMEOUT after that much simulated time."""
    got = []

    async def busy(env):
        await env.receive(env.thread)  # waits forever on itself

    async def root(env):
        th = await env.spawn(busy, name="busy", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        t0 = await env.clock()
        r = await gate.send(0, 1, timeout=100_000)
        got.append((r.error, await env.clock() - t0))

    k, _ = run_system(root)
    err, dt = got[0]
    assert err == IpcErr.SETIMEOUT
    assert 100_000 <= dt < 110_000
    assert thread_named(k, "busy").snd_queue == []  # the timed-out sender left the queue


def test_zero_receive_timeout_fails_with_retimeout():
    """A receive with a zero timeout and nothing pending fails at once with RETIMEOUT."""
    got = []

    async def root(env):
        t0 = await env.clock()
        m = await env.wait(timeout=0)
        got.append((m.error, await env.clock() - t0))

    run_system(root)
    assert got[0][0] == IpcErr.RETIMEOUT
    assert got[0][1] < 10_000


def test_relative_receive_timeout_advances_time():
    """A receive with a relative timeout fails with RETIMEOUT after the timeout has passed."""
    got = []

    async def root(env):
        t0 = await env.clock()
        m = await env.receive(env.thread, timeout=200_000)
        got.append((m.error, await env.clock() - t0))

    run_system(root)
    err, dt = got[0]
    assert err == IpcErr.RETIMEOUT
    assert 200_000 <= dt < 210_000


def test_send_to_empty_slot_fails_with_enot_existent():
    """Sending through an empty capability slot fails with ENOT_EXISTENT."""
    got = []

    async def root(env):
        got.append((await env.ipc(Ipc(500, SEND, 0, (1,)))).error)
        got.append((await env.ipc(Ipc(500, CALL, 0, (1,)))).error)

    run_system(root)
    assert got == [IpcErr.ENOT_EXISTENT, IpcErr.ENOT_EXISTENT]


def test_receive_from_empty_slot_fails_with_enot_existent():
    """A closed wait naming an empty slot fails with ENOT_EXISTENT instead of blocking."""
    got = []

    async def root(env):
        got.append((await env.receive(ThreadCap(env, 500))).error)

    run_system(root)
    assert got == [IpcErr.ENOT_EXISTENT]


def test_send_to_unbound_gate_fails_with_enot_existent():
    """An IPC gate bound to no thread has no receiver: sending fails with ENOT_EXISTENT."""
    got = []

    async def root(env):
        gate = await env.factory.create_gate(None, 0x40)
        got.append((await gate.send(0, 1)).error)
        got.append((await gate.call(0, 1)).error)

    run_system(root)
    assert got == [IpcErr.ENOT_EXISTENT, IpcErr.ENOT_EXISTENT]


def test_reply_with_nobody_to_reply_to_fails_with_enot_existent():
    """A reply without a pending call fails with ENOT_EXISTENT."""
    got = []

    async def root(env):
        got.append((await env.reply(0, 1)).error)

    run_system(root)
    assert got == [IpcErr.ENOT_EXISTENT]


def test_send_to_dead_thread_fails_with_enot_existent():
    """Sending to a thread (directly or through its gate) after it exited fails with ENOT_EXISTENT."""
    got = []

    async def short(env):
        return 0

    async def root(env):
        th = await env.spawn(short, name="short", prio=150)  # runs and exits at once
        gate = await env.factory.create_gate(th, 0x40)
        got.append((await th.send(0, 1)).error)
        got.append((await gate.send(0, 1)).error)

    k, _ = run_system(root)
    assert thread_named(k, "short").state is TS.DEAD
    assert got == [IpcErr.ENOT_EXISTENT, IpcErr.ENOT_EXISTENT]


def test_cancel_blocked_sender_gives_secanceled():
    """ex_regs with cancel on a thread blocked in its send phase ends that IPC with SECANCELED."""
    got = []

    async def busy(env):
        await env.receive(env.thread)

    async def sender(env, slot):
        got.append((await ThreadCap(env, slot).send(0, 1)).error)

    async def root(env):
        b = await env.spawn(busy, name="busy", prio=150)
        s = await env.spawn(sender, b.slot, name="snd", prio=150)
        await s.ex_regs(cancel=True)

    k, _ = run_system(root)
    assert got == [IpcErr.SECANCELED]
    assert thread_named(k, "busy").snd_queue == []


def test_cancel_blocked_receiver_gives_recanceled():
    """ex_regs with cancel on a thread blocked in its receive phase ends that IPC with RECANCELED."""
    got = []

    async def waiter(env):
        got.append((await env.wait()).error)

    async def root(env):
        w = await env.spawn(waiter, name="w", prio=150)
        await w.ex_regs(cancel=True)

    run_system(root)
    assert got == [IpcErr.RECANCELED]


def test_map_item_without_receive_buffer_cuts_message():
    """A map item to a receiver with no buffer: sender gets SEMSGCUT, receiver REMSGCUT, words still arrive."""
    got = []

    async def receiver(env):
        got.append(("rcv", await env.wait()))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        r = await gate.send(0, 9, items=(MapItem(gate.fpage()),))
        got.append(("snd", r, {1, 2, 3, 5, 6, 7, th.slot, gate.slot}))

    k, _ = run_system(root)
    (_, m), (_, r, slots) = got
    assert r.error == IpcErr.SEMSGCUT
    assert m.error == IpcErr.REMSGCUT and m.items == () and m.words == (9,)
    assert set(k.tasks[0].caps.slots) == slots  # nothing was mapped


def test_delete_gate_aborts_queued_sender():
    """A sender blocked in a gate's queue gets SEABORTED when the gate is deleted."""
    got = []

    async def busy(env):
        await env.receive(env.thread)

    async def sender(env, slot):
        got.append((await ThreadCap(env, slot).send(0, 1)).error)

    async def root(env):
        b = await env.spawn(busy, name="busy", prio=150)
        gate = await env.factory.create_gate(b, 0x40)
        await env.spawn(sender, gate.slot, name="snd", prio=150)
        await env.task.delete(gate.slot)

    k, _ = run_system(root)
    assert got == [IpcErr.SEABORTED]
    assert thread_named(k, "busy").snd_queue == []


def test_delete_receiver_aborts_queued_sender():
    """A sender blocked on a thread gets SEABORTED when that thread is deleted."""
    got = []

    async def busy(env):
        await env.receive(env.thread)

    async def sender(env, slot):
        got.append((await ThreadCap(env, slot).send(0, 1)).error)

    async def root(env):
        b = await env.spawn(busy, name="busy", prio=150)
        await env.spawn(sender, b.slot, name="snd", prio=150)
        await env.task.delete(b.slot)

    k, _ = run_system(root)
    assert got == [IpcErr.SEABORTED]
    assert thread_named(k, "busy").state is TS.DEAD


def test_caller_gets_reaborted_when_server_is_deleted():
    """A caller waiting for its reply gets REABORTED when the server thread is deleted."""
    got = []

    async def server(env):
        await env.wait()
        await env.receive(env.thread)  # never replies

    async def client(env, slot):
        got.append((await ThreadCap(env, slot).call(0, 1)).error)

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        await env.spawn(client, gate.slot, name="cli", prio=120)
        await env.task.delete(s.slot)

    k, _ = run_system(root)
    assert got == [IpcErr.REABORTED]
    assert thread_named(k, "cli").state is TS.DEAD  # it finished after the error


def test_caller_gets_reaborted_when_server_exits_without_reply():
    """A caller waiting for its reply gets REABORTED when the server ends without replying."""
    got = []

    async def server(env):
        await env.wait()
        await env.compute(10_000)
        return 0

    async def root(env):
        s = await env.spawn(server, name="srv", prio=10)
        gate = await env.factory.create_gate(s, 0x40)
        got.append((await gate.call(0, 1)).error)

    run_system(root)
    assert got == [IpcErr.REABORTED]


def test_closed_wait_on_thread_gets_reaborted_when_it_dies():
    """A thread in closed wait on another thread gets REABORTED when that thread is deleted."""
    got = []

    async def busy(env):
        await env.receive(env.thread)

    async def waiter(env, slot):
        got.append((await env.receive(ThreadCap(env, slot))).error)

    async def root(env):
        b = await env.spawn(busy, name="busy", prio=150)
        await env.spawn(waiter, b.slot, name="w", prio=150)
        await env.task.delete(b.slot)

    run_system(root)
    assert got == [IpcErr.REABORTED]


@pytest.mark.parametrize(
    "buf",
    [
        Fpage(FpageType.MEMORY, 0x10000, 0, 0x4),  # not an object flexpage
        Fpage.obj(CAP_SLOTS, 0),  # window beyond the capability space
        Fpage.obj(0, 0),  # slot 0 is never valid
        Fpage.obj(3, 1),  # base not aligned to the window size
    ],
    ids=["memory", "beyond", "slot0", "unaligned"],
)
def test_bad_receive_buffer_fails_map(buf):
    """A map item into a receive buffer that is not a usable object window: SEMAPFAILED / REMAPFAILED."""
    got = []

    async def receiver(env):
        got.append(("rcv", await env.wait(rcv=(buf,))))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        r = await gate.send(0, 4, items=(MapItem(gate.fpage()),))
        got.append(("snd", r, {1, 2, 3, 5, 6, 7, th.slot, gate.slot}))

    k, _ = run_system(root)
    (_, m), (_, r, slots) = got
    assert r.error == IpcErr.SEMAPFAILED
    assert m.error == IpcErr.REMAPFAILED and m.items == () and m.words == (4,)
    assert set(k.tasks[0].caps.slots) == slots  # nothing was mapped anywhere


# ------------------------------------------------------------ malformed messages
@pytest.mark.parametrize(
    ("words", "exc"),
    [
        (("x",), TypeError),
        ((-1,), TypeError),
        ((1 << 64,), TypeError),
        ((1.0,), TypeError),
        ((None,), TypeError),
        (tuple(range(MSG_WORDS + 1)), ValueError),
    ],
    ids=["str", "negative", "too-big", "float", "none", "64-words"],
)
def test_user_wrapper_rejects_bad_words(words, exc):
    """The Env wrappers raise TypeError/ValueError inside the program for words that are not machine words."""
    got = []

    async def root(env):
        gate = await env.factory.create_gate(env.thread, 0x40)
        for fn in (gate.send, gate.call, gate.send_and_wait, env.reply, env.reply_and_wait):
            try:
                fn(0, *words)
            except exc as e:
                got.append(type(e))
            else:
                got.append(None)

    run_system(root)
    assert got == [exc] * 5


def test_uncaught_wrapper_error_becomes_exception():
    """An uncaught TypeError from a wrapper becomes a native exception: the thread stops, others go on."""
    got = []

    async def bad(env, slot):
        await ThreadCap(env, slot).send(0, -5)
        got.append("not reached")

    async def root(env):
        th = await env.spawn(bad, env.thread.slot, name="bad", prio=150)
        got.append(((await th.stats())[2], await env.clock() > 0))

    k, tr = run_system(root)
    bad_th = thread_named(k, "bad")
    assert "not reached" not in got
    assert got and got[0][0] == TS.DEAD
    exc = [r for r in tr.by_kind("exception") if r[3] == bad_th.kid]
    assert len(exc) == 1 and exc[0][4]["trapno"] == TRAP_PY_EXCEPTION


@pytest.mark.parametrize(
    "words",
    [
        (-1,),
        (1 << 64,),
        ("x",),
        (1.5,),
        (True,),
        [1, 2],  # a list, not a tuple
        tuple(range(MSG_WORDS + 1)),
    ],
    ids=["negative", "too-big", "str", "float", "bool", "list", "64-words"],
)
def test_raw_ipc_with_bad_words_gets_semsgcut(words):
    """A raw Ipc trap with malformed words fails with SEMSGCUT, delivers nothing, and the kernel goes on."""
    got = []

    async def receiver(env):
        got.append(("rcv", (await env.wait()).words))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        got.append(("bad", (await env.ipc(Ipc(gate.slot, SEND, 0, words))).error))
        got.append(("good", (await gate.send(0, 7)).error))

    _k, tr = run_system(root)
    assert got == [("bad", IpcErr.SEMSGCUT), ("rcv", (7,)), ("good", 0)]
    assert ipc_errors(tr) == [IpcErr.SEMSGCUT]


def test_raw_ipc_with_too_many_items_gets_semsgcut():
    """Words plus two per item beyond 63 registers is malformed: SEMSGCUT before anything is sent."""
    got = []

    async def receiver(env):
        got.append(("rcv", await env.wait(rcv=(Fpage.obj(900, 5),))))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        items = (MapItem(gate.fpage()),)
        words = tuple(range(MSG_WORDS - 1))  # 62 words + 2 for the item = 64
        got.append(("bad", (await env.ipc(Ipc(gate.slot, SEND, 0, words, items))).error))

    k, _ = run_system(root)
    assert got == [("bad", IpcErr.SEMSGCUT)]
    assert thread_named(k, "rcv").state is TS.RECV


# ------------------------------------------------------- timeouts and aborts in the reply phase
def test_call_reply_timeout_then_late_reply_fails():
    """A call whose reply does not come within its receive timeout gets RETIMEOUT; the late reply gets ENOT_EXISTENT."""
    got = {}

    async def server(env):
        await env.wait()
        await env.compute(500_000)
        got["late_reply"] = (await env.reply(0, 1)).error

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        t0 = await env.clock()
        m = await gate.call(0, 1, rcv_timeout=100_000)
        got["call"] = (m.error, await env.clock() - t0)

    run_system(root)
    err, dt = got["call"]
    assert err == IpcErr.RETIMEOUT
    assert dt >= 100_000
    assert got["late_reply"] == IpcErr.ENOT_EXISTENT


def test_call_with_zero_receive_timeout_delivers_then_fails():
    """A call with a zero receive timeout still delivers its message, then fails with RETIMEOUT."""
    got = {}

    async def server(env):
        got["srv"] = (await env.wait()).words
        got["reply"] = (await env.reply(0, 1)).error

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        got["call"] = (await gate.call(0, 5, rcv_timeout=0)).error

    run_system(root)
    assert got == {"srv": (5,), "call": IpcErr.RETIMEOUT, "reply": IpcErr.ENOT_EXISTENT}


def test_cancel_caller_waiting_for_reply_gives_recanceled():
    """ex_regs cancel on a caller waiting for its reply gives RECANCELED; the server's reply then fails."""
    got = {}

    async def server(env):
        await env.wait()
        await sleep_ns(env, 1_000_000)
        got["reply"] = (await env.reply(0, 1)).error

    async def client(env, slot):
        got["call"] = (await ThreadCap(env, slot).call(0, 1)).error

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        c = await env.spawn(client, gate.slot, name="cli", prio=120)
        await c.ex_regs(cancel=True)

    run_system(root)
    assert got == {"call": IpcErr.RECANCELED, "reply": IpcErr.ENOT_EXISTENT}


async def sleep_ns(env, ns):
    """Block for ``ns`` of simulated time."""
    m = await env.receive(env.thread, timeout=ns)
    assert m.error == IpcErr.RETIMEOUT


def test_send_timeout_is_dropped_once_delivered():
    """A queued send with a timeout that is delivered in time succeeds, and its timeout never fires later."""
    got = []

    async def receiver(env):
        await env.compute(100_000)
        got.append(("rcv", (await env.wait()).words))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        got.append(("send", (await gate.send(0, 1, timeout=1_000_000)).error))
        m = await env.receive(env.thread, timeout=3_000_000)  # across the old deadline
        got.append(("sleep", m.error))

    _k, tr = run_system(root)
    assert got == [("send", 0), ("rcv", (1,)), ("sleep", IpcErr.RETIMEOUT)]
    assert ipc_errors(tr) == [IpcErr.RETIMEOUT]


def test_queued_send_and_wait_then_receive_timeout():
    """A queued send_and_wait delivers, then waits openly with its receive timeout and gets RETIMEOUT."""
    got = {}

    async def receiver(env):
        await env.compute(50_000)
        got["rcv"] = (await env.wait()).words
        got["t_rcv"] = await env.clock()

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=10)
        gate = await env.factory.create_gate(th, 0x40)
        m = await gate.send_and_wait(0, 3, rcv_timeout=200_000)
        got["root"] = (m.error, await env.clock())

    run_system(root)
    err, t_end = got["root"]
    assert got["rcv"] == (3,)
    assert err == IpcErr.RETIMEOUT
    assert t_end >= 200_000 + 50_000


def test_deleting_one_gate_aborts_only_its_senders():
    """Deleting a gate aborts the senders queued through it, not those queued through another gate."""
    got = []

    async def server(env):
        await env.receive(env.thread, timeout=1_000_000)
        got.append(("srv", (await env.wait()).words))

    async def sender(env, slot, tag):
        got.append((tag, (await ThreadCap(env, slot).send(0, tag)).error))

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        g1 = await env.factory.create_gate(s, 0x10)
        g2 = await env.factory.create_gate(s, 0x20)
        await env.spawn(sender, g1.slot, 1, name="s1", prio=150)
        await env.spawn(sender, g2.slot, 2, name="s2", prio=150)
        await env.task.delete(g1.slot)

    run_system(root)
    # the woken sender has the server's priority and waits its turn
    assert got == [(1, IpcErr.SEABORTED), ("srv", (2,)), (2, 0)]


@pytest.mark.parametrize(
    "trap",
    [
        Ipc(0, SEND, LABEL_MIN - 1),
        Ipc(0, SEND, 1 << 47),
        Ipc(0, SEND, "x"),  # type: ignore[arg-type]
        Ipc(0, SEND, 0, (), (), -1),
        Ipc(0, SEND, 0, (), (), None, -5),
        Ipc(0, SEND, 0, (), ("item",)),  # type: ignore[arg-type]
        Ipc(0, SEND, 0, (), (), None, None, (3,)),  # type: ignore[arg-type]
        Ipc(0, "send"),  # type: ignore[arg-type]
    ],
    ids=["label-low", "label-high", "label-str", "neg-timeout", "neg-rcv-timeout", "bad-item",
         "bad-rcv-buffer", "bad-flags"],
)
def test_raw_ipc_with_malformed_fields_gets_semsgcut(trap):
    """A raw Ipc whose label, timeouts, items, buffers or flags are malformed fails with SEMSGCUT and sends nothing."""
    got = []

    async def receiver(env):
        got.append(("rcv", (await env.wait()).words))

    async def root(env):
        th = await env.spawn(receiver, name="rcv", prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        trap.cap = gate.slot
        got.append(("bad", (await env.ipc(trap)).error))
        got.append(("good", (await gate.send(0, 7)).error))

    run_system(root)
    assert got == [("bad", IpcErr.SEMSGCUT), ("rcv", (7,)), ("good", 0)]


@pytest.mark.parametrize("cap", [-1, 0, CAP_SLOTS, 1 << 70, "g", None, 1.0])
def test_raw_ipc_with_bad_capability_index_gets_enot_existent(cap):
    """Sending through a capability index that names no slot fails with ENOT_EXISTENT; the kernel goes on."""
    got = []

    async def root(env):
        got.append((await env.ipc(Ipc(cap, SEND, 0, (1,)))).error)
        got.append((await env.ipc(Ipc(cap, CALL, 0, (1,)))).error)
        got.append((await env.ipc(Ipc(cap, RECV, rcv_timeout=0))).error)
        got.append((await env.wait(timeout=0)).error)

    run_system(root)
    assert got == [IpcErr.ENOT_EXISTENT] * 3 + [IpcErr.RETIMEOUT]
