"""How a camera stamps a triggered frame: its own clock, its trigger input's latency, jitter.

A real camera's device timestamp counts from its own start on its own crystal, so two
cameras' stamps differ by an unknown offset that drifts by tens of ppm; only cameras on one
clock (IEEE 1588 PTP, GigE Vision 2.0) stamp comparably. Between the box's edge and the
start of exposure sit the opto-isolated input and its debouncer: microseconds, with jitter.
The box itself drives its edges from a timer-compare interrupt, a few microseconds late
when another interrupt (the serial port's) is running.

The simulated cameras and ``reloblur simulate`` stamp frames through :class:`DeviceClock`,
so the recorder's timing check meets what a real rig gives it rather than the delay it
asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The firmware drives a line from a Timer1 compare interrupt; another interrupt in progress
# (the UART's, about 4 us at 16 MHz) delays it by up to that much.
BOX_EDGE_LATE_US = 4.0
# An opto-isolated trigger input and its debouncer: Basler and FLIR datasheets give a few to
# ten microseconds with about a microsecond of jitter.
TRIGGER_LATENCY_US = 8.0
TRIGGER_JITTER_US = 1.0
# Crystal tolerance of a camera's timestamp counter, each way.
DRIFT_PPM = 30.0


@dataclass(frozen=True)
class DeviceClock:
    """One camera's timestamp counter and trigger input.

    ``stamp(edge_ns)`` is the counter's value when the exposure starts for a trigger edge
    driven at host time ``edge_ns``: ``(edge + latency + jitter - started_ns) * (1 + drift)``.
    """

    started_ns: int  # host time at which the counter read 0
    drift_ppm: float = 0.0
    latency_us: float = TRIGGER_LATENCY_US
    jitter_us: float = TRIGGER_JITTER_US

    def stamp(self, edge_ns: int, rng: np.random.Generator) -> int:
        """The device timestamp (ns) of the exposure triggered by an edge at ``edge_ns``."""
        exposure_start = edge_ns + 1000 * (self.latency_us + self.jitter_us * float(rng.standard_normal()))
        return int(round((exposure_start - self.started_ns) * (1 + self.drift_ppm * 1e-6)))


def camera_clocks(seed: int, *, shared: bool, now_ns: int) -> dict[str, DeviceClock]:
    """The B and S cameras' clocks for a simulated rig.

    ``shared``: both follow one grandmaster (PTP), counting from the same instant without
    drift. Otherwise each counts from its own power-up, up to ten minutes before ``now_ns``,
    and drifts by up to :data:`DRIFT_PPM` either way: their stamps are not comparable, only
    their differences from pair to pair are.
    """
    rng = np.random.default_rng([seed, 1588])
    if shared:
        origin = now_ns - int(rng.integers(1, 600)) * 1_000_000_000
        return {role: DeviceClock(origin) for role in "BS"}
    return {role: DeviceClock(now_ns - int(rng.integers(1_000_000, 600_000_000)) * 1000,
                              drift_ppm=float(rng.uniform(-DRIFT_PPM, DRIFT_PPM))) for role in "BS"}


def box_edge_ns(planned_ns: int, rng: np.random.Generator) -> int:
    """When the box really drives an edge planned for ``planned_ns``: up to
    :data:`BOX_EDGE_LATE_US` later, when its timer interrupt waited on another."""
    return planned_ns + int(1000 * BOX_EDGE_LATE_US * float(rng.random()))
