"""The aravis backend against Aravis's fake camera: a real GenICam node map with trigger,
exposure and device timestamps. The sync-box emulator's pulses become TriggerSoftware on
each camera (the wiring below exists only in tests).

Aravis 0.8.26's fake camera (Debian 12) accepts TriggerMode On / TriggerSource Software but
keeps streaming at 25 Hz without triggers. With a sync box the capture sees frames arrive
before any trigger and refuses it (hardware pairing would be a fiction); without one it
records software-timed pairs, and says so. The trigger path itself is tested where triggers
gate frames: Basler's emulator (tests/capture/test_pylon.py) and the sim backend
(tests/capture/test_capture.py), which also shows the timestamp check rejecting pairs."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

from conftest import IN_CI
from reloblur.capture.cameras import CameraError
from reloblur.capture.recorder import CaptureOptions, capture
from reloblur.capture.registry import AravisOptions, open_backend
from reloblur.capture.rig import CameraSettings, RigConfig
from reloblur.dataset_cli.app import app
from reloblur.formats.session import Session
from reloblur.sim import register_serial_handlers
from reloblur.sim.bench import bench

register_serial_handlers()

try:
    open_backend(AravisOptions(fake=True)).close()
    ARAVIS_ERROR = None
except CameraError as exc:
    ARAVIS_ERROR = str(exc)

# In CI (.ci/run installs Aravis) a missing Aravis fails these tests instead of skipping them.
pytestmark = pytest.mark.skipif(ARAVIS_ERROR is not None and not IN_CI,
                                reason=f"Aravis is not installed: {ARAVIS_ERROR}")
runner = CliRunner()


def rig() -> RigConfig:
    return RigConfig(
        cameras={"B": CameraSettings("Fake_1", exposure_us=40000, trigger_source="Software",
                                     nd_filter={"name": "ND1.3", "transmission": 0.05}),
                 "S": CameraSettings("Fake_1", exposure_us=2000, trigger_source="Software")},
        rate_hz=10.0, sync_port="sim://aravis-test", s_phase="start",
    )


def software_bridge(bench_name: str = "aravis-test"):
    """Wire the emulated box's lines (``sim://BENCH``) to TriggerSoftware on each camera:
    the test's stand-in for the trigger cables."""
    lines = bench(bench_name)
    lines.unplug_all()  # the previous test's cameras are closed

    def on_open(cameras):
        for role, camera in cameras.items():
            lines.connect(role, lambda sequence, time_ns, c=camera: c.software_trigger())

    return on_open


def options(tmp_path, pairs: int) -> CaptureOptions:
    return CaptureOptions(session=tmp_path / "s", rig=rig(), backend=AravisOptions(fake=True),
                          pairs=pairs, timing_tolerance_us=8000, progress=False)


def software_timed(tmp_path, pairs: int) -> CaptureOptions:
    """The rig without its sync box: free-running cameras paired by host time."""
    return dataclasses.replace(options(tmp_path, pairs), rig=dataclasses.replace(rig(), sync_port=None))


def test_list_shows_the_fake_camera_and_its_features():
    result = runner.invoke(app, ["capture", "list", "--backend", "aravis", "--fake", "--json"])
    assert result.exit_code == 0, result.output
    devices = json.loads(result.stdout)
    fake = next(d for d in devices if d["id"] == "Fake_1")
    assert fake["features"]["ExposureTime"]["node"] == "ExposureTimeAbs"  # alias resolved
    assert fake["features"]["Gain"]["node"] == "GainRaw"
    assert fake["features"]["TriggerMode"]["writable"] and fake["features"]["TriggerSource"]["node"]


def test_a_camera_that_streams_without_triggers_is_refused_before_anything_is_written(tmp_path):
    """The fake camera reads back TriggerMode On and keeps streaming: with a sync box,
    hardware pairing was asked for, and the frames it delivers before any trigger is fired
    show it would be a fiction. Refused, naming the camera, with no session written."""
    with pytest.raises(CameraError, match="free-runs although TriggerMode reads On.*without a sync box"):
        capture(options(tmp_path, 6), on_open=software_bridge())
    assert not (tmp_path / "s").exists()


def test_software_timed_pairs_with_exposures_read_back(tmp_path):
    """Without a sync box the honest mode: free-running frames paired by host time, the
    session saying so, every camera setting read back from the node map."""
    summary = capture(software_timed(tmp_path, 6))
    assert summary.error is None and summary.sync_mode == "software"
    assert summary.recorded + summary.rejected == 6 and summary.recorded >= 1
    assert any("software-timed" in w for w in summary.warnings)
    session = Session(tmp_path / "s")
    assert session.manifest.sync["mode"] == "software"
    b = session.manifest.cameras["B"]
    assert b.exposure_us == pytest.approx(40000) and b.pixel_format == "Mono8"
    # The fake camera's gain is GainRaw (device units): recorded as it is, never called dB.
    assert b.gain_db is None and b.state["GainRaw"] == 0
    assert any("no user sets" in w for w in summary.warnings)
    for record in session.pairs():
        assert record.trigger is None  # no trigger: paired by host time
        assert all(frame.timestamp_ns for frame in record.frames.values())  # device timestamps recorded
        assert session.read_frame(record, "B").shape == (512, 512)


def test_a_gain_in_db_is_refused_by_a_camera_whose_gain_is_in_device_units(tmp_path):
    """Writing 2 dB into GainRaw would set 2 device units, some other gain: refused before
    anything is recorded, naming the feature and what to do."""
    cameras = {role: dataclasses.replace(settings, gain_db=2.0) for role, settings in rig().cameras.items()}
    with_gain = dataclasses.replace(software_timed(tmp_path, 2), rig=dataclasses.replace(rig(), cameras=cameras,
                                                                                         sync_port=None))
    with pytest.raises(CameraError, match="gain is GainRaw \\(device units.*cannot be applied: leave the gain unset"):
        capture(with_gain)
    assert not (tmp_path / "s").exists()


def test_a_camera_closed_mid_run_stops_cleanly(tmp_path):
    def close_s(pair_index, cameras, backend):
        if pair_index == 1:
            cameras["S"].close()

    summary = capture(software_timed(tmp_path, 8), on_pair=close_s)
    assert summary.error and "gone" in summary.error
    assert summary.recorded == 2
    session = Session(tmp_path / "s")
    assert [r.pair for r in session.pairs()] == [0, 1] and not session.skipped


