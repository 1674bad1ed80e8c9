"""The cost model: simulated nanoseconds charged for each kernel operation.

One table, consulted by every kernel path.  The defaults follow published
L4 figures for a ~2-3 GHz x86-64 core: a Fiasco.OC / seL4 one-way IPC of a
few words costs a few hundred cycles (seL4's published fastpath ~0.1-0.2 us,
Fiasco.OC ~0.3-0.5 us round trip on modern cores), a context switch with an
address-space change roughly doubles that, and a kernel-object invocation is
a system call plus a little work.  Scenarios may replace any entry
(``CostModel(ipc_base=...)``); nothing else in the kernel may invent a time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(slots=True)
class CostModel:
    #: entering and leaving the kernel (syscall + sysret)
    syscall: int = 60
    #: the IPC path itself: capability lookup, partner checks, state changes
    ipc_base: int = 120
    #: copying one message register
    ipc_per_word: int = 2
    #: transferring one typed item (capability or flexpage map)
    ipc_per_item: int = 80
    #: switching threads on a core (within a task)
    context_switch: int = 150
    #: additional cost when the address space changes (TLB, CR3)
    space_switch: int = 150
    #: a kernel-object invocation (factory, thread control, ...) beyond syscall
    kobject_op: int = 200
    #: creating a kernel object (allocation + initialisation)
    object_create: int = 800
    #: one capability mapping created or removed in the mapping database
    map_per_entry: int = 40
    #: interrupt entry: from the line to the Irq object
    irq_entry: int = 250
    #: raising an exception IPC (state save, message build)
    exception: int = 300
    #: delivering a wake-up to another core (IPI latency)
    ipi: int = 500
    #: reading the clock (KIP)
    clock_read: int = 5
    #: an invocation that fails in decode (lookup + check only)
    error_path: int = 40
    #: one memory access of a native program (a load or store instruction)
    mem_access: int = 5
    #: copying each KiB of a larger access
    mem_per_kib: int = 60
    #: the kernel's part of a page fault (exception entry, fault decode)
    page_fault: int = 250
    #: one I/O-port access (in/out instructions are slow on x86)
    io_access: int = 400
    #: one translated block of guest (x86-64) code, ~17 instructions
    guest_block: int = 10
    #: how far a guest slice may run past *other* cores' pending steps (never past an
    #: interrupt, timeout or release): the skew between busy cores; 0 = lock-step
    guest_skew: int = 10_000

    def table(self) -> list[tuple[str, int]]:
        """The table as (name, ns) pairs, for documentation and ``l4sim`` output."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]
