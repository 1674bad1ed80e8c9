"""Secure storage as a trusted wrapper: files kept confidential and intact in an untrusted store.

Nizza's trusted wrapper (Härtig et al., "The Nizza secure-system
architecture", 2005): a small native server gives its clients files by
name, and keeps them in a store it does not trust -- a Linux instance
whose busybox shell keeps each blob as a file, or the native store of
:mod:`l4sim.security.store` (:mod:`l4sim.security.store_protocol`).  The store sees
only ciphertext under opaque keys; whatever it does to them, the server
notices, says so, and hands out no forged byte.  Its trusted computing base
is itself, the TPM driver, and the kernel and runtime under them, not the
store.

Keys.  The master key (32 bytes from the TPM's generator) is sealed by the
TPM to PCRs 8 and 9 -- the whole measured configuration (docs/security.md):
only a boot of the same programs with the same script can unseal it.  The
sealed blob is kept in the store (key ``key``); it is useless anywhere else.
The server keeps the key in its memory (the first bytes of its heap), marks
it a secret (``l4sim lifetime``) and reads it from there for every use.

What the store holds.  Each file is one blob (key ``f`` + a random id that
does not change between versions): a fresh 96-bit nonce from the server's
generator (seeded from the TPM) and the AES-GCM ciphertext of the file,
with the file's full name (``client/name``) and version as associated data.
The metadata (key ``meta``) is AES-GCM encrypted as well: the value of the
TPM's counter it belongs to, and each file's version and blob id.

Rollback.  A commit (closing a written file) stores the blob, then the
metadata with the counter's next value, then increments the TPM's NV
counter; at start the metadata's value must equal the counter (or be one
above: a commit interrupted before its increment, which the server
completes).  A store that hands back older metadata with older blobs -- a
consistent old state -- is caught by its counter.

What is detected, and how the server says it (one ``ATTACK`` line on its
log, then it refuses): a blob that fails authentication (``modified``; with
the nonce and the associated data the server tells ``replayed`` -- an older
version of the same file -- and ``swapped`` -- another file's blob -- from a
plain change); a file whose blob is gone (``dropped``); old metadata
(``rollback``); metadata or a sealed key that fails authentication; a
master key the TPM will not unseal (``unseal refused``: a changed program or
script); a store without key and metadata while the counter has moved
(``wiped``).  A damaged file is refused to its owner (``-EBADMSG``) while
every other file is served; damaged metadata, a rollback or a key that does
not unseal make the server refuse everything (``-EACCES``): it cannot tell
any file's truth any more.

Protocol (tag label :data:`STORAGE_PROTO`; each client on its own channel
``svc.NAME``, which is its name space; byte fields as in
:mod:`l4sim.security.clients`)
----------------------------------------------------------------------------

=============  ===================================  =====================================
operation      words after the op                   reply words (label 0)
=============  ===================================  =====================================
``OPEN`` 0     flags (1: create), name              file descriptor
``READ`` 1     fd, offset                           up to :data:`CHUNK` bytes (none: end)
``WRITE`` 2    fd, offset, bytes                    bytes written
``CLOSE`` 3    fd                                   the file's version (a written file is
                                                    committed to the store first)
``LIST`` 4     index                                the index-th of the client's names
``SIZE`` 5     fd                                   the file's size
=============  ===================================  =====================================

Refusals: ``-ENOENT`` no such file (or index), ``-EBADF`` no such
descriptor, ``-EINVAL`` a malformed request or name, ``-ERANGE`` a file
beyond :data:`FILE_MAX` bytes, ``-EBADMSG`` the file is damaged in the
store, ``-EACCES`` the server refuses everything (see above), ``-EIO`` the
store or the TPM failed.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from l4sim.kernel.abi import Err, pack_bytes, unpack_bytes
from l4sim.kernel.traps import Msg
from l4sim.machine.tpm2 import Drbg
from l4sim.runtime.measure import MEASURED_PCRS
from l4sim.security.clients import bind_clients, call_checked, take_bytes
from l4sim.security.store_protocol import StoreClient, StoreError
from l4sim.security.tpm import EBADMSG, TpmClient, TpmRefused
from l4sim.user.env import Env, IpcCap, L4Error

STORAGE_PROTO = 0x4102
OPEN, READ, WRITE, CLOSE, LIST, SIZE = range(6)
O_CREATE = 1
EBADF = 9
CHUNK = 384
FILE_MAX = 4096
NAME_MAX = 32
FDS_MAX = 8
NONCE_SIZE = 12
KEY_SIZE = 32
KEY = b"key"
META = b"meta"
META_AAD = b"l4sim-storage meta v1"
#: where the store's request and answer lines go in the server's heap (the key is at its start)
STORE_BUF = 4096
#: what AES-GCM costs the server, in simulated ns per KiB (about 1 GB/s)
AES_NS_PER_KIB = 1_000


def file_aad(name: str, version: int) -> bytes:
    """The associated data of a file's blob: its full name and version."""
    return b"l4sim-storage file\0" + name.encode() + b"\0" + version.to_bytes(8, "big")


