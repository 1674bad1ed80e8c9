"""The native untrusted store: a key-value server whose blobs survive a reboot, trusted with nothing.

The storage server (:mod:`l4sim.security.storage`) keeps its files in a
store, encrypted and authenticated; the store sees only opaque keys and
ciphertext, and may do anything with them -- lose them, change them, serve
old ones.  It is the *untrusted* part of the trusted wrapper.  By default it
is a Linux instance whose busybox shell keeps each blob as a file
(``scenarios/scripts/secure_storage.py``); this small native program, which
keeps an append-only log in the machine's NVRAM (``ioports("nvram")``), is
the store where no busybox is at hand.  Both speak the line protocol of
:mod:`l4sim.security.store_protocol`, so the storage server does not know
which it has.

The medium (:func:`records`, :func:`append`): the NVRAM holds ``L4STORE1``,
the log's length (32 bits, little-endian), then records -- each its length
(32 bits), a kind (1 put, 2 delete), the key's length (8 bits), the key and
the value.  A key's value is its last record's.  Old values stay in the log
until it is full and compacted: the untrusted medium keeps history, which is
what lets an attacker replay it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from l4sim.kernel.abi import Err, StrBuf, StrItem
from l4sim.machine.board import NVRAM_PORT
from l4sim.security.clients import bind_clients
from l4sim.security.store_protocol import CHUNK, KEY, LINE_MAX, STORE_PROTO, VALUE_MAX
from l4sim.user.env import Env

MAGIC = b"L4STORE1"
HEADER = len(MAGIC) + 4
PUT_RECORD, DELETE_RECORD = 1, 2


@dataclass(frozen=True)
class Record:
    kind: int
    key: bytes
    value: bytes

    def encode(self) -> bytes:
        body = bytes([self.kind, len(self.key)]) + self.key + self.value
        return struct.pack("<I", len(body)) + body


def records(disk: bytes | bytearray) -> list[Record]:
    """The log on a medium, in order (empty when it holds no log)."""
    if disk[: len(MAGIC)] != MAGIC:
        return []
    (length,) = struct.unpack_from("<I", disk, len(MAGIC))
    out: list[Record] = []
    pos, end = HEADER, min(HEADER + length, len(disk))
    while pos + 4 <= end:
        (n,) = struct.unpack_from("<I", disk, pos)
        body = disk[pos + 4 : pos + 4 + n]
        if n < 2 or len(body) < n or 2 + body[1] > n:
            break  # a torn record at the end: the log ends before it
        out.append(Record(body[0], bytes(body[2 : 2 + body[1]]), bytes(body[2 + body[1] :])))
        pos += 4 + n
    return out


def current(recs: list[Record]) -> dict[bytes, bytes]:
    """Each key's value: its last record's (a delete removes it)."""
    out: dict[bytes, bytes] = {}
    for r in recs:
        if r.kind == PUT_RECORD:
            out[r.key] = r.value
        else:
            out.pop(r.key, None)
    return out


def log_bytes(recs: list[Record]) -> bytes:
    body = b"".join(r.encode() for r in recs)
    return MAGIC + struct.pack("<I", len(body)) + body


def append(disk: bytearray, rec: Record) -> None:
    """Append a record to the log on ``disk`` in place (what an attacker holding the medium does)."""
    recs = records(disk)
    image = log_bytes([*recs, rec])
    if len(image) > len(disk):
        raise ValueError("the medium is full")
    disk[: len(image)] = image


class Nvram:
    """The NVRAM's registers: an address, then bytes through the data port."""

    def __init__(self, env: Env, base: int = NVRAM_PORT) -> None:
        self.env = env
        self.base = base

    async def seek(self, addr: int) -> None:
        for i in range(3):
            await self.env.io.outb(self.base + i, (addr >> (8 * i)) & 0xFF)

    async def read(self, addr: int, n: int) -> bytes:
        await self.seek(addr)
        io, port = self.env.io, self.base + 3
        return bytes([await io.inb(port) for _ in range(n)])

    async def write(self, addr: int, data: bytes) -> None:
        await self.seek(addr)
        io, port = self.env.io, self.base + 3
        for b in data:
            await io.outb(port, b)

    async def size(self) -> int:
        return (await self.env.io.inb(self.base + 4)) << 10


