"""Run-time invariants of the kernel: the checks that stand in for seL4's proofs.

seL4 proves, among much else, that its capability derivation tree stays
well formed and that authority only flows along capabilities (authority
confinement).  l4sim cannot prove anything, but it can *check*: :func:`check`
reads the whole kernel state between two events and lists every violation
of the properties below in plain words.  An empty list means the state is
consistent.  The checker only reads; it never calls a kernel method, pops an
event or changes a field, so it can run after every event of a simulation.

Capability spaces and the derivation tree (well-formed derivation tree)
    Every entry of a task's slot table is a :class:`~l4sim.kernel.caps.CapEntry`
    that knows its own place (``space`` is that task, ``slot`` that slot; slots
    are in ``1 .. CAP_SLOTS-1``).  Following ``parent`` links from any entry
    ends, without a cycle, at a parentless *root* entry; each object has at
    most one root (so deleting the root revokes every capability to it).  A
    parent is a live entry (``space`` set, in its slot table), names the same
    object, and lists the child in ``children`` (an identity dict: key
    ``id(child)``); ``children`` holds only live entries whose ``parent`` is
    its owner.  Page and I/O-port mappings (``task.vspace``) are nodes of the
    same mapping database and obey the same rules (a mapping sits at the
    page it records, is derived from a live mapping of the same frame); a
    destroyed task holds neither capabilities nor mappings.

Rights only shrink along derivations (authority confinement)
    ``child.rights & ~parent.rights == 0`` for every derived node, and a
    capability's rights are the four object-right bits (``0 .. 0xF``).  So a task can never
    hold more authority over an object than the capability it was derived
    from, and revoking a parent's right revokes it everywhere below.

Reference counts and object life
    ``obj.refs`` equals the number of live entries naming ``obj``, for every
    object the kernel can reach (through any task's slots, thread, gate, Irq,
    ICU or factory links).  Every entry names a live object (``alive``).  A
    gate, Irq, factory or reply object that is alive has a capability
    (``refs > 0``): nothing else keeps it.  A reply object is alive only while
    saved in a slot; the implicit reply a thread holds (``thread.reply``) is
    not an object with capabilities (not alive, no refs).  ``objects_alive``
    counts exactly the live objects.  A destroyed task holds no capabilities
    and no threads; a destroyed thread is DEAD.

Scheduling (no thread in two places)
    A READY thread is in exactly one place: the ``current`` thread of one
    core or queued in exactly one ready queue -- that of core ``thread.cpu``
    at its priority (``core.queues[prio]``).  Ready queues hold only READY
    threads, each once; ``core.bits`` has bit p set exactly when queue p is
    non-empty.  Between events a core with a current thread always has a
    pending step event (the kernel guarantees it: a step ends idle, computing
    or yielding to an earlier event, and the last two schedule the next step),
    and so does an idle core with queued threads.  A core's ``current`` may
    transiently be non-READY (killed from another core) or belong to another
    core (migrated by ``run_thread`` from another core): only while such a
    step is pending, which re-decides.  Checked between two traps of a step,
    the core running it (``kernel.running``) counts as re-deciding: its loop
    looks at its current thread before the next trap.

IPC wait structures (every blocked thread in exactly one wait structure)
    A SEND thread is in exactly one ``snd_queue``, that of its live (not
    DEAD) ``snd_target``; every thread in a ``snd_queue`` is SEND with that
    queue's owner as ``snd_target``.  A RECV thread's ``partner`` is None
    (open wait), a thread that is not DEAD, a live Irq, or a reply object
    whose ``caller`` is that thread and which exactly one holder can still
    use (the implicit ``reply`` of one thread that is not DEAD, or a saved
    capability).  Conversely a
    reply object's non-None ``caller`` is RECV on it.  Only RECV threads have
    a partner.  No wake-up is lost: an open-waiting thread has no queued
    sender and no pending interrupt; a closed wait on a thread or Irq has not
    that partner queued.  Pending interrupts: an Irq in
    ``thread.pending_irqs`` appears once, has ``pending`` set and ``thread``
    pointing back; an Irq with ``pending`` set is in its thread's list.  A
    thread waiting for an exception reply (``exc_pending``) is blocked (or
    DEAD: a thread killed during its exception IPC keeps the flag, which
    nothing reads after death).  A
    pending timeout event belongs to a blocked thread (a stale one could end
    a later, unrelated wait).

Dead threads
    A DEAD thread is in no ready queue, no ``snd_queue``, no task's thread
    list; it has no partner, target, senders, pending interrupts, reply
    capability, timeout or coroutine; it is some core's ``current`` only
    while that core has a step pending.

Interrupt controller and deletion notification
    ``icu.bound[line]`` is a live Irq whose ``line`` is ``line``; a live Irq
    with a ``line`` is the one bound there.  A thread's delete Irq
    (``thread.del_irq``) reports that thread's deleted gates: its ``del_of``
    is the thread, and an Irq's ``del_of`` thread has it as its ``del_irq``.

Kernel memory (factories)
    A factory's ``used`` equals the sum of ``charge`` over the live objects it
    paid for (tasks, threads, gates, Irqs and child factories, whose charge
    includes the quota carved out for them), plus the page-table and mapping
    memory (``vspace.charge``) of the tasks it created, plus the ``used`` of
    its destroyed child factories (their objects live on and stay charged up
    the tree until they go); and ``0 <= used <= limit``.  So a factory's quota
    bounds all kernel memory created through it, directly or through
    sub-factories, deleted or not.  The root factory has no factory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from l4sim.kernel.abi import CAP_SLOTS, Rights
from l4sim.kernel.caps import CapEntry
from l4sim.kernel.objects import (
    TS,
    Factory,
    Icu,
    IpcGate,
    Irq,
    KObject,
    Log,
    Reply,
    SchedulerObj,
    Task,
    Thread,
)
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SHIFT, PT_SIZE

_ALL_RIGHTS = int(Rights.RWSD)


def _name(obj: Any) -> str:
    if isinstance(obj, Thread):
        return f"thread #{obj.kid} {obj.name!r}"
    if isinstance(obj, Task):
        return f"task #{obj.kid} {obj.name!r}"
    return repr(obj)


def _where(e: CapEntry) -> str:
    sp = e.space
    return f"{sp.name}[{e.slot}]" if sp is not None else f"(removed)[{e.slot}]"


def _collect(kernel: Any) -> list[KObject]:
    """Every kernel object reachable from the kernel's roots, in a stable order."""
    seen: dict[int, KObject] = {}
    work: list[Any] = [kernel.icu, kernel.log, kernel.scheduler, *kernel.tasks, *kernel.threads]

    def more(o: Any) -> None:
        if isinstance(o, KObject) and id(o) not in seen:
            work.append(o)

    while work:
        o = work.pop()
        if not isinstance(o, KObject) or id(o) in seen:
            continue
        seen[id(o)] = o
        more(o.factory)
        if isinstance(o, Task):
            for e in o.caps.slots.values():
                if isinstance(e, CapEntry):
                    more(e.obj)
            for th in o.threads:
                more(th)
        elif isinstance(o, Thread):
            for x in (o.task, o.reply, o.partner, o.snd_target, o.snd_via):
                more(x)
            for x in o.pending_irqs:
                more(x)
            for x in o.snd_queue:
                more(x)
        elif isinstance(o, IpcGate | Irq):
            more(o.thread)
        elif isinstance(o, Reply):
            more(o.caller)
        elif isinstance(o, Icu):
            for x in o.bound.values():
                more(x)
    return sorted(seen.values(), key=lambda o: o.kid)


