"""Capabilities: map and grant through IPC, rights, unmap and revocation, deletion, object
lifetime, deferred replies, failed invocations that leave no trace, wrong protocols.

Where a test needs kernel state between two steps of a program, the program
sleeps (a receive with a timeout) and the test runs the kernel up to an
instant inside the sleep, looks, and runs on.
"""

from __future__ import annotations

import pytest

from l4sim.kernel.abi import (
    CALL,
    WORD_MASK,
    Err,
    Fpage,
    IpcErr,
    MapItem,
    Proto,
    Rights,
    TaskOp,
)
from l4sim.kernel.objects import TS
from l4sim.kernel.traps import Ipc
from l4sim.user.env import FactoryCap, IrqCap, L4Error, ThreadCap, start_task

from .conftest import make_system, run_system, task_named, thread_named

MS = 1_000_000
RBUF = 20  # receive-buffer slot used by the servers below


async def sleep(env, ns: int) -> None:
    """Block for ``ns`` of simulated time (a receive from oneself with a timeout)."""
    m = await env.receive(env.thread, timeout=ns)
    assert m.error == IpcErr.RETIMEOUT


def cap_state(k) -> tuple:
    """Everything a failed invocation must not change: objects, every slot of every task, quotas."""
    slots = sorted(
        (t.kid, s, e.obj.kid, int(e.rights))
        for t in k.tasks if t.alive for s, e in t.caps.slots.items()
    )
    quotas = sorted((e.obj.kid, e.obj.used) for t in k.tasks for e in t.caps.slots.values()
                    if type(e.obj).__name__ == "Factory")
    return k.objects_alive, tuple(slots), tuple(quotas)


def proto_word(p: int) -> int:
    return p & WORD_MASK


# ------------------------------------------------------------ map and grant by IPC
def _send_item_system(src_rights, item_rights, grant=False):
    """Root gives a client an Irq with ``src_rights``; the client sends it to a server task."""
    got = {}

    async def server(env):
        m = await env.wait(rcv=(Fpage.obj(RBUF),))
        got["msg"] = m
        got["srv_info"] = await env.task.cap_info(RBUF)

    async def client(env):
        x = env.cap("x")
        r = await env.cap("g").send(0, 1, items=(MapItem(Fpage.obj(x.slot, 0, item_rights), grant=grant),))
        got["send"] = r.error
        got["cli_info"] = await env.task.cap_info(x.slot)
        got["cli_slot"] = x.slot

    async def root(env):
        _, srv = await start_task(env, "server", server, prio=150)
        gate = await env.factory.create_gate(srv, 0x40)
        irq = await env.factory.create_irq()
        _ctask, _ = await start_task(env, "client", client, {"g": gate, "x": (irq, src_rights)}, prio=10)
        got["irq_slot"] = irq.slot

    k, tr = run_system(root)
    return k, tr, got


def test_map_item_maps_capability_into_receive_buffer():
    """A map item puts the capability into the receiver's buffer slot and msg.items says so."""
    k, _, got = _send_item_system(Rights.RWSD, Rights.RWSD)
    m = got["msg"]
    assert got["send"] == 0 and m.error == 0
    assert m.items == (Fpage.obj(RBUF, 0, Rights.RWSD),)
    assert got["srv_info"] == (1, proto_word(Proto.IRQ_SENDER), Rights.RWSD)
    assert got["cli_info"][0] == 1  # a map keeps the source
    srv_entry = task_named(k, "server").caps.slots[RBUF]
    assert srv_entry.parent is task_named(k, "client").caps.slots[got["cli_slot"]]


