"""Clients of the secure GUI for the ``gui`` scenario: a text editor, a picture, a clock.

Each gets one thing from its startup script: a GUI session (``gui``) that
ned opened under its name.  They draw into their backing store and wait
for input like any windowed program; none of them can say who it is.
"""

from __future__ import annotations

from l4sim.machine.display import KEY_BACKSPACE, KEY_ENTER
from l4sim.security import font
from l4sim.security.gui_client import GuiClient
from l4sim.security.gui_protocol import EV_PRESS
from l4sim.user.env import Env

PAPER, INK, HEAD = 0xF4F1E8, 0x202020, 0xD9D2BF


async def editor(env: Env, x: int, y: int) -> int:
    """A text window: what the user types while it has the focus appears in it."""
    g = GuiClient(env)
    w, h = 280, 150
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, PAPER)
    await g.fill(0, 0, w, 14, HEAD)
    await g.text(4, 3, "notes.txt - click here, then type", INK, HEAD)
    await g.view(x, y, w, h, title="notes.txt")
    lines = [""]
    per_line = (w - 8) // font.CELL_W
    while True:
        changed = False
        for ev in await g.events():
            c = g.char(ev)
            if c is not None and len(lines[-1]) < per_line:
                lines[-1] += c
                changed = True
            elif ev.kind == EV_PRESS and ev.code == KEY_ENTER and len(lines) < 12:
                lines.append("")
                changed = True
            elif ev.kind == EV_PRESS and ev.code == KEY_BACKSPACE and lines[-1]:
                lines[-1] = lines[-1][:-1]
                changed = True
        if changed:
            row = len(lines) - 1
            ty = 20 + row * (font.CELL_H + 2)
            await g.fill(0, ty, w, font.CELL_H, PAPER)
            await g.text(4, ty, lines[-1] + "_", INK, PAPER)
            if row:  # the cursor leaves the line above
                py = ty - font.CELL_H - 2
                await g.fill(0, py, w, font.CELL_H, PAPER)
                await g.text(4, py, lines[-2], INK, PAPER)
            await g.refresh(0, 20 + max(0, row - 1) * (font.CELL_H + 2), w, 2 * (font.CELL_H + 2))


async def viewer(env: Env, x: int, y: int) -> int:
    """A picture: colour bands drawn once into the backing store."""
    g = GuiClient(env)
    w, h = 240, 180
    await g.buffer(w, h)
    for band in range(h // 6):
        t = band * 255 // (h // 6)
        await g.fill(0, band * 6, w, 6, (t << 16) | ((255 - t) << 8) | 0x80)
    for i in range(6):
        await g.fill(20 + i * 35, 60 + (i % 2) * 30, 24, 24, 0xFFFFFF if i % 2 else 0x101010)
    await g.text(8, h - 14, "sunset.png", 0xFFFFFF, 0x401040)
    await g.view(x, y, w, h, title="sunset.png")
    while True:
        await g.events()  # it takes no input, but drains what the GUI gives it


async def ticker(env: Env, x: int, y: int, ticks: int = 8) -> int:
    """A clock: redraws its time every 50 ms of simulated time, ``ticks`` times."""
    g = GuiClient(env)
    w, h = 150, 30
    await g.buffer(w, h)
    await g.fill(0, 0, w, h, 0x102030)
    await g.view(x, y, w, h, title="clock")
    for _ in range(ticks):
        now = await env.clock()
        await g.fill(0, 0, w, h, 0x102030)
        await g.text(6, 8, f"{now / 1e6:7.1f} ms", 0x80FFA0, 0x102030, scale=2)
        await g.refresh()
        await env.receive(env.thread, timeout=50_000_000)
    while True:
        await g.events()
