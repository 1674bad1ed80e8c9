"""l4sim.security"""
