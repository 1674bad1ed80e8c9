# The default system, as ned starts it on top of sigma0 and moe.
#
# Each start() names exactly the capabilities a program gets; a channel is an
# IPC gate whose server binds it, svc.server() is the server's end of it.

P = "l4sim.scenarios.programs.demo"

WORKER_CPU = [1] if CORES > 1 else [0]

svc = channel("svc")
ring = dataspace("ring", 4096)

start("hello", f"{P}:hello", prio=10)
start("counter", f"{P}:counter_server", caps={"svc": svc.server(), "factory": factory(64 * 1024)},
      prio=30, daemon=True)
start("client-a", f"{P}:counter_client", caps={"svc": svc}, prio=20, args=("client-a", 5))
start("client-b", f"{P}:counter_client", caps={"svc": svc}, prio=20, args=("client-b", 3, True))
start("producer", f"{P}:producer", caps={"ring": ring}, prio=15, cpus=WORKER_CPU, args=(24,))
start("consumer", f"{P}:consumer", caps={"ring": ring}, prio=15, cpus=WORKER_CPU, args=(24,))
start("crasher", f"{P}:crasher", prio=5)
