# Data lifetime: a key, its copies, and what is left of them when the programs end.
# Boot with:  l4sim lifetime lifetime   (and --zero-on-free to compare)

P = "l4sim.scenarios.programs.lifetime"

svc = channel("worker")
shared = dataspace("shared", 4096)

start("worker", f"{P}:worker", caps={"svc": svc.server(), "shared": shared}, prio=20)
start("keeper", f"{P}:keeper", caps={"worker": svc, "shared": shared}, prio=10)
