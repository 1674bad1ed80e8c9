"""The kernel's binary interface: numbers that user code and traces share.

Every constant here mirrors Fiasco.OC (``l4sys/include/consts.h``,
``ipc.h``, ``__l4_fpage.h``) so that a trace or a message word means to a
reader what it means on the real kernel.  Errors are values, never Python
exceptions: :class:`IpcErr` for the IPC path and :class:`Err` for kernel
object invocations (Fiasco returns ``-errno`` in the reply tag's label).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

# --- IPC operation flags (l4sys consts.h) ------------------------------------
SEND = 0x1
RECV = 0x2
OPEN_WAIT = 0x4
REPLY = 0x8
CALL = SEND | RECV
WAIT = RECV | OPEN_WAIT
SEND_AND_WAIT = SEND | RECV | OPEN_WAIT
REPLY_AND_WAIT = REPLY | RECV | OPEN_WAIT

#: largest number of message registers (untyped words plus two per item)
MSG_WORDS = 63
WORD_MASK = (1 << 64) - 1
#: a protocol label occupies tag bits 16..63 and is signed
LABEL_MIN = -(1 << 47)
LABEL_MAX = (1 << 47) - 1

#: capability slots of a task: 2**20, as a 32-bit cap index >> 12
CAP_SLOTS = 1 << 20
#: capability index encoding: slot << 12, bit 11 invalid, bit 10 reply
CAP_SHIFT = 12
INVALID_CAP = 1 << 11
REPLY_CAP = 1 << 10

# --- initial capability slots of every program ---------------------------------
SLOT_TASK = 1
SLOT_FACTORY = 2
SLOT_THREAD = 3
SLOT_PAGER = 4
SLOT_LOG = 5
SLOT_ICU = 6
SLOT_SCHEDULER = 7
#: first slot free for a program's own use
SLOT_FIRST_FREE = 8
#: the comm-control object of a communication model that has one, in the root task: the
#: last slot, which no allocator hands out (see kernel/comm.py)
SLOT_COMMCTL = CAP_SLOTS - 1

# --- thread ids (the thread-id communication models, kernel/comm.py) -------------
#: ``Ipc.cap`` with this bit names a thread by its global id, not a capability slot
TID_FLAG = 1 << 40
TID_MASK = TID_FLAG - 1


def tid(kid: int) -> int:
    """The destination word that names thread ``kid`` by its global id."""
    return TID_FLAG | kid


# message tag flags (bits 12..15)
TAG_ERROR = 0x8000
TAG_PROPAGATE = 0x4000
TAG_SCHEDULE = 0x2000
TAG_TRANSFER_FPU = 0x1000


def msgtag(label: int, words: int, items: int, flags: int = 0) -> int:
    """Fiasco's message-tag word: label << 16 | flags | items << 6 | words.

    The label is signed (protocols are negative); the word is returned as an
    unsigned 64-bit value, as a register would hold it.
    """
    return ((label << 16) | (flags & 0xF000) | ((items & 0x3F) << 6) | (words & 0x3F)) & WORD_MASK


def msgtag_fields(tag: int) -> tuple[int, int, int, int]:
    """(label, words, items, flags) of a tag word; inverse of :func:`msgtag`."""
    label = tag >> 16
    if label >= 1 << 47:
        label -= 1 << 48
    return label, tag & 0x3F, (tag >> 6) & 0x3F, tag & 0xF000


class IpcErr(IntEnum):
    """Fiasco.OC IPC error codes (the TCR error register).  Odd = receive phase."""

    OK = 0
    RETIMEOUT = 0x3  # receive timeout
    SETIMEOUT = 0x2  # send timeout
    ENOT_EXISTENT = 0x4  # partner does not exist
    RECANCELED = 0x7
    SECANCELED = 0x6
    REMAPFAILED = 0x11
    SEMAPFAILED = 0x10
    RESNDPFTO = 0xC  # receive: page-fault timeout in the sender's space
    SERCVPFTO = 0xB  # send: page-fault timeout in the receiver's space
    REABORTED = 0xF
    SEABORTED = 0xE
    REMSGCUT = 0x9
    SEMSGCUT = 0x8


class Err(IntEnum):
    """Error numbers of kernel-object invocations (``-label`` of the reply)."""

    OK = 0
    EPERM = 1
    ENOENT = 2
    #: a server's handler failed in a way its protocol names no error for (Fiasco's L4_EIO)
    EIO = 5
    #: nothing to take now (a server's non-blocking receive, Fiasco's L4_EAGAIN)
    EAGAIN = 11
    ENOMEM = 12
    EACCES = 13
    #: bad address (Fiasco's L4_EFAULT)
    EFAULT = 14
    EBUSY = 16
    EEXIST = 17
    EINVAL = 22
    ERANGE = 34
    ENOSYS = 38
    ENODEV = 19


class Proto(IntEnum):
    """Protocol labels (negative tag labels) of kernel and runtime protocols."""

    NONE = 0
    IRQ = -1
    PAGE_FAULT = -2
    PREEMPTION = -3
    SYS_EXCEPTION = -4
    EXCEPTION = -5
    SIGMA0 = -6
    IO_PAGE_FAULT = -8
    KOBJECT = -10
    TASK = -11
    THREAD = -12
    LOG = -13
    SCHEDULER = -14
    FACTORY = -15
    VM = -16
    IRQ_SENDER = -18
    SEMAPHORE = -20
    META = -21
    DEBUGGER = -23
    #: the comm-control object of a communication model (an l4sim addition)
    COMMCTL = -30
    #: a kernel-memory fault to a pager or kpager (an l4sim addition, kernel/kmem.py)
    KMEM = -31


class Rights(IntFlag):
    """Object rights of a capability (Fiasco ``L4_cap_fpage_rights``)."""

    NONE = 0
    W = 0x1
    S = 0x2
    R = 0x4
    D = 0x8
    RW = R | W
    RWS = R | W | S
    RWSD = R | W | S | D


class MemRights(IntFlag):
    """Memory flexpage rights."""

    NONE = 0
    X = 0x1
    W = 0x2
    R = 0x4
    RW = R | W
    RWX = R | W | X


class FpageType(IntEnum):
    SPECIAL = 0
    MEMORY = 1
    IO = 2
    OBJECT = 3


#: the kinds by their 2-bit code (a tuple index, not an enum call: decoded on every map)
_FPAGE_KINDS = tuple(FpageType(i) for i in range(4))


# --- object operations ---------------------------------------------------------
class ThreadOp(IntEnum):
    CONTROL = 0
    EX_REGS = 1
    SWITCH = 2
    STATS = 3
    VCPU_RESUME = 4
    REGISTER_DELETE_IRQ = 5
    MODIFY_SENDERS = 6
    VCPU_CONTROL = 7
    #: l4sim: read or write a guest thread's x87/SSE state (see ``kernel/guest.py``)
    GUEST_FPU = 8
    #: an l4sim addition (kernel-memory model ``kpager``): take frames back from the thread's task
    KMEM_REVOKE = 0x10


# thread control flags
CTL_SET_PAGER = 0x10000
CTL_BIND_TASK = 0x200000
CTL_ALIEN = 0x400000
CTL_SET_EXC_HANDLER = 0x1000000
#: an l4sim addition (kernel-memory model ``kpager``): word 5 of control is the kpager's slot
CTL_SET_KPAGER = 0x2000000
# ex_regs flags
EX_REGS_CANCEL = 0x10000
EX_REGS_TRIGGER_EXCEPTION = 0x20000
#: l4sim: start (or restart) the target as an x86-64 guest thread at rip = ip, rsp = sp
#: (other registers zero; see ``kernel/guest.py``)
EX_REGS_GUEST = 0x40000
#: ``ip`` value in ex_regs meaning "leave the instruction pointer alone"
IP_UNCHANGED = WORD_MASK


class TaskOp(IntEnum):
    MAP = 0
    UNMAP = 1
    CAP_INFO = 2
    ADD_KU_MEM = 3
    #: l4sim: load native code (the analog of mapping a text segment)
    LOAD_CODE = 0x100


# unmap flags (second word of Task.unmap)
UNMAP_OTHERS = 0
UNMAP_ALL_SPACES = 0x80000000
UNMAP_DELETE_OBJ = 0xC0000000


class SchedOp(IntEnum):
    INFO = 0
    RUN_THREAD = 1
    IDLE_TIME = 2
    #: words: op, thread slot, budget ns, period ns, deadline ns (0: the period),
    #: flags (RESV_*), first release (absolute ns since boot; 0: now).  Budget 0 removes it.
    SET_RESERVATION = 0x10
    #: words: op, cpu.  Reply: (policy: SCHED_FP 0 | SCHED_EDF 1, live threads with a reservation
    #: on the cpu, their utilisation sum(budget / period) in ppm rounded up, their deadline misses)
    RESV_INFO = 0x11


#: the per-core orders of reserved threads that RESV_INFO reports (kernel.set_policy chooses one)
SCHED_FP = 0
SCHED_EDF = 1
SCHED_POLICY_NAMES = ("fp", "edf")


#: reservation flag: send a timeout fault (TRAP_BUDGET_TIMEOUT) to the exception handler
#: when the budget runs out
RESV_TIMEOUT_FAULT = 0x1
#: reservation flag: the thread is periodic from the start (job-based budget and deadlines;
#: its first job is released at the reservation's start, see docs/kernel.md § Scheduler)
RESV_PERIODIC = 0x2
RESV_FLAGS = RESV_TIMEOUT_FAULT | RESV_PERIODIC
#: the shortest period the SET_RESERVATION invocation accepts (ns)
RESV_MIN_PERIOD = 1000


class FactoryOp(IntEnum):
    """The object to create is named by its protocol label (Fiasco style)."""

    TASK = Proto.TASK
    THREAD = Proto.THREAD
    GATE = 0
    IRQ = Proto.IRQ_SENDER
    FACTORY = Proto.FACTORY


class IrqOp(IntEnum):
    TRIGGER = 2
    ATTACH = 0
    DETACH = 1
    UNMASK = 4
    MASK = 5


class IcuOp(IntEnum):
    BIND = 0
    UNBIND = 1
    INFO = 2
    MSI_INFO = 3
    UNMASK = 4
    SET_MODE = 6


class GateOp(IntEnum):
    """Operations on an IPC gate itself (invoked with the kobject label -10)."""

    BIND = 0x10
    GET_INFO = 0x11


class LogOp(IntEnum):
    WRITE = 0


# --- exception and fault numbers of native threads --------------------------
#: trap number of an uncaught Python exception in a native thread
TRAP_PY_EXCEPTION = 0x40
#: trap number of a trap object the kernel does not know
TRAP_BAD_TRAP = 0x41
#: trap number of a timeout fault: a reserved thread spent its budget (words: trapno, 0,
#: ip, traps, budget ns, period ns); a reply with label 0 lets it go on at its next replenishment
TRAP_BUDGET_TIMEOUT = 0x42

# --- alien L4 calls of guest threads (kernel/guest.py) ---------------------------
#: trap number of an L4 system call a guest thread makes (Fiasco's ia32 entry ``int 0x30``;
#: guest threads are alien: the kernel asks their exception handler first).  The exception
#: message's code says which half of the call it is.
TRAP_L4_CALL = 0x30
#: code of the exception before the call (the handler decides) and after it (the result is
#: in the registers; the handler's reply resumes the thread)
L4_CALL_ENTRY = 0
L4_CALL_DONE = 1
#: the reply label that lets an alien thread's L4 call pass (Fiasco's L4_PROTO_ALLOW_SYSCALL):
#: the kernel performs it with the thread's own task's capabilities
PROTO_ALLOW_SYSCALL = 1
#: the error flag of a message tag (set in a guest's result tag when the IPC failed)
MSGTAG_ERROR = 0x8000


# --- typed message items ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fpage:
    """A flexpage: 2**order units from ``base`` of one kind, with rights.

    For objects the unit is a capability slot, for memory a 4 KiB page (base
    is a byte address), for I/O a port.  ``word()`` gives Fiasco's encoding.
    """

    kind: FpageType
    base: int
    order: int = 0
    rights: int = Rights.RWSD

    @staticmethod
    def obj(slot: int, order: int = 0, rights: int = Rights.RWSD) -> Fpage:
        return Fpage(FpageType.OBJECT, slot, order, rights)

    @staticmethod
    def mem(addr: int, order: int = 12, rights: int = MemRights.RWX) -> Fpage:
        """Memory: 2**order bytes at ``addr`` (order >= 12, addr aligned)."""
        return Fpage(FpageType.MEMORY, addr, order, rights)

    @staticmethod
    def io(port: int, order: int = 0, rights: int = MemRights.RW) -> Fpage:
        """I/O ports: 2**order ports from ``port``."""
        return Fpage(FpageType.IO, port, order, rights)

    @staticmethod
    def all_memory(rights: int = MemRights.RWX) -> Fpage:
        """The whole address space (the receive window of a page fault)."""
        return Fpage(FpageType.MEMORY, 0, 64, rights)

    def word(self) -> int:
        """Fiasco's flexpage word (addresses as they are; slots and ports << 12)."""
        shift = 0 if self.kind == FpageType.MEMORY else CAP_SHIFT
        return (self.base << shift) | (self.order << 6) | (int(self.kind) << 4) | int(self.rights)

    @staticmethod
    def from_word(word: int) -> Fpage:
        kind = _FPAGE_KINDS[(word >> 4) & 3]
        base = word & ~0xFFF if kind == FpageType.MEMORY else word >> CAP_SHIFT
        return Fpage(kind, base, (word >> 6) & 0x3F, word & 0xF)

    def units(self) -> tuple[int, int] | None:
        """(first unit, log2 count) in the fpage's own units -- slots, pages or
        ports -- or None when the flexpage is malformed (misaligned, too big)."""
        kind, base, order = self.kind, self.base, self.order
        if type(base) is not int or type(order) is not int or base < 0 or order < 0:
            return None
        if kind == FpageType.MEMORY:
            if not 12 <= order <= 64 or base & ((1 << order) - 1) or base >= 1 << 64:
                return None
            return base >> 12, order - 12
        if kind == FpageType.OBJECT:
            limit = 20
        elif kind == FpageType.IO:
            limit = 16
        else:
            return None
        if order > limit or base & ((1 << order) - 1) or base + (1 << order) > 1 << limit:
            return None
        return base, order

    @property
    def size(self) -> int:
        return 1 << self.order


