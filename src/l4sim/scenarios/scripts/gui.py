# The secure GUI: io hands the display's devices to their drivers, the GUI server
# multiplexes the screen, the keyboard and the pointer among three clients.
#
# Each client's session is opened by ned (gui.session()): the GUI learns the client's
# name from this script, never from the client.

display(640, 480)

P = "l4sim.scenarios.programs.gui_demo"

fb = channel("fb")
inp = channel("input")
gui = channel("gui")

start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", "l4sim.security.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(4 << 20),
            "factory": factory(32 * 1024)})

start("editor", f"{P}:editor", caps={"gui": gui.session()}, prio=20, args=(40, 60))
start("viewer", f"{P}:viewer", caps={"gui": gui.session()}, prio=20, args=(360, 90))
start("clock", f"{P}:ticker", caps={"gui": gui.session()}, prio=20, args=(250, 330))
