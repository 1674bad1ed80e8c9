"""Linux among L4 programs: /dev/l4 stub drivers and the L4 calls of hybrid programs.

L4Linux is one user-level server among others (Härtig et al., "L4 - Virtualization and
Beyond", section 4.1), and its processes may reach the L4 world in two ways, both with
nothing but the capabilities the startup script gave the instance (``Config.l4_devices``):

**Stub drivers.**  Each capability is a character device ``/dev/l4/NAME`` (L4Linux's stub
drivers; the ORe switch's Linux stub is 300 lines).  A write sends its bytes as a string item
in a call to the server behind it (label: ``L4SIM_IOC_LABEL``, default 0; one word, the
length) and waits for the answer; a read takes the answer's bytes (its string item, else its
words as decimal text); ``ioctl(L4SIM_IOC_CALL)`` carries a label and words both ways; poll
says when an answer is there.  The calls are made by a worker thread of the personality per
device (:func:`_client_worker`), so a slow server holds up its writers only: the other
processes run on.  ``ioctl(L4SIM_IOC_SERVE)`` turns the other way round, for a capability
the script gave as a channel's server end: the gate is bound to a worker
(:func:`_serve_worker`) that takes the clients' calls; reads return their requests, and a
write answers the oldest one.

**Hybrid programs.**  A process may execute the L4 system-call entry (``int 0x30``,
``include/l4sim/l4.h``).  Its threads are alien: the kernel sends exception IPC (trap
``TRAP_L4_CALL``) and :func:`l4_call` decides.  A process the instance's configuration
allows (``Config.l4_allow``: executable paths, uids) has the call let pass -- the kernel
performs it with the capabilities in the process's own task, which it gets only through
``ioctl(L4SIM_IOC_BIND)`` -- and waits uninterruptibly (``/proc``: D) until the kernel
reports the result; any other process is killed by SIGSYS, as a seccomp filter kills.

The devices' state is the personality's (:class:`Bridge`, ``Personality.l4``); the worker
threads share it, as moe's copy worker shares moe's (the analog of one task's memory), and
tell the serving thread through an Irq (:data:`IRQ_LABEL`) when something has changed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from l4sim.kernel.abi import (
    CALL,
    INVALID_CAP,
    L4_CALL_ENTRY,
    MSGTAG_ERROR,
    OPEN_WAIT,
    PROTO_ALLOW_SYSCALL,
    RECV,
    SEND,
    Fpage,
    IpcErr,
    MapItem,
    MemRights,
    Rights,
    StrBuf,
    StrItem,
)
from l4sim.kernel.traps import Ipc
from l4sim.linux.elf import PAGE
from l4sim.linux.signals import KILLABLE, deliver, interrupt, signal_death
from l4sim.linux.state import (
    BLOCK,
    SLOT_GATE,
    Call,
    LinuxThread,
    Personality,
    Proc,
    Special,
)
from l4sim.linux.vfs import S_IFCHR, OFile, Vfs
from l4sim.user.env import Env, Gate, IrqCap, L4Error, ReplyCap, ThreadCap

#: the label of the Irq through which the workers wake the serving thread (no thread's
#: label: those are tid << 2; the keyboard's is 1 << 62)
IRQ_LABEL = 1 << 61
#: the label the serving workers bind their gates with
SERVE_LABEL = 0x10
#: the first capability slot of a process's own L4 table (below it: the personality's gates)
L4_SLOT_BASE = 0x40000
#: bytes one message carries (a write of more is a short write)
MSG_BYTES = PAGE
#: struct l4sim_msg of L4SIM_IOC_CALL: label (signed), count, words
MSG_WORDS = 61
MSG_SIZE = 8 * (2 + MSG_WORDS)
SIGSYS = 31
EPERM, EIO, ENXIO, EAGAIN, EFAULT, EBUSY, EINVAL, ENOTTY = 1, 5, 6, 11, 14, 16, 22, 25
POLLIN, POLLOUT = 0x1, 0x4


def _ioc(direction: int, nr: int, size: int) -> int:
    """Linux's _IOC: direction (write 1, read 2) << 30 | size << 16 | type << 8 | nr, type 'L'."""
    return (direction << 30) | (size << 16) | (ord("L") << 8) | nr


