"""l4sim.realtime"""
