"""Exceptions, page faults, and the memory and port accesses of native programs.

A native program's load or store (``sys_mem``) copies between its address
space and the trap, or -- where a page is missing -- becomes page-fault IPC
to the thread's pager (label -2, Fiasco's word layout: address with the
present and write bits, then the faulting ip); the access is retried when
the pager's reply has mapped the page.  Any other fault becomes exception
IPC (label -5) to the thread's exception handler (``exception``), whose
reply resumes or ends the thread -- Fiasco's ``thread-pagefault.cpp`` and
``thread.cpp`` exception paths, seL4's ``kernel/faulthandler.c``.

These are methods of :class:`~l4sim.kernel.kernel.Kernel`: each function
takes the kernel as ``self`` and the class binds it under its old name.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from l4sim.kernel.abi import (
    MSG_WORDS,
    RECV,
    SEND,
    WORD_MASK,
    Err,
    IpcErr,
    MemRights,
    Proto,
    pack_bytes,
)
from l4sim.kernel.common import _DEAD, _INACTIVE, _MEM_R, _MEM_W, CALL_FLAGS, FPAGE_ALL_MEMORY
from l4sim.kernel.lifetime import MAX_BYTES, MIN_BYTES, Lifetime
from l4sim.kernel.objects import IpcGate, Task, Thread
from l4sim.kernel.traps import Fault, Ipc, MarkSecret
from l4sim.kernel.vspace import (
    IO_PORTS,
    MAX_ACCESS,
    PF_PRESENT,
    PF_WRITE,
    TRAP_GP,
    TRAP_PAGE_FAULT,
    IoAccess,
    MemAccess,
    first_missing,
    read_frames,
    write_frames,
)

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Core, Kernel


def sys_fault(self: Kernel, core: Core, th: Thread, t: Fault) -> None:
    words = t.words
    if not (type(t.trapno) is int and type(t.code) is int and 0 <= t.trapno <= WORD_MASK
            and 0 <= t.code <= WORD_MASK and self._words_ok(words) and len(words) <= MSG_WORDS - 4):
        self._fail_now(core, th, IpcErr.SEMSGCUT)
        return
    self._exception(core, th, t.trapno, t.code, words, "fault")


def sys_mem(self: Kernel, core: Core, th: Thread, t: MemAccess) -> None:
    """A load or store of a native program: copy, or fault to the pager."""
    addr, n, data = t.addr, t.n, t.data
    costs = self.costs
    if (type(addr) is not int or type(n) is not int or not 0 <= n <= MAX_ACCESS or addr < 0
            or addr + n > 1 << 64 or (data is not None and (type(data) is not bytes or len(data) != n))):
        self._exception(core, th, TRAP_GP, 0, (), "bad memory access arguments")
        return
    self._charge(core, th, costs.mem_access + costs.mem_per_kib * (n >> 10))
    task = th.task
    assert task is not None
    vs = task.vspace
    write = data is not None
    miss = first_missing(vs, addr, n, _MEM_W if write else _MEM_R,
                         (lambda vpn: self.sigma0_root(task, vpn)) if vs.sigma0 else None)
    if miss is not None:
        fault_addr, m = miss
        self._page_fault(core, th, t, fault_addr, write, m is not None)
        return
    mem = self.machine.mem
    if write:
        assert data is not None
        write_frames(mem, task, addr, data, self._mmio)
        lt = self.lifetime
        if lt is not None:
            lt.wrote(self, task, addr, n)
        if self.code_watch:
            self._written(task, addr, n)
    else:
        th.resume = read_frames(mem, task, addr, n, self._mmio)
        lt = self.lifetime
        if lt is not None:
            lt.read(self, task, addr, n)


def mmio(self: Kernel, pfn: int, off: int, n: int, data: bytes | None) -> bytes:
    """A load (``data`` None) or store of ``n`` bytes at offset ``off`` of device frame ``pfn``:
    a register access of the device that owns the frame, at the running core's time.

    It costs ``mmio_access`` (an uncached access that goes to the bus) and is one trace
    record ``mmio``: the device, the offset in its region, size, value, read or write.
    """
    mem = self.machine.mem
    core = self.running
    now = self.now()
    if data is None:
        region, roff, out = mem.io_read(pfn, off, n, now)
        value = out
    else:
        region, roff = mem.io_write(pfn, off, data, now)
        out = b""
        value = data
    th = core.current if core is not None else None
    if core is not None and th is not None:
        self._charge(core, th, self.costs.mmio_access)
    if self.tracer is not None:
        self._trace(core.id if core is not None else -1, "mmio", th.kid if th is not None else -1,
                    dev=region.name, off=roff, size=n,
                    value=int.from_bytes(value, "little") if n <= 8 else None, write=int(data is not None))
    return out


def sys_mark_secret(self: Kernel, core: Core, th: Thread, t: MarkSecret) -> None:
    """A program marks bytes of its memory as a secret (kernel/lifetime.py)."""
    self._charge(core, th, self.costs.syscall)
    addr, n, name = t.addr, t.n, t.name
    task = th.task
    assert task is not None
    if (type(addr) is not int or type(n) is not int or type(name) is not str or len(name) > 64
            or not MIN_BYTES <= n <= MAX_BYTES or not 0 <= addr <= WORD_MASK - n):
        th.resume = -int(Err.EINVAL)
        return
    if first_missing(task.vspace, addr, n, _MEM_R, None) is not None:
        th.resume = -int(Err.EFAULT)
        return
    if self.lifetime is None:
        self.lifetime = Lifetime()  # the first secret: from now on the copy paths look
    sid = self.lifetime.mark(self, task, addr, n, name or f"secret {len(self.lifetime.secrets)}")
    th.resume = sid if sid >= 0 else -int(Err.ENOMEM)
    if self.tracer is not None:
        self._trace(core.id, "secret", th.kid, name=name, bytes=n, id=sid)


def written(self: Kernel, task: Task, addr: int, n: int) -> None:
    """A native program wrote ``n`` bytes at ``addr`` of ``task``: code translated from
    those frames is stale."""
    pages = task.vspace.pages
    watch = self.code_watch
    for vpn in range(addr >> 12, ((addr + n - 1) >> 12) + 1 if n else addr >> 12):
        m = pages.get(vpn)
        if m is not None and m.pfn in watch:
            self.code_written(m.pfn)


def page_fault(self: Kernel, core: Core, th: Thread, t: Any, addr: int, write: bool, present: bool) -> None:
    """Turn a faulting access into page-fault IPC to the pager (or an exception)."""
    th.pfaults += 1
    self._charge(core, th, self.costs.page_fault)
    th.redo = t
    word0 = (addr & ~7) | (PF_WRITE if write else 0) | (PF_PRESENT if present else 0)
    pe = self._lookup(th, th.pager_slot) if th.pager_slot else None
    dest = None
    if pe is not None:
        obj = pe.obj
        dest = obj if type(obj) is Thread else (obj.thread if type(obj) is IpcGate else None)
    if self.tracer is not None:
        self._trace(core.id, "pagefault", th.kid, addr=addr, write=int(write), present=int(present),
                    pager=dest.kid if dest is not None else -1)
    if dest is None or dest.state is _DEAD:
        self._exception(core, th, TRAP_PAGE_FAULT, word0 & 7, (addr,), "page fault without a pager")
        return
    self._sys_ipc(core, th, Ipc(th.pager_slot, CALL_FLAGS, int(Proto.PAGE_FAULT), (word0, th.traps),
                                rcv=(FPAGE_ALL_MEMORY,)))


def sys_io(self: Kernel, core: Core, th: Thread, t: IoAccess) -> None:
    """An in/out instruction: allowed only on ports mapped into the task."""
    port, value = t.port, t.value
    if type(port) is not int or not 0 <= port < IO_PORTS or (
            value is not None and (type(value) is not int or not 0 <= value <= 0xFF)):
        self._exception(core, th, TRAP_GP, 0, (), "bad port access arguments")
        return
    self._charge(core, th, self.costs.io_access)
    task = th.task
    assert task is not None
    m = task.vspace.io.get(port)
    if m is None and task.vspace.sigma0:
        m = self.sigma0_root(task, port, io=True)
    if m is None or not m.rights & (MemRights.W if value is not None else MemRights.R):
        th.redo = t  # a handler that maps the port and resumes gets the access retried
        self._exception(core, th, TRAP_GP, port, (port,), f"I/O port {port:#x} not mapped")
        return
    handlers = self.machine.ports.get(port)
    if value is None:
        th.resume = handlers[0](port) if handlers is not None else 0xFF
    elif handlers is not None:
        handlers[1](port, value)


def exception(self: Kernel, core: Core, th: Thread, trapno: int, code: int, extra: tuple[int, ...],
               why: str) -> None:
    """Turn a fault of ``th`` into exception IPC to its handler, or stop it.

    The message (protocol label -5) carries trap number, error code, the
    native instruction pointer (entry ip and trap count) and any extra
    words.  The handler's reply resumes the thread when its label is 0 (a
    ``Fault`` trap returns the reply); any other label, or a failed
    exception IPC, kills it.  A thread whose Python code raised has no
    frame to resume: unless the handler restarts it with ex_regs first, a
    resuming reply ends it.
    """
    self.exceptions += 1
    self._charge(core, th, self.costs.exception)
    he = self._lookup(th, th.exc_slot) if th.exc_slot else None
    dest = None
    if he is not None:
        obj = he.obj
        if type(obj) is Thread:
            dest = obj
        elif type(obj) is IpcGate:
            dest = obj.thread
    if self.tracer is not None:
        self._trace(core.id, "exception", th.kid, trapno=trapno, code=code,
                    handler=dest.kid if dest is not None else -1, why=why)
    if dest is None or dest.state is _DEAD:
        th.faulted = True
        if th.coro is None:
            self._kill(th, None, f"unhandled exception: {why}")
        else:
            th.state = _INACTIVE  # stopped; ex_regs may restart it
            if self.tracer is not None:
                self._trace(core.id, "exit", th.kid, code=None, reason=f"stopped: {why}")
        return
    th.exc_pending = 1
    self._sys_ipc(core, th, Ipc(th.exc_slot, SEND | RECV, int(Proto.EXCEPTION),
                                (trapno, code, th.ip, th.traps, *extra)))


#: the library a native program runs on: its frames are not the program's own
_LIBRARY = tuple(os.path.join(os.path.dirname(os.path.dirname(__file__)), d) + os.sep
                 for d in ("kernel", "user"))
#: the slots of type and exception objects, read without the attribute lookup a class can override
_TYPE_NAME: Any = type.__dict__["__name__"]
_EXC_ARGS: Any = BaseException.__dict__["args"]
_EXC_TB: Any = BaseException.__dict__["__traceback__"]
#: the builtin types whose repr runs no program code
_PLAIN = (str, int, float, bytes, bool, type(None))
#: room for the description in an exception message: 4 header words, a length word
DESC_BYTES = 8 * (MSG_WORDS - 5)


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(class name, ``"Type: message (file.py:line)"``) of a program's uncaught exception.

    Read without running any of the program's code: the class name from the
    type object's own slot, the message only from arguments of builtin types,
    the place from the traceback's frames -- the innermost one that is the
    program's own, not the library it runs on (``l4sim.user``, the kernel).
    A hostile exception class (a ``__str__`` that raises, a ``__traceback__``
    property) cannot run code in the kernel this way.
    """
    cls = type(exc)
    name: str = _TYPE_NAME.__get__(cls)
    args: tuple[Any, ...] = _EXC_ARGS.__get__(exc)
    if len(args) == 1 and type(args[0]) is str:
        msg = repr(args[0]) if cls is KeyError else args[0]
    elif args and all(type(a) in _PLAIN for a in args):
        msg = ", ".join(repr(a) for a in args)
    else:
        msg = f"<{len(args)} argument{'s' if len(args) > 1 else ''}>" if args else ""
    where = ""
    tb = _EXC_TB.__get__(exc)
    while tb is not None:
        code = tb.tb_frame.f_code
        if not code.co_filename.startswith(_LIBRARY):
            where = f"{os.path.basename(code.co_filename)}:{tb.tb_lineno}"
        tb = tb.tb_next
    text = f"{name}: {msg}" if msg else name
    return name, f"{text} ({where})" if where else text


def exception_words(text: str) -> tuple[int, ...]:
    """``text`` packed as the extra words of an exception message (cut to fit, UTF-8 kept whole)."""
    data = text.encode("utf-8", "replace")
    if len(data) > DESC_BYTES:
        data = data[:DESC_BYTES].decode("utf-8", "ignore").encode()
    return pack_bytes(data)


def exc_dest(self: Kernel, th: Thread) -> Thread | None:
    """The thread that receives ``th``'s exception IPC, or None."""
    he = self._lookup(th, th.exc_slot) if th.exc_slot else None
    if he is None:
        return None
    obj = he.obj
    dest = obj if type(obj) is Thread else obj.thread if type(obj) is IpcGate else None
    return dest if dest is not None and dest.state is not _DEAD else None
