"""Physical memory: 4 KiB frames in one host ``mmap`` buffer, and device memory.

RAM is a single anonymous ``mmap`` of the scenario's size; frame ``pfn``
lives at byte offset ``pfn << 12``, so every frame has a stable host
address for its whole life.  That is what lets a guest CPU (the unicorn
executor of the Linux personality) map the buffer once and see exactly the
bytes native programs see: shared memory is really shared.

Device memory (MMIO) are frames too, above RAM in the physical address
space, each region owned by a device and backed by its own buffer.  The
kernel does not know what a frame is used for; sigma0 decides who may have
which frame.
"""

from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
#: default RAM size of a machine
DEFAULT_RAM = 256 << 20
#: where device memory starts in the physical address space
DEVICE_BASE = 0xF000_0000


@dataclass(slots=True)
class DeviceRegion:
    """A range of device frames (MMIO) owned by one device."""

    name: str
    base_pfn: int
    npages: int
    buf: bytearray

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

    def add_device(self, name: str, npages: int) -> DeviceRegion:
        """Reserve ``npages`` frames of device memory for device ``name``."""
        region = DeviceRegion(name, self._next_dev_pfn, npages, bytearray(npages << PAGE_SHIFT))
        self._next_dev_pfn += npages
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
        off = (pfn - d.base_pfn) << PAGE_SHIFT
        return memoryview(d.buf)[off : off + PAGE_SIZE]

    def zero(self, pfn: int) -> None:
        self.frame(pfn)[:] = bytes(PAGE_SIZE)
