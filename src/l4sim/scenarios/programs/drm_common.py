"""DRM split: what the shop, the player AppCore and the Linux side's script share.

Nizza's third case (Singaravelu, Pu, Härtig, Helmuth, EuroSys 2006, and the Nizza paper's
"digital rights management"): media travel and rest encrypted in an untrusted Linux; the
content key lives only in a small native player, kept in secure storage (Nizza I: sealed to
the measured configuration), and the decoded frames only in the player's own GUI view.

**A frame** (what the shop sells, one file of them in Linux): ``nonce (12) || AES-128-GCM(
content key, nonce, pixels, AAD)`` with the 16-byte tag at its end; ``pixels`` are
``FRAME_W`` x ``FRAME_H`` grey levels, ``AAD`` is ``"l4sim-drm frame\\0" + title + "\\0" +
index``: a frame changed, or moved to another place in the film, fails its tag.

**A licence** (what the shop issues for the registered player): ``nonce (12) ||
AES-256-GCM(device key, nonce, id (4) || not after, ms (8) || plays (4) || content key
(16), "l4sim-drm licence\\0" + title)``.  The device key is the player's, made from the
TPM's random bytes and kept in its secure storage; the player registers it with the shop over
a channel of its own (the stand-in for the device certificate a real distributor trusts).
Licence ids grow; the player takes each id once (its secure storage keeps the highest used).
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: the film, its frames and their size (grey levels); the player shows each at SCALE
TITLE = "sintel"
FRAMES = 8
FRAME_W, FRAME_H = 64, 48
SCALE = 3
#: one sealed frame's size: nonce, pixels, tag
SEALED = 12 + FRAME_W * FRAME_H + 16
#: the player's view (its pixels: the frame at SCALE, a status line below), Linux's view
STATUS_H = 14
PLAYER = (224, 290, FRAME_W * SCALE, FRAME_H * SCALE + STATUS_H)
LINUX = (20, 40, 600, 200)
#: a licence's plays and validity; a rental's validity (ms of simulated time from its issue)
PLAYS, VALID_MS, RENTAL_MS = 1, 60_000, 20
#: the tint the player gives the grey levels
TINT = (0xFF, 0xD8, 0xA0)

_FRAME_AAD = b"l4sim-drm frame\0"
_LICENCE_AAD = b"l4sim-drm licence\0"
_LICENCE = struct.Struct("<IQI16s")


def frame(i: int) -> bytes:
    """Frame ``i`` of the film, in clear: a diagonal pattern that moves and a bright square
    crossing the picture (what the shop encodes; the report compares the screen with it)."""
    px = bytearray(FRAME_W * FRAME_H)
    sx, sy = 4 + i * 6, 10 + (i * 5) % 24
    for y in range(FRAME_H):
        for x in range(FRAME_W):
            v = ((x + 3 * i) ^ (y + i)) * 3 & 0x7F
            if sx <= x < sx + 10 and sy <= y < sy + 10:
                v = 0xF0
            px[y * FRAME_W + x] = v
    return bytes(px)


def frame_aad(title: str, i: int) -> bytes:
    return _FRAME_AAD + title.encode() + b"\0" + str(i).encode()


def seal_frame(key: bytes, title: str, i: int, pixels: bytes) -> bytes:
    """Frame ``i`` sealed under the content key (a nonce made from the key, title and index:
    each is used once)."""
    nonce = hashlib.sha256(key + frame_aad(title, i)).digest()[:12]
    return nonce + AESGCM(key).encrypt(nonce, pixels, frame_aad(title, i))


def open_frame(key: bytes, title: str, i: int, blob: bytes) -> bytes | None:
    """The pixels of sealed frame ``i``; None when its tag fails (changed, moved, another key)."""
    if len(blob) != SEALED:
        return None
    try:
        return AESGCM(key).decrypt(blob[:12], blob[12:], frame_aad(title, i))
    except InvalidTag:
        return None


def make_licence(device_key: bytes, title: str, lid: int, not_after_ms: int, plays: int,
                 content_key: bytes) -> bytes:
    nonce = hashlib.sha256(device_key + lid.to_bytes(4, "little")).digest()[:12]
    body = _LICENCE.pack(lid, not_after_ms, plays, content_key)
    return nonce + AESGCM(device_key).encrypt(nonce, body, _LICENCE_AAD + title.encode())


def open_licence(device_key: bytes, title: str, blob: bytes) -> tuple[int, int, int, bytes] | None:
    """(id, not after ms, plays, content key) of a licence for ``title``; None when it fails
    authentication under the device key."""
    if len(blob) != 12 + _LICENCE.size + 16:
        return None
    try:
        body = AESGCM(device_key).decrypt(blob[:12], blob[12:], _LICENCE_AAD + title.encode())
    except InvalidTag:
        return None
    lid, not_after, plays, key = _LICENCE.unpack(body)
    return lid, not_after, plays, key


def shown(pixels: bytes) -> bytes:
    """What the player's view shows of a frame: each grey level tinted, at SCALE, as the
    framebuffer keeps pixels (B, G, R, 0), row after row."""
    lut = [bytes((v * TINT[2] // 255, v * TINT[1] // 255, v * TINT[0] // 255, 0)) for v in range(256)]
    rows = []
    for y in range(FRAME_H):
        row = b"".join(lut[v] * SCALE for v in pixels[y * FRAME_W : (y + 1) * FRAME_W])
        rows.append(row * SCALE)
    return b"".join(rows)
