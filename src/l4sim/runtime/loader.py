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
region manager tells the parent) -- the loader deletes its task and its
session, so the kernel revokes every capability and mapping it held and moe
takes its memory back.

Programs are named ``package.module:function``; the function is
``async def main(env, *args) -> int``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from l4sim.kernel.abi import CALL, WORD_MASK, Err, Fpage, MapItem, Proto, Rights
from l4sim.kernel.traps import Ipc, Msg
from l4sim.runtime.protocols import MEM_ALLOC, PARENT, RM, MemOp, ParentOp, RmFlag, RmOp, Sig
from l4sim.runtime.rm import region_manager
from l4sim.user.env import Cap, Env, Gate, IpcCap, L4Error, TaskCap, TaskLocal, ThreadCap, _name

SLOT_RM = 4
SLOT_LOG = 5
SLOT_PARENT = 8
SLOT_FIRST_SCRIPT = 9
#: script capabilities with these names go to Fiasco's initial slots
FIXED_SLOTS = {"factory": 2, "icu": 6, "scheduler": 7}
STACK_SIZE = 64 << 10
HEAP_SIZE = 256 << 10


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
    done: bool = False

    @property
    def status(self) -> str:
        if not self.done:
            return "running"
        if self.fault is not None:
            return f"fault: {self.fault}"
        return f"exit {self.exit}" if self.exit is not None else "killed at the end"


async def _main_entry(env: Env, fn: Callable[..., Coroutine[Any, Any, Any]], args: tuple[Any, ...]) -> int:
    """Run the program; report its exit status to the parent."""
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
            raise L4Error(-msg.proto if msg.proto < 0 else 0, "create moe session", msg.error)
        return Gate(self.env, slot)

    async def _create(self, session: Cap, op: int, *args: int) -> Gate:
        slot = self.env.alloc_slot()
        msg = await self.env.ipc(Ipc(session.slot, CALL, MEM_ALLOC, (op, *args), rcv=(Fpage.obj(slot),)))
        if msg.error or msg.proto < 0:
            raise L4Error(-msg.proto if msg.proto < 0 else 0, f"moe operation {op}", msg.error)
        return Gate(self.env, slot)

    async def start(self, name: str, fn: Callable[..., Coroutine[Any, Any, Any]],
                    caps: dict[str, Cap | tuple[Cap, int]] | None = None, *, prio: int = 1, cpus: int = 1,
                    args: tuple[Any, ...] = (), quota: int = 4 << 20, stack: int = STACK_SIZE,
                    heap: int = HEAP_SIZE, kinds: dict[str, type[Cap]] | None = None) -> Child:
        """Start ``fn`` as program ``name``; returns its :class:`Child` record."""
        env = self.env
        label = self._next_label
        self._next_label += 4
        task = await env.factory.create_task(name)
        main = await env.factory.create_thread(name)
        rmth = await env.factory.create_thread(f"{name}.rm")
        await main.control(bind=task)
        await rmth.control(bind=task)
        parent = await env.factory.create_gate(env.thread, label)
        await task.map(env.task, task.fpage(), 1)
        await task.map(env.task, main.fpage(), 3)
        await task.map(env.task, rmth.fpage(Rights.R | Rights.W), SLOT_RM)
        await task.map(env.task, parent.fpage(Rights.R | Rights.W), SLOT_PARENT)
        names: dict[str, int] = {"task": 1, "thread": 3, "rm": SLOT_RM, "parent": SLOT_PARENT}
        session = await self._session(quota)
        if session is not None:
            logcap = await self._create(session, MemOp.CREATE_LOG, *_name(name))
            await task.map(env.task, logcap.fpage(), SLOT_LOG, grant=True)
            names["log"] = SLOT_LOG
        else:
            await task.map(env.task, env.log.fpage(Rights.W), SLOT_LOG)
            names["log"] = SLOT_LOG
        slot = SLOT_FIRST_SCRIPT
        all_kinds: dict[str, type[Cap]] = dict(kinds or {})
        for cname, spec in (caps or {}).items():
            cap, rights = spec if isinstance(spec, tuple) else (spec, Rights.RWSD)
            fixed = FIXED_SLOTS.get(cname)  # a factory or scheduler lands where env expects it
            await task.map(env.task, cap.fpage(rights), fixed or slot)
            names[cname] = fixed or slot
            all_kinds.setdefault(cname, type(cap))
            if fixed is None:
                slot += 1
        # the child's threads: the region manager pages the main thread; the parent handles exceptions
        await main.control(pager=SLOT_RM, exc_handler=SLOT_PARENT)
        await rmth.control(exc_handler=SLOT_PARENT)
        # one slot allocator for the task's two threads: they share its capability space
        local = TaskLocal(names, slot)
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
                ds = await self._create(session, MemOp.CREATE_DS, size, 1, 0)
                # give the dataspace to the child's region manager: it holds the only capability
                ans = await env.ipc(Ipc(rmth.slot, CALL, RM, (RmOp.ATTACH, 0, size, RmFlag.SEARCH_ADDR, 0),
                                        (MapItem(ds.fpage(), grant=True),)))
                if ans.error or ans.proto < 0:
                    raise L4Error(-ans.proto if ans.proto < 0 else 0, f"attach {what}", ans.error)
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
        """Handle a parent-protocol message or a child's exception; True if it was one."""
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
            child.fault = f"exception {w[0]:#x} (code {w[1]:#x})"
        else:
            await env_reply(self.env, -Err.ENOSYS)  # not the parent protocol: answer, don't hang
            return True
        await self.kill(child)
        return True

    async def kill(self, child: Child) -> None:
        """End ``child``: delete its task and session; the kernel and moe clean up."""
        if child.done:
            return
        child.done = True
        env = self.env
        for cap in (child.task, child.thread, child.rm, child.parent):
            if cap is not None:
                await env.task.delete(cap.slot)
        if child.session is not None:
            await env.task.delete(child.session.slot)
