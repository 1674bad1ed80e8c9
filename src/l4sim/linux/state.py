"""The Linux personality's state, and the helpers every part of the personality shares.

What lives here is what the system-call modules all need and what needs none of them (the
order of the modules is in :mod:`l4sim.linux`): the records -- :class:`Proc` (a thread
group), :class:`LinuxThread`, :class:`Vma`, :class:`Acct`, the fd table's :class:`Fd`,
:class:`Call` (one system call) and :class:`Config` (what the boot code gives); the
address-space layout (``POOL_BASE``, ``STACK_TOP``, ``MMAP_TOP``, ``FORK_RIP``); and
:class:`Personality`, the server's state with the operations on it that carry no system
call's policy: frames from sigma0 and the page cache, reading and writing a process's
memory, making tasks and guest threads, starting a program, fork's copy, waking waiting
calls and making signals pending.  Ending a thread or a process is a signal's default
action and lives in :mod:`l4sim.linux.signals`; the loop that receives the processes'
messages is :mod:`l4sim.linux.personality`.

Memory: the personality takes blocks of frames from sigma0
(``REQ_FPAGE_ANY``) into a pool region of its own address space and maps
single pages of the pool into its processes (``task.map`` while loading, a
map item when paging).  It knows every page it mapped, so it reads and
writes a process's memory through its own mapping of the same frame.
"""

from __future__ import annotations

import random
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from l4sim.kernel.abi import (
    CALL,
    EX_REGS_GUEST,
    SLOT_PAGER,
    Fpage,
    FpageType,
    MapItem,
    MemRights,
    ThreadOp,
)
from l4sim.kernel.traps import Ipc
from l4sim.linux import lifetime
from l4sim.linux.elf import PAGE, PF_R, PF_W, PF_X, Image, parse
from l4sim.linux.vfs import (
    EPOCH,
    O_WRONLY,
    S_IFIFO,
    Device,
    Dir,
    Fifo,
    File,
    Inode,
    OFile,
    PipeNode,
    Vfs,
)
from l4sim.runtime.console import Console
from l4sim.runtime.protocols import DATASPACE, DsOp
from l4sim.runtime.sigma0 import REQ_FPAGE_ANY, request
from l4sim.user.env import Env, Gate, L4Error, TaskCap, ThreadCap

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
#: SCHED_FIFO and SCHED_RR (the real-time policies); the RR time slice (Linux's
#: RR_TIMESLICE); a FIFO thread keeps its core until it blocks or a higher one comes
SCHED_FIFO, SCHED_RR = 1, 2
RR_QUANTUM = 100_000_000
FIFO_QUANTUM = 1 << 62


def sched_quantum(policy: int) -> int:
    """The kernel quantum of a thread of ``policy``."""
    return FIFO_QUANTUM if policy == SCHED_FIFO else RR_QUANTUM if policy == SCHED_RR else GUEST_QUANTUM
#: signal numbers the personality reports
SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGKILL, SIGSEGV = 4, 5, 7, 8, 9, 11
SIGNAMES = {1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP", 6: "SIGABRT", SIGBUS: "SIGBUS",
            SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV", 13: "SIGPIPE", 14: "SIGALRM",
            15: "SIGTERM", 10: "SIGUSR1", 12: "SIGUSR2", 31: "SIGSYS"}
EINVAL, ENOTTY = 22, 25
#: init's name (and its file, /init, in the small Linux)
INIT_NAME = "init"
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
#: the most bytes one memory access of the personality moves (the kernel's limit)
MAX_ACCESS = 1 << 20
#: the text windows: each program in the page cache has its read-only pages mapped in the
#: personality's own space at ``TEXT_WINDOW + slot * TEXT_SPAN + vaddr`` (user space lies below
#: TEXT_SPAN), so that a run of them goes to a process as one flexpage
TEXT_WINDOW = 1 << 48
TEXT_SPAN = 1 << 47
#: fault-around: a fault on a program page of the page cache maps the pages around it, up to
#: 2**FAULT_AROUND pages (an aligned flexpage), as Linux maps up to 64 KiB around a fault
FAULT_AROUND = 2
#: the largest flexpage a start maps a program's text with (the kernel walks up to 4096 units)
TEXT_ORDER_MAX = 12
#: a program page that this many forked children faulted on joins its window's hot set, which
#: fork maps into every child of the program at once (see Personality._fork)
HOT_AFTER = 2


class TextWindow:
    """A program's read-only pages in the page cache, as the personality's own mappings at
    ``base + vaddr``: ``frames`` (vaddr -> pool page, the page cache's) and ``rights`` (vaddr ->
    the rights they are mapped with).  ``live`` turns False when the program leaves the cache
    (its processes' faults then map single pages)."""

    __slots__ = ("base", "faults", "frames", "hot", "hot_base", "live", "rights")

    def __init__(self, base: int, frames: dict[int, int], hot_base: int) -> None:
        self.base = base
        self.frames = frames
        self.rights: dict[int, int] = {}
        self.live = True
        #: the hot set: pages forked children of the program use (vaddr, in the order they
        #: joined), mapped a third time at ``hot_base + vaddr``; faults of forked children by
        #: page, until it joins
        self.hot_base = hot_base
        self.hot: dict[int, int] = {}  # vaddr -> its place in the set
        self.faults: dict[int, int] = {}


# --------------------------------------------------------------------------- a system call
#: result of a call that must wait: the personality keeps the reply capability and runs it again
#: (a signal may interrupt the wait: :func:`l4sim.linux.signals.interrupt`)
BLOCK = -(1 << 70)
#: what dispatch returns for a call that waits
WAITING: tuple[int, tuple[int, ...], tuple[MapItem, ...]] = (BLOCK, (), ())


@dataclass(slots=True)
class Call:
    """One system call: number, the six arguments, registers the reply must set."""

    nr: int
    a: tuple[int, int, int, int, int, int]
    words: tuple[int, ...]
    set_regs: dict[str, int] = field(default_factory=dict)
    ended: bool = False
    name: str = ""
    args: str = ""
    #: what a waiting call remembers between its runs (a deadline, a mask installed, a
    #: :class:`Wait`)
    state: Any = None
    #: every register of the reply (rt_sigreturn)
    all_regs: tuple[int, ...] | None = None


class Wait(ABC):
    """What a waiting call holds in ``Call.state`` that must be given back when the wait ends
    without the call finishing (a signal interrupts it, or its thread ends): a place in a futex
    queue (:class:`l4sim.linux.threads.FutexWait`), a FIFO's end counted already
    (:class:`l4sim.linux.files.FifoOpen`).  The record knows how, so that
    :func:`l4sim.linux.signals.forget_wait` needs neither module."""

    __slots__ = ()

    @abstractmethod
    def forget(self, k: Personality, c: Call) -> None:
        """Give back what the wait holds."""


