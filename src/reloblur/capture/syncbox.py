"""The sync box: a serial-controlled box that powers both cameras and fires their triggers.

Line protocol (version 1, ``docs/sync-box.md``): ASCII lines ending in ``\\n``; each request
gets exactly one reply, ``OK[ fields]`` or ``ERR <code> <message>``; asynchronous events
start with ``!`` (``!TRG <seq> <t_us>`` after each fired pair). The driver opens any
pyserial URL: a device (``/dev/ttyUSB0``), a pseudo-terminal served by the emulator, or
``loop://`` for wiring tests.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

from reloblur.errors import ReloblurError
from reloblur.formats.syncbox_protocol import ERRORS, MAX_LINE, PROTOCOL_VERSION
from reloblur.formats.timing import s_trigger_delay_us

__all__ = ["ERRORS", "MAX_LINE", "PROTOCOL_VERSION", "SyncBox", "s_trigger_delay_us"]



class SyncBoxError(ReloblurError):
    """The box answered ``ERR``."""

    def __init__(self, code: int, message: str, command: str):
        super().__init__(f"sync box refused {command!r}: ERR {code} {message}")
        self.code = code


class SyncBoxProtocolError(ReloblurError):
    """The box sent something that is not the protocol (wrong device, baud rate, noise)."""


class SyncBoxTimeout(ReloblurError):
    """The box did not answer in time."""


class SyncBoxGoneError(ReloblurError):
    """The serial port vanished (unplugged, closed)."""


@dataclass(frozen=True)
class TriggerEvent:
    sequence: int
    time_us: int
    host_ns: int


class SyncBox:
    """Driver for the sync box on a pyserial URL. Use as a context manager."""

    def __init__(self, url: str, *, timeout_s: float = 1.0, baudrate: int = 115200):
        """Open the box at ``url`` (a device, a pty, ``loop://``, ``sim://``; ``sim`` is
        short for ``sim://``, the emulator, once :func:`reloblur.sim.register_serial_handlers`
        has run)."""
        if url == "sim":
            url = "sim://"
        try:
            import serial
        except ImportError:
            raise ReloblurError("the sync box needs pyserial: pip install 'reloblur[capture]'") from None
        self._serial_module = serial
        try:
            self.port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise SyncBoxGoneError(f"cannot open sync box port {url}: {exc}") from None
        self.url = url
        self.timeout_s = timeout_s
        self._buffer = b""
        self.events: collections.deque[TriggerEvent] = collections.deque()

    # -- transport ------------------------------------------------------------------------
    def _read_line(self, deadline: float) -> str:
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise SyncBoxTimeout(f"sync box on {self.url} did not answer within {self.timeout_s} s")
            try:
                chunk = self.port.read(self.port.in_waiting or 1)
            except (self._serial_module.SerialException, OSError) as exc:
                raise SyncBoxGoneError(f"sync box port {self.url} is gone: {exc}") from None
            self._buffer += chunk
            if len(self._buffer) > 4 * MAX_LINE and b"\n" not in self._buffer:
                raise SyncBoxProtocolError(f"sync box on {self.url} sends no line breaks: wrong device or baud rate?")
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            return line.decode("ascii").strip()
        except UnicodeDecodeError:
            raise SyncBoxProtocolError(f"sync box on {self.url} sent non-ASCII data {line[:20]!r}") from None

    def _event(self, line: str) -> None:
        parts = line[1:].split()
        if len(parts) == 3 and parts[0] == "TRG" and parts[1].isdigit() and parts[2].isdigit():
            self.events.append(TriggerEvent(int(parts[1]), int(parts[2]), time.time_ns()))
        else:
            raise SyncBoxProtocolError(f"malformed event from sync box: {line!r}")

    def command(self, text: str) -> list[str]:
        """Send one request; return the fields after ``OK``."""
        if len(text) >= MAX_LINE or "\n" in text:
            raise ReloblurError(f"sync box command too long or multi-line: {text!r}")
        try:
            self.port.write(text.encode("ascii") + b"\n")
            self.port.flush()
        except (self._serial_module.SerialException, OSError) as exc:
            raise SyncBoxGoneError(f"sync box port {self.url} is gone: {exc}") from None
        deadline = time.monotonic() + self.timeout_s
        while True:
            line = self._read_line(deadline)
            if not line:
                continue
            if line.startswith("!"):
                self._event(line)
                continue
            fields = line.split()
            if fields[0] == "OK":
                return fields[1:]
            if fields[0] == "ERR" and len(fields) >= 2 and fields[1].isdigit():
                raise SyncBoxError(int(fields[1]), " ".join(fields[2:]), text)
            raise SyncBoxProtocolError(f"unexpected reply from sync box to {text!r}: {line!r}")

    def wait_trigger(self, timeout_s: float | None = None) -> TriggerEvent:
        """The next ``!TRG`` event (fired pair), in order."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while not self.events:
            line = self._read_line(deadline)
            if line.startswith("!"):
                self._event(line)
            elif line:
                raise SyncBoxProtocolError(f"unexpected line from sync box while waiting for a trigger: {line!r}")
        return self.events.popleft()

    # -- commands -------------------------------------------------------------------------
    def identify(self) -> dict[str, str]:
        """``ID?``: the box's device name, firmware and serial."""
        fields = self.command("ID?")
        if len(fields) < 3 or fields[0] != "RELOBLUR-SYNCBOX":
            raise SyncBoxProtocolError(f"device on {self.url} is not a reloblur sync box: {' '.join(fields)!r}")
        version = self.command("VER?")
        return {"device": fields[0], "firmware": fields[1], "serial": fields[2],
                "protocol": version[0] if version else "?"}

    def power(self, role: str, on: bool) -> None:
        """``PWR``: switch camera ``role``'s power."""
        self.command(f"PWR {role} {'ON' if on else 'OFF'}")

    def set_exposure(self, role: str, microseconds: float) -> int:
        """``EXP``: camera ``role``'s exposure pulse in microseconds; returns what the box set."""
        return int(self.command(f"EXP {role} {int(round(microseconds))}")[0])

    def set_delay(self, microseconds: float) -> int:
        """``DLY``: S's trigger delay after B's in microseconds; returns what the box set."""
        return int(self.command(f"DLY {int(round(microseconds))}")[0])

    def set_period(self, microseconds: float) -> int:
        """``PER``: the trigger period in microseconds; returns what the box set."""
        return int(self.command(f"PER {int(round(microseconds))}")[0])

    def arm(self) -> None:
        """``ARM``: get ready to fire (both cameras must be powered)."""
        self.command("ARM")

    def fire(self, count: int = 1) -> int:
        """Fire ``count`` pairs at the set period; returns the first sequence number."""
        return int(self.command(f"FIRE {int(count)}")[0])

    def run(self) -> None:
        """``RUN``: fire until stopped."""
        self.command("RUN")

    def stop(self) -> None:
        """``STOP``: stop firing."""
        self.command("STOP")

    def status(self) -> dict[str, str]:
        """``STAT?``: the box's state fields."""
        return dict(field.split("=", 1) for field in self.command("STAT?") if "=" in field)

    def close(self) -> None:
        """Close the port (idempotent)."""
        try:
            self.port.close()
        except Exception:
            pass

    def __enter__(self) -> SyncBox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
