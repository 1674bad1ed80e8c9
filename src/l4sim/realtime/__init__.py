"""l4sim.realtime: DROPS real time.

``taskset`` reads task-set files into exact integer nanoseconds; ``analysis``
decides schedulability (FP response-time analysis, the EDF processor-demand
test, QAS reservations) and offers ``admit``.  See docs/realtime.md.
"""