class Facility:
    """A facility of a higher module (file locks, System V IPC, robust futexes, pid file
    descriptors...) that must hear of ends the lower modules carry out: an fd closed, an open
    file's last reference gone, a thread or a process ended.  Each is made on first use
    (:meth:`Personality.facility`) and kept in ``Personality.facilities``; a system without
    it pays nothing.  The methods do nothing unless overridden (Linux's hooks in
    ``filp_close``, ``__fput``, ``do_exit``)."""

    def closed(self, k: Personality, p: Proc, f: OFile) -> None:
        """``p`` closed one of its fds for ``f`` (POSIX record locks go with any close)."""

    def released(self, k: Personality, f: OFile) -> None:
        """The last reference to ``f`` went (flock and open-file-description locks go)."""

    async def thread_ends(self, k: Personality, t: LinuxThread) -> None:
        """``t`` ends (exit, a fatal signal, execve); its process's memory is still there."""

    async def proc_ends(self, k: Personality, p: Proc) -> None:
        """``p`` has ended: its threads, memory and files are gone."""


class Special(Inode):
    """An inode whose reads, writes and readiness are its own: a socket, an eventfd, an epoll
    instance, a signalfd, a timerfd, a pidfd (made by higher modules).  :mod:`l4sim.linux.files`
    asks it through these methods, so read, write, poll, select and epoll work on it; a call
    that would wait registers the thread with :meth:`watch` and waits (:data:`BLOCK`)."""

    def __init__(self, mode: int) -> None:
        super().__init__(mode)
        #: tids to wake when it changes (a read, write, poll or epoll waiting on it)
        self.waiters: set[int] = set()
        #: changes so far: an edge-triggered epoll reports a file again only after one
        self.gen = 0

    #: a write that waits (BLOCK) is interrupted by fatal signals only: what it started
    #: cannot be taken back (a message on its way to an L4 server, linux/l4.py)
    killable = False
    #: lseek moves the open file's position (a framebuffer, linux/fb.py); else ESPIPE
    seekable = False

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        """Up to ``n`` bytes, a negative errno, or BLOCK (after :meth:`watch`)."""
        return -EINVAL

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        """The count written, a negative errno, or BLOCK (after :meth:`watch`)."""
        return -EINVAL

    def ready(self, k: Personality, f: OFile) -> int:
        """poll's bits (POLLIN 1, POLLOUT 4, POLLERR 8, POLLHUP 16, ...) for ``f`` now."""
        return 0

    def watch(self, k: Personality, tid: int) -> None:
        """Wake ``tid`` at the next change (poll, epoll and blocked reads and writes)."""
        self.waiters.add(tid)

    def nread(self) -> int:
        """Bytes a read would get now (ioctl FIONREAD)."""
        return 0

    def deadline(self, k: Personality) -> int | None:
        """The simulated time its readiness changes by itself (a timer), None: never."""
        return None

    def changed(self, k: Personality) -> None:
        """Its state changed: wake its watchers."""
        self.gen += 1
        k.wake(self.waiters)

    def opened(self, k: Personality, f: OFile) -> None:
        """``f`` was opened on it (by open or openat)."""

    def released(self, k: Personality, f: OFile) -> None:
        """The last reference to ``f`` went."""

    async def ioctl(self, k: Personality, p: Proc, c: Call, f: OFile, req: int, arg: int) -> int:
        """An ioctl other than FIONREAD and FIONBIO: the result, a negative errno, or BLOCK."""
        return -ENOTTY


class MemObject(ABC):
    """Memory that owns its frames and that every mapping of it maps (a System V shared
    memory segment, :mod:`l4sim.linux.ipc`): a VMA's ``file`` may be one, and the page
    fault handler takes the page's frame from it (shared, never copied on write)."""

    ino: int

    @abstractmethod
    def size(self) -> int:
        """Its size in bytes (a page past it is SIGBUS)."""

    @abstractmethod
    async def frame(self, k: Personality, idx: int) -> int:
        """The pool address of its page ``idx`` (made, zeroed, on first use)."""

    async def fault(self, k: Personality, idx: int, write: bool, rights: int) -> int:
        """The rights a shared mapping's page ``idx`` is mapped with for a fault (``write``:
        a write access): all of ``rights``, unless the object watches writes (the deferred I/O
        of a framebuffer, linux/fb.py)."""
        return rights


class PidFd(Special):
    """A pid file descriptor (pidfd_open, :mod:`l4sim.linux.events`): it names process ``pid``
    and is readable once that process has ended (here, not there, so that waitid's P_PIDFD
    can know it)."""

    def __init__(self, pid: int) -> None:
        super().__init__(0o600)
        self.pid = pid

    def ready(self, k: Personality, f: OFile) -> int:
        """POLLIN once the process has ended; POLLHUP too once it has been reaped."""
        q = k.all.get(self.pid)
        if q is None:
            return 0x1 | 0x40 | 0x10  # POLLIN | POLLRDNORM | POLLHUP
        return 0x1 | 0x40 if q.status is not None else 0


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
    #: a call waiting for something (see BLOCK) and the saved reply capability that answers it
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
    #: in an L4 call the personality let pass (linux/l4.py): uninterruptible until it ends
    l4call: bool = False
    #: the core it runs on; its scheduling policy (SCHED_OTHER 0, SCHED_FIFO 1, SCHED_RR 2,
    #: ...), real-time priority and nice value; ``prio`` the kernel priority they give it
    #: (GUEST_PRIO for SCHED_OTHER), ``kprio`` the one the kernel has now (higher while it
    #: holds a priority-inheritance futex a higher thread waits for)
    cpu: int = 0
    #: the cores it may run on (sched_setaffinity; 0: every core)
    affinity: int = 0
    policy: int = 0
    rt_prio: int = 0
    nice: int = 0
    prio: int = GUEST_PRIO
    kprio: int = GUEST_PRIO


RLIM_INFINITY = (1 << 64) - 1
#: Linux's pid_max (its default for up to 32 CPUs) and the pids it skips when it wraps around
PID_MAX = 32768
RESERVED_PIDS = 300
RLIMIT_NPROC, RLIMIT_SIGPENDING = 6, 11
EAGAIN, ENOMEM = 11, 12


