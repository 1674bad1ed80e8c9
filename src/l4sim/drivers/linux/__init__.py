"""Drivers written for Linux: each imports nothing of l4sim but the DDE Linux API
(:mod:`l4sim.drivers.dde.linux`), as DDE runs Linux drivers unchanged (a test checks it)."""