#: the ioctls of /dev/l4/NAME (include/l4sim/l4.h has the same numbers)
L4SIM_IOC_LABEL = _ioc(1, 1, 8)
L4SIM_IOC_CALL = _ioc(3, 2, MSG_SIZE)
L4SIM_IOC_BIND = _ioc(2, 3, 8)
L4SIM_IOC_SERVE = _ioc(0, 4, 0)
L4SIM_IOC_RECEIVE = _ioc(1, 5, 8)


@dataclass(eq=False)
class Job:
    """A call a process makes through a stub (a write, or L4SIM_IOC_CALL), and its answer."""

    tid: int
    label: int
    words: tuple[int, ...]
    data: bytes | None
    done: bool = False
    error: int = 0
    proto: int = 0
    answer_words: tuple[int, ...] = ()
    answer: bytes = b""


@dataclass(eq=False)
class Request:
    """A client's call to a serving stub: its bytes (what reads return), the reply capability
    the worker saved for the answer."""

    data: bytes
    reply: ReplyCap
    #: bytes a read has taken so far
    taken: int = 0


class L4Device(Special):
    """``/dev/l4/NAME``: the stub of one capability of the instance (see the module)."""

    killable = True

    def __init__(self, name: str, gate: Gate, rights: int, minor: int) -> None:
        super().__init__(S_IFCHR | 0o666)
        self.rdev = (10 << 8) | minor  # a misc device
        self.name = name
        self.gate = gate
        self.rights = rights
        #: the label of writes (L4SIM_IOC_LABEL)
        self.label = 0
        # --- the client side: calls waiting for the worker, finished ones by tid, the last answer
        self.queue: list[Job] = []
        self.jobs: dict[int, Job] = {}
        self.answer = bytearray()
        self.worker: ThreadCap | None = None
        self.kick: IrqCap | None = None
        #: the worker's send and receive buffers: pages of the personality's pool
        self.sbuf = self.rbuf = 0
        # --- the serving side
        self.serving = False
        self.requests: list[Request] = []
        self.server: ThreadCap | None = None
        self.abuf = self.qbuf = 0

    # --- reads and writes (files.py asks)
    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if self.serving:
            for r in self.requests:
                if r.taken < len(r.data):  # the oldest request not wholly read
                    out = r.data[r.taken : r.taken + n]
                    r.taken += len(out)
                    return out
            if f.flags & 0o4000:  # O_NONBLOCK
                return -EAGAIN
            self.watch(k, p.cur.tid)
            return BLOCK
        if self.answer:
            out = bytes(self.answer[:n])
            del self.answer[:n]
            return out
        if not self.queue:
            return b""  # no answer, none coming: the end of the file
        if f.flags & 0o4000:
            return -EAGAIN
        self.watch(k, p.cur.tid)
        return BLOCK

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        if self.serving:
            return self._answer(k, data)
        tid = p.cur.tid
        job = self.jobs.get(tid)
        if job is None:  # a new message: to the worker
            data = data[:MSG_BYTES]
            job = self.jobs[tid] = Job(tid, self.label, (len(data),), data)
            self._call(k, job)
        if not job.done:
            self.watch(k, tid)
            return BLOCK
        del self.jobs[tid]
        err = _result(job)
        return err if err < 0 else len(job.data or b"")

    def _call(self, k: Personality, job: Job) -> None:
        """Queue ``job`` for the worker, which the serving loop wakes (:func:`flush`)."""
        self.queue.append(job)
        bridge = _bridge(k)
        if self not in bridge.kicks:
            bridge.kicks.append(self)

    def _answer(self, k: Personality, data: bytes) -> int:
        """Answer the oldest request (with ``data`` as its string item); sent by :func:`flush`."""
        if not self.requests:
            return -EAGAIN  # nobody to answer
        r = self.requests.pop(0)
        data = data[:MSG_BYTES]
        _bridge(k).answers.append((self, r, data))
        self.changed(k)
        return len(data)

    def ready(self, k: Personality, f: OFile) -> int:
        if self.serving:
            waiting = any(r.taken < len(r.data) for r in self.requests)
            return (POLLIN if waiting else 0) | (POLLOUT if self.requests else 0)
        return (POLLIN if self.answer or not self.queue else 0) | (POLLOUT if not self.queue else 0)

    def nread(self) -> int:
        if self.serving:
            return sum(len(r.data) - r.taken for r in self.requests)
        return len(self.answer)

    # --- ioctl
    async def ioctl(self, k: Personality, p: Proc, c: Call, f: OFile, req: int, arg: int) -> int:
        if req == L4SIM_IOC_LABEL:
            raw = await k.read(p, arg, 8)
            if raw is None:
                return -EFAULT
            (label,) = struct.unpack("<q", raw)
            if not -(1 << 47) <= label < 1 << 47:
                return -EINVAL
            self.label = label
            return 0
        if req == L4SIM_IOC_CALL:
            return await self._ioctl_call(k, p, c, arg)
        if req == L4SIM_IOC_BIND:
            return await self._bind(k, p, arg)
        if req == L4SIM_IOC_SERVE:
            return await self._serve(k)
        if req == L4SIM_IOC_RECEIVE:
            return await self._receive_here(k, p, arg)
        return -ENOTTY

    async def _ioctl_call(self, k: Personality, p: Proc, c: Call, arg: int) -> int:
        tid = p.cur.tid
        job = self.jobs.get(tid)
        if job is None:
            if self.serving:
                return -EBUSY
            raw = await k.read(p, arg, MSG_SIZE)
            if raw is None:
                return -EFAULT
            label, count = struct.unpack_from("<qQ", raw)
            if count > MSG_WORDS or not -(1 << 47) <= label < 1 << 47:
                return -EINVAL
            job = self.jobs[tid] = Job(tid, label, struct.unpack_from(f"<{count}Q", raw, 16), None)
            self._call(k, job)
        if not job.done:
            self.watch(k, tid)
            return await interrupt(k, p, c, KILLABLE)
        del self.jobs[tid]
        if job.error:
            return -EIO if job.error != IpcErr.ENOT_EXISTENT else -ENXIO
        words = job.answer_words[:MSG_WORDS]
        out = struct.pack(f"<qQ{len(words)}Q", job.proto, len(words), *words)
        return 0 if await k.write(p, arg, out) else -EFAULT

    async def _bind(self, k: Personality, p: Proc, arg: int) -> int:
        """Map this capability into ``p``'s own task (read and write rights: call it, no
        more); the index its L4 calls name it by goes to ``arg``."""
        if not allowed(k, p):
            return -EPERM
        slot = p.l4_slots.get(self.name)
        if slot is None:
            slot = L4_SLOT_BASE + len(p.l4_slots)
            await p.task.map(k.env.task, self.gate.fpage(self.rights & (Rights.R | Rights.W)), slot)
            p.l4_slots[self.name] = slot
        return 0 if await k.write(p, arg, struct.pack("<Q", slot << 12)) else -EFAULT

    async def _receive_here(self, k: Personality, p: Proc, arg: int) -> int:
        """Bind the gate to the calling thread with the label in ``arg``: its clients' calls
        reach the thread's L4 open wait (``l4_ipc_wait``).  Needs the server's end."""
        if not allowed(k, p):
            return -EPERM
        if not self.rights & Rights.S:
            return -EPERM
        if self.serving:
            return -EBUSY
        raw = await k.read(p, arg, 8)
        if raw is None:
            return -EFAULT
        (label,) = struct.unpack("<Q", raw)
        if label & 3 or label >> 62:
            return -EINVAL
        await self.gate.bind(p.cur.thread, label)
        return 0

    async def _serve(self, k: Personality) -> int:
        """From now on the device serves the capability's clients: a worker bound to the gate
        takes their calls (:func:`_serve_worker`).  Needs the server's end (EPERM)."""
        if self.serving:
            return 0
        if not self.rights & Rights.S:
            return -EPERM
        if self.queue:
            return -EBUSY
        bridge = _bridge(k)
        self.qbuf = await k.alloc()
        self.abuf = await k.alloc()
        self.server = await k.env.spawn(_serve_worker, self, bridge, name=f"l4-{self.name}.serve",
                                        prio=bridge.prio)
        await self.gate.bind(self.server, SERVE_LABEL)
        self.serving = True
        return 0


