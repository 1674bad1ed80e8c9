"""IPC: the fastpath, the full path, typed items and reply capabilities.

The one system call of L4 (Fiasco's ``thread-ipc.cpp``, seL4's
``object/endpoint.c`` and ``kernel/thread.c``).  ``sys_ipc`` looks up the
invoked capability, decodes the whole message without changing anything
(``ipc_ok``), then runs the send phase (deliver to a waiting receiver, or
queue at it) and the receive phase (a pending IRQ, a queued sender, or
block with a timeout).  A call leaves the callee a use-once reply
capability (:class:`~l4sim.kernel.objects.Reply`); ``sys_save_reply``
moves it into a slot for a deferred reply.

``sys_ipc_fast`` is the fastpath: a call to a waiting server, a reply to a
waiting caller, words only.  Its effects and charged time are exactly the
full path's; everything else, every error included, goes the full way.

Typed items are decoded against the receiver's buffers before any is
performed (``decode_items``); flexpage transfers are planned and carried
out by :mod:`l4sim.kernel.mapdb`.

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import (
    _FPAGE_KINDS,
    CAP_SLOTS,
    LABEL_MAX,
    LABEL_MIN,
    MSG_WORDS,
    OPEN_WAIT,
    PROTO_ALLOW_SYSCALL,
    RECV,
    REPLY,
    REPLY_AND_WAIT,
    SEND,
    TID_MASK,
    WORD_MASK,
    Err,
    Fpage,
    IpcErr,
    MapItem,
    MemRights,
    Proto,
    Rights,
    StrBuf,
    StrItem,
)
from l4sim.kernel.caps import CapEntry
from l4sim.kernel.comm import Route
from l4sim.kernel.common import (
    _DEAD,
    _PROTO_KOBJECT,
    _READY,
    _RECV,
    _SEND,
    CALL_FLAGS,
    _new_msg,
    _range_ok,
)
from l4sim.kernel.objects import EXC_ALIEN_CALL, TS, IpcGate, Irq, KObject, Reply, Thread
from l4sim.kernel.traps import MSG_OK, Ipc, Msg, SaveReply
from l4sim.kernel.vspace import first_missing
from l4sim.machine.events import PRIO_TIMEOUT

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Core, Kernel


def sys_save_reply(self: Kernel, core: Core, th: Thread, t: SaveReply) -> None:
    self._charge(core, th, self.costs.syscall + self.costs.map_per_entry)
    r = th.reply
    task = th.task
    if task is None or not (type(t.slot) is int and 0 < t.slot < CAP_SLOTS):
        th.resume = -Err.EINVAL
    elif r is None or r.caller is None:
        th.resume = -Err.ENOENT
    else:
        th.reply = None
        self.objects_alive += 1  # a saved reply is an object with a capability
        r.alive = True
        self.cap_insert(task, t.slot, r, Rights.W, None)
        th.resume = 0


def lookup(self: Kernel, th: Thread, slot: int) -> CapEntry | None:
    task = th.task
    if task is None or type(slot) is not int:
        return None
    return task.caps.slots.get(slot)


def words_ok(words: Any) -> bool:
    if type(words) is not tuple:
        return False
    for w in words:
        if type(w) is not int or w < 0 or w > WORD_MASK:
            return False
    return True


#: int's own conversion: copies an int subclass's value without calling any of its methods
#: (``int(x)`` would call a subclass's ``__int__``; ``int.__int__`` is the base slot itself)
_INT: Any = int.__int__
#: the receive buffers a thread may name: the UTCB's buffer registers (one is the descriptor)
RCV_BUFS = 58


def plain_int(v: object) -> int | None:
    """``v`` as an exact ``int``, or None when it is no int at all.

    An int subclass (an IntEnum op code, or a hostile class with its own
    ``__int__``, ``__and__``, ...) is copied by int's own slot: no method of
    the program's runs in the kernel, and what the kernel keeps is its own
    plain value.  ``bool`` is refused, as before.
    """
    tv = type(v)
    if tv is int:
        return v  # type: ignore[return-value]
    if tv is bool or not issubclass(tv, int):
        return None
    return _INT(v)  # type: ignore[no-any-return]


def in_range(v: object, lo: int, hi: int) -> int | None:
    """``v`` as a plain int with ``lo <= v <= hi``, or None."""
    if type(v) is int:  # the common case, without a call
        return v if lo <= v <= hi else None
    x = plain_int(v)
    return x if x is not None and lo <= x <= hi else None


def copy_fpage(fp: object) -> Fpage | None:
    """The kernel's own copy of a flexpage, every field a plain int in range, or None."""
    if type(fp) is not Fpage:
        return None
    kind = in_range(fp.kind, 0, 3)
    base = in_range(fp.base, 0, WORD_MASK)
    order = in_range(fp.order, 0, 64)
    rights = in_range(fp.rights, 0, 0xF)
    if kind is None or base is None or order is None or rights is None:
        return None
    return Fpage(_FPAGE_KINDS[kind], base, order, rights)