@dataclass
class Entry:
    """A file in the metadata: its version (0: never committed) and the store key of its blob."""

    version: int
    blob: str


@dataclass
class Meta:
    counter: int
    files: dict[str, Entry] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps({"counter": self.counter,
                           "files": {n: [e.version, e.blob] for n, e in self.files.items()}},
                          sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Meta:
        d = json.loads(raw)
        return cls(int(d["counter"]), {str(n): Entry(int(v), str(b)) for n, (v, b) in d["files"].items()})


@dataclass
class OpenFile:
    name: str
    data: bytearray
    dirty: bool = False


class Refused(Exception):
    """A request the server answers with ``-err`` (after reporting why, when it is an attack)."""

    def __init__(self, err: int) -> None:
        super().__init__(f"-{err}")
        self.err = err


class Storage:
    """The server's state: the master key, the metadata, the open files."""

    def __init__(self, env: Env, tpm: TpmClient, store: StoreClient, key_at: int) -> None:
        self.env = env
        self.tpm = tpm
        self.store = store
        #: where in its memory the server keeps the master key (None: it has none)
        self.key_at = key_at
        self.key: int | None = None
        self.meta = Meta(0)
        #: why the server refuses everything (None: it serves)
        self.refusing: str | None = None
        self.drbg: Drbg | None = None
        self.fds: dict[str, dict[int, OpenFile]] = {}
        #: the attacks it saw: (kind, what)
        self.attacks: list[tuple[str, str]] = []

    async def report(self, kind: str, what: str) -> None:
        self.attacks.append((kind, what))
        await self.env.print(f"ATTACK {kind}: {what}")

    async def refuse(self, kind: str, what: str) -> None:
        await self.report(kind, what)
        self.refusing = kind

    async def _keep_key(self, key: bytes) -> None:
        """Keep the master key in the server's memory, and mark it a secret there."""
        await self.env.mem.write(self.key_at, key)
        with contextlib.suppress(L4Error):  # a mark the kernel cannot follow changes nothing here
            await self.env.mark_secret(self.key_at, len(key), "master key")
        self.key = self.key_at

    async def _aes(self) -> AESGCM:
        """The cipher under the master key, read from the server's memory (a use of it)."""
        assert self.key is not None, "the server serves only with its master key"
        return AESGCM(await self.env.mem.read(self.key, KEY_SIZE))

    async def _seal(self, plain: bytes, aad: bytes) -> bytes:
        assert self.drbg is not None
        await self.env.compute(max(1, len(plain) * AES_NS_PER_KIB >> 10))
        nonce = self.drbg.generate(NONCE_SIZE)
        return nonce + (await self._aes()).encrypt(nonce, plain, aad)

    async def _open(self, blob: bytes, aad: bytes) -> bytes | None:
        await self.env.compute(max(1, len(blob) * AES_NS_PER_KIB >> 10))
        try:
            return (await self._aes()).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], aad)
        except (InvalidTag, ValueError):
            return None

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        """Seed the generator, then unseal the master key and check the metadata (or make both)."""
        self.drbg = Drbg(await self.tpm.random(32))
        counter = await self.tpm.counter()
        sealed = await self.store.get(KEY)
        if sealed is None:
            if counter > 0:
                await self.refuse("wiped", f"the store has no sealed key, but the TPM's counter is at {counter}: "
                                           "the store was wiped or replaced")
                return
            key = await self.tpm.random(KEY_SIZE)
            await self._keep_key(key)
            await self.store.put(KEY, await self.tpm.seal(key, list(MEASURED_PCRS)))
            self.meta = Meta(0)
            await self._commit_meta()
            await self.env.print("a new master key, sealed to PCRs 8 and 9")
            return
        try:
            key = await self.tpm.unseal(sealed)
        except TpmRefused as e:
            if e.err == Err.EACCES:
                await self.refuse("unseal refused", "the TPM will not unseal the master key: PCRs 8 and 9 are "
                                                    "not those of the configuration that sealed it")
            elif e.err == EBADMSG:
                await self.refuse("modified", "the sealed master key is not one the TPM made")
            else:
                await self.refuse("tpm failed", f"unsealing the master key: {e}")
            return
        await self._keep_key(key)
        raw = await self.store.get(META)
        plain = await self._open(raw, META_AAD) if raw is not None else None
        if raw is None:
            await self.refuse("dropped", "the store has lost the metadata")
            return
        if plain is None:
            await self.refuse("modified", "the metadata fails authentication")
            return
        self.meta = Meta.decode(plain)
        if self.meta.counter < counter:
            await self.refuse("rollback", f"the metadata belongs to commit {self.meta.counter}, the TPM's counter "
                                          f"is at {counter}: the store was rolled back")
        elif self.meta.counter == counter + 1:
            await self.tpm.counter(increment=True)  # the last commit stopped before its increment
        elif self.meta.counter != counter:
            await self.refuse("modified", f"the metadata's commit {self.meta.counter} is ahead of the TPM's "
                                          f"counter {counter}")

    async def _commit_meta(self) -> None:
        """Store the metadata for the counter's next value, then move the counter there."""
        counter = await self.tpm.counter()
        self.meta.counter = counter + 1
        await self.store.put(META, await self._seal(self.meta.encode(), META_AAD))
        await self.tpm.counter(increment=True)

    # ------------------------------------------------------------------ files
    async def load(self, name: str) -> bytes:
        """A file's data from the store, verified; an attack is reported and refused."""
        entry = self.meta.files[name]
        if entry.version == 0:
            return b""
        blob = await self.store.get(b"f" + entry.blob.encode())
        if blob is None:
            await self.report("dropped", f"file {name}: its blob is gone from the store")
            raise Refused(EBADMSG)
        plain = await self._open(blob, file_aad(name, entry.version))
        if plain is not None:
            return plain
        await self.report(*await self._diagnose(name, entry, blob))
        raise Refused(EBADMSG)

    async def _diagnose(self, name: str, entry: Entry, blob: bytes) -> tuple[str, str]:
        """What the store did to a blob that fails authentication, told by which key and
        associated data it does authenticate under."""
        for v in range(entry.version - 1, 0, -1):
            if await self._open(blob, file_aad(name, v)) is not None:
                return "replayed", f"file {name}: the store served version {v} of {entry.version}"
        for other, e in sorted(self.meta.files.items()):
            if other != name and e.version and await self._open(blob, file_aad(other, e.version)) is not None:
                return "swapped", f"file {name}: the store served the blob of {other}"
        return "modified", f"file {name}: its blob fails authentication (changed bytes)"

    async def commit(self, name: str, data: bytes) -> int:
        """Store a new version of a file, then the metadata, then move the counter."""
        old = self.meta.files.get(name)
        assert self.drbg is not None
        entry = Entry((old.version if old else 0) + 1, old.blob if old and old.blob else self.drbg.generate(8).hex())
        await self.store.put(b"f" + entry.blob.encode(), await self._seal(data, file_aad(name, entry.version)))
        self.meta.files[name] = entry
        try:
            await self._commit_meta()
        except (StoreError, TpmRefused):
            if old is None:
                del self.meta.files[name]
            else:
                self.meta.files[name] = old
            raise
        return entry.version

    # ------------------------------------------------------------------ requests
    async def serve(self, client: str, msg: Msg) -> tuple[int, ...]:
        w = msg.words
        op = w[0]
        if self.refusing is not None:
            return (-Err.EACCES,)
        fds = self.fds.setdefault(client, {})
        if op == OPEN:
            raw, _ = take_bytes(w, 2)
            short = raw.decode("utf-8", "replace")
            if not 0 < len(raw) <= NAME_MAX or "/" in short or not short.isprintable():
                return (-Err.EINVAL,)
            name = f"{client}/{short}"
            if len(fds) >= FDS_MAX:
                return (-Err.ENOMEM,)
            if name in self.meta.files:
                data = await self.load(name)
            elif w[1] & O_CREATE:
                data = b""
                self.meta.files[name] = Entry(0, "")
            else:
                return (-Err.ENOENT,)
            fd = next(i for i in range(1, FDS_MAX + 2) if i not in fds)
            fds[fd] = OpenFile(name, bytearray(data))
            return (0, fd)
        if op == LIST:
            mine = sorted(n.split("/", 1)[1] for n, e in self.meta.files.items()
                          if n.startswith(client + "/") and e.version)
            return (0, *pack_bytes(mine[w[1]].encode())) if w[1] < len(mine) else (-Err.ENOENT,)
        f = fds.get(w[1])
        if f is None:
            return (-EBADF,)
        if op == READ:
            return (0, *pack_bytes(bytes(f.data[w[2] : w[2] + CHUNK])))
        if op == SIZE:
            return (0, len(f.data))
        if op == WRITE:
            data, _ = take_bytes(w, 3)
            off = w[2]
            if off > len(f.data) or off + len(data) > FILE_MAX:
                return (-Err.ERANGE,)
            f.data[off : off + len(data)] = data
            f.dirty = True
            return (0, len(data))
        if op == CLOSE:
            del fds[w[1]]
            entry = self.meta.files[f.name]
            if not f.dirty:
                if entry.version == 0:
                    del self.meta.files[f.name]  # created and never written: nothing to keep
                return (0, entry.version)
            return (0, await self.commit(f.name, bytes(f.data)))
        return (-Err.ENOSYS,)