def _result(job: Job) -> int:
    """What a write through a stub returns for its finished ``job`` (0: it went through)."""
    if job.error:
        return -ENXIO if job.error == IpcErr.ENOT_EXISTENT else -EIO
    if job.proto < 0:  # the server refused: its errno, as a driver would pass it on
        return job.proto if job.proto >= -4095 else -EIO
    return 0


@dataclass(eq=False)
class Bridge:
    """The instance's bridge to the L4 world: its devices and what the serving loop must do
    for them (``Personality.l4``)."""

    devices: dict[str, L4Device] = field(default_factory=dict)
    #: the Irq through which workers wake the serving thread
    irq: IrqCap | None = None
    #: the priority of the worker threads (the personality's own)
    prio: int = 1
    #: devices whose worker must look at its queue; answers to send (device, request, bytes)
    kicks: list[L4Device] = field(default_factory=list)
    answers: list[tuple[L4Device, Request, bytes]] = field(default_factory=list)
    #: devices with news from their workers (finished calls, new requests)
    news: list[L4Device] = field(default_factory=list)


def _bridge(k: Personality) -> Bridge:
    b = k.l4
    assert isinstance(b, Bridge), "devices exist only with a bridge"
    return b


def allowed(k: Personality, p: Proc) -> bool:
    """``p`` may bind the instance's capabilities and make L4 calls: its executable's path or
    its uid (everybody is root: 0) is in ``Config.l4_allow``."""
    for who in k.cfg.l4_allow:
        if who == p.exe or (type(who) is int and who == 0):
            return True
    return False


