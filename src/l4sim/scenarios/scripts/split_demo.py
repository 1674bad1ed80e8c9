# A split application on the secure GUI, all native (Nizza's e-banking case without Linux):
# an untrusted browser relays a transfer between the bank and a small trusted AppCore, which
# shows it in its own view, takes the user's PIN on the secure path and signs it.

display(640, 480)

P = "l4sim.scenarios.programs"
KEY = b"bank and AppCore channel key"
SIGN = b"AppCore signing key"

fb = channel("fb")
inp = channel("input")
gui = channel("gui")
net = channel("net")
core = channel("core")

start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", "l4sim.security.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(4 << 20),
            "factory": factory(32 * 1024)})

start("bank", f"{P}.split_bank:bank", caps={"net": net.server()}, prio=30, daemon=True, args=(KEY, SIGN))
start("appcore", f"{P}.split_appcore:appcore", caps={"gui": gui.session(), "core": core.server()}, prio=40,
      daemon=True, args=(KEY, SIGN, "4711"))
start("browser", f"{P}.split_browser:browser", caps={"gui": gui.session(), "net": net, "core": core,
                                      "factory": factory(16 * 1024)}, prio=20, args=("Alice", 100_00))
