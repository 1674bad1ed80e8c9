"""The secure GUI: devices handed out by io, their drivers, the GUI server and three clients.

``scripts/gui.py`` puts a display on the board and gives the framebuffer
and input drivers each a bus of io's with exactly its devices (ned starts
io), then the GUI server over the drivers, and three clients each with a session ned opened under
its name.  Unless ``--input`` says otherwise, the user (:data:`DEFAULT_INPUT`)
clicks into the editor and types, clicks the picture, then presses the
secure attention key: X-ray mode shows every view dimmed and labelled, the
focused one highlighted, and Tab moves the focus.

``l4sim boot gui --screenshot 700ms:flat.png --screenshot xray.png`` takes
the screen before and after.
"""

from __future__ import annotations

from pathlib import Path

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script

SCRIPTS = Path(__file__).resolve().parent / "scripts"

DEFAULT_INPUT = """\
# the user's session (docs/security.md, input scripts)
100ms move 300 200
150ms click 120 100
200ms type Hello from the secure GUI!
500ms key enter
520ms type Keys go to the focused view only.
900ms click 450 200
1000ms key sak
1100ms key tab
"""


def setup(kernel: Kernel, args: object = None) -> System:
    return setup_script(kernel, SCRIPTS / "gui.py")