async def setup(k: Personality) -> None:
    """Make ``/dev/l4/NAME`` for each capability of ``Config.l4_devices`` and the Irq the
    workers wake the serving thread with."""
    env = k.env
    names = k.cfg.l4_devices
    if not names:
        return
    bridge = k.l4 = Bridge()
    info = await env.scheduler.info()
    bridge.prio = max(1, min(info[1], k.cfg.guest_prio + 1))
    bridge.irq = await env.factory.create_irq()
    await bridge.irq.attach(env.thread, IRQ_LABEL)
    for i, name in enumerate(names):
        gate = env.cap(name, Gate)
        valid, _proto, rights = await env.task.cap_info(gate.slot)
        if not valid:
            continue
        dev = L4Device(name, gate, rights, 200 + i)
        bridge.devices[name] = dev
        Vfs.put(k.vfs.root, f"/dev/l4/{name}", dev)


async def flush(k: Personality) -> None:
    """What the system calls left for the serving thread: wake the workers of devices with
    new calls (an Irq trigger each), send the answers of serving devices."""
    bridge = _bridge(k)
    env = k.env
    while bridge.answers:
        dev, r, data = bridge.answers.pop(0)
        if data:
            await env.mem.write(dev.abuf, data)
        items = (StrItem(dev.abuf, len(data)),) if data else ()
        await env.ipc(Ipc(r.reply.slot, SEND, 0, (len(data),), items))  # a reply never blocks
        env.free_slot(r.reply.slot)
    while bridge.kicks:
        dev = bridge.kicks.pop(0)
        if dev.worker is None:
            dev.sbuf = await k.alloc()
            dev.rbuf = await k.alloc()
            dev.kick = await env.factory.create_irq()
            dev.worker = await env.spawn(_client_worker, dev, bridge, name=f"l4-{dev.name}",
                                         prio=bridge.prio)
            await dev.kick.attach(dev.worker)
        assert dev.kick is not None
        await dev.kick.trigger()


