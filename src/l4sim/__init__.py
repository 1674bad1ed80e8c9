"""l4sim: the L4 microkernel system as an executable model on a simulated machine."""

__version__ = "0.1.0"
