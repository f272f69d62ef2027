"""pyserial URL handler ``sim://[BENCH][?OPTION=N&...]``: the sync-box emulator as a serial port.

``serial.serial_for_url("sim://")`` starts :class:`~reloblur.sim.syncbox_emulator.SyncBoxEmulator`
on a fresh pseudo-terminal and opens that terminal like any device, so the driver talks to
it exactly as to ``/dev/ttyUSB0``; the emulator's pulses drive the lines of bench
``BENCH`` (default ``default``, see :mod:`reloblur.sim.bench`). ``s_skew_us`` makes the box's S
edge late (or early, if negative) by that much, from the pair after the first
``skew_after`` (default 0: every pair): a fault for tests of the capture's timing check.
``silent_after=N`` makes the box stop answering after N FIRE requests, and
``error_after=N`` makes it answer later ones with ``ERR 6``: faults for tests of how a
capture ends. pyserial finds this module once
:func:`reloblur.sim.register_serial_handlers` has run.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import serial

from reloblur.sim.bench import bench
from reloblur.sim.syncbox_emulator import PtySyncBox, SyncBoxEmulator

OPTIONS = {"s_skew_us": "microseconds", "skew_after": "pairs", "silent_after": "FIRE requests",
           "error_after": "FIRE requests"}


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
        query = parse_qs(parsed.query)
        unknown = set(query) - set(OPTIONS)
        if unknown:
            raise serial.SerialException(f"{url}: unknown option(s) {', '.join(sorted(unknown))} "
                                         f"(known: {', '.join(OPTIONS)})")
        values: dict[str, int] = {}
        for name in query:
            try:
                values[name] = int(query[name][-1])
            except ValueError:
                raise serial.SerialException(f"{url}: {name} must be a whole number ({OPTIONS[name]})") from None
        self._emulator = PtySyncBox(SyncBoxEmulator(
            on_pulse=lines.fire, s_skew_us=values.get("s_skew_us", 0), skew_after=values.get("skew_after", 0),
            silent_after=values.get("silent_after"),
            error_after=values.get("error_after")))
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
