"""The untrusted browser of the split demo: it relays the honest transfer and attacks on the side
(the attacks are described in :mod:`l4sim.scenarios.programs.split_common`)."""

from __future__ import annotations

from l4sim.kernel.abi import pack_bytes
from l4sim.machine.display import KEY_ENTER
from l4sim.scenarios.programs.split_common import APPCORE, BANK, CONFIRM, FAKE, GET_TX, PAGE, SUBMIT
from l4sim.security.gui_client import GuiClient
from l4sim.security.gui_protocol import EV_PRESS, GuiOp
from l4sim.user.env import Env, Gate


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
    """Poll the browser's input every 5 ms while the user talks to the AppCore (for 2 s at most:
    a user who never confirms must not keep the system busy for ever)."""
    for _ in range(400):
        if state["done"]:
            return
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
