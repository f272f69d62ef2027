"""``sim://``: the sync-box emulator behind a pyserial URL, opened by the real driver the
way it opens a device, its pulses on a bench's trigger lines."""

from __future__ import annotations

import pytest

from reloblur.capture.syncbox import SyncBox, SyncBoxGoneError
from reloblur.sim import register_serial_handlers
from reloblur.sim.bench import bench


def test_sim_url_serves_the_protocol_and_drives_the_bench_lines():
    register_serial_handlers()
    lines = bench("url-test")
    lines.unplug_all()
    pulses = []
    for role in "BS":
        lines.connect(role, lambda sequence, time_ns, r=role: pulses.append((r, sequence)))
    with SyncBox("sim://url-test") as box:
        box.identify()
        box.power("B", True)
        box.power("S", True)
        box.set_period(20000)
        box.arm()
        first = box.fire(2)
        events = [box.wait_trigger(2) for _ in range(2)]
    assert [e.sequence for e in events] == [first, first + 1]
    assert pulses == [(r, s) for s in (first, first + 1) for r in "BS"]


def test_without_the_handler_registered_a_sim_url_is_a_clear_error(monkeypatch):
    import serial

    monkeypatch.setattr(serial, "protocol_handler_packages", [p for p in serial.protocol_handler_packages
                                                              if p != "reloblur.sim"])
    with pytest.raises(SyncBoxGoneError, match="sim://"):
        SyncBox("sim://")