def _copy_str(cls: type[StrItem] | type[StrBuf], b: StrItem | StrBuf) -> Any:
    """The kernel's copy of a string item or buffer whose address and length are in range."""
    addr, n = plain_int(b.addr), plain_int(b.length)
    return cls(addr, n) if _range_ok(addr, n) else None  # type: ignore[arg-type]


def copy_in(t: Ipc) -> Ipc | None:
    """Decode an IPC trap into the kernel's own copy, or None when it is malformed.

    Copy-in at the trap boundary: every field becomes a plain machine value
    (exact ints in range; flexpages, items and buffers rebuilt as the
    kernel's objects), so nothing the program does to its trap object later
    -- from another thread, while the message waits in a queue -- reaches
    the kernel, and no method of the program's runs here.  Checks label,
    words, items, timeouts and buffers; changes nothing.
    """
    cap = plain_int(t.cap)
    if cap is None:
        cap = -1  # names no slot: the lookup fails with ENOT_EXISTENT, as for any bad index
    flags = in_range(t.flags, 0, WORD_MASK)
    proto = in_range(t.proto, LABEL_MIN, LABEL_MAX)
    words, items, rcv = t.words, t.items, t.rcv
    if (flags is None or proto is None or type(words) is not tuple
            or type(items) is not tuple or type(rcv) is not tuple
            or len(words) + 2 * len(items) > MSG_WORDS or len(rcv) > RCV_BUFS):
        return None
    for w in words:
        if type(w) is not int or w < 0 or w > WORD_MASK:  # not all plain: copy them
            copied = tuple(in_range(x, 0, WORD_MASK) for x in words)
            if None in copied:
                return None
            words = copied  # type: ignore[assignment]
            break
    if items:
        out: list[MapItem | StrItem] = []
        for it in items:
            if type(it) is MapItem:
                fp = copy_fpage(it.fpage)
                hot = in_range(it.snd_base, 0, WORD_MASK)
                if fp is None or hot is None or type(it.grant) is not bool:
                    return None
                out.append(MapItem(fp, it.grant, hot))
            elif type(it) is StrItem:
                si = _copy_str(StrItem, it)
                if si is None:
                    return None
                out.append(si)
            else:
                return None
        items = tuple(out)
    timeouts: list[int | None] = []
    for v in (t.timeout, t.rcv_timeout):
        if v is not None:
            v = in_range(v, 0, WORD_MASK)
            if v is None:
                return None
        timeouts.append(v)
    if rcv:
        bufs: list[Fpage | StrBuf] = []
        for b in rcv:
            c = (copy_fpage(b) if type(b) is Fpage
                 else _copy_str(StrBuf, b) if type(b) is StrBuf else None)
            if c is None:
                return None
            bufs.append(c)
        rcv = tuple(bufs)
    sender = in_range(t.sender, 0, WORD_MASK)
    if sender is None:
        return None
    return Ipc(cap, flags, proto, words, items, timeouts[0], timeouts[1], rcv, sender)


def fail_now(self: Kernel, core: Core, th: Thread, code: int) -> None:
    """The running thread's IPC ends at once with ``code``."""
    self._charge(core, th, self.costs.error_path)
    if self.tracer is not None:
        self._trace(core.id, "ipc_err", th.kid, code=int(code), phase="recv" if code & 1 else "send")
    th.resume = Msg(error=code)
    if th.exc_pending:
        th.exc_pending = 0
        self._exc_failed(th, th.resume)


def ipc_fail(self: Kernel, th: Thread, code: int) -> None:
    """A blocked thread's IPC ends with ``code``: it leaves its queue and wakes."""
    if th.state is not _SEND and th.state is not _RECV:
        return
    self._unblock(th)
    if self.tracer is not None:
        self._trace(th.cpu, "ipc_err", th.kid, code=int(code), phase="recv" if code & 1 else "send")
    self._wake(th, Msg(error=code))


