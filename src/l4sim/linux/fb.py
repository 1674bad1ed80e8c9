"""A Linux instance's display: ``/dev/fb0`` and ``/dev/input/event0`` over its session of the GUI.

L4Linux shows its framebuffer in a window of the secure GUI through a stub driver (l4fb;
Feske and Helmuth, "A Nitpicker's guide to a minimal-complexity secure GUI", section 4): the
Linux programs draw as on any fbdev, the GUI labels the instance's view with the name the
startup script gave it, and the instance gets the keys and pointer events of that view only.
Here the startup script gives the instance a GUI session as ``gui`` (``caps={"gui":
gui.session()}``, docs/runtime.md §4.9), and the personality makes two devices over it:

**/dev/fb0** (29:0), the GUI session's backing store (``BUFFER``, docs/security.md §7.4) in
the instance's mode (``linux(..., fb=(x, y, w, h))``: w x h pixels, 32 bits ``0x00RRGGBB``,
shown by one view at screen (x, y)).  The personality attaches the buffer in its own address
space and, as the guest's pager, maps its pages into a process's ``mmap`` of the device: the
pixels a process writes are the GUI's -- mapped, never copied.  ``FBIOGET_VSCREENINFO`` and
``FBIOGET_FSCREENINFO`` answer what a real program asks (``FBIOPUT_VSCREENINFO`` accepts the
mode it has, ``FBIOPAN_DISPLAY`` and ``FBIOBLANK`` succeed); ``read``, ``write`` and
``lseek`` work on the pixels as on Linux's fbdev.

Damage reaches the GUI as Linux's deferred I/O reports it (``fb_defio``): pages are mapped
read-only at first, a process's first write to one faults and marks it dirty (and gets it
writable), and :data:`DEFIO_NS` after the first dirty page the personality write-protects the
dirty pages again and sends ``REFRESH`` for their rows.  A ``write`` dirties the pages it
writes.

**/dev/input/event0** (13:64), an evdev device with Linux's ``struct input_event`` records
(time, type, code, value): the keys of the view while it has the keyboard focus and the
pointer's motion and buttons over it (``EV_KEY``, ``EV_ABS`` ``ABS_X``/``ABS_Y`` in the
buffer's coordinates, ``EV_SYN``) -- what the GUI gives the session, nothing else.  Each open
file gets the events from its open on (``EVIOCGNAME``, ``EVIOCGBIT``, ``EVIOCGABS``,
``EVIOCGID``, ``EVIOCGVERSION``, ``EVIOCGRAB`` answer); a write injects events into the
instance's own readers, as on Linux, and never leaves the instance.

Two worker threads of the personality talk to the GUI, so that a call to it never holds up a
system call: one waits for input (``INPUT_WAIT``), one sends the damage.  They share the
device's state with the serving thread (as :mod:`l4sim.linux.l4`'s workers do) and wake it
with an Irq (:data:`IRQ_LABEL`, :func:`news`); what a system call leaves for memory access --
the bytes of a ``write``, a ``read``'s pixels, arming the damage timer -- the serving loop
does after it (:func:`work`).
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, field

from l4sim.kernel.abi import Fpage, MemRights
from l4sim.linux.elf import PAGE
from l4sim.linux.state import BLOCK, Call, Facility, MemObject, Personality, Proc, Special
from l4sim.linux.vfs import EPOCH, S_IFCHR, OFile, Vfs
from l4sim.runtime.rm import attach
from l4sim.security.gui_protocol import (
    EV_MOTION,
    EV_PRESS,
    EVENTS_MAX,
    GUI,
    GuiOp,
    decode,
    unsigned,
)
from l4sim.user.env import Env, Gate, IrqCap, L4Error, ThreadCap

#: the Irq label through which the workers wake the serving thread (no thread's label: those
#: are tid << 2; the keyboard's is 1 << 62, the /dev/l4 workers' 1 << 61)
IRQ_LABEL = 1 << 60
#: deferred I/O's delay: damage reaches the GUI at most this long after the first write
DEFIO_NS = 20_000_000
FB_MAJOR, INPUT_MAJOR, EVDEV_MINOR = 29, 13, 64
EPERM, EIO, EFAULT, EINVAL, ENOSPC, EAGAIN, EFBIG = 1, 5, 14, 22, 28, 11, 27
POLLIN, POLLOUT = 0x1, 0x4
O_NONBLOCK = 0o4000

# --- fbdev (include/uapi/linux/fb.h)
FBIOGET_VSCREENINFO, FBIOPUT_VSCREENINFO, FBIOGET_FSCREENINFO = 0x4600, 0x4601, 0x4602
FBIOPAN_DISPLAY, FBIOBLANK = 0x4606, 0x4611
FB_TYPE_PACKED_PIXELS, FB_VISUAL_TRUECOLOR = 0, 2
#: struct fb_var_screeninfo: 40 __u32 (160 bytes); fb_fix_screeninfo is 80 bytes on x86-64
VAR_SIZE, FIX_SIZE = 160, 80
#: the identification of the device (fb_fix_screeninfo.id, 16 bytes)
FB_ID = b"l4sim gui"

# --- evdev (include/uapi/linux/input.h, input-event-codes.h)
EV_SYN, EV_KEY, EV_ABS = 0, 1, 3
SYN_REPORT, SYN_DROPPED = 0, 3
ABS_X, ABS_Y = 0, 1
BTN_LEFT, BTN_MIDDLE = 0x110, 0x112
KEY_MAX, ABS_MAX = 0x2FF, 0x3F
#: one struct input_event: struct timeval (16 bytes), type, code (u16), value (s32)
EVENT_SIZE = 24
#: records one open file keeps before it loses them (Linux: SYN_DROPPED in their place)
CLIENT_MAX = 256
EVIOCGVERSION, EVIOCGID, EVIOCGRAB = 0x80044501, 0x80084502, 0x40044590
EV_VERSION = 0x010001
#: what EVIOCGNAME answers
INPUT_NAME = b"l4sim gui input"


def _ioc_nr(req: int) -> tuple[int, int, int, int]:
    """(direction, size, type, number) of an ioctl request (Linux's _IOC encoding)."""
    return req >> 30, (req >> 16) & 0x3FFF, (req >> 8) & 0xFF, req & 0xFF


@dataclass(eq=False)
class Display(Facility):
    """The instance's display: its GUI session, the buffer, the view, the two devices and what
    the serving loop and the workers hand each other (``Personality.facility(Display)``)."""

    gate: Gate | None = None
    #: the buffer: pixels, bytes a row, bytes (whole pages), its address in our space
    width: int = 0
    height: int = 0
    stride: int = 0
    size: int = 0
    addr: int = 0
    fb: FbDevice | None = None
    ev: EvDevice | None = None
    #: the Irq the workers wake the serving thread with; the damage worker's own
    irq: IrqCap | None = None
    kick: IrqCap | None = None
    workers: list[ThreadCap] = field(default_factory=list)
    # --- damage (deferred I/O)
    #: pages written since the last flush; the worker is counting down its delay
    dirty: set[int] = field(default_factory=set)
    armed: bool = False
    #: the worker's delay is over: the serving thread collects the damage (:func:`news`)
    due: bool = False
    #: rows for the worker to refresh: (first, count)
    rows: list[tuple[int, int]] = field(default_factory=list)
    # --- what system calls left for the serving loop (:func:`work`)
    writes: list[tuple[int, bytes]] = field(default_factory=list)
    #: reads of pixels: (tid, position, count) to fetch, and what was fetched by tid
    reads: list[tuple[int, int, int]] = field(default_factory=list)
    fetched: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)
    kick_due: bool = False
    # --- input: event words the input worker received, with their time (ns since boot)
    incoming: list[tuple[int, int]] = field(default_factory=list)

    def todo(self) -> bool:
        """Whether the serving loop has memory work for :func:`work`."""
        return bool(self.writes or self.reads or self.kick_due)

    def touched(self, first: int, end: int) -> None:
        """Bytes [first, end) of the buffer changed: their pages are damage."""
        for idx in range(first // PAGE, (end + PAGE - 1) // PAGE):
            self.dirty.add(idx)
        if not self.armed:
            self.armed = True
            self.kick_due = True


def _display(k: Personality) -> Display | None:
    d = k.facilities.get(Display)
    return d if isinstance(d, Display) else None


class FbDevice(Special, MemObject):
    """``/dev/fb0``: the instance's framebuffer, its GUI session's backing store (see the module)."""

    #: lseek moves the position, as on a file
    seekable = True

    def __init__(self, d: Display) -> None:
        Special.__init__(self, S_IFCHR | 0o660)
        self.rdev = (FB_MAJOR << 8) | 0
        self.d = d

    def size(self) -> int:
        return self.d.size

    async def frame(self, k: Personality, idx: int) -> int:
        """Page ``idx`` of the buffer, in our space (attached eagerly: always present).  A page
        handed out may be written at once: it counts as damage until the next flush
        write-protects it."""
        self.d.touched(idx * PAGE, (idx + 1) * PAGE)
        await _arm(self.d)
        return self.d.addr + idx * PAGE

    async def fault(self, k: Personality, idx: int, write: bool, rights: int) -> int:
        """Deferred I/O: a write makes the page dirty (and writable); a read of a clean page
        maps it read-only, so that the first write to it faults."""
        d = self.d
        if write:
            if idx not in d.dirty:
                d.touched(idx * PAGE, (idx + 1) * PAGE)
                await _arm(d)
            return rights
        return rights if idx in d.dirty else rights & ~int(MemRights.W)

    # --- files.py asks
    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        d = self.d
        tid = p.cur.tid
        pos = f.pos
        end = d.stride * d.height  # read and write stop at the pixels (smem_len), mmap at the page
        if pos >= end or n == 0:
            return b""
        n = min(n, end - pos)
        got = d.fetched.pop(tid, None)
        if got is not None and got[:2] == (pos, n):
            f.pos += len(got[2])
            return got[2]
        d.reads.append((tid, pos, n))  # fetched by the serving loop, then the call runs again
        self.watch(k, tid)
        return BLOCK

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        d = self.d
        pos = f.pos
        end = d.stride * d.height
        if pos > end:
            return -EFBIG
        data = data[: end - pos]
        if not data:
            return -ENOSPC
        d.writes.append((pos, data))  # copied by the serving loop before the caller goes on
        d.touched(pos, pos + len(data))
        f.pos += len(data)
        return len(data)

    def ready(self, k: Personality, f: OFile) -> int:
        return POLLIN | POLLOUT

    async def ioctl(self, k: Personality, p: Proc, c: Call, f: OFile, req: int, arg: int) -> int:
        d = self.d
        if req == FBIOGET_VSCREENINFO:
            return 0 if await k.write(p, arg, var_screeninfo(d.width, d.height)) else -EFAULT
        if req == FBIOGET_FSCREENINFO:
            return 0 if await k.write(p, arg, fix_screeninfo(d.stride, d.width * d.height * 4)) else -EFAULT
        if req == FBIOPUT_VSCREENINFO:  # the mode is the script's: the same one is accepted
            raw = await k.read(p, arg, VAR_SIZE)
            if raw is None:
                return -EFAULT
            xres, yres, _vx, _vy, xoff, yoff, bpp = struct.unpack_from("<7I", raw)
            if (xres, yres, bpp, xoff, yoff) != (d.width, d.height, 32, 0, 0):
                return -EINVAL
            return 0 if await k.write(p, arg, var_screeninfo(d.width, d.height)) else -EFAULT
        if req in (FBIOPAN_DISPLAY, FBIOBLANK):
            return 0
        return -EINVAL  # Linux's fb_ioctl for a request the driver does not have


def var_screeninfo(w: int, h: int) -> bytes:
    """struct fb_var_screeninfo of a w x h 32-bit true-colour mode (x8r8g8b8)."""
    head = struct.pack("<8I", w, h, w, h, 0, 0, 32, 0)
    colours = struct.pack("<12I", 16, 8, 0, 8, 8, 0, 0, 8, 0, 24, 0, 0)  # red, green, blue, transp
    rest = struct.pack("<20I", 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0, *(0,) * 15)  # nonstd .. reserved
    out = head + colours + rest
    assert len(out) == VAR_SIZE
    return out


def fix_screeninfo(stride: int, length: int) -> bytes:
    """struct fb_fix_screeninfo (x86-64 layout: 80 bytes, smem_start and mmio_start 8 bytes)."""
    out = struct.pack("<16sQIIIIHHHxxIxxxxQIIH6x", FB_ID, 0, length, FB_TYPE_PACKED_PIXELS, 0,
                      FB_VISUAL_TRUECOLOR, 0, 0, 0, stride, 0, 0, 0, 0)
    assert len(out) == FIX_SIZE
    return out


class EvDevice(Special):
    """``/dev/input/event0``: the instance's view's input as evdev records (see the module)."""

    def __init__(self, d: Display) -> None:
        super().__init__(S_IFCHR | 0o660)
        self.rdev = (INPUT_MAJOR << 8) | EVDEV_MINOR
        self.d = d
        #: each open file's records, from its open on (Linux's evdev_client)
        self.clients: dict[OFile, deque[bytes]] = {}

    def opened(self, k: Personality, f: OFile) -> None:
        self.clients[f] = deque()

    def released(self, k: Personality, f: OFile) -> None:
        self.clients.pop(f, None)

    def post(self, k: Personality, records: list[bytes]) -> None:
        """Give ``records`` (one packet, ending with SYN_REPORT) to every open file."""
        for q in self.clients.values():
            if len(q) + len(records) > CLIENT_MAX:  # lost: the reader learns of it
                q.clear()
                q.append(records[-1][:16] + struct.pack("<HHi", EV_SYN, SYN_DROPPED, 0))
            q.extend(records)
        if records and self.clients:
            self.changed(k)

    def read(self, k: Personality, p: Proc, f: OFile, n: int) -> bytes | int:
        if n < EVENT_SIZE:
            return -EINVAL
        q = self.clients.setdefault(f, deque())
        if not q:
            if f.flags & O_NONBLOCK:
                return -EAGAIN
            self.watch(k, p.cur.tid)
            return BLOCK
        out = bytearray()
        while q and len(out) + EVENT_SIZE <= n:
            out += q.popleft()
        return bytes(out)

    def write(self, k: Personality, p: Proc, f: OFile, data: bytes) -> int:
        """Events injected by a process: to the instance's own readers (Linux's evdev_write
        into the input core); the GUI never hears of them."""
        n = len(data) // EVENT_SIZE * EVENT_SIZE
        if n == 0:
            return -EINVAL
        stamp = timeval(k.now_ns)
        self.post(k, [stamp + data[i + 16 : i + EVENT_SIZE] for i in range(0, n, EVENT_SIZE)])
        return n

    def ready(self, k: Personality, f: OFile) -> int:
        q = self.clients.get(f)
        return (POLLIN if q else 0) | POLLOUT

    def nread(self) -> int:
        return sum(len(q) for q in self.clients.values()) * EVENT_SIZE

    async def ioctl(self, k: Personality, p: Proc, c: Call, f: OFile, req: int, arg: int) -> int:
        d = self.d
        direction, size, kind, nr = _ioc_nr(req)
        out: bytes | None = None
        if req == EVIOCGVERSION:
            out = struct.pack("<i", EV_VERSION)
        elif req == EVIOCGID:
            out = struct.pack("<4H", 0x06, 0x4C34, 0x0001, 0x0001)  # BUS_VIRTUAL, vendor 'L4'
        elif req == EVIOCGRAB:
            return 0  # the GUI already gives this instance its input alone
        elif direction == 2 and kind == ord("E") and nr == 0x06:  # EVIOCGNAME(len)
            out = (INPUT_NAME + b"\0")[:size]
        elif direction == 2 and kind == ord("E") and 0x20 <= nr < 0x40:  # EVIOCGBIT(ev, len)
            out = _bits(nr - 0x20)[:size]
        elif direction == 2 and kind == ord("E") and nr in (0x40 + ABS_X, 0x40 + ABS_Y):  # EVIOCGABS
            top = (d.width if nr == 0x40 + ABS_X else d.height) - 1
            out = struct.pack("<6i", 0, 0, top, 0, 0, 0)[:size]
        if out is None:
            return -EINVAL  # evdev's answer to a request it does not have
        if not await k.write(p, arg, out):
            return -EFAULT
        return len(out) if nr == 0x06 or 0x20 <= nr < 0x40 else 0  # NAME and BIT: bytes copied


def _bits(ev: int) -> bytes:
    """EVIOCGBIT's bitmap for event type ``ev`` (0: the types themselves)."""
    if ev == 0:
        on = [EV_SYN, EV_KEY, EV_ABS]
    elif ev == EV_KEY:
        on = [*range(1, 0x80), *range(BTN_LEFT, BTN_MIDDLE + 1)]
    elif ev == EV_ABS:
        on = [ABS_X, ABS_Y]
    else:
        on = []
    top = KEY_MAX if ev == EV_KEY else ABS_MAX if ev == EV_ABS else 0x1F
    bits = bytearray((top + 8) // 8)
    for b in on:
        bits[b // 8] |= 1 << (b % 8)
    return bytes(bits)


def timeval(now_ns: int) -> bytes:
    """struct timeval of the simulated wall clock at ``now_ns`` (ns since boot)."""
    return struct.pack("<qq", EPOCH + now_ns // 1_000_000_000, now_ns % 1_000_000_000 // 1000)


def records(word: int, now_ns: int) -> list[bytes]:
    """The input_event records of one GUI event word (a packet, ending with SYN_REPORT)."""
    ev = decode(word)
    tv = timeval(now_ns)

    def rec(kind: int, code: int, value: int) -> bytes:
        return tv + struct.pack("<HHi", kind, code, value)

    out: list[bytes] = []
    pointer = ev.kind == EV_MOTION or BTN_LEFT <= ev.code <= BTN_MIDDLE
    if pointer:
        out += [rec(EV_ABS, ABS_X, ev.x), rec(EV_ABS, ABS_Y, ev.y)]
    if ev.kind != EV_MOTION:
        out.append(rec(EV_KEY, ev.code, 1 if ev.kind == EV_PRESS else 0))
    out.append(rec(EV_SYN, SYN_REPORT, 0))
    return out


# --------------------------------------------------------------------------- the serving loop's side
async def setup(k: Personality) -> Display | None:
    """Open the display of ``Config.gui`` (None: the instance has none): the mode, the buffer
    attached here, the view, the devices, the workers."""
    cfg = k.cfg
    if cfg.gui is None:
        return None
    env = k.env
    d = k.facility(Display)
    gate = d.gate = env.cap(cfg.gui, Gate)
    info = await gate.call(GUI, GuiOp.INFO)
    if info.error or info.proto < 0 or len(info.words) < 2:
        raise L4Error(-info.proto if info.proto < 0 else 0, "the GUI session's INFO", info.error)
    sw, sh = info.words[0], info.words[1]
    x, y, w, h = cfg.fb_view if cfg.fb_view is not None else (sw // 8, sh // 8, sw * 3 // 4, sh * 3 // 4)
    slot = env.alloc_slot()
    r = await gate.call(GUI, GuiOp.BUFFER, w, h, rcv=(Fpage.obj(slot),))
    if r.error or r.proto < 0 or not r.words:
        raise L4Error(-r.proto if r.proto < 0 else 0, f"a {w}x{h} buffer of the GUI", r.error)
    d.width, d.height, d.stride, d.size = w, h, w * 4, r.words[0]
    d.addr = await attach(env, slot, d.size, eager=True)  # every page present: mapped on as it is
    vid = (await gate.call(GUI, GuiOp.VIEW_CREATE)).words[0]
    await gate.call(GUI, GuiOp.VIEW_GEOMETRY, vid, unsigned(x), unsigned(y), w, h, 0, 0)
    d.fb, d.ev = FbDevice(d), EvDevice(d)
    Vfs.put(k.vfs.root, "/dev/fb0", d.fb)
    Vfs.put(k.vfs.root, "/dev/input/event0", d.ev)
    info2 = await env.scheduler.info()
    prio = max(1, min(info2[1], cfg.guest_prio + 1))
    d.irq = await env.factory.create_irq()
    await d.irq.attach(env.thread, IRQ_LABEL)
    d.kick = await env.factory.create_irq()
    damage = await env.spawn(_damage_worker, d, name="fb-damage", prio=prio)
    await d.kick.attach(damage)
    d.workers = [damage, await env.spawn(_input_worker, d, name="fb-input", prio=prio)]
    return d


async def _arm(d: Display) -> None:
    """Start the damage worker's delay if the last flush left nothing armed (``kick_due``)."""
    if d.kick_due and d.kick is not None:
        d.kick_due = False
        await d.kick.trigger()


async def work(k: Personality, d: Display) -> None:
    """What system calls left: the bytes of writes into the buffer, the pixels of reads (their
    threads run again), the damage timer armed."""
    env = k.env
    while d.writes:
        pos, data = d.writes.pop(0)
        await env.mem.write(d.addr + pos, data)
    woken = False
    while d.reads:
        tid, pos, n = d.reads.pop(0)
        d.fetched[tid] = (pos, n, await env.mem.read(d.addr + pos, n))
        woken = True
    if woken and d.fb is not None:
        d.fb.changed(k)
    await _arm(d)


async def news(k: Personality, d: Display) -> None:
    """The workers' Irq: input events to the readers of event0; when the damage worker's delay
    is over, the dirty pages write-protected again in every process and their rows handed to
    the worker."""
    if d.incoming and d.ev is not None:
        got, d.incoming = d.incoming, []
        for word, at in got:
            d.ev.post(k, records(word, at))
    if d.due:
        d.due = False
        pages, d.dirty = sorted(d.dirty), set()
        d.armed = False
        await _protect(k, d, pages)
        d.rows = _rows(pages, d.stride, d.height)
        assert d.kick is not None
        await d.kick.trigger()


async def _protect(k: Personality, d: Display, pages: list[int]) -> None:
    """Take the write right of ``pages`` from every process mapping them: its next write faults."""
    want = set(pages)
    for p in list(k.procs.values()):
        for v in p.vmas:
            if v.file is not d.fb or not v.shared:
                continue
            first = v.off // PAGE
            for vpn in range(v.start >> 12, v.end >> 12):
                if first + vpn - (v.start >> 12) in want and vpn in p.pages and p.status is None:
                    await p.task.unmap(Fpage.mem(vpn << 12, 12, MemRights.W), include_self=True)


def _rows(pages: list[int], stride: int, height: int) -> list[tuple[int, int]]:
    """The rows of the buffer ``pages`` cover, as runs (first row, count)."""
    runs: list[tuple[int, int]] = []
    for idx in pages:
        lo = idx * PAGE // stride
        hi = min(height - 1, ((idx + 1) * PAGE - 1) // stride)
        if lo > hi:
            continue
        if runs and lo <= runs[-1][0] + runs[-1][1]:
            first, count = runs[-1]
            runs[-1] = (first, max(count, hi - first + 1))
        else:
            runs.append((lo, hi - lo + 1))
    return runs


# --------------------------------------------------------------------------- the workers
async def _damage_worker(env: Env, d: Display) -> None:
    """Deferred I/O: woken by the first dirty page, it waits :data:`DEFIO_NS`, lets the serving
    thread collect the damage, and sends a ``REFRESH`` for each run of rows."""
    assert d.kick is not None and d.irq is not None and d.gate is not None
    while True:
        await env.receive(d.kick)
        await env.receive(env.thread, timeout=DEFIO_NS)  # the delay: nothing sends us anything
        d.due = True
        await d.irq.trigger()
        await env.receive(d.kick)  # the serving thread collected the rows
        rows, d.rows = d.rows, []
        for first, count in rows:
            await d.gate.call(GUI, GuiOp.REFRESH, 0, first, d.width, count)


async def _input_worker(env: Env, d: Display) -> None:
    """Waits for the session's input (``INPUT_WAIT``) and hands every event to the serving thread."""
    assert d.irq is not None and d.gate is not None
    while True:
        r = await d.gate.call(GUI, GuiOp.INPUT_WAIT)
        if r.error:
            return  # the GUI is gone: no more input
        if r.proto < 0 or not r.words:
            await env.receive(env.thread, timeout=DEFIO_NS)
            continue
        now = int(await env.clock())
        d.incoming += [(w, now) for w in r.words[1 : 1 + min(r.words[0], EVENTS_MAX)]]
        await d.irq.trigger()
