"""moe: the root task of the runtime -- memory, dataspaces, namespaces, logs.

L4Re's ``moe`` is the first user program after sigma0.  It owns all
memory that sigma0 hands out and turns it into *objects* served over IPC
gates (``l4re-core/moe/server/src``):

- a **memory allocator** (``MEM_ALLOC``, moe's factory), one per client
  *session*, with a quota: it creates dataspaces, namespaces, log streams
  and sub-sessions, and charges each to the session;
- **dataspaces** (``DATASPACE``): anonymous memory, zero-filled, backed by
  frames on first ``MAP`` (or at creation when ``PINNED``);
- **namespaces** (``NAMESPACE``): names bound to capabilities;
- **log streams** (``LOG``, the Vcon label): one tagged line stream per
  client on the console;
- **scheduler proxies** (``Proto.SCHEDULER``, the kernel scheduler's own
  label): a scheduler limited to priorities up to a maximum and to a set of
  CPUs.  A client holds the proxy instead of the kernel's scheduler; the
  proxy checks ``run_thread`` against its limits and forwards it to the
  kernel's scheduler, which moe, the root task, holds (L4Re's
  ``Sched_proxy``).

Every object is one IPC gate bound to moe's server thread; the gate's
label names the object (labels are multiples of 4: the two low bits carry
the W and S rights of the caller's capability, so ``label & 1`` says
whether the caller may write).  moe creates a gate, *grants* it to the
client in the reply (the client holds the only capability), and registers
a delete Irq on its server thread (``Thread.register_delete_irq``): when
the last capability of a gate goes -- the client deleted it, or its task
died -- the kernel reports the gate's label and moe frees the object.
A session's death frees everything the session created.  That is L4Re's
deletion notification, and how "its memory goes back to moe" when a
program dies.

Memory.  moe asks sigma0 (its pager, slot 4) for frames in blocks of
:data:`BLOCK_PAGES` (``REQ_FPAGE_ANY``), received into a *frame pool*
region of its own address space at :data:`POOL_BASE`; pool index ``i``
is the page at ``POOL_BASE + i * 4096``.  Free frames sit on a free list
(LIFO).  A frame is zeroed -- 4096 zero bytes written through
``env.mem.write`` -- each time it is handed out, so fresh and reused
frames alike never show old contents.  Dataspace pages are mapped to
clients from moe's pool mapping, so freeing a dataspace revokes its pages
everywhere with one ``Task.unmap`` of moe's own page (``include_self``
off): the mapping database removes everything derived from it.

Copy-in.  ``COPY_IN`` receives the source dataspace as a capability, and
moe cannot tell which of its gates that is: the kernel does not implement
Fiasco's "local id" receive (a gate sent to its own server arrives as its
label).  So moe does what any client would: its *copy worker* thread
calls ``MAP`` on the received capability into a scratch window of moe's
space, reads the bytes, and writes them into the destination's frames.
The main thread saves the reply capability and the worker answers later
(a deferred reply), because the source may be one of its own gates.  A
source that does not answer within :data:`COPY_TIMEOUT_NS`, maps nothing,
or takes its page back before the worker read it fails the copy: the main
thread is the worker's pager and answers a fault on the scratch page with a
read-only zero frame, so the worker survives any source.

Bad requests.  Every request gets an answer (docs/runtime.md § 5.9): the
handlers check words, rights, items and quotas and refuse with the errno the
protocol documents; a request that raises all the same is answered ``-EIO``
with one line on the console (``moe: request ... failed: ...``), and a copy
that raises fails with ``-EIO`` without ending the copy worker.

Only moe's own bookkeeping (:class:`Moe`) lives in Python objects shared
by moe's two threads -- the analog of a task's memory.  The host may read
it (``Moe.stats``) for tests and tools, as a debugger would.

Boot: :func:`boot_moe` creates sigma0 and moe (the root task, holding all
initial capabilities, with sigma0 as pager) and has moe start ``main``
with a root session, a namespace and a log stream.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel.abi import (
    SLOT_PAGER,
    WORD_MASK,
    Err,
    Fpage,
    FpageType,
    MapItem,
    MemRights,
    Proto,
    Rights,
    SchedOp,
    unpack_bytes,
)
from l4sim.kernel.kernel import Kernel
from l4sim.kernel.traps import Msg
from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT, PAGE_SIZE
from l4sim.runtime.protocols import (
    DATASPACE,
    LOG,
    MEM_ALLOC,
    NAMESPACE,
    DsFlag,
    DsOp,
    MemOp,
    NsOp,
)
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, request, sigma0
from l4sim.user.env import (
    INITIAL,
    SIGMA0_CAPS,
    Cap,
    Env,
    Gate,
    IrqCap,
    L4Error,
    ReplyCap,
    TaskLocal,
    ThreadCap,
    start_task,
)
from l4sim.user.server import request_failed

Program = Callable[..., Coroutine[Any, Any, Any]]

#: moe's frame pool: pool index i is the page at POOL_BASE + i * PAGE_SIZE in moe's space
POOL_BASE = 1 << 40
#: the copy worker's scratch page (where source pages of COPY_IN are mapped)
COPY_WINDOW = 1 << 39
#: frames asked of sigma0 at a time (one aligned flexpage)
BLOCK_PAGES = 16
#: labels of moe's own Irqs (gate deletions, copy-worker wake-ups) and of the
#: gate through which the copy worker's page faults reach the server thread
DEL_LABEL = 0x4
COPY_LABEL = 0x8
PF_LABEL = 0xC
#: first object label; labels grow by 4 and are never reused (a stale gate
#: must never name a newer object)
FIRST_LABEL = 0x1000
#: bytes charged to a session for each object it creates (moe's bookkeeping,
#: its gate in kernel memory) and for each namespace entry
OBJECT_CHARGE = 256
ENTRY_CHARGE = 64
#: how long the copy worker waits for a COPY_IN source to answer MAP
COPY_TIMEOUT_NS = 10_000_000
#: capability rights a client gets for the objects moe creates
CLIENT_RIGHTS = Rights.RWSD
#: longest log tag, namespace name; the width a tag and at least one space are
#: padded to in front of a log line's "| "
TAG_MAX = 16
NAME_MAX = 255
TAG_WIDTH = 8
#: a log line longer than this is emitted without waiting for its newline
LINE_MAX = 1024
#: largest dataspace (bytes)
DS_MAX = 1 << 40
#: largest alignment (log2) CREATE_DS accepts
ALIGN_MAX = 40

ZERO_PAGE = bytes(PAGE_SIZE)
_IRQ = int(Proto.IRQ)
_PF = int(Proto.PAGE_FAULT)
_SCHED = int(Proto.SCHEDULER)
#: the highest priority the kernel's scheduler knows
MAX_PRIO = 255


# --------------------------------------------------------------------------- objects
@dataclass(eq=False)
class MoeObject:
    """Something moe serves over one IPC gate, owned by (and charged to) a session."""

    label: int
    #: the session that created it (None: moe's own, or an orphaned session)
    session: Session | None
    #: bytes charged to ``session``
    charge: int
    alive: bool = True


@dataclass(eq=False)
class Session(MoeObject):
    """A client's memory allocator: quota, and the objects created through it."""

    limit: int = 0
    used: int = 0
    #: objects created through this session, label -> object (creation order)
    owned: dict[int, MoeObject] = field(default_factory=dict)