def unblock(self: Kernel, th: Thread) -> None:
    """Abandon ``th``'s IPC in progress, leaving no reference to it behind."""
    if th.state is _SEND:
        target = th.snd_target
        if target is not None and th in target.snd_queue:
            target.snd_queue.remove(th)
    elif th.state is _RECV:
        p = th.partner
        if type(p) is Reply:
            p.caller = None
    th.snd_target = None
    th.snd_trap = None
    th.snd_items = ()
    th.partner = None
    if th.timeout_ev is not None:
        th.timeout_ev.cancel()
        th.timeout_ev = None


def wake(self: Kernel, th: Thread, msg: Msg, head: bool = False) -> None:
    """A blocked thread's IPC has ended with ``msg``; it becomes runnable.  ``head``: the
    message is the reply to the call its server is serving now (the implicit reply)."""
    if th.timeout_ev is not None:
        th.timeout_ev.cancel()
        th.timeout_ev = None
    th.partner = None
    th.resume = msg
    pending = th.exc_pending
    if pending:
        th.exc_pending = 0
        # label 0 resumes; an alien L4 call (EXC_ALIEN_CALL) may also be let pass
        if msg.error or (msg.proto != 0 and not (pending == EXC_ALIEN_CALL and msg.proto == PROTO_ALLOW_SYSCALL)):
            self._exc_failed(th, msg)
            return
    if th.state is _SEND or th.state is _RECV:
        # an exception answered by its handler's current reply resumes the thread where it
        # trapped, ahead of its priority's other threads while its quantum lasts: a trap
        # returns as a system call returns on Linux (no reschedule), not as a yield.  An
        # answer that came later (through a saved reply capability: the call waited) queues
        # it behind them, as a woken thread.
        self._make_ready(th, 0, head and bool(pending) and th.quantum_left > 0)


def exc_failed(self: Kernel, th: Thread, msg: Msg) -> None:
    self._kill(th, None, "killed by its exception handler" if msg.error == 0
               else f"exception IPC failed (error {msg.error:#x})")


def block(self: Kernel, th: Thread, state: TS, timeout: int | None, on: int) -> None:
    th.state = state
    if timeout is not None:
        th.timeout_ev = self.events.at(self.now() + timeout, self._timeout, th, prio=PRIO_TIMEOUT)
    if self.tracer is not None:
        self._trace(th.cpu, "block", th.kid, state="send" if state is _SEND else "recv", on=on)


def timeout(self: Kernel, th: Thread) -> None:
    th.timeout_ev = None
    if th.state is _SEND:
        self._ipc_fail(th, IpcErr.SETIMEOUT)
    elif th.state is _RECV:
        self._ipc_fail(th, IpcErr.RETIMEOUT)


