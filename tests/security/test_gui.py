"""The secure GUI end to end: sessions named by the script, label bars, input only to the focused
session, the secure attention key and X-ray mode, and bad requests answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from l4sim.kernel.abi import Err
from l4sim.machine.display import KEY_SAK
from l4sim.security.gui import LABEL_H, STATUS_XRAY_BG, label_shown
from l4sim.security.gui_client import GuiClient
from l4sim.security.gui_protocol import EV_PRESS, GuiOp
from l4sim.tools.boot import BootResult, boot
from l4sim.tools.display import parse_input
from l4sim.user.env import Env

ME = __name__
STACK = '''
display(320, 240)
fb = channel("fb")
inp = channel("input")
gui = channel("gui")
start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", "l4sim.security.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(2 << 20), "factory": factory(32 * 1024)})
'''
ALICE = (20, 40)
EVE = (180, 40)


async def recorder(env: Env, x: int, y: int, title: str = "") -> int:
    """A client that prints every press it gets (code and buffer coordinates)."""
    g = GuiClient(env)
    await g.buffer(100, 60)
    await g.fill(0, 0, 100, 60, 0x336699)
    await g.view(x, y, 100, 60, title=title)
    while True:
        for ev in await g.events():
            if ev.kind == EV_PRESS:
                await env.print(f"got {ev.code} at {ev.x},{ev.y}")


async def eve(env: Env, x: int, y: int) -> int:
    """A hostile client: another's name as its title, then requests the GUI must refuse."""
    g = GuiClient(env)
    await g.buffer(100, 60)
    vid = await g.view(x, y, 100, 60, title="alice")
    results = {
        "other view": (await g.call(GuiOp.VIEW_GEOMETRY, vid + 1, 0, 0, 10, 10, 0, 0)).proto,
        "huge buffer": (await g.call(GuiOp.BUFFER, 4096, 4096)).proto,
        "short request": (await g.call(GuiOp.VIEW_GEOMETRY, vid)).proto,
        "no such op": (await g.call(99)).proto,
    }
    await env.print("eve: " + ", ".join(f"{k} {v}" for k, v in results.items()))
    w, h, focused = await g.info()
    await env.print(f"eve: screen {w}x{h}, focused {focused}")
    return await recorder(env, x, y + 100)


def _run(tmp_path: Path, programs: str, inp: str) -> BootResult:
    p = tmp_path / "system.py"
    p.write_text(STACK + programs)
    return boot(str(p), input_actions=parse_input(inp))


def _lines(res: BootResult, who: str) -> list[str]:
    return [ln.split("| ", 1)[1] for ln in res.kernel.machine.uart.text().splitlines()
            if ln.startswith(who + " ") or ln.startswith(who + "|")]


TWO = f'''
start("alice", "{ME}:recorder", caps={{"gui": gui.session()}}, prio=20, args=({ALICE[0]}, {ALICE[1]}))
start("bob", "{ME}:recorder", caps={{"gui": gui.session()}}, prio=20, args=({EVE[0]}, {EVE[1]}))
'''


def test_keys_reach_only_the_session_the_user_clicked(tmp_path: Path) -> None:
    """Typed keys go to the session whose view was clicked last, never to the other; the click
    itself arrives in the buffer's coordinates."""
    res = _run(tmp_path, TWO, f"50ms click {ALICE[0] + 10} {ALICE[1] + 5}\n60ms type ab\n"
                              f"100ms click {EVE[0] + 3} {EVE[1] + 4}\n110ms type c\n")
    alice, bob = _lines(res, "alice"), _lines(res, "bob")
    assert alice == [f"got {0x110} at 10,5", "got 30 at 0,0", "got 48 at 0,0"]
    assert bob == [f"got {0x110} at 3,4", "got 46 at 0,0"]
    assert "gui: keyboard focus -> alice" in res.kernel.machine.uart.text()


def test_the_secure_attention_key_is_nobodys_and_x_ray_gives_no_input(tmp_path: Path) -> None:
    """Scroll Lock toggles X-ray mode and reaches no client; in X-ray mode keys reach nobody,
    Tab moves the focus; after X-ray the focused session gets keys again."""
    res = _run(tmp_path, TWO, f"50ms click {ALICE[0] + 10} {ALICE[1] + 5}\n60ms key sak\n70ms key a\n"
                              f"80ms key tab\n90ms key sak\n100ms key b\n")
    alice, bob = _lines(res, "alice"), _lines(res, "bob")
    assert not any(f"got {KEY_SAK} " in ln for ln in alice + bob)
    assert alice == [f"got {0x110} at 10,5"]
    assert bob == ["got 48 at 0,0"]  # Tab gave bob the focus; only the key after X-ray reached it
    text = res.kernel.machine.uart.text()
    assert "gui: X-ray mode on" in text and "gui: keyboard focus -> bob" in text


