"""l4sim.scenarios"""