def sys_ipc_fast(self: Kernel, core: Core, th: Thread, t: Ipc) -> None:
    """The IPC fastpath: a call to a waiting server, a reply to a waiting caller.

    Like the fastpaths of Fiasco and seL4, it handles only the common
    case -- untyped words, no items, no receive buffers or timeouts, the
    partner already waiting -- and hands the core straight to the partner
    when it may run next (a direct switch, no ready-queue round trip).
    Everything else, including every error, takes :meth:`_sys_ipc`.  The
    effects and the charged time are exactly those of the full path.

    One function, on purpose: the check, the transfer and the switch are
    written out here (each a call of its own costs more than the work it
    does); ``fast_call_to`` keeps the call's half for the kernel's own calls.
    """
    flags = t.flags
    words = t.words
    proto = t.proto
    items, rcv, timeout = t.items, t.rcv, t.timeout
    # only identity and exact-type tests on the program's values: none of its methods may run here
    if (type(flags) is not int or type(items) is not tuple or items or type(rcv) is not tuple or rcv
            or t.rcv_timeout is not None or (timeout is not None and type(timeout) is not int)
            or type(words) is not tuple
            or len(words) > MSG_WORDS or type(proto) is not int or not LABEL_MIN <= proto <= LABEL_MAX):
        self._sys_ipc(core, th, t)
        return
    for w in words:
        if type(w) is not int or w < 0 or w > WORD_MASK:
            self._sys_ipc(core, th, t)
            return
    if flags == CALL_FLAGS:
        if timeout is not None or type(t.cap) is not int:
            self._sys_ipc(core, th, t)
            return
        entry = th.task.caps.slots.get(t.cap)  # type: ignore[union-attr]
        if entry is None or type(entry.obj) is not IpcGate or proto == _PROTO_KOBJECT:
            self._sys_ipc(core, th, t)
            return
        gate: IpcGate = entry.obj
        peer = gate.thread
        if peer is None or peer.state is not _RECV or peer.partner is not None or peer is th:
            self._sys_ipc(core, th, t)
            return
        label = gate.label | (entry.rights & 3)
        call = True
        resumed = 0
        cap = self._reply_for(th)
        if peer.reply is not None:
            self._drop_reply(peer)
        peer.reply = cap
        cap.holder = peer
        th.partner = cap
    elif flags == REPLY_AND_WAIT:
        mine = th.reply
        if (timeout or mine is None or th.pending_irqs or th.snd_queue):
            self._sys_ipc(core, th, t)
            return
        caller = mine.caller
        if caller is None or caller.state is not _RECV or caller.partner is not mine or (
                caller.exc_pending and proto != 0):  # a refusing exception reply kills: full path
            self._sys_ipc(core, th, t)
            return
        resumed = caller.exc_pending  # (ahead of its priority's other threads, as in _wake)
        caller.exc_pending = 0  # an exception reply with label 0 resumes, as _wake does
        th.reply = None
        mine.caller = None
        th.partner = None
        peer = caller
        label = 0
        call = False
    else:
        self._sys_ipc(core, th, t)
        return
    # --- the transfer (fast_perform, written out)
    costs = self.costs
    ns = costs.syscall + costs.ipc_base + costs.ipc_per_word * len(words)
    core.time += ns
    th.quantum_left -= ns
    th.cpu_ns += ns
    if call:
        held = th.reply
        if held is not None and held.caller is not None:  # a server calling on a client's behalf
            self._lend(held.caller, ns)
    else:  # a reply is the server's work for the caller (as in _deliver)
        held = peer.reply
        if held is None or held.caller is None:
            peer.served_ns += ns  # the caller is no server itself: the common case
        else:
            self._lend(peer, ns)
    self.ipc_count += 1
    th.ipcs += 1
    peer.ipcs += 1
    tracer = self.tracer
    if tracer is not None:
        self._flow += 1
        self._trace(core.id, "ipc", th.kid, to=peer.kid, proto=proto, label=label, words=len(words),
                    items=0, flow=self._flow, op="call" if call else "reply")
        self._trace(peer.cpu, "recv", peer.kid, **{"from": th.kid, "flow": self._flow})
    if peer.timeout_ev is not None:
        peer.timeout_ev.cancel()
        peer.timeout_ev = None
    peer.partner = None
    peer.resume = _new_msg(Msg, (0, proto, words, label, (), 0))  # Msg(...) without its Python __new__
    if self.lifetime is not None:
        self.lifetime.words(self, peer, words)
    th.rcv_bufs = ()
    th.state = _RECV
    if tracer is not None:
        self._trace(core.id, "block", th.kid, state="recv", on=peer.kid if call else -1)
    peer.state = _READY
    bits = core.bits
    if peer.cpu != core.id or (bits and bits.bit_length() - 1 >= peer.prio):
        self._make_ready(peer, 0, not call and bool(resumed) and peer.quantum_left > 0)
        return
    # direct switch: the peer is what the scheduler would pick next anyway (_switch, written out)
    core.current = peer
    if tracer is not None:
        self._trace(core.id, "switch", peer.kid, **{"from": th.kid})
    cost = costs.context_switch if th.task is peer.task else costs.context_switch + costs.space_switch
    core.time += cost
    peer.cpu_ns += cost
    held = peer.reply
    if held is not None and held.caller is not None:  # switching to a server for a call
        self._lend(held.caller, cost)
    core.switches += 1
    peer.switches += 1
    self.context_switches += 1
    if tracer is not None:
        self._trace(core.id, "wake", peer.kid)


