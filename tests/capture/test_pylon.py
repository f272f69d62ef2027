"""The pylon backend on Basler's own camera emulator (pypylon, PYLON_CAMEMU): a real camera
stack that honours triggers, so the trigger path is tested by what it does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import IN_CI
from reloblur.capture.cameras import FrameTimeout

try:
    import pypylon  # noqa: F401

    MISSING = None
except ImportError as exc:  # pragma: no cover
    MISSING = str(exc)

# CI installs the pylon extra (scripts/test.sh): there a missing pypylon is a failure.
pytestmark = pytest.mark.skipif(MISSING is not None and not IN_CI, reason=f"needs pypylon ({MISSING})")


def test_capture_list_shows_the_emulated_cameras_and_their_trigger_features():
    env = {k: v for k, v in os.environ.items() if k != "PYLON_CAMEMU"}
    completed = subprocess.run([sys.executable, "-m", "reloblur", "capture", "list", "--backend", "pylon",
                                "--emulate", "2", "--json"], capture_output=True, text=True, timeout=120, env=env)
    assert completed.returncode == 0, completed.stderr
    listing = json.loads(completed.stdout)
    devices = listing["devices"] if isinstance(listing, dict) else listing
    assert len(devices) == 2
    text = json.dumps(listing)
    assert "Emulation" in text and "TriggerMode" in text


def test_a_withheld_trigger_gives_no_frame_and_12_bit_frames_keep_their_values():
    """Triggered on camera 0 only, camera 0 delivers one frame and camera 1 none; then
    triggered, camera 1 delivers. Mono12 comes as uint16 within 12 bits, recorded as
    Mono12; settings are read back as the camera applied them."""
    from reloblur.capture.backends.pylon import PylonBackend

    backend = PylonBackend(emulate=2)
    cameras = [backend.open("0"), backend.open("1")]
    try:
        for camera in cameras:
            assert camera.set("Width", 320) == 320 and camera.set("Height", 240) == 240
            assert camera.set("PixelFormat", "Mono12") == "Mono12"
            assert camera.set("TriggerMode", "On") == "On"
            assert camera.set("TriggerSource", "Software") == "Software"
            exposure = camera.set("ExposureTime", 2000.0)
            assert abs(exposure - 2000.0) < 50  # ExposureTimeAbs on this camera, read back
            camera.start()
        cameras[0].software_trigger()
        frame = cameras[0].fetch(timeout_s=2.0)
        assert frame.data.shape == (240, 320) and frame.data.dtype == np.uint16
        assert 0 < int(frame.data.max()) <= 4095 and frame.pixel_format == "Mono12"
        with pytest.raises(FrameTimeout):
            cameras[1].fetch(timeout_s=0.5)  # no trigger, no frame
        cameras[1].software_trigger()
        assert cameras[1].fetch(timeout_s=2.0).data.shape == (240, 320)
        cameras[0].software_trigger()
        second = cameras[0].fetch(timeout_s=2.0)
        assert second.frame_id == frame.frame_id + 1  # the camera's own counter: contiguous
        assert second.timestamp_ns is None  # the emulator's clock is 0: recorded as none
    finally:
        for camera in cameras:
            camera.close()


def test_a_triggered_capture_on_the_emulated_rig_pairs_the_frames_it_was_served(tmp_path):
    """End to end on Basler's emulator: two emulated cameras serve, one per trigger, the
    images of two folders (ImageFileMode); the sync-box emulator at sim://BENCH fires
    both lines (wired to TriggerSoftware: the test's trigger cables); the recorder calls
    it hardware-triggered because the trigger armed, and every recorded pair is the pair
    of images that belong together, in order, with contiguous frame counters. A flip and a
    gamma left on the cameras are undone before recording, and the manifest says so."""
    import cv2

    from reloblur.capture.recorder import CaptureOptions, capture
    from reloblur.capture.registry import PylonOptions
    from reloblur.capture.rig import CameraSettings, RigConfig
    from reloblur.formats.session import Session
    from reloblur.sim import register_serial_handlers
    from reloblur.sim.bench import bench

    register_serial_handlers()  # sim:// is the sync-box emulator
    rng = np.random.default_rng(3)
    served: dict[str, list[np.ndarray]] = {"B": [], "S": []}
    for role in ("B", "S"):
        folder = tmp_path / f"served-{role}"
        folder.mkdir()
        for k in range(4):  # each image says which pair and camera it is
            image = rng.integers(0, 256, (64, 96), dtype=np.uint8)
            image[:8, :8] = 40 * k + (0 if role == "B" else 20)
            cv2.imwrite(str(folder / f"{k:03d}.png"), image)
            served[role].append(image)

    lines = bench("pylon-test")
    lines.unplug_all()

    def on_open(cameras):
        for role, camera in cameras.items():
            camera.set("Width", 96)
            camera.set("Height", 64)
            camera.set("TestImageSelector", "Off")  # else the test pattern wins over the files
            camera.set("ImageFileMode", "On")
            camera.set("ImageFilename", str(tmp_path / f"served-{role}"))
            lines.connect(role, lambda sequence, time_ns, c=camera: c.software_trigger())
            # What a vendor viewer may have left: a flip and a gamma curve.
            camera.set("ReverseX", True)
            camera.set("Gamma", 0.5)

    rig = RigConfig(cameras={"B": CameraSettings("0815-0000", exposure_us=40000, pixel_format="Mono8",
                                                 trigger_source="Software"),
                             "S": CameraSettings("0815-0001", exposure_us=2000, pixel_format="Mono8",
                                                 trigger_source="Software")},
                    rate_hz=5.0, sync_port="sim://pylon-test", s_phase="middle")
    summary = capture(CaptureOptions(session=tmp_path / "s", rig=rig, backend=PylonOptions(emulate=2), pairs=4,
                                     progress=False), on_open=on_open)
    assert summary.error is None and summary.sync_mode == "hardware", summary
    assert summary.recorded == 4 and summary.rejected == 0
    session = Session(tmp_path / "s")
    assert session.manifest.cameras["B"].exposure_us == pytest.approx(40000, abs=50)
    for role in ("B", "S"):  # pinned, and recorded as read back
        state = session.manifest.cameras[role].state
        assert state["ReverseX"] is False and state["Gamma"] == pytest.approx(1.0)
        assert state["ExposureMode"] == "Timed" and "BlackLevel" in state
        assert state["UserSetLoad"] == "Default"  # loaded first (the emulator's load changes nothing)
    records = session.pairs()
    for k, record in enumerate(records):
        for role in ("B", "S"):
            np.testing.assert_array_equal(session.read_frame(record, role), served[role][k])
    ids = [record.frames["B"].frame_id for record in records]
    assert ids == list(range(ids[0], ids[0] + 4))


def test_simulated_scenes_through_the_emulated_rig_align_and_mask_as_the_simulator_says(tmp_path):
    """The whole rig path through a vendor SDK: the simulator's B and S renders (16-bit linear,
    served as 8-bit RGB) come out of Basler's emulated cameras one per trigger of the
    sync-box emulator, the recorded frames equal what was served, and ``align`` then
    ``mask generate`` on that session find the simulator's blur regions."""
    from reloblur.capture.recorder import CaptureOptions, capture
    from reloblur.capture.registry import PylonOptions
    from reloblur.demo.pylon_rig import emulated_rig, serve_renders, wire_emulated_cameras
    from reloblur.formats.session import Session
    from reloblur.imaging.imageio import read_image
    from reloblur.lbfmg.metrics import iou
    from reloblur.pipeline.align import AlignOptions, align_all
    from reloblur.pipeline.masks import GenerateOptions, generate_masks
    from reloblur.sim import register_serial_handlers
    from reloblur.sim.simulator import RigSimulator, SimulatorConfig

    register_serial_handlers()
    simulator = RigSimulator(SimulatorConfig(width=256, height=192, seed=2, static_fraction=0.0))
    pairs = [simulator.render(k) for k in range(3)]
    served = serve_renders(pairs, tmp_path / "served")
    summary = capture(CaptureOptions(session=tmp_path / "s", rig=emulated_rig("pylon-sim"),
                                     backend=PylonOptions(emulate=2), pairs=3, progress=False),
                      on_open=wire_emulated_cameras(tmp_path / "served", (256, 192), "pylon-sim"))
    assert summary.error is None and summary.recorded == 3 and summary.sync_mode == "hardware", summary
    session = Session(tmp_path / "s")
    for k, record in enumerate(session.pairs()):
        for role in ("B", "S"):
            np.testing.assert_array_equal(session.read_frame(record, role), served[role][k])
    report = align_all(AlignOptions(input=tmp_path / "s", out=tmp_path / "aligned", crop=False, workers=1,
                                    progress=False))
    assert report.aligned == 3 and not report.failures
    generate_masks(GenerateOptions(tmp_path / "aligned", tmp_path / "masks", workers=1, progress=False))
    ious = [iou(read_image(tmp_path / "masks" / "train" / "s01" / "00" / f"{k:02d}.png"), pair.mask)
            for k, pair in enumerate(pairs)]
    assert np.mean(ious) > 0.85, ious  # measured 0.94 (0.94, 0.94, 0.95) on 2026-11-30