def test_label_bars_show_the_scripts_names_in_both_modes(tmp_path: Path) -> None:
    """Each view's bar shows the name the script gave its program, also in X-ray mode, where the
    status bar turns red."""
    p = tmp_path / "system.py"
    p.write_text(STACK + TWO)
    from l4sim.tools.display import parse_screenshot

    shots = [parse_screenshot("40ms:" + str(tmp_path / "a.png"))]
    res = boot(str(p), input_actions=parse_input("50ms key sak\n"), screenshots=shots)
    fb = res.kernel.machine.display.fb  # type: ignore[union-attr]
    assert label_shown(fb, ALICE[0], ALICE[1] - LABEL_H, "alice")
    assert label_shown(fb, EVE[0], EVE[1] - LABEL_H, "bob")
    assert not label_shown(fb, EVE[0], EVE[1] - LABEL_H, "alice")
    assert fb.screen[4:8] == STATUS_XRAY_BG
    assert shots[0].taken_at == 40_000_000 and shots[0].data is not None
    assert shots[0].data[:4] == b"\x89PNG"


def test_a_hostile_client_gets_errors_and_cannot_take_another_name(tmp_path: Path) -> None:
    """Another session's view, a buffer too large, a short request and an unknown operation are
    refused; the title "alice" does not change the label bar, which still says eve; and eve
    still cannot see keys typed into alice's view."""
    progs = f'''
start("alice", "{ME}:recorder", caps={{"gui": gui.session()}}, prio=20, args=({ALICE[0]}, {ALICE[1]}))
start("eve", "{ME}:eve", caps={{"gui": gui.session()}}, prio=20, args=({EVE[0]}, {EVE[1]}))
'''
    res = _run(tmp_path, progs, f"50ms click {ALICE[0] + 1} {ALICE[1] + 1}\n60ms type x\n")
    eve_lines = _lines(res, "eve")
    assert eve_lines[0] == (f"eve: other view {-Err.ENOENT}, huge buffer {-Err.ENOMEM}, "
                            f"short request {-Err.EINVAL}, no such op {-Err.ENOSYS}")
    assert eve_lines[1] == "eve: screen 320x240, focused False"
    assert not [ln for ln in eve_lines if ln.startswith("got ")]
    fb = res.kernel.machine.display.fb  # type: ignore[union-attr]
    assert label_shown(fb, EVE[0], EVE[1] - LABEL_H, "eve")
    assert not label_shown(fb, EVE[0], EVE[1] - LABEL_H, "alice")
    assert _lines(res, "alice")[-1] == "got 45 at 0,0"


def test_the_gui_scenario_runs_the_same_every_time() -> None:
    """Two runs of the gui scenario give the same screen, byte for byte."""
    a, b = boot("gui"), boot("gui")
    assert a.kernel.machine.display.fb.screen == b.kernel.machine.display.fb.screen  # type: ignore[union-attr]
    assert a.summary()["simulated_ns"] == b.summary()["simulated_ns"]


@pytest.mark.parametrize(("body", "message"), [
    ('display()\nstart("a", "l4sim.drivers.fb:fb_driver", caps={"d": io.bus("fb", devices=["tape"])})',
     "bus 'fb': the board has no device 'tape' (it has: framebuffer, keyboard, pointer); declare it with "
     "nic(...), disk(...) or display() first"),
    ('display()\ndisplay()', "display(...) is called twice"),
    ('display(8, 8)', "display width 8: give pixels, 16 .. 2048"),
    ('nic("keyboard")\ndisplay()', "device 'keyboard' is declared twice"),
    ('display()\na = io.bus("a", devices=["keyboard"])\nb = io.bus("b", devices=["keyboard", "pointer"])',
     "device 'keyboard' is on bus 'a' already"),
    ('g = channel("g")\nstart("a", "l4sim.drivers.fb:fb_driver", caps={"g": g.session(3.5)})',
     "session argument 3.5 of channel 'g': pass strings or numbers"),
    ('start("a", "l4sim.drivers.fb:fb_driver", caps={"m": memory(12)})', "memory quota 12"),
    ("".join(f'disk("d{i}")\n' for i in range(13)) + 'display()',
     "the display's keyboard and pointer need two of them"),
])
def test_script_mistakes_about_devices_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    from l4sim.runtime.ned import ScriptError, load_script

    p = tmp_path / "s.py"
    p.write_text(body + "\n")
    with pytest.raises(ScriptError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_script(p, 2)
