"""E-banking with L4Linux: what the bank, the AppCore and the browser's startup script share.

Nizza's e-banking case (Singaravelu, Pu, Härtig, Helmuth, "Reducing TCB Complexity for
Security-Sensitive Applications: Three Case Studies", EuroSys 2006): the browser -- here
busybox programs in a Linux instance -- fetches the bank's pages and shows them on its
``/dev/fb0``; the transaction itself travels sealed between the bank and a small native
AppCore that alone holds the channel key, shows the transaction in its own view, takes the
user's PIN on the secure input path and confirms what the user saw.

**The seal** (what the bank hands the browser for the AppCore): ``nonce (16) || ciphertext ||
tag (32)``, encrypt-then-MAC with HMAC-SHA256 -- the keystream's block ``i`` is
``HMAC(Kenc, nonce || i)``, the tag ``HMAC(Kmac, nonce || ciphertext)``, with ``Kenc`` and
``Kmac`` derived from the channel key.  A construction from one primitive, SHA-256, so that
the monolithic variant can open it with busybox alone (``sha256sum``: the ``ebanking-mono``
scenario).  The plaintext is ``txid|payee|cents``.

**The confirmation** (what the AppCore hands back): ``txid payee cents HMAC(Ksign,
"confirmed|txid|payee|cents")`` in hex; the bank books a transfer only with it.

The pages are images the bank renders (gzip-compressed 32-bit pixels of the browser's
view): the bank's "web site", which the browser only displays.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac

from l4sim.security import font

#: the screen and where the views are: the browser's (its /dev/fb0) and the AppCore's
SCREEN = (640, 480)
BROWSER = (20, 40, 600, 260)
CORE = (120, 340, 400, 110)
#: the attacker's dialog inside the browser's page (buffer coordinates) and its OK button
FAKE = (170, 60, 260, 110)
FAKE_OK = (FAKE[0] + 100, FAKE[1] + 70, 60, 20)
#: the transfer the user wants, the PIN the AppCore checks
PAYEE, CENTS = "Alice", 100_00
PIN = "4711"
#: the AppCore's looks (the fake copies them)
CORE_BG, CORE_FG = 0xE8F0E8, 0x103010
#: the protocol label of the AppCore's channel, and the largest request or answer
APPCORE = 0x5003
MAX_BYTES = 4096
NONCE, TAG = 16, 32


def _h(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def subkeys(channel_key: bytes) -> tuple[bytes, bytes]:
    """(Kenc, Kmac) of a channel key."""
    return _h(channel_key, b"enc"), _h(channel_key, b"mac")


def _stream(kenc: bytes, nonce: bytes, n: int) -> bytes:
    return b"".join(_h(kenc, nonce + bytes([i])) for i in range((n + 31) // 32))[:n]


def seal(channel_key: bytes, nonce: bytes, plain: bytes) -> bytes:
    """The sealed ``plain`` (see the module); ``nonce`` is 16 bytes."""
    assert len(nonce) == NONCE and len(plain) <= 255 * 32
    kenc, kmac = subkeys(channel_key)
    ct = bytes(a ^ b for a, b in zip(plain, _stream(kenc, nonce, len(plain)), strict=True))
    return nonce + ct + _h(kmac, nonce + ct)


def open_seal(channel_key: bytes, blob: bytes) -> bytes | None:
    """The plaintext of a seal, or None when its tag does not verify (changed, or not the bank's)."""
    if len(blob) < NONCE + TAG:
        return None
    kenc, kmac = subkeys(channel_key)
    nonce, ct, tag = blob[:NONCE], blob[NONCE:-TAG], blob[-TAG:]
    if not hmac.compare_digest(tag, _h(kmac, nonce + ct)):
        return None
    return bytes(a ^ b for a, b in zip(ct, _stream(kenc, nonce, len(ct)), strict=True))


def confirmation(sign_key: bytes, txid: int, payee: str, cents: int) -> str:
    """The confirmation's MAC, in hex: what the AppCore signs, what the bank checks."""
    return _h(sign_key, f"confirmed|{txid}|{payee}|{cents}".encode()).hex()


def pads(key: bytes) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer key blocks of ``key`` (what a shell needs to compute it
    with ``sha256sum``: ``H(opad || H(ipad || m))``)."""
    k = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in k), bytes(b ^ 0x5C for b in k)


def amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d} EUR"


# --------------------------------------------------------------------------- pages
def _px(rgb: int) -> bytes:
    return bytes((rgb & 0xFF, (rgb >> 8) & 0xFF, (rgb >> 16) & 0xFF, 0))


class Page:
    """An image in the framebuffer's format (32-bit ``0x00RRGGBB``, rows of ``w`` pixels)."""

    def __init__(self, w: int, h: int, rgb: int) -> None:
        self.w, self.h = w, h
        self.px = bytearray(_px(rgb) * (w * h))

    def fill(self, x: int, y: int, w: int, h: int, rgb: int) -> None:
        line = _px(rgb) * w
        for row in range(y, y + h):
            self.px[(row * self.w + x) * 4 : (row * self.w + x + w) * 4] = line

    def text(self, x: int, y: int, s: str, fg: int, bg: int, scale: int = 1) -> None:
        for i, row in enumerate(font.render(s, _px(fg), _px(bg), scale)):
            self.px[((y + i) * self.w + x) * 4 : ((y + i) * self.w + x) * 4 + len(row)] = row

    def gz(self) -> bytes:
        """The image gzip-compressed (no time stamp: the same bytes every run)."""
        return gzip.compress(bytes(self.px), mtime=0)


def page(kind: str, payee: str = PAYEE, cents: int = CENTS) -> Page:
    """The bank's page ``kind`` in the browser's view: ``form`` (the transfer, to be confirmed in
    the AppCore), ``confirm`` (the monolithic variant's: the PIN typed into the page), ``done``."""
    _x, _y, w, h = BROWSER
    p = Page(w, h, 0xFFFFFF)
    p.fill(0, 0, w, 34, 0x1F3F8F)
    p.text(10, 8, "MyBank online", 0xFFFFFF, 0x1F3F8F, scale=2)
    if kind == "form":
        p.text(10, 50, "Transfer form", 0x202060, 0xFFFFFF, scale=2)
        p.text(10, 84, f"Payee:  {payee}", 0x202020, 0xFFFFFF)
        p.text(10, 100, f"Amount: {amount(cents)}", 0x202020, 0xFFFFFF)
        p.text(10, 130, "Confirm the transfer with your PIN in the AppCore's window.", 0x606060, 0xFFFFFF)
    elif kind == "confirm":
        p.text(10, 50, f"Transfer {amount(cents)} to {payee}?", 0x202060, 0xFFFFFF, scale=2)
        p.text(10, 84, "Type your PIN and press Enter.", 0x202020, 0xFFFFFF)
    else:
        p.text(10, 50, "Transfer booked", 0x206020, 0xFFFFFF, scale=2)
        p.text(10, 84, f"{amount(cents)} to {payee}", 0x202020, 0xFFFFFF)
    return p


def fake_page() -> Page:
    """The attacker's picture: the bank's form with a dialog dressed as the AppCore's over it,
    asking to confirm a transfer to Mallory."""
    p = page("form")
    x, y, w, h = FAKE
    p.fill(x - 1, y - 1, w + 2, h + 2, 0x101010)
    p.fill(x, y, w, h, CORE_BG)
    p.text(x + 8, y + 8, "AppCore: secure confirmation", CORE_FG, CORE_BG)
    p.text(x + 8, y + 28, f"Transfer {amount(10_00)} to Mallory?", CORE_FG, CORE_BG)
    bx, by, bw, bh = FAKE_OK
    p.fill(bx, by, bw, bh, 0x30A030)
    p.text(bx + 24, by + 6, "OK", 0xFFFFFF, 0x30A030)
    return p