def reply_for(self: Kernel, th: Thread) -> Reply:
    """A use-once reply capability for a call of ``th``.

    Each call needs a fresh one -- a stale holder must not answer a later
    call -- but the object itself is reused when nobody refers to it any
    more: not saved into a slot, and no thread holds it as its reply.  Its
    id is new either way.
    """
    r = th.reply_obj
    if r is None or r.alive or r.caller is not None or (r.holder is not None and r.holder.reply is r):
        r = Reply(self._next_kid(), th)
        r.alive = False  # not an object with capabilities until saved
        th.reply_obj = r
        return r
    self._kid += 1
    r.kid = self._kid
    r.caller = th
    r.holder = None
    return r


def fast_call(self: Kernel, core: Core, th: Thread, slot: int, proto: int, words: tuple[int, ...],
              rcv: tuple[Fpage, ...] = ()) -> None:
    """A call the kernel itself makes for ``th`` (a guest's system-call exception IPC, a
    guest's page fault with ``rcv`` its receive window): the fastpath without decoding
    what it built, else the full path.  Either way the same effects and time."""
    entry = th.task.caps.slots.get(slot)  # type: ignore[union-attr]
    if entry is not None and type(entry.obj) is IpcGate:
        dest = entry.obj.thread
        if dest is not None and dest.state is _RECV and dest.partner is None and dest is not th:
            self._fast_call_to(core, th, dest, proto, words, entry.obj.label | (entry.rights & 3))
            th.rcv_bufs = rcv  # where the reply's items land (the full path's rcv_phase sets it)
            return
    self._sys_ipc(core, th, Ipc(slot, CALL_FLAGS, proto, words, rcv=rcv))


def fast_call_to(self: Kernel, core: Core, th: Thread, dest: Thread, proto: int, words: tuple[int, ...],
                 label: int) -> None:
    """The fastpath's call: a use-once reply capability for ``th``, then the transfer."""
    r = self._reply_for(th)
    if dest.reply is not None:
        self._drop_reply(dest)
    dest.reply = r
    r.holder = dest
    th.partner = r
    self._fast_perform(core, th, dest, proto, words, label, True)


def fast_perform(self: Kernel, core: Core, th: Thread, peer: Thread, proto: int, words: tuple[int, ...],
                 label: int, call: bool) -> None:
    """The fastpath's effect: copy, count, wake the peer, block ``th`` in its receive.
    (:func:`sys_ipc_fast` has the same written out.)"""
    costs = self.costs
    ns = costs.syscall + costs.ipc_base + costs.ipc_per_word * len(words)
    core.time += ns
    th.quantum_left -= ns
    th.cpu_ns += ns
    if call:
        r = th.reply
        if r is not None and r.caller is not None:  # a server calling on a client's behalf
            self._lend(r.caller, ns)
    else:  # a reply is the server's work for the caller (as in _deliver)
        r = peer.reply
        if r is None or r.caller is None:
            peer.served_ns += ns  # the caller is no server itself: the common case
        else:
            self._lend(peer, ns)
    self.ipc_count += 1
    th.ipcs += 1
    peer.ipcs += 1
    tracer = self.tracer
    if tracer is not None:
        self._flow += 1
        self._trace(core.id, "ipc", th.kid, to=peer.kid, proto=proto, label=label, words=len(words),
                    items=0, flow=self._flow, op="call" if call else "reply")
        self._trace(peer.cpu, "recv", peer.kid, **{"from": th.kid, "flow": self._flow})
    if peer.timeout_ev is not None:
        peer.timeout_ev.cancel()
        peer.timeout_ev = None
    peer.partner = None
    peer.resume = _new_msg(Msg, (0, proto, words, label, (), 0))  # Msg(...) without its Python __new__
    if self.lifetime is not None:
        self.lifetime.words(self, peer, words)
    th.rcv_bufs = ()
    th.state = _RECV
    if tracer is not None:
        self._trace(core.id, "block", th.kid, state="recv", on=peer.kid if call else -1)
    peer.state = _READY
    bits = core.bits
    if peer.cpu == core.id and not (bits and bits.bit_length() - 1 >= peer.prio):
        # direct switch: the peer is what the scheduler would pick next anyway
        self._switch(core, th, peer)
        if tracer is not None:
            self._trace(core.id, "wake", peer.kid)
    else:
        self._make_ready(peer)


