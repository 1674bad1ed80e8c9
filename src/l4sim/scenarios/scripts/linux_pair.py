# Two Linux instances and a native record store between them, as ned starts them.
#
# alice and bob are Linux instances (the personality as a program of its own), each with its
# own processes, pids and files, and each holding one capability: the store's channel, which
# its processes reach as /dev/l4/store.  alice writes a record; bob, started at the same
# time, asks for it until it is there and reads it back through its own stub.  Neither can
# see the other's files or processes, and a device for a capability it was not given does
# not exist.

import shutil

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
P = "l4sim.scenarios.programs.store"

ALICE = """
echo "alice: I am pid $$ of my own instance"
echo "a note only alice has" > /tmp/note
echo "put greeting hello from alice" > /dev/l4/store
echo "alice: the store says: $(cat /dev/l4/store)"
"""

BOB = """
until echo "get greeting" > /dev/l4/store 2>/dev/null; do sleep 0.01; done
echo "bob: read back through my own stub: $(cat /dev/l4/store)"
echo "bob: I am pid $$ of my own instance; /proc has $(cd /proc && echo [0-9]*)"
cat /tmp/note || echo "bob: alice's /tmp/note is not in my file system"
cat /dev/l4/secret || echo "bob: no capability, no device"
"""

store = channel("store")

start("store", f"{P}:store_server", caps={"store": store.server()}, prio=30, daemon=True)
linux("alice", argv=[BUSYBOX, "sh", "-c", ALICE], caps={"store": store}, prio=20, memory="16M")
linux("bob", argv=[BUSYBOX, "sh", "-c", BOB], caps={"store": store}, prio=20, memory="16M",
      cpus=[1] if CORES > 1 else [0])
