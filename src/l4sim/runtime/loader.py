"""The loader: starts a native program in a task of its own, and is its parent.

A started program gets exactly these capabilities and nothing else (its
region manager also holds the stack and heap dataspaces it attached):

====  ==========  ==============================================================
slot  name        what
====  ==========  ==============================================================
1     ``task``    its own task
3     ``thread``  its main thread
4     ``rm``      its region manager (a second thread of its task; its pager)
5     ``log``     its own log stream (a moe log object tagged with its name)
8     ``parent``  the parent gate: exit status and faults go here
9...  (script)    the capabilities its startup script names, in script order
====  ==========  ==============================================================

Its memory: a stack and a heap, dataspaces from its own moe session (the
quota the script gives), attached by its region manager; ``env.stack`` and
``env.heap`` give (address, size).  The loader keeps the session; when the
program ends -- by returning (its status goes to the parent), by an uncaught
exception (exception IPC to the parent), or by a segmentation fault (its
region manager tells the parent) -- the loader deletes its task, threads,
parent gate and session, so the kernel revokes every capability and mapping
it held and moe takes its memory back; the loader keeps nothing of it.

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
    TRAP_PY_EXCEPTION,
    WORD_MASK,
    Err,
    Fpage,
    MapItem,
    Proto,
    Rights,
    unpack_bytes,
)
from l4sim.kernel.traps import Ipc, Msg
from l4sim.machine.memory import PAGE_MASK
from l4sim.runtime.moe import OBJECT_CHARGE
from l4sim.runtime.protocols import MEM_ALLOC, PARENT, RM, MemOp, ParentOp, RmFlag, RmOp, Sig
from l4sim.runtime.rm import region_manager
from l4sim.user.env import Cap, Env, Gate, IpcCap, L4Error, TaskCap, TaskLocal, ThreadCap, _name
from l4sim.user.server import request_failed

SLOT_RM = 4
SLOT_LOG = 5
SLOT_PARENT = 8
SLOT_FIRST_SCRIPT = 9
#: script capabilities with these names go to Fiasco's initial slots
FIXED_SLOTS = {"factory": 2, "icu": 6, "scheduler": 7}
STACK_SIZE = 64 << 10
HEAP_SIZE = 256 << 10


def ds_charge(size: int) -> int:
    """What moe charges a session for a dataspace of ``size`` bytes (0: none is made)."""
    return OBJECT_CHARGE + ((size + PAGE_MASK) & ~PAGE_MASK) if size > 0 else 0


def min_quota(stack: int = STACK_SIZE, heap: int = HEAP_SIZE) -> int:
    """The smallest session quota :meth:`Loader.start` can start a program with.

    It is what ``start`` creates from the program's session, at moe's
    charges: the log stream, then the stack and heap dataspaces.  A program
    cannot allocate from its session itself, so this much also suffices for
    its whole life.
    """
    return OBJECT_CHARGE + ds_charge(stack) + ds_charge(heap)


#: :func:`min_quota` for the default stack and heap: 328,448 bytes
MIN_QUOTA = min_quota()


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
    exit: int | None = None
    fault: str | None = None
    #: the fault is an uncaught exception: ``fault`` is its description (type, message, place)
    raised: bool = False
    done: bool = False

    @property
    def status(self) -> str:
        if not self.done:
            return "running"
        if self.fault is not None:
            return self.fault if self.raised else f"fault: {self.fault}"
        return f"exit {self.exit}" if self.exit is not None else "killed at the end"


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

    async def start(self, name: str, fn: Callable[..., Coroutine[Any, Any, Any]],
                    caps: dict[str, Cap | tuple[Cap, int]] | None = None, *, grants: Collection[str] = (),
                    prio: int = 1, cpus: int = 1, args: tuple[Any, ...] = (), quota: int = 4 << 20,
                    stack: int = STACK_SIZE, heap: int = HEAP_SIZE,
                    kinds: dict[str, type[Cap]] | None = None) -> Child:
        """Start ``fn`` as program ``name``; returns its :class:`Child` record.

        ``caps`` are mapped into the child in their order; those named in
        ``grants`` are moved (granted), so the loader keeps nothing of them --
        a factory made for this child dies with it.  Whatever the loader
        holds for the child afterwards (task, threads, parent gate, session)
        is on the :class:`Child` and goes in :meth:`kill`.

        If the start fails (the factory's kernel memory, the session's
        quota or moe's memory runs out) it raises :class:`L4Error` after
        deleting everything it made for the program, and the ``grants``:
        nothing of the program is left, in the loader's space or anywhere.
        """
        caps = dict(caps or {})
        label = self._next_label
        self._next_label += 4
        held: list[Cap] = []
        for cname in grants:
            spec = caps[cname]
            held.append(spec[0] if isinstance(spec, tuple) else spec)
        try:
            return await self._start(held, label, name, fn, caps, grants, prio, cpus, args, quota,
                                     stack, heap, kinds)
        except L4Error:
            self.children.pop(label, None)
            for cap in reversed(held):
                await self._drop(cap)
            raise

    async def _start(self, held: list[Cap], label: int, name: str, fn: Callable[..., Coroutine[Any, Any, Any]],
                     caps: dict[str, Cap | tuple[Cap, int]], grants: Collection[str], prio: int, cpus: int,
                     args: tuple[Any, ...], quota: int, stack: int, heap: int,
                     kinds: dict[str, type[Cap]] | None) -> Child:
        """The body of :meth:`start`; everything it makes goes on ``held`` until moved or kept."""
        env = self.env

        def moved(cap: Cap) -> None:  # granted away: the slot is empty now
            held.remove(cap)
            env.free_slot(cap.slot)

        task = await env.factory.create_task(name)
        held.append(task)
        main = await env.factory.create_thread(name)
        held.append(main)
        rmth = await env.factory.create_thread(f"{name}.rm")
        held.append(rmth)
        await main.control(bind=task)
        await rmth.control(bind=task)
        parent = await env.factory.create_gate(env.thread, label)
        held.append(parent)
        await task.map(env.task, task.fpage(), 1)
        await task.map(env.task, main.fpage(), 3)
        await task.map(env.task, rmth.fpage(Rights.R | Rights.W), SLOT_RM)
        await task.map(env.task, parent.fpage(Rights.R | Rights.W), SLOT_PARENT)
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
            cap, rights = spec if isinstance(spec, tuple) else (spec, Rights.RWSD)
            fixed = FIXED_SLOTS.get(cname)  # a factory or scheduler lands where env expects it
            await task.map(env.task, cap.fpage(rights), fixed or slot, grant=cname in grants)
            if cname in grants:
                moved(cap)
            names[cname] = fixed or slot
            all_kinds.setdefault(cname, type(cap))
            if fixed is None:
                slot += 1
        # the child's threads: the region manager pages the main thread; the parent handles exceptions
        await main.control(pager=SLOT_RM, exc_handler=SLOT_PARENT)
        await rmth.control(exc_handler=SLOT_PARENT)
        # one slot allocator for the task's two threads: they share its capability space, so the
        # region manager's receive slots (stack, heap, later attachments) and the slots the program
        # allocates never collide
        local = TaskLocal(names, slot, owner=name)
        rm_ip = await task.load_code(lambda sp: region_manager(Env(local, SLOT_RM), SLOT_PARENT))
        await env.scheduler.run_thread(rmth, min(prio + 1, 255), cpus=cpus)
        await rmth.ex_regs(rm_ip, 0)
        child = Child(name, label, task, main, rmth, session, parent=parent)
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
        """End ``child``: delete its task, threads, parent gate and session; the kernel and moe clean up.

        Afterwards the loader holds nothing of the program: its slots are
        free for the next program, and a late message carrying its label is
        no longer a child's.
        """
        if child.done:
            return
        child.done = True
        for cap in (child.task, child.thread, child.rm, child.parent, child.session):
            if cap is not None:
                await self._drop(cap)
        self.children.pop(child.label, None)
