"""The drivers' protocols: packet sessions (``NET``) and block sessions (``BLK``).

Both are the runtime's conventions (docs/runtime.md § 1.3): an IPC call,
the tag label names the protocol, word 0 the operation; replies are 0 or
``-errno``.  Frames and blocks travel as string items ("long IPC"): the
sender names bytes in its memory (``StrItem``), the receiver gives a buffer
(``StrBuf``); both must be mapped (the kernel resolves no page fault during
the copy).  docs/drivers.md describes them in full.

NET (the ``nic`` server, and each port of the switch: one protocol, so a
client -- a native program, later a Linux instance's stub driver -- works
against either)

  on the service gate
  ``OPEN``   flags (1: promiscuous)   -> (MAC) and a session gate, granted
  on a session gate
  ``SEND``   length; the frame as a string item   -> ()
  ``RECV``   flags (1: do not wait); a string buffer of ``MAX_FRAME`` bytes
             -> (length) and the frame as a string item; -EAGAIN without one
             when told not to wait; otherwise the reply waits for a frame
  ``INFO``   -> (MAC, MTU, frames sent, frames received, frames dropped)

BLK (the ``blk`` server)

  on the service gate
  ``OPEN``   -> (sectors, sector size) and a session gate, granted
  on a session gate
  ``READ``   sector, count; a string buffer of count * 512 bytes   -> () and the
             data as a string item
  ``WRITE``  sector, count; the data as a string item   -> ()
  ``FLUSH``  -> ()   every write answered before is on the medium
  ``INFO``   -> (sectors, sector size)
"""

from __future__ import annotations

from enum import IntEnum

NET = 0x4010
BLK = 0x4011
#: the largest frame (Ethernet without FCS) and a block request's largest size
MAX_FRAME = 1514
MIN_FRAME = 14
MAX_BLOCK_SECTORS = 8
SECTOR = 512
#: OPEN flags and RECV flags
NET_PROMISC = 1
NET_NONBLOCK = 1


class NetOp(IntEnum):
    OPEN = 0
    SEND = 1
    RECV = 2
    INFO = 3


class BlkOp(IntEnum):
    OPEN = 0
    READ = 1
    WRITE = 2
    FLUSH = 3
    INFO = 4
