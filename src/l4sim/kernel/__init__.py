"""l4sim.kernel"""