def sys_ipc(self: Kernel, core: Core, th: Thread, t: Ipc) -> None:
    """``l4_ipc``: look up, decode, then the send phase and the receive phase."""
    self._charge(core, th, self.costs.syscall)
    c = copy_in(t) if type(t) is Ipc else None
    if c is None:
        self._fail_now(core, th, IpcErr.SEMSGCUT)
        return
    t = c
    flags = t.flags
    if flags & SEND:
        if t.cap > TID_MASK:  # a thread named by its global id: the communication model's say
            self._send_by_id(core, th, t)
            return
        entry = self._lookup(th, t.cap)
        if entry is None:
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
            return
        obj = entry.obj
        typ = type(obj)
        if typ is IpcGate and t.proto == _PROTO_KOBJECT:
            self._kernel_invoke(core, th, entry, t)  # an operation on the gate itself
            return
        if typ is IpcGate:
            dest = obj.thread  # type: ignore[attr-defined]
            label = obj.label | (entry.rights & 3)  # type: ignore[attr-defined]
        elif typ is Thread and t.proto != Proto.THREAD:
            dest, label = obj, 0
            comm = self.comm
            if comm is not None and comm.thread_caps:  # virtual threads: a checked sender index
                checked = comm.route_cap(self, th, obj, t.sender)  # type: ignore[arg-type]
                if checked is None:
                    self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
                    return
                label = checked
        elif typ is Reply:
            self._reply_saved(core, th, t, entry)
            return
        else:
            self._kernel_invoke(core, th, entry, t)
            return
        if dest is None or dest.state is _DEAD:
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
            return
        self._send(core, th, dest, label, obj, t)
    elif flags & REPLY:
        r = th.reply
        if r is None or r.caller is None:
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
            return
        th.reply = None
        if self._reply(core, th, r, t, True) and flags & RECV and th.state is not _DEAD:
            self._receive(core, th, t)
    elif flags & RECV:
        self._receive(core, th, t)
    else:
        th.resume = MSG_OK  # an IPC with neither phase does nothing


def send_by_id(self: Kernel, core: Core, th: Thread, t: Ipc) -> None:
    """Send to a thread named by its global id: the communication model routes it.

    Under the capability model there are no thread ids (ENOT_EXISTENT, as for
    any capability index that names nothing); a thread-id model returns the
    thread the message goes to -- the destination, or an intermediary that
    will see the original destination in ``Msg.dest`` -- and the identity
    the receiver sees (kernel/comm.py).
    """
    comm = self.comm
    if comm is None or not comm.ids or t.cap >> 41:
        self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
        return
    dest_id = t.cap & TID_MASK
    dest = self.thread_ids.get(dest_id)
    if dest is not None and dest.state is _DEAD:
        dest = None
    route = comm.route(self, th, dest_id, dest, t.sender)
    if type(route) is int:
        self._fail_now(core, th, route)
        return
    assert isinstance(route, Route)
    to = route.to
    if to.state is _DEAD:
        self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
        return
    self._send(core, th, to, route.label, to, t, route.dest)


def send(self: Kernel, core: Core, th: Thread, dest: Thread, label: int, via: KObject, t: Ipc,
         vdest: int = 0) -> None:
    """Send phase: hand the message over if ``dest`` waits for it, else queue."""
    if dest.state is _RECV and (dest.partner is None or dest.partner is th):
        err = self._deliver(core, th, dest, label, t.proto, t.words, t.items, t.flags, vdest)
        if err:
            th.resume = Msg(error=err)
        elif t.flags & RECV:
            self._rcv_phase(core, th, dest, t, running=True)
        else:
            th.resume = MSG_OK
        return
    if t.timeout == 0:
        self._fail_now(core, th, IpcErr.SETIMEOUT)
        return
    th.snd_target = dest
    th.snd_via = via
    th.snd_label = label
    th.snd_dest = vdest
    th.snd_trap = t
    dest.snd_queue.append(th)
    self._block(th, _SEND, t.timeout, dest.kid)