def check(kernel: Any) -> list[str]:
    """All invariant violations of ``kernel``'s current state (empty: consistent).

    Call it between events, or between two traps of a step (after a trap's
    handler has returned, before the next trap).  Only reads.
    """
    v: list[str] = []
    objs = _collect(kernel)
    tasks = [o for o in objs if isinstance(o, Task)]
    threads = [o for o in objs if isinstance(o, Thread)]
    entries = _check_caps(tasks, v)
    _check_objects(kernel, objs, entries, v)
    _check_sched(kernel, threads, v)
    _check_ipc(threads, objs, v)
    _check_irqs(kernel, objs, v)
    _check_factories(objs, v)
    _check_memory(kernel, tasks, v)
    return v


# ------------------------------------------------------------------ memory
def _check_memory(kernel: Any, tasks: list[Task], v: list[str]) -> None:
    """Every frame's tree is rooted where sigma0 knows it; page tables and charges add up.

    A parentless page (port) mapping is the root of its frame's (port's)
    tree, registered in ``kernel.frame_roots`` (``port_roots``): sigma0's own
    1:1 mapping, or one sigma0 granted away.  So every mapping is reachable
    from sigma0.  ``vspace.pt`` counts exactly the mappings in each 512-page
    region, and a task's ``vspace.charge`` is exactly what its mappings and
    page tables cost (sigma0's own roots are free).
    """
    for t in tasks:
        vs = t.vspace
        for table, roots, kind in ((vs.pages, kernel.frame_roots, "page"), (vs.io, kernel.port_roots, "port")):
            for vpn, m in table.items():
                if m.parent is None and roots.get(m.pfn) is not m:
                    v.append(f"{t.name}:{kind} {vpn:#x} is a root mapping sigma0 does not know (frame {m.pfn:#x})")
        regions: dict[int, int] = {}
        for vpn in vs.pages:
            regions[vpn >> PT_SHIFT] = regions.get(vpn >> PT_SHIFT, 0) + 1
        if regions != vs.pt:
            v.append(f"{t.name}: page-table counts {vs.pt!r} do not match its pages {regions!r}")
        if not vs.sigma0 and t.alive:
            expect = MAPPING_SIZE * (len(vs.pages) + len(vs.io)) + PT_SIZE * len(vs.pt)
            if vs.charge != expect:
                v.append(f"{t.name}: charged {vs.charge} for its mappings, they cost {expect}")
    for pfn, m in list(kernel.frame_roots.items()) + list(kernel.port_roots.items()):
        if m.space is None or m.parent is not None or m.pfn != pfn:
            v.append(f"root of frame/port {pfn:#x} is not a live parentless mapping of it: {m!r}")


