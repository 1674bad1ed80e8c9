# Document signing split into Linux and a signer AppCore (Nizza's e-mail signer, EuroSys 2006),
# with the signing key in secure storage (Nizza I).
#
# The secure GUI; the TPM driver, the untrusted store and the storage server of the
# secure-storage scenario (ned measures the configuration into the TPM first: the storage's
# master key unseals only for it); the signer AppCore with its own GUI session, a channel of
# its own to the storage and to the TPM; and Linux (busybox), whose display is its own GUI
# session and whose only channel is the signer's.

import shutil

from l4sim.scenarios.programs import esign_linux

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
S = "l4sim.security"
LINUX_VIEW = (20, 40, 600, 180)

display(640, 480)
fb, inp, gui = channel("fb"), channel("input"), channel("gui")
tpm_storage, tpm_signer = channel("tpm-storage"), channel("tpm-signer")
store, storage, sign = channel("store"), channel("storage-signer"), channel("sign")

start("fb-drv", "l4sim.drivers.fb:fb_driver", prio=110, daemon=True,
      caps={"bus": io.bus("fb", devices=["framebuffer"]), "fb": fb.server()})
start("input-drv", "l4sim.drivers.input:input_driver", prio=110, daemon=True,
      caps={"bus": io.bus("input", devices=["keyboard", "pointer"]), "input": inp.server()})
start("gui", f"{S}.gui:gui_server", prio=100, daemon=True,
      caps={"gui": gui.server(), "fb": fb, "input": inp, "mem": memory(4 << 20),
            "factory": factory(32 * 1024)})

start("tpm", f"{S}.tpm:driver", prio=40, daemon=True,
      caps={"tpm": ioports("tpm"), "svc.storage": tpm_storage.server(), "svc.signer": tpm_signer.server()})
start("store", f"{S}.store:store", caps={"nvram": ioports("nvram"), "svc.storage": store.server()},
      prio=30, daemon=True)
start("storage", f"{S}.storage:server", prio=35, daemon=True,
      caps={"tpm": tpm_storage, "store": store, "svc.signer": storage.server()})

start("signer", "l4sim.scenarios.programs.esign_signer:signer", prio=40, daemon=True,
      caps={"gui": gui.session(), "storage": storage, "tpm": tpm_signer, "sign": sign.server()})
linux("mail", argv=[BUSYBOX, "sh", "-c", esign_linux.script(*LINUX_VIEW[2:])], fb=LINUX_VIEW,
      caps={"gui": gui.session(), "sign": sign}, prio=20, memory="16M")