class Log:
    """The store's state: its log on the NVRAM and, in its own memory, each key's value."""

    def __init__(self, nv: Nvram, capacity: int) -> None:
        self.nv = nv
        self.capacity = capacity
        self.length = 0
        self.values: dict[bytes, bytes] = {}

    async def load(self) -> None:
        head = await self.nv.read(0, HEADER)
        if head[: len(MAGIC)] != MAGIC:
            await self.nv.write(0, MAGIC + bytes(4))  # a blank medium: an empty log
            return
        (length,) = struct.unpack_from("<I", head, len(MAGIC))
        self.length = min(length, self.capacity - HEADER)
        recs = records(head + await self.nv.read(HEADER, self.length))
        self.values = current(recs)
        self.length = len(log_bytes(recs)) - HEADER

    async def add(self, rec: Record) -> bool:
        data = rec.encode()
        if HEADER + self.length + len(data) > self.capacity:
            live = [Record(PUT_RECORD, k, v) for k, v in sorted(self.values.items())]
            if rec.kind == PUT_RECORD:
                live = [r for r in live if r.key != rec.key]
            image = log_bytes(live)
            if len(image) + len(data) > self.capacity:
                return False
            await self.nv.write(0, image)  # compaction: old values go only now
            self.length = len(image) - HEADER
        await self.nv.write(HEADER + self.length, data)
        self.length += len(data)
        await self.nv.write(len(MAGIC), struct.pack("<I", self.length))  # the commit
        if rec.kind == PUT_RECORD:
            self.values[rec.key] = rec.value
        else:
            self.values.pop(rec.key, None)
        return True


async def store(env: Env) -> int:
    """The store's program: load the log from the NVRAM, then serve its clients forever.

    It binds its channels first, so a client that calls while it is still
    reading the medium waits for it instead of finding nobody there.  Each
    request arrives as a line in its receive buffer; each answer is a line
    sent from its answer buffer (the first two pages of its heap).
    """
    clients = await bind_clients(env)
    rbuf, _ = env.heap  # type: ignore[attr-defined]
    abuf = rbuf + LINE_MAX
    await env.mem.write(rbuf, bytes(LINE_MAX))  # string buffers must be mapped
    nv = Nvram(env)
    log = Log(nv, await nv.size())
    await log.load()
    pending: dict[tuple[int, str], bytearray] = {}  # values arriving in pieces
    rcv = (StrBuf(rbuf, LINE_MAX),)
    msg = await env.wait(rcv=rcv)
    while True:
        if msg.error:
            msg = await env.wait(rcv=rcv)
            continue
        got = [b for b in msg.items if isinstance(b, StrBuf)]
        if msg.label & ~3 not in clients or msg.proto != STORE_PROTO or not got:
            answer = f"{-Err.ENOSYS}"
        else:
            line = (await env.mem.read(rbuf, got[0].length)).decode("ascii", "replace")
            try:
                answer = await _serve(log, pending, msg.label & ~3, line.split())
            except (ValueError, IndexError):
                answer = f"{-Err.EINVAL}"
        data = answer.encode() + b"\n"
        await env.mem.write(abuf, data)
        msg = await env.answer(0, (len(data),), (StrItem(abuf, len(data)),), rcv=rcv)


async def _serve(log: Log, pending: dict[tuple[int, str], bytearray], client: int, req: list[str]) -> str:
    """One request's answer line (``req``: the request line's fields)."""
    op, key = req[0], req[1]
    if not KEY.fullmatch(key):
        return f"{-Err.EINVAL}"
    raw = key.encode()
    if op == "get":
        value = log.values.get(raw)
        if value is None:
            return f"{-Err.ENOENT}"
        off = int(req[2])
        return f"{len(value)} {value[off : off + CHUNK].hex()}"
    if op == "put":
        offset, size = int(req[2]), int(req[3])
        piece = bytes.fromhex(req[4]) if len(req) > 4 else b""
        if size > VALUE_MAX or offset < 0:
            return f"{-Err.EINVAL}"
        if offset == 0:
            pending[(client, key)] = bytearray()
        buf = pending.get((client, key))
        if buf is None or offset != len(buf) or offset + len(piece) > size:
            pending.pop((client, key), None)
            return f"{-Err.EINVAL}"
        buf += piece
        if len(buf) < size:
            return "0"
        del pending[(client, key)]
        return "0" if await log.add(Record(PUT_RECORD, raw, bytes(buf))) else f"{-Err.ENOMEM}"
    if op == "del":
        if raw not in log.values:
            return f"{-Err.ENOENT}"
        return "0" if await log.add(Record(DELETE_RECORD, raw, b"")) else f"{-Err.ENOMEM}"
    return f"{-Err.ENOSYS}"
