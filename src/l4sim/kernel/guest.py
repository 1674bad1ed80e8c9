"""The guest CPU executor: threads that run x86-64 machine code on unicorn.

A guest thread is an ordinary :class:`~l4sim.kernel.objects.Thread` whose
``guest`` slot holds a :class:`GuestThread` (its register context) instead
of a coroutine.  Every task with guest threads has one :class:`GuestCPU`: a
unicorn instance in virtual-TLB mode over the machine's one RAM buffer,
mapped once at guest-physical 0, so a frame mapped into a guest and into a
native task is the same host memory (see DESIGN.md, "Guest executor").

Translation
    A ``UC_HOOK_TLB_FILL`` hook looks the page up in the task's
    ``vspace.pages`` and answers with the frame and the rights (L4's R, W, X
    become unicorn's READ, WRITE, EXEC; an instruction fetch needs X).  A
    refused access stops the CPU with RIP on the faulting instruction: the
    kernel sends page-fault IPC to the thread's pager (word 0: address |
    write 2 | present 1 | fetch 4, word 1: RIP) and re-executes the
    instruction after the reply; a reply that maps nothing faults again, a
    refusing reply (error or negative label) and a missing pager become
    exception IPC, trap 14.  ``vspace.on_change`` marks the instance's TLB
    stale (flushed before it next runs) and drops all translated code when
    a page it had fetched instructions from changes.  Device frames are not
    mapped into the instance: an access to one is exception IPC trap 14.  unicorn hands
    the hook the *page* of a data access, so a data fault reports the page's
    address (a fetch fault reports RIP when RIP is on the faulting page).

Time and preemption
    The CPU runs in slices of translated blocks counted by a tiny C block
    hook (built with the host C compiler on first use into a cache
    directory, loaded with ctypes; a Python hook when no compiler is found).
    Each executed block costs ``CostModel.guest_block`` ns.  A slice never
    runs past the core's bound: the next pending event or the end of the
    thread's quantum (plus at most one block), so the interleaving with
    other cores and interrupts is exact and every run is the same.

System calls (alien threads)
    ``syscall`` stops the CPU (RIP already after the instruction) and
    becomes exception IPC to the thread's exception handler with label
    :data:`SYSCALL_LABEL` (``Proto.SYS_EXCEPTION``, -4) and the registers
    in seL4's UnknownSyscall order, :data:`REGS`: rax rbx rcx rdx rsi rdi rbp
    r8-r15 rip rsp rflags fs_base gs_base (20 words).  A reply with label 0
    resumes the thread; its words, if any, set a prefix of :data:`REGS` (one
    word sets rax -- the usual return value; 16 words set rip too).  Any
    other reply label kills the thread (as for every exception IPC).

    The call is delivered from inside unicorn's syscall hook: the kernel
    charges the blocks run so far, sends the exception IPC and runs its
    scheduling loop for the native threads (the handler) until the caller is
    the thread to run next; if the reply only set registers below RIP and
    the address space is unchanged, the hook writes them and emulation goes
    on without leaving ``emu_start`` (DESIGN.md measures 2-4x more calls
    per second that way).  A handler that blocks, a reply that moves RIP, a
    pending TLB flush, an event due or another guest thread stops emulation
    instead, and the kernel's outer loop goes on from the same state:
    ``Kernel.guest_inhook = False`` gives the same run, stopping every time.

Other CPU exceptions
    Exception IPC (label -5) in the kernel's usual format, words (trapno,
    code, RIP, system calls made), then the address (page fault 14 and
    general protection on a non-canonical address; else 0) and the 20
    registers of :data:`REGS` (25 words, as seL4's UserException carries
    the registers: enough for a signal frame): divide error 0, int3 3 (RIP
    after the int3), invalid opcode 6 (``ud2``), general protection 13
    (non-canonical address, a privileged instruction, port I/O), page fault 14 (also when the pager
    refused it), 0xff when ex_regs' TRIGGER_EXCEPTION asked for it (before
    the thread next runs guest code).  The reply works as for system calls: label 0 resumes at
    RIP (or wherever the reply's registers say).

User mode
    Guest code runs at CPL 3 (entered once per instance with ``sysretq``), so
    privileged instructions raise general protection as on hardware; port I/O,
    which unicorn lets user mode do, is made to fault by hooks on ``in`` and
    ``out``; ``rdtsc``/``rdtscp`` fault too (CR4.TSD) and are answered in the
    hook with simulated time; after each exception the CPU's double-fault
    bookkeeping is cleared, so a handler that survives one meets the next as
    the same exception.  A thread starts with Linux's x87 control word and
    MXCSR; ``ThreadOp.GUEST_FPU`` reads and writes its x87/SSE state.

Host memory
    At most ``Kernel.guest_cpus_max`` unicorn instances serve tasks (and
    ``guest_pool_max`` wait in the pool), each with a translation buffer of
    ``TCG_BUFFER``: past the bound, the least recently run instance serves
    the next task (:func:`cpu_of`).

Limits (for now): a native write into a frame that still holds translated
code of a guest is not noticed unless the mapping changes.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import struct
import sys
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unicorn import (
    UC_ARCH_X86,
    UC_ERR_INSN_INVALID,
    UC_ERR_OK,
    UC_HOOK_BLOCK,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_TLB_FILL,
    UC_MODE_64,
    UC_PROT_ALL,
    UC_PROT_EXEC,
)
from unicorn import x86_const as X
from unicorn.unicorn_const import UC_CTL_IO_WRITE, UC_CTL_TB_FLUSH, UC_CTL_TLB_FLUSH, UC_TLB_VIRTUAL
from unicorn.unicorn_py3.arch.types import uc_hook_h
from unicorn.unicorn_py3.unicorn import HOOK_TLB_FILL_CFUNC, uclib
from unicorn.unicorn_py3.unicorn import Uc as _Uc

from l4sim.kernel.abi import (
    INVALID_CAP,
    L4_CALL_DONE,
    L4_CALL_ENTRY,
    MSG_WORDS,
    MSGTAG_ERROR,
    PROTO_ALLOW_SYSCALL,
    RECV,
    SEND,
    TRAP_L4_CALL,
    Fpage,
    IpcErr,
    MemRights,
    Proto,
    msgtag,
    msgtag_fields,
    timeout_decode_us,
)
from l4sim.kernel.objects import EXC_ALIEN_CALL, TS, IpcGate, Thread
from l4sim.kernel.traps import Ipc, Msg
from l4sim.kernel.vspace import (
    PF_FETCH,
    PF_PRESENT,
    PF_WRITE,
    TRAP_GP,
    TRAP_PAGE_FAULT,
    first_missing,
    read_frames,
    write_frames,
)
from l4sim.machine.events import PRIO_CORE

if TYPE_CHECKING:
    from l4sim.kernel.kernel import Core, Kernel
    from l4sim.kernel.objects import Task
    from l4sim.kernel.vspace import MemMap

#: the registers of a system-call message, in seL4's UnknownSyscall order
REGS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13",
        "r14", "r15", "rip", "rsp", "rflags", "fs_base", "gs_base")
REG_IDS = tuple(getattr(X, "UC_X86_REG_" + r.upper()) for r in REGS)
RIP_INDEX = REGS.index("rip")
_NREGS = len(REGS)
#: protocol label of a guest system call's exception IPC
SYSCALL_LABEL = int(Proto.SYS_EXCEPTION)
#: trap number recorded in traces for a system call
TRAP_SYSCALL = 0x80
TRAP_DIVIDE = 0
TRAP_BREAKPOINT = 3
TRAP_INVALID_OPCODE = 6
#: the exception ex_regs' TRIGGER_EXCEPTION raises (L4Linux's "triggered exception" 0xff)
TRAP_TRIGGER = 0xFF
#: rflags of a new thread: IF and the reserved bit 1
RFLAGS_INIT = 0x202
#: the selectors of user mode (Linux's __USER_CS and __USER_DS): guest code runs at CPL 3
USER_CS, USER_DS = 0x33, 0x2B
#: the x87 control word, the x87 tag word (every register empty) and MXCSR a new thread
#: starts with -- what Linux's exec gives a process (``fninit`` and the SSE default)
FPCW_INIT, FPTAG_EMPTY, MXCSR_INIT = 0x37F, 0xFFFF, 0x1F80
#: the MXCSR bits a guest may set (the mask an FXSAVE image reports)
MXCSR_MASK = 0xFFFF
#: words of a thread's x87/SSE state: the first 416 bytes of an FXSAVE image (control,
#: status and tag words, the last instruction and operand, MXCSR, ST0-ST7, XMM0-XMM15)
FPU_WORDS = 52
#: the translation buffer of one unicorn instance (unicorn's default is 1 GiB): it bounds the
#: host memory an instance can take; when it is full unicorn drops its translations and goes on
TCG_BUFFER = 32 << 20
_MSR_EFER, _MSR_STAR, _EFER_SCE, _CR4_TSD = 0xC0000080, 0xC0000081, 1, 4

# unicorn access types of the TLB-fill hook
_READ, _WRITE, _FETCH = 16, 17, 18
#: L4 rights (X 1, W 2, R 4) -> unicorn perms (READ 1, WRITE 2, EXEC 4)
_PERMS = tuple((4 if r & 1 else 0) | (2 if r & 2 else 0) | (1 if r & 4 else 0) for r in range(8))
_NEED = {_READ: 1, _WRITE: 2, _FETCH: 4}
#: emulation runs until this address: never reached by user code.  unicorn
#: looks up the page of ``UNTIL - 1`` when it stops; that page is answered
#: with a private page of ``hlt`` instructions outside RAM.
UNTIL = 0xFFFF_FFFF_FFFF_F000
_TRAP_VPN = (UNTIL - 1) >> 12
#: QEMU's TLB: its first size (CPU_TLB_DYN_DEFAULT_BITS 8), how many fills beyond a guess of
#: its size make a flush worth while (the flush costs at most the guess in refills), and the
#: size past which it is not grown this way (2^16 entries: 256 MiB, the default machine's RAM)
_TLB_START = 256
_TLB_GROW = 4
_TLB_MAX = 1 << 16
#: the longest slice, in blocks (a bound on one emu_start)
MAX_SLICE = 1 << 22
#: why the CPU stopped
_STOP_NONE, _STOP_SYSCALL, _STOP_INTR, _STOP_DELIVERED = 0, 1, 2, 3
#: what a blocked guest thread waits for
WAIT_NONE, WAIT_REGS, WAIT_PAGER = 0, 1, 2
#: an alien L4 call: waiting for the handler's verdict, then for the call the kernel performs
WAIT_ALIEN, WAIT_L4 = 3, 4
#: the registers of an alien L4 call (see :meth:`GuestThread._l4_perform`)
_RAX, _RDX, _RSI, _RDI, _R8 = (REGS.index(r) for r in ("rax", "rdx", "rsi", "rdi", "r8"))

_FPAGE_ALL_MEMORY = Fpage.all_memory()
_CALL = SEND | RECV
_PROTO_PAGE_FAULT = int(Proto.PAGE_FAULT)
#: a page fault's receive window: the whole address space
_RCV_ALL_MEMORY = (_FPAGE_ALL_MEMORY,)
_DEAD = TS.DEAD

_BLOCK_C = r"""
#include <stdint.h>
/* l4sim guest executor: count translated blocks, stop the CPU at the budget */
struct l4sim_budget { int64_t left; int64_t used; int (*stop)(void *); };
void l4sim_block(void *uc, uint64_t addr, uint32_t size, void *data) {
    struct l4sim_budget *b = (struct l4sim_budget *)data;
    (void)addr; (void)size;
    b->used++;
    if (--b->left <= 0) b->stop(uc);
}
"""
#: the name of the built hook in the cache directory: a checksum of its source
_BLOCK_KEY = f"{zlib.crc32(_BLOCK_C.encode()):08x}"


class _Budget(ctypes.Structure):
    _fields_ = (("left", ctypes.c_int64), ("used", ctypes.c_int64), ("stop", ctypes.c_void_p))


_HOOK_CODE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
_HOOK_INTR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
_HOOK_SYSCALL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_TLB_FLUSH = (UC_CTL_IO_WRITE << 30) | UC_CTL_TLB_FLUSH
_TB_FLUSH = (UC_CTL_IO_WRITE << 30) | UC_CTL_TB_FLUSH
_STOP_ADDR = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
_unpack_regs = struct.Struct(f"<{len(REGS)}Q").unpack_from
#: pack_into for the first n registers, by n
_PACK = [struct.Struct(f"<{n}Q").pack_into for n in range(len(REGS) + 1)]
#: the same library without the binding's ``argtypes``: called with prepared ``c_void_p``
#: arguments, a register batch costs a third of the call through ``uclib`` (its argument
#: conversion dominates); only for calls whose arguments are pointers and small ints
_raw = ctypes.CDLL(uclib._name)
_raw_read_batch = _raw.uc_reg_read_batch
_raw_write_batch = _raw.uc_reg_write_batch
_raw_reg_read = _raw.uc_reg_read
_context_size = _raw.uc_context_size
_context_size.restype = ctypes.c_size_t
_HOOK_IN = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p)
_HOOK_OUT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32,
                             ctypes.c_void_p)
#: the registers of a thread's x87/SSE state, as unicorn names them (FP0-FP7 are the physical
#: x87 registers, not ST(i))
_FPU_REGS = (X.UC_X86_REG_FPCW, X.UC_X86_REG_FPSW, X.UC_X86_REG_FPTAG, X.UC_X86_REG_FOP, X.UC_X86_REG_FIP,
             X.UC_X86_REG_FDP, X.UC_X86_REG_MXCSR,
             *(getattr(X, f"UC_X86_REG_FP{i}") for i in range(8)),
             *(getattr(X, f"UC_X86_REG_XMM{i}") for i in range(16)))
_NFPU = len(_FPU_REGS)
_FPU_HEAD = struct.Struct("<HHBxHQQII")
_FPU_IMAGE = struct.Struct(f"<{FPU_WORDS}Q")
#: one buffer of 16 bytes per register of _FPU_REGS, for the raw batch calls
_fpu_vals = (ctypes.c_uint8 * (16 * _NFPU))()
_fpu_ids = (ctypes.c_int * _NFPU)(*_FPU_REGS)
_fpu_ptrs = (ctypes.c_void_p * _NFPU)(*[ctypes.addressof(_fpu_vals) + 16 * i for i in range(_NFPU)])
_raw_ctx_read_batch = _raw.uc_context_reg_read_batch
_raw_ctx_write_batch = _raw.uc_context_reg_write_batch
#: a guest thread's register context (unicorn's CPU state, x87/SSE included), charged to the
#: thread's factory as kernel memory when it becomes a guest thread
GUEST_CONTEXT_SIZE = 8192
#: where unicorn keeps, in a saved context, the exception it last raised (-1: none), found by
#: :func:`_probe_old_exception`; None before the first guest CPU, -1 when not found
_old_exception_at: int | None = None
#: the order in which guest CPUs last ran (the least recent serves the next task, see cpu_of)
_lru = itertools.count()
#: unicorn instances alive in this process, and the most there have been (what bounds the
#: host memory the executor takes: see cpu_of)
live_instances = 0
peak_instances = 0
#: flushes made to let an instance's TLB grow (see _TLB_GROW)
tlb_grown = 0


# ----------------------------------------------------------------- the block counter
def _cache_dir() -> Path:
    env = os.environ.get("L4SIM_CACHE")
    if env:
        return Path(env)
    home = Path.home() / ".cache" / "l4sim"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    import tempfile

    return Path(tempfile.gettempdir()) / f"l4sim-{os.getuid() if hasattr(os, 'getuid') else 0}"


def _compiler() -> list[str] | None:
    import importlib.util
    import shutil

    for cc in ("gcc", "cc", "clang"):
        path = shutil.which(cc)
        if path:
            return [path]
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "cc"]
    return None


_lib: Any = None
_lib_tried = False
#: how the block budget is counted: "c" or "python" (after the first guest CPU)
block_counter = ""


def _block_lib() -> Any:
    """The compiled block hook (a ctypes CDLL), built on first use; None without a compiler.

    It is named after its source alone, so once built a run loads it without looking for a
    compiler (or importing what building needs)."""
    global _lib, _lib_tried
    if _lib_tried:
        return _lib
    _lib_tried = True
    d = _cache_dir()
    so = d / f"guest_block_{_BLOCK_KEY}.so"
    try:
        if not so.exists():
            import subprocess

            cc = _compiler()
            if cc is None:
                return None
            d.mkdir(parents=True, exist_ok=True)
            src = d / f"guest_block_{_BLOCK_KEY}.{os.getpid()}.c"
            tmp = d / f"guest_block_{_BLOCK_KEY}.{os.getpid()}.so"
            src.write_text(_BLOCK_C)
            try:
                subprocess.run([*cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True,
                               capture_output=True, timeout=120)
            except subprocess.SubprocessError:
                return None
            finally:
                src.unlink(missing_ok=True)
            os.replace(tmp, so)
        _lib = ctypes.CDLL(str(so))
        _lib.l4sim_block  # noqa: B018  (the symbol must be there)
    except (OSError, AttributeError):
        _lib = None
    return _lib


def _python_block(uc: int, addr: int, size: int, data: int) -> None:
    b = _Budget.from_address(data)
    b.used += 1
    b.left -= 1
    if b.left <= 0:
        uclib.uc_emu_stop(uc)


_PY_BLOCK = _HOOK_CODE(_python_block)


def _hook_add(uch: Any, htype: int, fn: Any, data: Any, *extra: Any) -> None:
    h = uc_hook_h()
    err = uclib.uc_hook_add(uch, ctypes.byref(h), htype, ctypes.cast(fn, ctypes.c_void_p), data,
                            ctypes.c_uint64(1), ctypes.c_uint64(0), *extra)
    if err != UC_ERR_OK:
        raise RuntimeError(f"unicorn hook_add failed: {err}")


# ------------------------------------------------------------------ per-task CPU
class GuestCPU:
    """One unicorn instance for the guest threads of one task."""

    def __init__(self, kernel: Kernel, task: Task) -> None:
        global block_counter, live_instances, peak_instances
        live_instances += 1
        peak_instances = max(peak_instances, live_instances)
        mem = kernel.machine.mem
        self.kernel = kernel
        self.task: Task | None = task
        #: the task's page table (``{}`` while the CPU waits in the kernel's pool)
        self.pages: dict[int, MemMap] = task.vspace.pages
        #: frames this instance may hold translated code from (each watched in
        #: ``kernel.code_watch``): emptied by a code flush
        self.code_frames: set[int] = set()
        self.uc: Any = _Uc(UC_ARCH_X86, UC_MODE_64)
        uc = self.uc
        self.uch: Any = uc._uch
        uc.ctl_set_tcg_buffer_size(TCG_BUFFER)  # before anything makes unicorn set itself up
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        uc.mem_map_ptr(0, mem.size, UC_PROT_ALL, mem.host_address(0))
        # the private page behind UNTIL - 1 (see UNTIL); outside RAM, never a frame
        self.trap_paddr = mem.size
        uc.mem_map(self.trap_paddr, 0x1000, UC_PROT_EXEC)
        uc.mem_write(self.trap_paddr, b"\xf4" * 0x1000)
        #: the CPU state a new guest thread starts from (user mode, Linux's x87/SSE state:
        #: see :meth:`_enter_user_mode`), saved once the hooks are in place;
        #: ``scratch_ctx`` and ``io_ctx`` hold the state while an exception is forgotten and
        #: at a port access (see :meth:`_port_io`)
        self.reset_ctx, self.scratch_ctx, self.io_ctx = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        for ctx in (self.reset_ctx, self.scratch_ctx, self.io_ctx):
            if uclib.uc_context_alloc(self.uch, ctypes.byref(ctx)) != UC_ERR_OK:
                raise RuntimeError("unicorn context_alloc failed")
        #: a port access stopped the CPU: the state before it is in ``io_ctx``
        self.io_trap = False
        #: when this instance last ran a slice (the least recent one serves a new task first)
        self.used_at = 0
        self.nframes = mem.nframes
        self.owner: GuestThread | None = None
        #: the task died while this CPU's emulation ran: close when it returns
        self.closing = False
        self.tlb_stale = False
        self.tb_stale = False
        #: TLB fills since the last flush, and what QEMU's TLB is taken to hold (see _TLB_GROW)
        self.fills = 0
        self.tlb_guess = _TLB_START
        #: a frame translated from may have changed since the last code flush
        self.code_dirty = False
        #: pages instructions were fetched from since the last code flush
        self.code_vpns: set[int] = set()
        self.stop = _STOP_NONE
        #: (kernel, core, thread) while emulation runs: what the syscall hook needs
        self.running: tuple[Kernel, Core, Thread] | None = None
        #: an exception raised inside a hook, re-raised once emulation has stopped
        self.hook_error: BaseException | None = None
        self.intno = 0
        self.fault: tuple[int, int, bool] | None = None  # (vaddr, access, present)
        self.budget = _Budget(0, 0, _STOP_ADDR)
        self._regs = (ctypes.c_int * len(REGS))(*REG_IDS)
        self._vals = (ctypes.c_uint64 * len(REGS))()
        base = ctypes.addressof(self._vals)
        self._ptrs = (ctypes.c_void_p * len(REGS))(*[base + 8 * i for i in range(len(REGS))])
        self._rip = ctypes.c_uint64()
        # prepared arguments of the raw register calls (see ``_raw``)
        self._h: ctypes.c_void_p | None = ctypes.c_void_p(self.uch.value)
        self._pregs = ctypes.c_void_p(ctypes.addressof(self._regs))
        self._pptrs = ctypes.c_void_p(ctypes.addressof(self._ptrs))
        self._prip = ctypes.c_void_p(ctypes.addressof(self._rip))
        nframes = self.nframes
        perms_of = _PERMS
        need_of = _NEED
        code = self.code_vpns
        frames = self.code_frames
        watch = kernel.code_watch
        trap_paddr = self.trap_paddr

        def fill(h: Any, vaddr: int, access: int, entry: Any, data: Any) -> bool:
            self.fills += 1
            vpn = vaddr >> 12
            m = self.pages.get(vpn)
            if m is not None:
                perms = perms_of[m.rights & 7]
                if perms & need_of[access]:
                    pfn = m.pfn
                    if pfn >= nframes:  # device memory: not in this CPU's physical map
                        self.fault = (vaddr, -access, True)
                        return False
                    if perms & UC_PROT_EXEC:  # the entry lets code be fetched (and translated)
                        code.add(vpn)
                        if pfn not in frames:
                            frames.add(pfn)
                            w = watch.get(pfn)
                            if w is None:
                                watch[pfn] = {self}
                            else:
                                w.add(self)
                    e = entry.contents
                    e.paddr = pfn << 12
                    e.perms = perms
                    return True
            elif vpn == _TRAP_VPN and access == _FETCH:
                e = entry.contents
                e.paddr = trap_paddr
                e.perms = UC_PROT_EXEC
                return True
            self.fault = (vaddr, access, m is not None)
            return False

        def syscall(h: Any, data: Any) -> None:
            run = self.running
            if run is None or not run[0].guest_inhook:
                self.stop = _STOP_SYSCALL
                uclib.uc_emu_stop(h)
                return
            try:
                if self.owner is not None and self.owner.syscall_in_hook(*run):
                    return  # answered: emulation goes on
            except BaseException as exc:  # ctypes would swallow it: re-raised after emu_start
                self.hook_error = exc
            self.stop = _STOP_DELIVERED
            uclib.uc_emu_stop(h)

        def intr(h: Any, intno: int, data: Any) -> None:
            if intno == TRAP_GP and self.running is not None and self._rdtsc():
                return  # emulated: the guest goes on
            self.stop = _STOP_INTR
            self.intno = intno
            uclib.uc_emu_stop(h)

        def port_in(h: Any, port: int, size: int, data: Any) -> int:
            self._port_io(h)
            return 0

        def port_out(h: Any, port: int, size: int, value: int, data: Any) -> None:
            self._port_io(h)

        # keep the C callables alive as long as the instance
        self._cbs = (HOOK_TLB_FILL_CFUNC(fill), _HOOK_SYSCALL(syscall), _HOOK_INTR(intr), _HOOK_IN(port_in),
                     _HOOK_OUT(port_out))
        _hook_add(self.uch, UC_HOOK_TLB_FILL, self._cbs[0], None)
        _hook_add(self.uch, UC_HOOK_INSN, self._cbs[1], None, ctypes.c_int(X.UC_X86_INS_SYSCALL))
        _hook_add(self.uch, UC_HOOK_INTR, self._cbs[2], None)
        _hook_add(self.uch, UC_HOOK_INSN, self._cbs[3], None, ctypes.c_int(X.UC_X86_INS_IN))
        _hook_add(self.uch, UC_HOOK_INSN, self._cbs[4], None, ctypes.c_int(X.UC_X86_INS_OUT))
        lib = _block_lib()
        if lib is not None:
            block_counter = "c"
            _hook_add(self.uch, UC_HOOK_BLOCK, lib.l4sim_block, ctypes.byref(self.budget))
        else:
            if block_counter != "python":
                warnings.warn("l4sim: no C compiler found; guest preemption counts blocks in Python "
                              "(much slower)", RuntimeWarning, stacklevel=2)
            block_counter = "python"
            _hook_add(self.uch, UC_HOOK_BLOCK, _PY_BLOCK, ctypes.byref(self.budget))
        self._enter_user_mode()
        uclib.uc_context_save(self.uch, self.reset_ctx)
        task.vspace.on_change.append(self._changed)

    def _enter_user_mode(self) -> None:
        """Put the CPU into the state a Linux process starts in: user mode (CPL 3, code
        selector USER_CS), so ``cli``, ``hlt``, ``rdmsr``, moves to control registers and the
        other privileged instructions raise general protection as on hardware; ``rdtsc``
        faulting too (CR4.TSD), so that the kernel answers it with simulated time
        (:meth:`_rdtsc`); the x87 control word 0x37f with an empty register stack and MXCSR
        0x1f80 (unicorn resets both to 0).

        unicorn has no call that sets the privilege level: the CPU executes ``sysretq``
        once (from the private page behind UNTIL), which drops to CPL 3 with the selectors
        of MSR_STAR.  The first instance also finds where unicorn keeps the last exception
        (:func:`_probe_old_exception`)."""
        uc = self.uc
        uc.msr_write(_MSR_EFER, uc.msr_read(_MSR_EFER) | _EFER_SCE)
        uc.msr_write(_MSR_STAR, (USER_CS - 16) << 48)  # sysret: CS = base + 16, SS = base + 8
        uc.reg_write(X.UC_X86_REG_CR4, uc.reg_read(X.UC_X86_REG_CR4) | _CR4_TSD)
        trap_va = _TRAP_VPN << 12
        uc.mem_write(self.trap_paddr, b"\x48\x0f\x07\xfa")  # sysretq; cli
        uc.reg_write(X.UC_X86_REG_RCX, UNTIL)
        uc.reg_write(X.UC_X86_REG_R11, RFLAGS_INIT)
        b = self.budget
        b.left, b.used = MAX_SLICE, 0
        uclib.uc_emu_start(self.uch, trap_va, UNTIL, 0, 0)
        if uc.reg_read(X.UC_X86_REG_CS) != USER_CS or uc.reg_read(X.UC_X86_REG_RIP) != UNTIL:
            raise RuntimeError("unicorn did not enter user mode")
        if _old_exception_at is None:
            _probe_old_exception(self, trap_va + 3)
        uc.mem_write(self.trap_paddr, b"\xf4" * 4)
        uclib.uc_ctl(self.uch, _TB_FLUSH)
        uc.reg_write(X.UC_X86_REG_FPCW, FPCW_INIT)
        uc.reg_write(X.UC_X86_REG_FPTAG, FPTAG_EMPTY)
        uc.reg_write(X.UC_X86_REG_MXCSR, MXCSR_INIT)
        b.left, b.used = 0, 0
        self.stop = _STOP_NONE
        self.fault = None

    def _clear_exception(self) -> None:
        """Forget the exception the CPU just reported.  unicorn's hook takes the place of the
        CPU's delivery and so never clears what the CPU remembers for double-fault
        detection: without this, a second general protection (or divide error) in the same
        thread would come as a double fault, a third stop the CPU."""
        at = _old_exception_at
        if at is None or at < 0:
            return
        ctx = self.scratch_ctx
        uclib.uc_context_save(self.uch, ctx)
        ctypes.c_int32.from_address((ctx.value or 0) + at).value = -1
        uclib.uc_context_restore(self.uch, ctx)

    def _code_at(self, va: int, n: int) -> bytes | None:
        """``n`` bytes of the running task's code at ``va`` (None when a page is not mapped)."""
        mem = self.kernel.machine.mem
        out = bytearray()
        for a in range(va, va + n):
            m = self.pages.get(a >> 12)
            if m is None or m.pfn >= self.nframes:
                return None
            out.append(mem.frame(m.pfn)[a & 0xFFF])
        return bytes(out)

    def _rdtsc(self) -> bool:
        """A general protection raised by ``rdtsc`` or ``rdtscp`` (CR4.TSD, see
        :meth:`_enter_user_mode`), answered here, inside the hook: the time stamp counter
        reads the simulated time of the core in nanoseconds (a 1 GHz counter), including
        the blocks run so far in this slice; ``rdtscp`` also gives the core's number in
        rcx (TSC_AUX, as Linux sets it).  False: another instruction faulted."""
        rip = self.rip()
        code = self._code_at(rip, 3)
        if code is None:
            return False
        if code[:2] == b"\x0f\x31":
            n = 2
        elif code == b"\x0f\x01\xf9":
            n = 3
        else:
            return False
        run = self.running
        assert run is not None
        k, core, _ = run
        tsc = core.time + self.budget.used * k.costs.guest_block
        self._clear_exception()
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_RAX, tsc & 0xFFFF_FFFF)
        uc.reg_write(X.UC_X86_REG_RDX, (tsc >> 32) & 0xFFFF_FFFF)
        if n == 3:
            uc.reg_write(X.UC_X86_REG_RCX, core.id)
        uc.reg_write(X.UC_X86_REG_RIP, rip + n)
        return True

    def _port_io(self, h: Any) -> None:
        """``in``, ``out``, ``ins`` or ``outs``: unicorn does not check the I/O permission of
        user mode, so the hook makes them fault as the CPU would (general protection, RIP on
        the instruction).  The hook runs in the middle of a translated block, which goes on
        to its end: the state before the instruction is saved, every memory access from
        here on faults (an empty page table, the TLB flushed), no system call is delivered,
        and :meth:`GuestThread.run` restores the saved state and raises the exception."""
        if not self.io_trap:
            self.io_trap = True
            uclib.uc_context_save(h, self.io_ctx)
            self.running = None
            self.pages = {}
            uclib.uc_ctl(h, _TLB_FLUSH)
        uclib.uc_emu_stop(h)

    def close(self) -> None:
        """The task died: keep the instance in the kernel's pool for the next task (its
        translated code stays valid, see :meth:`assign`), or free it when the pool is full
        (deferred while its emulation runs)."""
        if self.running is not None:
            self.closing = True  # inside this CPU's own hook: run() closes it when emu_start returns
            return
        if self.uch is None:
            return
        task = self.task
        if task is not None and self._changed in task.vspace.on_change:
            task.vspace.on_change.remove(self._changed)
        self.task = None
        self.pages = {}
        self.owner = None
        # the task's mappings went before this (each one a ``_changed``): that asks for a code
        # flush only because addresses were unmapped; a frame that changed asked through
        # ``code_stale``
        self.tb_stale = self.code_dirty
        pool = self.kernel.guest_pool
        if len(pool) < self.kernel.guest_pool_max:
            pool.append(self)
            return
        self.free()

    def free(self) -> None:
        """Free the unicorn instance for good."""
        global live_instances
        if self.uch is None:
            return
        live_instances -= 1
        self._unwatch()
        self._free_contexts()
        self.uc._Uc__finalizer()  # the binding's own uc_close, run once
        self.uc = None
        self.uch = None
        self._h = None
        self.owner = None

    def _free_contexts(self) -> None:
        for name in ("reset_ctx", "scratch_ctx", "io_ctx"):
            ctx = getattr(self, name, None)
            if ctx is not None and ctx.value:
                uclib.uc_context_free(ctx)  # plain memory: safe whenever the collector runs this
                setattr(self, name, ctypes.c_void_p())

    def __del__(self) -> None:
        global live_instances
        if getattr(self, "uch", None) is not None:  # collected without free(): the binding closes it
            live_instances -= 1
        self._free_contexts()

    def assign(self, task: Task) -> None:
        """Serve ``task`` (a pooled instance taken by a new task).

        What the instance translated for earlier tasks is kept: unicorn finds
        a translation by virtual address *and* the physical frame behind it,
        so it is used again only where the new task runs the same frames at
        the same addresses (a forked shell's children run the shell's own
        text).  A frame whose contents may have changed since -- written by a
        native program, or mapped writable and unmapped again -- flushed the
        translations already (:meth:`Kernel.code_written`).  The TLB is
        flushed before the first slice: the page table is another one.
        """
        self.task = task
        self.pages = task.vspace.pages
        self.owner = None
        self.closing = False
        self.tlb_stale = True
        self.code_vpns.clear()
        self.fault = None
        task.vspace.on_change.append(self._changed)

    def evict(self) -> None:
        """Stop serving this task, which keeps its threads' register contexts (the next of
        its threads to run takes an instance again, see :func:`cpu_of`): the instance is
        handed to another task.  Its translations stay, as for a pooled instance."""
        owner = self.owner
        if owner is not None:
            uclib.uc_context_save(self.uch, owner.ctx)
            self.owner = None
        task = self.task
        if task is not None:
            if self._changed in task.vspace.on_change:
                task.vspace.on_change.remove(self._changed)
            self.kernel.guest_cpus.pop(task.kid, None)
        self.task = None
        self.pages = {}
        self.tb_stale = self.code_dirty  # as in close(): only a changed frame asks for a flush

    def code_stale(self) -> None:
        """A frame this CPU translated code from may have changed: flush before running on."""
        self.tlb_stale = True
        self.tb_stale = True
        self.code_dirty = True

    def _unwatch(self) -> None:
        """Forget the frames watched for this CPU (its translations are gone)."""
        watch = self.kernel.code_watch
        for pfn in self.code_frames:
            w = watch.get(pfn)
            if w is not None:
                w.discard(self)
                if not w:
                    del watch[pfn]
        self.code_frames.clear()

    def _changed(self, vpn: int) -> None:
        self.tlb_stale = True
        if vpn in self.code_vpns:
            self.tb_stale = True

    # --- registers (batched through the C API)
    def read_regs(self, skip: int = 0) -> tuple[int, ...]:
        """The registers of REGS, RIP advanced by ``skip`` (an instruction not yet retired)."""
        _raw_read_batch(self._h, self._pregs, self._pptrs, _NREGS)
        if skip:
            self._vals[RIP_INDEX] += skip
        return _unpack_regs(self._vals)  # ~10x faster than tuple() over the ctypes array

    def write_regs(self, words: tuple[int, ...]) -> None:
        """Set the first ``len(words)`` registers of REGS (at most all of them)."""
        n = len(words)
        if n == 1:  # rax alone: the common system-call reply
            self._vals[0] = words[0]
        else:
            if n > _NREGS:
                n = _NREGS
                words = words[:n]
            _PACK[n](self._vals, 0, *words)
        _raw_write_batch(self._h, self._pregs, self._pptrs, n)

    def rip(self) -> int:
        _raw_reg_read(self._h, X.UC_X86_REG_RIP, self._prip)
        return self._rip.value

    def switch_to(self, g: GuestThread) -> None:
        """Make ``g``'s registers the CPU's (saving the previous owner's)."""
        if self.owner is g:
            return
        if self.owner is not None:
            uclib.uc_context_save(self.uch, self.owner.ctx)
        uclib.uc_context_restore(self.uch, g.ctx)
        self.owner = g


