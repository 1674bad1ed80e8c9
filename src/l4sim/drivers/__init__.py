"""Device drivers as user-level servers: DDE (:mod:`.dde`), drivers written for Linux
(:mod:`.linux`), the ``nic`` and ``blk`` servers, and the network switch (docs/drivers.md)."""
