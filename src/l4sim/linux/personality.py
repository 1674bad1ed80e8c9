"""The Linux personality: a native program that runs static x86-64 Linux executables.

The kernel knows nothing of Linux.  The personality is an ordinary native
program (it uses system calls only) and is, for each Linux process it
starts, the process's **pager** and **exception handler**:

- a process is a task; each of its threads is a guest thread of that task
  (started with ex_regs and ``EX_REGS_GUEST``) whose pager and
  exception-handler slot hold an IPC gate of its own, bound to the
  personality's thread and labelled with the thread's id (``tid << 2``), so
  every message names the Linux thread that sent it (the main thread's tid
  is the pid);
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
from typing import Any, cast

from l4sim.kernel.abi import (
    EX_REGS_GUEST,
    EX_REGS_TRIGGER_EXCEPTION,
    IP_UNCHANGED,
    SLOT_PAGER,
    Fpage,
    FpageType,
    MapItem,
    MemRights,
    Proto,
    ThreadOp,
)
from l4sim.linux.elf import PAGE, PF_R, PF_W, PF_X, Image, parse
from l4sim.runtime.console import Console, start_console
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, request
from l4sim.user.env import Env, Gate, TaskCap, ThreadCap

#: the personality's frame pool: blocks of POOL_BLOCK pages from sigma0, mapped here
POOL_BASE = 0x10_0000_0000
POOL_ORDER = 20  # 1 MiB blocks
#: user address-space layout of a process
STACK_TOP = 0x7FFF_FFFF_F000
STACK_SIZE = 8 << 20
MMAP_TOP = 0x7FF0_0000_0000
#: where a forked child starts: never mapped, so its first fault asks for its registers
FORK_RIP = STACK_TOP
#: capability slot of the personality's gate in a process's task
SLOT_GATE = 8
#: priority and quantum of guest threads
GUEST_PRIO = 50
GUEST_QUANTUM = 10_000_000
#: signal numbers the personality reports
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGKILL, SIGSEGV = 4, 5, 7, 8, 9, 11
SIGNAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", 6: "SIGABRT", SIGBUS: "SIGBUS",
            SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM",
            15: "SIGTERM", 10: "SIGUSR1", 12: "SIGUSR2"}
#: exception trap number -> signal
TRAP_SIGNAL = {0: SIGFPE, 3: SIGTRAP, 6: SIGILL, 13: SIGSEGV, 14: SIGSEGV}
#: the exception ex_regs' TRIGGER_EXCEPTION raises (kernel/guest.py)
TRAP_TRIGGER = 0xFF
#: the label of the terminal's receive interrupt (no thread's label: those are tid << 2)
KBD_LABEL = 1 << 62
#: the machine's UART line (machine/board.py: LINE_UART), the terminal's keyboard
LINE_UART = 1
#: the environment of a started program
DEFAULT_ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "TERM=dumb", "LANG=C")

# auxiliary vector keys
AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS, AT_ENTRY = 0, 3, 4, 5, 6, 7, 8, 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN = 23, 25, 26, 31


def _rights(flags: int) -> int:
    return (MemRights.R if flags & PF_R else 0) | (MemRights.W if flags & PF_W else 0) \
        | (MemRights.X if flags & PF_X else 0)


#: images whose read-only pages the page cache keeps (see Personality._text_pages)
TEXT_CACHE = 4
#: the rights bits as plain ints (a Flag operation costs a microsecond on the fault path)
_W, _X = int(MemRights.W), int(MemRights.X)


@dataclass
class Vma:
    """A range of a process's address space with the same rights and backing (Linux's
    vm_area_struct)."""

    start: int
    end: int
    rights: int
    name: str
    #: a private file mapping: the file's inode (a vfs.File) and the file offset of ``start``
    file: Any = None
    off: int = 0
    #: MAP_SHARED anonymous memory: its pages stay shared with forked children (no copy-on-write)
    shared: bool = False

    def __post_init__(self) -> None:
        self.rights = int(self.rights)  # a plain int: tested on every page fault

    def piece(self, start: int, end: int, rights: int | None = None) -> Vma:
        """The part [start, end) of this area (the file offset moves along), with ``rights``."""
        return Vma(start, end, self.rights if rights is None else rights, self.name, self.file,
                   self.off + start - self.start if self.file is not None else 0, self.shared)


@dataclass
class Acct:
    """What ``times``, ``getrusage`` and ``/proc/PID/stat`` report about a process."""

    #: simulated time the process was made
    start_ns: int = 0
    #: CPU time of its threads that are gone (ended, or replaced by execve): user and system
    cpu_ns: int = 0
    sys_ns: int = 0
    #: CPU times and page faults of its children that were reaped (and of theirs)
    child_cpu_ns: int = 0
    child_sys_ns: int = 0
    child_minflt: int = 0
    #: minor faults: pages it was given, zeroed, filled from a file or copied on write
    minflt: int = 0
    #: the most pages it had at once, and the most any of its reaped children had
    maxrss: int = 0
    child_maxrss: int = 0
    #: where the initial stack put argv's and envp's strings (start, end, start, end), and rsp
    args: tuple[int, int, int, int] = (0, 0, 0, 0)
    start_stack: int = 0
    #: programs it started (execve and the first one): a child that has exec'd leaves setpgid alone
    execs: int = 0


@dataclass
class LinuxThread:
    """One thread of a Linux process: a guest thread of the process's task with a gate of its own
    (Linux's task_struct, for the part that is not shared by the thread group)."""

    tid: int
    proc: Proc
    thread: ThreadCap
    #: the gate whose label (tid << 2) names this thread, and its slot in the process's task
    gate: Gate
    slot: int
    #: a call waiting for something (see syscalls.BLOCK) and the saved reply capability that answers it
    blocked: Any = None
    reply: Any = None
    #: blocked signals, signals sent to this thread (tgkill), the mask rt_sigsuspend replaced
    sigmask: int = 0
    pending: set[int] = field(default_factory=set)
    saved_mask: int | None = None
    #: registers the thread starts with (delivered by its first fault; see FORK_RIP)
    start_regs: tuple[int, ...] | None = None
    #: set_tid_address / CLONE_CHILD_CLEARTID: zeroed and futex-woken when the thread ends
    clear_tid: int = 0
    #: the page fault it made while its process was stopped (answered at SIGCONT)
    stop_fault: tuple[int, ...] | None = None
    #: sigaltstack: (ss_sp, ss_flags, ss_size); flags SS_DISABLE 2 when there is none
    altstack: tuple[int, int, int] = (0, 2, 0)


RLIM_INFINITY = (1 << 64) - 1
#: the limits a first process starts with (Linux's defaults): RLIMIT_STACK 3 8 MiB soft,
#: RLIMIT_NOFILE 7 1024/4096, RLIMIT_NPROC 6 and RLIMIT_SIGPENDING 11 as a small machine's;
#: every other resource unlimited
RLIMITS: dict[int, tuple[int, int]] = {
    **{r: (RLIM_INFINITY, RLIM_INFINITY) for r in range(16)},
    3: (8 << 20, RLIM_INFINITY), 6: (7823, 7823), 7: (1024, 4096), 8: (8 << 20, 8 << 20),
    11: (7823, 7823), 12: (819200, 819200)}


@dataclass
class Proc:
    """One Linux process (a thread group): a task, its memory, files and signal dispositions;
    its threads are :class:`LinuxThread`s."""

    pid: int
    name: str
    task: TaskCap
    #: live threads by tid, in creation order (the main thread's tid is the pid)
    threads: dict[int, LinuxThread] = field(default_factory=dict)
    #: the thread whose call is being served: the calls' functions take the process, and this
    #: names the caller (its tid keys the waiter sets, it owns the signal mask)
    cur: LinuxThread = field(default=cast("LinuxThread", None))
    #: guest page number -> pool address of the frame behind it
    pages: dict[int, int] = field(default_factory=dict)
    vmas: list[Vma] = field(default_factory=list)
    acct: Acct = field(default_factory=Acct)
    brk_start: int = 0
    brk: int = 0
    mmap_next: int = MMAP_TOP
    status: int | None = None  # exit status, 128+N when killed by signal N
    syscalls: int = 0
    ppid: int = 0
    #: its parent ended and pid 1 took it: on Linux that is init, in no session of ours, so
    #: pid 1 does not keep its group from being orphaned (jobs.orphaned)
    adopted: bool = False
    pgid: int = 0
    sid: int = 0
    exe: str = ""
    #: the working directory (a vfs.Dir: the directory itself, not its path)
    cwd: Any = None
    umask: int = 0o022
    fds: dict[int, Any] = field(default_factory=dict)
    #: resource limits, RLIMIT_* -> (soft, hard); fork copies them, exec keeps them
    rlimits: dict[int, tuple[int, int]] = field(default_factory=lambda: dict(RLIMITS))
    exit_code: int = 0
    term_sig: int = 0
    ended_seq: int = 0
    #: the signal the parent gets when this process ends (clone's exit signal; 0: none)
    exit_signal: int = 17
    #: the main thread's exit status when it ended before the others (it is the process's)
    leader_status: int | None = None
    #: signal dispositions (shared by the threads): ignored, with a handler, the raw sigactions
    sigign: set[int] = field(default_factory=set)
    sighand: set[int] = field(default_factory=set)
    sigact: dict[int, bytes] = field(default_factory=dict)
    #: signals sent to the process, delivered to a thread that does not block them
    pending: set[int] = field(default_factory=set)
    #: tids waiting in wait4/waitid for a child of this process
    child_waiters: set[int] = field(default_factory=set)
    #: tids waiting for a signal (rt_sigsuspend, pause, futex waits)
    sig_waiters: set[int] = field(default_factory=set)
    #: the tid of the parent's thread waiting in vfork until this child execs or ends (0: none)
    vfork_waiter: int = 0
    #: capability slots of the task for the threads' gates: the next new one and freed ones
    next_slot: int = SLOT_GATE
    free_slots: list[int] = field(default_factory=list)
    #: threads created so far (the next one's core is this modulo the number of cores)
    spawned: int = 0
    #: stopped by SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU until SIGCONT (linux/signals.py): its pages
    #: are unmapped, so each thread stops at its next instruction and its fault is held
    stopped: bool = False
    #: what the parent's wait has not been told yet: the stop signal (WUNTRACED), a SIGCONT
    #: (WCONTINUED)
    stop_report: int = 0
    cont_report: bool = False
    #: continued, and the parent not yet sent SIGCHLD for it (it is, when the process runs)
    cont_notify: bool = False

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
    #: the file system's root and the program's path in it (None: an empty root with the program)
    root: Any = None
    exe: str = "/a.out"
    exe_bytes: bytes = b""
    #: the host's stdin: a chunk of bytes, b"" at end of file (the console server's input)
    stdin: Callable[[], bytes] = lambda: b""
    env: list[str] = field(default_factory=lambda: list(DEFAULT_ENV))
    seed: int = 0
    out: Callable[[int, bytes], None] = lambda fd, data: None
    strace: Callable[[str], None] | None = None
    result: list[int] = field(default_factory=list)  # the exit status is appended here
    stats: dict[str, Any] = field(default_factory=dict)
    #: the machine's RAM in bytes (what sysinfo and /proc/meminfo report as total)
    ram: int = 256 << 20
    #: signals typed at the console (the host's Ctrl-C appends 2), not yet sent
    interrupts: list[int] = field(default_factory=list)
    #: take the terminal's receive interrupt (the machine's UART line) for typed Ctrl-C/Ctrl-Z;
    #: needs the ICU capability (``linux run`` gives it; a personality in a scenario may not)
    keyboard: bool = False


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
        #: live threads by tid: the label of a message names one
        self.threads: dict[int, LinuxThread] = {}
        self.next_pid = 1
        #: futex wait queues: (pid, address) or (0, frame) -> waiters in arrival order (linux/threads.py)
        self.futexes: dict[tuple[int, int], list[Any]] = {}
        #: simulated cores (threads of a process are spread over them)
        self.ncores = 1
        self.unimplemented: dict[int, int] = {}
        self.calls = 0
        #: every process not yet reaped (zombies too); procs holds the live ones
        self.all: dict[int, Proc] = {}
        #: pool page -> number of processes sharing it (absent: one)
        self.refs: dict[int, int] = {}
        #: tids whose waiting call should run again
        self.runnable: list[int] = []
        self.stdin_buf = bytearray()
        self.stdin_eof = False
        #: the console server (the host's terminal), started by serve()
        self.console: Console | None = None
        #: (stream, bytes) written to the console, sent before the next reply
        self.console_out: list[tuple[int, bytes]] = []
        #: a read found no console input buffered: ask the console server, then wake these tids
        self.stdin_want = False
        self.stdin_waiters: set[int] = set()
        #: tids running guest code that a signal must interrupt (ex_regs TRIGGER_EXCEPTION)
        self.to_trigger: set[int] = set()
        self.seq = 0
        self.elf_cache: dict[bytes, Image] = {}
        #: the page cache of program text: for the images in ``elf_cache`` (the last TEXT_CACHE
        #: programs started, see :meth:`program`), the frames of their read-only pages
        #: (id(image) -> va -> pool address), each holding a reference
        self.text_cache: dict[int, dict[int, int]] = {}
        #: program pages a start took from the page cache instead of copying the file
        self.text_shared = 0
        #: MAP_SHARED pages of files: file -> {page index -> pool page} (each holding a
        #: reference), and what each held when last synchronised with the file's bytes
        self.file_pages: dict[Any, dict[int, int]] = {}
        self.file_shadow: dict[Any, dict[int, bytes]] = {}
        self.forks = 0
        self.cow_copies = 0
        #: tid -> simulated time its sleep or timeout ends
        self.sleepers: dict[int, int] = {}
        #: the thread being served: strace lines of threads other than tid 1 say "[pid N] "
        self.cur = 1
        if cfg.strace is not None:
            host_trace = cfg.strace
            cfg.strace = lambda line: host_trace(line if self.cur == 1 else f"[pid {self.cur}] {line}")
        from l4sim.linux.vfs import File, Vfs

        root = cfg.root if cfg.root is not None else Vfs.empty()
        self.vfs = Vfs(root, procs=self.all.get, pids=lambda: sorted(self.procs))
        if cfg.exe_bytes and self.vfs.walk(root, cfg.exe, None)[0] is None:
            Vfs.put(root, cfg.exe, File(cfg.exe_bytes, 0o755))  # the program, at its path
        if cfg.exe_bytes:
            self.elf_cache[cfg.exe_bytes] = cfg.image  # an exec of the same file: the same image

    def wall(self) -> int:
        """Seconds of the simulated wall clock (file times)."""
        return 1_767_225_600 + self.now_ns // 1_000_000_000

    now_ns = 0

    def wake(self, waiters: set[int]) -> None:
        """Run the waiting calls of the threads ``waiters`` (tids) again (after the current message)."""
        for tid in sorted(waiters):
            if tid not in self.runnable:
                self.runnable.append(tid)
        waiters.clear()

    def post(self, p: Proc, sig: int, t: LinuxThread | None = None) -> None:
        """Make ``sig`` pending in ``p`` (it has a handler, or is fatal), or in its thread ``t``;
        wake the threads that wait in a call and do not block it: the signal interrupts the
        wait (signals.interrupt)."""
        (p.pending if t is None else t.pending).add(sig)
        bit = 1 << (sig - 1)
        for th in (p.threads.values() if t is None else (t,)):
            if th.blocked is not None and not th.sigmask & bit and th.tid not in self.runnable:
                self.runnable.append(th.tid)
        self.wake(p.sig_waiters)
        if not p.stopped and sig in p.sighand:
            # a thread running guest code (in no call of ours) is made to enter the personality
            # to run the handler (fatal and stop signals: signals.doom)
            for th in (p.threads.values() if t is None else (t,)):
                if (th.blocked is None and th.reply is None and th.tid != self.cur
                        and not th.sigmask & bit):
                    self.to_trigger.add(th.tid)
                    if t is None:
                        break  # one thread of the process takes it

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

    def decref(self, a: int) -> None:
        """One process fewer shares pool page ``a``; the last one frees it."""
        n = self.refs.pop(a, 1) - 1
        if n > 1:
            self.refs[a] = n
        elif n <= 0:
            self.release(a)

    async def map_page(self, p: Proc, vaddr: int, rights: int) -> int:
        """A zeroed frame mapped at ``vaddr`` (page) in ``p``; returns its pool address."""
        a = await self.alloc()
        p.pages[vaddr >> 12] = a
        await p.task.map(self.env.task, Fpage.mem(a, 12, rights), vaddr)
        return a

    async def fresh_page(self, p: Proc, v: Vma, vaddr: int) -> int | None:
        """The first frame of page ``vaddr`` of ``v`` in ``p`` (not mapped yet): zeroed, or
        filled from ``v``'s file (the tail of the file's last page zeroed); None when the page
        lies wholly beyond the file's end (SIGBUS on Linux).  MemoryError when no frame is left."""
        data = b""
        node = v.file
        if node is not None:
            at = v.off + (vaddr & ~0xFFF) - v.start
            if at >= node.size():
                return None
            if node in self.file_pages:
                await self.pull_file(node)  # what shared mappings wrote is the file's
            if v.shared:  # the file's own page, the same frame in every shared mapping
                a = await self.file_page(node, at >> 12)
                self.refs[a] = self.refs.get(a, 1) + 1
                p.pages[vaddr >> 12] = a
                return a
            data = bytes(node.data[at : at + PAGE])
        a = await self.alloc()
        if data:
            await self.env.mem.write(a, data)
            self.dirty.add(a)
        p.pages[vaddr >> 12] = a
        p.acct.minflt += 1
        p.acct.maxrss = max(p.acct.maxrss, len(p.pages))
        return a

    # --- MAP_SHARED file pages: the file's bytes and the frames kept in step
    async def file_page(self, node: Any, idx: int) -> int:
        """The frame of page ``idx`` of file ``node`` that shared mappings map (made from the
        file's bytes on first use; the table holds a reference)."""
        frames = self.file_pages.setdefault(node, {})
        a = frames.get(idx)
        if a is None:
            data = bytes(node.data[idx * PAGE : (idx + 1) * PAGE]).ljust(PAGE, b"\0")
            a = await self.alloc()
            await self.env.mem.write(a, data)
            self.dirty.add(a)
            frames[idx] = a
            self.file_shadow.setdefault(node, {})[idx] = data
        return a

    async def pull_file(self, node: Any) -> None:
        """Copy what shared mappings wrote into ``node``'s bytes (never past its end); pages no
        process maps any more leave the table."""
        frames = self.file_pages.get(node)
        if frames is None:
            return
        shadow = self.file_shadow[node]
        data = node.data
        for idx, a in list(frames.items()):
            now = await self.env.mem.read(a, PAGE)
            if now != shadow[idx]:
                at = idx * PAGE
                if at < len(data):
                    n = min(PAGE, len(data) - at)
                    data[at : at + n] = now[:n]
                shadow[idx] = now
            if self.refs.get(a, 1) <= 1:  # only the table holds it
                del frames[idx], shadow[idx]
                self.decref(a)
        if not frames:
            del self.file_pages[node], self.file_shadow[node]

    async def push_file(self, node: Any) -> None:
        """Copy ``node``'s bytes into its shared pages where they changed (a write, truncate)."""
        frames = self.file_pages.get(node)
        if frames is None:
            return
        shadow = self.file_shadow[node]
        data = node.data
        for idx, a in frames.items():
            want = bytes(data[idx * PAGE : (idx + 1) * PAGE]).ljust(PAGE, b"\0")
            if want != shadow[idx]:
                await self.env.mem.write(a, want)
                shadow[idx] = want

    def fork_memory(self, parent: Proc, c: Proc) -> None:
        """``c``'s VMAs and the facts about its memory, copied from ``parent`` (fork); the
        pages follow (shared copy-on-write, after :meth:`populate_shared`)."""
        c.vmas = [v.piece(v.start, v.end) for v in parent.vmas]
        c.acct.args, c.acct.start_stack = parent.acct.args, parent.acct.start_stack

    async def populate_shared(self, p: Proc) -> None:
        """Give every page of ``p``'s shared anonymous areas a frame (before a fork), so that
        parent and child share each one from the start."""
        for v in p.vmas:
            if v.shared and v.file is None:  # a file's shared pages are in the file's table
                for va in range(v.start, v.end, PAGE):
                    if va >> 12 not in p.pages:
                        await self.fresh_page(p, v, va)

    async def cow_copy(self, p: Proc, vpn: int) -> int:
        """Give ``p`` its own copy of the shared page ``vpn`` (not mapped yet); its pool address."""
        a = p.pages[vpn]
        b = await self.alloc()
        await self.env.mem.write(b, await self.env.mem.read(a, PAGE))
        self.dirty.add(b)
        self.decref(a)
        p.pages[vpn] = b
        self.cow_copies += 1
        p.acct.minflt += 1
        return b

    # ---------------------------------------------------------- process memory
    async def frame_of(self, p: Proc, addr: int, write: bool) -> int | None:
        """The pool address backing ``addr`` (demand-allocating in a VMA, copying a shared
        page for a write); None: EFAULT."""
        vpn = addr >> 12
        a = p.pages.get(vpn)
        if a is None:
            v = p.vma(addr)
            if v is None or not v.rights & MemRights.R:
                return None
            try:
                a = await self.fresh_page(p, v, addr)
            except MemoryError:
                return None
            if a is None:
                return None
            await p.task.map(self.env.task, Fpage.mem(a, 12, v.rights), addr & ~0xFFF)
        elif write:
            v = p.vma(addr)
            if v is not None and not v.rights & MemRights.W:
                return None
            if self.refs.get(a, 1) > 1 and not (v is not None and v.shared):
                try:
                    a = await self.cow_copy(p, vpn)
                except MemoryError:
                    return None
                await p.task.map(self.env.task, Fpage.mem(a, 12, v.rights if v else MemRights.RW),
                                 vpn << 12)
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
                await p.task.unmap(Fpage.mem(vpn << 12, 12, MemRights.RWX), include_self=True)
                self.decref(a)

    # ------------------------------------------------------------- processes
    async def spawn(self, image: Image, argv: list[str], envp: list[str], exe: str) -> Proc:
        """A new process running ``image``: task, memory, initial stack, main thread."""
        from l4sim.linux.files import std_files

        p = self._new_proc(exe, 0)  # Linux names a process after its file, not argv[0]
        p.fds = std_files()
        p.exe = exe
        p.cwd = self.vfs.root
        await self._start(p, image, argv, envp, 0)
        return p

    def _new_proc(self, name: str, ppid: int) -> Proc:
        pid = self.next_pid
        self.next_pid += 1
        name = name.rsplit("/", 1)[-1][:15]
        p = Proc(pid, name, cast(TaskCap, None), ppid=ppid, pgid=pid, sid=pid)
        p.acct.start_ns = self.now_ns
        self.procs[pid] = p
        self.all[pid] = p
        return p

    async def _space(self, p: Proc) -> None:
        """A fresh, empty task for ``p``."""
        p.task = await self.env.factory.create_task(p.name)
        p.next_slot = SLOT_GATE
        p.free_slots.clear()

    async def _new_thread(self, p: Proc, tid: int) -> LinuxThread:
        """A thread of ``p``'s task with its own gate (label ``tid << 2``) as pager and exception
        handler; not started yet."""
        env = self.env
        gate = await env.factory.create_gate(env.thread, label=tid << 2)
        th = await env.factory.create_thread(p.name)
        await th.control(bind=p.task)
        if p.free_slots:
            slot = p.free_slots.pop()
        else:
            slot = p.next_slot
            p.next_slot += 1
        await p.task.map(env.task, gate.fpage(), slot)
        await th.control(pager=slot, exc_handler=slot)
        t = LinuxThread(tid, p, th, gate, slot)
        p.threads[tid] = t
        self.threads[tid] = t
        if p.cur is None or p.cur.tid not in p.threads:
            p.cur = t
        return t

    async def _run_thread(self, t: LinuxThread, ip: int, sp: int) -> None:
        """Start ``t`` as a guest thread at ``ip``; a process's n-th thread runs on core n mod cores."""
        p = t.proc
        cpu = p.spawned % self.ncores
        p.spawned += 1
        await self.env.scheduler.run_thread(t.thread, GUEST_PRIO, GUEST_QUANTUM, 1 << cpu)
        r = await t.thread._op("ex_regs guest", ThreadOp.EX_REGS, ip, sp, EX_REGS_GUEST)
        assert r.proto == 0

    async def end_thread(self, t: LinuxThread) -> None:
        """Delete ``t``'s thread, gate and saved reply; forget its waits (no reply is sent)."""
        from l4sim.linux.misc import retire
        from l4sim.linux.signals import forget_wait

        env = self.env
        p = t.proc
        await retire(self, p, t.thread)  # its CPU time stays the process's
        for cap in (t.thread, t.gate):
            await env.task.delete(cap.slot)
            env.free_slot(cap.slot)
        if t.reply is not None:
            await env.task.delete(t.reply.slot)
            env.free_slot(t.reply.slot)
            t.reply = None
        if t.blocked is not None:
            forget_wait(self, t, t.blocked)
            t.blocked = None
        self.sleepers.pop(t.tid, None)
        del p.threads[t.tid]
        del self.threads[t.tid]
        p.free_slots.append(t.slot)

    async def _drop_space(self, p: Proc) -> None:
        """Delete ``p``'s threads and task and let go of its pages."""
        env = self.env
        for t in list(p.threads.values()):
            await self.end_thread(t)
        await env.task.delete(p.task.slot)
        env.free_slot(p.task.slot)
        for a in p.pages.values():
            self.decref(a)
        p.pages.clear()
        p.vmas.clear()

    def program(self, data: bytes, path: str) -> Image:
        """The parsed image of executable ``data`` (ElfError when it is none): from the cache
        of the last TEXT_CACHE programs, whose read-only pages the page cache keeps."""
        cache = self.elf_cache
        image = cache.pop(data, None)
        if image is None:
            image = parse(data, path)
            while len(cache) >= TEXT_CACHE:  # the least recently started leaves, and its pages
                old = cache.pop(next(iter(cache)))
                for a in self.text_cache.pop(id(old), {}).values():
                    self.decref(a)
        cache[data] = image  # the most recent last
        return image

    def _text_pages(self, image: Image) -> dict[int, int]:
        """The page cache's frames of ``image``'s read-only pages (filled by :meth:`_start`),
        kept while ``elf_cache`` keeps the image; an image from elsewhere gets none kept."""
        if not any(v is image for v in self.elf_cache.values()):
            return {}
        return self.text_cache.setdefault(id(image), {})

    async def _start(self, p: Proc, image: Image, argv: list[str], envp: list[str], sigmask: int) -> None:
        env = self.env
        await self._space(p)
        task = p.task
        # segments: pages shared by two segments get the union of their rights
        want: dict[int, int] = {}
        for s in image.segments:
            for va in range(s.vaddr & ~0xFFF, s.vaddr + s.memsz, PAGE):
                want[va] = want.get(va, 0) | int(_rights(s.flags))
            p.vmas.append(Vma(s.vaddr & ~0xFFF, (s.vaddr + s.memsz + PAGE - 1) & ~0xFFF,
                              _rights(s.flags), "elf"))
        # read-only pages (text, constants) come from the page cache, shared by every process
        # running the image: written once, and a forked or exec'd process runs code that the
        # guest executor may already have translated (kernel/guest.py, "Reusing")
        cached = self._text_pages(image)
        frames: dict[int, int] = {}
        for va in sorted(want):
            a = cached.get(va)
            if a is not None:
                self.refs[a] = self.refs.get(a, 1) + 1
                self.text_shared += 1
            else:
                a = await self.alloc()
            frames[va] = a
        for s in image.segments:
            off = 0
            while off < len(s.data):
                va = s.vaddr + off
                k = min(len(s.data) - off, PAGE - (va & 0xFFF))
                if (va & ~0xFFF) not in cached:
                    await env.mem.write(frames[va & ~0xFFF] + (va & 0xFFF), s.data[off : off + k])
                off += k
        for va, a in frames.items():
            if va not in cached:
                self.dirty.add(a)
                if not want[va] & _W:  # into the cache, which keeps a reference of its own
                    cached[va] = a
                    self.refs[a] = self.refs.get(a, 1) + 1
            p.pages[va >> 12] = a
            await task.map(env.task, Fpage.mem(a, 12, want[va]), va)
        p.brk_start = p.brk = image.end
        p.mmap_next = MMAP_TOP
        p.vmas.append(Vma(p.brk_start, p.brk, MemRights.RW, "heap"))
        p.vmas.append(Vma(STACK_TOP - STACK_SIZE, STACK_TOP, MemRights.RW, "stack"))
        sp = await self._initial_stack(p, image, argv, envp)
        p.spawned = 0
        t = await self._new_thread(p, p.pid)
        t.sigmask = sigmask
        p.cur = t
        await self._run_thread(t, image.entry, sp)

    async def exec(self, p: Proc, image: Image, argv: list[str], envp: list[str], exe: str,
                   path: str = "") -> None:
        """Replace ``p``'s program: the other threads end, a new task and main thread (tid = pid)
        keep the pid, the caller's signal mask and the fds that are not close-on-exec.  The
        process is named after ``path``, the file execve was given (Linux's comm: its last
        component, not argv[0]; for a script the script's, not its interpreter's)."""
        from l4sim.linux.files import close_all

        mask = p.cur.sigmask
        await self._drop_space(p)
        close_all(self, p, only_cloexec=True)
        p.sighand.clear()
        p.sigact = {s: v for s, v in p.sigact.items() if s in p.sigign}
        p.exe = exe
        p.name = (path or exe).rstrip("/").rsplit("/", 1)[-1][:15]
        p.leader_status = None
        self._vfork_done(p)
        await self._start(p, image, argv, envp, mask)

    def _vfork_done(self, p: Proc) -> None:
        """``p`` has exec'd or ended: the parent's thread waiting in vfork goes on."""
        if p.vfork_waiter:
            self.wake({p.vfork_waiter})
            p.vfork_waiter = 0

    async def fork(self, parent: Proc, words: tuple[int, ...]) -> Proc:
        """A copy of ``parent`` sharing its pages copy-on-write, with one thread that starts with
        ``words``' registers (those of the calling thread's fork) and rax 0."""
        from l4sim.linux.files import Fd

        env = self.env
        c = self._new_proc(parent.name, parent.pid)
        c.pgid, c.sid, c.exe, c.cwd, c.umask = parent.pgid, parent.sid, parent.exe, parent.cwd, parent.umask
        c.rlimits = dict(parent.rlimits)
        c.sigign, c.sighand, c.sigact = set(parent.sigign), set(parent.sighand), dict(parent.sigact)
        c.brk_start, c.brk, c.mmap_next = parent.brk_start, parent.brk, parent.mmap_next
        self.fork_memory(parent, c)
        for fd, e in parent.fds.items():
            e.file.refs += 1
            c.fds[fd] = Fd(e.file, e.cloexec)
        await self._space(c)
        await self.populate_shared(parent)
        for vpn, a in parent.pages.items():
            n = self.refs.get(a, 1)
            self.refs[a] = n + 1
            c.pages[vpn] = a
            v = parent.vma(vpn << 12)
            if n == 1 and v is not None and v.rights & _W and not v.shared:
                await env.task.unmap(Fpage.mem(a, 12, MemRights.W))  # every sharer loses W
        t = await self._new_thread(c, c.pid)
        t.sigmask = parent.cur.sigmask
        t.altstack = parent.cur.altstack  # fork keeps the caller's alternate stack
        regs = list(words[:20])
        regs[0] = 0
        t.start_regs = tuple(regs)
        self.forks += 1
        await self._run_thread(t, FORK_RIP, 0)
        return c

    async def clone_thread(self, p: Proc, words: tuple[int, ...], stack: int, tls: int | None,
                           clear_tid: int) -> LinuxThread:
        """A new thread of ``p`` (same task: same memory, files and handlers) that starts with the
        caller's registers ``words`` and rax 0, rsp ``stack`` (0: the caller's), fs_base ``tls``
        (None: the caller's) and the caller's signal mask."""
        tid = self.next_pid
        self.next_pid += 1
        t = await self._new_thread(p, tid)
        regs = list(words[:20])
        regs[0] = 0
        if stack:
            regs[16] = stack
        if tls is not None:
            regs[18] = tls
        t.start_regs = tuple(regs)
        t.sigmask = p.cur.sigmask
        t.clear_tid = clear_tid
        await self._run_thread(t, FORK_RIP, 0)
        return t

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
        ends = [a + len(s) for a, s in zip(addrs, strings, strict=True)]
        p.acct.args = (addrs[0] if argv else addr_rand, ends[len(argv) - 1] if argv else addr_rand,
                       env_a[0] if envp else addr_rand, ends[-1] if envp else addr_rand)
        p.acct.start_stack = sp
        p.acct.execs += 1
        return sp

    async def exit_thread(self, t: LinuxThread, status: int) -> None:
        """``exit``: end one thread (its clear_tid word zeroed and futex-woken, as pthread_join
        needs); the last thread's end is the process's, with the main thread's status."""
        from l4sim.linux.threads import futex_key, futex_wake

        p = t.proc
        if len(p.threads) == 1:
            await self.kill(p, status if p.leader_status is None else p.leader_status)
            return
        if t.tid == p.pid:
            p.leader_status = status
        if t.clear_tid and await self.write(p, t.clear_tid, bytes(4)):
            futex_wake(self, await futex_key(self, p, t.clear_tid, False), 1)
        await self.end_thread(t)

    async def kill(self, p: Proc, status: int, sig: int = 0) -> None:
        """End ``p`` (exit status, or 128+sig) with all its threads: delete its objects, close
        its files, free its frames; it stays a zombie for its parent's wait."""
        from l4sim.linux.files import close_all

        p.status = status
        p.exit_code, p.term_sig = (0, sig) if sig else (status & 0xFF, 0)
        self.seq += 1
        p.ended_seq = self.seq
        await self._drop_space(p)
        self._vfork_done(p)
        close_all(self, p)
        from l4sim.linux.jobs import orphan_check

        await orphan_check(self, p)  # before it leaves: the groups it orphans and their stopped jobs
        del self.procs[p.pid]
        for q in self.all.values():  # orphans go to init
            if q.ppid == p.pid:
                q.ppid = 1
                q.adopted = True
        parent = self.procs.get(p.ppid)
        if parent is None or 17 in parent.sigign:  # nobody waits: reaped at once
            self.all.pop(p.pid, None)
        else:
            self.wake(parent.child_waiters)
            if p.exit_signal in parent.sighand:
                self.post(parent, p.exit_signal)  # SIGCHLD, usually
        if p.pid == 1:
            self.cfg.result.append(status)

    # ------------------------------------------------------------- the loop
    async def serve(self) -> int:
        """Answer the processes' exception IPC until the first process ends.

        The clock is read from the kernel once per message, before anything
        that may look at it; a system call in ``TIMELESS`` is served without
        (getpid needs no time), and a fresh reading precedes waking sleepers
        and re-running woken calls.
        """
        from l4sim.linux.syscalls import TIMELESS, WAITING, dispatch

        env = self.env
        cfg = self.cfg
        self.ncores = (await env.scheduler.info())[0]
        self.console = await start_console(env, cfg.out, cfg.stdin)
        # the terminal's receive interrupt: typed Ctrl-C / Ctrl-Z (see run.py and jobs.py)
        kbd = None
        if cfg.keyboard:
            kbd = await env.factory.create_irq()
            await env.icu.bind(LINE_UART, kbd)
            await kbd.attach(env.thread, KBD_LABEL)
        first = await self.spawn(cfg.image, cfg.argv, cfg.env, cfg.exe)
        threads = self.threads
        sleepers = self.sleepers
        SYS, PF, EXC, IRQ = (int(Proto.SYS_EXCEPTION), int(Proto.PAGE_FAULT), int(Proto.EXCEPTION),
                             int(Proto.IRQ))
        msg = await env.wait()
        while True:
            reply: Any = None
            proto = msg.proto
            if kbd is not None and proto == IRQ and msg.label == KBD_LABEL and not msg.error:
                from l4sim.linux.jobs import console_signals

                self.cur = 0  # no thread's call is being served
                if cfg.interrupts:
                    await console_signals(self)
                await kbd.unmask()  # a hardware line masks itself when it fires
            t = threads.get(msg.label >> 2) if not msg.error else None
            timed = t is None or proto != SYS or msg.words[0] not in TIMELESS
            if timed:
                self.now_ns = int(await env.clock())
            if t is not None:
                p = t.proc
                p.cur = t
                self.cur = t.tid
                if proto == SYS:
                    reply = await dispatch(self, p, msg.words)
                elif proto == PF:
                    reply = await self.page_fault(t, msg.words)
                elif proto == EXC and t.start_regs is not None:
                    reply = (0, t.start_regs, ())  # a new thread's first fault: its registers
                    t.start_regs = None
                elif proto == EXC:
                    reply = await self.cpu_fault(p, t, msg.words)
                else:
                    reply = (-38, (), ())
                if reply is WAITING:
                    t.reply = await env.save_reply()
                    reply = None
            if self.console_out or self.stdin_want:
                await self._console_io()
            if self.to_trigger:
                await self._trigger()
            if not timed and (sleepers or self.runnable):
                self.now_ns = int(await env.clock())
            if sleepers:
                for tid, at in sorted(sleepers.items()):
                    if at <= self.now_ns:
                        del sleepers[tid]
                        self.wake({tid})
            if self.runnable or self.console_out or self.stdin_want:
                await self._run_woken()
            if first.status is not None:
                await self._console_io()
                self.cfg.stats.update(calls=self.calls, unimplemented=dict(self.unimplemented),
                                      forks=self.forks, cow_copies=self.cow_copies,
                                      text_pages_shared=self.text_shared)
                return first.status
            timeout = None
            if sleepers:
                timeout = max(0, min(sleepers.values()) - int(await env.clock()))
            if reply is None:
                msg = await env.wait(timeout=timeout)
            else:
                msg = await env.answer(reply[0], reply[1], reply[2], timeout)

    async def _run_woken(self) -> None:
        """Run again the waiting calls of woken threads; answer those that can go on."""
        from l4sim.linux.syscalls import WAITING, resume

        while True:
            if self.console_out or self.stdin_want:
                await self._console_io()  # may wake readers of the console
            if not self.runnable:
                return
            tid = self.runnable.pop(0)
            t = self.threads.get(tid)
            if t is None or t.blocked is None or t.reply is None:
                continue
            c, t.blocked = t.blocked, None
            p = t.proc
            p.cur = t
            self.cur = tid
            r = await resume(self, p, c)
            if r is WAITING or r is None or t.reply is None:
                continue
            if self.console_out:
                await self._console_io()  # what it wrote goes out before it goes on
            cap, t.reply = t.reply, None
            await self.env.ipc(cap.send(r[0], *r[1], items=r[2]))
            self.env.free_slot(cap.slot)

    async def cpu_fault(self, p: Proc, t: LinuxThread, w: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
        """A CPU exception of ``t`` (words: trapno, code, RIP, traps, address, the registers):
        its signal enters the handler when there is one and ``t`` does not block it (reply:
        the handler's registers); otherwise the process dies of it, as Linux forces it."""
        from l4sim.linux.signals import enter_handler

        trap = w[0] if w else 13
        if trap == TRAP_TRIGGER:  # interrupted where it ran (see _trigger): take its signals
            from l4sim.linux.signals import deliver

            regs = list(w[5:25])
            new = await deliver(self, p, regs) if len(w) >= 25 else None
            if p.status is not None:
                return None
            return (0, tuple(new if new is not None else regs), ())
        sig = TRAP_SIGNAL.get(trap, SIGSEGV)
        at = w[4] if trap in (13, 14) and len(w) > 4 and w[4] else w[2] if len(w) > 2 else 0
        if len(w) >= 25 and sig in p.sighand and not (t.sigmask >> (sig - 1)) & 1:
            code = {SIGSEGV: 2 if trap == 14 and w[1] & 1 else 1, SIGILL: 2, SIGFPE: 1, SIGTRAP: 1}.get(sig, 0)
            new = await enter_handler(self, p, t, sig, list(w[5:25]), code, at)
            if new is not None:
                return (0, tuple(new), ())
        await self.signal_death(p, sig, at)
        return None

    async def _trigger(self) -> None:
        """Interrupt the threads in ``to_trigger`` where they run: ex_regs' TRIGGER_EXCEPTION
        makes each raise exception IPC (trap 0xff), answered by entering its signal's handler
        (or ending the process) -- as L4Linux interrupts a thread running in user mode."""
        tids, self.to_trigger = sorted(self.to_trigger), set()
        for tid in tids:
            t = self.threads.get(tid)
            if t is not None and t.blocked is None and t.proc.status is None:
                await t.thread._op("ex_regs trigger", ThreadOp.EX_REGS, IP_UNCHANGED, 0,
                                   EX_REGS_TRIGGER_EXCEPTION)

    async def _console_io(self) -> None:
        """Send the console output written so far (adjacent writes to a stream joined), and
        fetch input when a read is waiting for it."""
        con = self.console
        assert con is not None
        out, self.console_out = self.console_out, []
        i = 0
        while i < len(out):
            stream, data = out[i]
            j = i + 1
            while j < len(out) and out[j][0] == stream:
                j += 1
            if j > i + 1:
                data = b"".join(d for _, d in out[i:j])
            await con.write(stream, data)
            i = j
        if self.stdin_want:
            self.stdin_want = False
            data = await con.read(1 << 16)
            if data:
                self.stdin_buf += data
            else:
                self.stdin_eof = True
            self.wake(self.stdin_waiters)

    async def page_fault(self, t: LinuxThread, w: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
        p = t.proc
        if p.pending or t.pending or p.stopped or p.cont_notify:
            from l4sim.linux.signals import at_fault  # a fatal or stop signal acts as it runs

            if await at_fault(self, t, w):
                from l4sim.linux.syscalls import WAITING

                return WAITING if t.stop_fault is not None else None
        addr = w[0] & ~0xFFF
        present = w[0] & 1
        write = w[0] & 2
        fetch = w[0] & 4
        if t.start_regs is not None and addr == FORK_RIP:
            return (-1, (), ())  # refused: becomes an exception, answered with the registers
        v = p.vma(addr)
        if v is None or (write and not v.rights & _W) or (present and not write) \
                or (fetch and not v.rights & _X):
            if SIGSEGV in p.sighand and not (t.sigmask >> (SIGSEGV - 1)) & 1:
                # refused: the kernel turns it into exception IPC with the registers, and
                # cpu_fault enters the handler (code 8 | write, fetch | 1 when a VMA is there:
                # Linux's SEGV_ACCERR, else SEGV_MAPERR)
                return (-(8 | (w[0] & 6) | (v is not None)), (), ())
            await self.signal_death(p, SIGSEGV, w[0] & ~7)
            return None
        vpn = addr >> 12
        a = p.pages.get(vpn)
        rights = v.rights
        try:
            if a is None:
                a = await self.fresh_page(p, v, addr)
                if a is None:  # a file mapping's page beyond the file's end
                    await self.signal_death(p, SIGBUS, w[0] & ~7)
                    return None
            elif self.refs.get(a, 1) > 1 and not v.shared:
                if write:
                    a = await self.cow_copy(p, vpn)
                else:
                    rights &= ~_W
        except MemoryError:  # out of frames: what Linux's OOM killer would do
            await self.signal_death(p, SIGKILL, addr)
            return None
        return (0, (), (MapItem(Fpage.mem(a, 12, rights), snd_base=addr),))

    async def signal_death(self, p: Proc, sig: int, addr: int) -> None:
        """A fatal signal: the whole thread group ends (status 128 + sig)."""
        self.cur = p.pid
        if self.cfg.strace is not None:
            name = SIGNAMES.get(sig, f"signal {sig}")
            if sig in (SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV):
                self.cfg.strace(f"--- {name} {{si_signo={name}, si_addr={addr:#x}}} ---")
            self.cfg.strace(f"+++ killed by {name} +++")
        await self.kill(p, 128 + sig, sig)


async def personality(env: Env, cfg: Config) -> int:
    """The personality's program: start ``cfg``'s executable, serve it until it ends."""
    return await Personality(env, cfg).serve()
