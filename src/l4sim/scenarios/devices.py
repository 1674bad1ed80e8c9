"""The devices scenario: io, drivers under DDE, the switch, a disk and a rogue driver.

The board (``scripts/devices.py``) has two NICs joined by a cable and two
disks.  ned starts io, which gives each driver only the devices of its bus:

- ``nic`` drives nic0 with the Linux driver ``simnic`` under DDE and serves
  packet sessions; ``switch`` is its client (the uplink) and gives ports to
  ``sink``, ``source`` and ``pinger``;
- ``nic-far`` drives nic1, on the cable's other end, for ``echo``, which
  answers pings;
- ``blk`` drives blk0 with the Linux driver ``simblk``; ``store`` writes,
  flushes and reads blocks;
- ``rogue`` drives blk1 itself and aims its DMA at memory that is not its
  own: the IOMMU refuses every such transfer.

``source`` sends frames to ``sink`` through the switch (local switching,
learned addresses); ``pinger`` pings ``echo`` through switch, NIC, cable and
the far NIC.  ``--pcap FILE`` records the cable, ``--disk FILE`` keeps
blk0's image, ``--crash-at TIME`` cuts the power.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from l4sim.kernel.kernel import Kernel
from l4sim.runtime.system import System, setup_script

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def setup(kernel: Kernel, args: Any = None) -> System:
    return setup_script(kernel, SCRIPTS / "devices.py")
