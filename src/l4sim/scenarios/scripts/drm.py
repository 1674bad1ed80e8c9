# DRM split into Linux and a player AppCore (Nizza's third case), with the content key in
# secure storage (Nizza I).
#
# The secure GUI; the TPM driver, the store and the storage server of the secure-storage
# scenario (ned measures the configuration into the TPM first: the storage's master key
# unseals only for it); the shop (a native stand-in for the remote distributor); the player
# AppCore with its own GUI session, a channel of its own to the storage, the TPM and the shop;
# and Linux (busybox), whose display is its own GUI session and whose channels are the shop's
# net and the player's.

import shutil

from l4sim.scenarios.programs import drm_linux
from l4sim.scenarios.programs.drm_common import LINUX

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
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
start("player", f"{P}.drm_player:player", prio=40, daemon=True,
      caps={"gui": gui.session(), "storage": storage, "tpm": tpm_player, "register": register,
            "play": play.server()})
linux("linux", argv=[BUSYBOX, "sh", "-c", drm_linux.script(*LINUX[2:])], fb=LINUX,
      caps={"gui": gui.session(), "net": net, "player": play}, prio=20, memory="16M")