def max_threads(ram: int) -> int:
    """Linux's threads-max for a machine of ``ram`` bytes: one task per 128 KiB (eight times a
    kernel stack), at least 20, and few enough that pids never run out (a task holds its pid,
    a group or session id at most one more)."""
    return max(20, min(ram // (128 << 10), (PID_MAX - RESERVED_PIDS) // 2))
#: the limits a first process starts with (Linux's defaults): RLIMIT_STACK 3 8 MiB soft,
#: RLIMIT_NOFILE 7 1024/4096, RLIMIT_NPROC 6 and RLIMIT_SIGPENDING 11 half of threads-max (set
#: from the machine's RAM when the first process starts, see :func:`max_threads`); every other
#: resource unlimited
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
    #: the page cache's window of the program it runs (None: none); fork keeps it
    text: TextWindow | None = None
    #: made by fork and not exec'd since (its program faults count towards the hot set)
    forked: bool = False
    #: how much of its program's hot set fork mapped into it (the first ``hot`` pages)
    hot: int = 0
    vmas: list[Vma] = field(default_factory=list)
    acct: Acct = field(default_factory=Acct)
    brk_start: int = 0
    brk: int = 0
    mmap_next: int = MMAP_TOP
    status: int | None = None  # exit status, 128+N when killed by signal N
    syscalls: int = 0
    ppid: int = 0
    #: its parent ended and pid 1 took it: on Linux that is init, in no session of ours, so
    #: pid 1 does not keep its group from being orphaned (signals.orphaned)
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
    #: init: a signal without a handler is dropped, from whoever it comes (Linux's
    #: SIGNAL_UNKILLABLE), and the OOM killer passes it by
    unkillable: bool = False
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
    #: the instance's capabilities bound into its task (linux/l4.py): /dev/l4 name -> slot;
    #: a new task (exec) and a forked child start without any
    l4_slots: dict[str, int] = field(default_factory=dict)

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
    #: directories placed over the tree at their paths (the working directory, see
    #: :mod:`l4sim.linux.rootfs`), and the path the program starts in
    mounts: list[tuple[str, Any]] = field(default_factory=list)
    cwd: str = "/"
    #: the image started as pid 1 before the program (pid 2, its child); None: the program is
    #: pid 1
    init: Image | None = None
    exe: str = "/a.out"
    #: the path the program was named by, when it is a link to ``exe`` (the process's name,
    #: comm, is its last component, as execve names a process; "": ``exe``'s)
    exe_named: str = ""
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
    # --- a Linux instance of a startup script (linux/instance.py, docs/linux.md "Linux among
    # L4 programs"); ``linux run`` leaves these alone
    #: the name of the dataspace capability the frames come from (None: sigma0, slot 4)
    ram_cap: str | None = None
    #: the console is the program's log stream (its lines tagged with the program's name) and
    #: stdin is empty, instead of a console server on the host's streams
    log_console: bool = False
    #: the kernel priority of SCHED_OTHER threads, and the highest a real-time policy reaches
    guest_prio: int = GUEST_PRIO
    rt_top: int = 99
    #: the capabilities that become /dev/l4/NAME (names in the program's environment)
    l4_devices: tuple[str, ...] = ()
    #: the processes that may bind those capabilities into their own table and make L4 calls:
    #: executable paths (str) and uids (int)
    l4_allow: tuple[str | int, ...] = ()
    #: the capability of the instance's GUI session (/dev/fb0 and /dev/input/event0,
    #: linux/fb.py) and its view on the screen (x, y, width, height; None: the middle)
    gui: str | None = None
    fb_view: tuple[int, int, int, int] | None = None
    #: the instance's network interfaces (a :class:`l4sim.linux.net.config.NetConfig`; None:
    #: ``lo`` only)
    net: Any = None
    #: the personality serving this configuration, set when it starts (the host reads its
    #: figures for the boot summary, as a debugger would)
    observed: Any = None
    #: the kernel, for observation only: while it follows secrets (its ``lifetime``), the
    #: personality tells it what its pipe and file buffers hold (linux/lifetime.py)
    watch: Any = None
    #: clear the frames of a process that ends at once, not only when handed out again (the
    #: policy ``l4sim lifetime --zero-on-free`` compares)
    zero_on_free: bool = False


class LogConsole:
    """The console of a Linux instance started by a startup script: what its processes write
    to stdout and stderr goes to the program's log stream (slot 5, which moe tags with the
    program's name, as it does every program's lines), and stdin is empty.  The same two
    calls as :class:`~l4sim.runtime.console.Console`."""

    def __init__(self, env: Env) -> None:
        self.env = env

    async def write(self, stream: int, data: bytes) -> None:
        await self.env.log.write(data)

    async def read(self, n: int) -> bytes:
        return b""


# --------------------------------------------------------------------------- the fd table
EBADF, EMFILE = 9, 24
#: the most fds a process may have, whatever its RLIMIT_NOFILE
MAX_FDS = 1 << 16
RLIMIT_NOFILE = 7


@dataclass(eq=False)
class Fd:
    """An entry of a process's fd table (``Proc.fds``): the open file and close-on-exec."""

    file: OFile
    cloexec: bool = False


def pages_in(p: Proc, start: int, end: int) -> list[int]:
    """The page numbers of ``p``'s pages in [start, end), in order: found by walking the range
    or the page table, whichever is shorter -- a call that names all of user space costs what
    is mapped there, not 2^35 steps."""
    lo, hi = start >> 12, end >> 12
    if hi - lo <= len(p.pages):
        return [vpn for vpn in range(lo, hi) if vpn in p.pages]
    return sorted(vpn for vpn in p.pages if lo <= vpn < hi)


def text_bytes(s: str) -> bytes:
    """``s`` as bytes: names and arguments hold a guest's bytes as surrogate escapes (see
    :mod:`l4sim.linux.vfs`), which turn back into those bytes; anything else is UTF-8."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "backslashreplace")


#: what strace writes for the characters it escapes
_ESCAPES = {0: "\\0", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\"}


def quote(b: bytes, limit: int = 32) -> str:
    """``b`` as strace prints a string: in double quotes, printable ASCII as it is, the usual
    escapes, any other byte in octal (three digits when an octal digit follows, as strace
    does, so that the next character cannot be read as part of it); at most ``limit`` bytes,
    then ``...``."""
    out = []
    shown = b[:limit]
    for i, ch in enumerate(shown):
        esc = _ESCAPES.get(ch)
        if esc is not None and not (ch == 0 and i + 1 < len(shown) and 48 <= shown[i + 1] <= 55):
            out.append(esc)
        elif 32 <= ch < 127:
            out.append(chr(ch))
        elif i + 1 < len(shown) and 48 <= shown[i + 1] <= 55:
            out.append(f"\\{ch:03o}")
        else:
            out.append(f"\\{ch:o}")
    return '"' + "".join(out) + '"' + ("..." if len(b) > limit else "")


def comm(name: str) -> str:
    """A process's name (Linux's comm) from a path: its last component, 15 bytes at most."""
    last = text_bytes(name.rstrip("/").rsplit("/", 1)[-1])[:15]
    return last.decode("utf-8", "surrogateescape")


def std_files() -> dict[int, Fd]:
    """fds 0-2 of the first process: the host's stdin, stdout and stderr (not terminals)."""
    out = {}
    for fd, name, flags in ((0, "stdin", 0), (1, "stdout", O_WRONLY), (2, "stderr", O_WRONLY)):
        dev = Device(name, 0, 0, 0o600)
        dev.mode = S_IFIFO | 0o600  # like a pipe to the host: not a terminal
        out[fd] = Fd(OFile(dev, flags, f"pipe:[{dev.ino}]"))
    return out


def inherit_sched(parent: LinuxThread, t: LinuxThread) -> None:
    """A new thread or process runs as its creator does (Linux's fork and clone keep the
    policy, priority, nice value and CPU affinity)."""
    t.policy, t.rt_prio, t.nice, t.prio = parent.policy, parent.rt_prio, parent.nice, parent.prio
    t.affinity = parent.affinity


def install(p: Proc, f: OFile, cloexec: bool = False, low: int = 0) -> int:
    fd = low
    while fd in p.fds:
        fd += 1
    if fd >= min(MAX_FDS, p.rlimits[RLIMIT_NOFILE][0]):
        return -EMFILE
    p.fds[fd] = Fd(f, cloexec)
    return fd


def get(p: Proc, fd: int) -> OFile | None:
    e = p.fds.get(fd)
    return e.file if e is not None else None


def opened(f: OFile) -> None:
    """Count a new open end of a pipe."""
    if isinstance(f.node, PipeNode):
        pipe = f.node.pipe
        if f.readable:
            pipe.readers += 1
        if f.writable:
            pipe.writers += 1


def release(k: Personality, f: OFile) -> None:
    """Drop one reference to an open file; the last one closes a pipe end and wakes the other side."""
    f.refs -= 1
    if f.refs > 0:
        return
    for fac in k.facilities.values():
        fac.released(k, f)
    if isinstance(f.node, Special):
        f.node.released(k, f)
    if isinstance(f.node, PipeNode):
        pipe = f.node.pipe
        if f.readable:
            pipe.readers -= 1
        if f.writable:
            pipe.writers -= 1
        if isinstance(f.node, Fifo) and not pipe.readers and not pipe.writers:
            pipe.buf.clear()  # the last end of a FIFO: Linux frees the pipe and what was in it
        pipe.gen += 1  # a change an edge-triggered epoll sees
        k.wake(pipe.waiters)


def close_fd(k: Personality, p: Proc, fd: int) -> int:
    e = p.fds.pop(fd, None)
    if e is None:
        return -EBADF
    for fac in k.facilities.values():
        fac.closed(k, p, e.file)
    release(k, e.file)
    return 0


def close_all(k: Personality, p: Proc, only_cloexec: bool = False) -> None:
    for fd in sorted(p.fds):
        if not only_cloexec or p.fds[fd].cloexec:
            close_fd(k, p, fd)


F = TypeVar("F", bound=Facility)


class Personality:
    """The server's state: frame pool, processes, counters."""

    def __init__(self, env: Env, cfg: Config) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.free: list[int] = []  # pool addresses
        self.dirty: set[int] = set()  # pool pages that held data once (zeroed on reuse)
        self.pool_next = POOL_BASE
        #: the dataspace the frames come from and its size (a Linux instance of a startup
        #: script), None: sigma0 (``linux run``); set by :meth:`setup_ram`
        self.ram: tuple[Gate, int] | None = None
        #: the cores guest threads may use (the scheduler's mask: a scheduler proxy's cores)
        self.cpu_mask = 1
        #: processes made (the first one, forks, vforks, clones of processes)
        self.procs_made = 0
        #: the executables run so far: (path, bytes of code) -> times started (l4sim tcb
        #: counts an instance's programs by them)
        self.ran: dict[tuple[str, int], int] = {}
        self.procs: dict[int, Proc] = {}
        #: live threads by tid: the label of a message names one
        self.threads: dict[int, LinuxThread] = {}
        self.next_pid = 1
        #: the last pid (or tid) handed out; pids wrapped around PID_MAX at least once
        self.last_pid = 0
        self.pids_wrapped = False
        #: tasks made since boot (processes and threads: /proc/stat's "processes"), and the
        #: most there were at once (see :meth:`tasks`)
        self.made = 0
        self.tasks_peak = 1
        #: Linux's threads-max for this machine: fork and clone fail with EAGAIN at it
        self.max_threads = max_threads(cfg.ram)
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
        #: the console server (the host's terminal), started by personality.serve(), or the
        #: program's log stream (a Linux instance of a startup script)
        self.console: Console | LogConsole | None = None
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
        #: the text windows by id(image), the window slots free, and the windows of programs
        #: that left the cache, to be unmapped (then their frames freed) before the next start
        self.windows: dict[int, TextWindow] = {}
        self.window_slots = list(range(TEXT_CACHE, -1, -1))
        self.windows_gone: list[tuple[TextWindow, list[int]]] = []
        #: MAP_SHARED pages of files: file -> {page index -> pool page} (each holding a
        #: reference), and what each held when last synchronised with the file's bytes
        self.file_pages: dict[Any, dict[int, int]] = {}
        self.file_shadow: dict[Any, dict[int, bytes]] = {}
        self.forks = 0
        self.cow_copies = 0
        #: tid -> simulated time its sleep or timeout ends
        self.sleepers: dict[int, int] = {}
        #: timers that send signals (alarm, setitimer, timer_create): id -> simulated time
        #: they expire; the serve loop wakes for them (:func:`l4sim.linux.events.expire`)
        self.timers: dict[int, int] = {}
        #: what is known of a pending signal's origin, by (pid, or tid for a thread's own, signal):
        #: (si_code, sender pid, status); a signalfd reports it (:mod:`l4sim.linux.events`)
        self.siginfo: dict[tuple[int, int], tuple[int, int, int]] = {}
        #: the facilities in use, by class, in the order they were first used (:meth:`facility`)
        self.facilities: dict[type, Facility] = {}
        #: the bridge to the L4 world: /dev/l4 devices and their workers (linux/l4.py), None
        #: when the configuration names no capability
        self.l4: Any = None
        #: the thread being served: strace lines of threads other than the program's main
        #: thread (``main_pid``) say "[pid N] "; init's (``init_pid``) are not shown, as
        #: strace of a program does not show init
        self.cur = 1
        self.main_pid = 1
        self.init_pid = 0
        #: init's process until :meth:`start_init` starts it
        self.init_waiting: Proc | None = None
        cfg.observed = self
        if cfg.strace is not None:
            host_trace = cfg.strace

            def traced(line: str) -> None:
                cur = self.cur
                if cur != self.init_pid:
                    host_trace(line if cur == self.main_pid else f"[pid {cur}] {line}")

            cfg.strace = traced
        root = cfg.root if cfg.root is not None else Vfs.empty()
        self.vfs = Vfs(root, procs=self.all.get, pids=lambda: sorted(self.procs), mounts=cfg.mounts)
        if cfg.exe_bytes and self.vfs.walk(root, cfg.exe, None)[0] is None:
            Vfs.put(root, cfg.exe, File(cfg.exe_bytes, 0o755))  # the program, at its path
        if cfg.exe_bytes:
            self.elf_cache[cfg.exe_bytes] = cfg.image  # an exec of the same file: the same image

    def wall(self) -> int:
        """Seconds of the simulated wall clock."""
        return EPOCH + self.now_ns // 1_000_000_000

    def wall_ns(self) -> int:
        """Nanoseconds of the simulated wall clock (file times, as tmpfs keeps them)."""
        return EPOCH * 1_000_000_000 + self.now_ns

    def facility(self, kind: type[F]) -> F:
        """The facility ``kind`` of this system, made when first asked for."""
        f = self.facilities.get(kind)
        if f is None:
            f = self.facilities[kind] = kind()
        return cast(F, f)

    async def set_prio(self, t: LinuxThread, prio: int, force: bool = False) -> None:
        """Give ``t`` kernel priority ``prio`` on its core, with its policy's quantum (the
        kernel's scheduler decides at once: a higher thread than the one running preempts it)."""
        if (force or prio != t.kprio) and t.proc.status is None:
            t.kprio = prio
            await self.env.scheduler.run_thread(t.thread, prio, sched_quantum(t.policy), 1 << t.cpu)

    now_ns = 0

    def wake(self, waiters: set[int]) -> None:
        """Run the waiting calls of the threads ``waiters`` (tids) again (after the current message)."""
        for tid in sorted(waiters):
            if tid not in self.runnable:
                self.runnable.append(tid)
        waiters.clear()

    def post(self, p: Proc, sig: int, t: LinuxThread | None = None,
             info: tuple[int, int, int] | None = None) -> None:
        """Make ``sig`` pending in ``p`` (it has a handler, or is fatal), or in its thread ``t``;
        wake the threads that wait in a call and do not block it: the signal interrupts the
        wait (signals.interrupt).  ``info``: (si_code, sender pid, status) for a signalfd."""
        (p.pending if t is None else t.pending).add(sig)
        if info is not None:
            self.siginfo[(p.pid if t is None else t.tid, sig)] = info
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
                        and not th.sigmask & bit and not th.l4call):
                    self.to_trigger.add(th.tid)
                    if t is None:
                        break  # one thread of the process takes it

    # ------------------------------------------------------------------ frames
    async def alloc(self) -> int:
        """A zeroed frame of the pool (its address in our space)."""
        if not self.free and self.ram is not None:
            return await self._ram_page()
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

    async def _ram_page(self) -> int:
        """The next page of the instance's memory: a page of its dataspace (``Config.ram_cap``,
        docs/linux.md "Linux among L4 programs") mapped into the pool at ``pool_next``; moe
        hands it out zeroed.  MemoryError when the dataspace is used up."""
        ram, size = self.ram  # type: ignore[misc]
        a = self.pool_next
        off = a - POOL_BASE
        if off >= size:
            raise MemoryError("the instance's memory is used up")
        r = await self.env.ipc(Ipc(ram.slot, CALL, DATASPACE, (DsOp.MAP, off, 1),
                                   rcv=(Fpage.mem(a, 12, MemRights.RWX),)))
        if r.error or r.proto < 0 or not r.items:
            raise MemoryError("the instance's dataspace maps no page")
        self.pool_next = a + PAGE
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
            if isinstance(node, MemObject):  # its own frame, the same in every mapping
                a = await node.frame(self, at >> 12)
                self.refs[a] = self.refs.get(a, 1) + 1
                p.pages[vaddr >> 12] = a
                return a
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
        c.text = parent.text
        c.acct.args, c.acct.start_stack = parent.acct.args, parent.acct.start_stack

    async def populate_shared(self, p: Proc) -> bool:
        """Give every page of ``p``'s shared anonymous areas a frame (before a fork), so that
        parent and child share each one from the start.  False, and nothing done, when they
        name more pages than the machine has (Linux would share them lazily)."""
        want = sum((v.end - v.start) >> 12 for v in p.vmas if v.shared and v.file is None)
        if want > self.cfg.ram >> 12:
            return False
        for v in p.vmas:
            if v.shared and v.file is None:  # a file's shared pages are in the file's table
                for va in range(v.start, v.end, PAGE):
                    if va >> 12 not in p.pages:
                        await self.fresh_page(p, v, va)
        return True

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
            if v is not None and v.shared and isinstance(v.file, MemObject):  # we write it: a write
                await v.file.fault(self, (v.off + (addr & ~0xFFF) - v.start) >> 12, True, v.rights)
            if self.refs.get(a, 1) > 1 and not (v is not None and v.shared):
                try:
                    a = await self.cow_copy(p, vpn)
                except MemoryError:
                    return None
                await p.task.map(self.env.task, Fpage.mem(a, 12, v.rights if v else MemRights.RW),
                                 vpn << 12)
        return a + (addr & 0xFFF)

    async def read(self, p: Proc, addr: int, n: int) -> bytes | None:
        """``n`` bytes of ``p``'s memory at ``addr`` (None: EFAULT).  Pages whose frames lie
        one after the other in the pool (a process's pages mostly do) are read with one
        access, not one per page."""
        out = bytearray()
        mem = self.env.mem
        pages = p.pages
        run, length = -1, 0  # the pool range still to read
        while n > 0:
            a = pages.get(addr >> 12)
            if a is None:
                a = await self.frame_of(p, addr, False)
                if a is None:
                    return None
            else:
                a += addr & 0xFFF
            k = min(n, PAGE - (addr & 0xFFF))
            if a == run + length and length + k <= MAX_ACCESS:
                length += k
            else:
                if length:
                    out += await mem.read(run, length)
                run, length = a, k
            addr += k
            n -= k
        if length:
            out += await mem.read(run, length)
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
        """Write ``data`` into ``p``'s memory at ``addr`` (False: EFAULT, after what fitted);
        consecutive pool frames in one access, as :meth:`read`."""
        mem = self.env.mem
        pages, refs, dirty = p.pages, self.refs, self.dirty
        v: Vma | None = None
        run, start, length = -1, 0, 0  # pool address, offset in data, bytes still to write
        i = 0
        end = len(data)
        while i < end:
            at = addr + i
            a = pages.get(at >> 12)
            if a is not None and refs.get(a, 1) == 1:  # its own page: writable if its VMA is
                if v is None or not v.start <= at < v.end:
                    v = p.vma(at)
                if v is None or not v.rights & _W:
                    a = None
            if a is None or refs.get(a, 1) != 1:
                a = await self.frame_of(p, at, True)
                if a is None:
                    if length:
                        await mem.write(run, data[start : start + length])
                    return False
                a &= ~0xFFF
            k = min(end - i, PAGE - (at & 0xFFF))
            dirty.add(a)
            a += at & 0xFFF
            if a == run + length and length + k <= MAX_ACCESS:
                length += k
            else:
                if length:
                    await mem.write(run, data[start : start + length])
                run, start, length = a, i, k
            i += k
        if length:
            await mem.write(run, data[start : start + length])
        return True

    async def unmap_range(self, p: Proc, start: int, end: int) -> None:
        freed = len(self.free)
        for vpn in pages_in(p, start, end):
            a = p.pages.pop(vpn)
            await p.task.unmap(Fpage.mem(vpn << 12, 12, MemRights.RWX), include_self=True)
            self.decref(a)
        if self.cfg.zero_on_free:  # what it let go is cleared now (linux/lifetime.py)
            await lifetime.clear_freed(self, freed)

    # ------------------------------------------------------------- processes
    async def spawn(self, image: Image, argv: list[str], envp: list[str], exe: str, path: str = "") -> Proc:
        """The program: a new process running ``image`` (task, memory, initial stack, main
        thread) in the working directory ``cfg.cwd``, with the host's streams as fds 0-2 and the
        console as its controlling terminal.  With ``cfg.init``, init is started first as
        pid 1 and the program is its child, pid 2, leader of a session of its own."""
        ppid = 0
        if self.cfg.init is not None:
            init = self._new_proc(INIT_NAME, 0)  # pid 1; started once the program runs
            self.init_pid = init.pid
            init.unkillable = True
            self.init_waiting = init
            ppid = init.pid
        p = self._new_proc(path or exe, ppid)  # Linux names a process after its file, not argv[0]
        self.main_pid = p.pid
        self.vfs.tty.session = self.vfs.tty.pgrp = p.pid
        p.rlimits[RLIMIT_NPROC] = p.rlimits[RLIMIT_SIGPENDING] = (self.max_threads // 2,) * 2
        p.fds = std_files()
        p.exe = exe
        cwd = self.vfs.walk(self.vfs.root, self.cfg.cwd, None)[0]
        p.cwd = cwd if isinstance(cwd, Dir) else self.vfs.root
        await self.start_program(p, image, argv, envp, 0)
        return p

    async def start_init(self) -> None:
        """Start init (pid 1, made by :meth:`spawn`): ``cfg.init`` with no files, in ``/``,
        unkillable (see :mod:`l4sim.linux.rootfs`).  The serve loop calls it with the first
        message, once the program runs: nothing of init is needed before the program's first
        system call, so the program's first instruction does not wait for init's task."""
        p, self.init_waiting = self.init_waiting, None
        assert p is not None and self.cfg.init is not None
        p.rlimits[RLIMIT_NPROC] = p.rlimits[RLIMIT_SIGPENDING] = (self.max_threads // 2,) * 2
        p.exe = "/" + INIT_NAME
        p.cwd = self.vfs.root
        await self.start_program(p, self.cfg.init, [p.exe], [], 0)

    def alloc_pid(self) -> int:
        """The next free pid (a thread's tid too), as Linux hands them out: one more than the
        last, wrapping around at PID_MAX to RESERVED_PIDS and skipping every number still in
        use as a pid, tid, process group or session.  :meth:`fork_limit` makes sure one is free."""
        self.made += 1
        pid = self.next_pid
        if pid < PID_MAX and not self.pids_wrapped:
            self.next_pid = pid + 1
            self.last_pid = pid
            return pid
        used = {*self.all, *self.threads, *(q.pgid for q in self.procs.values()), *(q.sid for q in self.procs.values())}
        for _ in range(PID_MAX):
            if pid >= PID_MAX:
                pid = RESERVED_PIDS
                self.pids_wrapped = True
            if pid not in used:
                self.next_pid = pid + 1
                self.last_pid = pid
                return pid
            pid += 1
        raise RuntimeError("no pid left")  # fork_limit keeps this from happening

    def tasks(self) -> int:
        """Tasks in the system, as Linux counts them for threads-max and RLIMIT_NPROC: every
        thread, and every process not yet reaped (everybody is root: one user has them all)."""
        return len(self.threads) + len(self.all) - len(self.procs)

    def fork_limit(self, p: Proc) -> int:
        """0 when ``p`` may make another task (fork, vfork, clone), else -EAGAIN: the machine's
        threads-max, or ``p``'s RLIMIT_NPROC (``ulimit -u``), reached.  (Linux does not hold
        root to RLIMIT_NPROC; here everybody is root, and the limit is kept all the same, so
        that it can bound what a program makes.)"""
        n = self.tasks()
        if n >= self.max_threads or n >= p.rlimits[RLIMIT_NPROC][0]:
            return -EAGAIN
        return 0

    def _new_proc(self, name: str, ppid: int) -> Proc:
        pid = self.alloc_pid()
        self.procs_made += 1
        name = comm(name)
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
        p.l4_slots = {}

    async def _new_thread(self, p: Proc, tid: int) -> LinuxThread:
        """A thread of ``p``'s task with its own gate (label ``tid << 2``) as pager and exception
        handler; not started yet."""
        env = self.env
        gate = await env.factory.create_gate(env.thread, label=tid << 2)
        made: list[Gate | ThreadCap] = [gate]
        try:
            th = await env.factory.create_thread(p.name)
            made.append(th)
            await th.control(bind=p.task)
            if p.free_slots:
                slot = p.free_slots.pop()
            else:
                slot = p.next_slot
                p.next_slot += 1
            await p.task.map(env.task, gate.fpage(), slot)
            await th.control(pager=slot, exc_handler=slot)
        except L4Error:  # out of kernel memory: nothing of it stays
            for cap in made:
                await env.task.delete(cap.slot)
                env.free_slot(cap.slot)
            raise
        t = LinuxThread(tid, p, th, gate, slot, prio=self.cfg.guest_prio, kprio=self.cfg.guest_prio)
        p.threads[tid] = t
        self.threads[tid] = t
        if p.cur is None or p.cur.tid not in p.threads:
            p.cur = t
        return t

    async def _run_thread(self, t: LinuxThread, ip: int, sp: int) -> None:
        """Start ``t`` as a guest thread at ``ip``; a process's n-th thread runs on core n mod cores."""
        p = t.proc
        mask = self.cpu_mask
        allowed = [i for i in range(self.ncores) if mask >> i & 1 and (not t.affinity or t.affinity >> i & 1)] \
            or [(mask & -mask).bit_length() - 1]
        cpu = allowed[p.spawned % len(allowed)]
        p.spawned += 1
        t.cpu = cpu
        t.kprio = t.prio
        await self.env.scheduler.run_thread(t.thread, t.prio, sched_quantum(t.policy), 1 << cpu)
        r = await t.thread._op("ex_regs guest", ThreadOp.EX_REGS, ip, sp, EX_REGS_GUEST)
        assert r.proto == 0

    def program(self, data: bytes, path: str) -> Image:
        """The parsed image of executable ``data`` (ElfError when it is none): from the cache
        of the last TEXT_CACHE programs, whose read-only pages the page cache keeps."""
        cache = self.elf_cache
        image = cache.pop(data, None)
        if image is None:
            image = parse(data, path)
            while len(cache) >= TEXT_CACHE:  # the least recently started leaves, and its pages
                old = cache.pop(next(iter(cache)))
                pages = list(self.text_cache.pop(id(old), {}).values())
                w = self.windows.pop(id(old), None)
                if w is not None:  # its window goes first (start_program), then the frames
                    w.live = False
                    self.windows_gone.append((w, pages))
                else:
                    for a in pages:
                        self.decref(a)
        cache[data] = image  # the most recent last
        return image

    def _text_pages(self, image: Image) -> dict[int, int]:
        """The page cache's frames of ``image``'s read-only pages (filled by :meth:`start_program`),
        kept while ``elf_cache`` keeps the image; an image from elsewhere gets none kept."""
        if not any(v is image for v in self.elf_cache.values()):
            return {}
        return self.text_cache.setdefault(id(image), {})

    async def start_program(self, p: Proc, image: Image, argv: list[str], envp: list[str], sigmask: int,
                            caller: LinuxThread | None = None) -> None:
        """Load ``image`` into a fresh task of ``p`` and start its main thread (with ``caller``'s
        scheduling attributes: execve keeps them)."""
        env = self.env
        ran = (p.exe, sum(len(s.data) for s in image.segments if s.flags & PF_X))
        self.ran[ran] = self.ran.get(ran, 0) + 1
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
        while self.windows_gone:  # programs that left the cache: their windows, then frames
            gone, pages = self.windows_gone.pop()
            for va in gone.hot:
                await env.task.unmap(Fpage.mem(gone.hot_base + va, 12, MemRights.RWX), include_self=True)
            for va in gone.rights:
                await env.task.unmap(Fpage.mem(gone.base + va, 12, MemRights.RWX), include_self=True)
            self.window_slots.append((gone.base - TEXT_WINDOW) // TEXT_SPAN)
            for page in pages:
                self.decref(page)
        cached = self._text_pages(image)
        win = self.windows.get(id(image))
        if win is None and self.window_slots and any(v is image for v in self.elf_cache.values()):
            slot = self.window_slots.pop()
            win = self.windows[id(image)] = TextWindow(TEXT_WINDOW + slot * TEXT_SPAN, cached,
                                                       TEXT_WINDOW + (TEXT_CACHE + 1 + slot) * TEXT_SPAN)
        frames: dict[int, int] = {}
        for va in sorted(want):
            a = cached.get(va)
            if a is not None:
                self.refs[a] = self.refs.get(a, 1) + 1
                self.text_shared += 1
            else:
                a = await self.alloc()
            frames[va] = a
        for s in image.segments:  # the bytes, one access per run of frames side by side in the pool
            off = 0
            run, start, length = -1, 0, 0  # pool address, offset in the data, bytes
            while off < len(s.data):
                va = s.vaddr + off
                k = min(len(s.data) - off, PAGE - (va & 0xFFF))
                if (va & ~0xFFF) not in cached:
                    a = frames[va & ~0xFFF] + (va & 0xFFF)
                    if a == run + length and off == start + length and length + k <= MAX_ACCESS:
                        length += k
                    else:
                        if length:
                            await env.mem.write(run, s.data[start : start + length])
                        run, start, length = a, off, k
                off += k
            if length:
                await env.mem.write(run, s.data[start : start + length])
        for va, a in frames.items():
            if va not in cached:
                self.dirty.add(a)
                if not want[va] & _W:  # into the cache, which keeps a reference of its own
                    cached[va] = a
                    self.refs[a] = self.refs.get(a, 1) + 1
                    if win is not None:  # and into its window
                        await env.task.map(env.task, Fpage.mem(a, 12, want[va]), win.base + va)
                        win.rights[va] = want[va]
            p.pages[va >> 12] = a
            if win is None or va not in win.rights:
                await task.map(env.task, Fpage.mem(a, 12, want[va]), va)
        p.text = win
        p.forked = False
        p.hot = 0
        if win is not None:  # the cached pages in a few large flexpages
            for va, order in _blocks(sorted(win.rights)):
                await task.map(env.task, Fpage.mem(win.base + va, order, MemRights.RWX), va)
        p.brk_start = p.brk = image.end
        p.mmap_next = MMAP_TOP
        p.vmas.append(Vma(p.brk_start, p.brk, MemRights.RW, "heap"))
        p.vmas.append(Vma(STACK_TOP - STACK_SIZE, STACK_TOP, MemRights.RW, "stack"))
        sp = await self._initial_stack(p, image, argv, envp)
        p.spawned = 0
        t = await self._new_thread(p, p.pid)
        t.sigmask = sigmask
        if caller is not None:
            inherit_sched(caller, t)
        p.cur = t
        await self._run_thread(t, image.entry, sp)

    def _hot_ok(self, p: Proc, w: TextWindow) -> bool:
        """Has ``p`` every page of ``w``'s hot set as the window has it, in a VMA that allows
        the window's rights (then its child may get them all)?"""
        frames, rights, pages = w.frames, w.rights, p.pages
        v: Vma | None = None
        for va in w.hot:
            if pages.get(va >> 12) != frames[va]:
                return False
            if v is None or not v.start <= va < v.end:
                v = p.vma(va)
                if v is None:
                    return False
            if rights[va] & ~v.rights:
                return False
        return True

    async def note_child_fault(self, p: Proc, vpn: int) -> None:
        """A forked child of ``p``'s program faulted on program page ``vpn``: count it; at
        HOT_AFTER children the page joins the hot set (mapped into the hot window)."""
        w = p.text
        if w is None or not w.live:
            return
        va = vpn << 12
        if va in w.hot or va not in w.rights:
            return
        n = w.faults.get(va, 0) + 1
        if n < HOT_AFTER:
            w.faults[va] = n
            return
        w.faults.pop(va, None)
        await self.env.task.map(self.env.task, Fpage.mem(w.base + va, 12, w.rights[va]), w.hot_base + va)
        w.hot[va] = len(w.hot)

    def around(self, p: Proc, vpn: int, v: Vma) -> MapItem | None:
        """Fault-around: a map item of the pages around ``vpn`` from ``p``'s text window -- the
        largest aligned flexpage of at most 2**FAULT_AROUND pages whose every window page is
        the one ``p`` has at that address and lies in ``v`` -- or None when ``vpn`` itself is
        not such a page."""
        w = p.text
        if w is None or not w.live:
            return None
        frames, rights, pages = w.frames, w.rights, p.pages
        va = vpn << 12
        if frames.get(va) != pages.get(vpn) or va not in rights:
            return None
        # pages fork mapped from the hot set are not mapped again from here (that would replace
        # the mapping: a new place in the mapping tree, and the CPU's translations flushed)
        hot, n = w.hot, p.hot
        order = FAULT_AROUND
        while order:
            size = PAGE << order
            start = va & ~(size - 1)
            if v.start <= start and start + size <= v.end and all(
                    frames.get(a) == pages.get(a >> 12) and not (n and hot.get(a, n) < n)
                    for a in range(start, start + size, PAGE) if a in rights and a != va):
                break
            order -= 1
        start = va & ~((PAGE << order) - 1)
        return MapItem(Fpage.mem(w.base + start, 12 + order, v.rights), snd_base=start)

    def vfork_done(self, p: Proc) -> None:
        """``p`` has exec'd or ended: the parent's thread waiting in vfork goes on."""
        if p.vfork_waiter:
            self.wake({p.vfork_waiter})
            p.vfork_waiter = 0

    async def fork(self, parent: Proc, words: tuple[int, ...]) -> Proc | int:
        """A copy of ``parent`` sharing its pages copy-on-write, with one thread that starts with
        ``words``' registers (those of the calling thread's fork) and rax 0; -ENOMEM when the
        kernel has no memory for it (see :meth:`fork_limit` for the limits to check first)."""
        c = self._new_proc(parent.name, parent.pid)
        try:
            await self._fork(parent, c, words)
        except (L4Error, MemoryError):  # no kernel memory for its task or thread, or no frames: ENOMEM
            await self._unmake(c)
            return -ENOMEM
        return c

    async def _unmake(self, c: Proc) -> None:
        """Take back a process that could not be made whole (fork ran out of kernel memory)."""
        env = self.env
        for t in list(c.threads.values()):
            await self._unmake_thread(t)
        if c.task is not None:
            await env.task.delete(c.task.slot)
            env.free_slot(c.task.slot)
        for a in c.pages.values():
            self.decref(a)
        c.pages.clear()
        close_all(self, c)
        self.procs.pop(c.pid, None)
        self.all.pop(c.pid, None)

    async def _unmake_thread(self, t: LinuxThread) -> None:
        """Take back a thread that never ran (its clone or fork failed)."""
        env = self.env
        for cap in (t.thread, t.gate):
            await env.task.delete(cap.slot)
            env.free_slot(cap.slot)
        del t.proc.threads[t.tid]
        self.threads.pop(t.tid, None)
        t.proc.free_slots.append(t.slot)

    async def _fork(self, parent: Proc, c: Proc, words: tuple[int, ...]) -> None:
        env = self.env
        c.pgid, c.sid, c.exe, c.cwd, c.umask = parent.pgid, parent.sid, parent.exe, parent.cwd, parent.umask
        c.rlimits = dict(parent.rlimits)
        c.sigign, c.sighand, c.sigact = set(parent.sigign), set(parent.sighand), dict(parent.sigact)
        c.brk_start, c.brk, c.mmap_next = parent.brk_start, parent.brk, parent.mmap_next
        self.fork_memory(parent, c)
        for fd, e in parent.fds.items():
            e.file.refs += 1
            c.fds[fd] = Fd(e.file, e.cloexec)
        await self._space(c)
        if not await self.populate_shared(parent):
            raise MemoryError("shared anonymous memory larger than the machine")
        for vpn, a in parent.pages.items():
            n = self.refs.get(a, 1)
            self.refs[a] = n + 1
            c.pages[vpn] = a
            v = parent.vma(vpn << 12)
            if n == 1 and v is not None and v.rights & _W and not v.shared:
                await env.task.unmap(Fpage.mem(a, 12, MemRights.W))  # every sharer loses W
        w = parent.text
        if w is not None and w.live and w.hot and self._hot_ok(parent, w):
            # the program pages its forked children use, at once: a flexpage or two over the
            # hot set's window maps just those (a fault each would cost more)
            lo, hi = min(w.hot), max(w.hot) + PAGE
            for va, order in _cover(lo, hi):
                await c.task.map(env.task, Fpage.mem(w.hot_base + va, order, MemRights.RWX), va)
            c.hot = len(w.hot)
        c.forked = True
        t = await self._new_thread(c, c.pid)
        inherit_sched(parent.cur, t)
        t.sigmask = parent.cur.sigmask
        t.altstack = parent.cur.altstack  # fork keeps the caller's alternate stack
        regs = list(words[:20])
        regs[0] = 0
        t.start_regs = tuple(regs)
        await self._run_thread(t, FORK_RIP, 0)
        await self.set_fpu_state(t, await self.fpu_state(parent.cur))  # fork copies x87/SSE state
        self.forks += 1
        self.tasks_peak = max(self.tasks_peak, self.tasks())

    async def clone_thread(self, p: Proc, words: tuple[int, ...], stack: int, tls: int | None,
                           clear_tid: int) -> LinuxThread | int:
        """A new thread of ``p`` (same task: same memory, files and handlers) that starts with the
        caller's registers ``words`` and rax 0, rsp ``stack`` (0: the caller's), fs_base ``tls``
        (None: the caller's) and the caller's signal mask."""
        tid = self.alloc_pid()
        try:
            t = await self._new_thread(p, tid)
        except L4Error:
            return -ENOMEM
        regs = list(words[:20])
        regs[0] = 0
        if stack:
            regs[16] = stack
        if tls is not None:
            regs[18] = tls
        t.start_regs = tuple(regs)
        t.sigmask = p.cur.sigmask
        inherit_sched(p.cur, t)
        t.clear_tid = clear_tid
        try:
            await self._run_thread(t, FORK_RIP, 0)
        except L4Error:
            await self._unmake_thread(t)
            return -ENOMEM
        await self.set_fpu_state(t, await self.fpu_state(p.cur))  # as does clone
        self.tasks_peak = max(self.tasks_peak, self.tasks())
        return t

    # --- a thread's x87/SSE state, kept by the kernel with its registers
    async def fpu_state(self, t: LinuxThread) -> tuple[int, ...]:
        """``t``'s x87/SSE state: the first 416 bytes of an FXSAVE image, as words (the
        kernel's ``ThreadOp.GUEST_FPU``)."""
        return (await t.thread._op("guest fpu", ThreadOp.GUEST_FPU, 0)).words

    async def set_fpu_state(self, t: LinuxThread, words: tuple[int, ...]) -> None:
        await t.thread._op("guest fpu", ThreadOp.GUEST_FPU, 1, *words)

    async def _initial_stack(self, p: Proc, image: Image, argv: list[str], envp: list[str]) -> int:
        """Write argc, argv, envp and auxv below STACK_TOP (Linux's layout); returns rsp."""
        blob = bytearray()
        top = STACK_TOP - 16  # a little space above everything

        def put(b: bytes) -> int:
            blob[:0] = b  # grows downwards
            return top - len(blob)

        rnd = bytes(self.rng.getrandbits(8) for _ in range(16))
        # strings: argv, envp, platform, execfn, random bytes (addresses fixed after layout)
        strings = [text_bytes(a) + b"\0" for a in argv] + [text_bytes(e) + b"\0" for e in envp]
        execfn = text_bytes(argv[0] if argv else "a.out") + b"\0"
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


def _blocks(vas: list[int]) -> list[tuple[int, int]]:
    """(address, order) of aligned flexpages that together cover the pages ``vas`` (sorted)
    and the gaps between them inside each flexpage: the window has nothing there, so the
    gaps map nothing.  At most 2**TEXT_ORDER_MAX pages each."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(vas)
    while i < n:
        start = vas[i]
        order = 0
        # grow while aligned, within the limit, and not past the last page
        while (order < TEXT_ORDER_MAX and not start & ((PAGE << (order + 1)) - 1)
               and start + (PAGE << (order + 1)) <= vas[-1] + PAGE):
            order += 1
        end = start + (PAGE << order)
        out.append((start, 12 + order))
        while i < n and vas[i] < end:
            i += 1
    return out


def _cover(start: int, end: int) -> list[tuple[int, int]]:
    """(address, order) of the aligned flexpages, largest first where alignment allows (at most
    2**TEXT_ORDER_MAX pages), that together cover [start, end) exactly."""
    out: list[tuple[int, int]] = []
    while start < end:
        order = 0
        while (order < TEXT_ORDER_MAX and not start & ((PAGE << (order + 1)) - 1)
               and start + (PAGE << (order + 1)) <= end):
            order += 1
        out.append((start, 12 + order))
        start += PAGE << order
    return out