@dataclass(eq=False)
class Dataspace(MoeObject):
    """Anonymous memory: ``size`` bytes, pages backed by pool frames on demand."""

    size: int = 0
    flags: int = 0
    #: page index in the dataspace -> pool index of its frame
    pages: dict[int, int] = field(default_factory=dict)


@dataclass(eq=False)
class Entry:
    """A namespace entry: a capability moe holds in ``slot``, handed out with ``rights``."""

    slot: int
    rights: int


@dataclass(eq=False)
class Namespace(MoeObject):
    """Names (bytes) bound to capabilities."""

    entries: dict[bytes, Entry] = field(default_factory=dict)


@dataclass(eq=False)
class LogStream(MoeObject):
    """One client's tagged line stream on the console."""

    tag: str = ""
    #: the unfinished last line
    buf: bytearray = field(default_factory=bytearray)
    lines: int = 0


@dataclass(eq=False)
class SchedProxy(MoeObject):
    """A scheduler limited to priorities up to ``max_prio`` and the CPUs in ``cpus`` (a mask)."""

    max_prio: int = 0
    cpus: int = 0


@dataclass(eq=False)
class CopyJob:
    """A deferred COPY_IN for the copy worker."""

    dst: Dataspace
    dst_off: int
    src_off: int
    size: int
    #: moe's slot holding the source dataspace capability
    src_slot: int
    #: moe's slot holding the saved reply capability
    reply_slot: int


