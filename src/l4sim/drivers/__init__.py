"""l4sim.drivers"""
