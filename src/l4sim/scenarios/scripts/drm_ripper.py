# DRM's modified configuration: the player's place taken by a ripper (programs/drm_ripper.py).
#
# The system of scripts/drm.py with the player replaced by a program that would hand out the
# content key and the frames, holding the player's channels: its name space in the storage, the
# TPM, the shop.  Linux is left out (it changes nothing: any change to the script changes what
# ned measures, PCR 9).  The scenario boots it on the machine the honest boot left behind.

S = "l4sim.security"
P = "l4sim.scenarios.programs"
CONTENT_KEY = bytes.fromhex("5e11e1f0c0ffee00d15c0b011de7e57a")

display(640, 480)
fb, inp, gui = channel("fb"), channel("input"), channel("gui")
tpm_storage, tpm_player = channel("tpm-storage"), channel("tpm-player")
store, storage = channel("store"), channel("storage-player")
net, register, play = channel("net"), channel("register"), channel("play")

start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", f"{S}.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(4 << 20),
            "factory": factory(32 * 1024)})

start("tpm", f"{S}.tpm:driver", prio=40, daemon=True,
      caps={"tpm": ioports("tpm"), "svc.storage": tpm_storage.server(), "svc.player": tpm_player.server()})
start("store", f"{S}.store:store", caps={"nvram": ioports("nvram"), "svc.storage": store.server()},
      prio=30, daemon=True)
start("storage", f"{S}.storage:server", prio=35, daemon=True,
      caps={"tpm": tpm_storage, "store": store, "svc.player": storage.server()})

start("shop", f"{P}.drm_shop:shop", prio=30, daemon=True,
      caps={"net": net.server(), "register": register.server()}, args=(CONTENT_KEY,))
start("ripper", f"{P}.drm_ripper:ripper", prio=40,
      caps={"gui": gui.session(), "storage": storage, "tpm": tpm_player, "register": register,
            "play": play.server()})
