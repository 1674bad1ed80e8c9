"""An Ethernet NIC, the wires between NICs, and a pcap writer on the host.

The NIC is modelled on Intel's e1000 reduced to what a driver needs: a
transmit and a receive ring of 16-byte descriptors in RAM, DMA by physical
address (through the IOMMU: :class:`~l4sim.machine.iommu.DmaPort`), an
interrupt line raised on transmit completion, on receive, on a link change
and on a DMA error, a MAC address and link state.  Registers are 32 bits
wide (``readl``/``writel``), in one page of MMIO:

==========  ======  ===========================================================
register    offset  meaning
==========  ======  ===========================================================
``CTRL``    0x000   bit 0 TX enable, bit 1 RX enable, bit 2 promiscuous (every
                    frame, not only those to our MAC and broadcast/multicast);
                    writing bit 31 resets the device (rings, counters, masks)
``STATUS``  0x008   bit 0 link up (read only)
``MACLO``   0x010   MAC bytes 0..3 (read only)
``MACHI``   0x014   MAC bytes 4..5 (read only)
``ICR``     0x020   interrupt causes, cleared by reading: bit 0 TXDW (a frame
                    sent), 1 RXT (a frame received), 2 LSC (link changed),
                    3 RXO (a frame dropped: no free receive descriptor),
                    4 DMAERR (the IOMMU refused an access)
``IMS``     0x028   writing 1s enables those causes; reads the mask
``IMC``     0x02C   writing 1s disables those causes
``TDBAL``   0x100   transmit ring: physical address, low and high half
``TDBAH``   0x104
``TDLEN``   0x108   descriptors in the ring (at most 4096)
``TDH``     0x110   head: the next descriptor the device sends (read only)
``TDT``     0x118   tail: the driver writes one past its last new descriptor
``RDBAL``   0x200   receive ring, the same way: the device fills descriptors
``RDBAH``   0x204   from ``RDH`` up to (not including) ``RDT``
``RDLEN``   0x208
``RDH``     0x210
``RDT``     0x218
``TPT``     0x300   frames sent (read only)
``RPR``     0x304   frames received into the ring
``MPC``     0x308   frames missed: no descriptor, RX off, or a DMA error
``DMAE``    0x30C   descriptors the IOMMU refused
==========  ======  ===========================================================

A descriptor (16 bytes, little-endian): buffer address (8 bytes), length
(2), command (1; transmit: bit 0 end of packet), status (1: bit 0 DD,
descriptor done; bit 1 ERR, the buffer could not be reached by DMA), and
4 bytes unused.  Transmit descriptors carry one whole frame each; a receive
descriptor's length is its buffer's size on the way in and the frame's
length when the device hands it back.

Timing is simulated: a frame takes :data:`DMA_NS` to fetch, 8 ns per byte
(1 Gbit/s, plus preamble and inter-frame gap) on the wire and
:data:`PROPAGATION_NS` to the other end.  Everything is an event of the
machine's queue: deterministic.

A :class:`Wire` connects two ports (a NIC's, or a host endpoint such as
:class:`PcapWriter`); :class:`Tap`\\ s on it see every frame that crosses, in
both directions -- what ``--pcap FILE`` records.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from l4sim.machine.causes import CauseRegister, set_high, set_low
from l4sim.machine.devices import InterruptController
from l4sim.machine.events import PRIO_IRQ, EventQueue
from l4sim.machine.iommu import DmaPort

REG_CTRL = 0x000
REG_STATUS = 0x008
REG_MACLO = 0x010
REG_MACHI = 0x014
REG_ICR = 0x020
REG_IMS = 0x028
REG_IMC = 0x02C
REG_TDBAL = 0x100
REG_TDBAH = 0x104
REG_TDLEN = 0x108
REG_TDH = 0x110
REG_TDT = 0x118
REG_RDBAL = 0x200
REG_RDBAH = 0x204
REG_RDLEN = 0x208
REG_RDH = 0x210
REG_RDT = 0x218
REG_TPT = 0x300
REG_RPR = 0x304
REG_MPC = 0x308
REG_DMAE = 0x30C

CTRL_TXEN = 1
CTRL_RXEN = 2
CTRL_PROMISC = 4
CTRL_RESET = 1 << 31
STATUS_LU = 1
ICR_TXDW = 1
ICR_RXT = 2
ICR_LSC = 4
ICR_RXO = 8
ICR_DMAERR = 16
DESC_SIZE = 16
CMD_EOP = 1
ST_DD = 1
ST_ERR = 2
MAX_RING = 4096
#: the smallest and largest Ethernet frame (without FCS) the device sends
MIN_FRAME = 14
MAX_FRAME = 1514
#: fetching a descriptor and its buffer by DMA, writing one back
DMA_NS = 300
#: ns per byte on a 1 Gbit/s wire, and the preamble plus inter-frame gap in bytes
NS_PER_BYTE = 8
OVERHEAD_BYTES = 20
#: from one end of a cable to the other
PROPAGATION_NS = 500
BROADCAST = b"\xff" * 6


def parse_mac(text: str) -> bytes:
    """``"52:54:00:12:34:56"`` -> 6 bytes; ValueError naming the text otherwise."""
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"MAC address {text!r}: write six hex bytes, e.g. 52:54:00:12:34:56")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"MAC address {text!r}: write six hex bytes, e.g. 52:54:00:12:34:56") from None


class Port(Protocol):
    """Something at one end of a wire: it gets the frames the other end sends."""

    def receive(self, frame: bytes, now: int) -> None: ...


class Tap(Protocol):
    """Something that sees every frame crossing a wire (a capture)."""

    def capture(self, frame: bytes, now: int) -> None: ...


class Wire:
    """A full-duplex cable between two ports; frames arrive after the propagation delay."""

    def __init__(self, events: EventQueue, a: Port | None = None, b: Port | None = None) -> None:
        self.events = events
        self.a = a
        self.b = b
        self.taps: list[Tap] = []
        #: frames that crossed, each direction counted
        self.frames = 0

    def send(self, sender: Port, frame: bytes, now: int) -> None:
        """``sender`` puts ``frame`` on the wire at ``now`` (its last bit): taps see it, the
        other end gets it :data:`PROPAGATION_NS` later."""
        self.frames += 1
        for tap in self.taps:
            tap.capture(frame, now)
        other = self.b if sender is self.a else self.a
        if other is not None:
            t = max(now, self.events.now) + PROPAGATION_NS
            self.events.at(t, other.receive, frame, t, prio=PRIO_IRQ)


class PcapWriter:
    """Frames in the classic pcap format (linktype Ethernet), stamped with simulated time.

    What ``tcpdump -r`` and scapy's ``rdpcap`` read.  The file is written as
    frames come and closed by :meth:`close` (the machine's power-off).
    """

    MAGIC = 0xA1B2C3D4  # microsecond timestamps
    SNAPLEN = 65535
    LINKTYPE_ETHERNET = 1

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.f: BinaryIO | None = open(path, "wb")  # noqa: SIM115 -- closed at power-off
        self.f.write(struct.pack("<IHHiIII", self.MAGIC, 2, 4, 0, 0, self.SNAPLEN, self.LINKTYPE_ETHERNET))
        self.frames = 0

    def capture(self, frame: bytes, now: int) -> None:
        if self.f is None:
            return
        us = now // 1000
        self.f.write(struct.pack("<IIII", us // 1_000_000, us % 1_000_000, len(frame), len(frame)))
        self.f.write(frame)
        self.frames += 1

    def receive(self, frame: bytes, now: int) -> None:
        """As the far end of a wire: record the frame (nothing answers)."""
        self.capture(frame, now)

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


class Nic(CauseRegister):
    """The NIC: registers, rings, DMA, interrupts (see the module docstring)."""

    def __init__(self, name: str, mac: bytes, events: EventQueue, ic: InterruptController, line: int,
                 dma: DmaPort) -> None:
        self.name = name
        self.mac = mac
        self.events = events
        self.ic = ic
        self.line = line
        self.dma = dma
        self.wire: Wire | None = None
        #: called on every frame sent or received, for observers (None: nobody)
        self.on_frame: Callable[[str, bytes], None] | None = None
        #: counters since power-on (a reset leaves them: they are what the host observes)
        self.tx_frames = 0
        self.rx_frames = 0
        self.missed = 0
        self.dma_errors = 0
        self._reset()

    def _reset(self) -> None:
        self.ctrl = 0
        self.icr = 0
        self.ims = 0
        self.tdba = 0
        self.tdlen = 0
        self.tdh = 0
        self.tdt = 0
        self.rdba = 0
        self.rdlen = 0
        self.rdh = 0
        self.rdt = 0
        #: a send is scheduled; the wire is busy until ``tx_free_at`` (one frame at a time)
        self.tx_busy = False
        self.tx_free_at = 0

    @property
    def link_up(self) -> bool:
        return self.wire is not None

    # --- registers
    def mmio_read(self, off: int, size: int, now: int) -> int:
        match off:
            case 0x000:
                return self.ctrl
            case 0x008:
                return STATUS_LU if self.link_up else 0
            case 0x010:
                return int.from_bytes(self.mac[:4], "little")
            case 0x014:
                return int.from_bytes(self.mac[4:], "little")
            case 0x020:
                return self._read_icr()
            case 0x028:
                return self.ims
            case 0x100:
                return self.tdba & 0xFFFFFFFF
            case 0x104:
                return self.tdba >> 32
            case 0x108:
                return self.tdlen
            case 0x110:
                return self.tdh
            case 0x118:
                return self.tdt
            case 0x200:
                return self.rdba & 0xFFFFFFFF
            case 0x204:
                return self.rdba >> 32
            case 0x208:
                return self.rdlen
            case 0x210:
                return self.rdh
            case 0x218:
                return self.rdt
            case 0x300:
                return self.tx_frames
            case 0x304:
                return self.rx_frames
            case 0x308:
                return self.missed
            case 0x30C:
                return self.dma_errors
        return 0

    def mmio_write(self, off: int, size: int, value: int, now: int) -> None:
        value &= 0xFFFFFFFF
        match off:
            case 0x000:
                if value & CTRL_RESET:
                    self._reset()
                    return
                was = self.ctrl
                self.ctrl = value & (CTRL_TXEN | CTRL_RXEN | CTRL_PROMISC)
                if self.ctrl & CTRL_TXEN and not was & CTRL_TXEN:
                    self._kick(now)
            case 0x028:
                self._enable(value, now)
            case 0x02C:
                self._disable(value)
            case 0x100:
                self.tdba = set_low(self.tdba, value)
            case 0x104:
                self.tdba = set_high(self.tdba, value)
            case 0x108:
                self.tdlen = min(value, MAX_RING)
                self.tdh = self.tdt = 0
            case 0x118:
                if self.tdlen:
                    self.tdt = value % self.tdlen
                    self._kick(now)
            case 0x200:
                self.rdba = set_low(self.rdba, value)
            case 0x204:
                self.rdba = set_high(self.rdba, value)
            case 0x208:
                self.rdlen = min(value, MAX_RING)
                self.rdh = self.rdt = 0
            case 0x218:
                if self.rdlen:
                    self.rdt = value % self.rdlen

    # --- transmit
    def _kick(self, now: int) -> None:
        if not self.tx_busy and self.ctrl & CTRL_TXEN and self.tdh != self.tdt:
            self.tx_busy = True
            self.events.at(max(now, self.events.now, self.tx_free_at) + DMA_NS, self._tx_one, prio=PRIO_IRQ)

    def _tx_one(self) -> None:
        """Send the descriptor at TDH: fetch it and its buffer, put the frame on the wire."""
        now = self.events.now
        self.tx_busy = False
        if not self.ctrl & CTRL_TXEN or self.tdh == self.tdt or not self.tdlen:
            return
        at = self.tdba + self.tdh * DESC_SIZE
        desc = self.dma.read(at, DESC_SIZE)
        if desc is None:  # the ring itself cannot be reached: stop transmitting
            self.dma_errors += 1
            self.ctrl &= ~CTRL_TXEN
            self._cause(ICR_DMAERR, now)
            return
        addr, length, _cmd, _status = struct.unpack_from("<QHBB", desc)
        frame = self.dma.read(addr, length) if MIN_FRAME <= length <= MAX_FRAME else None
        status = ST_DD
        wire_ns = 0
        if frame is None:
            status |= ST_ERR
            self.dma_errors += 1
            cause = ICR_DMAERR | ICR_TXDW
        else:
            wire_ns = (length + OVERHEAD_BYTES) * NS_PER_BYTE
            self.tx_frames += 1
            cause = ICR_TXDW
            if self.wire is not None:
                self.wire.send(self, frame, now + wire_ns)
            if self.on_frame is not None:
                self.on_frame("tx", frame)
        if not self.dma.write(at + 11, bytes([status])):
            self.dma_errors += 1
        self.tdh = (self.tdh + 1) % self.tdlen
        self.tx_free_at = now + wire_ns
        self.events.at(now + wire_ns, self._tx_done, cause, prio=PRIO_IRQ)

    def _tx_done(self, cause: int) -> None:
        now = self.events.now
        self._cause(cause, now)
        self._kick(now)

    # --- receive
    def receive(self, frame: bytes, now: int) -> None:
        """A frame arrives from the wire: into the next free receive descriptor, or missed."""
        if not self.ctrl & CTRL_RXEN:
            self.missed += 1
            return
        if not (self.ctrl & CTRL_PROMISC or frame[:6] == self.mac or frame[0] & 1):
            return  # not for us (nor broadcast or multicast): filtered, as a NIC does
        if not self.rdlen or self.rdh == self.rdt:
            self.missed += 1
            self._cause(ICR_RXO, now)
            return
        at = self.rdba + self.rdh * DESC_SIZE
        desc = self.dma.read(at, DESC_SIZE)
        if desc is None:
            self.dma_errors += 1
            self.missed += 1
            self.ctrl &= ~CTRL_RXEN
            self._cause(ICR_DMAERR, now)
            return
        addr, size = struct.unpack_from("<QH", desc)
        ok = len(frame) <= size and self.dma.write(addr, frame)
        if ok:
            status = ST_DD
            self.rx_frames += 1
            if self.on_frame is not None:
                self.on_frame("rx", frame)
        else:
            status = ST_DD | ST_ERR
            self.missed += 1
            if len(frame) <= size:
                self.dma_errors += 1
        back = struct.pack("<HBB", len(frame) if ok else 0, 0, status)
        if not self.dma.write(at + 8, back):
            self.dma_errors += 1
        self.rdh = (self.rdh + 1) % self.rdlen
        self.events.at(max(now, self.events.now) + DMA_NS, self._cause,
                       ICR_RXT | (0 if ok else ICR_DMAERR), now + DMA_NS, prio=PRIO_IRQ)

    def stats(self) -> dict[str, int]:
        return {"tx_frames": self.tx_frames, "rx_frames": self.rx_frames, "missed": self.missed,
                "dma_errors": self.dma_errors}