def cpu_of(kernel: Kernel, task: Task) -> GuestCPU:
    """The task's guest CPU, made on first use (from the kernel's pool of dead tasks' CPUs when
    it has one); when the task dies it goes back to the pool or is freed.

    The kernel has at most ``Kernel.guest_cpus_max`` instances serving tasks (one more
    when a task is made while the only instance it could take is running: the one whose
    system call makes it), and ``guest_pool_max`` pooled ones: an instance costs megabytes
    of host memory, so a guest that makes thousands of tasks (a fork bomb) must not make
    thousands of instances.  Past the bound the instance that ran least recently, and is not
    running, serves the new task (:meth:`GuestCPU.evict`): like a machine's few CPUs and
    TLBs shared by many address spaces.  Simulated time does not depend on it: only the
    host's work of translating code again."""
    cpus = kernel.guest_cpus
    cpu: GuestCPU | None = cpus.get(task.kid)
    if cpu is None:
        if not task.alive:
            raise ValueError("a dead task has no guest CPU")
        pool = kernel.guest_pool
        if pool:
            cpu = pool.pop()
            cpu.assign(task)
        else:
            victim = None
            if len(cpus) >= kernel.guest_cpus_max:
                victim = min((c for c in cpus.values() if c.running is None and not c.closing),
                             key=lambda c: c.used_at, default=None)
            if victim is not None:
                victim.evict()
                victim.assign(task)
                cpu = victim
            else:
                cpu = GuestCPU(kernel, task)
        cpus[task.kid] = cpu
    return cpu


