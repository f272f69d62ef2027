"""An emulator of the sync box, serving the real protocol on a pseudo-terminal.

The real driver opens the pty's path exactly as it opens ``/dev/ttyUSB0``, so tests and the
demo exercise the whole serial path. Fired pulses are reported to ``on_pulse(role,
sequence, time_ns)``, which the ``sim`` camera backend uses as its trigger lines.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Callable

import numpy as np

from reloblur.formats import syncbox_protocol as protocol
from reloblur.formats.timing import DEFAULT_B_EXPOSURE_US, DEFAULT_S_EXPOSURE_US
from reloblur.sim.clock import box_edge_ns

FIRMWARE = "emu-1.0"


class SyncBoxEmulator:
    """The box's state machine; feed it request lines, it answers and fires."""

    def __init__(self, *, on_pulse: Callable[[str, int, int], None] | None = None, serial: str = "EMU-0001",
                 s_skew_us: int = 0, skew_after: int = 0, silent_after: int | None = None,
                 error_after: int | None = None):
        self.on_pulse = on_pulse
        self.serial = serial
        # Faults for tests of a capture's ending: after this many FIRE requests the box
        # stops answering (a crashed firmware, a cable that still looks connected), or
        # answers FIRE with ERR 6 (its camera power supply dropped out).
        self.silent_after = silent_after
        self.error_after = error_after
        self._fires = 0
        # A fault of the box's S output: after the first ``skew_after`` pairs its edge comes
        # this much later (earlier, if negative) than DLY says, as a slow opto-isolator, a
        # miswired output or a loose connector would.
        self.s_skew_us = s_skew_us
        self.skew_after = skew_after
        self._edges = np.random.default_rng()  # each edge's interrupt latency
        self.power = {"B": False, "S": False}
        self.exposure = {"B": int(DEFAULT_B_EXPOSURE_US), "S": int(DEFAULT_S_EXPOSURE_US)}
        self.delay_us = 19_000
        self.period_us = 200_000
        self.state = "IDLE"
        self.sequence = 0
        self._write: Callable[[str], None] = lambda line: None
        self._stop_firing = threading.Event()
        self._firing: threading.Thread | None = None
        self._busy = False  # cleared before the last !TRG goes out, so the next FIRE is welcome
        self._lock = threading.Lock()

    def _reply(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def handle(self, line: str) -> str:
        """The reply to one request line (events are written separately), as the firmware
        gives it: :mod:`reloblur.formats.syncbox_protocol` matches and checks the request."""
        request = protocol.match(line)
        if isinstance(request, int):
            return protocol.error_line(request)
        busy = self._busy
        values = protocol.check(request, firing=busy, armed=self.state == "ARMED", powered=all(self.power.values()))
        if isinstance(values, int):
            return protocol.error_line(values)
        name = request.command.name
        if name == "ID?":
            return f"OK RELOBLUR-SYNCBOX {FIRMWARE} {self.serial}"
        if name == "VER?":
            return f"OK {protocol.PROTOCOL_VERSION}"
        if name == "PWR":
            self.power[str(values[0])] = values[1] == "ON"
            return "OK"
        if name == "EXP":
            self.exposure[str(values[0])] = int(values[1])
            return f"OK {values[1]}"
        if name == "DLY":
            self.delay_us = int(values[0])
            return f"OK {self.delay_us}"
        if name == "PER":
            self.period_us = int(values[0])
            return f"OK {self.period_us}"
        if name == "ARM":
            self.state = "ARMED"
            return "OK"
        if name in ("FIRE", "RUN"):
            self._fires += 1
            if self.error_after is not None and self._fires > self.error_after:
                return protocol.error_line(protocol.NOT_POWERED)
            first = self.sequence
            self._start_firing(int(values[0]) if name == "FIRE" else None)
            return f"OK {first}" if name == "FIRE" else "OK"
        if name == "STOP":
            self._stop_firing.set()
            if self._firing is not None:
                self._firing.join(timeout=5)
            self._busy = False
            self.state = "IDLE"
            return "OK"
        assert name == "STAT?"
        state = "FIRING" if busy else self.state
        power = "".join(("1" if self.power[r] else "0") for r in "BS")
        return (f"OK state={state} seq={self.sequence} pwr={power} expb={self.exposure['B']} "
                f"exps={self.exposure['S']} dly={self.delay_us} per={self.period_us}")

    def _start_firing(self, count: int | None) -> None:
        self._stop_firing.clear()
        self._busy = True
        self._firing = threading.Thread(target=self._fire, args=(count,), daemon=True)
        self._firing.start()

    def _fire(self, count: int | None) -> None:
        start = time.monotonic()
        k = 0
        while count is None or k < count:
            due = start + k * self.period_us / 1e6
            if self._stop_firing.wait(max(0.0, due - time.monotonic())):
                self._busy = False
                return
            seq = self.sequence
            self.sequence += 1
            t_ns = time.time_ns()
            # Each line's edge carries the time it is driven at, a few microseconds after
            # its timer fired (sim.clock); a camera stamps its frame on its own clock from it.
            skew = self.s_skew_us if seq >= self.skew_after else 0
            edges = sorted([("B", 0), ("S", self.delay_us + skew)], key=lambda edge: edge[1])
            elapsed = edges[0][1]
            for role, at_us in edges:
                if at_us > elapsed:
                    time.sleep((at_us - elapsed) / 1e6)
                    elapsed = at_us
                self._pulse(role, seq, box_edge_ns(t_ns + at_us * 1000, self._edges))
            k += 1
            if count is not None and k == count:
                self._busy = False
            self._reply(f"!TRG {seq} {t_ns // 1000}")

    def _pulse(self, role: str, seq: int, t_ns: int) -> None:
        # A real box drives its line whether or not a camera listens: a dead camera must
        # not stop the box (the capture notices the missing frame).
        if self.on_pulse is None:
            return
        try:
            self.on_pulse(role, seq, t_ns)
        except Exception:
            pass

    # -- serving a file descriptor (the master side of a pty) ------------------------------
    def serve(self, fd: int, stop: threading.Event) -> None:
        """Answer requests on ``fd`` until ``stop`` is set or the peer goes away."""
        def write(text: str) -> None:
            try:
                os.write(fd, text.encode("ascii") + b"\n")
            except OSError:
                stop.set()

        self._write = write
        buffer = b""
        overflow = False  # the line so far is too long: drop it up to its newline, then ERR 5
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                raw, _, buffer = buffer.partition(b"\n")
                if overflow:
                    overflow = False
                    self._reply(protocol.error_line(protocol.LINE_TOO_LONG))
                    continue
                if self.silent_after is not None and self._fires >= self.silent_after:
                    continue  # the fault: requests read, never answered
                # The firmware reads bytes as characters: any byte is a character of a word.
                self._reply(self.handle(raw.decode("latin-1")))
            if len(buffer.replace(b"\r", b"")) >= protocol.MAX_LINE:
                buffer, overflow = b"", True
        self._stop_firing.set()


class PtySyncBox:
    """The emulator on a fresh pseudo-terminal, in a background thread.

    ``path`` is the device the driver opens. ``close()`` hangs up the line (as unplugging
    the USB cable would).
    """

    def __init__(self, emulator: SyncBoxEmulator | None = None):
        self.emulator = emulator or SyncBoxEmulator()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: a byte pipe like a USB serial port
        self.path = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.emulator.serve, args=(self.master, self._stop), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close the pty (the line hangs up, as unplugging the cable would)."""
        self._stop.set()
        self._thread.join(timeout=5)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtySyncBox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
