"""sigma0: the root pager, owner of all physical memory at boot.

The kernel gives sigma0 a space in which every frame sits at its physical
address (and every I/O port at its number).  sigma0 is an ordinary native
program that decides who gets which: it answers

- page faults of its clients (the root task): the faulting page is mapped
  1:1 -- virtual address = physical address -- if it is free RAM, as
  Fiasco's sigma0 does for the root task;
- the sigma0 protocol (label -6), Fiasco's request numbers in word 0:

  =========================  =====  ===========================================
  request                    word0  meaning
  =========================  =====  ===========================================
  ``REQ_FPAGE_RAM``          0x60   word 1: a memory flexpage of physical RAM
  ``REQ_FPAGE_IOMEM``        0x70   word 1: device memory (if the device is allowed)
  ``REQ_FPAGE_ANY``          0x90   word 1: any free RAM of this flexpage's size
  ``REQ_FPAGE_IO``           0x10   word 1: an I/O flexpage of ports
  ``REQ_INFO``               0xa0   reply: RAM frames, frames free (the KIP analog)
  =========================  =====  ===========================================

  The reply carries a map item to the client's receive window, or a
  negative label (``-ENOMEM`` nothing free, ``-EBUSY`` already given,
  ``-EPERM`` not allowed, ``-EINVAL`` malformed).  A frame is handed out at
  most once.  A request that raises all the same is answered ``-EIO`` with a
  line on the kernel log (docs/runtime.md § 5.9).
"""

from __future__ import annotations

from l4sim.kernel.abi import Err, Fpage, FpageType, MapItem, MemRights, Proto
from l4sim.kernel.traps import Msg
from l4sim.user.env import Env
from l4sim.user.server import request_failed

REQ_ID_MASK = 0xF0
REQ_FPAGE_IO = 0x10
REQ_FPAGE_RAM = 0x60
REQ_FPAGE_IOMEM = 0x70
REQ_FPAGE_ANY = 0x90
REQ_INFO = 0xA0

PF_PROTO = int(Proto.PAGE_FAULT)
S0_PROTO = int(Proto.SIGMA0)


class Sigma0:
    """sigma0's bookkeeping: which frames and ports are still its own."""

    def __init__(self, nframes: int, devices: dict[str, tuple[int, int]], reserved: int) -> None:
        self.nframes = nframes
        #: allowed device regions: name -> (first frame, pages)
        self.devices = devices
        #: frames given away (a frame is never handed out twice)
        self.given: set[int] = set(range(reserved))
        #: frames handed out by request: never again, not even to a page fault
        self.requested: set[int] = set()
        self.reserved = reserved
        self.ports_given: set[int] = set()
        self.next_any = reserved

    def free(self) -> int:
        return self.nframes - sum(1 for p in self.given if p < self.nframes)

    def take(self, first: int, count: int) -> int:
        """Claim frames [first, first+count) if all are free: 0 or -errno."""
        if first < 0 or first + count > self.nframes:
            dev = [d for d in self.devices.values() if d[0] <= first and first + count <= d[0] + d[1]]
            if not dev:
                return -Err.EPERM
        frames = range(first, first + count)
        if any(p in self.given for p in frames):
            return -Err.EBUSY
        self.given.update(frames)
        self.requested.update(frames)
        return 0

    def take_any(self, count: int) -> int:
        """The lowest free, aligned block of ``count`` frames, or -ENOMEM."""
        p = (self.next_any + count - 1) & ~(count - 1)
        while p + count <= self.nframes:
            if not any(q in self.given for q in range(p, p + count)):
                self.given.update(range(p, p + count))
                self.requested.update(range(p, p + count))
                if count == 1:
                    self.next_any = p + 1
                return p
            p += count
        return -Err.ENOMEM


async def sigma0(env: Env, nframes: int, devices: dict[str, tuple[int, int]] | None = None,
                 reserved: int = 1) -> int:
    """The sigma0 server loop (never returns).

    ``reserved`` frames at the bottom are kept back (frame 0, as on a PC);
    ``devices`` lists the device regions its clients may request.
    """
    s0 = Sigma0(nframes, dict(devices or {}), reserved)
    msg = await env.wait()
    while True:
        try:
            reply = _answer(s0, msg)
        except Exception as exc:  # a request nothing in _answer foresaw: answer it, keep serving
            reply = (await request_failed(env, "sigma0", msg, exc), (), ())
        if reply is None:
            msg = await env.wait()
            continue
        proto, words, items = reply
        msg = await env.reply_and_wait(proto, *words, items=items)
        if msg.error:
            msg = await env.wait()


def _answer(s0: Sigma0, msg: Msg) -> tuple[int, tuple[int, ...], tuple[MapItem, ...]] | None:
    if msg.error:
        return None
    w = msg.words
    if msg.proto == PF_PROTO and len(w) >= 1:
        addr = w[0] & ~0xFFF
        pfn = addr >> 12
        if pfn >= s0.nframes and not any(d[0] <= pfn < d[0] + d[1] for d in s0.devices.values()):
            return (-Err.EPERM, (), ())
        if pfn in s0.requested or pfn < s0.reserved:
            return (-Err.EBUSY, (), ())  # somebody else's (or nobody's) frame: never twice
        s0.given.add(pfn)
        # 1:1, and idempotent for the same client: re-mapping a page it has is harmless
        return (0, (), (MapItem(Fpage.mem(addr, 12, MemRights.RWX), snd_base=addr),))
    if msg.proto != S0_PROTO or not w:
        return (-Err.ENOSYS, (), ())
    req = w[0] & REQ_ID_MASK
    if req == REQ_INFO:
        return (0, (s0.nframes, s0.free()), ())
    if len(w) < 2:
        return (-Err.EINVAL, (), ())
    fp = Fpage.from_word(w[1])
    units = fp.units()
    if units is None:
        return (-Err.EINVAL, (), ())
    first, order = units
    count = 1 << order
    if req == REQ_FPAGE_IO:
        if fp.kind != FpageType.IO:
            return (-Err.EINVAL, (), ())
        ports = range(first, first + count)
        if any(p in s0.ports_given for p in ports):
            return (-Err.EBUSY, (), ())
        s0.ports_given.update(ports)
        return (0, (), (MapItem(Fpage.io(first, order, MemRights.RW), snd_base=first),))
    if fp.kind != FpageType.MEMORY or order > 18:
        return (-Err.EINVAL, (), ())
    if req == REQ_FPAGE_ANY:
        p = s0.take_any(count)
        if p < 0:
            return (p, (), ())
        first = p
    elif req == REQ_FPAGE_RAM:
        if first + count > s0.nframes:
            return (-Err.EINVAL, (), ())
        err = s0.take(first, count)
        if err:
            return (err, (), ())
    elif req == REQ_FPAGE_IOMEM:
        if first < s0.nframes:
            return (-Err.EINVAL, (), ())
        err = s0.take(first, count)
        if err:
            return (err, (), ())
    else:
        return (-Err.ENOSYS, (), ())
    addr = first << 12
    # the physical address travels as word 0, the mapping as the item
    return (0, (addr,), (MapItem(Fpage.mem(addr, order + 12, MemRights.RWX), snd_base=0),))


async def request(env: Env, sigma0_cap: int, req: int, fpage: Fpage, window: Fpage) -> Msg:
    """Ask sigma0 (capability slot ``sigma0_cap``) for ``fpage``, received into ``window``."""
    from l4sim.kernel.abi import CALL
    from l4sim.kernel.traps import Ipc

    return await env.ipc(Ipc(sigma0_cap, CALL, S0_PROTO, (req, fpage.word()), rcv=(window,)))
