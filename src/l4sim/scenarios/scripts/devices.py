# The devices scenario: drivers as user-level servers under io, a Linux NIC driver under DDE,
# a switch with MAC learning, a disk with a write cache, and a rogue driver whose DMA io confines.
#
# The board: two NICs joined by a cable (--pcap FILE records it), two disks.

P = "l4sim.scenarios.programs.netdemo"
D = "l4sim.drivers"
FRAMES = 200

nic("nic0", wire="nic1")
nic("nic1")
disk("blk0", sectors=2048)
disk("blk1", sectors=64)

eth0 = channel("eth0")      # the nic server of nic0: the switch's uplink
eth1 = channel("eth1")      # the nic server of nic1, beyond the cable
sw = channel("sw")          # the switch's ports
sda = channel("sda")        # the blk server

start("nic", f"{D}.nic:main", caps={"bus": io.bus("lan", devices=["nic0"]), "svc": eth0.server(),
                                    "factory": factory()}, prio=60, daemon=True)
start("switch", f"{D}.switch:main", caps={"svc": sw.server(), "uplink": eth0, "factory": factory()},
      prio=50, daemon=True)
start("nic-far", f"{D}.nic:main", caps={"bus": io.bus("far", devices=["nic1"]), "svc": eth1.server(),
                                        "factory": factory()}, prio=60, daemon=True)
start("echo", f"{P}:echo", caps={"net": eth1}, prio=40, daemon=True)
start("blk", f"{D}.blk:main", caps={"bus": io.bus("disk", devices=["blk0"]), "svc": sda.server(),
                                    "factory": factory()}, prio=55, daemon=True)

start("sink", f"{P}:sink", caps={"net": sw}, prio=30, args=(FRAMES,))
start("source", f"{P}:source", caps={"net": sw}, prio=20, args=(FRAMES,))
start("pinger", f"{P}:pinger", caps={"net": sw}, prio=20, args=(10,))
start("store", f"{P}:store", caps={"disk": sda}, prio=20)
start("rogue", f"{P}:rogue", caps={"bus": io.bus("rogue", devices=["blk1"])}, prio=10)
