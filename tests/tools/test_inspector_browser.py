"""The inspector's page in a real browser: Playwright driving headless Chromium.

Debian's Chromium (``apt-get install chromium``) is used through Playwright's
``executable_path``, with a fresh profile per module; the tests skip, in one line, where
Playwright or Chromium is missing.  Screenshots go to ``test-artifacts/inspector/`` (or
``$L4SIM_TEST_ARTIFACTS/inspector/``) for a person to look at.  What the page shows is
checked against the run's records read here directly, not through the inspector's model.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from l4sim.cli import main
from l4sim.tools.extras import have
from l4sim.tools.inspector.model import build, rights_text, screen_at
from l4sim.tools.runfile import read_run

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)

CHROMIUM = os.environ.get("L4SIM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

ARTIFACTS = Path(os.environ.get("L4SIM_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "inspector"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=ARGS, viewport={"width": 1400, "height": 1000})
        yield ctx
        ctx.close()


@pytest.fixture
def tab(chromium: Any) -> Iterator[Page]:
    """A new tab; the test fails if the page's script raised anywhere."""
    pg = chromium.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, errors


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def cli(*args: str) -> Any:
    res = CliRunner().invoke(main, list(args))
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("run") / "default.jsonl"
    cli("boot", "default", "--jsonl", str(path))
    return path


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)


def caps_from_records(path: Path, n: int) -> dict[int, list[tuple[int, str, str]]]:
    """Each task's capabilities after record ``n``, from the JSON lines themselves."""
    held: dict[tuple[int, int], tuple[str, int]] = {}
    lines = [json.loads(ln) for ln in path.read_text().splitlines()]
    records = [r for r in lines if r["kind"] != "run"]
    for r in records[: n + 1]:
        if r["kind"] in ("map", "unmap", "rights") and not r["obj"].startswith(("frame ", "port ")):
            key = (r["space"], r["slot"])
            if r["kind"] == "unmap":
                del held[key]
            else:
                held[key] = (r["obj"], r["rights"])
    out: dict[int, list[tuple[int, str, str]]] = {}
    for (space, slot), (obj, rights) in sorted(held.items()):
        out.setdefault(space, []).append((slot, obj, rights_text(rights)))
    return out


def shown_caps(page: Page) -> list[tuple[int, str, str]]:
    rows = page.eval_on_selector_all(
        "#caps tbody tr", "rows => rows.map(r => [Number(r.dataset.slot), r.dataset.obj, r.cells[3].textContent])")
    return [(int(s), str(o), str(r)) for s, o, r in rows]


def task_kid(path: Path, name: str) -> int:
    for ln in path.read_text().splitlines():
        r = json.loads(ln)
        if r["kind"] == "new" and r.get("type") == "task" and r.get("name") == name:
            return int(r["obj"])
    raise KeyError(name)


def test_slider_and_a_clicked_task_show_the_records_capabilities(tab: Page, default_run: Path,
                                                                   tmp_path: Path) -> None:
    """The default run's page: dragging the slider moves every view to one event; clicking a
    task lists exactly the capabilities the records give it there; the arrow key moves one
    event on; there is no screen in this run."""
    cli("inspect", str(default_run), "--export", str(tmp_path / "site"))
    open_page(tab, (tmp_path / "site" / "index.html").as_uri())
    count = len(read_run(str(default_run)).records)
    assert tab.input_value("#event-no") == str(count - 1)
    assert "boot default" in tab.inner_text("#run-info")
    assert tab.inner_text("#no-screen") == "no framebuffer in this run"

    box = tab.locator("#slider").bounding_box()
    assert box is not None
    tab.mouse.click(box["x"] + 0.4 * box["width"], box["y"] + box["height"] / 2)
    n = int(tab.input_value("#event-no"))
    assert 0.3 * count < n < 0.5 * count
    assert tab.get_attribute("body", "data-instant") == str(n)

    ned = task_kid(default_run, "ned")
    tab.click(f'#tasks li.task[data-kid="{ned}"] > .name')
    assert tab.inner_text("#sel-title").startswith(f"task ned #{ned}")
    expected = caps_from_records(default_run, n)[ned]
    assert len(expected) > 10
    assert shown_caps(tab) == expected
    shot(tab, "default-slider-ned")

    # "go to time": the first event at or after it
    tab.fill("#goto-time", "0.2ms")
    tab.press("#goto-time", "Enter")
    first = next(i for i, r in enumerate(read_run(str(default_run)).records) if r[0] >= 200_000)
    assert tab.input_value("#event-no") == str(first)
    tab.fill("#goto-time", "soon")
    tab.press("#goto-time", "Enter")
    assert tab.inner_text("#goto-error") == "give a time with a unit: ns, us, ms or s"
    assert tab.input_value("#event-no") == str(first)
    tab.fill("#event-no", str(n))
    tab.press("#event-no", "Enter")

    tab.focus("#slider")
    tab.keyboard.press("ArrowRight")
    assert tab.input_value("#event-no") == str(n + 1)
    assert shown_caps(tab) == caps_from_records(default_run, n + 1)[ned]

    # every thread listed is in the state the model gives it (inspector and tab agree)
    model = build(read_run(str(default_run)))
    states = dict(tab.eval_on_selector_all("#tasks li[data-tid]",
                                            "els => els.map(e => [Number(e.dataset.tid), e.dataset.state])"))
    from l4sim.tools.inspector.model import state_at

    want = state_at(model, n + 1)["threads"]
    assert states and all(want[tid][0] == st for tid, st in states.items())