# ------------------------------------------------------------------ capabilities
def _node_where(n: Any) -> str:
    if isinstance(n, CapEntry):
        return _where(n)
    sp = n.space
    kind = "port" if getattr(n, "io", False) else "page"
    return f"{sp.name if sp is not None else '(removed)'}:{kind} {getattr(n, 'vpn', '?')!r}"


def _check_caps(tasks: list[Task], v: list[str]) -> list[CapEntry]:
    entries: list[CapEntry] = []
    nodes: list[Any] = []  # every live node of the mapping database: capabilities and pages
    for task in tasks:
        for slot, e in task.caps.slots.items():
            if not isinstance(e, CapEntry):
                v.append(f"{task.name}[{slot}] holds {e!r}, not a capability entry")
                continue
            entries.append(e)
            nodes.append(e)
            if type(slot) is not int or not 0 < slot < CAP_SLOTS:
                v.append(f"{task.name} has a capability in invalid slot {slot!r}")
            if e.space is not task or e.slot != slot:
                v.append(f"entry {e!r} sits in {task.name}[{slot}] but records {_where(e)}")
            if not isinstance(e.rights, int) or not 0 <= e.rights <= _ALL_RIGHTS:
                v.append(f"{_where(e)} has rights {e.rights!r} outside 0..0xF")
            if not task.alive:
                v.append(f"destroyed {_name(task)} still holds a capability in slot {slot} ({e.obj!r})")
        vs = getattr(task, "vspace", None)
        if vs is None:
            continue
        for io, table in ((False, vs.pages), (True, vs.io)):
            for vpn, m in table.items():
                nodes.append(m)
                if m.space is not task or m.vpn != vpn or bool(m.io) is not io:
                    v.append(f"mapping {m!r} sits at {task.name}:{vpn!r} but records {_node_where(m)}")
                if not task.alive:
                    v.append(f"destroyed {_name(task)} still has a mapping at {vpn:#x}")
    live = {id(n) for n in nodes}
    roots: Counter[int] = Counter()
    for e in nodes:
        cap = isinstance(e, CapEntry)
        # parent: live, same object (frame), lists us once; rights only shrink
        p = e.parent
        if p is None:
            if cap:
                roots[id(e.obj)] += 1
        else:
            if p.space is None or id(p) not in live:
                v.append(f"{_node_where(e)} is derived from a removed node {p!r}")
            if cap and (not isinstance(p, CapEntry) or p.obj is not e.obj):
                v.append(f"{_node_where(e)} names {e.obj!r} but its parent {_node_where(p)} names {getattr(p, 'obj', p)!r}")
            if not cap and (isinstance(p, CapEntry) or p.pfn != e.pfn or p.io != e.io):
                v.append(f"{_node_where(e)} maps {getattr(e, 'pfn', '?')!r} but its parent is {p!r}")
            n = 1 if p.children.get(id(e)) is e else 0
            if n != 1:
                v.append(f"{_node_where(e)}: its parent {_node_where(p)} lists it {n} times among its children")
            if isinstance(e.rights, int) and isinstance(p.rights, int) and e.rights & ~p.rights:
                v.append(f"{_node_where(e)} has rights {e.rights:#x} above its parent {_node_where(p)}'s {p.rights:#x}")
        # reachable from a root, no cycle
        seen = {id(e)}
        a = e.parent
        steps = 0
        while a is not None:
            if id(a) in seen or steps > len(nodes):
                v.append(f"{_node_where(e)}: the parent chain has a cycle")
                break
            seen.add(id(a))
            a = a.parent
            steps += 1
        # children: live, point back, once
        if any(k != id(c) for k, c in e.children.items()):
            v.append(f"{_node_where(e)} files a child under another node's identity")
        for c in e.children.values():
            if c.space is None or id(c) not in live:
                v.append(f"{_node_where(e)} lists a removed node {c!r} among its children")
            elif c.parent is not e:
                v.append(f"{_node_where(e)} lists {_node_where(c)} as a child but its parent is {c.parent!r}")
    for e in entries:
        if roots[id(e.obj)] > 1 and e.parent is None:
            v.append(f"{e.obj!r} has {roots[id(e.obj)]} root capabilities (one is {_where(e)})")
    return entries