def rcv_phase(self: Kernel, core: Core, th: Thread, dest: Thread, t: Ipc, running: bool) -> None:
    """``th`` finished sending to ``dest``; its receive phase starts.

    After a call the caller waits for the reply through a fresh reply
    capability held by ``dest``; after send-and-wait it waits openly.
    ``running`` says whether ``th`` is the thread executing this trap.
    The message's own items may have destroyed either side (they can
    replace a task's last capability): a dead sender has no receive
    phase, and a caller whose partner died is aborted, not left waiting.
    """
    if th.state is _DEAD:
        return
    if t.flags & OPEN_WAIT:
        if running:
            self._receive(core, th, t)
        else:
            th.state = _RECV
            self._receive_blocked(core, th, t)
        return
    if dest.state is _DEAD:
        if running:
            self._fail_now(core, th, IpcErr.REABORTED)
        else:
            th.state = _RECV
            self._ipc_fail(th, IpcErr.REABORTED)
        return
    r = self._reply_for(th)
    self._drop_reply(dest)
    dest.reply = r
    r.holder = dest
    th.rcv_bufs = t.rcv
    if t.rcv_timeout == 0:
        r.caller = None
        if running:
            self._fail_now(core, th, IpcErr.RETIMEOUT)
        else:
            th.state = _RECV
            self._ipc_fail(th, IpcErr.RETIMEOUT)
        return
    th.partner = r
    self._block(th, _RECV, t.rcv_timeout, dest.kid)


def deliver(self: Kernel, core: Core, snd: Thread, rcv: Thread, label: int, proto: int,
            words: tuple[int, ...], items: tuple[MapItem | StrItem, ...], flags: int,
            vdest: int = 0, head: bool = False) -> int:
    """Copy a message into the receiver and wake it if it was blocked.

    Items are decoded completely before any is performed: if they do not
    fit the receiver's buffers, no item is transferred, the words are, and
    both sides see the error.  Returns the send-phase error (0 = success).
    """
    costs = self.costs
    payer = core.current or snd
    before = payer.cpu_ns
    self._charge(core, payer, costs.ipc_base + costs.ipc_per_word * len(words))
    s_err = r_err = 0
    filled: tuple[Any, ...] = ()
    if items:
        self._charge(core, payer, costs.ipc_per_item * len(items))
        plan, s_err, r_err = self._decode_items(snd, rcv, items)
        if not s_err:
            filled = self._perform_items(core, payer, plan)
    if flags & REPLY and not flags & SEND and (payer.reply is None or payer.reply.caller is None):
        self._lend(rcv, payer.cpu_ns - before)  # a reply is the server's work for the caller
    self.ipc_count += 1
    snd.ipcs += 1
    rcv.ipcs += 1
    if self.tracer is not None:
        self._flow += 1
        op = "reply" if flags & REPLY else ("call" if flags & RECV and not flags & OPEN_WAIT else "send")
        self._trace(core.id, "ipc", snd.kid, to=rcv.kid, proto=proto, label=label,
                    words=len(words), items=len(items), flow=self._flow, op=op)
        self._trace(rcv.cpu, "recv", rcv.kid, **{"from": snd.kid, "flow": self._flow})
    msg = Msg(r_err, proto, words, label, filled, vdest)
    if self.lifetime is not None:
        self.lifetime.words(self, rcv, words)
    if rcv.state is _RECV:
        self._wake(rcv, msg, head)
    else:
        rcv.resume = msg  # the receiver is the running thread itself
    return s_err


def decode_items(self: Kernel, snd: Thread, rcv: Thread, items: tuple[Any, ...]) -> tuple[list[Any], int, int]:
    """Check every item against the receiver's buffers; changes nothing.

    Returns (plan, sender's error, receiver's error).  Items meet buffers
    in order.  A string item copies bytes between the spaces; the pages
    must be mapped (no page fault is resolved during the copy): a hole in
    the sender's string gives the sender SEMSGCUT and the receiver
    RESNDPFTO, a hole in the receiver's buffer the sender SERCVPFTO and
    the receiver REMSGCUT, a string longer than its buffer both MSGCUT.
    """
    bufs = rcv.rcv_bufs
    if len(items) > len(bufs):
        return [], IpcErr.SEMSGCUT, IpcErr.REMSGCUT
    stask, rtask = snd.task, rcv.task
    assert stask is not None and rtask is not None
    plan: list[Any] = []
    for it, buf in zip(items, bufs, strict=False):
        if type(it) is StrItem:
            if type(buf) is not StrBuf:
                return [], IpcErr.SEMAPFAILED, IpcErr.REMAPFAILED
            if it.length > buf.length:
                return [], IpcErr.SEMSGCUT, IpcErr.REMSGCUT
            if it.length:
                if first_missing(stask.vspace, it.addr, it.length, MemRights.R, None) is not None:
                    return [], IpcErr.SEMSGCUT, IpcErr.RESNDPFTO
                if first_missing(rtask.vspace, buf.addr, it.length, MemRights.W, None) is not None:
                    return [], IpcErr.SERCVPFTO, IpcErr.REMSGCUT
            plan.append(("str", stask, it.addr, it.length, rtask, buf.addr))
            continue
        if type(buf) is not Fpage:
            return [], IpcErr.SEMAPFAILED, IpcErr.REMAPFAILED
        err = self._plan_map(stask, it.fpage, rtask, buf, it.snd_base, it.grant, plan)
        if err:
            return [], err, err | 1
    return plan, 0, 0