def news(k: Personality) -> None:
    """The workers' Irq: wake the threads waiting on devices that changed."""
    bridge = _bridge(k)
    while bridge.news:
        dev = bridge.news.pop(0)
        for tid, job in list(dev.jobs.items()):
            t = k.threads.get(tid)
            if job.done and (t is None or t.blocked is None):
                del dev.jobs[tid]  # its caller is gone (killed while it waited)
        dev.changed(k)


async def _client_worker(env: Env, dev: L4Device, bridge: Bridge) -> None:
    """The thread that makes a device's calls: woken by its Irq, it calls the server for each
    queued job (its bytes as a string item from the send buffer, the answer's string into the
    receive buffer) and tells the serving thread."""
    assert dev.kick is not None and bridge.irq is not None
    while True:
        await env.receive(dev.kick)
        while dev.queue:
            job = dev.queue[0]
            try:
                await _client_call(env, dev, job)
            except Exception:  # a bug must not leave the caller waiting: the call failed
                job.error = int(IpcErr.SEMSGCUT)
            if job.data is not None and not _result(job):
                dev.answer[:] = job.answer  # what reads of the device return
            dev.queue.pop(0)
            job.done = True
            if dev not in bridge.news:
                bridge.news.append(dev)
            await bridge.irq.trigger()


async def _client_call(env: Env, dev: L4Device, job: Job) -> None:
    """One call of a device's worker: the job's bytes as a string item (an ioctl's call has
    words only); the answer's string, else its words as text, is the job's answer."""
    items: tuple[StrItem, ...] = ()
    if job.data:
        await env.mem.write(dev.sbuf, job.data)
        items = (StrItem(dev.sbuf, len(job.data)),)
    msg = await env.ipc(Ipc(dev.gate.slot, CALL, job.label, job.words, items=items,
                            rcv=(StrBuf(dev.rbuf, MSG_BYTES),)))
    job.error, job.proto, job.answer_words = msg.error, msg.proto, msg.words
    got = [b for b in msg.items if isinstance(b, StrBuf)]
    if got and got[0].length:
        job.answer = await env.mem.read(dev.rbuf, got[0].length)
    elif msg.words and not msg.error:
        job.answer = (" ".join(str(w) for w in msg.words) + "\n").encode()


async def _serve_worker(env: Env, dev: L4Device, bridge: Bridge) -> None:
    """The thread a serving device's gate is bound to: each client's call (its string item,
    else its label and words as text) is kept with its saved reply capability for the reads
    and writes of the device; the serving thread hears of it through the Irq."""
    assert bridge.irq is not None
    wait = Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, (StrBuf(dev.qbuf, MSG_BYTES),))
    msg = await env.ipc(wait)
    while True:
        if not msg.error and msg.label & ~3 == SERVE_LABEL:
            got = [b for b in msg.items if isinstance(b, StrBuf)]
            if got:
                data = await env.mem.read(dev.qbuf, got[0].length) if got[0].length else b""
            else:
                data = (" ".join(str(v) for v in (msg.proto, *msg.words)) + "\n").encode()
            try:
                reply = await env.save_reply()
            except L4Error:  # it was sent, not called (or the caller is gone): nobody waits
                reply = None
            if reply is not None:
                dev.requests.append(Request(data, reply))
                if dev not in bridge.news:
                    bridge.news.append(dev)
                await bridge.irq.trigger()
        msg = await env.ipc(wait)


# --------------------------------------------------------------------------- hybrid programs
_RAX, _RCX, _RDX, _RSI, _RDI = 0, 2, 3, 4, 5
_FLAGS = {1: "send", 2: "receive", 3: "call", 6: "wait", 7: "send_and_wait", 8: "reply", 0xE: "reply_and_wait"}


