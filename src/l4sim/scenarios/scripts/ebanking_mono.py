# E-banking monolithic: the browser, the keys, the PIN and the confirmation in one Linux instance.
#
# The same application as scripts/ebanking.py without the AppCore: the comparison run of
# l4sim tcb compare ebanking.  The browser holds the keys and the PIN as files, opens the bank's
# seal and makes the confirmation with busybox; the user types the PIN into its page.

import shutil

from l4sim.scenarios.programs import ebanking_browser
from l4sim.scenarios.programs.ebanking_common import BROWSER, PIN

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
P = "l4sim.scenarios.programs"
CHANNEL_KEY = b"the bank's and the AppCore's channel key"
SIGN_KEY = b"the AppCore's confirmation key"

display(640, 480)
fb, inp, gui = channel("fb"), channel("input"), channel("gui")
net = channel("net")

start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", "l4sim.security.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(4 << 20),
            "factory": factory(32 * 1024)})

start("bank", f"{P}.ebanking_bank:bank", caps={"net": net.server()}, prio=30, daemon=True,
      args=(CHANNEL_KEY, SIGN_KEY))
linux("browser", argv=[BUSYBOX, "sh", "-c", ebanking_browser.monolithic(CHANNEL_KEY, SIGN_KEY, PIN)], fb=BROWSER,
      caps={"gui": gui.session(), "net": net}, prio=20, memory="32M")