def reply_saved(self: Kernel, core: Core, th: Thread, t: Ipc, entry: CapEntry) -> None:
    """Send through a saved reply capability; it is used up either way."""
    r: Reply = entry.obj  # type: ignore[assignment]
    ok = r.caller is not None and self._reply(core, th, r, t)
    if entry.space is not None:
        self.mdb_remove(entry, include_self=True)
    if r.caller is None and not ok and th.resume is None:
        self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
    if ok and t.flags & RECV and th.state is not _DEAD:
        self._receive(core, th, t)


def reply(self: Kernel, core: Core, th: Thread, r: Reply, t: Ipc, current: bool = False) -> bool:
    """Deliver a reply to the caller behind ``r``; True when it arrived.  ``current``: ``r`` is
    the implicit reply of the call being served (see :func:`wake`)."""
    caller = r.caller
    r.caller = None
    if caller is None or caller.state is not _RECV or caller.partner is not r:
        self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
        return False
    err = self._deliver(core, th, caller, 0, t.proto, t.words, t.items, REPLY, 0, current)
    th.resume = Msg(error=err) if err else MSG_OK
    return not err


def receive(self: Kernel, core: Core, th: Thread, t: Ipc) -> None:
    """Receive phase of the running thread: a pending IRQ or queued sender, or block."""
    th.rcv_bufs = t.rcv
    partner: KObject | None = None
    if not t.flags & OPEN_WAIT:
        e = self._lookup(th, t.cap)
        if (e is None or type(e.obj) not in (Thread, Irq) or not e.obj.alive
                or (type(e.obj) is Thread and e.obj.state is _DEAD)):
            self._fail_now(core, th, IpcErr.ENOT_EXISTENT)
            return
        partner = e.obj
    if self._take_pending(core, th, partner):
        return
    if t.rcv_timeout == 0:
        self._fail_now(core, th, IpcErr.RETIMEOUT)
        return
    th.partner = partner
    self._block(th, _RECV, t.rcv_timeout, partner.kid if partner is not None else -1)


def receive_blocked(self: Kernel, core: Core, th: Thread, t: Ipc) -> None:
    """Open-wait phase of a thread that is not running (after its queued send)."""
    th.rcv_bufs = t.rcv
    th.partner = None
    if self._take_pending(core, th, None):
        return
    if t.rcv_timeout == 0:
        self._ipc_fail(th, IpcErr.RETIMEOUT)
    elif t.rcv_timeout is not None:
        th.timeout_ev = self.events.at(self.now() + t.rcv_timeout, self._timeout, th, prio=PRIO_TIMEOUT)


def take_pending(self: Kernel, core: Core, th: Thread, partner: KObject | None) -> bool:
    """Give ``th`` a pending interrupt or the best queued sender, if any.

    Interrupts come first; among senders the highest priority wins, FIFO
    among equals (Fiasco's sender queue).
    """
    pend = th.pending_irqs
    for irq in pend:
        if partner is None or partner is irq:
            pend.remove(irq)
            irq.pending = False
            self._charge(core, core.current or th, self.costs.ipc_base)
            msg = self._irq_msg(irq, th)
            if th.state is _RECV:
                self._wake(th, msg)
            else:
                th.resume = msg
            return True
    best = None
    for s in th.snd_queue:
        if (partner is None or partner is s) and (best is None or s.prio > best.prio):
            best = s
    if best is None:
        return False
    st: Ipc = best.snd_trap
    th.snd_queue.remove(best)
    if best.timeout_ev is not None:
        best.timeout_ev.cancel()
        best.timeout_ev = None
    best.snd_target = None
    best.snd_trap = None
    err = self._deliver(core, best, th, best.snd_label, st.proto, st.words, st.items, st.flags,
                        best.snd_dest)
    if err:
        self._wake(best, Msg(error=err))
    elif st.flags & RECV:
        self._rcv_phase(core, best, th, st, running=False)
    else:
        self._wake(best, MSG_OK)
    return True
