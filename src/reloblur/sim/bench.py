"""Trigger lines between the emulated sync box and simulated (or test) cameras.

A real rig wires the box's outputs to the cameras' trigger inputs. In one process the
same wiring is a named bench: the emulator behind ``sim://NAME`` fires the bench's lines,
and whatever is connected to a line (a simulated camera's trigger input, or a test that
turns the pulse into ``TriggerSoftware`` on a real node map) receives each pulse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

Pulse = Callable[[int, int], None]  # (trigger sequence, time in ns)


class Bench:
    """The trigger lines of one emulated rig, by role (``B``, ``S``)."""

    def __init__(self, name: str):
        self.name = name
        self._lines: dict[str, list[Pulse]] = {}
        self._lock = threading.Lock()

    def connect(self, role: str, receiver: Pulse) -> Callable[[], None]:
        """Wire ``receiver`` to line ``role``; returns the function that unplugs it."""
        with self._lock:
            self._lines.setdefault(role, []).append(receiver)

        def disconnect() -> None:
            with self._lock:
                receivers = self._lines.get(role, [])
                if receiver in receivers:
                    receivers.remove(receiver)

        return disconnect

    def unplug_all(self) -> None:
        """Disconnect every receiver (a fresh bench for the next rig)."""
        with self._lock:
            self._lines.clear()

    def fire(self, role: str, sequence: int, time_ns: int) -> None:
        """Drive line ``role``: every receiver gets the pulse. A receiver that fails does not
        stop the box (a dead camera misses its frame; the capture notices)."""
        with self._lock:
            receivers = list(self._lines.get(role, []))
        for receiver in receivers:
            try:
                receiver(sequence, time_ns)
            except Exception:
                pass


_BENCHES: dict[str, Bench] = {}
_LOCK = threading.Lock()


def bench(name: str = "default") -> Bench:
    """The bench called ``name`` (created on first use)."""
    with _LOCK:
        if name not in _BENCHES:
            _BENCHES[name] = Bench(name)
        return _BENCHES[name]
