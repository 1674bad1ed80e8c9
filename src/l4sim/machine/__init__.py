"""l4sim.machine"""