def test_clicking_graph_nodes_shows_capabilities_and_holders(tab: Page, default_run: Path, tmp_path: Path) -> None:
    """In the capability graph a task node selects the task; an object node lists who holds it."""
    cli("inspect", str(default_run), "--export", str(tmp_path / "site"))
    open_page(tab, (tmp_path / "site" / "index.html").as_uri() + "#n=900")
    assert tab.input_value("#event-no") == "900"
    moe = task_kid(default_run, "moe")
    tab.click(f'#capgraph g.node.task[data-kid="{moe}"]')
    assert shown_caps(tab) == caps_from_records(default_run, 900)[moe]
    log = tab.locator('#capgraph g.node.obj text', has_text="log #2").first
    log.click()
    holders = tab.eval_on_selector_all("#holders tbody tr", "rows => rows.map(r => r.cells[0].textContent)")
    by_task = caps_from_records(default_run, 900)
    want = [s for s, caps in by_task.items() if any(obj == "<log #2>" for _sl, obj, _r in caps)]
    assert len(holders) == sum(1 for s in want for c in by_task[s] if c[1] == "<log #2>") >= 2
    assert tab.locator("#capgraph path.hot").count() == len(holders)
    # the IPC view filtered by one protocol shows only its messages
    tab.select_option("#ipc-proto", label="mem-alloc (16389)")
    titles = tab.eval_on_selector_all("#sequence g.row title", "ts => ts.map(t => t.textContent)")
    assert titles and all("proto=16389" in t for t in titles)
    shot(tab, "default-graph-log")


def test_the_replay_page_compares_the_kernel_with_the_trace(tab: Page, default_run: Path, tmp_path: Path) -> None:
    """After l4sim replay the tab opens at the replayed event and says the rerun kernel
    holds the capabilities the trace shows there."""
    cli("replay", str(default_run), "--until", "700", "--export", str(tmp_path / "site"))
    open_page(tab, (tmp_path / "site" / "index.html").as_uri())
    at = json.loads((tmp_path / "site" / "run.json").read_text())["live"]["at"]
    assert tab.input_value("#event-no") == str(at)
    assert "replayed to event 700" in tab.inner_text("#run-info")
    note = tab.locator("#live-note")
    assert note.get_attribute("class") == "ok"
    assert note.inner_text().startswith("the replayed kernel holds the same")
    shot(tab, "replay-700")


def _with_frames(src: Path, dst: Path) -> list[int]:
    """The kernel scenario's trace with a synthetic framebuffer's frames put in at three
    points (as a device would emit them); returns their record indexes."""
    lines = src.read_text().splitlines()
    header, recs = lines[0], lines[1:]
    w, h = 32, 24
    full = bytes(v for y in range(h) for x in range(w) for v in (x * 8, y * 10, 128))
    patch = bytes([255, 255, 255]) * (8 * 4)
    pixel = (0xF800).to_bytes(2, "little") * (4 * 4)  # rgb565 red

    def frame(t: int, rect: tuple[int, int, int, int], fmt: str, data: bytes) -> str:
        x, y, rw, rh = rect
        return json.dumps({"t": t, "cpu": -1, "kind": "frame", "tid": -1, "fb": 0, "width": w, "height": h,
                           "x": x, "y": y, "w": rw, "h": rh, "format": fmt,
                           "data": base64.b64encode(data).decode()}, sort_keys=True)

    at = [100, 200, 300]
    for k, (i, (rect, fmt, data)) in enumerate(zip(at, [((0, 0, w, h), "rgb888", full),
                                                        ((4, 4, 8, 4), "rgb888", patch),
                                                        ((20, 10, 4, 4), "rgb565", pixel)], strict=True)):
        t = json.loads(recs[i + k - 1])["t"]
        recs.insert(i, frame(t, rect, fmt, data))
    dst.write_text("\n".join([header, *recs]) + "\n")
    return at


def test_the_screen_view_draws_frame_records(tab: Page, tmp_path: Path) -> None:
    """A run with frame records: the screen at an instant is the frames up to it, pixel for
    pixel; before the first there is nothing on the screen yet."""
    plain = tmp_path / "kernel.jsonl"
    cli("boot", "kernel", "--jsonl", str(plain))
    traced = tmp_path / "fb.jsonl"
    at = _with_frames(plain, traced)
    cli("inspect", str(traced), "--export", str(tmp_path / "site"))
    model = build(read_run(str(traced)))
    assert not model["warnings"]
    for n in (at[0] - 1, at[0], at[1] + 5, at[2], len(model["records"]) - 1):
        open_page(tab, (tmp_path / "site" / "index.html").as_uri() + f"#n={n}")
        want = screen_at(model, n)
        if want is None:
            assert tab.is_hidden("#screen")
            assert tab.inner_text("#no-screen") == "nothing on the screen yet at this instant"
            continue
        w, h, px = want
        got = tab.evaluate("""() => { const c = document.getElementById('screen');
            return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }""")
        assert got[0] == w and got[1] == h and bytes(got[2]) == px
    # moving backwards composes again
    tab.fill("#event-no", str(at[1]))
    tab.press("#event-no", "Enter")
    got = tab.evaluate("() => Array.from(document.getElementById('screen').getContext('2d').getImageData(20, 10, 1, 1).data)")
    assert got != [255, 0, 0, 255]
    shot(tab, "screen-frames")


@pytest.mark.skipif(not have("starlette", "uvicorn"), reason="the web extra is not installed")
def test_the_served_page_works_like_the_exported_one(tab: Page, default_run: Path) -> None:
    """l4sim inspect's server gives the same tab: the views fill and the slider works."""
    proc = subprocess.Popen([sys.executable, "-m", "l4sim", "inspect", str(default_run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[2]
        open_page(tab, url)
        assert tab.locator("#tasks li.task").count() >= 8
        tab.fill("#event-no", "300")
        tab.press("#event-no", "Enter")
        assert tab.input_value("#slider") == "300"
        shot(tab, "served-300")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
