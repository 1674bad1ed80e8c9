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

S = "l4sim.security"
P = "l4sim.scenarios.programs.secure"

tpm_storage = channel("tpm-storage")
store = channel("store")
alice, bob, carol = channel("storage-alice"), channel("storage-bob"), channel("storage-carol")
mallory = channel("storage-mallory")

start("tpm", f"{S}.tpm:driver", caps={"tpm": ioports("tpm"), "svc.storage": tpm_storage.server()},
      prio=40, daemon=True)
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
