"""pyserial URL handler ``sim://[BENCH]``: the sync-box emulator as a serial port.

``serial.serial_for_url("sim://")`` starts :class:`~reloblur.sim.syncbox_emulator.SyncBoxEmulator`
on a fresh pseudo-terminal and opens that terminal like any device, so the driver talks to
it exactly as to ``/dev/ttyUSB0``; the emulator's pulses drive the lines of bench
``BENCH`` (default ``default``, see :mod:`reloblur.sim.bench`). pyserial finds this module
once :func:`reloblur.sim.register_serial_handlers` has run.
"""

from __future__ import annotations

from urllib.parse import urlparse

import serial

from reloblur.sim.bench import bench
from reloblur.sim.syncbox_emulator import PtySyncBox, SyncBoxEmulator


class Serial(serial.Serial):
    """A serial port whose other end is a freshly started sync-box emulator."""

    _emulator: PtySyncBox | None = None

    def open(self) -> None:
        """Start the emulator on a pty and open the pty."""
        url = str(self.port)
        parsed = urlparse(url)
        if parsed.scheme.lower() != "sim":
            raise serial.SerialException(f"expected a sim:// URL, got {url!r}")
        lines = bench(parsed.netloc or "default")
        self._emulator = PtySyncBox(SyncBoxEmulator(on_pulse=lines.fire))
        self.portstr = self._emulator.path
        self._port = self._emulator.path
        try:
            super().open()
        except BaseException:
            self._emulator.close()
            raise
        self._port = url  # report the URL, as other handlers do

    def close(self) -> None:
        """Close the port, then stop the emulator (the line hangs up)."""
        super().close()
        if self._emulator is not None:
            self._emulator.close()
            self._emulator = None
