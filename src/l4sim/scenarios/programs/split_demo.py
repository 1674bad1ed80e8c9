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
and the scenario's report collects the lines into its attack table.
"""

from __future__ import annotations

import hashlib
import hmac

from l4sim.kernel.abi import Err, pack_bytes, unpack_bytes
from l4sim.machine.display import KEY_BACKSPACE, KEY_ENTER, KEY_ESC
from l4sim.security.gui_client import GuiClient
from l4sim.security.gui_protocol import EV_PRESS, GuiOp
from l4sim.user.env import Env, Gate

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


def _unpack_tx(w: tuple[int, ...]) -> tuple[str, int, int, tuple[int, ...]] | None:
    """(payee, cents, nonce, 4 MAC words) from words [cents, nonce, *mac, *payee packed]."""
    if len(w) < 7:
        return None
    payee = unpack_bytes(w[6:]).decode("utf-8", "replace")
    return payee, w[0], w[1], tuple(w[2:6])


async def bank(env: Env, channel_key: bytes, sign_key: bytes) -> int:
    """The bank: hands out transaction pages MACed for the AppCore, accepts signed ones only."""
    await env.cap("net", Gate).bind(env.thread, 0x10)
    nonce = 1000
    msg = await env.wait()
    while True:
        reply: tuple[int, ...] = (-Err.ENOSYS,)
        w = msg.words
        if msg.error:
            msg = await env.wait()
            continue
        if msg.proto == BANK and w and w[0] == GET_TX and len(w) > 2:
            payee = unpack_bytes(w[2:]).decode("utf-8", "replace")
            nonce += 1
            reply = (0, w[1], nonce, *mac(channel_key, tx_text(payee, w[1], nonce)))
        elif msg.proto == BANK and w and w[0] == SUBMIT:
            tx = _unpack_tx(w[1:])
            if tx is None:
                reply = (-Err.EINVAL,)
            else:
                payee, cents, n, sig = tx
                good = same(sig, mac(sign_key, b"confirmed|" + tx_text(payee, cents, n)))
                verdict = "accepted" if good else "refused (no valid AppCore signature)"
                await env.print(f"bank: transfer of {cents / 100:.2f} EUR to {payee} {verdict}")
                reply = (0,) if good else (-Err.EACCES,)
        msg = await env.reply_and_wait(reply[0], *reply[1:])


async def appcore(env: Env, channel_key: bytes, sign_key: bytes, pin: str) -> int:
    """The AppCore: verify, show, take the PIN and Enter from its own view, sign."""
    g = GuiClient(env)
    x, y, w, h = CORE
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, 0xE8F0E8)
    await g.text(8, 8, "AppCore: waiting for a transaction", 0x103010, 0xE8F0E8)
    await g.view(x, y, w, h, title="secure confirmation")
    await env.cap("core", Gate).bind(env.thread, 0x10)
    msg = await env.wait()
    while True:
        reply: tuple[int, ...] = (-Err.ENOSYS,)
        if msg.error:
            msg = await env.wait()
            continue
        tx = _unpack_tx(msg.words[1:]) if msg.proto == APPCORE and msg.words and msg.words[0] == CONFIRM else None
        if tx is not None:
            payee, cents, n, tag = tx
            if not same(tag, mac(channel_key, tx_text(payee, cents, n))):
                await env.print("appcore: a transaction without the bank's MAC: refused")
                reply = (-Err.EACCES,)
            else:
                ok = await _ask_user(g, f"Transfer {cents / 100:.2f} EUR to {payee}?", pin)
                if ok:
                    await env.print(f"appcore: the user confirmed {cents / 100:.2f} EUR to {payee}: signed")
                    reply = (0, *mac(sign_key, b"confirmed|" + tx_text(payee, cents, n)))
                else:
                    await env.print("appcore: the user did not confirm")
                    reply = (-Err.EACCES,)
        msg = await env.reply_and_wait(reply[0], *reply[1:])


async def _ask_user(g: GuiClient, question: str, pin: str) -> bool:
    """Show ``question`` and read the PIN and Enter (Esc: no) from this session's input only."""
    w, h = g.w, g.h
    await g.fill(0, 0, w, h, 0xE8F0E8)
    await g.text(8, 8, question, 0x103010, 0xE8F0E8, scale=2)
    await g.text(8, 40, "Type your PIN and press Enter (Esc: cancel)", 0x103010, 0xE8F0E8)
    await g.refresh()
    typed = ""
    while True:
        for ev in await g.events():
            c = g.char(ev)
            if c is not None and c.isdigit():
                typed += c
            elif ev.kind == EV_PRESS and ev.code == KEY_BACKSPACE:
                typed = typed[:-1]
            elif ev.kind == EV_PRESS and ev.code == KEY_ESC:
                return False
            elif ev.kind == EV_PRESS and ev.code == KEY_ENTER:
                done = hmac.compare_digest(typed, pin)
                await g.fill(0, 72, w, 30, 0xE8F0E8)
                await g.text(8, 78, "confirmed and signed" if done else "wrong PIN", 0x103010, 0xE8F0E8, scale=2)
                await g.refresh()
                return done
            else:
                continue
            await g.fill(0, 56, w, 12, 0xE8F0E8)
            await g.text(8, 58, "PIN: " + "*" * len(typed), 0x103010, 0xE8F0E8)
            await g.refresh(0, 56, w, 12)


