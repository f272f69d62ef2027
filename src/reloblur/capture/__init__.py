"""Capture: the camera interface and backends, the sync-box driver, rig files and the
crash-safe recorder.

Importing this package needs no camera SDK, harvesters or pyserial: those are imported by
the backend modules that use them.
"""
