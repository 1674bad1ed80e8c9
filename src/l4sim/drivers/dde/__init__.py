"""DDE: the device driver environment -- DDEKit (:mod:`.ddekit`) on l4sim's native API and the
Linux 2.6 driver API on it (:mod:`.linux`), which the drivers of :mod:`l4sim.drivers.linux` use."""