@pytest.mark.parametrize(
    ("src", "fp", "expected"),
    [
        (Rights.RWSD, Rights.R | Rights.W, Rights.R | Rights.W),
        (Rights.R | Rights.W, Rights.RWSD, Rights.R | Rights.W),
        (Rights.R | Rights.S, Rights.R | Rights.W, Rights.R),
        (Rights.RWS, Rights.RWSD, Rights.RWS),
    ],
    ids=["fpage-reduces", "source-limits", "intersection", "no-D-gained"],
)
def test_mapped_rights_are_source_and_fpage_rights(src, fp, expected):
    """The received capability has the source's rights masked by the flexpage's, never more."""
    _, _, got = _send_item_system(src, fp)
    assert got["msg"].items == (Fpage.obj(RBUF, 0, expected),)
    assert got["srv_info"][2] == expected
    assert got["cli_info"][2] == src  # the source keeps its own rights


def test_grant_moves_capability():
    """A grant item moves the capability: the sender's slot is empty afterwards, the receiver has it."""
    k, _, got = _send_item_system(Rights.RWSD, Rights.RWSD, grant=True)
    assert got["send"] == 0
    assert got["msg"].items == (Fpage.obj(RBUF, 0, Rights.RWSD),)
    assert got["srv_info"] == (1, proto_word(Proto.IRQ_SENDER), Rights.RWSD)
    assert got["cli_info"] == (0, 0, 0)
    # it keeps its place in the derivation tree: still derived from root's capability
    srv_entry = task_named(k, "server").caps.slots[RBUF]
    assert srv_entry.parent is k.tasks[0].caps.slots[got["irq_slot"]]


def test_granted_capability_is_revoked_by_source_ancestor_unmap():
    """A granted capability stays derived from the grantor's parent, so that parent's unmap revokes it."""
    got = {}

    async def server(env):
        await env.wait(rcv=(Fpage.obj(RBUF),))
        await sleep(env, 2 * MS)
        got["after"] = await env.task.cap_info(RBUF)

    async def client(env):
        x = env.cap("x")
        await env.cap("g").send(0, items=(MapItem(x.fpage(), grant=True),))

    async def root(env):
        _, srv = await start_task(env, "server", server, prio=150)
        gate = await env.factory.create_gate(srv, 0x40)
        irq = await env.factory.create_irq()
        await start_task(env, "client", client, {"g": gate, "x": irq}, prio=10)
        await sleep(env, MS)
        await env.task.unmap(irq.fpage())
        got["root"] = await env.task.cap_info(irq.slot)

    run_system(root)
    assert got["after"] == (0, 0, 0)
    assert got["root"][0] == 1


# -------------------------------------------------------------------- unmap
def _chain_root(got, action):
    """Root maps an Irq A -> task B -> task C, then runs ``action`` and reports all three slots."""

    async def root(env):
        irq = await env.factory.create_irq()
        tb = await env.factory.create_task("B")
        tc = await env.factory.create_task("C")
        await tb.map(env.task, irq.fpage(), 10)
        await tc.map(tb, Fpage.obj(10), 11)
        got["before"] = (await env.task.cap_info(irq.slot), await tb.cap_info(10), await tc.cap_info(11))
        await sleep(env, MS)  # the test looks at the kernel here
        got["touched"] = await action(env, {"irq": irq, "B": tb, "C": tc})
        got["after"] = (await env.task.cap_info(irq.slot), await tb.cap_info(10), await tc.cap_info(11))
        await sleep(env, MS)

    return root


def test_unmap_revokes_derived_capabilities_in_every_task():
    """Unmapping A's capability removes B's copy and C's copy derived from it; A keeps its own."""
    got = {}
    k, _ = run_system(_chain_root(got, lambda env, c: env.task.unmap(c["irq"].fpage())))
    irq_info = (1, proto_word(Proto.IRQ_SENDER), Rights.RWSD)
    assert got["before"] == (irq_info, irq_info, irq_info)
    assert got["after"] == (irq_info, (0, 0, 0), (0, 0, 0))
    assert got["touched"] == 2
    assert len(task_named(k, "B").caps) == 0 and len(task_named(k, "C").caps) == 0


