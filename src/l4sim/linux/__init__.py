"""l4sim.linux"""