async def server(env: Env) -> int:
    """The storage server's program: ``tpm`` (its channel to the TPM driver), ``store`` (the
    untrusted store), ``svc.NAME`` (one channel per client).  Its heap holds the master key
    (first page) and the store's request and answer lines (:data:`STORE_BUF`)."""
    heap, _ = env.heap  # type: ignore[attr-defined]
    storage = Storage(env, TpmClient(env.cap("tpm")), StoreClient(env, env.cap("store"), heap + STORE_BUF),
                      heap)
    clients = await bind_clients(env)
    try:
        await storage.start()
    except (TpmRefused, StoreError) as e:
        await storage.refuse("unavailable", f"the TPM or the store failed at start: {e}")
    msg = await env.wait()
    while True:
        if msg.error:
            msg = await env.wait()
            continue
        client = clients.get(msg.label & ~3)
        try:
            if client is None:  # no channel of a client: how could it? (the intruder's check)
                await env.print(f"a request from a sender it does not know (label {msg.label:#x}): refused")
                reply: tuple[int, ...] = (-Err.EPERM,)
            elif msg.proto != STORAGE_PROTO or not msg.words:
                reply = (-Err.ENOSYS,)
            else:
                reply = await storage.serve(client, msg)
        except Refused as e:
            reply = (-e.err,)
        except (StoreError, TpmRefused) as e:
            await env.print(f"a request failed: {e}")
            reply = (-Err.EIO,)
        except (ValueError, IndexError, KeyError):
            reply = (-Err.EINVAL,)
        msg = await env.answer(reply[0], reply[1:])