def test_unmap_include_self_removes_own_capability_and_object():
    """Unmap with include_self removes A's capability too, and the object with its last capability."""
    got = {}
    k, _ = make_system(_chain_root(got, lambda env, c: env.task.unmap(c["irq"].fpage(), include_self=True)))
    k.run(until=MS // 2)
    alive = k.objects_alive
    irq_obj = task_named(k, "B").caps.slots[10].obj
    k.run()
    assert got["after"] == ((0, 0, 0), (0, 0, 0), (0, 0, 0))
    assert got["touched"] == 3
    assert not irq_obj.alive
    assert k.objects_alive == alive - 1


def test_unmap_without_read_right_only_lowers_rights():
    """An unmap whose flexpage lacks R takes only the named rights from derived capabilities."""
    got = {}
    mask = Rights.W | Rights.S
    run_system(_chain_root(got, lambda env, c: env.task.unmap(c["irq"].fpage(mask))))
    a, b, c = got["after"]
    assert a[2] == Rights.RWSD  # own capability untouched
    assert b == (1, proto_word(Proto.IRQ_SENDER), Rights.R | Rights.D)
    assert c == (1, proto_word(Proto.IRQ_SENDER), Rights.R | Rights.D)


def test_reduced_unmap_removes_capability_left_without_rights():
    """A derived capability that loses its last right in a reduced unmap is removed, its parent stays."""
    got = {}

    async def root(env):
        irq = await env.factory.create_irq()
        tb = await env.factory.create_task("B")
        tc = await env.factory.create_task("C")
        await tb.map(env.task, irq.fpage(Rights.R | Rights.W), 10)
        await tc.map(tb, Fpage.obj(10, 0, Rights.W), 11)
        await env.task.unmap(irq.fpage(Rights.W))
        got["after"] = (await tb.cap_info(10), await tc.cap_info(11))

    k, _ = run_system(root)
    assert got["after"] == ((1, proto_word(Proto.IRQ_SENDER), Rights.R), (0, 0, 0))
    b_entry = task_named(k, "B").caps.slots[10]
    assert not b_entry.children


def test_unmap_of_middle_link_leaves_ancestor():
    """Unmapping B's copy (through a capability to task B) removes C's copy but not B's own or A's."""
    got = {}
    run_system(_chain_root(got, lambda env, c: c["B"].unmap(Fpage.obj(10))))
    a, b, c = got["after"]
    assert a[0] == 1 and b[0] == 1 and c == (0, 0, 0)


# ------------------------------------------------------------------- delete
def test_delete_destroys_object_for_all_holders_and_aborts_blocked():
    """task.delete with the D right destroys a gate everywhere; its blocked sender gets SEABORTED."""
    got = {}

    async def busy(env):
        await env.receive(env.thread)

    async def client(env):
        got["send"] = (await env.cap("g").send(0, 1)).error
        got["client"] = await env.task.cap_info(env.cap("g").slot)

    async def root(env):
        b = await env.spawn(busy, name="busy", prio=150)
        gate = await env.factory.create_gate(b, 0x40)
        tb = await env.factory.create_task("B")
        await tb.map(env.task, gate.fpage(), 10)
        await start_task(env, "client", client, {"g": (gate, Rights.RW)}, prio=120)  # blocks
        await sleep(env, MS)
        got["deleted"] = await env.task.delete(gate.slot)
        got["root"] = await env.task.cap_info(gate.slot)
        got["B"] = await tb.cap_info(10)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    alive = k.objects_alive
    gate_obj = task_named(k, "B").caps.slots[10].obj
    k.run()
    assert got["send"] == IpcErr.SEABORTED
    assert got["root"] == got["B"] == got["client"] == (0, 0, 0)
    assert got["deleted"] == 3
    assert not gate_obj.alive
    assert k.objects_alive == alive - 1


def test_delete_through_derived_capability_with_d_right_destroys_for_all():
    """A task holding a derived capability with D can delete the object, also from its creator."""
    got = {}

    async def child(env):
        await env.task.delete(env.cap("x").slot)

    async def root(env):
        irq = await env.factory.create_irq()
        await start_task(env, "child", child, {"x": (irq, Rights.RWSD)}, prio=150)
        got["root"] = await env.task.cap_info(irq.slot)

    run_system(root)
    assert got["root"] == (0, 0, 0)


def test_delete_without_d_right_only_drops_own_capability():
    """Without the D right, task.delete only removes the caller's capability; the object lives on."""
    got = {}

    async def child(env):
        x = env.cap("x")
        await env.task.delete(x.slot)
        got["child"] = await env.task.cap_info(x.slot)

    async def root(env):
        irq = await env.factory.create_irq()
        await start_task(env, "child", child, {"x": (irq, Rights.RWS)}, prio=150)
        got["root"] = await env.task.cap_info(irq.slot)
        got["slot"] = irq.slot

    k, _ = run_system(root)
    assert got["child"] == (0, 0, 0)
    assert got["root"] == (1, proto_word(Proto.IRQ_SENDER), Rights.RWSD)
    assert k.tasks[0].caps.slots[got["slot"]].obj.alive


@pytest.mark.parametrize("kind", ["irq", "gate", "thread", "task", "factory"])
def test_object_disappears_with_its_last_capability(kind):
    """Unmapping the only capability to an object (include_self) destroys it: objects_alive decreases."""
    got = {}

    async def root(env):
        f = env.factory
        match kind:
            case "irq":
                cap = await f.create_irq()
            case "gate":
                cap = await f.create_gate(env.thread, 0x40)
            case "thread":
                cap = await f.create_thread("doomed")
            case "task":
                cap = await f.create_task("doomed")
            case _:
                cap = await f.create_factory(10_000)
        got["slot"] = cap.slot
        await sleep(env, MS)
        got["touched"] = await env.task.unmap(cap.fpage(), include_self=True)
        got["info"] = await env.task.cap_info(cap.slot)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    alive = k.objects_alive
    obj = k.tasks[0].caps.slots[got["slot"]].obj
    k.run()
    assert got["touched"] == 1 and got["info"] == (0, 0, 0)
    assert not obj.alive
    assert k.objects_alive == alive - 1


def test_destroyed_object_returns_its_quota():
    """A destroyed object's kernel memory returns to the factory that paid for it."""
    got = {}

    async def root(env):
        sub = await env.factory.create_factory(100_000)
        irq = await sub.create_irq()
        got["slots"] = (sub.slot, irq.slot)
        await sleep(env, MS)
        await env.task.unmap(irq.fpage(), include_self=True)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    fac = k.tasks[0].caps.slots[got["slots"][0]].obj
    used = fac.used
    k.run()
    assert used > 0 and fac.used == 0


def test_deleting_task_removes_its_capabilities_and_derived_ones():
    """Deleting a task takes every capability in it, and what was derived from them elsewhere."""
    got = {}

    async def root(env):
        irq = await env.factory.create_irq()
        tb = await env.factory.create_task("B")
        tc = await env.factory.create_task("C")
        await tb.map(env.task, irq.fpage(), 10)
        await tc.map(tb, Fpage.obj(10), 11)
        await env.task.delete(tb.slot)
        got["C"] = await tc.cap_info(11)
        got["root"] = await env.task.cap_info(irq.slot)

    k, _ = run_system(root)
    assert got["C"] == (0, 0, 0)
    assert got["root"][0] == 1
    assert not task_named(k, "B").alive


# ----------------------------------------------------------- deferred reply
def test_deferred_reply_through_saved_reply_capability():
    """A server saves the reply capability, serves another message, then answers the first caller."""
    got = {}

    async def server(env):
        m = await env.wait()
        rc = await env.save_reply()
        got["plain_reply"] = (await env.reply(0, 1)).error  # the implicit one is gone
        go = await env.wait()
        got["go"] = go.words
        got["first"] = (await rc.send(0, m.words[0] * 10)).error
        got["second"] = (await rc.send(0, 0)).error
        got["slot_after"] = await env.task.cap_info(rc.slot)

    async def kick(env, slot):
        await sleep(env, 2 * MS)
        await ThreadCap(env, slot).send(0, 77)

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        await env.spawn(kick, gate.slot, name="kick", prio=50)
        await sleep(env, MS)
        r = await gate.call(0, 4)
        got["caller"] = (r.error, r.words)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    alive = k.objects_alive
    k.run(until=MS + MS // 2)
    alive_saved = k.objects_alive
    k.run()
    assert got["caller"] == (0, (40,))
    assert got["plain_reply"] == IpcErr.ENOT_EXISTENT
    assert got["go"] == (77,)
    assert got["first"] == 0
    assert got["second"] == IpcErr.ENOT_EXISTENT
    assert got["slot_after"] == (0, 0, 0)
    assert alive_saved == alive + 1  # the saved reply is an object while it has a slot
    assert k.objects_alive == alive


def test_dropping_saved_reply_aborts_caller():
    """Unmapping a saved reply capability unused ends the waiting caller's IPC with REABORTED."""
    got = {}

    async def server(env):
        await env.wait()
        rc = await env.save_reply()
        await env.task.unmap(rc.fpage(), include_self=True)

    async def root(env):
        s = await env.spawn(server, name="srv", prio=10)
        gate = await env.factory.create_gate(s, 0x40)
        got["caller"] = (await gate.call(0, 1)).error

    run_system(root)
    assert got["caller"] == IpcErr.REABORTED


def test_save_reply_without_call_fails():
    """save_reply with no call received fails with ENOENT and creates nothing."""
    got = {}

    async def root(env):
        try:
            await env.save_reply(40)
        except L4Error as e:
            got["err"] = e.err
        got["info"] = await env.task.cap_info(40)

    run_system(root)
    assert got == {"err": Err.ENOENT, "info": (0, 0, 0)}


# ------------------------------------------------- failed invocations change nothing
def _no_change(bad_op, setup=None, caps_rights=None):
    """Run ``bad_op(env)`` in a child task between two kernel snapshots; return (result, before, after)."""
    got = {}

    async def child(env):
        await sleep(env, MS)
        got["result"] = await bad_op(env)
        await sleep(env, MS)

    async def root(env):
        irq = await env.factory.create_irq()
        th = await env.factory.create_thread("idle")
        tb = await env.factory.create_task("B")
        caps = {
            "factory": (env.factory, Rights.R | Rights.S),
            "irq": (irq, Rights.R),
            "th": (th, Rights.R),
            "tb": (tb, Rights.R),
            "full_tb": tb,
        }
        await start_task(env, "child", child, caps, prio=10)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    before = cap_state(k)
    k.run(until=MS + MS // 2)
    after = cap_state(k)
    k.run()
    return got["result"], before, after


async def _raw(env, name, proto, *words, rcv=()):
    return await env.ipc(Ipc(env.cap(name).slot, CALL, int(proto), tuple(int(w) for w in words), rcv=rcv))


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        # factory without W: create fails with -EPERM
        (lambda env: _raw(env, "factory", Proto.FACTORY, 0, 0, 0x40, rcv=(Fpage.obj(30),)), -Err.EPERM),
        (lambda env: _raw(env, "factory", Proto.FACTORY, Proto.IRQ_SENDER & WORD_MASK,
                          rcv=(Fpage.obj(30),)), -Err.EPERM),
        # irq without W: trigger / attach refused
        (lambda env: _raw(env, "irq", Proto.IRQ_SENDER, 2), -Err.EPERM),
        # thread without W: ex_regs refused
        (lambda env: _raw(env, "th", Proto.THREAD, 1, 0, 0, 0x10000), -Err.EPERM),
        # task without W: map into it refused
        (lambda env: _raw(env, "tb", Proto.TASK, TaskOp.MAP, 1, Fpage.obj(1).word(), 5), -Err.EPERM),
        # map from a source slot that is not a task
        (lambda env: _raw(env, "full_tb", Proto.TASK, TaskOp.MAP, 500, Fpage.obj(1).word(), 5), -Err.EINVAL),
        # map to a destination slot out of range
        (lambda env: _raw(env, "full_tb", Proto.TASK, TaskOp.MAP, 1, Fpage.obj(1).word(), (1 << 20) << 12),
         -Err.ERANGE),
        # unmap in another task through a capability without W
        (lambda env: _raw(env, "tb", Proto.TASK, TaskOp.UNMAP, Fpage.obj(1).word(), 0), -Err.EPERM),
        # unmap with unknown flags
        (lambda env: _raw(env, "full_tb", Proto.TASK, TaskOp.UNMAP, Fpage.obj(1).word(), 0x1234), -Err.EINVAL),
        # missing arguments
        (lambda env: _raw(env, "full_tb", Proto.TASK, TaskOp.MAP, 1), -Err.EINVAL),
        (lambda env: _raw(env, "full_tb", Proto.TASK), -Err.EINVAL),
    ],
    ids=["factory-gate-no-W", "factory-irq-no-W", "irq-trigger-no-W", "thread-ex_regs-no-W",
         "task-map-no-W", "task-unmap-no-W", "map-bad-source", "map-dst-range", "unmap-bad-flags", "map-short",
         "no-words"],
)
def test_refused_invocation_changes_nothing(op, expected):
    """An invocation refused in decode returns -errno in the proto and leaves kernel state unchanged."""
    result, before, after = _no_change(op)
    assert result.error == 0 and result.proto == expected
    assert after == before


def test_factory_wrapper_without_w_raises_eperm_and_creates_nothing():
    """FactoryCap.create_gate through a capability without W raises L4Error(EPERM); no slot or object appears."""

    async def op(env):
        f = env.cap("factory", FactoryCap)
        try:
            await f.create_gate(None, 0x40)
        except L4Error as e:
            return e.err
        return None

    result, before, after = _no_change(op)
    assert result == Err.EPERM
    assert after == before


def test_invocation_through_empty_slot_changes_nothing():
    """Invoking a kernel object through an empty slot fails with ENOT_EXISTENT and changes nothing."""

    async def op(env):
        return await IrqCap(env, 700).invoke(2)

    result, before, after = _no_change(op)
    assert result.error == IpcErr.ENOT_EXISTENT
    assert after == before


def test_factory_create_over_quota_changes_nothing():
    """A create that would exceed the factory quota fails with -ENOMEM and nothing is charged."""
    got = {}

    async def root(env):
        sub = await env.factory.create_factory(100)
        got["sub"] = sub.slot
        await sleep(env, MS)
        got["r"] = await env.ipc(sub.invoke(Proto.TASK & WORD_MASK, rcv=(Fpage.obj(50),)))
        await sleep(env, MS)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    before = cap_state(k)
    k.run(until=MS + MS // 2)
    after = cap_state(k)
    k.run()
    assert got["r"].proto == -Err.ENOMEM
    assert after == before


# -------------------------------------------------------------- wrong protocol
@pytest.mark.parametrize(
    ("slot_name", "proto"),
    [
        ("factory", Proto.TASK),
        ("task", Proto.FACTORY),
        ("log", Proto.THREAD),
        ("icu", Proto.SCHEDULER),
        ("scheduler", Proto.IRQ),
        ("irq", Proto.NONE),
    ],
)
def test_wrong_protocol_label_gets_enosys(slot_name, proto):
    """Invoking a kernel object with another object's protocol label returns -ENOSYS and changes nothing."""
    got = {}

    async def root(env):
        irq = await env.factory.create_irq()
        slot = irq.slot if slot_name == "irq" else env.cap(slot_name).slot
        await sleep(env, MS)
        got["r"] = await env.ipc(Ipc(slot, CALL, int(proto), (0, 0, 0, 0), rcv=(Fpage.obj(60),)))
        await sleep(env, MS)

    k, _ = make_system(root)
    k.run(until=MS // 2)
    before = cap_state(k)
    k.run(until=MS + MS // 2)
    after = cap_state(k)
    k.run()
    assert got["r"].error == 0 and got["r"].proto == -Err.ENOSYS
    assert after == before


@pytest.mark.parametrize(
    ("slot_name", "proto", "op"),
    [("task", Proto.TASK, 99), ("scheduler", Proto.SCHEDULER, 99), ("thread", Proto.THREAD, 99),
     ("factory", Proto.FACTORY, 12345)],
)
def test_unknown_operation_gets_enosys(slot_name, proto, op):
    """A right protocol but an unknown operation number returns -ENOSYS."""
    got = {}

    async def root(env):
        got["r"] = await env.ipc(Ipc(env.cap(slot_name).slot, CALL, int(proto), (op, 0, 0, 0),
                                     rcv=(Fpage.obj(60),)))
        got["info"] = await env.task.cap_info(60)

    run_system(root)
    assert got["r"].proto == -Err.ENOSYS
    assert got["info"] == (0, 0, 0)


def test_thread_of_deleted_task_is_dead():
    """Deleting a task kills its threads; a caller blocked on one of them gets an error."""
    got = {}

    async def server(env):
        await env.receive(env.thread)

    async def root(env):
        ttask, th = await start_task(env, "srv", server, prio=150)
        gate = await env.factory.create_gate(th, 0x40)
        await env.spawn(_caller, gate.slot, got, name="cli", prio=120)
        await env.task.delete(ttask.slot)

    k, _ = run_system(root)
    assert thread_named(k, "srv").state is TS.DEAD
    assert got["err"] == IpcErr.SEABORTED


async def _caller(env, slot, got):
    got["err"] = (await ThreadCap(env, slot).send(0, 1)).error


def test_saved_reply_after_caller_died_fails_and_is_used_up():
    """Replying through a saved reply capability whose caller was deleted fails with ENOT_EXISTENT and empties the slot."""
    got = {}

    async def server(env):
        await env.wait()
        rc = await env.save_reply()
        await sleep(env, MS)
        got["reply"] = (await rc.send(0, 1)).error
        got["slot"] = await env.task.cap_info(rc.slot)

    async def client(env, slot):
        await ThreadCap(env, slot).call(0, 1)
        got["client_returned"] = True

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        c = await env.spawn(client, gate.slot, name="cli", prio=120)
        await env.task.delete(c.slot)

    k, _ = run_system(root)
    assert got == {"reply": IpcErr.ENOT_EXISTENT, "slot": (0, 0, 0)}
    assert thread_named(k, "cli").state is TS.DEAD


def test_grant_with_fewer_rights_reduces_what_was_derived():
    """Granting a capability with fewer rights also lowers the rights of capabilities derived from it."""
    got = {}

    async def server(env):
        got["msg"] = await env.wait(rcv=(Fpage.obj(RBUF),))

    async def root(env):
        _, srv = await start_task(env, "server", server, prio=150)
        gate = await env.factory.create_gate(srv, 0x40)
        irq = await env.factory.create_irq()
        tb = await env.factory.create_task("B")
        await tb.map(env.task, irq.fpage(), 10)
        await gate.send(0, items=(MapItem(irq.fpage(Rights.R | Rights.S), grant=True),))
        got["root"] = await env.task.cap_info(irq.slot)
        got["B"] = await tb.cap_info(10)

    run_system(root)
    assert got["msg"].items == (Fpage.obj(RBUF, 0, Rights.R | Rights.S),)
    assert got["root"] == (0, 0, 0)
    assert got["B"] == (1, proto_word(Proto.IRQ_SENDER), Rights.R | Rights.S)


def test_map_item_window_of_several_slots():
    """A flexpage of 4 slots into a 4-slot window maps every occupied slot at the same offset."""
    got = {}

    async def server(env):
        got["msg"] = await env.wait(rcv=(Fpage.obj(32, 2),))

    async def root(env):
        _, srv = await start_task(env, "server", server, prio=150)
        gate = await env.factory.create_gate(srv, 0x40)
        # fill slots 16, 17 and 19 (18 stays empty)
        for s in (16, 17, 19):
            await env.factory.create_irq(slot=s)
        got["send"] = (await gate.send(0, items=(MapItem(Fpage.obj(16, 2, Rights.RW)),))).error

    k, _ = run_system(root)
    assert got["send"] == 0
    assert got["msg"].items == tuple(Fpage.obj(s, 0, Rights.RW) for s in (32, 33, 35))
    assert sorted(s for s in task_named(k, "server").caps.slots if s >= 32) == [32, 33, 35]


def test_map_item_hot_spot_places_small_fpage_in_large_window():
    """A one-slot flexpage sent into a larger window lands at the offset chosen by snd_base."""
    got = {}

    async def server(env):
        got["msg"] = await env.wait(rcv=(Fpage.obj(64, 3),))

    async def root(env):
        _, srv = await start_task(env, "server", server, prio=150)
        gate = await env.factory.create_gate(srv, 0x40)
        irq = await env.factory.create_irq()
        await gate.send(0, items=(MapItem(irq.fpage(), snd_base=5),))

    run_system(root)
    assert got["msg"].items == (Fpage.obj(69, 0, Rights.RWSD),)


def test_map_item_hot_spot_picks_part_of_large_fpage():
    """A large flexpage sent into a one-slot window transfers the slot chosen by snd_base."""
    got = {}

    async def server(env):
        m = await env.wait(rcv=(Fpage.obj(RBUF),))
        got["msg"] = m
        got["info"] = await env.task.cap_info(RBUF)

    async def root(env):
        _, srv = await start_task(env, "server", server, prio=150)
        gate = await env.factory.create_gate(srv, 0x40)
        await env.factory.create_irq(slot=16 + 2)
        await env.factory.create_thread("t", slot=16 + 1)
        await gate.send(0, items=(MapItem(Fpage.obj(16, 2), snd_base=2),))

    run_system(root)
    assert got["msg"].items == (Fpage.obj(RBUF, 0, Rights.RWSD),)
    assert got["info"][1] == proto_word(Proto.IRQ_SENDER)


@pytest.mark.parametrize("queued", [False, True], ids=["caller-running", "caller-queued"])
def test_reply_maps_capability_into_callers_buffer(queued):
    """A reply with a map item fills the receive buffer the caller gave with its call."""
    got = {}

    async def server(env):
        if queued:
            await env.compute(50_000)  # the caller queues meanwhile
        await env.wait()
        irq = await env.factory.create_irq()
        got["reply"] = (await env.reply(0, items=(MapItem(irq.fpage(Rights.R | Rights.W)),))).error

    async def root(env):
        s = await env.spawn(server, name="srv", prio=10 if queued else 150)
        gate = await env.factory.create_gate(s, 0x40)
        m = await gate.call(0, rcv=(Fpage.obj(40),))
        got["call"] = (m.error, m.items)
        got["info"] = await env.task.cap_info(40)

    run_system(root)
    assert got["reply"] == 0
    assert got["call"] == (0, (Fpage.obj(40, 0, Rights.R | Rights.W),))
    assert got["info"] == (1, proto_word(Proto.IRQ_SENDER), Rights.R | Rights.W)


def test_reply_with_item_to_caller_without_buffer_is_cut():
    """A reply carrying a map item to a caller that gave no buffer: server SEMSGCUT, caller REMSGCUT."""
    got = {}

    async def server(env):
        await env.wait()
        irq = await env.factory.create_irq()
        got["reply"] = (await env.reply(0, 5, items=(MapItem(irq.fpage()),))).error

    async def root(env):
        s = await env.spawn(server, name="srv", prio=150)
        gate = await env.factory.create_gate(s, 0x40)
        m = await gate.call(0)
        got["call"] = (m.error, m.words, m.items)

    run_system(root)
    assert got == {"reply": IpcErr.SEMSGCUT, "call": (IpcErr.REMSGCUT, (5,), ())}