class Moe:
    """moe's bookkeeping: its objects, the frame pool, the copy worker's queue."""

    def __init__(self, quota: int, zero_on_free: bool = False) -> None:
        #: quota of the root session (bytes)
        self.quota = quota
        #: the frames of a freed dataspace are cleared at once, not only when handed out again
        #: (the policy Chow et al. compare; ``l4sim lifetime --zero-on-free``)
        self.zero_on_free = zero_on_free
        #: every live object, label -> object
        self.objects: dict[int, MoeObject] = {}
        self.next_label = FIRST_LABEL
        #: pool indices of free frames (handed out LIFO, zeroed on the way out)
        self.free: list[int] = []
        #: frames taken from sigma0 (they never go back)
        self.frames = 0
        #: pool index -> physical address (as sigma0 reported it)
        self.phys: dict[int, int] = {}
        #: next unused pool index (blocks are aligned to their size)
        self.next_index = 0
        #: sigma0 had not even one frame left
        self.exhausted = False
        self.jobs: list[CopyJob] = []
        self.root: Session | None = None
        #: a frame nobody writes, mapped read-only where the copy worker faults
        self.zero_frame: int | None = None
        #: set when the copy worker's scratch page faulted (its source took the page back)
        self.window_fault = False
        #: lines written to the console through log streams
        self.log_lines = 0
        #: the kernel scheduler's mask of online CPUs, asked once (scheduler proxies stay inside it)
        self.online: int | None = None

    @staticmethod
    def addr(i: int) -> int:
        """moe's virtual address of pool frame ``i``."""
        return POOL_BASE + (i << PAGE_SHIFT)

    def new_label(self) -> int:
        label = self.next_label
        self.next_label += 4
        return label

    def count(self, kind: type[MoeObject]) -> int:
        return sum(1 for o in self.objects.values() if type(o) is kind)

    def stats(self) -> dict[str, int]:
        """Counters for tests and tools: frames and live objects."""
        return {
            "frames": self.frames,
            "frames_free": len(self.free),
            "frames_used": self.frames - len(self.free),
            "sessions": self.count(Session),
            "dataspaces": self.count(Dataspace),
            "namespaces": self.count(Namespace),
            "logs": self.count(LogStream),
            "schedulers": self.count(SchedProxy),
            "entries": sum(len(o.entries) for o in self.objects.values() if type(o) is Namespace),
            "ds_pages": sum(len(o.pages) for o in self.objects.values() if type(o) is Dataspace),
            "jobs": len(self.jobs),
        }

    # --- the frame pool (used by both of moe's threads; each step between two
    # traps is atomic, so the list operations need no lock)
    async def refill(self, env: Env) -> bool:
        """Take a block of frames from sigma0 (a single frame if no block is left)."""
        if self.exhausted:
            return False
        for n in (BLOCK_PAGES, 1):
            base = (self.next_index + n - 1) & ~(n - 1)
            old, self.next_index = self.next_index, base + n  # reserve the window before the call blocks
            order = PAGE_SHIFT + n.bit_length() - 1
            r = await request(env, SLOT_PAGER, REQ_FPAGE_ANY, Fpage.mem(0, order),
                              Fpage.mem(self.addr(base), order))
            got = [f for f in r.items if type(f) is Fpage and f.kind == FpageType.MEMORY] \
                if r.ok and r.proto == 0 else []
            if not got:
                if self.next_index == base + n:
                    self.next_index = old  # nobody reserved after us: give the window back
                if n == 1:
                    self.exhausted = True  # sigma0 never gets frames back: do not ask again
                continue
            phys = r.words[0] if r.words else 0
            arrived = sorted((f.base - POOL_BASE) >> PAGE_SHIFT for f in got)
            for i in arrived:
                self.phys[i] = phys + ((i - base) << PAGE_SHIFT)
            self.frames += len(arrived)
            self.free.extend(reversed(arrived))  # the lowest is handed out first
            return True
        return False

    async def alloc_frame(self, env: Env) -> int | None:
        """A zeroed frame from the pool (pool index), or None when memory is exhausted."""
        if not self.free and not await self.refill(env):
            return None
        if not self.free:
            return None
        i = self.free.pop()
        await env.mem.write(self.addr(i), ZERO_PAGE)  # frames are zeroed before they are handed out
        return i

    async def page_frame(self, env: Env, ds: Dataspace, page: int) -> int | None:
        """The frame backing ``page`` of ``ds``, allocated on first use; None: no memory
        (or ``ds`` died while a frame was being found)."""
        i = ds.pages.get(page)
        if i is not None:
            return i
        i = await self.alloc_frame(env)
        if i is None:
            return None
        if not ds.alive or page in ds.pages:  # another thread was faster, or ds went away
            self.free.append(i)
            return ds.pages.get(page) if ds.alive else None
        ds.pages[page] = i
        return i

    async def release_pages(self, env: Env, ds: Dataspace) -> None:
        """Revoke every page of ``ds`` from everyone and return its frames."""
        frames = list(ds.pages.values())
        ds.pages.clear()
        for i in frames:
            await env.task.unmap(Fpage.mem(self.addr(i), PAGE_SHIFT), include_self=False)
            if self.zero_on_free:
                await env.mem.write(self.addr(i), ZERO_PAGE)
            self.free.append(i)


# --------------------------------------------------------------------------- the server
@dataclass(slots=True)
class Answer:
    """A handler's reply; ``new`` is an object whose gate (moe's slot) the reply grants."""

    proto: int
    words: tuple[int, ...] = ()
    items: tuple[MapItem, ...] = ()
    new: tuple[MoeObject, int] | None = None


def _err(e: int) -> Answer:
    return Answer(-e)


def _pages(size: int) -> int:
    return (size + PAGE_MASK) >> PAGE_SHIFT


