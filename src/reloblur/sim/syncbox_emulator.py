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

from reloblur.formats.syncbox_protocol import ERRORS, MAX_LINE, PROTOCOL_VERSION
from reloblur.formats.timing import DEFAULT_B_EXPOSURE_US, DEFAULT_S_EXPOSURE_US

FIRMWARE = "emu-1.0"


class SyncBoxEmulator:
    """The box's state machine; feed it request lines, it answers and fires."""

    def __init__(self, *, on_pulse: Callable[[str, int, int], None] | None = None, serial: str = "EMU-0001"):
        self.on_pulse = on_pulse
        self.serial = serial
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

    def _error(self, code: int) -> str:
        return f"ERR {code} {ERRORS[code]}"

    def handle(self, line: str) -> str:
        """The reply to one request line (events are written separately)."""
        if len(line) >= MAX_LINE:
            return self._error(5)
        parts = line.strip().split()
        if not parts:
            return self._error(1)
        command, args = parts[0].upper(), parts[1:]
        busy = self._busy
        try:
            if command == "ID?" and not args:
                return f"OK RELOBLUR-SYNCBOX {FIRMWARE} {self.serial}"
            if command == "VER?" and not args:
                return f"OK {PROTOCOL_VERSION}"
            if command == "PWR" and len(args) == 2 and args[0] in self.power and args[1] in ("ON", "OFF"):
                self.power[args[0]] = args[1] == "ON"
                return "OK"
            if command == "EXP" and len(args) == 2 and args[0] in self.exposure:
                value = int(args[1])
                if not 1 <= value <= 10_000_000:
                    return self._error(2)
                self.exposure[args[0]] = value
                return f"OK {value}"
            if command == "DLY" and len(args) == 1:
                value = int(args[0])
                if not 0 <= value <= 10_000_000:
                    return self._error(2)
                self.delay_us = value
                return f"OK {value}"
            if command == "PER" and len(args) == 1:
                value = int(args[0])
                if not 1_000 <= value <= 60_000_000:
                    return self._error(2)
                self.period_us = value
                return f"OK {value}"
            if command == "ARM" and not args:
                if not all(self.power.values()):
                    return self._error(6)
                self.state = "ARMED"
                return "OK"
            if command in ("FIRE", "RUN"):
                if busy:
                    return self._error(4)
                if self.state != "ARMED":
                    return self._error(3)
                count = int(args[0]) if command == "FIRE" and len(args) == 1 else None
                if command == "FIRE" and (count is None or count < 1) or command == "RUN" and args:
                    return self._error(2)
                first = self.sequence
                self._start_firing(count)
                return f"OK {first}" if command == "FIRE" else "OK"
            if command == "STOP" and not args:
                self._stop_firing.set()
                if self._firing is not None:
                    self._firing.join(timeout=5)
                self._busy = False
                self.state = "IDLE"
                return "OK"
            if command == "STAT?" and not args:
                state = "FIRING" if busy else self.state
                power = "".join(("1" if self.power[r] else "0") for r in "BS")
                return (f"OK state={state} seq={self.sequence} pwr={power} expb={self.exposure['B']} "
                        f"exps={self.exposure['S']} dly={self.delay_us} per={self.period_us}")
        except ValueError:
            return self._error(2)
        return self._error(1)

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
            self._pulse("B", seq, t_ns)
            if self.delay_us:
                time.sleep(self.delay_us / 1e6)
            self._pulse("S", seq, t_ns + self.delay_us * 1000)
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
                try:
                    line = raw.decode("ascii").strip("\r")
                except UnicodeDecodeError:
                    self._reply(self._error(1))
                    continue
                self._reply(self.handle(line))
            if len(buffer) > MAX_LINE:
                buffer = b""
                self._reply(self._error(5))
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