# ------------------------------------------------------------------ object life
def _check_objects(kernel: Any, objs: list[KObject], entries: list[CapEntry], v: list[str]) -> None:
    counts: Counter[int] = Counter(id(e.obj) for e in entries)
    reachable = {id(o) for o in objs}
    for e in entries:
        if id(e.obj) not in reachable:  # pragma: no cover - _collect follows every entry
            v.append(f"{_where(e)} names an object the kernel cannot reach: {e.obj!r}")
        if not e.obj.alive:
            v.append(f"{_where(e)} names destroyed {e.obj!r}")
    singletons = (Icu, Log, SchedulerObj)
    alive = 0
    for o in objs:
        n = counts[id(o)]
        if o.refs != n:
            v.append(f"{_name(o)} has refs {o.refs} but {n} live capabilities name it")
        if o.alive:
            alive += 1
        elif o.refs > 0:
            v.append(f"destroyed {_name(o)} still has refs {o.refs}")
        if o.alive and o.refs <= 0 and isinstance(o, IpcGate | Irq | Factory | Reply) and not (
                isinstance(o, Factory) and o.factory is None):
            v.append(f"{_name(o)} is alive without any capability (a leak)")
        if isinstance(o, Task) and not o.alive and o.threads:
            v.append(f"destroyed {_name(o)} still lists threads {o.threads!r}")
        if isinstance(o, Thread) and not o.alive and o.state is not TS.DEAD:
            v.append(f"destroyed {_name(o)} is in state {o.state.name}, not DEAD")
        if isinstance(o, singletons) and o is not kernel.icu and o is not kernel.log and o is not kernel.scheduler:
            v.append(f"a second kernel singleton {o!r} exists")
    if kernel.objects_alive != alive:
        v.append(f"objects_alive is {kernel.objects_alive} but {alive} live objects are reachable")


