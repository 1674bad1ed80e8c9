"""The runtime's protocols: labels, operation numbers and message layouts.

These are the L4Re interfaces (``l4re/include/{dataspace,rm,namespace,
parent,mem_alloc}``) as l4sim's runtime speaks them.  Every request is an
IPC *call*: the tag label names the protocol, word 0 the operation, the
remaining words the arguments; capabilities travel as object map items,
memory as memory map items into the caller's receive window.  A reply's
label is 0 on success or ``-errno`` (``abi.Err``); its words are the results.

Operations (word 0) and their words -- "->" gives the reply words:

Parent (``PARENT``; the loader serves it for each program it started)
  ``SIGNAL``    sig, value            sig EXIT: value = exit code;
                                      sig FAULT: value = fault address, word 3 = ip,
                                      word 4 = 1 for a write
                                      no reply: the parent ends the program's task;
                                      an unknown signal is answered -EINVAL

Namespace (``NAMESPACE``)
  ``QUERY``     name (packed bytes)   -> (found 1) and the capability as item
                                         into the caller's receive buffer
  ``REGISTER``  flags, name           capability as a map item -> ()
  ``UNLINK``    name                  -> ()

Dataspace (``DATASPACE``)
  ``MAP``       offset, flags         -> () and the page at ``offset`` mapped to
                                         the caller's receive window (flags: 1 = W)
  ``INFO``      -> (size, flags, pages present)
  ``CLEAR``     offset, size          -> ()  (zero-fill)
  ``COPY_IN``   dst offset, src offset, size; the source dataspace capability
                as an object map item  -> ()
  ``ALLOCATE``  offset, size          -> ()  (back the range with frames now; needs no W)

Memory allocator (``MEM_ALLOC``; moe's factory)
  ``CREATE_DS``   size, flags, align  -> (size) and the new dataspace
  ``CREATE_NS``                       -> () and a new namespace
  ``CREATE_LOG``  tag (packed bytes)  -> () and a log stream with that tag
  ``QUOTA``                           -> (limit, used) of the caller's session
  ``CREATE_SESSION`` quota            -> () and a new MEM_ALLOC gate (a session with
                                         that quota, charged to the caller's), granted:
                                         the caller holds its only capability
  ``CREATE_SCHED``  max prio, cpu mask -> () and a scheduler proxy limited to priorities
                                         up to ``max prio`` and the CPUs in the mask

Scheduler proxy (``Proto.SCHEDULER``, the kernel scheduler's label; moe serves it)
  ``INFO``          -> (CPUs, max prio, the proxy's CPU mask)
  ``RUN_THREAD``    thread slot (ignored), prio, quantum, cpus; the thread as an
                    object map item (needs W)  -> ()   forwarded to the kernel's scheduler;
                                         a priority above the limit or a CPU outside the
                                         mask is refused with -EPERM
  ``IDLE_TIME``     cpu               -> (idle ns)   for the proxy's CPUs only
  ``RESV_INFO``     cpu               -> as the kernel's, for the proxy's CPUs only
  ``SET_RESERVATION``                 -> -EPERM: a proxy grants no reservations

Region map (``RM``; each program's region manager, its pager)
  ``ATTACH``    addr, size, flags, offset; dataspace as an object map item
                                      -> (addr)  flags: SEARCH_ADDR, IN_AREA,
                                         EAGER_MAP, READ_ONLY
  ``DETACH``    addr                  -> (start, size); unmaps the region
  ``FIND``      addr                  -> (start, size, offset, flags) or -ENOENT
  ``RESERVE``   addr, size, flags     -> (addr)  (an area nothing is attached to
                                         unless IN_AREA)
  ``FREE_AREA`` addr                  -> ()
  page faults (``Proto.PAGE_FAULT``) arrive here too: resolved from the
  region's dataspace; an address in no region is reported to the parent as
  ``SIGNAL FAULT`` and the faulting thread is left unanswered.

Log (``LOG`` = Fiasco's -13, the Vcon label)
  ``WRITE``     length, bytes packed  -> ()   one labelled line stream per client

Virtual bus (``IO_BUS``; io, :mod:`l4sim.runtime.io`: one gate per bus of the script)
  ``LIST``      -> (devices on the bus)
  ``DEVICE``    index             -> (kind, register pages, interrupt lines) and the
                                     device's name packed; kind 1 NIC, 2 block device,
                                     3 framebuffer, 4 keyboard, 5 pointer
  ``CLAIM``     index             -> (kind) and a device gate, granted (the claimer holds
                                     its only capability); -EBUSY while another claim lives

Device (``IO_DEVICE``; io, on the gate ``CLAIM`` handed out)
  ``IOMEM``     -> (pages) and the device's register pages mapped to the receive window
  ``IRQ``       -> () and an Irq capability (R W) bound to the device's interrupt line
                   (-ENOENT: the device has none)
  ``DMA_ALLOC`` size              -> (device address, size) and a dataspace (io's; R W)
                                     of physically contiguous memory the device may reach
                                     (-ENODEV: the device does no DMA)
  ``DMA_FREE``  device address    -> ()  the IOMMU forgets it, every mapping of it goes
  ``INFO``      -> (kind, IOMMU faults of the device so far)
  ``MEMORY``    -> (bytes) and a dataspace (io's; R W) of the device's own memory -- a
                   framebuffer's pixels -- to attach (-ENOENT: the device has none)

Session factory (``SESSION``; any server that hands out sessions: the GUI)
  ``CREATE``    label (packed bytes), then numeric arguments
                                      -> () and the session gate, granted: the caller
                                         holds its only capability.  ned calls this for a
                                         program given ``channel.session(...)``: the label
                                         is the program's name in the startup script (and
                                         the script's text arguments), so a server knows
                                         its client by the script's word, never its own

Console (``CONSOLE``; the console server, :mod:`l4sim.runtime.console`, the one
program holding the host's terminal)
  ``WRITE``     stream (1 stdout, 2 stderr), length, bytes packed
                                      -> (bytes written); at most 480 bytes a message
  ``READ``      max bytes             -> length, bytes packed (length 0: end of input)
"""

