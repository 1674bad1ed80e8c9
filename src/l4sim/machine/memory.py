"""Physical memory: 4 KiB frames in one host ``mmap`` buffer, and device memory.

RAM is a single anonymous ``mmap`` of the scenario's size; frame ``pfn``
lives at byte offset ``pfn << 12``, so every frame has a stable host
address for its whole life.  That is what lets a guest CPU (the unicorn
executor of the Linux personality) map the buffer once and see exactly the
bytes native programs see: shared memory is really shared.

Device memory (MMIO) are frames too, above RAM in the physical address
space, each region owned by a device.  A region either is plain memory on
the device (a framebuffer: its own buffer) or holds *registers*: then a
load or store there is a call of the device's :class:`Registers` handler
(``io_read``/``io_write``), which is how a driver talks to hardware.  The
kernel does not know what a frame is used for; sigma0 decides who may have
which frame, and the kernel's memory-access path hands accesses to frames
above RAM to ``io_read``/``io_write`` (``kernel/vspace.py``).

Devices reach RAM by physical address (DMA) through ``dma_read`` and
``dma_write``, never through a task's mappings: a device knows nothing of
address spaces.  Whether a device may touch a frame at all is the IOMMU's
decision (``machine/iommu.py``).
"""

from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass
from typing import Protocol

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
#: default RAM size of a machine
DEFAULT_RAM = 256 << 20
#: where device memory starts in the physical address space
DEVICE_BASE = 0xF000_0000


class Registers(Protocol):
    """A device's register file as the memory bus sees it: ``size`` is 1, 2, 4 or 8 and
    ``off`` (from the start of the device's region) a multiple of it; ``now`` is the
    simulated time of the access (the accessing core's clock, which may run ahead of the
    event queue's), from which the device schedules what the access sets off."""

    def mmio_read(self, off: int, size: int, now: int) -> int: ...

    def mmio_write(self, off: int, size: int, value: int, now: int) -> None: ...


@dataclass(slots=True)
class DeviceRegion:
    """A range of device frames (MMIO) owned by one device.

    ``regs`` is None for plain device memory (the bytes of ``buf``), else the
    handler every load and store in the region goes to.
    """

    name: str
    base_pfn: int
    npages: int
    buf: bytearray
    regs: Registers | None = None

    def contains(self, pfn: int) -> bool:
        return self.base_pfn <= pfn < self.base_pfn + self.npages