# ------------------------------------------------------------------ scheduling
def _pending(ev: Any) -> bool:
    return ev is not None and not ev.cancelled


def _check_sched(kernel: Any, threads: list[Thread], v: list[str]) -> None:
    places: dict[int, list[str]] = {id(t): [] for t in threads}
    for core in kernel.cores:
        cid = core.id
        # the core executing traps right now (between two traps of a step) re-decides in its loop
        step = _pending(core.step_ev) or core is kernel.running
        if core.step_ev is not None and core.step_ev.cancelled:
            v.append(f"core {cid} keeps a cancelled step event")
        bits = 0
        for p, q in enumerate(core.queues):
            if not q:
                continue
            bits |= 1 << p
            seen_q: set[int] = set()
            for th in q:
                where = f"ready queue {p} of core {cid}"
                if not isinstance(th, Thread):
                    v.append(f"{where} holds {th!r}, not a thread")
                    continue
                places.setdefault(id(th), []).append(where)
                if id(th) in seen_q:
                    v.append(f"{_name(th)} is twice in {where}")
                seen_q.add(id(th))
                if th.state is not TS.READY:
                    v.append(f"{_name(th)} is {th.state.name} but queued in {where}")
                if th.prio != p:
                    v.append(f"{_name(th)} has priority {th.prio} but is queued in {where}")
                if th.cpu != cid:
                    v.append(f"{_name(th)} belongs to core {th.cpu} but is queued in {where}")
        if bits != core.bits:
            v.append(f"core {cid}: bits {core.bits:#x} but non-empty queues {bits:#x}")
        cur = core.current
        if cur is not None:
            places.setdefault(id(cur), []).append(f"current of core {cid}")
            if not step:
                v.append(f"core {cid} runs {_name(cur)} but has no step pending")
                if cur.state is not TS.READY:
                    v.append(f"core {cid}'s current {_name(cur)} is {cur.state.name}")
                if cur.cpu != cid:
                    v.append(f"core {cid}'s current {_name(cur)} belongs to core {cur.cpu}")
        elif bits and not step:
            v.append(f"core {cid} is idle with ready threads (queues {bits:#x}) and no step pending")
    for th in threads:
        pl = places.get(id(th), [])
        if th.state is TS.READY:
            if len(pl) != 1:
                v.append(f"READY {_name(th)} is in {len(pl)} places: {pl or 'none'}")
        else:
            queued = [p for p in pl if p.startswith("ready")]
            if queued:  # already reported per queue; here: counted once per thread
                v.append(f"{th.state.name} {_name(th)} sits in {queued}")
            if len(pl) > 1:
                v.append(f"{_name(th)} is in {len(pl)} places: {pl}")


# ------------------------------------------------------------------ IPC
def _holders(threads: Iterable[Thread]) -> Counter[int]:
    """How many live (not DEAD) threads hold each implicit reply capability."""
    return Counter(id(t.reply) for t in threads if t.reply is not None and t.state is not TS.DEAD)


