"""The cost model: simulated nanoseconds charged for each kernel operation.

One table, consulted by every kernel path.  The defaults follow published
L4 figures for a ~2-3 GHz x86-64 core: a Fiasco.OC / seL4 one-way IPC of a
few words costs a few hundred cycles (seL4's published fastpath ~0.1-0.2 us,
Fiasco.OC ~0.3-0.5 us round trip on modern cores), a context switch with an
address-space change roughly doubles that, and a kernel-object invocation is
a system call plus a little work.  Scenarios may replace any entry
(``CostModel(ipc_base=...)``); nothing else in the kernel may invent a time.

Each entry carries its own description as field metadata
(:meth:`CostModel.describe`, ``l4sim costs``): ``charges`` -- what the kernel
charges it for (the thread executing the trap that completes the operation
pays, see docs/kernel.md section 1.4);
``unit`` -- what one count of it is; ``source`` -- where the default comes
from: a published L4 measurement it is fitted to, or the reasoning behind an
estimate where no measurement maps onto the model's operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

#: the published figure most defaults are fitted to
_IPC_FIGURE = ("seL4's published x86-64 fastpath IPC of 0.1-0.2 us one way and Fiasco.OC's "
               "0.3-0.5 us round trip on modern cores")


def _entry(ns: int, charges: str, unit: str, source: str) -> Any:
    """A cost-model field: its default and its description."""
    return field(default=ns, metadata={"charges": charges, "unit": unit, "source": source})


@dataclass(slots=True)
class CostModel:
    syscall: int = _entry(
        60, "entering and leaving the kernel (syscall + sysret, register save): every Ipc "
        "trap, failed or not, SaveReply, LoadCode, and the exception and page-fault IPC",
        "ns per entry",
        f"fitted with ipc_base so that a short one-way IPC (syscall + ipc_base + a few "
        f"words, ~190 ns) matches {_IPC_FIGURE}; about 150 cycles at 2.5 GHz")
    ipc_base: int = _entry(
        120, "the IPC path itself (capability lookup, partner checks, state changes): every "
        "message delivered (send, call, reply, exception and page-fault IPC), and taking "
        "a queued interrupt",
        "ns per IPC",
        f"fitted with syscall to {_IPC_FIGURE}")
    ipc_per_word: int = _entry(
        2, "copying one untyped word of a delivered message (a message register)",
        "ns per word",
        "estimate: a 64-bit load and store through the UTCB, a few cycles")
    ipc_per_item: int = _entry(
        80, "one typed item (map or grant of a flexpage) of a delivered message, even if the "
        "items then fail; map_per_entry is added per mapping it makes",
        "ns per item",
        "estimate: decoding the item and checking both windows, about 200 cycles; no "
        "published figure isolates it")
    context_switch: int = _entry(
        150, "every switch of a core to a thread, not to idle (registers, kernel stack); paid "
        "by the thread switched to, outside its quantum",
        "ns per switch",
        "estimate: a few hundred cycles, the share of a same-address-space IPC round trip"
        " that is the thread switch in the published L4 figures")
    space_switch: int = _entry(
        150, "added to context_switch when the new thread's task differs from the previous "
        "thread's, or the core was idle (CR3 write, TLB refill)",
        "ns per task switch",
        "reasoning: an address-space change roughly doubles the cost of a switch in the "
        "published L4 figures (cross-address-space IPC against intra-address-space IPC)")
    kobject_op: int = _entry(
        200, "every kernel-object invocation (factory, thread control, task map/unmap, "
        "scheduler, Irq, ...) on top of syscall; LoadCode",
        "ns per invocation",
        "estimate: the IPC path's decode and dispatch plus a small operation, a little "
        "more than ipc_base")
    object_create: int = _entry(
        800, "a successful Factory create: allocation from the factory's quota and "
        "initialisation",
        "ns per object",
        "estimate: allocating and zeroing a kernel object of up to a few KiB (a Thread is"
        " 2 KiB) plus its bookkeeping, a few thousand cycles")
    map_per_entry: int = _entry(
        40, "per capability, page or port that an IPC map item transfers (a node of the "
        "mapping database and its slot); SaveReply",
        "ns per mapping",
        "estimate: inserting one node into the derivation tree and writing one"
        " page-table or capability slot, ~100 cycles")
    irq_entry: int = _entry(
        250, "the latency from a hardware interrupt line to its handler thread becoming "
        "runnable (interrupt entry, dispatch to the Irq object); charged to no thread",
        "ns per interrupt",
        "estimate: x86 interrupt entry and exit cost several hundred cycles before any "
        "handler runs")
    exception: int = _entry(
        300, "raising an exception (state save, message build), before its exception IPC",
        "ns per exception",
        "estimate: an exception entry (~ a page fault's) plus building the exception "
        "message")
    ipi: int = _entry(
        500, "the delay before a thread woken from one core preempts another core's thread (an"
        " inter-processor interrupt); charged to no thread",
        "ns per wake-up",
        "estimate: IPI delivery latency on x86 is about half a microsecond to a "
        "microsecond")
    clock_read: int = _entry(
        5, "a Clock trap: a program reading the clock (the KIP clock)",
        "ns per read",
        "reasoning: reading the KIP clock is a memory load, no kernel entry")
    error_path: int = _entry(
        40, "an IPC that fails at once in decode (lookup and checks only), on top of syscall",
        "ns per failure",
        "estimate: the capability lookup and one check, a fraction of ipc_base")
    mem_access: int = _entry(
        5, "each attempt of a native program's memory access (MemAccess: env.mem read or "
        "write, a load or store instruction)",
        "ns per access",
        "reasoning: a load or store that hits the cache takes a few cycles")
    mem_per_kib: int = _entry(
        60, "per whole KiB of a memory access or of a string item's copy in an IPC",
        "ns per KiB",
        "reasoning: memcpy at ~16-20 GB/s moves 1 KiB in ~50-60 ns")
    page_fault: int = _entry(
        250, "the kernel's part of a page fault (exception entry, fault decode), before the "
        "page-fault IPC to the pager",
        "ns per page fault",
        "estimate: x86 page-fault entry and decode cost several hundred cycles")
    io_access: int = _entry(
        400, "an I/O-port access (an in or out instruction)",
        "ns per access",
        "reasoning: in/out instructions are serialising and go to the bus; legacy port "
        "I/O takes on the order of half a microsecond")
    mmio_access: int = _entry(
        300, "a load or store on a device register (memory-mapped I/O), on top of mem_access",
        "ns per access",
        "reasoning: an uncached access that crosses to the device; a posted PCIe write"
        " takes ~100 ns, a read that waits for the device's answer ~0.5-1 us")
    guest_block: int = _entry(
        10, "executing one translated block of guest (x86-64) code, ~17 instructions, on the "
        "guest CPU",
        "ns per block",
        "reasoning: measured guest code averages ~17 instructions per block; at ~1.7 "
        "instructions per ns (a 2.5 GHz core at 0.7 instructions per cycle) that is 10 ns")
    guest_skew: int = _entry(
        10_000, "not a charge: how far a guest slice may run past other cores' pending steps "
        "(never past an interrupt, timeout or release); 0 runs the cores in lock-step",
        "ns",
        "reasoning: with several busy cores a slice then runs ~1000 blocks instead of a "
        "block or two between other cores' steps (the skew multi-core simulators accept),"
        " while a guest sees another core's IPC at most 10 us late")

    def table(self) -> list[tuple[str, int]]:
        """The table as (name, ns) pairs, for documentation and ``l4sim`` output."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def describe(self) -> list[dict[str, Any]]:
        """Every entry with its value and description: ``name``, ``value``, ``default``,
        ``unit``, ``charges``, ``source`` (what ``l4sim costs`` prints)."""
        return [{"name": f.name, "value": getattr(self, f.name), "default": f.default,
                 "unit": f.metadata["unit"], "charges": f.metadata["charges"],
                 "source": f.metadata["source"]} for f in fields(self)]
