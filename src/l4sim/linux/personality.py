"""The Linux personality: a native program that runs static x86-64 Linux executables.

The kernel knows nothing of Linux.  The personality is an ordinary native
program (it uses system calls only) and is, for each Linux process it
starts, the process's **pager** and **exception handler**:

- a process is a task with one guest thread (started with ex_regs and
  ``EX_REGS_GUEST``), whose pager and exception-handler slot hold an IPC
  gate bound to the personality's thread, labelled with the pid;
- ``syscall`` arrives as exception IPC (label ``Proto.SYS_EXCEPTION``, the
  registers in seL4's UnknownSyscall order) and is dispatched through the
  xv6-style table in :mod:`l4sim.linux.syscalls`; the reply's first word is
  rax (``arch_prctl`` also sets fs_base through the reply);
- page faults below brk, in mmap regions and on the stack get a zeroed frame
  (a map item in the reply); any other fault, and CPU exceptions, kill the
  process with the matching signal.

Memory: the personality takes blocks of frames from sigma0
(``REQ_FPAGE_ANY``) into a pool region of its own address space and maps
single pages of the pool into its processes (``task.map`` while loading, a
map item when paging).  It knows every page it mapped, so it reads and
writes a process's memory through its own mapping of the same frame.

Stand-ins for servers that do not exist yet (documented in docs/linux.md):
the executable's bytes are an argument (the file-system server), the
process's stdout/stderr go to a host ``write`` callable (the console
server), and the seed of the process's random bytes is an argument drawn
by the boot code from the machine's seeded generator.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from l4sim.kernel.abi import (
    EX_REGS_GUEST,
    SLOT_PAGER,
    Fpage,
    FpageType,
    MapItem,
    MemRights,
    Proto,
    ThreadOp,
)
from l4sim.linux.elf import PAGE, PF_R, PF_W, PF_X, Image
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, request
from l4sim.user.env import Env, Gate, TaskCap, ThreadCap

#: the personality's frame pool: blocks of POOL_BLOCK pages from sigma0, mapped here
POOL_BASE = 0x10_0000_0000
POOL_ORDER = 20  # 1 MiB blocks
#: user address-space layout of a process
STACK_TOP = 0x7FFF_FFFF_F000
STACK_SIZE = 8 << 20
MMAP_TOP = 0x7FF0_0000_0000
#: capability slot of the personality's gate in a process's task
SLOT_GATE = 8
#: priority and quantum of guest threads
GUEST_PRIO = 50
GUEST_QUANTUM = 10_000_000
#: signal numbers the personality reports
SIGILL, SIGTRAP, SIGFPE, SIGKILL, SIGSEGV = 4, 5, 8, 9, 11
SIGNAMES = {SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV"}
#: exception trap number -> signal
TRAP_SIGNAL = {0: SIGFPE, 3: SIGTRAP, 6: SIGILL, 13: SIGSEGV, 14: SIGSEGV}
#: the environment of a started program
DEFAULT_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "TERM=dumb", "LANG=C")

# auxiliary vector keys
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN = 23, 25, 26, 31


def _rights(flags: int) -> int:
    return (MemRights.R if flags & PF_R else 0) | (MemRights.W if flags & PF_W else 0) \
        | (MemRights.X if flags & PF_X else 0)


@dataclass
class Vma:
    start: int
    end: int
    rights: int
    name: str


@dataclass
class Proc:
    """One Linux process: a task with one guest thread."""

    pid: int
    name: str
    task: TaskCap
    thread: ThreadCap
    gate: Gate
    #: guest page number -> pool address of the frame behind it
    pages: dict[int, int] = field(default_factory=dict)
    vmas: list[Vma] = field(default_factory=list)
    brk_start: int = 0
    brk: int = 0
    mmap_next: int = MMAP_TOP
    status: int | None = None  # exit status, 128+N when killed by signal N
    syscalls: int = 0

    def vma(self, addr: int) -> Vma | None:
        for v in self.vmas:
            if v.start <= addr < v.end:
                return v
        return None


@dataclass
class Config:
    """What the boot code gives the personality (see the module docstring)."""

    image: Image
    argv: list[str]
    env: list[str] = field(default_factory=lambda: list(DEFAULT_ENV))
    seed: int = 0
    out: Callable[[int, bytes], None] = lambda fd, data: None
    strace: Callable[[str], None] | None = None
    result: list[int] = field(default_factory=list)  # the exit status is appended here
    stats: dict[str, Any] = field(default_factory=dict)


class Personality:
    """The server's state: frame pool, processes, counters."""

    def __init__(self, env: Env, cfg: Config) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.free: list[int] = []  # pool addresses
        self.dirty: set[int] = set()  # pool pages that held data once (zeroed on reuse)
        self.pool_next = POOL_BASE
        self.procs: dict[int, Proc] = {}
        self.next_pid = 1
        self.unimplemented: dict[int, int] = {}
        self.calls = 0

    # ------------------------------------------------------------------ frames
    async def alloc(self) -> int:
        """A zeroed frame of the pool (its address in our space)."""
        if not self.free:
            base = self.pool_next
            r = await request(self.env, SLOT_PAGER, REQ_FPAGE_ANY, Fpage.mem(0, POOL_ORDER),
                              Fpage.mem(base, POOL_ORDER))
            got = [f for f in r.items if type(f) is Fpage and f.kind == FpageType.MEMORY]
            if not r.ok or r.proto != 0 or not got:
                raise MemoryError("sigma0 has no more frames")
            self.pool_next += 1 << POOL_ORDER
            self.free.extend(reversed(range(base, base + (1 << POOL_ORDER), PAGE)))
        a = self.free.pop()
        if a in self.dirty:
            await self.env.mem.write(a, bytes(PAGE))
        return a

    def release(self, a: int) -> None:
        self.dirty.add(a)
        self.free.append(a)

    async def map_page(self, p: Proc, vaddr: int, rights: int) -> int:
        """A zeroed frame mapped at ``vaddr`` (page) in ``p``; returns its pool address."""
        a = await self.alloc()
        p.pages[vaddr >> 12] = a
        await p.task.map(self.env.task, Fpage.mem(a, 12, rights), vaddr)
        return a

    # ---------------------------------------------------------- process memory
    async def frame_of(self, p: Proc, addr: int, write: bool) -> int | None:
        """The pool address backing ``addr`` (demand-allocating in a VMA); None: EFAULT."""
        a = p.pages.get(addr >> 12)
        if a is None:
            v = p.vma(addr)
            if v is None or not v.rights & MemRights.R:
                return None
            try:
                a = await self.map_page(p, addr & ~0xFFF, v.rights)
            except MemoryError:
                return None
        elif write:
            v = p.vma(addr)
            if v is not None and not v.rights & MemRights.W:
                return None
        return a + (addr & 0xFFF)

    async def read(self, p: Proc, addr: int, n: int) -> bytes | None:
        out = bytearray()
        while n > 0:
            a = await self.frame_of(p, addr, False)
            if a is None:
                return None
            k = min(n, PAGE - (addr & 0xFFF))
            out += await self.env.mem.read(a, k)
            addr += k
            n -= k
        return bytes(out)

    async def read_str(self, p: Proc, addr: int, limit: int = 4096) -> bytes | None:
        out = bytearray()
        while len(out) < limit:
            k = PAGE - (addr & 0xFFF)
            chunk = await self.read(p, addr, k)
            if chunk is None:
                return None
            i = chunk.find(b"\0")
            if i >= 0:
                return bytes(out + chunk[:i])
            out += chunk
            addr += k
        return bytes(out)

    async def write(self, p: Proc, addr: int, data: bytes) -> bool:
        i = 0
        while i < len(data):
            a = await self.frame_of(p, addr + i, True)
            if a is None:
                return False
            k = min(len(data) - i, PAGE - ((addr + i) & 0xFFF))
            await self.env.mem.write(a, data[i : i + k])
            self.dirty.add(a & ~0xFFF)
            i += k
        return True

    async def unmap_range(self, p: Proc, start: int, end: int) -> None:
        for vpn in range(start >> 12, end >> 12):
            a = p.pages.pop(vpn, None)
            if a is not None:
                await self.env.task.unmap(Fpage.mem(a, 12, MemRights.RWX))
                self.release(a)

    # ------------------------------------------------------------- processes
    async def spawn(self, image: Image, argv: list[str], envp: list[str]) -> Proc:
        """A new process running ``image``: task, memory, initial stack, guest thread."""
        env = self.env
        pid = self.next_pid
        self.next_pid += 1
        name = argv[0].rsplit("/", 1)[-1] if argv else "a.out"
        task = await env.factory.create_task(name)
        th = await env.factory.create_thread(name)
        await th.control(bind=task)
        gate = await env.factory.create_gate(env.thread, label=pid << 2)
        await task.map(env.task, gate.fpage(), SLOT_GATE)
        await th.control(pager=SLOT_GATE, exc_handler=SLOT_GATE)
        p = Proc(pid, name, task, th, gate)
        self.procs[pid] = p
        # segments: pages shared by two segments get the union of their rights
        want: dict[int, int] = {}
        for s in image.segments:
            for va in range(s.vaddr & ~0xFFF, s.vaddr + s.memsz, PAGE):
                want[va] = want.get(va, 0) | _rights(s.flags)
            p.vmas.append(Vma(s.vaddr & ~0xFFF, (s.vaddr + s.memsz + PAGE - 1) & ~0xFFF,
                              _rights(s.flags), "elf"))
        frames: dict[int, int] = {}
        for va in sorted(want):
            frames[va] = await self.alloc()
        for s in image.segments:
            off = 0
            while off < len(s.data):
                va = s.vaddr + off
                k = min(len(s.data) - off, PAGE - (va & 0xFFF))
                a = frames[va & ~0xFFF] + (va & 0xFFF)
                await env.mem.write(a, s.data[off : off + k])
                off += k
        for va, a in frames.items():
            self.dirty.add(a)
            p.pages[va >> 12] = a
            await task.map(env.task, Fpage.mem(a, 12, want[va]), va)
        p.brk_start = p.brk = image.end
        p.vmas.append(Vma(p.brk_start, p.brk, MemRights.RW, "heap"))
        p.vmas.append(Vma(STACK_TOP - STACK_SIZE, STACK_TOP, MemRights.RW, "stack"))
        sp = await self._initial_stack(p, image, argv, envp)
        await env.scheduler.run_thread(th, GUEST_PRIO, GUEST_QUANTUM, 1)
        r = await th._op("ex_regs guest", ThreadOp.EX_REGS, image.entry, sp, EX_REGS_GUEST)
        assert r.proto == 0
        return p

    async def _initial_stack(self, p: Proc, image: Image, argv: list[str], envp: list[str]) -> int:
        """Write argc, argv, envp and auxv below STACK_TOP (Linux's layout); returns rsp."""
        blob = bytearray()
        top = STACK_TOP - 16  # a little space above everything

        def put(b: bytes) -> int:
            blob[:0] = b  # grows downwards
            return top - len(blob)

        rnd = bytes(self.rng.getrandbits(8) for _ in range(16))
        # strings: argv, envp, platform, execfn, random bytes (addresses fixed after layout)
        strings = [a.encode() + b"\0" for a in argv] + [e.encode() + b"\0" for e in envp]
        execfn = (argv[0] if argv else "a.out").encode() + b"\0"
        platform = b"x86_64\0"
        addr_execfn = put(execfn)
        addr_platform = put(platform)
        addrs = [put(s) for s in reversed(strings)][::-1]
        addr_rand = put(rnd)
        argv_a, env_a = addrs[: len(argv)], addrs[len(argv) :]
        aux = [(AT_PHDR, image.phdr), (AT_PHENT, image.phent), (AT_PHNUM, image.phnum),
               (AT_PAGESZ, PAGE), (AT_BASE, 0), (AT_FLAGS, 0), (AT_ENTRY, image.entry),
               (AT_UID, 0), (AT_EUID, 0), (AT_GID, 0), (AT_EGID, 0), (AT_PLATFORM, addr_platform),
               (AT_HWCAP, 0), (AT_CLKTCK, 100), (AT_SECURE, 0), (AT_RANDOM, addr_rand),
               (AT_HWCAP2, 0), (AT_EXECFN, addr_execfn), (AT_NULL, 0)]
        words = [len(argv), *argv_a, 0, *env_a, 0]
        for k, v in aux:
            words += [k, v]
        low = top - len(blob)
        sp = (low - 8 * len(words)) & ~0xF
        data = struct.pack(f"<{len(words)}Q", *words)
        pad = low - (sp + len(data))
        image_bytes = data + bytes(pad) + bytes(blob)
        assert sp + len(image_bytes) == top
        if not await self.write(p, sp, image_bytes):
            raise MemoryError("initial stack")
        return sp

    async def kill(self, p: Proc, status: int) -> None:
        """End ``p``: record its status, delete its objects, free its frames."""
        p.status = status
        env = self.env
        for cap in (p.thread, p.gate, p.task):
            await env.task.delete(cap.slot)
            env.free_slot(cap.slot)
        for a in p.pages.values():
            self.release(a)
        p.pages.clear()
        del self.procs[p.pid]
        self.cfg.result.append(status)

    # ------------------------------------------------------------- the loop
    async def serve(self) -> int:
        from l4sim.linux.syscalls import dispatch

        env = self.env
        cfg = self.cfg
        first = await self.spawn(cfg.image, cfg.argv, cfg.env)
        msg = await env.wait()
        while True:
            reply: tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None = None
            p = self.procs.get(msg.label >> 2) if not msg.error else None
            if p is not None:
                if msg.proto == Proto.SYS_EXCEPTION:
                    reply = await dispatch(self, p, msg.words)
                elif msg.proto == Proto.PAGE_FAULT:
                    reply = await self.page_fault(p, msg.words)
                elif msg.proto == Proto.EXCEPTION:
                    trap = msg.words[0] if msg.words else 13
                    w = msg.words
                    at = w[4] if trap == 14 and len(w) > 4 else w[2] if len(w) > 2 else 0
                    await self.signal_death(p, TRAP_SIGNAL.get(trap, SIGSEGV), at)
                else:
                    reply = (-38, (), ())
            if not self.procs and first.status is not None:
                self.cfg.stats.update(calls=self.calls, unimplemented=dict(self.unimplemented))
                return first.status
            if reply is None:
                msg = await env.wait()
            else:
                msg = await env.reply_and_wait(reply[0], *reply[1], items=reply[2])

    async def page_fault(self, p: Proc, w: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
        addr = w[0] & ~0xFFF
        present = w[0] & 1
        write = w[0] & 2
        v = p.vma(addr)
        if present or v is None or (write and not v.rights & MemRights.W):
            await self.signal_death(p, SIGSEGV, w[0] & ~7)
            return None
        a = p.pages.get(addr >> 12)
        if a is None:
            try:
                a = await self.alloc()
            except MemoryError:  # out of frames: what Linux's OOM killer would do
                await self.signal_death(p, SIGKILL, addr)
                return None
            p.pages[addr >> 12] = a
        return (0, (), (MapItem(Fpage.mem(a, 12, v.rights), snd_base=addr),))

    async def signal_death(self, p: Proc, sig: int, addr: int) -> None:
        if self.cfg.strace is not None:
            if sig != SIGKILL:
                self.cfg.strace(f"--- {SIGNAMES.get(sig, sig)} {{si_signo={SIGNAMES.get(sig, sig)}, "
                                f"si_addr={addr:#x}}} ---")
            self.cfg.strace(f"+++ killed by {SIGNAMES.get(sig, sig)} +++")
        await self.kill(p, 128 + sig)


async def personality(env: Env, cfg: Config) -> int:
    """The personality's program: start ``cfg``'s executable, serve it until it ends."""
    return await Personality(env, cfg).serve()