def _check_ipc(threads: list[Thread], objs: list[KObject], v: list[str]) -> None:
    in_queue: Counter[int] = Counter()
    for o in threads:
        ids = [id(s) for s in o.snd_queue]
        if len(ids) != len(set(ids)):
            v.append(f"{_name(o)}'s sender queue holds a thread twice")
        for s in o.snd_queue:
            in_queue[id(s)] += 1
            if not isinstance(s, Thread):
                v.append(f"{_name(o)}'s sender queue holds {s!r}")
                continue
            if s.state is not TS.SEND:
                v.append(f"{s.state.name} {_name(s)} is in the sender queue of {_name(o)}")
            elif s.snd_target is not o:
                v.append(f"{_name(s)} is queued at {_name(o)} but sends to {s.snd_target!r}")
    holders = _holders(threads)
    replies = [o for o in objs if isinstance(o, Reply)]
    for th in threads:
        n = _name(th)
        st = th.state
        if not isinstance(st, TS):
            v.append(f"{n} has state {st!r}")
            continue
        if st is TS.SEND:
            tgt = th.snd_target
            if not isinstance(tgt, Thread):
                v.append(f"SEND {n} has no target thread ({tgt!r})")
            else:
                if sum(1 for s in tgt.snd_queue if s is th) != 1:
                    v.append(f"SEND {n} is not queued exactly once at its target {_name(tgt)}")
                if tgt.state is TS.DEAD:
                    v.append(f"SEND {n} waits on DEAD {_name(tgt)}")
            if in_queue[id(th)] != 1:
                v.append(f"SEND {n} is in {in_queue[id(th)]} sender queues")
            if th.snd_trap is None:
                v.append(f"SEND {n} has no message to send")
        else:
            if th.snd_target is not None:
                v.append(f"{st.name} {n} still has a send target {th.snd_target!r}")
        p = th.partner
        if st is TS.RECV:
            if p is None:
                if th.snd_queue:
                    v.append(f"open-waiting {n} has queued senders {th.snd_queue!r} (lost wake-up)")
                if th.pending_irqs:
                    v.append(f"open-waiting {n} has pending interrupts {list(th.pending_irqs)!r} (lost wake-up)")
            elif isinstance(p, Thread):
                if p.state is TS.DEAD:
                    v.append(f"RECV {n} waits for DEAD {_name(p)}")
                if any(s is p for s in th.snd_queue):
                    v.append(f"RECV {n} waits for {_name(p)}, which is queued at it (lost wake-up)")
            elif isinstance(p, Irq):
                if not p.alive:
                    v.append(f"RECV {n} waits for destroyed {p!r}")
                if any(i is p for i in th.pending_irqs):
                    v.append(f"RECV {n} waits for {p!r}, which is pending at it (lost wake-up)")
            elif isinstance(p, Reply):
                if p.caller is not th:
                    v.append(f"RECV {n} waits on {p!r} whose caller is {p.caller!r}")
                k = holders[id(p)] + (1 if p.alive and p.refs > 0 else 0)
                if k != 1:
                    v.append(f"RECV {n} waits for a reply through {p!r}, which {k} holders can send")
            else:
                v.append(f"RECV {n} has partner {p!r}, not a thread, Irq or reply")
        elif p is not None:
            v.append(f"{st.name} {n} has a partner {p!r}")
        if th.exc_pending and st not in (TS.SEND, TS.RECV, TS.DEAD):
            v.append(f"{st.name} {n} waits for an exception reply but is not blocked")
        ev = th.timeout_ev
        if ev is not None:
            if ev.cancelled:
                v.append(f"{n} keeps a cancelled timeout event")
            elif st not in (TS.SEND, TS.RECV):
                v.append(f"{st.name} {n} has a pending timeout (stale)")
            elif not (ev.args and ev.args[0] is th):
                v.append(f"{n}'s timeout event is for {ev.args!r}")
        ids = [id(i) for i in th.pending_irqs]
        if len(ids) != len(set(ids)):
            v.append(f"{n} has an interrupt pending twice")
        for irq in th.pending_irqs:
            if not isinstance(irq, Irq):
                v.append(f"{n} has {irq!r} among its pending interrupts")
                continue
            if not irq.pending or irq.thread is not th:
                v.append(f"{irq!r} is pending at {n} but pending={irq.pending} thread={irq.thread!r}")
        r = th.reply
        if r is not None:
            if not isinstance(r, Reply):
                v.append(f"{n} holds {r!r} as its reply capability")
            elif r.alive or r.refs:
                v.append(f"{n}'s implicit reply {r!r} is also a saved object (alive={r.alive}, refs={r.refs})")
        if st is TS.DEAD:
            junk = [name for name, bad in (
                ("senders", bool(th.snd_queue)), ("pending interrupts", bool(th.pending_irqs)),
                ("a reply capability", r is not None), ("a partner", p is not None),
                ("a timeout", ev is not None), ("a coroutine", th.coro is not None)) if bad]
            if junk:
                v.append(f"DEAD {n} still has {', '.join(junk)}")
            if th.task is not None and any(t is th for t in th.task.threads):
                v.append(f"DEAD {n} is still in the thread list of {_name(th.task)}")
        elif th.task is not None:
            k = sum(1 for t in th.task.threads if t is th)
            if k != 1:
                v.append(f"{n} is bound to {_name(th.task)} but listed there {k} times")
            if not th.task.alive:
                v.append(f"{st.name} {n} belongs to destroyed {_name(th.task)}")
    for ob in objs:
        if isinstance(ob, Task):
            for t in ob.threads:
                if t.task is not ob:
                    v.append(f"{_name(ob)} lists {_name(t)}, which is bound to {t.task!r}")
    for r in replies:
        c = r.caller
        if c is not None and (c.state is not TS.RECV or c.partner is not r):
            v.append(f"{r!r} names caller {_name(c)}, which is {c.state.name} with partner {c.partner!r}")
        if holders[id(r)] > 1:
            v.append(f"{r!r} is the implicit reply of {holders[id(r)]} threads")


