"""The untrusted store: a key-value server whose blobs survive a reboot, trusted with nothing.

The storage server (:mod:`l4sim.security.storage`) keeps its files here,
encrypted and authenticated; this server sees only opaque keys and
ciphertext, and may do anything with them -- lose them, change them, serve
old ones.  It is the *untrusted* part of the trusted wrapper: today a small
native program that keeps an append-only log in the machine's NVRAM
(``ioports("nvram")``); later a Linux instance whose busybox processes keep
the blobs as files (docs/security.md, "A Linux store").  Either implements
the same protocol, so the storage server does not know which it has.

Protocol (tag label :data:`STORE_PROTO`; word 0 the operation; keys and
values are byte fields, :mod:`l4sim.security.clients`)
---------------------------------------------------------------------

=============  ==========================================  ===============================
operation      words after the op                          reply words (label 0)
=============  ==========================================  ===============================
``GET`` 0      offset, key                                 the value's size, up to
                                                           :data:`CHUNK` bytes from offset
``PUT`` 1      offset, size, key, bytes                    -- (the value is replaced when
                                                           its last byte arrived)
``DELETE`` 2   key                                         --
``LIST`` 3     index                                       the index-th key in key order
=============  ==========================================  ===============================

``-ENOENT``: no such key (or index); ``-EINVAL``: a malformed request or a
``PUT`` whose pieces do not fit together; ``-ENOMEM``: the NVRAM is full.

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

from l4sim.kernel.abi import Err
from l4sim.kernel.traps import Msg
from l4sim.machine.board import NVRAM_PORT
from l4sim.security.clients import MAX_FIELD, bind_clients, fields, take_bytes
from l4sim.user.env import Env, IpcCap

STORE_PROTO = 0x4103
GET, PUT, DELETE, LIST = range(4)
#: value bytes one message carries
CHUNK = 256
MAGIC = b"L4STORE1"
HEADER = len(MAGIC) + 4
PUT_RECORD, DELETE_RECORD = 1, 2
KEY_MAX = 32
#: the largest value the store keeps
VALUE_MAX = 16 << 10


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
    reading the medium waits for it instead of finding nobody there.
    """
    clients = await bind_clients(env)
    nv = Nvram(env)
    log = Log(nv, await nv.size())
    await log.load()
    pending: dict[tuple[int, bytes], bytearray] = {}  # values arriving in pieces
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        try:
            if msg.label & ~3 not in clients or msg.proto != STORE_PROTO or not msg.words:
                reply: tuple[int, ...] = (-Err.ENOSYS,)
            else:
                reply = await _serve(log, pending, msg)
        except (ValueError, IndexError):
            reply = (-Err.EINVAL,)
        msg = await env.answer(reply[0], reply[1:])


async def _serve(log: Log, pending: dict[tuple[int, bytes], bytearray], msg: Msg) -> tuple[int, ...]:
    w = msg.words
    op = w[0]
    if op == GET:
        key, _ = take_bytes(w, 2)
        value = log.values.get(key)
        if value is None:
            return (-Err.ENOENT,)
        return (0, len(value), *fields(value[w[1] : w[1] + CHUNK]))
    if op == PUT:
        offset, size = w[1], w[2]
        key, i = take_bytes(w, 3)
        piece, _ = take_bytes(w, i)
        if not key or len(key) > KEY_MAX or size > VALUE_MAX:
            return (-Err.EINVAL,)
        buf = pending.setdefault((msg.label & ~3, key), bytearray())
        if offset != len(buf) or offset + len(piece) > size:
            del pending[(msg.label & ~3, key)]
            return (-Err.EINVAL,)
        buf += piece
        if len(buf) < size:
            return (0,)
        del pending[(msg.label & ~3, key)]
        return (0,) if await log.add(Record(PUT_RECORD, key, bytes(buf))) else (-Err.ENOMEM,)
    if op == DELETE:
        key, _ = take_bytes(w, 1)
        if key not in log.values:
            return (-Err.ENOENT,)
        return (0,) if await log.add(Record(DELETE_RECORD, key, b"")) else (-Err.ENOMEM,)
    if op == LIST:
        keys = sorted(log.values)
        return (0, *fields(keys[w[1]])) if w[1] < len(keys) else (-Err.ENOENT,)
    return (-Err.ENOSYS,)


class StoreError(Exception):
    """The store refused or failed a request (``err``: the errno it answered)."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: -{err}")
        self.err = err


class StoreClient:
    """The storage server's side of the store's protocol (any store that speaks it)."""

    def __init__(self, gate: IpcCap) -> None:
        self.gate = gate

    async def _call(self, what: str, *words: int) -> Msg:
        msg = await self.gate.call(STORE_PROTO, *words)
        if msg.error:
            raise StoreError(f"{what} (IPC error {msg.error:#x})", Err.EIO)
        return msg

    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when the store has none."""
        out = b""
        while True:
            msg = await self._call("GET", GET, len(out), *fields(key))
            if msg.proto == -Err.ENOENT:
                return None
            if msg.proto < 0:
                raise StoreError("GET", -msg.proto)
            size = msg.words[0]
            piece, _ = take_bytes(msg.words, 1)
            out += piece
            if len(out) >= size or not piece:
                return out[:size]

    async def put(self, key: bytes, value: bytes) -> None:
        step = min(CHUNK, MAX_FIELD - 8 * 8)
        for off in range(0, max(len(value), 1), step):
            msg = await self._call("PUT", PUT, off, len(value), *fields(key, value[off : off + step]))
            if msg.proto < 0:
                raise StoreError("PUT", -msg.proto)

    async def delete(self, key: bytes) -> None:
        msg = await self._call("DELETE", DELETE, *fields(key))
        if msg.proto < 0 and msg.proto != -Err.ENOENT:
            raise StoreError("DELETE", -msg.proto)
