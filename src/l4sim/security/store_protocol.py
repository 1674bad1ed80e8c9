"""The store protocol: how the storage server speaks to its untrusted store, whichever it is.

The storage server (:mod:`l4sim.security.storage`) keeps its blobs in a
store it does not trust: the native one of :mod:`l4sim.security.store`, or a
Linux instance whose busybox shell keeps each blob as a file, reached
through a ``/dev/l4`` stub (docs/security.md §6).  Both speak this protocol,
so the server does not know which it has.  It is made for the stub's side:
a request is one line of text carried as a string item, and so is the
answer -- what a shell's ``read`` takes from the device and its ``echo``
writes back (docs/linux.md, "Linux among L4 programs").

Requests (tag label :data:`STORE_PROTO`, one word: the line's length; the
line as a string item; values in lowercase hex, two digits a byte)
------------------------------------------------------------------------

===================================  =======================================
request                              answer
===================================  =======================================
``get KEY OFFSET``                   ``SIZE HEX``: the value's size in bytes
                                     and up to :data:`CHUNK` of its bytes from
                                     OFFSET (none past its end)
``put KEY OFFSET SIZE HEX``          ``0``; the value is replaced when its
                                     last byte (of SIZE) arrived, the pieces
                                     in order from offset 0
``del KEY``                          ``0``
===================================  =======================================

A refusal is a negative errno alone: ``-2`` no such key, ``-22`` a
malformed request (a key that is not 1..32 of ``A-Za-z0-9_.-`` starting
with a letter or digit, a piece out of order), ``-12`` the store is full.
"""

from __future__ import annotations

import re

from l4sim.kernel.abi import CALL, Err, IpcErr, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.user.env import Env, IpcCap

STORE_PROTO = 0x4103
#: value bytes one request or answer carries (twice as many hex digits)
CHUNK = 1024
#: the longest line either side sends (what one stub message carries)
LINE_MAX = 4096
#: the largest value a store keeps
VALUE_MAX = 16 << 10
#: the keys a store accepts (and a shell can use as file names)
KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
#: a store nobody serves yet (its gate unbound: a Linux instance still starting) is asked again
#: this often, this far apart, before the first answer
WAIT_TRIES, WAIT_NS = 2000, 1_000_000


class StoreError(Exception):
    """The store refused or failed a request (``err``: the errno it answered)."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: -{err}")
        self.err = err


class StoreClient:
    """The storage server's side of the protocol, on the channel ``gate``.  ``buf`` is two
    pages of the caller's memory: the request line is written into the first, the answer
    arrives in the second."""

    def __init__(self, env: Env, gate: IpcCap, buf: int) -> None:
        self.env = env
        self.gate = gate
        self.req = buf
        self.ans = buf + LINE_MAX
        self.answered = False

    async def _call(self, what: str, line: str) -> tuple[int, str]:
        """Send one request; (code, the rest of the answer's line)."""
        env = self.env
        data = line.encode() + b"\n"
        await env.mem.write(self.req, data)
        if not self.answered:
            await env.mem.write(self.ans, bytes(LINE_MAX))  # a string buffer must be mapped
        call = Ipc(self.gate.slot, CALL, STORE_PROTO, (len(data),), items=(StrItem(self.req, len(data)),),
                   rcv=(StrBuf(self.ans, LINE_MAX),))
        for _ in range(WAIT_TRIES):
            msg = await env.ipc(call)
            if msg.error != IpcErr.ENOT_EXISTENT or self.answered:
                break
            await env.receive(env.thread, timeout=WAIT_NS)  # nobody serves it yet: a sleep
        if msg.error:
            raise StoreError(f"{what} (IPC error {msg.error:#x})", Err.EIO)
        self.answered = True
        got = [b for b in msg.items if isinstance(b, StrBuf)]
        text = (await env.mem.read(self.ans, got[0].length)).decode("ascii", "replace") if got else ""
        head, _, rest = text.strip().partition(" ")
        try:
            code = int(head)
        except ValueError:
            raise StoreError(f"{what}: the store answered {text[:40]!r}", Err.EIO) from None
        if code < 0:
            raise StoreError(what, -code)
        return code, rest.strip()

    async def get(self, key: bytes) -> bytes | None:
        """The value of ``key``, or None when the store has none."""
        out = b""
        while True:
            try:
                size, piece = await self._call("get", f"get {_key(key)} {len(out)}")
            except StoreError as e:
                if e.err == Err.ENOENT:
                    return None
                raise
            try:
                raw = bytes.fromhex(piece)
            except ValueError:
                raise StoreError("get: the store answered bytes that are not hex", Err.EIO) from None
            if size > VALUE_MAX or len(raw) > CHUNK:
                raise StoreError(f"get: the store answered a value of {size} bytes", Err.EIO)
            out += raw
            if len(out) >= size or not raw:
                return out[:size]

    async def put(self, key: bytes, value: bytes) -> None:
        if len(value) > VALUE_MAX:
            raise StoreError(f"put: a value of {len(value)} bytes", Err.EINVAL)
        for off in range(0, max(len(value), 1), CHUNK):
            await self._call("put", f"put {_key(key)} {off} {len(value)} {value[off : off + CHUNK].hex()}")

    async def delete(self, key: bytes) -> None:
        try:
            await self._call("del", f"del {_key(key)}")
        except StoreError as e:
            if e.err != Err.ENOENT:
                raise


def _key(key: bytes) -> str:
    text = key.decode("ascii", "replace")
    if not KEY.fullmatch(text):
        raise StoreError(f"key {text!r}: a store keeps keys of 1..32 letters, digits, _ . -", Err.EINVAL)
    return text