from __future__ import annotations

from enum import IntEnum

#: protocol labels of the runtime's interfaces (positive, beside the kernel's negative ones)
PARENT = 0x4001
NAMESPACE = 0x4002
RM = 0x4003
DATASPACE = 0x4004
MEM_ALLOC = 0x4005
CONSOLE = 0x4006
IO_BUS = 0x4007
IO_DEVICE = 0x4008
SESSION = 0x4009
LOG = -13


class ParentOp(IntEnum):
    SIGNAL = 0


class Sig(IntEnum):
    EXIT = 0
    FAULT = 1
    #: sent by the loader's own watcher thread (label 0), never by a program: the main thread died
    GONE = 2


class NsOp(IntEnum):
    QUERY = 0
    REGISTER = 1
    UNLINK = 2


class DsOp(IntEnum):
    MAP = 0
    INFO = 1
    CLEAR = 2
    COPY_IN = 3
    ALLOCATE = 4


class MemOp(IntEnum):
    CREATE_DS = 0
    CREATE_NS = 1
    CREATE_LOG = 2
    QUOTA = 3
    CREATE_SESSION = 4
    CREATE_SCHED = 5


class RmOp(IntEnum):
    ATTACH = 0
    DETACH = 1
    FIND = 2
    RESERVE = 3
    FREE_AREA = 4


class RmFlag:
    SEARCH_ADDR = 0x1
    IN_AREA = 0x2
    EAGER_MAP = 0x4
    READ_ONLY = 0x8


class DsFlag:
    RW = 0x1
    #: back the dataspace with frames at creation, not at first touch
    PINNED = 0x2


class ConsoleOp(IntEnum):
    WRITE = 0
    READ = 1


class BusOp(IntEnum):
    LIST = 0
    DEVICE = 1
    CLAIM = 2


class DevOp(IntEnum):
    IOMEM = 0
    IRQ = 1
    DMA_ALLOC = 2
    DMA_FREE = 3
    INFO = 4
    MEMORY = 5


class DevKind(IntEnum):
    NIC = 1
    BLK = 2
    FB = 3
    KBD = 4
    PTR = 5


class SessionOp(IntEnum):
    CREATE = 0
