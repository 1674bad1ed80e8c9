# A µSINA-style VPN gateway between an intranet and the internet.
#
# intranet (a Linux instance) -- switch "red" -- vpn (the trusted gateway) -- nic0 ==cable== nic1
#   -- mallory (the internet, on the path, attacking) -- internet (a Linux instance: the web host,
#   the tunnel's far end)
#
# The gateway seals everything from the intranet to the web host into ESP (AES-GCM) and opens what
# comes back; --pcap FILE records the cable: the outer wire, ciphertext only.  The intranet fetches
# a file with wget from the internet's httpd; mallory drops one packet on the way and replays, alters
# and forges others on the way back; the gateway refuses and counts them.

import shutil

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
KEY_OUT = "4c3473696d2d7670 6e2d6f7574626f75 6e642d6b".replace(" ", "")   # AES-128 key and salt
KEY_IN = "4c3473696d2d7670 6e2d696e626f756e 642d6b65".replace(" ", "")
VPN = ("red=10.1.0.1/24 black=198.51.100.1/24 peer=198.51.100.2 local=10.1.0.0/24 remote=198.51.100.2/32 "
       f"spi_out=0x1001 key_out={KEY_OUT} spi_in=0x2002 key_in={KEY_IN}")
ATTACKS = "drop=3 replay=5 late=8 flip=6 forge=10"
MARKER = "L4SIM-VPN-PLAINTEXT-MARKER"

WEB = f"""
mkdir -p /www
{{ echo {MARKER}; dd if=/dev/urandom bs=1024 count=32 2>/dev/null; echo {MARKER}; }} > /www/secret.bin
echo "internet: serving /www/secret.bin ($(wc -c < /www/secret.bin) bytes)"
exec httpd -f -p 80 -h /www
"""

INTRANET = """
until wget -q -O /tmp/secret.bin http://web/secret.bin; do sleep 0.05; done
echo "intranet: fetched $(wc -c < /tmp/secret.bin) bytes, sha256 $(sha256sum < /tmp/secret.bin | cut -c1-16)"
ping -c 3 -q web | tail -1 | sed 's/^/intranet: ping through the tunnel: /'
ping -c 3 -q 10.1.0.1 | tail -1 | sed 's/^/intranet: ping to the gateway: /'
echo stats > /dev/l4/vpn && echo "intranet: the gateway counts $(cat /dev/l4/vpn)"
"""

nic("nic0", wire="nic1")
nic("nic1")

red = channel("red")            # the intranet's switch
outer = channel("outer")        # the NIC server of nic0: the gateway's black side
far = channel("far")            # the NIC server of nic1, beyond the cable
inet = channel("inet")          # mallory's port for the web host
ctl = channel("vpnctl")         # the gateway's counters, read-only

start("switch", "l4sim.drivers.switch:main", caps={"svc": red.server(), "factory": factory()}, prio=50, daemon=True)
start("nic", "l4sim.drivers.nic:main", caps={"bus": io.bus("outer", devices=["nic0"]), "svc": outer.server(),
                                              "factory": factory()}, prio=60, daemon=True)
start("nic-far", "l4sim.drivers.nic:main", caps={"bus": io.bus("far", devices=["nic1"]), "svc": far.server(),
                                                  "factory": factory()}, prio=60, daemon=True)
start("vpn", "l4sim.drivers.vpn:main", caps={"red": red, "black": outer, "ctl": ctl.server(),
                                             "factory": factory()}, args=(VPN,),
      prio=45, daemon=True)
start("mallory", "l4sim.scenarios.programs.vpn:mallory", caps={"svc": inet.server(), "uplink": far,
                                                                "factory": factory()}, args=(ATTACKS,), prio=45,
      daemon=True)

linux("internet", argv=[BUSYBOX, "sh", "-c", WEB], memory="32M", daemon=True,
      net={"eth0": {"port": inet, "addr": "198.51.100.2/24",
                    "esp": {"peer": "198.51.100.1", "remote": "10.1.0.0/24", "spi_out": 0x2002, "key_out": KEY_IN,
                            "spi_in": 0x1001, "key_in": KEY_OUT}}})
linux("intranet", argv=[BUSYBOX, "sh", "-c", INTRANET], memory="32M", caps={"vpn": ctl},
      net={"eth0": {"port": red, "addr": "10.1.0.2/24", "gw": "10.1.0.1"}}, hosts={"web": "198.51.100.2"},
      cpus=[1] if CORES > 1 else [0])
