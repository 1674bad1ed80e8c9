"""l4sim.user"""
