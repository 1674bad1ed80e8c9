"""A block device with a request queue in RAM, DMA, and a volatile write cache.

The device serves 512-byte sectors of a *medium*: a host image file (or, for
tests, bytes in memory).  A driver puts 32-byte request descriptors into a
ring in RAM and writes the tail register; the device takes them in order,
moves the data by DMA (through the IOMMU), writes the status back into the
descriptor and raises its interrupt line for every completed request.

Durability, as on a disk with a write cache: a WRITE completes as soon as its
data is in the device's *cache*; the medium gets it when a FLUSH covers it or
when the device writes it back on its own.  A FLUSH completes once every write
completed before it is on the medium.  The device's own write-back happens a
while after a write completes -- a delay drawn per written sector from the
device's random generator (seeded from the machine's seed and the device's
name: the same run writes back the same sectors at the same instants).  The
cache is volatile: when the machine's power goes (the end of any run, and
``--crash-at TIME``), it is lost.  So the image then holds exactly the sectors
some completed flush covered, plus those the device chose to write back
earlier (:attr:`BlockDevice.log` lists each sector's way to the medium).

Registers, 32 bits wide, one page of MMIO:

==========  ======  ===========================================================
register    offset  meaning
==========  ======  ===========================================================
``CTRL``    0x000   bit 0 enable; writing bit 31 resets (queue, causes, masks)
``STATUS``  0x008   bit 0 ready
``CAPLO``   0x010   capacity in sectors, low and high half (read only)
``CAPHI``   0x014
``ICR``     0x020   causes, cleared by reading: bit 0 CMP (a request completed),
                    bit 1 DMAERR (the IOMMU refused a request's buffer or the ring)
``IMS``     0x028   writing 1s enables causes; ``IMC`` 0x02C disables them
``QBAL``    0x100   the request ring: physical address, low and high half
``QBAH``    0x104
``QLEN``    0x108   descriptors in the ring (at most 1024)
``QH``      0x110   head: the next request the device takes (read only)
``QT``      0x118   tail: the driver writes one past its last new request
``READS``   0x300   requests completed by kind, and refused DMA (read only)
``WRITES``  0x304
``FLUSHES`` 0x308
``DMAE``    0x30C
==========  ======  ===========================================================

A request descriptor (little-endian): op (1 byte: 1 READ, 2 WRITE, 3 FLUSH),
status (1 byte, written by the device: bit 0 done, 1 DMA refused, 2 sector
out of range, 3 bad op), 2 bytes unused, sector count (4), first sector (8),
buffer address (8), and a tag (8) the device leaves alone.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from pathlib import Path

from l4sim.machine.causes import CauseRegister, set_high, set_low
from l4sim.machine.devices import InterruptController
from l4sim.machine.events import PRIO_IRQ, EventQueue
from l4sim.machine.iommu import DmaPort

SECTOR = 512
REG_CTRL = 0x000
REG_STATUS = 0x008
REG_CAPLO = 0x010
REG_CAPHI = 0x014
REG_ICR = 0x020
REG_IMS = 0x028
REG_IMC = 0x02C
REG_QBAL = 0x100
REG_QBAH = 0x104
REG_QLEN = 0x108
REG_QH = 0x110
REG_QT = 0x118
REG_READS = 0x300
REG_WRITES = 0x304
REG_FLUSHES = 0x308
REG_DMAE = 0x30C
CTRL_EN = 1
CTRL_RESET = 1 << 31
ICR_CMP = 1
ICR_DMAERR = 2
OP_READ, OP_WRITE, OP_FLUSH = 1, 2, 3
ST_DONE = 1
ST_DMA = 2
ST_RANGE = 4
ST_OP = 8
REQ_SIZE = 32
MAX_QUEUE = 1024
#: largest request (sectors)
MAX_SECTORS = 256
#: the device's time for a request before any data moves, and per byte moved
REQUEST_NS = 20_000
NS_PER_BYTE = 2
#: a flush: its own latency, and per sector it takes to the medium
FLUSH_NS = 100_000
FLUSH_NS_PER_SECTOR = 5_000
#: the device writes a cached sector back on its own this long after the write completed
#: (a delay drawn uniformly from this range, per written sector)
WRITEBACK_MIN_NS = 2_000_000
WRITEBACK_MAX_NS = 20_000_000


class Medium:
    """Where sectors live for good: a host image file, or bytes in memory (``path`` None)."""

    def __init__(self, sectors: int, path: str | Path | None = None) -> None:
        self.sectors = sectors
        self.path = str(path) if path is not None else None
        self.mem: bytearray | None = None
        self.fd: int | None = None
        if path is None:
            self.mem = bytearray(sectors * SECTOR)
        else:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self.fd).st_size < sectors * SECTOR:
                os.ftruncate(self.fd, sectors * SECTOR)

    def read(self, sector: int) -> bytes:
        if self.mem is not None:
            return bytes(self.mem[sector * SECTOR : (sector + 1) * SECTOR])
        assert self.fd is not None, "the medium is closed"
        return os.pread(self.fd, SECTOR, sector * SECTOR).ljust(SECTOR, b"\0")

    def write(self, sector: int, data: bytes) -> None:
        if self.mem is not None:
            self.mem[sector * SECTOR : (sector + 1) * SECTOR] = data
            return
        assert self.fd is not None, "the medium is closed"
        os.pwrite(self.fd, data, sector * SECTOR)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class BlockDevice(CauseRegister):
    """The disk: registers, request ring, DMA, write cache (see the module docstring)."""

    def __init__(self, name: str, medium: Medium, events: EventQueue, ic: InterruptController, line: int,
                 dma: DmaPort, seed: int) -> None:
        self.name = name
        self.medium = medium
        self.events = events
        self.ic = ic
        self.line = line
        self.dma = dma
        #: the device's own random generator: when it writes cached sectors back
        self.rng = random.Random(f"{seed}:{name}")
        #: sector -> (data, version) of every written sector not yet on the medium
        self.cache: dict[int, tuple[bytes, int]] = {}
        self._version = 0
        #: (time, sector, "flush" | "writeback") for each sector that reached the medium
        self.log: list[tuple[int, int, str]] = []
        self.on_complete: Callable[[int, int], None] | None = None
        self.powered = True
        #: counters since power-on (a reset leaves them: they are what the host observes)
        self.reads = 0
        self.writes = 0
        self.flushes = 0
        self.dma_errors = 0
        self._reset()

    def _reset(self) -> None:
        self.ctrl = 0
        self.icr = 0
        self.ims = 0
        self.qba = 0
        self.qlen = 0
        self.qh = 0
        self.qt = 0
        self.busy = False

    # --- registers
    def mmio_read(self, off: int, size: int, now: int) -> int:
        match off:
            case 0x000:
                return self.ctrl
            case 0x008:
                return 1
            case 0x010:
                return self.medium.sectors & 0xFFFFFFFF
            case 0x014:
                return self.medium.sectors >> 32
            case 0x020:
                return self._read_icr()
            case 0x028:
                return self.ims
            case 0x100:
                return self.qba & 0xFFFFFFFF
            case 0x104:
                return self.qba >> 32
            case 0x108:
                return self.qlen
            case 0x110:
                return self.qh
            case 0x118:
                return self.qt
            case 0x300:
                return self.reads
            case 0x304:
                return self.writes
            case 0x308:
                return self.flushes
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
                self.ctrl = value & CTRL_EN
                self._kick(now)
            case 0x028:
                self._enable(value, now)
            case 0x02C:
                self._disable(value)
            case 0x100:
                self.qba = set_low(self.qba, value)
            case 0x104:
                self.qba = set_high(self.qba, value)
            case 0x108:
                self.qlen = min(value, MAX_QUEUE)
                self.qh = self.qt = 0
            case 0x118:
                if self.qlen:
                    self.qt = value % self.qlen
                    self._kick(now)

    # --- the request queue
    def _kick(self, now: int) -> None:
        if not self.busy and self.ctrl & CTRL_EN and self.qh != self.qt and self.powered:
            self.busy = True
            self.events.at(max(now, self.events.now), self._start, prio=PRIO_IRQ)

    def _start(self) -> None:
        """Take the request at QH: check it, move its data, complete it some time later."""
        now = self.events.now
        at = self.qba + self.qh * REQ_SIZE
        raw = self.dma.read(at, REQ_SIZE)
        if raw is None:  # the ring cannot be reached: stop
            self.busy = False
            self.dma_errors += 1
            self.ctrl &= ~CTRL_EN
            self._cause(ICR_DMAERR, now)
            return
        op, _st, _pad, count, sector, addr, _tag = struct.unpack("<BBHIQQQ", raw)
        nbytes = count * SECTOR
        status = ST_DONE
        delay = REQUEST_NS + nbytes * NS_PER_BYTE
        cause = ICR_CMP
        on_done: Callable[[int], None] | None = None
        if op in (OP_READ, OP_WRITE) and (count == 0 or count > MAX_SECTORS
                                           or sector + count > self.medium.sectors):
            status |= ST_RANGE
        elif op == OP_READ:
            data = b"".join(self.cache[s][0] if s in self.cache else self.medium.read(s)
                            for s in range(sector, sector + count))
            if self.dma.write(addr, data):
                self.reads += 1
            else:
                status |= ST_DMA
        elif op == OP_WRITE:
            data_or_none = self.dma.read(addr, nbytes)
            if data_or_none is None:
                status |= ST_DMA
            else:
                self.writes += 1
                on_done = self._cached(sector, data_or_none)
        elif op == OP_FLUSH:
            dirty = sorted(self.cache)
            delay = FLUSH_NS + len(dirty) * FLUSH_NS_PER_SECTOR
            on_done = self._flushed(dirty)
        else:
            status |= ST_OP
        if status & ST_DMA:
            self.dma_errors += 1
            cause |= ICR_DMAERR
        self.events.at(now + delay, self._complete, at, status, cause, on_done, prio=PRIO_IRQ)

    def _cached(self, sector: int, data: bytes) -> Callable[[int], None]:
        """What completing a write does: its sectors enter the cache, each with a write-back."""
        def done(now: int) -> None:
            for i in range(len(data) // SECTOR):
                self._version += 1
                v = self._version
                self.cache[sector + i] = (data[i * SECTOR : (i + 1) * SECTOR], v)
                delay = self.rng.randrange(WRITEBACK_MIN_NS, WRITEBACK_MAX_NS)
                self.events.at(now + delay, self._writeback, sector + i, v, prio=PRIO_IRQ)
        return done

    def _flushed(self, dirty: list[int]) -> Callable[[int], None]:
        """What completing a flush does: the sectors dirty when it started go to the medium."""
        def done(now: int) -> None:
            self.flushes += 1
            for s in dirty:
                entry = self.cache.get(s)
                if entry is not None:
                    self.medium.write(s, entry[0])
                    self.log.append((now, s, "flush"))
                    del self.cache[s]
        return done

    def _writeback(self, sector: int, version: int) -> None:
        entry = self.cache.get(sector)
        if entry is None or entry[1] != version or not self.powered:
            return  # written again since (its own write-back comes), flushed, or power gone
        self.medium.write(sector, entry[0])
        self.log.append((self.events.now, sector, "writeback"))
        del self.cache[sector]

    def _complete(self, at: int, status: int, cause: int, on_done: Callable[[int], None] | None) -> None:
        now = self.events.now
        if not self.powered:
            return
        if on_done is not None:
            on_done(now)
        if not self.dma.write(at + 1, bytes([status])):
            self.dma_errors += 1
            cause |= ICR_DMAERR
        self.qh = (self.qh + 1) % self.qlen if self.qlen else 0
        self.busy = False
        self._cause(cause, now)
        if self.on_complete is not None:
            self.on_complete(at, status)
        self._kick(now)

    def power_off(self) -> None:
        """The power goes: the cache is lost, the medium closed.  Nothing happens after."""
        self.powered = False
        self.cache.clear()
        self.medium.close()

    def stats(self) -> dict[str, int]:
        return {"reads": self.reads, "writes": self.writes, "flushes": self.flushes,
                "dma_errors": self.dma_errors, "cached": len(self.cache),
                "on_medium": len(self.log)}