def _probe_old_exception(cpu: GuestCPU, cli_va: int) -> None:
    """Find where a saved unicorn context holds the CPU's last exception (see
    :meth:`GuestCPU._clear_exception`): the one 32-bit field that reads -1 before a general
    protection (``cli`` at ``cli_va`` in user mode) and 13 after it.  Not found (another
    unicorn): -1, and exceptions are not forgotten."""
    global _old_exception_at
    _old_exception_at = -1
    size = _context_size(cpu._h)
    before, after = ctypes.c_void_p(), ctypes.c_void_p()
    for ctx in (before, after):
        if uclib.uc_context_alloc(cpu.uch, ctypes.byref(ctx)) != UC_ERR_OK:
            raise RuntimeError("unicorn context_alloc failed")
    try:
        uclib.uc_context_save(cpu.uch, before)
        cpu.stop = _STOP_NONE
        cpu.budget.left = MAX_SLICE
        uclib.uc_emu_start(cpu.uch, cli_va, UNTIL, 0, 0)
        if cpu.stop == _STOP_INTR and cpu.intno == TRAP_GP:
            uclib.uc_context_save(cpu.uch, after)
            a, b = ctypes.string_at(before.value or 0, size), ctypes.string_at(after.value or 0, size)
            gp = TRAP_GP.to_bytes(4, "little")
            hits = [i for i in range(0, size - 3, 4) if a[i:i + 4] == b"\xff" * 4 and b[i:i + 4] == gp]
            if len(hits) == 1:
                _old_exception_at = hits[0]
        uclib.uc_context_restore(cpu.uch, before)
    finally:
        for ctx in (before, after):
            uclib.uc_context_free(ctx)


