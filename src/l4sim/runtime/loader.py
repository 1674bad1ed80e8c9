"""The loader: starts a native program in a task of its own, and is its parent.

A started program gets exactly these capabilities and nothing else (its
region manager also holds the stack and heap dataspaces it attached):

==========  ==============  ==========================================================
slot        name            what
==========  ==============  ==========================================================
1           ``task``        its own task
3           ``thread``      its main thread
4           ``rm``          its region manager (a second thread of its task; its pager)
5           ``log``         its own log stream (a moe log object tagged with its name)
7           ``scheduler``   a scheduler proxy from moe: priorities up to its own, its CPUs
8           ``parent``      the parent gate: exit status and faults go here (granted:
                            the program holds its only capability)
9...        (script)        the capabilities its startup script names, in script order
==========  ==============  ==========================================================

and, when its script gives it a device, that device's I/O ports at their own
numbers, granted: the loader keeps no access to them.

Its kernel memory: a factory of its own (``kmem`` bytes, carved out of the
loader's) creates its task, threads and parent gate, so the page tables its
address space grows -- which the kernel charges to the factory that created
the task -- come out of its own quota, as in L4Re, where each program's
kernel objects come from a quota-limited factory.  A program that maps
wildly runs out of its own kernel memory, nobody else's.

Its memory: a stack and a heap, dataspaces from its own moe session (the
quota the script gives), attached by its region manager; ``env.stack`` and
``env.heap`` give (address, size).  The loader keeps the session; when the
program ends -- by returning (its status goes to the parent), by an uncaught
exception (exception IPC to the parent), or by a segmentation fault (its
region manager tells the parent) -- the loader deletes its task, threads,
session and kernel-memory factory, so the kernel revokes every capability
and mapping it held and moe takes its memory back; the loader keeps nothing
of it.

A program may also end without a word: it deletes its own task or its main
thread (it holds both with D), or gives up its capabilities.  The loader
hears of it in two ways, both the kernel's: the parent gate is bound to the
loader's thread and the program holds its only capability, so the gate's
death comes as a deletion notification (:meth:`Loader.listen`); and a
*watcher* thread of the loader's task sits in a closed wait on the
program's main thread, which the kernel aborts when that thread dies.

Programs are named ``package.module:function``; the function is
``async def main(env, *args) -> int``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Any

from l4sim.kernel.abi import (
    CALL,
    SLOT_THREAD,
    TRAP_PY_EXCEPTION,
    WORD_MASK,
    Err,
    Fpage,
    IpcErr,
    MapItem,
    MemRights,
    Proto,
    Rights,
    unpack_bytes,
)
from l4sim.kernel.objects import TS, IpcGate, Task, Thread
from l4sim.kernel.traps import Ipc, Msg
from l4sim.kernel.vspace import MAPPING_SIZE, PT_SHIFT, PT_SIZE
from l4sim.machine.memory import PAGE_MASK, PAGE_SHIFT
from l4sim.runtime.moe import OBJECT_CHARGE
from l4sim.runtime.protocols import MEM_ALLOC, PARENT, RM, MemOp, ParentOp, RmFlag, RmOp, Sig
from l4sim.runtime.rm import SEARCH_BASE, region_manager
from l4sim.user.env import (
    Cap,
    Env,
    FactoryCap,
    Gate,
    IpcCap,
    L4Error,
    SchedulerCap,
    TaskCap,
    TaskLocal,
    ThreadCap,
    _name,
)
from l4sim.user.server import request_failed

SLOT_RM = 4
SLOT_LOG = 5
SLOT_PARENT = 8
SLOT_FIRST_SCRIPT = 9
#: script capabilities with these names go to Fiasco's initial slots
FIXED_SLOTS = {"factory": 2, "icu": 6, "scheduler": 7}
STACK_SIZE = 64 << 10
HEAP_SIZE = 256 << 10
#: default kernel memory of a program (bytes): its task, threads and parent gate, and page
#: tables for 64 page-table pages' worth of address space (128 MiB used sparsely, or some
#: 7,000 pages used densely)
KMEM = 256 << 10
#: the label of the loader's delete Irq (parent gates' labels start at 0x1000)
DEL_LABEL = 0x4


def ds_charge(size: int) -> int:
    """What moe charges a session for a dataspace of ``size`` bytes (0: none is made)."""
    return OBJECT_CHARGE + ((size + PAGE_MASK) & ~PAGE_MASK) if size > 0 else 0


def min_quota(stack: int = STACK_SIZE, heap: int = HEAP_SIZE, schedulers: int = 1) -> int:
    """The smallest session quota :meth:`Loader.start` can start a program with.

    It is what ``start`` creates from the program's session, at moe's
    charges: the log stream, its ``schedulers`` scheduler proxies (the one
    every program gets, and any more its script names), then the stack and
    heap dataspaces.  A program cannot allocate from its session itself, so
    this much also suffices for its whole life.
    """
    return OBJECT_CHARGE * (1 + schedulers) + ds_charge(stack) + ds_charge(heap)


#: :func:`min_quota` for the default stack and heap: 328,704 bytes
MIN_QUOTA = min_quota()


def min_kmem(stack: int = STACK_SIZE, heap: int = HEAP_SIZE) -> int:
    """The smallest kernel-memory quota :meth:`Loader.start` can start a program with.

    At the kernel's charges (docs/kernel.md 2.5): the task, its main and
    region-manager threads, the loader's watcher thread and the parent gate,
    and the mappings and page tables of every page of the stack and heap,
    which lie one after the other from ``rm.SEARCH_BASE`` (2 MiB aligned).
    With this much a program may touch all of its stack and heap; mapping
    more (a shared dataspace, pages it maps itself) needs more.
    """
    pages = sum((size + PAGE_MASK) >> PAGE_SHIFT for size in (stack, heap) if size > 0)
    first = SEARCH_BASE >> PAGE_SHIFT
    tables = ((first + pages - 1) >> PT_SHIFT) - (first >> PT_SHIFT) + 1 if pages else 0
    return Task.SIZE + 3 * Thread.SIZE + IpcGate.SIZE + pages * MAPPING_SIZE + tables * PT_SIZE


#: :func:`min_kmem` for the default stack and heap: 17,024 bytes
MIN_KMEM = min_kmem()


@dataclass(frozen=True)
class SchedLimits:
    """A scheduler proxy for a program, made from its session by :meth:`Loader.start`:
    priorities up to ``max_prio``, the CPUs in the mask ``cpus``."""

    max_prio: int
    cpus: int


async def env_reply(env: Env, proto: int) -> None:
    """Answer the call just received, if its caller still waits."""
    await env.reply(proto)


class ProgramError(Exception):
    """A program name that does not resolve to an async function."""


def resolve(spec: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """``"package.module:function"`` -> the async function it names."""
    mod_name, sep, fn_name = spec.partition(":")
    if not sep or not mod_name or not fn_name:
        raise ProgramError(f"program {spec!r} must be written package.module:function")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise ProgramError(f"program {spec!r}: cannot import {mod_name} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if fn is None:
        raise ProgramError(f"program {spec!r}: {mod_name} has no {fn_name}")
    if not inspect.iscoroutinefunction(fn):
        raise ProgramError(f"program {spec!r} is not an async function: define async def {fn_name}(env)")
    return fn  # type: ignore[no-any-return]


@dataclass
class Child:
    """A program the loader started, and what became of it."""

    name: str
    label: int
    task: TaskCap
    thread: ThreadCap
    rm: ThreadCap
    session: Cap | None
    parent: Cap | None = None
    #: the factory of its kernel memory (None: it shares the loader's)
    kmem: FactoryCap | None = None
    #: the loader's thread that watches its main thread
    watcher: ThreadCap | None = None
    exit: int | None = None
    fault: str | None = None
    #: the fault is an uncaught exception: ``fault`` is its description (type, message, place)
    raised: bool = False
    #: how it ended without a word: its task or main thread deleted, its parent capability dropped
    ended: str | None = None
    done: bool = False

    @property
    def status(self) -> str:
        if not self.done:
            return "running"
        if self.fault is not None:
            return self.fault if self.raised else f"fault: {self.fault}"
        if self.exit is not None:
            return f"exit {self.exit}"
        return f"ended: {self.ended}" if self.ended is not None else "killed at the end"


async def _main_entry(env: Env, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> int:
    """Run the program; report its exit status to the parent.

    An uncaught exception ends the program as exception IPC to the parent;
    the kernel packs its description (type, message, the program's own
    line) into that message, and ned prints it.
    """
    code = await fn(env, *args)
    status = code if type(code) is int else 0
    await env.cap("parent").call(PARENT, ParentOp.SIGNAL, Sig.EXIT, status & WORD_MASK)
    return status


async def _watch(env: Env, main: ThreadCap, label: int) -> int:
    """The loader's watch on one program's main thread.

    A closed wait on the thread: nobody can send to this thread (only the
    loader holds it), so the wait ends only when the kernel aborts it --
    the main thread died (REABORTED) or was already dead or deleted
    (ENOT_EXISTENT).  Then it tells the loader's thread (slot 3 of the
    loader's own task; a message through a thread capability arrives with
    label 0, which no program can send) and ends.
    """
    while (await env.receive(main)).error not in (IpcErr.REABORTED, IpcErr.ENOT_EXISTENT):
        pass
    await ThreadCap(env, SLOT_THREAD).send(PARENT, ParentOp.SIGNAL, Sig.GONE, label)
    return 0


class Loader:
    """Starts programs from ``env`` (the parent's) and answers their parent protocol."""

    def __init__(self, env: Env, mem_alloc: IpcCap | None = None) -> None:
        self.env = env
        self.mem_alloc = mem_alloc
        self.children: dict[int, Child] = {}
        self._next_label = 0x1000

    async def _session(self, quota: int) -> Cap | None:
        """A moe session for one child, held by the loader (its only capability)."""
        if self.mem_alloc is None:
            return None
        slot = self.env.alloc_slot()
        msg = await self.mem_alloc.env.ipc(Ipc(self.mem_alloc.slot, CALL, MEM_ALLOC,
                                               (MemOp.CREATE_SESSION, quota), rcv=(Fpage.obj(slot),)))
        if msg.error or msg.proto < 0:
            self.env.free_slot(slot)
            raise L4Error(-msg.proto if msg.proto < 0 else 0, f"moe session of {quota} bytes", msg.error)
        return Gate(self.env, slot)

    async def _create(self, what: str, session: Cap, op: int, *args: int) -> Gate:
        slot = self.env.alloc_slot()
        msg = await self.env.ipc(Ipc(session.slot, CALL, MEM_ALLOC, (op, *args), rcv=(Fpage.obj(slot),)))
        if msg.error or msg.proto < 0:
            self.env.free_slot(slot)
            raise L4Error(-msg.proto if msg.proto < 0 else 0, what, msg.error)
        return Gate(self.env, slot)

    async def _drop(self, cap: Cap) -> None:
        """Delete the object in ``cap``'s slot (or just the capability, without D) and free the slot."""
        with contextlib.suppress(L4Error):  # an empty slot (its capability moved away) is fine
            await self.env.task.delete(cap.slot)
        self.env.free_slot(cap.slot)

    async def listen(self) -> None:
        """Hear of parent gates that die: a delete Irq on the loader's thread (``DEL_LABEL``).

        Each program holds the only capability to its parent gate, so the
        gate dies when the program's task does, or when the program deletes
        or unmaps it; the kernel then reports the gate's label
        (:meth:`notice`).  Call once, before starting programs.
        """
        irq = await self.env.factory.create_irq()
        await irq.attach(self.env.thread, DEL_LABEL)
        await self.env.thread.register_delete_irq(irq)

    async def start(self, name: str, fn: Callable[..., Coroutine[Any, Any, Any]],
                    caps: dict[str, Cap | tuple[Cap, int] | SchedLimits] | None = None, *,
                    grants: Collection[str] = (), prio: int = 1, cpus: int = 1, args: tuple[Any, ...] = (),
                    quota: int = 4 << 20, stack: int = STACK_SIZE, heap: int = HEAP_SIZE,
                    kinds: dict[str, type[Cap]] | None = None, kmem: int | None = KMEM,
                    scheduler: bool = True, io: tuple[tuple[int, int], ...] = ()) -> Child:
        """Start ``fn`` as program ``name``; returns its :class:`Child` record.

        ``caps`` are mapped into the child in their order; those named in
        ``grants`` are moved (granted), so the loader keeps nothing of them --
        a factory made for this child dies with it.  A :class:`SchedLimits`
        in ``caps`` is a scheduler proxy the loader makes from the child's
        session and grants it.  With ``scheduler`` (and a memory allocator)
        the child gets a proxy limited to ``prio`` and ``cpus`` in slot 7
        unless ``caps`` names one ``scheduler``.  ``kmem`` bytes of kernel
        memory become a factory of the child's own, which creates its task,
        threads and parent gate (None: they come from the loader's factory).
        Whatever the loader holds for the child afterwards (task, threads,
        watcher, session, kernel-memory factory) is on the :class:`Child`
        and goes in :meth:`kill`.  ``io`` are I/O port ranges (first port,
        log2 of the count) the loader holds; they are granted to the child at
        the same port numbers.

        If the start fails (the factory's kernel memory, the session's
        quota or moe's memory runs out) it raises :class:`L4Error` after
        deleting everything it made for the program, and the ``grants``:
        nothing of the program is left, in the loader's space or anywhere.
        """
        caps = dict(caps or {})
        if scheduler and self.mem_alloc is not None and "scheduler" not in caps:
            caps["scheduler"] = SchedLimits(prio, cpus)
        label = self._next_label
        self._next_label += 4
        held: list[Cap] = []
        for cname in grants:
            spec = caps[cname]
            assert not isinstance(spec, SchedLimits), "a scheduler proxy is made by the loader"
            held.append(spec[0] if isinstance(spec, tuple) else spec)
        try:
            return await self._start(held, label, name, fn, caps, grants, prio, cpus, args, quota,
                                     stack, heap, kinds, kmem, io)
        except L4Error:
            self.children.pop(label, None)
            for cap in reversed(held):
                await self._drop(cap)
            raise

    async def _start(self, held: list[Cap], label: int, name: str, fn: Callable[..., Coroutine[Any, Any, Any]],
                     caps: dict[str, Cap | tuple[Cap, int] | SchedLimits], grants: Collection[str], prio: int,
                     cpus: int, args: tuple[Any, ...], quota: int, stack: int, heap: int,
                     kinds: dict[str, type[Cap]] | None, kmem: int | None,
                     io: tuple[tuple[int, int], ...] = ()) -> Child:
        """The body of :meth:`start`; everything it makes goes on ``held`` until moved or kept."""
        env = self.env

        def moved(cap: Cap) -> None:  # granted away: the slot is empty now
            held.remove(cap)
            env.free_slot(cap.slot)

        factory = env.factory
        kf: FactoryCap | None = None
        if kmem is not None:  # the child's own kernel memory: everything below is charged to it
            try:
                kf = await env.factory.create_factory(kmem)
            except L4Error as e:
                raise L4Error(e.err, f"its kernel memory of {kmem} bytes", e.ipc_err) from None
            held.insert(0, kf)  # deleted last, after everything it paid for
            factory = kf
        task = await factory.create_task(name)
        held.append(task)
        main = await factory.create_thread(name)
        held.append(main)
        rmth = await factory.create_thread(f"{name}.rm")
        held.append(rmth)
        watcher = await factory.create_thread(f"{name}.watch")
        held.append(watcher)
        await main.control(bind=task)
        await rmth.control(bind=task)
        await watcher.control(bind=env.task)
        parent = await factory.create_gate(env.thread, label)
        held.append(parent)
        await task.map(env.task, task.fpage(), 1)
        await task.map(env.task, main.fpage(), 3)
        await task.map(env.task, rmth.fpage(Rights.R | Rights.W), SLOT_RM)
        # granted: the child holds the parent gate's only capability, so its death (the task's, or
        # the child dropping it) reaches the loader as a deletion notification
        await task.map(env.task, parent.fpage(Rights.R | Rights.W), SLOT_PARENT, grant=True)
        moved(parent)
        names: dict[str, int] = {"task": 1, "thread": 3, "rm": SLOT_RM, "parent": SLOT_PARENT}
        session = await self._session(quota)
        if session is not None:
            held.append(session)
            logcap = await self._create("log stream", session, MemOp.CREATE_LOG, *_name(name))
            held.append(logcap)
            await task.map(env.task, logcap.fpage(), SLOT_LOG, grant=True)
            moved(logcap)
        else:
            await task.map(env.task, env.log.fpage(Rights.W), SLOT_LOG)
        names["log"] = SLOT_LOG
        slot = SLOT_FIRST_SCRIPT
        all_kinds: dict[str, type[Cap]] = dict(kinds or {})
        for cname, spec in caps.items():
            if isinstance(spec, SchedLimits):
                if session is None:
                    raise L4Error(Err.ENODEV, f"scheduler proxy {cname!r}: no memory allocator")
                cap: Cap = await self._create(f"scheduler proxy {cname!r}", session, MemOp.CREATE_SCHED,
                                              spec.max_prio, spec.cpus)
                held.append(cap)
                rights: int = Rights.RWSD
                grant = True
                kind: type[Cap] = SchedulerCap
            else:
                cap, rights = spec if isinstance(spec, tuple) else (spec, Rights.RWSD)
                grant, kind = cname in grants, type(cap)
            fixed = FIXED_SLOTS.get(cname)  # a factory or scheduler lands where env expects it
            await task.map(env.task, cap.fpage(rights), fixed or slot, grant=grant)
            if grant:
                moved(cap)
            names[cname] = fixed or slot
            all_kinds.setdefault(cname, kind)
            if fixed is None:
                slot += 1
        for first, order in io:  # a device's ports, granted at their own numbers
            if not await task.map(env.task, Fpage.io(first, order, MemRights.RW), first, grant=True):
                raise L4Error(Err.ENOENT, f"I/O ports {first:#x}..{first + (1 << order) - 1:#x}: "
                                          "the loader does not hold them")
        # the child's threads: the region manager pages the main thread; the parent handles exceptions
        await main.control(pager=SLOT_RM, exc_handler=SLOT_PARENT)
        await rmth.control(exc_handler=SLOT_PARENT)
        # one slot allocator for the task's two threads: they share its capability space, so the
        # region manager's receive slots (stack, heap, later attachments) and the slots the program
        # allocates never collide
        local = TaskLocal(names, slot, owner=name, cpu=(cpus & -cpus).bit_length() - 1)
        rm_ip = await task.load_code(lambda sp: region_manager(Env(local, SLOT_RM), SLOT_PARENT))
        await env.scheduler.run_thread(rmth, min(prio + 1, 255), cpus=cpus)
        await rmth.ex_regs(rm_ip, 0)
        # the watcher runs in the loader's task, on its core (0), before the main thread starts
        wenv = Env(env.local, watcher.slot, env.kinds)
        w_ip = await env.task.load_code(lambda sp: _watch(wenv, ThreadCap(wenv, main.slot), label))
        await env.scheduler.run_thread(watcher, prio)
        await watcher.ex_regs(w_ip, 0)
        child = Child(name, label, task, main, rmth, session, kmem=kf, watcher=watcher)
        self.children[label] = child
        regions: dict[str, tuple[int, int]] = {}
        if session is not None:
            for what, size in (("stack", stack), ("heap", heap)):
                if size <= 0:
                    continue
                ds = await self._create(f"{what} of {size} bytes", session, MemOp.CREATE_DS, size, 1, 0)
                held.append(ds)
                # give the dataspace to the child's region manager: it holds the only capability
                ans = await env.ipc(Ipc(rmth.slot, CALL, RM, (RmOp.ATTACH, 0, size, RmFlag.SEARCH_ADDR, 0),
                                        (MapItem(ds.fpage(), grant=True),)))
                if ans.error or ans.proto < 0:
                    raise L4Error(-ans.proto if ans.proto < 0 else 0, f"attach {what}", ans.error)
                moved(ds)
                regions[what] = (ans.words[0], size)

        def entry(sp: int) -> Coroutine[Any, Any, Any]:
            cenv = Env(local, 3, all_kinds)
            cenv.stack = regions.get("stack", (0, 0))  # type: ignore[attr-defined]
            cenv.heap = regions.get("heap", (0, 0))  # type: ignore[attr-defined]
            return _main_entry(cenv, fn, args)

        ip = await task.load_code(entry)
        await env.scheduler.run_thread(main, prio, cpus=cpus)
        sp = sum(regions.get("stack", (0, 0)))
        await main.ex_regs(ip, sp)
        return child

    async def notice(self, msg: Msg) -> bool:
        """A program ended without a word: its parent gate died or its watcher reported.

        The message is the delete Irq's (``DEL_LABEL``: the labels of the
        parent gates that died) or a watcher's (label 0, ``SIGNAL GONE``
        with the program's label).  Each program still running among them
        is recorded as ended, with how (:meth:`_how`), and ended for good
        (:meth:`kill`).  Labels of programs already ended are ignored: the
        loader's own :meth:`kill` deletes parent gates too.  True if the
        message was one of these.
        """
        if msg.error:
            return False
        w = msg.words
        if msg.proto == Proto.IRQ and msg.label == DEL_LABEL:
            labels: tuple[int, ...] = w
        elif msg.proto == PARENT and msg.label == 0 and len(w) == 3 and w[:2] == (ParentOp.SIGNAL, Sig.GONE):
            labels = (w[2],)
        else:
            return False
        for lb in labels:
            child = self.children.get(lb)
            if child is not None and not child.done:
                child.ended = await self._how(child)
                await self.kill(child)
        return True

    async def _how(self, child: Child) -> str:
        """How ``child`` ended without a word, from what the loader still holds of it."""
        env = self.env
        if not (await env.task.cap_info(child.task.slot))[0]:
            return "its task was deleted"  # with D: the loader's capability went with it
        if not (await env.task.cap_info(child.thread.slot))[0]:
            return "its main thread was deleted"
        if (await child.thread.stats())[2] == TS.DEAD:
            return "its main thread ended without telling its parent"
        return "it gave up its parent capability"

    async def handle(self, msg: Msg) -> bool:
        """Handle a parent-protocol message or a child's exception; True if it was one.

        Whatever a child sends, the parent goes on: a request the checks in
        :meth:`_handle` did not foresee is answered ``-EIO`` with one line on
        the log (``l4sim.user.server.request_failed``).
        """
        try:
            return await self._handle(msg)
        except Exception as exc:  # answer the caller, keep serving the other children
            who = self.env.local.owner or "loader"  # ned, when ned is the parent
            await env_reply(self.env, await request_failed(self.env, who, msg, exc))
            return (msg.label & ~3) in self.children

    async def _handle(self, msg: Msg) -> bool:
        child = self.children.get(msg.label & ~3)
        if child is None or msg.error:
            return False
        w = msg.words
        if msg.proto == PARENT and len(w) >= 3 and w[0] == ParentOp.SIGNAL:
            if w[1] == Sig.EXIT:
                child.exit = w[2] - (1 << 64) if w[2] >= 1 << 63 else w[2]
            elif w[1] == Sig.FAULT:
                # the fault's second word is where Fiasco sends the instruction pointer; for a
                # native thread the kernel sends its trap count, so name it for what it is
                addr, trap = w[2], w[3] if len(w) > 3 else 0
                kind = "write" if len(w) > 4 and w[4] else "read"
                child.fault = f"segmentation fault ({kind} at {addr:#x} in trap #{trap})"
            else:
                await env_reply(self.env, -Err.EINVAL)  # a signal we do not know: answer, don't hang
                return True
        elif msg.proto == Proto.EXCEPTION and len(w) >= 2:
            if w[0] == TRAP_PY_EXCEPTION and len(w) > 4:  # the kernel packed what was raised
                child.fault = unpack_bytes(w[4:]).decode("utf-8", "replace")
                child.raised = True
            else:
                child.fault = f"exception {w[0]:#x} (code {w[1]:#x})"
        else:
            await env_reply(self.env, -Err.ENOSYS)  # not the parent protocol: answer, don't hang
            return True
        await self.kill(child)
        return True

    async def kill(self, child: Child) -> None:
        """End ``child``: delete its watcher, task, threads, session and kernel-memory factory; the
        kernel and moe clean up (its parent gate goes with its task).

        Afterwards the loader holds nothing of the program: its slots are
        free for the next program, and a late message carrying its label is
        no longer a child's.
        """
        if child.done:
            return
        child.done = True
        # the watcher first: it must not report the death of the threads deleted here
        for cap in (child.watcher, child.task, child.thread, child.rm, child.parent, child.session,
                    child.kmem):
            if cap is not None:
                await self._drop(cap)
        self.children.pop(child.label, None)