def _clean_tag(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return "".join(c if c.isprintable() and c not in "|" and not c.isspace() else "_" for c in text)[:TAG_MAX]


class MoeServer:
    """moe's main thread: the loop over all objects' gates and the delete Irq."""

    def __init__(self, env: Env, m: Moe, wake: IrqCap) -> None:
        self.env = env
        self.m = m
        #: triggers the copy worker
        self.wake = wake
        #: receive buffer for a capability that comes with a request
        self.scratch = env.alloc_slot()

    def rcv(self) -> tuple[Fpage, ...]:
        return (Fpage.obj(self.scratch),)

    async def run(self) -> None:
        env = self.env
        msg = await env.wait(rcv=self.rcv())
        while True:
            if msg.error:  # a receive that failed (e.g. a client's bad items): nobody to answer
                msg = await env.wait(rcv=self.rcv())
                continue
            got = self.scratch if any(type(f) is Fpage and f.kind == FpageType.OBJECT
                                      for f in msg.items) else None
            try:
                ans = await self.dispatch(msg, got)
            except Exception as exc:  # a request nothing in dispatch foresaw: answer it, keep serving
                ans = _err(-await request_failed(env, "moe", msg, exc))
            if got is not None and got == self.scratch:  # a capability nobody wanted
                await env.task.unmap(Fpage.obj(got), include_self=True)
            if ans is None:
                msg = await env.wait(rcv=self.rcv())
                continue
            msg = await env.reply_and_wait(ans.proto, *ans.words, items=ans.items, rcv=self.rcv())
            failed = bool(msg.error) and not msg.error & 1  # even: the reply itself failed
            if ans.new is not None:
                obj, slot = ans.new
                if failed:  # the client never got its object: take it back
                    await env.task.delete(slot)
                    await self.free_object(obj)
                env.free_slot(slot)
            if failed:
                msg = await env.wait(rcv=self.rcv())

    async def dispatch(self, msg: Msg, item: int | None) -> Answer | None:
        if msg.proto == _IRQ and msg.label == DEL_LABEL:
            for label in msg.words:
                obj = self.m.objects.get(label)
                if obj is not None:
                    await self.free_object(obj)
            await self.sweep()
            return None
        if msg.label & ~3 == PF_LABEL:
            return await self.window_fault(msg)
        obj = self.m.objects.get(msg.label & ~3)
        if obj is None:
            return _err(Err.ENOENT)  # no such object (any more): a stale gate
        w = msg.words
        if not w:
            return _err(Err.EINVAL)
        write = bool(msg.label & Rights.W)
        if type(obj) is Session and msg.proto == MEM_ALLOC:
            return await self.mem_alloc(obj, w, write)
        if type(obj) is Dataspace and msg.proto == DATASPACE:
            return await self.dataspace(obj, w, write, msg, item)
        if type(obj) is Namespace and msg.proto == NAMESPACE:
            return await self.namespace(obj, w, write, msg, item)
        if type(obj) is LogStream and msg.proto == LOG:
            return await self.log(obj, w, write)
        if type(obj) is SchedProxy and msg.proto == _SCHED:
            return await self.scheduler(obj, w, write, msg, item)
        return _err(Err.ENOSYS)

    async def window_fault(self, msg: Msg) -> Answer:
        """The copy worker faulted on its scratch page: the source mapped a page and took
        it back before the worker read it.  Map the zero frame read-only so the read
        completes, and flag the copy as failed."""
        w = msg.words
        if msg.proto != _PF or not w or w[0] & ~PAGE_MASK != COPY_WINDOW or w[0] & 2:
            return _err(Err.EPERM)  # any other fault of the worker is a bug: it stops
        m = self.m
        if m.zero_frame is None:
            m.zero_frame = await m.alloc_frame(self.env)
            if m.zero_frame is None:
                return _err(Err.ENOMEM)
        m.window_fault = True
        return Answer(0, (), (MapItem(Fpage.mem(m.addr(m.zero_frame), PAGE_SHIFT, MemRights.R),
                                      snd_base=COPY_WINDOW),))

    # --- object life
    async def new_gate(self, label: int) -> int | None:
        """A gate for a new object, bound to this thread, in a slot of moe's."""
        try:
            g = await self.env.factory.create_gate(self.env.thread, label)
        except L4Error:
            return None
        return g.slot

    def add(self, obj: MoeObject) -> None:
        self.m.objects[obj.label] = obj
        s = obj.session
        if s is not None:
            s.owned[obj.label] = obj
            s.used += obj.charge

    async def created(self, obj: MoeObject, words: tuple[int, ...] = ()) -> Answer:
        """Give ``obj`` a gate and answer with it granted; undo ``obj`` if no gate."""
        slot = await self.new_gate(obj.label)
        if slot is None:
            await self.free_object(obj)
            return _err(Err.ENOMEM)
        return Answer(0, words, (MapItem(Fpage.obj(slot, 0, CLIENT_RIGHTS), grant=True),), (obj, slot))

    async def free_object(self, obj: MoeObject) -> None:
        """``obj`` is gone (its gate died, or its session did): free what it holds."""
        if not obj.alive:
            return
        obj.alive = False
        m, env = self.m, self.env
        m.objects.pop(obj.label, None)
        s = obj.session
        if s is not None:
            s.owned.pop(obj.label, None)
            s.used -= obj.charge
            obj.session = None
        match obj:
            case Session():
                for o in list(obj.owned.values()):
                    if type(o) is Session:  # a sub-session lives on, orphaned
                        obj.owned.pop(o.label)
                        o.session = None
                    else:
                        await self.free_object(o)
                obj.used = 0
            case Dataspace():
                await m.release_pages(env, obj)
            case Namespace():
                for e in list(obj.entries.values()):
                    await env.task.unmap(Fpage.obj(e.slot), include_self=True)
                    env.free_slot(e.slot)
                obj.entries.clear()
            case LogStream():
                if obj.buf:
                    await self.emit(obj, [bytes(obj.buf)])
                    obj.buf.clear()
            case _:
                pass

    async def sweep(self) -> None:
        """Drop namespace entries whose capability was revoked (its holder died)."""
        for ns in [o for o in self.m.objects.values() if type(o) is Namespace]:
            for name, e in list(ns.entries.items()):
                if (await self.env.task.cap_info(e.slot))[0] == 0:
                    self.drop_entry(ns, name)

    def drop_entry(self, ns: Namespace, name: bytes) -> None:
        e = ns.entries.pop(name)
        self.env.free_slot(e.slot)
        if ns.session is not None:
            ns.session.used -= ENTRY_CHARGE

    # --- MEM_ALLOC: the factory of a session
    async def mem_alloc(self, s: Session, w: tuple[int, ...], write: bool) -> Answer:
        op = w[0]
        m = self.m
        if op == MemOp.QUOTA:
            return Answer(0, (s.limit, s.used))
        if op not in (MemOp.CREATE_DS, MemOp.CREATE_NS, MemOp.CREATE_LOG, MemOp.CREATE_SESSION,
                      MemOp.CREATE_SCHED):
            return _err(Err.ENOSYS)
        if not write:
            return _err(Err.EPERM)
        obj: MoeObject
        if op == MemOp.CREATE_DS:
            if len(w) < 2:
                return _err(Err.EINVAL)
            size, flags, align = (*w[1:4], 0, 0)[:3]
            if not 0 < size <= DS_MAX or flags & ~(DsFlag.RW | DsFlag.PINNED) or align > ALIGN_MAX:
                return _err(Err.EINVAL)
            npages = _pages(size)
            charge = OBJECT_CHARGE + (npages << PAGE_SHIFT)
            if s.used + charge > s.limit:
                return _err(Err.ENOMEM)
            ds = Dataspace(m.new_label(), s, charge, size=npages << PAGE_SHIFT, flags=flags)
            self.add(ds)
            if flags & DsFlag.PINNED:
                for p in range(npages):
                    if await m.page_frame(self.env, ds, p) is None:
                        await self.free_object(ds)
                        return _err(Err.ENOMEM)
            return await self.created(ds, (ds.size,))
        if op == MemOp.CREATE_SESSION:
            if len(w) < 2 or w[1] == 0:
                return _err(Err.EINVAL)
            charge = OBJECT_CHARGE + w[1]
            if s.used + charge > s.limit:
                return _err(Err.ENOMEM)
            obj = Session(m.new_label(), s, charge, limit=w[1])
        elif op == MemOp.CREATE_SCHED:
            if len(w) < 3:
                return _err(Err.EINVAL)
            max_prio, cpus = w[1], w[2]
            if m.online is None:
                m.online = (await self.env.scheduler.info())[2]
            if max_prio > MAX_PRIO or cpus == 0 or cpus & ~m.online:
                return _err(Err.EINVAL)
            if s.used + OBJECT_CHARGE > s.limit:
                return _err(Err.ENOMEM)
            obj = SchedProxy(m.new_label(), s, OBJECT_CHARGE, max_prio=max_prio, cpus=cpus)
        else:
            if s.used + OBJECT_CHARGE > s.limit:
                return _err(Err.ENOMEM)
            if op == MemOp.CREATE_NS:
                obj = Namespace(m.new_label(), s, OBJECT_CHARGE)
            else:
                tag = _clean_tag(unpack_bytes(w[1:]))
                if not tag:
                    return _err(Err.EINVAL)
                obj = LogStream(m.new_label(), s, OBJECT_CHARGE, tag=tag)
        self.add(obj)
        return await self.created(obj)

    # --- DATASPACE
    async def dataspace(self, ds: Dataspace, w: tuple[int, ...], write: bool, msg: Msg,
                        item: int | None) -> Answer | None:
        op = w[0]
        m, env = self.m, self.env
        writable = write and bool(ds.flags & DsFlag.RW)
        if op == DsOp.INFO:
            flags = ds.flags & ~DsFlag.RW | (DsFlag.RW if writable else 0)
            return Answer(0, (ds.size, flags, len(ds.pages)))
        if op == DsOp.MAP:
            if len(w) < 3:
                return _err(Err.EINVAL)
            off, flags = w[1], w[2]
            if off >= ds.size:
                return _err(Err.ERANGE)
            if flags & DsFlag.RW and not writable:
                return _err(Err.EPERM)
            i = await m.page_frame(env, ds, off >> PAGE_SHIFT)
            if i is None:
                return _err(Err.ENOMEM)
            rights = MemRights.R | MemRights.X | (MemRights.W if flags & DsFlag.RW else 0)
            # the hot spot is the page's offset: a receive window larger than a page
            # gets the page at window base + (offset mod window size)
            item_ = MapItem(Fpage.mem(m.addr(i), PAGE_SHIFT, rights), snd_base=off & ~PAGE_MASK)
            return Answer(0, (), (item_,))
        if op in (DsOp.CLEAR, DsOp.ALLOCATE):
            if len(w) < 3:
                return _err(Err.EINVAL)
            off, size = w[1], w[2]
            if off >= ds.size:
                return _err(Err.ERANGE)
            end = min(off + size, ds.size)
            if op == DsOp.CLEAR:
                if not writable:
                    return _err(Err.EPERM)
                for p in range(off >> PAGE_SHIFT, _pages(end)):
                    i = ds.pages.get(p)
                    if i is None:
                        continue  # a page never touched reads as zeros already
                    lo = max(off, p << PAGE_SHIFT)
                    hi = min(end, (p + 1) << PAGE_SHIFT)
                    await env.mem.write(m.addr(i) + (lo & PAGE_MASK), bytes(hi - lo))
                return Answer(0)
            for p in range(off >> PAGE_SHIFT, _pages(end)):
                if await m.page_frame(env, ds, p) is None:
                    return _err(Err.ENOMEM)
            return Answer(0)
        if op == DsOp.COPY_IN:
            if len(w) < 4 or item is None:
                return _err(Err.EINVAL)
            dst_off, src_off, size = w[1], w[2], w[3]
            if not writable:
                return _err(Err.EPERM)
            if dst_off + size > ds.size or src_off + size > WORD_MASK:
                return _err(Err.ERANGE)
            if size == 0:
                return Answer(0)
            rslot = env.alloc_slot()
            try:
                reply = await env.save_reply(rslot)
            except L4Error:
                env.free_slot(rslot)
                return None  # sent, not called: nobody waits for the copy
            m.jobs.append(CopyJob(ds, dst_off, src_off, size, item, reply.slot))
            self.scratch = env.alloc_slot()  # the source capability stays with the job
            await self.wake.trigger()
            return None  # the copy worker answers
        return _err(Err.ENOSYS)

    # --- NAMESPACE
    async def namespace(self, ns: Namespace, w: tuple[int, ...], write: bool, msg: Msg,
                        item: int | None) -> Answer | None:
        op = w[0]
        env = self.env
        if op == NsOp.QUERY:
            name = unpack_bytes(w[1:])
            e = ns.entries.get(name)
            if e is None:
                return _err(Err.ENOENT)
            if (await env.task.cap_info(e.slot))[0] == 0:  # revoked since: its holder died
                self.drop_entry(ns, name)
                return _err(Err.ENOENT)
            return Answer(0, (1,), (MapItem(Fpage.obj(e.slot, 0, e.rights)),))
        if op == NsOp.REGISTER:
            if not write:
                return _err(Err.EPERM)
            if len(w) < 3 or item is None:
                return _err(Err.EINVAL)
            name = unpack_bytes(w[2:])
            if not 0 < len(name) <= NAME_MAX:
                return _err(Err.EINVAL)
            if name in ns.entries:
                return _err(Err.EEXIST)
            s = ns.session
            if s is not None and s.used + ENTRY_CHARGE > s.limit:
                return _err(Err.ENOMEM)
            got = next(f for f in msg.items if type(f) is Fpage and f.kind == FpageType.OBJECT)
            mask = w[1] & Rights.RWSD or Rights.RWSD
            ns.entries[name] = Entry(item, got.rights & mask)
            if s is not None:
                s.used += ENTRY_CHARGE
            self.scratch = env.alloc_slot()  # the capability stays in the entry
            return Answer(0)
        if op == NsOp.UNLINK:
            if not write:
                return _err(Err.EPERM)
            name = unpack_bytes(w[1:])
            e = ns.entries.get(name)
            if e is None:
                return _err(Err.ENOENT)
            # revokes what QUERY handed out too: those were mapped from moe's copy
            await env.task.unmap(Fpage.obj(e.slot), include_self=True)
            self.drop_entry(ns, name)
            return Answer(0)
        return _err(Err.ENOSYS)

    # --- SCHEDULER (a proxy)
    async def scheduler(self, sp: SchedProxy, w: tuple[int, ...], write: bool, msg: Msg,
                        item: int | None) -> Answer:
        """A scheduler proxy: the kernel scheduler's operations, within the proxy's limits.

        ``RUN_THREAD`` needs W on the proxy and the thread as a capability map item
        carrying W (changing a thread's scheduling is a write to it, as the kernel's
        scheduler requires); word 1, the thread's slot in the caller's space, means
        nothing here.  A priority above ``max_prio`` or a CPU outside ``cpus`` is
        refused with -EPERM, not clamped: the caller learns what it may not do.
        """
        op = w[0]
        env = self.env
        if op == SchedOp.INFO:
            n = (await env.scheduler.info())[0]
            return Answer(0, (n, sp.max_prio, sp.cpus))
        if op == SchedOp.RUN_THREAD:
            if not write:
                return _err(Err.EPERM)
            if len(w) < 5 or item is None:
                return _err(Err.EINVAL)
            got = next(f for f in msg.items if type(f) is Fpage and f.kind == FpageType.OBJECT)
            prio, quantum, cpus = w[2], w[3], w[4]
            if not got.rights & Rights.W or prio > sp.max_prio or cpus & ~sp.cpus:
                return _err(Err.EPERM)
            try:
                await env.scheduler.run_thread(ThreadCap(env, item), prio, quantum, cpus)
            except L4Error as e:
                return _err(e.err or Err.EINVAL)
            return Answer(0)
        if op in (SchedOp.IDLE_TIME, SchedOp.RESV_INFO):
            if len(w) < 2:
                return _err(Err.EINVAL)
            if w[1] >= 64 or not sp.cpus >> w[1] & 1:
                return _err(Err.EPERM)
            r = await env.ipc(env.scheduler.invoke(op, w[1]))
            return Answer(r.proto, r.words) if not r.error else _err(Err.EINVAL)
        if op == SchedOp.SET_RESERVATION:
            return _err(Err.EPERM)  # reservations need admission: a proxy grants none
        return _err(Err.ENOSYS)

    # --- LOG
    async def log(self, lg: LogStream, w: tuple[int, ...], write: bool) -> Answer:
        if w[0] != 0:  # LogOp.WRITE
            return _err(Err.ENOSYS)
        if not write:
            return _err(Err.EPERM)
        if len(w) < 2 or w[1] > 8 * (len(w) - 2):
            return _err(Err.EINVAL)
        lg.buf += unpack_bytes(w[1:])
        lines: list[bytes] = []
        while True:
            nl = lg.buf.find(b"\n")
            if nl < 0:
                if len(lg.buf) < LINE_MAX:
                    break
                nl = LINE_MAX
                lines.append(bytes(lg.buf[:nl]))
                del lg.buf[:nl]
                continue
            lines.append(bytes(lg.buf[:nl]))
            del lg.buf[: nl + 1]
        if lines:
            await self.emit(lg, lines)
        return Answer(0)

    async def emit(self, lg: LogStream, lines: list[bytes]) -> None:
        """Write ``lines`` of ``lg`` to the console, each as ``tag | text``."""
        head = f"{lg.tag + ' ':<{TAG_WIDTH}}| ".encode()
        await self.env.log.write(b"".join(head + ln + b"\n" for ln in lines))
        lg.lines += len(lines)
        self.m.log_lines += len(lines)


# --------------------------------------------------------------------------- the copy worker
async def copy_worker(env: Env, m: Moe, irq_slot: int) -> int:
    """moe's second thread: carries out COPY_IN jobs and answers their callers."""
    irq = IrqCap(env, irq_slot)
    await irq.attach(env.thread, COPY_LABEL)
    while True:
        while m.jobs:
            job = m.jobs.pop(0)
            try:
                err = await _copy(env, m, job)
            except Exception as exc:  # what _copy did not foresee fails this copy, not the worker
                err = -await request_failed(env, "moe-copy", _job_request(job), exc)
            await ReplyCap(env, job.reply_slot).send(-err if err else 0)  # the caller may be gone
            env.free_slot(job.reply_slot)
            await env.task.unmap(Fpage.obj(job.src_slot), include_self=True)
            env.free_slot(job.src_slot)
        await env.receive(irq)


def _job_request(job: CopyJob) -> Msg:
    """The COPY_IN request behind ``job``, as a failure line names it."""
    return Msg(0, DATASPACE, (DsOp.COPY_IN, job.dst_off, job.src_off, job.size), job.dst.label)


async def _copy(env: Env, m: Moe, job: CopyJob) -> int:
    """Copy ``job.size`` bytes from the source (by MAPping its pages) into ``job.dst``: 0 or errno."""
    src = Gate(env, job.src_slot)
    dst = job.dst
    pos = 0
    while pos < job.size:
        s_off, d_off = job.src_off + pos, job.dst_off + pos
        n = min(job.size - pos, PAGE_SIZE - (s_off & PAGE_MASK), PAGE_SIZE - (d_off & PAGE_MASK))
        m.window_fault = False
        r = await src.call(DATASPACE, DsOp.MAP, s_off & ~PAGE_MASK, 0, rcv=(Fpage.mem(COPY_WINDOW, PAGE_SHIFT),),
                           timeout=COPY_TIMEOUT_NS, rcv_timeout=COPY_TIMEOUT_NS)
        if r.error:
            return Err.EINVAL  # no dataspace behind the capability
        if r.proto < 0:
            return -r.proto
        if not any(type(f) is Fpage and f.base == COPY_WINDOW for f in r.items):
            return Err.EINVAL  # answered, but mapped nothing: reading would fault
        data = await env.mem.read(COPY_WINDOW + (s_off & PAGE_MASK), n)
        await env.task.unmap(Fpage.mem(COPY_WINDOW, PAGE_SHIFT), include_self=True)
        if m.window_fault:
            return Err.EINVAL  # the source revoked its page before we read it
        if not dst.alive:
            return Err.ENOENT
        i = await m.page_frame(env, dst, d_off >> PAGE_SHIFT)
        if i is None:
            return Err.ENOENT if not dst.alive else Err.ENOMEM
        # no trap between the check above and this write: dst still owns frame i
        await env.mem.write(m.addr(i) + (d_off & PAGE_MASK), data)
        pos += n
    return 0


# --------------------------------------------------------------------------- starting programs
#: moe starts its first program with the user library's minimal loader (it grants
#: that program its session, log and namespace); kept under this name for callers
start_program = start_task


# --------------------------------------------------------------------------- moe itself
async def moe(env: Env, m: Moe, main: Program | None = None, name: str = "init", prio: int = 100,
              args: tuple[Any, ...] = (), my_prio: int = 150, sigma0_cap: bool = False) -> int:
    """moe's main thread: set up deletion notification and the copy worker, start
    ``main`` with the root session, then serve forever.  With ``sigma0_cap`` ``main`` also
    gets sigma0 (moe's pager) as ``sigma0``: on a board with devices, for the device manager
    it starts, and for the I/O ports of the port devices its script hands out (as L4Re's moe
    puts sigma0 into ned's initial namespace)."""
    dirq = await env.factory.create_irq()
    await dirq.attach(env.thread, DEL_LABEL)
    await env.thread.register_delete_irq(dirq)
    wake = await env.factory.create_irq()
    pf = await env.factory.create_gate(env.thread, PF_LABEL)  # the worker's pager: this thread
    await env.spawn(copy_worker, m, wake.slot, name="moe-copy", prio=my_prio, pager=pf.slot)
    srv = MoeServer(env, m, wake)
    if main is not None:
        root = Session(m.new_label(), None, 0, limit=m.quota)
        srv.add(root)
        m.root = root
        grants: dict[str, Cap] = {}
        for cname, obj in (("mem", root), ("log", LogStream(m.new_label(), root, OBJECT_CHARGE, tag=_clean_tag(name.encode()) or "init")),
                           ("ns", Namespace(m.new_label(), root, OBJECT_CHARGE))):
            if obj is not root:
                srv.add(obj)
            slot = await srv.new_gate(obj.label)
            if slot is None:
                raise L4Error(Err.ENOMEM, "moe: gate for the first program")
            grants[cname] = Gate(env, slot)
        caps: dict[str, Cap | tuple[Cap, int]] = {"factory": env.factory, "scheduler": env.scheduler,
                                                  "icu": env.icu}
        if sigma0_cap:  # devices on the board (io needs sigma0), or port devices in the script
            caps["sigma0"] = env.pager
        await start_program(env, name, main, caps=caps,
                            grants=grants, prio=prio, args=args, kinds={"mem": Gate, "ns": Gate})
    await srv.run()
    return 0


def boot_moe(kernel: Kernel, main: Program | None = None, *, name: str = "init", quota: int | None = None,
             prio: int = 150, main_prio: int = 100, args: tuple[Any, ...] = (), sigma0_cap: bool = False) -> Moe:
    """Create sigma0 and moe (the root task, sigma0 as its pager), have moe start ``main``.

    ``main(env, *args)`` runs in its own task with the kernel factory (slot 2),
    scheduler (7) and ICU (6), with ``sigma0_cap`` sigma0 (``env.cap("sigma0")``: it may
    ask sigma0 for the port devices' I/O ports), and -- granted by moe -- a log stream tagged
    ``name`` (slot 5, so ``env.print`` goes through moe), its memory allocator
    session ``env.cap("mem")`` with ``quota`` bytes (default: all RAM) and a
    namespace ``env.cap("ns")``.  Returns moe's bookkeeping for observation.
    """
    nframes = kernel.machine.mem.nframes
    # the board's device regions sigma0 may hand out (none on a board without devices)
    devices = {bd.name: (bd.region.base_pfn, bd.region.npages) for bd in kernel.machine.board.values()}
    devices.update({bd.memory.name: (bd.memory.base_pfn, bd.memory.npages)  # a framebuffer's pixels
                    for bd in kernel.machine.board.values() if bd.memory is not None})
    s0 = kernel.create_sigma0(lambda sp: sigma0(Env(TaskLocal(SIGMA0_CAPS, owner="sigma0")), nframes,
                                                devices))
    m = Moe(quota if quota is not None else nframes << PAGE_SHIFT,
            zero_on_free=bool(kernel.machine.options.get("zero_on_free")))
    kernel.create_root("moe", lambda sp: moe(Env(TaskLocal(INITIAL, owner="moe")), m, main, name, main_prio, args,
                                             prio, bool(devices) or sigma0_cap),
                       prio=prio, pager=s0)
    return m


# --------------------------------------------------------------------------- colour on a terminal
#: ANSI foreground colours a tag can get (no black, no white: both vanish on some terminals)
PALETTE = (31, 32, 33, 34, 35, 36, 91, 92, 93, 94, 95, 96)
_TAGGED = re.compile(rf"([^|\n]{{1,{TAG_MAX + TAG_WIDTH}}})\| ")


def tag_colour(tag: str) -> int:
    """The ANSI colour code of ``tag``: stable across runs (a CRC, no randomness)."""
    return PALETTE[zlib.crc32(tag.strip().encode()) % len(PALETTE)]


def colourize(text: str) -> str:
    """Colour each ``tag | text`` line of console output by its tag, for a terminal.

    The model's output never contains escape codes; the command line calls
    this when its stdout is a tty.  Lines without a tag are left alone.
    """
    out = []
    for line in text.splitlines(keepends=True):
        mt = _TAGGED.match(line)
        if mt is None or not mt.group(1).strip():
            out.append(line)
            continue
        body = line.rstrip("\r\n")
        out.append(f"\x1b[{tag_colour(mt.group(1))}m{body}\x1b[0m{line[len(body):]}")
    return "".join(out)