class PhysMem:
    """RAM frames in one mmap buffer plus device regions."""

    def __init__(self, ram_bytes: int = DEFAULT_RAM) -> None:
        if ram_bytes <= 0 or ram_bytes % PAGE_SIZE:
            raise ValueError(f"RAM size must be a positive multiple of {PAGE_SIZE} bytes, not {ram_bytes}")
        if ram_bytes > DEVICE_BASE:
            raise ValueError(f"RAM size {ram_bytes >> 20} MiB overlaps device memory at {DEVICE_BASE:#x}")
        self.size = ram_bytes
        self.nframes = ram_bytes >> PAGE_SHIFT
        self.buf = mmap.mmap(-1, ram_bytes)
        self.view = memoryview(self.buf)
        self.devices: list[DeviceRegion] = []
        self._next_dev_pfn = DEVICE_BASE >> PAGE_SHIFT

    def host_address(self, pfn: int) -> int:
        """The host virtual address of RAM frame ``pfn`` (stable for the run)."""
        assert 0 <= pfn < self.nframes, "host addresses exist for RAM frames only"
        base = ctypes.addressof(ctypes.c_char.from_buffer(self.buf))
        return base + (pfn << PAGE_SHIFT)

    def add_device(self, name: str, npages: int, regs: Registers | None = None) -> DeviceRegion:
        """Reserve ``npages`` frames of device memory for device ``name``.

        The region is aligned to its size rounded up to a power of two, so one
        flexpage covers it (what sigma0 and io hand out).  ``regs`` makes it a
        register file (MMIO) instead of plain memory.
        """
        align = 1 << (npages - 1).bit_length()
        base = (self._next_dev_pfn + align - 1) & ~(align - 1)
        region = DeviceRegion(name, base, npages, bytearray(0 if regs is not None else npages << PAGE_SHIFT),
                              regs)
        self._next_dev_pfn = base + npages
        self.devices.append(region)
        return region

    def is_ram(self, pfn: int) -> bool:
        return 0 <= pfn < self.nframes

    def device_of(self, pfn: int) -> DeviceRegion | None:
        for d in self.devices:
            if d.contains(pfn):
                return d
        return None

    def exists(self, pfn: int) -> bool:
        return self.is_ram(pfn) or self.device_of(pfn) is not None

    def frame(self, pfn: int) -> memoryview:
        """A writable view of one frame's 4096 bytes."""
        if 0 <= pfn < self.nframes:
            off = pfn << PAGE_SHIFT
            return self.view[off : off + PAGE_SIZE]
        d = self.device_of(pfn)
        if d is None:
            raise IndexError(f"no frame {pfn:#x}")
        if d.regs is not None:
            raise IndexError(f"frame {pfn:#x} holds registers of {d.name}: use io_read / io_write")
        off = (pfn - d.base_pfn) << PAGE_SHIFT
        return memoryview(d.buf)[off : off + PAGE_SIZE]

    # --- loads and stores on device frames (what the kernel's access path calls above RAM)
    def io_read(self, pfn: int, off: int, n: int, now: int) -> tuple[DeviceRegion, int, bytes]:
        """Load ``n`` bytes at offset ``off`` of device frame ``pfn``: (region, offset in the
        region, bytes).  A register access must be 1, 2, 4 or 8 bytes, naturally aligned;
        any other reads all ones and reaches no register (a bus error, as on PCI)."""
        d = self.device_of(pfn)
        if d is None:
            raise IndexError(f"no frame {pfn:#x}")
        roff = ((pfn - d.base_pfn) << PAGE_SHIFT) + off
        if d.regs is None:
            return d, roff, bytes(d.buf[roff : roff + n])
        if n in (1, 2, 4, 8) and not roff % n:
            return d, roff, d.regs.mmio_read(roff, n, now).to_bytes(n, "little")
        return d, roff, b"\xff" * n

    def io_write(self, pfn: int, off: int, data: bytes, now: int) -> tuple[DeviceRegion, int]:
        """Store ``data`` at offset ``off`` of device frame ``pfn``: (region, offset in the
        region).  A register store of another size or alignment is dropped."""
        d = self.device_of(pfn)
        if d is None:
            raise IndexError(f"no frame {pfn:#x}")
        roff = ((pfn - d.base_pfn) << PAGE_SHIFT) + off
        n = len(data)
        if d.regs is None:
            d.buf[roff : roff + n] = data
        elif n in (1, 2, 4, 8) and not roff % n:
            d.regs.mmio_write(roff, n, int.from_bytes(data, "little"), now)
        return d, roff

    # --- DMA: a device's reads and writes of RAM by physical address
    def dma_read(self, paddr: int, n: int) -> bytes:
        """``n`` bytes of RAM at physical address ``paddr`` (the caller checked the range)."""
        assert paddr >= 0 and paddr + n <= self.size, "DMA reaches RAM only"
        return bytes(self.view[paddr : paddr + n])

    def dma_write(self, paddr: int, data: bytes) -> None:
        """Store ``data`` in RAM at physical address ``paddr`` (the caller checked the range)."""
        assert paddr >= 0 and paddr + len(data) <= self.size, "DMA reaches RAM only"
        self.view[paddr : paddr + len(data)] = data

    def zero(self, pfn: int) -> None:
        self.frame(pfn)[:] = bytes(PAGE_SIZE)