def _err_name(err: int) -> str:
    try:
        return IpcErr(err).name
    except ValueError:
        return f"{err:#x}"


def _describe(regs: list[int]) -> str:
    dest, tag = regs[_RDX], regs[_RAX]
    op = _FLAGS.get(dest & 0xF, f"flags={dest & 0xF:#x}")
    cap = "L4_INVALID_CAP" if dest & INVALID_CAP else f"{dest & ~0xFFF:#x}"
    label = tag >> 16
    if label >= 1 << 47:
        label -= 1 << 48
    return f"l4_ipc({op}, cap={cap}, label={label}, words={tag & 0x3F})"


async def l4_call(k: Personality, p: Proc, t: LinuxThread, w: tuple[int, ...]) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    """An L4 system call of ``t`` (exception IPC, trap TRAP_L4_CALL; words: trapno, code, RIP,
    traps, 0, the registers).  Before it (code L4_CALL_ENTRY): a process the configuration
    does not allow dies of SIGSYS; a call naming one of the personality's own gates (slots
    below L4_SLOT_BASE) is answered as the kernel answers an empty slot; anything else is let
    pass (PROTO_ALLOW_SYSCALL), after the UTCB's pages were made present and writable.
    After it (L4_CALL_DONE): the thread goes on with the kernel's result, or enters a signal
    handler that became deliverable meanwhile."""
    regs = list(w[5:25])
    if len(regs) < 20:
        return None
    trace = k.cfg.strace
    if w[1] != L4_CALL_ENTRY:  # the kernel has performed it
        t.l4call = False
        if trace is not None:
            err = regs[_RDX]
            res = f"-1 {_err_name(err)}" if err else f"{regs[_RAX]:#x}"
            trace(f"l4_ipc(...) = {res} (label {regs[_RSI]:#x})")
        new = await deliver(k, p, regs) if p.pending or t.pending else None
        if p.status is not None:
            return None
        if p.stopped:  # stopped meanwhile: it stops at its next instruction (signals.at_fault)
            await p.task.unmap(Fpage.mem(0, 47, MemRights.RWX), include_self=True)
        return (0, tuple(new) if new is not None else (), ())
    if trace is not None:
        trace(f"{_describe(regs)} ...")
    if not allowed(k, p):
        if trace is not None:
            trace(f"--- SIGSYS {{si_signo=SIGSYS, si_code=SYS_SECCOMP, si_call_addr={regs[15] - 2:#x}}} ---")
            k.cfg.strace = None  # signal_death's line follows without a second SIGSYS line
            try:
                await signal_death(k, p, SIGSYS, 0)
            finally:
                k.cfg.strace = trace
            trace("+++ killed by SIGSYS +++")
        else:
            await signal_death(k, p, SIGSYS, 0)
        return None
    dest = regs[_RDX]
    flags = dest & 0xF
    names_cap = flags & SEND or (flags & RECV and not flags & OPEN_WAIT)
    if names_cap and not dest & INVALID_CAP and SLOT_GATE <= dest >> 12 < L4_SLOT_BASE:
        # the personality's own gates are no capability of the process: the kernel's answer
        # for a slot that holds nothing
        regs[_RAX], regs[_RDX], regs[_RSI] = MSGTAG_ERROR, int(IpcErr.ENOT_EXISTENT), 0
        if trace is not None:
            trace("l4_ipc(...) = -1 ENOT_EXISTENT")
        return (0, tuple(regs[: _RSI + 1]), ())
    utcb = regs[_RDI]
    for page in range(utcb & ~0xFFF, utcb + 8 * 63, PAGE):  # every message register
        if await k.frame_of(p, page, True) is None:
            break  # the kernel finds it missing: SEMSGCUT
    t.l4call = True
    return (PROTO_ALLOW_SYSCALL, (), ())


