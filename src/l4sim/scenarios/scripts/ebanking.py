# E-banking split into an untrusted browser in L4Linux and a small trusted AppCore (Nizza, EuroSys 2006).
#
# The secure GUI of the gui scenario; the bank (a native stand-in for the remote server); the
# AppCore with its own GUI session and the keys; and the browser: busybox in a Linux instance
# whose display is its own GUI session (/dev/fb0, /dev/input/event0), with a channel to the
# bank (/dev/l4/net) and one to the AppCore (/dev/l4/core) -- and nothing else.

import shutil

from l4sim.scenarios.programs import ebanking_browser
from l4sim.scenarios.programs.ebanking_common import BROWSER, PIN

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
P = "l4sim.scenarios.programs"
CHANNEL_KEY = b"the bank's and the AppCore's channel key"
SIGN_KEY = b"the AppCore's confirmation key"

display(640, 480)
fb, inp, gui = channel("fb"), channel("input"), channel("gui")
net, core = channel("net"), channel("core")

start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", "l4sim.security.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(4 << 20),
            "factory": factory(32 * 1024)})

start("bank", f"{P}.ebanking_bank:bank", caps={"net": net.server()}, prio=30, daemon=True,
      args=(CHANNEL_KEY, SIGN_KEY))
start("appcore", f"{P}.ebanking_appcore:appcore", caps={"gui": gui.session(), "core": core.server()},
      prio=40, daemon=True, args=(CHANNEL_KEY, SIGN_KEY, PIN))
linux("browser", argv=[BUSYBOX, "sh", "-c", ebanking_browser.split()], fb=BROWSER,
      caps={"gui": gui.session(), "net": net, "core": core}, prio=20, memory="32M")