async def browser(env: Env, payee: str, cents: int) -> int:
    """The untrusted browser: relays the honest transfer, and attacks on the side."""
    g = GuiClient(env)
    net, core = env.cap("net", Gate), env.cap("core", Gate)
    px, py, pw, ph = PAGE
    await g.buffer(pw, ph + FAKE[3])
    await g.fill(0, 0, pw, ph, 0xFFFFFF)
    await g.text(10, 10, "MyBank online - transfer form", 0x202060, 0xFFFFFF, scale=2)
    await g.text(10, 40, f"Payee: {payee}    Amount: {cents / 100:.2f} EUR", 0x202020, 0xFFFFFF)
    await g.view(px, py, pw, ph, title="https://mybank.example")
    # --- attack: a confirmation dialog dressed as the AppCore's, on top, asking for the click
    fx, fy, fw, fh = FAKE
    await g.fill(0, ph, fw, fh, 0xE8F0E8)
    await g.text(8, ph + 8, "AppCore: confirm transfer", 0x103010, 0xE8F0E8)
    await g.text(8, ph + 24, "of 10.00 EUR to Mallory?", 0x103010, 0xE8F0E8)
    await g.fill(90, ph + 60, 60, 20, 0x30A030)
    await g.text(110, ph + 66, "OK", 0xFFFFFF, 0x30A030)
    fake = await g.view(fx, fy, fw, fh, 0, ph, title="AppCore - secure confirmation")
    await g.to_front(fake)
    got: list[str] = []
    while "enter" not in got:  # the user, fooled for a moment, clicks OK and presses Enter
        for ev in await g.events():
            if ev.kind == EV_PRESS:
                got.append("enter" if ev.code == KEY_ENTER else "click" if ev.code >= 0x110 else "key")
    forged = (0,) * 4  # the browser cannot sign: it has no key, only the user's click
    r = await net.call(BANK, SUBMIT, 10_00, 1, *forged, *pack_bytes(b"Mallory"))
    await env.print("attack fake-dialog: " + ("SUCCEEDED" if r.proto == 0 else
                    "refused by the label bar and the secure input path (the click went to the browser, "
                    "only the AppCore signs)"))
    await g.call(GuiOp.VIEW_DESTROY, fake)
    # --- the honest path, with a sniffer watching the browser's input meanwhile
    t = await net.call(BANK, GET_TX, cents, *pack_bytes(payee.encode()))
    sniffed: list[int] = []
    state = {"done": False}
    await env.spawn(_sniffer, g, sniffed, state, name="sniffer", prio=15)
    sig = await core.call(APPCORE, CONFIRM, cents, t.words[1], *t.words[2:6], *pack_bytes(payee.encode()))
    state["done"] = True
    await env.print(f"attack sniff-keys: {'SUCCEEDED' if sniffed else 'refused by the GUI focus'} "
                    f"({len(sniffed)} key events reached the browser while the user typed the PIN)")
    if sig.proto != 0:
        await env.print("browser: the AppCore did not sign")
        return 1
    # --- attack: the AppCore's pixels
    leaks = await _read_pixels(env, g)
    await env.print("attack read-pixels: " + ("SUCCEEDED" if leaks else
                    "refused by capabilities (no GUI operation returns pixels, a fresh buffer is zeros, "
                    "no capability reaches the framebuffer, io or the AppCore's memory)"))
    # --- attack: raise the amount of the signed transfer
    r = await net.call(BANK, SUBMIT, cents * 10, t.words[1], *sig.words[:4], *pack_bytes(payee.encode()))
    await env.print("attack alter-amount: " + ("SUCCEEDED" if r.proto == 0 else
                    "refused by the AppCore's signature (the bank checks what the user saw)"))
    r = await net.call(BANK, SUBMIT, cents, t.words[1], *sig.words[:4], *pack_bytes(payee.encode()))
    await env.print(f"honest: {'ok' if r.proto == 0 else 'failed'}")
    await g.fill(0, 0, pw, ph, 0xFFFFFF)  # the new backing store: draw the page again
    await g.text(10, 10, "MyBank online - transfer done", 0x202060, 0xFFFFFF, scale=2)
    await g.text(10, 40, f"{cents / 100:.2f} EUR to {payee}: " + ("booked" if r.proto == 0 else "refused"),
                 0x202020, 0xFFFFFF)
    await g.refresh()
    return 0


async def _sniffer(env: Env, g: GuiClient, sniffed: list[int], state: dict[str, bool]) -> None:
    """Poll the browser's input every 5 ms while the user talks to the AppCore."""
    while not state["done"]:
        for ev in await g.events(wait=False):
            if ev.kind == EV_PRESS and ev.code < 0x100:
                sniffed.append(ev.code)
        await env.receive(env.thread, timeout=5_000_000)


async def _read_pixels(env: Env, g: GuiClient) -> bool:
    """Every way the browser has to another session's pixels; True if one gave any."""
    for op in (GuiOp.INFO, GuiOp.REFRESH):  # the protocol answers with no pixel words
        r = await g.call(op, 0, 0, 640, 480)
        if len(r.words) > 4:
            return True
    # a new backing store: does it show what was on the screen, or a page someone freed?
    await g.buffer(g.w, g.h)
    if any(await env.mem.read(g.addr, g.w * g.h * 4)):
        return True
    # the capabilities it was given: none reaches a driver, io or anybody's memory
    return any(name in env.local.names for name in ("fb", "dev", "io", "mem"))
