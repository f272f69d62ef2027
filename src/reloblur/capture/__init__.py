"""Capture: cameras, the sync box, capture sessions and the rig simulator.

Importing this package needs no camera SDK, harvesters or pyserial: those are imported by
the backends that use them.
"""
