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

start("tpm", f"{S}.tpm:driver", caps={"tpm": ioports("tpm"), "svc.storage": tpm_storage.server()},
      prio=40, daemon=True)
start("store", f"{S}.store:store", caps={"nvram": ioports("nvram"), "svc.storage": store.server()},
      prio=30, daemon=True)
start("storage", f"{S}.storage:server",
      caps={"tpm": tpm_storage, "store": store, "svc.alice": alice.server(), "svc.bob": bob.server(),
            "svc.carol": carol.server()},
      prio=35, daemon=True)
start("alice", f"{P}:owner", caps={"storage": alice}, prio=20,
      args=("notes", "alice's notes, first draft", "alice's notes, final version"))
start("bob", f"{P}:owner", caps={"storage": bob}, prio=20, args=("key", "bob's signing key: 5e3f9a..."))
start("carol", f"{P}:diarist", caps={"storage": carol}, prio=20,
      args=("diary", "day 1: the store is untrusted", "day 2: and yet my diary is safe"))
start("intruder", f"{P}:intruder", prio=20)
