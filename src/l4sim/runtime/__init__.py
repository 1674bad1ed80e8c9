"""l4sim.runtime"""
