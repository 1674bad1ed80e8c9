"""The signer AppCore of ``l4sim boot esign``: an e-mail/document signer split out of Linux.

Nizza's second case (Singaravelu et al., EuroSys 2006: the e-mail signer, 250 -> 54 kLoC): a
document is prepared in Linux, and a small native AppCore shows it to the user in its own
labelled view, asks for confirmation on the secure input path and signs it with a key that
never leaves it -- kept in secure storage (Nizza I: the storage server seals its master key
to the measured configuration), made from the TPM's random bytes on first use.

It serves ``sign``; each request is a string item (a write to ``/dev/l4/sign``), its first line
the operation:

======================  =======================================================  ============
request                 what happens                                             refusal
======================  =======================================================  ============
``SHOW`` + document     the document in the signer's view; the answer waits for  ``-EACCES``
                        the user: Enter signs, Esc refuses; ``ok``
``SIGN`` + document     its Ed25519 signature (hex) -- only for exactly the      ``-EACCES``
                        bytes the user confirmed last, once
``KEY``                 the public key (hex)
======================  =======================================================  ============

A longer document than one message (4 KiB) or one that is not text is ``-EINVAL``.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from l4sim.kernel.abi import OPEN_WAIT, RECV, REPLY, Err, IpcErr, StrBuf, StrItem
from l4sim.kernel.traps import Ipc
from l4sim.machine.display import KEY_ENTER, KEY_ESC
from l4sim.security.gui_client import GuiClient
from l4sim.security.gui_protocol import EV_PRESS
from l4sim.security.storage import LIST, STORAGE_PROTO, StorageClient, StorageError
from l4sim.security.tpm import TpmClient
from l4sim.user.env import Env, Gate

SIGN_LABEL = 0x10
MAX_BYTES = 4096
#: the signer's view on the screen, and its colours
VIEW = (120, 250, 400, 200)
BG, FG = 0xF0ECE0, 0x302010
#: the key's name in the signer's secure storage
KEY_FILE = "ed25519-key"
#: how long the signer waits for the storage to start (ms)
STARTUP_TRIES = 2000


async def _bound(env: Env, gate: Gate) -> None:
    """Wait until the server behind ``gate`` has bound it (the storage unseals its key first)."""
    for _ in range(STARTUP_TRIES):
        if (await gate.call(STORAGE_PROTO, LIST, 1 << 20)).error != IpcErr.ENOT_EXISTENT:
            return
        await env.receive(env.thread, timeout=1_000_000)  # nothing sends us anything: 1 ms


async def _key(env: Env) -> Ed25519PrivateKey:
    """The signing key from secure storage; made from the TPM's random bytes when not there yet."""
    await _bound(env, env.cap("storage", Gate))
    st = StorageClient(env.cap("storage"))
    if KEY_FILE not in await st.names():
        seed = await TpmClient(env.cap("tpm")).random(32)
        fd = await st.open(KEY_FILE, create=True)
        await st.write(fd, seed)
        await st.close(fd)
        await env.print("signer: made a signing key in secure storage")
    fd = await st.open(KEY_FILE)
    seed = await st.read(fd)
    await st.close(fd)
    return Ed25519PrivateKey.from_private_bytes(seed)


async def signer(env: Env) -> int:
    """Serve ``sign`` (see the module)."""
    g = GuiClient(env)
    x, y, w, h = VIEW
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, BG)
    await g.text(8, 8, "Signer: no document", FG, BG)
    await g.view(x, y, w, h, title="document signer")
    try:
        key = await _key(env)
    except StorageError as e:
        await env.print(f"signer: no signing key: the storage refused ({e})")
        return 1
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    await env.print(f"signer: public key {public.hex()}")
    await env.cap("sign", Gate).bind(env.thread, SIGN_LABEL)
    base, _size = env.heap  # type: ignore[attr-defined]
    inbox, outbox = base, base + MAX_BYTES
    await env.mem.write(base, bytes(2 * MAX_BYTES))  # touched: a string copy resolves no fault
    rcv = (StrBuf(inbox, MAX_BYTES),)
    wait = Ipc(0, RECV | OPEN_WAIT, 0, (), (), None, None, rcv)
    confirmed: bytes | None = None  # the digest of the document the user confirmed last
    msg = await env.ipc(wait)
    while True:
        if msg.error or msg.label & ~3 != SIGN_LABEL:
            msg = await env.ipc(wait)
            continue
        got = [s for s in msg.items if isinstance(s, StrBuf)]
        req = await env.mem.read(inbox, got[0].length) if got and got[0].length else b""
        op, _, doc = req.partition(b"\n")
        label, data = -int(Err.EINVAL), b""
        if op == b"KEY":
            label, data = 0, public.hex().encode() + b"\n"
        elif op == b"SHOW" and _text(doc):
            confirmed = None
            if await _ask_user(g, doc.decode()):
                confirmed = hashlib.sha256(doc).digest()
                await env.print(f"signer: the user confirmed the document ({len(doc)} bytes)")
                label, data = 0, b"ok\n"
            else:
                await env.print("signer: the user refused the document")
                label = -int(Err.EACCES)
        elif op == b"SIGN":
            if confirmed is not None and hashlib.sha256(doc).digest() == confirmed:
                confirmed = None
                label, data = 0, key.sign(doc).hex().encode() + b"\n"
                await env.print("signer: signed the document the user confirmed")
            else:
                await env.print("signer: refused to sign: not the document the user confirmed")
                label = -int(Err.EACCES)
        if data:
            await env.mem.write(outbox, data)
        items = (StrItem(outbox, len(data)),) if data else ()
        msg = await env.ipc(Ipc(0, REPLY | RECV | OPEN_WAIT, label, (), items, None, None, rcv))


def _text(doc: bytes) -> bool:
    """A document the signer shows: UTF-8 text."""
    try:
        doc.decode()
    except UnicodeDecodeError:
        return False
    return bool(doc)


async def _ask_user(g: GuiClient, doc: str) -> bool:
    """Show ``doc`` (its first lines) and wait for Enter (sign) or Esc (refuse) from this
    session's input only."""
    w, h = g.w, g.h
    await g.fill(0, 0, w, h, BG)
    await g.text(8, 6, "Sign this document?  Enter: sign   Esc: refuse", FG, BG)
    await g.fill(8, 18, w - 16, 1, FG)
    for i, line in enumerate(doc.splitlines()[:16]):
        await g.text(8, 24 + 10 * i, line[:64], FG, BG)
    await g.refresh()
    while True:
        for ev in await g.events():
            if ev.kind == EV_PRESS and ev.code in (KEY_ENTER, KEY_ESC):
                yes = ev.code == KEY_ENTER
                await g.fill(0, 0, w, 16, BG)
                await g.text(8, 6, "signed" if yes else "refused", FG, BG)
                await g.refresh(0, 0, w, 16)
                return yes
