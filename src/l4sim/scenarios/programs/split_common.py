"""A split application on the secure GUI, all native: an untrusted "browser", a trusted AppCore.

Nizza's e-banking case (Singaravelu et al., EuroSys 2006) without Linux
yet: the browser fetches the transaction from the bank and relays it, the
AppCore -- small, with a GUI session of its own -- checks the bank's MAC,
shows the transaction in its own labelled view, takes the user's PIN and
confirmation from the secure input path and signs exactly what the user
saw.  The bank accepts a transfer only with the AppCore's signature.

The browser is hostile and tries what it can without Linux:

- ``fake-dialog``: it draws a confirmation dialog that looks like the
  AppCore's, on top of everything; the user clicks it and presses Enter.
  The view bears the browser's label, the input goes to the browser, and
  the AppCore -- which alone can sign -- never saw it: the bank refuses the
  browser's "confirmation";
- ``sniff-keys``: a second thread reads the browser's input while the user
  types the PIN into the AppCore's view: it gets nothing;
- ``read-pixels``: it looks for any way to the AppCore's pixels -- the GUI
  protocol returns none, a fresh buffer of its own is zeros, and it holds no
  capability to the framebuffer, io or the AppCore's memory;
- ``alter-amount``: after the user confirmed, it raises the amount of the
  signed transfer; the bank refuses the signature.

Each program prints ``attack NAME: refused by MECHANISM`` (or ``SUCCEEDED``)
and the scenario's report collects the lines into its attack table.  The
three programs are modules of their own (``split_bank``, ``split_appcore``,
``split_browser``) so that each one's lines of code are its own in
``l4sim tcb``; this module holds what they share: the protocols, the
layout of the screen, the MACs.
"""

from __future__ import annotations

import hashlib
import hmac

from l4sim.kernel.abi import unpack_bytes

#: the protocols of the demo: the bank (GET_TX, SUBMIT) and the AppCore (CONFIRM)
BANK = 0x5001
APPCORE = 0x5002
GET_TX, SUBMIT, CONFIRM = 0, 1, 2
#: where the views are (the input script and the report know it too)
PAGE = (20, 40, 600, 260)
FAKE = (190, 120, 260, 110)
FAKE_OK = (FAKE[0] + 100, FAKE[1] + 70)
CORE = (120, 340, 400, 110)


def tx_text(payee: str, cents: int, nonce: int) -> bytes:
    return f"{payee}|{cents}|{nonce}".encode()


def mac(key: bytes, data: bytes) -> tuple[int, ...]:
    """HMAC-SHA256 as four machine words."""
    d = hmac.new(key, data, hashlib.sha256).digest()
    return tuple(int.from_bytes(d[i : i + 8], "little") for i in range(0, 32, 8))


def same(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Two MACs equal, compared in constant time."""
    return hmac.compare_digest(b"".join(x.to_bytes(8, "little") for x in a),
                               b"".join(x.to_bytes(8, "little") for x in b))


def unpack_tx(w: tuple[int, ...]) -> tuple[str, int, int, tuple[int, ...]] | None:
    """(payee, cents, nonce, 4 MAC words) from words [cents, nonce, *mac, *payee packed]."""
    if len(w) < 7:
        return None
    payee = unpack_bytes(w[6:]).decode("utf-8", "replace")
    return payee, w[0], w[1], tuple(w[2:6])
