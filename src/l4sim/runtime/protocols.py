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

Session factory (``SESSION``; any server that hands out sessions: the GUI, io)
  ``CREATE``    label (packed bytes), then numeric arguments
                                      -> () and the session gate, granted: the caller
                                         holds its only capability.  ned calls this for a
                                         program given ``channel.session(...)``: the label
                                         is the program's name in the startup script (and
                                         the script's text arguments), so a server knows
                                         its client by the script's word, never its own

io (``IO``; :mod:`l4sim.runtime.io`, on a device session: the device's resources)
  ``INFO``      -> (memory bytes, first port, ports, interrupt lines)
  ``PORTS``     -> () and the device's ports as an I/O map item
                                         (receive window: ``Fpage.io(0, 16)``)
  ``IRQ``       index -> () and an Irq bound to the device's line ``index``
                (R and W: attach it, unmask it)
  the device session is also a dataspace of the device's memory:
  ``DATASPACE`` ``MAP`` and ``INFO`` as above, so a region manager attaches it

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
SESSION = 0x4007
IO = 0x4008
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


class SessionOp(IntEnum):
    CREATE = 0


class IoOp(IntEnum):
    INFO = 0
    PORTS = 1
    IRQ = 2