# ---------------------------------------------------------------- per-thread state
class GuestThread:
    """The register context of one guest thread and what it waits for."""

    __slots__ = ("blocks", "cpu", "ctx", "fault_addr", "rip", "slices", "trigger", "waiting")

    def __init__(self, cpu: GuestCPU, regs: dict[str, int]) -> None:
        bad = set(regs) - set(REGS)
        if bad:
            raise ValueError(f"unknown guest registers: {sorted(bad)}")
        if "rip" not in regs:
            raise ValueError("a guest thread needs a start address (rip)")
        self.cpu = cpu
        self.ctx = ctypes.c_void_p()
        if uclib.uc_context_alloc(cpu.uch, ctypes.byref(self.ctx)) != UC_ERR_OK:
            raise RuntimeError("unicorn context_alloc failed")
        if cpu.owner is not None:
            uclib.uc_context_save(cpu.uch, cpu.owner.ctx)
            cpu.owner = None
        # every register from the CPU's reset state (SSE, x87, segments, flags), not from the
        # thread that ran last on this instance (possibly another task's, see GuestCPU.assign)
        uclib.uc_context_restore(cpu.uch, cpu.reset_ctx)
        init = {"rflags": RFLAGS_INIT, **regs}
        cpu.write_regs(tuple(init.get(r, 0) & 0xFFFF_FFFF_FFFF_FFFF for r in REGS))
        uclib.uc_context_save(cpu.uch, self.ctx)
        cpu.owner = self
        self.rip = regs["rip"]
        self.waiting = WAIT_NONE
        #: the address of the last page fault (reported if the pager refuses it)
        self.fault_addr = 0
        #: ex_regs TRIGGER_EXCEPTION: raise exception IPC (TRAP_TRIGGER) before running on
        self.trigger = False
        #: translated blocks executed
        self.blocks = 0
        #: times emulation was entered (``emu_start``) for this thread
        self.slices = 0

    def __del__(self) -> None:
        ctx = getattr(self, "ctx", None)
        if ctx is not None and ctx.value:
            uclib.uc_context_free(ctx)

    # ------------------------------------------------------------------ x87/SSE state
    def _fpu_batch(self, write: bool) -> None:
        """Read (or write) the registers of _FPU_REGS from (into) the thread: the CPU when the
        thread's registers are loaded there, else its saved context."""
        cpu = self.cpu
        ptrs = ctypes.cast(_fpu_ptrs, ctypes.c_void_p)
        ids = ctypes.cast(_fpu_ids, ctypes.c_void_p)
        if cpu.owner is self and cpu.uch is not None:
            err = (_raw_write_batch if write else _raw_read_batch)(cpu._h, ids, ptrs, _NFPU)
        else:
            err = (_raw_ctx_write_batch if write else _raw_ctx_read_batch)(self.ctx, ids, ptrs, _NFPU)
        if err != UC_ERR_OK:
            raise RuntimeError(f"unicorn register batch failed: {err}")

    def fpu_state(self) -> tuple[int, ...]:
        """The thread's x87/SSE state as :data:`FPU_WORDS` words: the first 416 bytes of the
        image ``fxsave64`` writes (control, status and abridged tag words, last opcode,
        instruction and operand, MXCSR and its mask, ST0-ST7, XMM0-XMM15) -- what Linux puts
        in a signal frame's fpstate."""
        ctypes.memset(_fpu_vals, 0, ctypes.sizeof(_fpu_vals))
        self._fpu_batch(False)
        raw = bytes(_fpu_vals)
        fcw, fsw, tag, fop = (int.from_bytes(raw[16 * i:16 * i + 2], "little") for i in range(4))
        fip, fdp = (int.from_bytes(raw[16 * i:16 * i + 8], "little") for i in (4, 5))
        mxcsr = int.from_bytes(raw[96:100], "little")
        top = (fsw >> 11) & 7
        ftw = sum(1 << i for i in range(8) if (tag >> 2 * i) & 3 != 3)  # abridged: not empty
        st = b"".join(raw[112 + 16 * ((top + i) & 7):][:10] + bytes(6) for i in range(8))
        xmm = raw[240:240 + 256]
        image = _FPU_HEAD.pack(fcw, fsw, ftw, fop, fip, fdp, mxcsr, MXCSR_MASK) + st + xmm
        return _FPU_IMAGE.unpack(image)

    def set_fpu_state(self, words: tuple[int, ...]) -> None:
        """Load the thread's x87/SSE state from :data:`FPU_WORDS` words in the layout of
        :meth:`fpu_state` (MXCSR bits outside the mask are dropped)."""
        image = _FPU_IMAGE.pack(*words)
        fcw, fsw, ftw, fop, fip, fdp, mxcsr, _ = _FPU_HEAD.unpack_from(image)
        top = (fsw >> 11) & 7
        tag = sum(3 << 2 * i for i in range(8) if not ftw >> i & 1)  # empty, else "valid"
        vals = bytearray(16 * _NFPU)
        for i, v in enumerate((fcw, fsw, tag, fop & 0x7FF, fip, fdp, mxcsr & MXCSR_MASK)):
            vals[16 * i:16 * i + 8] = v.to_bytes(8, "little")
        for i in range(8):  # ST(i) is physical register (top + i) & 7
            phys = (top + i) & 7
            vals[112 + 16 * phys:112 + 16 * phys + 10] = image[32 + 16 * i:32 + 16 * i + 10]
        vals[240:240 + 256] = image[160:416]
        ctypes.memmove(_fpu_vals, bytes(vals), len(vals))
        self._fpu_batch(True)

    # ------------------------------------------------------------------ running
    def run(self, k: Kernel, core: Core, th: Thread) -> bool:
        """Run ``th`` (the current thread of ``core``) for one slice, then handle why it stopped;
        True when the whole slice ran (the kernel then lets the event loop look around)."""
        cpu = self.cpu
        if cpu.uch is None or cpu.task is not th.task:
            task = th.task
            if task is None or not task.alive:  # the task's CPU is gone (it died)
                k._kill(th, None, "task deleted")
                return False
            cpu = self.cpu = cpu_of(k, task)  # its instance went to another task meanwhile
        cpu.used_at = next(_lru)
        cpu.switch_to(self)
        if self.waiting and not self._resume(k, core, th):
            return False
        if self.trigger:
            self.trigger = False
            self._exception(k, core, th, TRAP_TRIGGER, 0, (), "triggered by ex_regs")
            return False
        if cpu.tlb_stale:
            cpu.tlb_stale = False
            cpu.fills = 0
            uclib.uc_ctl(cpu.uch, _TLB_FLUSH)
            if cpu.tb_stale:
                cpu.tb_stale = False
                cpu.code_dirty = False
                cpu.code_vpns.clear()
                cpu._unwatch()
                uclib.uc_ctl(cpu.uch, _TB_FLUSH)
        blk = k.costs.guest_block
        b = cpu.budget
        self._slice(k, core, th, b, blk)
        cpu.stop = _STOP_NONE
        cpu.fault = None
        cpu.running = (k, core, th)
        if not self.slices and k.guest_first_run is not None:
            k.guest_first_run(th)
        self.slices += 1
        try:
            err = uclib.uc_emu_start(cpu.uch, self.rip, UNTIL, 0, 0)
        finally:
            cpu.running = None
        if cpu.closing:
            cpu.closing = False
            cpu.close()
        if cpu.hook_error is not None:
            exc, cpu.hook_error = cpu.hook_error, None
            raise exc
        ran = b.used - 1 if b.left <= 0 else b.used
        self.blocks += ran
        if cpu.fills >= _TLB_GROW * cpu.tlb_guess and cpu.tlb_guess < _TLB_MAX:
            # the task touches more pages than QEMU's TLB holds: each miss is a call of
            # ``fill``.  QEMU sizes its TLB only when it is flushed (doubling it when it was
            # more than 70% full), so flush it: it grows towards the working set
            global tlb_grown
            cpu.tlb_guess *= 2
            cpu.tlb_stale = True
            tlb_grown += 1
        if ran:
            k._charge(core, th, ran * blk)
        if cpu.io_trap:  # port I/O: general protection at the instruction (GuestCPU._port_io)
            cpu.io_trap = False
            assert cpu.task is not None
            cpu.pages = cpu.task.vspace.pages
            uclib.uc_context_restore(cpu.uch, cpu.io_ctx)
            self.rip = cpu.rip()
            self._exception(k, core, th, TRAP_GP, 0, (), "port I/O in user mode")
            return False
        stop = cpu.stop
        if stop == _STOP_DELIVERED:
            return False  # the system call was delivered inside the hook; the kernel's loop goes on
        rip = self.rip = cpu.rip()
        if stop == _STOP_SYSCALL:
            self._syscall(k, core, th)
        elif stop == _STOP_INTR:
            no = cpu.intno
            cpu._clear_exception()
            if rip >> 12 == _TRAP_VPN:  # it jumped into the private page behind UNTIL
                self._page_fault(k, core, th, rip, _FETCH, False)
            elif no == TRAP_L4_CALL:  # ``int 0x30``: an L4 system call, RIP after the instruction
                self._l4_entry(k, core, th)
            else:
                self._exception(k, core, th, no, 0, (), f"cpu exception {no}")
        elif cpu.fault is not None:
            addr, access, present = cpu.fault
            if access < 0:
                self._exception(k, core, th, TRAP_PAGE_FAULT, PF_PRESENT, (addr,),
                                "device memory is not mapped into guest CPUs")
            elif 1 << 47 <= addr < (1 << 64) - (1 << 47):
                self._exception(k, core, th, TRAP_GP, 0, (addr,), f"non-canonical address {addr:#x}")
            else:
                if access == _FETCH and rip >> 12 == addr >> 12:
                    addr = rip  # the exact address is known for a fetch
                self._page_fault(k, core, th, addr, access, present)
        elif err == UC_ERR_INSN_INVALID:
            self._exception(k, core, th, TRAP_INVALID_OPCODE, 0, (), "invalid opcode")
        elif err != UC_ERR_OK:
            self._exception(k, core, th, TRAP_GP, err, (), f"unicorn error {err}")
        elif b.left <= 0:
            return True  # the slice is over
        elif rip == UNTIL or (rip - 1) >> 12 == _TRAP_VPN:
            at = UNTIL if rip == UNTIL else rip - 1
            self.rip = at
            self._page_fault(k, core, th, at, _FETCH, False)
        else:  # the CPU halted without an exception it reported (user mode cannot halt it)
            self._exception(k, core, th, TRAP_GP, 0, (), "cpu halted")
        return False

    @staticmethod
    def _slice(k: Kernel, core: Core, th: Thread, b: _Budget, blk: int) -> None:
        """Set the block budget: up to the core's next event or the end of the quantum.

        Other cores' steps may be overrun by up to ``CostModel.guest_skew``
        (interrupts, timeouts and releases never are): with several busy
        cores each slice then runs at least that long instead of a block or
        two -- the skew between cores that multi-core simulators accept,
        deterministic all the same.  A guest on one core sees another core's
        IPC at most that late.
        """
        span = th.quantum_left
        heap = k.events._heap
        if heap and heap[0][0] - core.time < span:
            t0 = core.time
            limit = t0 + min(span, k.costs.guest_skew)
            span = heap[0][0] - t0
            if span < limit - t0:
                # run ahead over other cores' steps (PRIO_CORE events) before ``limit``, up to
                # the first event that is not one: a pruned walk of the heap's top entries
                ahead = limit
                todo = [0]
                n = len(heap)
                while todo:
                    i = todo.pop()
                    e = heap[i]
                    if e[0] >= ahead:
                        continue
                    ev = e[3]
                    if not ev.cancelled and (e[1] != PRIO_CORE or ev.args[0] is core):
                        ahead = e[0]
                        continue
                    i = 2 * i + 1
                    if i < n:
                        todo.append(i)
                        if i + 1 < n:
                            todo.append(i + 1)
                if ahead - t0 > span:
                    span = ahead - t0
        n = -(-span // blk) if span > 0 else 1
        if n > MAX_SLICE:
            n = MAX_SLICE
        b.left = n + 1  # the block hook stops the CPU before the (n+1)th block runs
        b.used = 0

    def syscall_in_hook(self, k: Kernel, core: Core, th: Thread) -> bool:
        """Deliver a ``syscall`` from inside the CPU's hook; True when it was answered and
        the thread may go on without leaving emulation (DESIGN.md, "Guest executor").

        The blocks run so far are charged, the exception IPC is sent exactly as
        after a stop, and the kernel's loop runs the native threads (the
        handler) until this thread is the one to run next.  It resumes in the
        hook only when nothing needs the outer path: the reply sets no more
        than the registers before RIP, the address space is unchanged (no TLB
        or code flush pending) and the thread still has this context.
        Otherwise emulation stops and the outer loop continues from the very
        same state, so both ways give the same run.
        """
        cpu = self.cpu
        b = cpu.budget
        ran = b.used
        b.used = 0
        blk = k.costs.guest_block
        if ran:
            self.blocks += ran
            k._charge(core, th, ran * blk)
        self._syscall(k, core, th, 2)
        if (not k._loop(core, th) or th.guest is not self or cpu.owner is not self or cpu.tlb_stale
                or self.trigger):
            return False
        msg = th.resume
        if type(msg) is not Msg or len(msg.words) > RIP_INDEX:
            return False
        th.resume = None
        self.waiting = WAIT_NONE
        if msg.words:
            cpu.write_regs(msg.words)
        self._slice(k, core, th, b, blk)
        return True

    def _resume(self, k: Kernel, core: Core, th: Thread) -> bool:
        """Take the answer to a fault; False when it raised another fault instead."""
        msg = th.resume
        th.resume = None
        waiting, self.waiting = self.waiting, WAIT_NONE
        if type(msg) is not Msg:
            return True
        if waiting == WAIT_L4:  # the L4 call the kernel performed has ended
            self._l4_done(k, core, th, msg)
            return False
        if waiting == WAIT_PAGER:
            if msg.error or msg.proto < 0:  # the pager refused
                self._exception(k, core, th, TRAP_PAGE_FAULT, msg.error or -msg.proto, (self.fault_addr,),
                                "page fault not resolved")
                return False
            return True
        if msg.words:
            self.cpu.write_regs(msg.words)
            if len(msg.words) > RIP_INDEX:
                self.rip = msg.words[RIP_INDEX]
        if waiting == WAIT_ALIEN and msg.proto == PROTO_ALLOW_SYSCALL:  # the handler lets it pass
            self._l4_perform(k, core, th)
            return False
        return True

    # ---------------------------------------------------------------- faults
    def _syscall(self, k: Kernel, core: Core, th: Thread, skip: int = 0) -> None:
        """``syscall``: exception IPC with the registers to the handler.

        Inside the hook RIP is still on the instruction (unicorn adds its
        length when the hook returns): ``skip`` is that length, so the
        message says where the thread goes on, as after a stop.
        """
        regs = self.cpu.read_regs(skip)
        self.rip = regs[RIP_INDEX]
        th.traps += 1
        k.exceptions += 1
        k._charge(core, th, k.costs.exception)
        dest = _target(k, th, th.exc_slot)
        if k.tracer is not None:
            k._trace(core.id, "exception", th.kid, trapno=TRAP_SYSCALL, code=regs[0],
                     handler=dest.kid if dest is not None else -1, why="syscall")
        if dest is None or dest.state is _DEAD:
            th.faulted = True
            k._kill(th, None, "system call without an exception handler")
            return
        th.exc_pending = 1
        self.waiting = WAIT_REGS
        k._fast_call(core, th, th.exc_slot, SYSCALL_LABEL, regs)

    def _exception(self, k: Kernel, core: Core, th: Thread, trapno: int, code: int,
                   extra: tuple[int, ...], why: str) -> None:
        """Exception IPC: (trapno, code, RIP, traps, address or 0, the 20 registers of REGS) --
        seL4's UserException carries the registers too, so a handler can build a signal frame."""
        th.ip = self.rip
        self.waiting = WAIT_REGS
        k._exception(core, th, trapno, code, (extra[0] if extra else 0, *self.cpu.read_regs()), why)

    # ------------------------------------------------------------ alien L4 calls
    def _l4_entry(self, k: Kernel, core: Core, th: Thread) -> None:
        """``int 0x30``: an L4 system call.  The thread is alien, so the kernel does not perform
        it but asks the exception handler first (Fiasco's alien threads): exception IPC with
        trap TRAP_L4_CALL, code L4_CALL_ENTRY and the registers.  A reply labelled
        PROTO_ALLOW_SYSCALL lets the call pass (:meth:`_l4_perform`); label 0 resumes the
        thread with the reply's registers as if the call had been made (the handler answered
        it itself); any other label kills it, as for every exception."""
        th.traps += 1
        self._exception(k, core, th, TRAP_L4_CALL, L4_CALL_ENTRY, (), "L4 system call")
        if th.exc_pending:  # still waiting for the verdict (a failed exception IPC killed it)
            th.exc_pending = EXC_ALIEN_CALL
            self.waiting = WAIT_ALIEN

    def _l4_perform(self, k: Kernel, core: Core, th: Thread) -> None:
        """Perform the L4 call the handler let pass, as ``th`` itself: its capabilities are
        those of its own task.  The registers (an l4sim encoding close to Fiasco's amd64 one,
        docs/kernel.md "Alien L4 calls"): rax the message tag (label << 16, words in bits 0-5;
        typed items are not supported), rdx the capability index (slot << 12, bit 11 for
        none) ORed with the IPC flags (SEND 1, RECV 2, OPEN_WAIT 4, REPLY 8), rdi the
        address of the thread's UTCB (its message registers, 8 bytes each, in the task's
        memory), r8 the timeouts (Fiasco's l4_timeout_t: send << 16 | receive).  The message
        registers are read from memory that must be mapped readable (no page fault is
        resolved: the handler makes sure of it), else the call fails with SEMSGCUT."""
        regs = self.cpu.read_regs()
        label, n, items, _flags = msgtag_fields(regs[_RAX])
        dest, utcb, to = regs[_RDX], regs[_RDI], regs[_R8]
        self.waiting = WAIT_L4
        task = th.task
        assert task is not None
        if items or not self._utcb_ok(k, task, utcb, 8 * n, MemRights.R):
            k._fail_now(core, th, IpcErr.SEMSGCUT)
            return
        data = read_frames(k.machine.mem, task, utcb, 8 * n) if n else b""
        words = tuple(int.from_bytes(data[i:i + 8], "little") for i in range(0, 8 * n, 8))
        snd, rcv = timeout_decode_us((to >> 16) & 0xFFFF), timeout_decode_us(to & 0xFFFF)
        cap = 0 if dest & INVALID_CAP else dest >> 12
        k._sys_ipc(core, th, Ipc(cap, dest & 0xF, label, words, timeout=None if snd is None else snd * 1000,
                                 rcv_timeout=None if rcv is None else rcv * 1000))

    def _l4_done(self, k: Kernel, core: Core, th: Thread, msg: Msg) -> None:
        """The performed L4 call ended with ``msg``: its words go into the UTCB (which must be
        mapped writable, else REMSGCUT and none do), rax gets the result tag (the error flag
        0x8000 when it failed), rsi the label the message came with, rdx the IPC error code
        (0: none); then the handler hears of it -- exception IPC with code L4_CALL_DONE and
        the new registers -- and its reply (label 0) resumes the thread."""
        words, err = msg.words, msg.error
        task = th.task
        assert task is not None
        regs = list(self.cpu.read_regs())
        utcb = regs[_RDI]
        if words and self._utcb_ok(k, task, utcb, 8 * len(words), MemRights.W):
            data = b"".join(w.to_bytes(8, "little") for w in words)
            write_frames(k.machine.mem, task, utcb, data)
            if k.code_watch:
                k._written(task, utcb, len(data))
        elif words:
            words, err = (), err or IpcErr.REMSGCUT
        regs[_RAX] = msgtag(msg.proto, len(words), 0, MSGTAG_ERROR if err else 0)
        regs[_RSI] = msg.label
        regs[_RDX] = int(err)
        self.cpu.write_regs(tuple(regs[:_RDI]))
        self._exception(k, core, th, TRAP_L4_CALL, L4_CALL_DONE, (), "L4 system call done")

    def _utcb_ok(self, k: Kernel, task: Task, addr: int, n: int, need: int) -> bool:
        """``n`` bytes at ``addr`` of ``task`` are RAM mapped with ``need``."""
        if n == 0:
            return True
        if n > 8 * MSG_WORDS or not 0 <= addr < (1 << 64) - n:
            return False
        if first_missing(task.vspace, addr, n, need, None) is not None:
            return False
        pages = task.vspace.pages
        return all(pages[vpn].pfn < self.cpu.nframes for vpn in range(addr >> 12, ((addr + n - 1) >> 12) + 1))

    def _page_fault(self, k: Kernel, core: Core, th: Thread, addr: int, access: int, present: bool) -> None:
        th.pfaults += 1
        k._charge(core, th, k.costs.page_fault)
        write = access == _WRITE
        word0 = ((addr & ~7) | (PF_WRITE if write else 0) | (PF_PRESENT if present else 0)
                 | (PF_FETCH if access == _FETCH else 0))
        dest = _target(k, th, th.pager_slot)
        if k.tracer is not None:
            k._trace(core.id, "pagefault", th.kid, addr=addr, write=int(write), present=int(present),
                     pager=dest.kid if dest is not None else -1)
        if dest is None or dest.state is _DEAD:
            self._exception(k, core, th, TRAP_PAGE_FAULT, word0 & 7, (addr,), "page fault without a pager")
            return
        self.waiting = WAIT_PAGER
        self.fault_addr = addr
        k._fast_call(core, th, th.pager_slot, _PROTO_PAGE_FAULT, (word0, self.rip), _RCV_ALL_MEMORY)


def _target(k: Kernel, th: Thread, slot: int) -> Thread | None:
    e = k._lookup(th, slot) if slot else None
    if e is None:
        return None
    obj = e.obj
    if type(obj) is Thread:
        return obj
    if type(obj) is IpcGate:
        return obj.thread
    return None


def create_guest_thread(k: Kernel, task: Task, name: str, regs: dict[str, int], exc_handler_slot: int = 0,
                        pager_slot: int = 0, prio: int = 1, cpu: int = 0) -> Thread:
    """See :meth:`l4sim.kernel.kernel.Kernel.create_guest_thread`."""
    if not 0 <= cpu < len(k.cores):
        raise ValueError(f"no cpu {cpu}")
    g = GuestThread(cpu_of(k, task), regs)
    th = k.create_thread(name, task, task.factory)
    th.guest = g
    th.exc_slot = exc_handler_slot
    th.pager_slot = pager_slot
    th.prio = prio
    th.cpu = cpu
    th.cpus = 1 << cpu
    th.started_at = k.now()
    k._make_ready(th)
    return th