@dataclass(frozen=True, slots=True)
class MapItem:
    """A map (or, with ``grant``, grant) item carrying one flexpage.

    ``snd_base`` is the hot spot that picks the part of a large flexpage sent
    into a small receive window, or the position of a small one inside a large
    window, exactly as in Fiasco.
    """

    fpage: Fpage
    grant: bool = False
    snd_base: int = 0


@dataclass(frozen=True, slots=True)
class StrItem:
    """A string item (long IPC): ``length`` bytes at ``addr`` in the sender's space."""

    addr: int
    length: int


@dataclass(frozen=True, slots=True)
class StrBuf:
    """A receive buffer for a string item: up to ``length`` bytes at ``addr``."""

    addr: int
    length: int


def check_word(w: object) -> bool:
    """True when ``w`` is a machine word: an int with 0 <= w < 2**64."""
    return type(w) is int and 0 <= w <= WORD_MASK


def pack_bytes(data: bytes) -> tuple[int, ...]:
    """Pack bytes into little-endian 64-bit words, length first."""
    words = [len(data)]
    for i in range(0, len(data), 8):
        words.append(int.from_bytes(data[i : i + 8].ljust(8, b"\0"), "little"))
    return tuple(words)


def unpack_bytes(words: tuple[int, ...] | list[int]) -> bytes:
    """Inverse of :func:`pack_bytes`; a bad length gives as much as is there."""
    if not words:
        return b""
    n = words[0]
    raw = b"".join(w.to_bytes(8, "little") for w in words[1:])
    return raw[:n]


def timeout_encode_us(us: int) -> int:
    """Fiasco's relative timeout word: mantissa (10 bits) * 2**exponent (5 bits) us.

    0 means *never*; the zero timeout is 0x400 (exponent 1, mantissa 0), as
    ``L4_IPC_TIMEOUT_0``.  Values that need more precision than 10 bits are
    rounded down, as the format forces.
    """
    if us < 0:
        raise ValueError(f"a timeout cannot be negative: {us}")
    if us == 0:
        return 0x400
    e = 0
    m = us
    while m >= 1024:
        m >>= 1
        e += 1
    if e > 31:
        raise ValueError(f"timeout {us} us is beyond Fiasco's encoding (1023 * 2**31 us)")
    return (e << 10) | m


def timeout_decode_us(word: int) -> int | None:
    """Decode a relative timeout word; ``None`` means never."""
    if word == 0:
        return None
    e, m = word >> 10, word & 0x3FF
    return m << e
