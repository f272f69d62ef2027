"""The simulated world: the two-camera rig simulator, ``reloblur simulate``, and the
sync-box emulator (on a pty, or as the pyserial URL ``sim://``). Used by the ``sim``
camera backend, the demo, tests and benchmarks."""

from __future__ import annotations


def register_serial_handlers() -> None:
    """Let pyserial open ``sim://`` URLs (the sync-box emulator): idempotent."""
    import serial

    if "reloblur.sim" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("reloblur.sim")
