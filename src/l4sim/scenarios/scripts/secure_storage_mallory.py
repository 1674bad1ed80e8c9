# The secure-storage system as an attacker changed it: one more client, mallory, whose
# channel the storage server is given.  Everything else is the script secure_storage.py.
# The storage server's code is the same, but this configuration's PCRs are not the ones its
# master key is sealed to: the TPM does not unseal it, and mallory gets nothing.
#
# (The original's comment follows.)
# The secure-storage system: Nizza's trusted wrapper around an untrusted store.
#
# The TPM driver alone holds the TPM (ned measured everything below into it
# first); the storage server keeps its clients' files encrypted in the
# untrusted store, with its master key sealed to this configuration's PCRs.
# alice, bob and carol each hold a channel of their own to the storage; the
# intruder holds none.
#
# The store is a Linux instance: its busybox shell serves the storage server's
# requests through the stub /dev/l4/store and keeps each blob as a file
# /store/KEY (the value in hex).  Without a busybox on the host the native
# store keeps the blobs in the NVRAM instead.

import shutil

S = "l4sim.security"
P = "l4sim.scenarios.programs.secure"
BUSYBOX = shutil.which("busybox")

# the store's program: serve the stub from now on, then one request a line, one answer a line
STORE_SH = r"""
echo 1 > /sys/class/l4/store/serve || exit 1
exec 3<>/dev/l4/store
[ -d /store ] || mkdir /store
pk=
while read -r op key a b c <&3; do
  case $key in [A-Za-z0-9]*) ;; *) echo -22 >&3; continue;; esac
  case $key in *[!A-Za-z0-9_.-]*) echo -22 >&3; continue;; esac
  f=/store/$key
  case $op in
  get)
    if [ -f "$f" ]; then read -r v < "$f"; echo "$((${#v} / 2)) ${v:$((a * 2)):2048}" >&3
    else echo -2 >&3; fi;;
  put)
    [ "$a" = 0 ] && { pk=$key; pv=; }
    if [ "$pk" != "$key" ] || [ $((${#pv} / 2)) != "$a" ]; then pk=; echo -22 >&3; continue; fi
    pv=$pv$c
    [ $((${#pv} / 2)) -ge "$b" ] && { echo "$pv" > "$f"; pk=; }
    echo 0 >&3;;
  del)
    if [ -f "$f" ]; then rm "$f"; echo 0 >&3; else echo -2 >&3; fi;;
  *) echo -38 >&3;;
  esac
done
"""

tpm_storage = channel("tpm-storage")
store = channel("store")
alice, bob, carol = channel("storage-alice"), channel("storage-bob"), channel("storage-carol")
mallory = channel("storage-mallory")

start("tpm", f"{S}.tpm:driver", caps={"tpm": ioports("tpm"), "svc.storage": tpm_storage.server()},
      prio=40, daemon=True)
if BUSYBOX:
    linux("store", argv=[BUSYBOX, "sh", "-c", STORE_SH], caps={"store": store.server()}, prio=30,
          memory="16M", daemon=True)
else:
    start("store", f"{S}.store:store", caps={"nvram": ioports("nvram"), "svc.storage": store.server()},
          prio=30, daemon=True)
start("storage", f"{S}.storage:server",
      caps={"tpm": tpm_storage, "store": store, "svc.alice": alice.server(), "svc.bob": bob.server(),
            "svc.carol": carol.server(), "svc.mallory": mallory.server()},
      prio=35, daemon=True)
start("alice", f"{P}:owner", caps={"storage": alice}, prio=20,
      args=("notes", "alice's notes, first draft", "alice's notes, final version"))
start("bob", f"{P}:owner", caps={"storage": bob}, prio=20, args=("key", "bob's signing key: 5e3f9a..."))
start("carol", f"{P}:diarist", caps={"storage": carol}, prio=20,
      args=("diary", "day 1: the store is untrusted", "day 2: and yet my diary is safe"))
start("intruder", f"{P}:intruder", prio=20)
start("mallory", f"{P}:owner", caps={"storage": mallory}, prio=20, args=("loot", "everything alice wrote"))