# ------------------------------------------------------------------ IRQs
def _check_irqs(kernel: Any, objs: list[KObject], v: list[str]) -> None:
    icu = kernel.icu
    nlines = kernel.machine.ic.nlines
    for line, irq in icu.bound.items():
        if not isinstance(irq, Irq) or not irq.alive:
            v.append(f"ICU line {line} is bound to {irq!r}, not a live Irq")
            continue
        if irq.line != line:
            v.append(f"ICU line {line} is bound to {irq!r} whose line is {irq.line!r}")
        if not 0 <= line < nlines:
            v.append(f"ICU binds line {line}, which does not exist")
    for o in objs:
        if not isinstance(o, Irq):
            continue
        if o.alive and o.line is not None and icu.bound.get(o.line) is not o:
            v.append(f"{o!r} says it is bound to line {o.line} but the ICU binds {icu.bound.get(o.line)!r}")
        if o.pending:
            th = o.thread
            if th is None or sum(1 for i in th.pending_irqs if i is o) != 1:
                v.append(f"{o!r} is marked pending but is not queued once at {th!r}")
        if not o.alive and (o.thread is not None or o.pending):
            v.append(f"destroyed {o!r} is still attached (thread={o.thread!r}, pending={o.pending})")
        owner = getattr(o, "del_of", None)
        if owner is not None and getattr(owner, "del_irq", None) is not o:
            v.append(f"{o!r} reports the deleted gates of {_name(owner)}, whose delete Irq is "
                     f"{getattr(owner, 'del_irq', None)!r}")
    for t in objs:
        di = getattr(t, "del_irq", None)
        if isinstance(t, Thread) and di is not None and getattr(di, "del_of", None) is not t:
            v.append(f"{_name(t)}'s delete Irq {di!r} reports for {getattr(di, 'del_of', None)!r}")


# ------------------------------------------------------------------ kernel memory
def _check_factories(objs: list[KObject], v: list[str]) -> None:
    used: Counter[int] = Counter()
    for o in objs:
        f = o.factory
        vs = getattr(o, "vspace", None)
        if vs is not None and isinstance(f, Factory):
            used[id(f)] += vs.charge  # page mappings and tables of a task (alive or not)
        if f is None:
            continue
        if not isinstance(f, Factory):
            v.append(f"{_name(o)} is charged to {f!r}, not a factory")
            continue
        if o.alive:
            used[id(f)] += o.charge
        elif isinstance(o, Factory):
            used[id(f)] += o.used  # a destroyed factory's objects stay charged to its parent
        if o.charge < 0:
            v.append(f"{_name(o)} has a negative charge {o.charge}")
    for fo in objs:
        if not isinstance(fo, Factory):
            continue
        if fo.used != used[id(fo)]:
            v.append(f"{fo!r} has used {fo.used} but its live objects are charged {used[id(fo)]}")
        if not 0 <= fo.used <= fo.limit:
            v.append(f"{fo!r} has used {fo.used} outside 0..limit {fo.limit}")