class StorageError(Exception):
    """The storage server refused a request: ``err`` is the errno it answered."""

    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: -{err}")
        self.err = err


class StorageClient:
    """A client's side of the storage protocol, on its channel ``gate``."""

    def __init__(self, gate: IpcCap) -> None:
        self.gate = gate

    async def _call(self, what: str, *words: int) -> tuple[int, ...]:
        return await call_checked(self.gate, STORAGE_PROTO, what, words, StorageError)

    async def open(self, name: str, create: bool = False) -> int:
        return (await self._call(f"open {name}", OPEN, O_CREATE if create else 0, *pack_bytes(name.encode())))[0]

    async def read(self, fd: int) -> bytes:
        """The whole file."""
        out = b""
        while True:
            piece = unpack_bytes(await self._call("read", READ, fd, len(out)))
            if not piece:
                return out
            out += piece

    async def write(self, fd: int, data: bytes, offset: int = 0) -> None:
        for i in range(0, len(data), CHUNK):
            await self._call("write", WRITE, fd, offset + i, *pack_bytes(data[i : i + CHUNK]))

    async def close(self, fd: int) -> int:
        return (await self._call("close", CLOSE, fd))[0]

    async def names(self) -> list[str]:
        out: list[str] = []
        while True:
            try:
                out.append(unpack_bytes(await self._call("list", LIST, len(out))).decode())
            except StorageError as e:
                if e.err == Err.ENOENT:
                    return out
                raise
