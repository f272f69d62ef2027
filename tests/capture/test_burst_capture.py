"""``reloblur capture --mode burst``: one fast camera, bursts into burst folders, on the sim
backend (frames checked against the simulator pixel for pixel), with a dropped frame, on
Aravis's fake camera and on Basler's emulator (the exposed fraction as each reads back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import IN_CI
from reloblur.capture.backends.sim import SimBackend, SimCamera
from reloblur.capture.burst import BurstCaptureOptions, capture_bursts
from reloblur.capture.registry import SimOptions, register_backend
from reloblur.dataset_cli.app import app
from reloblur.formats.burst_folder import BurstManifest
from reloblur.imaging.imageio import read_image
from reloblur.sim.simulator import RigSimulator, SimulatorConfig, render_burst

runner = CliRunner()
SIZE = (160, 112)


def sim_burst(tmp_path, bursts: int, *, keep: bool, backend=None, frames: int = 6) -> BurstCaptureOptions:
    return BurstCaptureOptions(out=tmp_path / "bursts", camera="SIM-B",
                               backend=backend or SimOptions(size=SIZE, burst_frames=frames), bursts=bursts,
                               frames=frames, exposure_us=1960, fps=500, keep_frames=keep, progress=False)


def test_bursts_hold_the_simulators_frames_and_the_exposed_fraction_read_back(tmp_path):
    summary = capture_bursts(sim_burst(tmp_path, 3, keep=True))
    assert summary.recorded == 3 and summary.rejected == 0 and not summary.warnings
    assert summary.exposed_fraction == pytest.approx(0.98)
    simulator = RigSimulator(SimulatorConfig(width=SIZE[0], height=SIZE[1], seed=0))
    for n in range(3):
        folder = tmp_path / "bursts" / "s01" / f"{n:02d}"
        manifest = BurstManifest.read(folder)
        assert manifest.exposed_fraction == pytest.approx(0.98) and manifest.frames_kept
        truth = render_burst(simulator, n, frames=6, exposed_fraction=0.98).frames
        for k in range(6):
            np.testing.assert_array_equal(read_image(manifest.frame_path(folder, k)), truth[k])
        assert [f.frame_id for f in manifest.frames] == list(range(6 * n + 1, 6 * n + 7))


def test_the_sum_alone_builds_the_same_pair_as_every_frame(tmp_path):
    kept = capture_bursts(sim_burst(tmp_path / "kept", 2, keep=True))
    summed = capture_bursts(sim_burst(tmp_path / "sum", 2, keep=False))
    assert kept.recorded == summed.recorded == 2
    folder = tmp_path / "sum" / "bursts" / "s01" / "00"
    assert sorted(p.name for p in folder.iterdir()) == ["burst.json", "frame_003.tiff", "sum.tiff"]
    assert read_image(folder / "sum.tiff").dtype == np.uint32
    for name in ("kept", "sum"):
        result = runner.invoke(app, ["burst", "build", str(tmp_path / name / "bursts"), str(tmp_path / name / "data"),
                                     "--workers", "1"])
        assert result.exit_code == 0, result.output
    pair = tmp_path / "{}" / "data" / "train" / "s01" / "00"
    for suffix in ("_blur.png", "_sharp.png"):
        a = read_image(str(pair / f"00{suffix}").format("kept")).astype(int)
        b = read_image(str(pair / f"00{suffix}").format("sum")).astype(int)
        assert np.abs(a - b).max() <= 1  # the mean rounded to 16 bits before demosaic: within a code
    refused = runner.invoke(app, ["burst", "build", str(tmp_path / "sum" / "bursts"), str(tmp_path / "other"),
                                  "--phase", "start", "--workers", "1"])
    assert refused.exit_code == 2 and "only frame 3 was kept" in refused.output


class DroppingSimCamera(SimCamera):
    """A camera whose transport loses one buffer: frame id 9 never arrives."""

    def fetch(self, timeout_s: float = 2.0):
        frame = super().fetch(timeout_s)
        if frame.frame_id == 9:
            return super().fetch(timeout_s)
        return frame


class DroppingSimBackend(SimBackend):
    camera_class = DroppingSimCamera


class DroppingSimOptions(SimOptions):
    pass


register_backend("dropping-sim", DroppingSimOptions,
                 lambda o: DroppingSimBackend(size=o.size, seed=o.seed, burst_frames=o.burst_frames), "sim, drops a frame")


def test_a_burst_with_a_dropped_frame_is_rejected_and_the_capture_goes_on(tmp_path):
    summary = capture_bursts(sim_burst(tmp_path, 3, keep=False, backend=DroppingSimOptions(size=SIZE, burst_frames=6)))
    assert summary.recorded == 3 and summary.rejected == 1
    assert list(summary.reasons) == ["frame 9 missing"]
    for n in range(3):
        ids = [f.frame_id for f in BurstManifest.read(tmp_path / "bursts" / "s01" / f"{n:02d}").frames]
        assert ids == list(range(ids[0], ids[0] + 6))  # never across the gap
    # A rerun numbers on, and sweeps a burst a crash left without its manifest.
    partial = tmp_path / "bursts" / "s01" / "03"
    partial.mkdir()
    (partial / "frame_000.tiff").write_bytes(b"half")
    again = capture_bursts(sim_burst(tmp_path, 1, keep=False))
    assert again.swept == [str(partial)] and (tmp_path / "bursts" / "s01" / "03" / "burst.json").exists()


def test_the_cli_exits_2_when_bursts_were_rejected(tmp_path):
    result = runner.invoke(app, ["capture", "--mode", "burst", "--session", str(tmp_path / "b"), "--backend",
                                 "dropping-sim", "--camera", "SIM-B", "--pairs", "2", "-k", "6", "--size", "160x112",
                                 "--exposure", "1960", "--fps", "500"])
    assert result.exit_code == 2 and "rejected 1x: frame 9 missing" in result.output


@pytest.mark.parametrize(("option", "value", "named"), [
    ("--exposure", "0", "--exposure = 0.0: must be a positive number"),  # was recorded at 0 % exposed
    ("--exposure", "nan", "--exposure = nan"),  # was a ValueError
    ("--fps", "0", "--fps = 0.0: must be a positive number"),  # was a ZeroDivisionError
    ("--gain", "nan", "--gain = nan: must be a finite number"),  # was recorded
    ("--exposure", "1e9", "reports an exposure of 1e+09 us in a frame period of"),  # was 'exposed fraction 500000%'
])
def test_a_burst_setting_no_camera_runs_with_is_refused_before_anything_is_written(tmp_path, option, value, named):
    result = runner.invoke(app, ["capture", "--mode", "burst", "--session", str(tmp_path / "b"), "--backend", "sim",
                                 "--pairs", "1", "--size", "96x64", option, value])
    assert result.exit_code == 1 and named in result.output and "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_aravis_fake_camera_reads_back_a_dashed_exposure(tmp_path):
    from reloblur.capture.cameras import CameraError
    from reloblur.capture.registry import AravisOptions, open_backend

    try:
        open_backend(AravisOptions(fake=True)).close()
    except CameraError as exc:
        if not IN_CI:
            pytest.skip(f"Aravis is not installed: {exc}")
        raise
    summary = capture_bursts(BurstCaptureOptions(out=tmp_path / "b", camera="Fake_1", backend=AravisOptions(fake=True),
                                                 bursts=2, frames=4, exposure_us=30000, fps=25, progress=False))
    assert summary.recorded == 2 and summary.frame_period_us == pytest.approx(40000)
    assert summary.exposed_fraction == pytest.approx(0.75)
    assert any("dashed" in w and "raise it towards 33 fps" in w for w in summary.warnings)
    manifest = BurstManifest.read(tmp_path / "b" / "s01" / "01")
    assert manifest.exposed_fraction == pytest.approx(0.75) and manifest.pixel_format == "Mono8"


def test_basler_emulator_reports_its_frame_rate_and_its_scrolling_pattern_is_shake(tmp_path):
    if not IN_CI:
        pytest.importorskip("pypylon")
    env = {k: v for k, v in os.environ.items() if k != "PYLON_CAMEMU"}
    completed = subprocess.run(
        [sys.executable, "-m", "reloblur", "capture", "--mode", "burst", "--session", str(tmp_path / "b"), "--backend",
         "pylon", "--emulate", "1", "--camera", "0", "--pairs", "2", "-k", "4", "--exposure", "9500", "--keep-frames",
         "--json"], capture_output=True, text=True, timeout=180, env=env)
    assert completed.returncode == 0, completed.stderr[-2000:]
    summary = json.loads(completed.stdout)
    assert summary["recorded"] == 2 and summary["frame_period_us"] > 0
    assert summary["exposed_fraction"] == pytest.approx(9500 / summary["frame_period_us"])
    manifest = BurstManifest.read(tmp_path / "b" / "s01" / "01")
    assert [f.frame_id for f in manifest.frames] == list(range(manifest.frames[0].frame_id or 0,
                                                               (manifest.frames[0].frame_id or 0) + 4))
    # The emulator's test pattern scrolls about a pixel per frame, as a panning camera would:
    # the whole frame moves, which is shake, not local blur.
    refused = runner.invoke(app, ["burst", "build", str(tmp_path / "b"), str(tmp_path / "data"), "--workers", "1"])
    assert refused.exit_code == 2 and "camera shake: the background moved 3." in refused.output
    kept = runner.invoke(app, ["burst", "build", str(tmp_path / "b"), str(tmp_path / "data"), "--workers", "1",
                               "--keep-shaken"])
    assert kept.exit_code == 0, kept.output


def test_a_burst_the_writer_cannot_write_stops_the_capture_with_the_path(tmp_path):
    (tmp_path / "bursts" / "s01").mkdir(parents=True)
    (tmp_path / "bursts" / "s01" / "00").write_text("a file where the first burst's folder goes")
    summary = capture_bursts(sim_burst(tmp_path, 3, keep=False))
    assert summary.error is not None and "s01/00" in summary.error.replace("\\", "/")
    # Bursts already queued to the other writer threads are still written, complete.
    written = [p for p in (tmp_path / "bursts" / "s01").iterdir() if p.is_dir()]
    assert summary.recorded == len(written) <= 2
    assert all((p / "burst.json").exists() for p in written)
    blocked = tmp_path / "cli" / "s01"
    blocked.mkdir(parents=True)
    (blocked / "00").write_text("in the way")
    result = runner.invoke(app, ["capture", "--mode", "burst", "--session", str(tmp_path / "cli"), "--backend",
                                 "sim", "--camera", "SIM-B", "--pairs", "1", "-k", "6", "--size", "160x112"])
    assert result.exit_code == 1 and "capture stopped" in result.output
