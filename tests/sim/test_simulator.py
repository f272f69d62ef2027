from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from reloblur.dataset.validate import ValidateOptions, validate_dataset
from reloblur.errors import ReloblurError
from reloblur.formats.dataset import discover_pairs
from reloblur.formats.session import Session
from reloblur.imaging.imageio import read_image
from reloblur.sim.simulate import SimulateOptions, simulate
from reloblur.sim.simulator import RigSimulator, SimulatorConfig, within_nearest_samples


def session_bytes(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "session.json")
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_simulated_session_is_deterministic_by_seed(tmp_path):
    opts = dict(pairs=3, width=96, height=64, progress=False)
    simulate(SimulateOptions(out=tmp_path / "a", seed=3, workers=1, **opts))
    simulate(SimulateOptions(out=tmp_path / "b", seed=3, workers=2, **opts))
    simulate(SimulateOptions(out=tmp_path / "c", seed=4, workers=1, **opts))
    a, b, c = (session_bytes(tmp_path / k) for k in "abc")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert a["frames/000000_B.tiff"] != c["frames/000000_B.tiff"]


def test_simulate_resumes_and_refuses_other_settings(tmp_path):
    out = tmp_path / "s"
    simulate(SimulateOptions(out=out, pairs=2, width=96, height=64, workers=1, progress=False))
    result = simulate(SimulateOptions(out=out, pairs=4, width=96, height=64, workers=1, progress=False))
    assert (result.written, result.resumed) == (2, 2)
    assert [r.pair for r in Session(out).pairs()] == [0, 1, 2, 3]
    with pytest.raises(ReloblurError, match="seed: 0 there, 1 now"):
        simulate(SimulateOptions(out=out, pairs=4, seed=1, width=96, height=64, workers=1, progress=False))


def test_a_grown_reloblur_layout_keeps_every_scene_in_one_split(tmp_path):
    """With more pairs a scene can change split (the test share is of more scenes): its
    rendered pairs move there and resume, instead of staying behind in the other split,
    where they were a test scene also trained on."""
    out = tmp_path / "d"
    opts = dict(width=96, height=64, layout="reloblur", pairs_per_scene=3, workers=1, progress=False)
    simulate(SimulateOptions(out=out, pairs=3, **opts))
    assert {p.split for p in discover_pairs(out / "dataset")} == {"train"}  # one scene: train
    before = {p.id.split("/", 1)[1]: p.blur.read_bytes() for p in discover_pairs(out / "dataset")}
    result = simulate(SimulateOptions(out=out, pairs=6, **opts))
    assert (result.written, result.resumed) == (3, 3)
    pairs = discover_pairs(out / "dataset", require_masks=True)
    assert len(pairs) == 6 and {p.split for p in pairs} == {"train", "test"}
    moved = {p.id.split("/", 1)[1]: p for p in pairs if p.scene == "s01"}
    assert {k: p.blur.read_bytes() for k, p in moved.items()} == before and moved["s01/00/00"].split == "test"
    report = validate_dataset(ValidateOptions(out / "dataset", workers=1, progress=False))
    assert report.problems == []


def test_simulate_refuses_a_folder_of_another_layout(tmp_path):
    simulate(SimulateOptions(out=tmp_path / "s", pairs=1, width=96, height=64, workers=1, progress=False))
    for layout in ("reloblur", "burst"):
        with pytest.raises(ReloblurError, match=f"already holds a session layout; simulate the {layout} layout"):
            simulate(SimulateOptions(out=tmp_path / "s", pairs=1, width=96, height=64, layout=layout, workers=1,
                                     progress=False))
    simulate(SimulateOptions(out=tmp_path / "d", pairs=1, width=96, height=64, layout="reloblur", workers=1,
                             progress=False))
    with pytest.raises(ReloblurError, match="already holds a reloblur layout; simulate the session layout"):
        simulate(SimulateOptions(out=tmp_path / "d", pairs=1, width=96, height=64, workers=1, progress=False))


def test_session_records_manifest_and_truth(tmp_path):
    simulate(SimulateOptions(out=tmp_path / "s", pairs=4, width=96, height=64, workers=1, progress=False))
    session = Session(tmp_path / "s")
    b, s = session.manifest.cameras["B"], session.manifest.cameras["S"]
    assert b.exposure_us == 40000 and s.exposure_us == 2000
    assert b.nd_filter["transmission"] == pytest.approx(0.05)
    assert session.manifest.sync["s_delay_us"] == pytest.approx(19000)  # S centred in B
    record = session.pairs()[0]
    # Stamped on each camera's own clock, as a real rig's (sim.clock): S - B is the delay
    # plus the clocks' offset, stable from pair to pair within the trigger jitter, and the
    # same stamps for the same seed.
    offsets = np.array([r.frames["S"].timestamp_ns - r.frames["B"].timestamp_ns for r in session.pairs()]) / 1000
    assert np.abs(offsets - 19_000).min() > 1e6 and 0 < np.ptp(offsets) < 20
    assert session.manifest.sync["clocks"] == record.timing["clocks"] == "independent"
    simulate(SimulateOptions(out=tmp_path / "again", pairs=4, width=96, height=64, workers=1, progress=False))
    assert [r.frames["S"].timestamp_ns for r in Session(tmp_path / "again").pairs()] == \
        [r.frames["S"].timestamp_ns for r in session.pairs()]
    truth = session.truth(record)
    assert np.asarray(truth["homography_blur_to_sharp"]).shape == (3, 3)
    assert session.truth_mask(record).shape == (64, 96)


@pytest.mark.parametrize("seed", [5, 11])
def test_ground_truth_maps_sharp_onto_blur_within_noise(seed):
    """Warping S by the recorded homography and lens term and applying the recorded
    colour, gain and vignetting reproduces B's static region to within the sensor noise;
    a 0.5 px error does not, and neither does leaving out the lens term or the vignetting."""
    from reloblur.imaging.lens import vignetting
    from reloblur.postprocess.geometry import sharp_coordinates

    size = (480, 320)
    sim = RigSimulator(SimulatorConfig(width=size[0], height=size[1], seed=seed, misalignment=3.0))
    rendered = sim.render(1)
    truth = rendered.truth
    blur = rendered.blur.astype(np.float32) / 65535
    sharp = rendered.sharp.astype(np.float32) / 65535
    h, k = np.asarray(truth["homography_blur_to_sharp"]), truth["radial_distortion"]
    c = np.asarray(truth["color_matrix_sharp_to_blur"])
    v_b = vignetting(*size, truth["vignetting"]["blur"])
    v_s = vignetting(*size, truth["vignetting"]["sharp"])
    # Exclude the moving objects, and clipped highlights where no linear model holds.
    saturated = ((blur.max(axis=2) > 0.98) | (sharp.max(axis=2) > 0.98)).astype(np.uint8)
    static = cv2.dilate(rendered.mask | saturated, np.ones((9, 9), np.uint8)) == 0
    border = 12
    static[:border] = static[-border:] = False
    static[:, :border] = static[:, -border:] = False

    def onto_b(image, homography, radial, interpolation=cv2.INTER_LANCZOS4):
        return cv2.remap(image, *sharp_coordinates(homography, size, radial=radial), interpolation,
                         borderMode=cv2.BORDER_REPLICATE)

    full_well = sim.config.full_well_e
    read = sim.config.read_noise_e / full_well
    var_b = blur / full_well + read**2
    ratio = (v_b / onto_b(v_s, h, k, cv2.INTER_LINEAR))[..., None]
    var_s = onto_b(sharp / full_well + read**2, h, k, cv2.INTER_LINEAR) * ratio**2
    expected = np.sqrt((var_b + np.einsum("ij,hwj->hwi", c**2, var_s))[static].mean())

    def residual_rms(homography, radial=k, falloff=ratio, region=static):
        predicted = np.einsum("ij,hwj->hwi", c, onto_b(sharp, homography, radial)) * falloff
        return float(np.sqrt(((blur - predicted)[region] ** 2).mean()))

    assert abs(k) * np.hypot(*size) / 2 > 0.5  # the lens term moves the corners visibly
    assert residual_rms(h) < 1.35 * expected  # interpolation of fine texture adds a little
    shifted = h.copy()
    shifted[0, 2] += 0.5
    assert residual_rms(shifted) > 1.5 * expected
    outer = static & (1 - v_b > 0.5 * truth["vignetting"]["blur"])  # beyond 0.7 of the half-diagonal
    assert residual_rms(h, radial=0.0, region=outer) > 1.5 * residual_rms(h, region=outer)
    assert residual_rms(h, falloff=1.0, region=outer) > 1.5 * residual_rms(h, region=outer)


@pytest.mark.parametrize("shift", [0.1, 0.5, 0.75])
def test_s_sees_no_ringing_beside_a_highlight(shift):
    """Resampled at a sub-pixel shift, a step from a highlight 5x the clip level down to a
    ground of 0.05 keeps every pixel within the two levels, the ground beyond the edge
    pixel exactly at 0.05; plain Lanczos takes the ground's first pixel below zero and
    lifts the next by more than 0.1. Smooth content is left as Lanczos made it."""
    radiance = np.full((24, 48), 0.05, np.float32)
    radiance[:, :24] = 5.0
    y, x = np.mgrid[0:24, 0:48].astype(np.float64)
    x += shift
    lanczos = cv2.remap(radiance, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LANCZOS4)
    seen = within_nearest_samples(lanczos, radiance, x, y)
    assert lanczos[:, 24].min() < 0 and lanczos[:, 25].max() > 0.1  # what the clamp is for
    assert seen.min() >= np.float32(0.05) and seen.max() <= 5.0
    np.testing.assert_array_equal(seen[4:-4, 24:-4], np.float32(0.05))
    np.testing.assert_array_equal(seen[4:-4, 4:23], 5.0)
    ramp = np.tile(np.linspace(0.1, 0.9, 48, dtype=np.float32), (24, 1))
    smooth = cv2.remap(ramp, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LANCZOS4)
    np.testing.assert_allclose(within_nearest_samples(smooth, ramp, x, y)[4:-4, 4:-4], smooth[4:-4, 4:-4], atol=1e-6)
    # The simulator's S camera, through the rig's homography with and without its lens term.
    sim = RigSimulator(SimulatorConfig(width=96, height=64, seed=3, misalignment=3.0))
    m = sim.margin
    canvas = np.full((64 + 2 * m, 96 + 2 * m, 3), 0.05, np.float32)
    canvas[:, : 48 + m] = 5.0
    for radial in (0.0, sim.rig.radial_distortion):
        view = sim._view_of_s(canvas, sim.pair_homography(0), radial)
        assert view.min() >= np.float32(0.05) and view.max() <= 5.0


def test_masks_cover_exactly_the_moving_objects():
    sim = RigSimulator(SimulatorConfig(width=160, height=120, seed=2, static_fraction=0.5))
    statics = movers = 0
    for i in range(8):
        pair = sim.render(i, aligned=True)
        if pair.truth["static"]:
            statics += 1
            assert not pair.mask.any()
            # Nothing moves: B and S differ only by noise everywhere.
            diff = np.abs(pair.blur.astype(float) - pair.sharp.astype(float)) / 65535
            assert diff.mean() < 0.02
        else:
            movers += 1
            inside = pair.mask > 0
            diff = np.abs(pair.blur.astype(float) - pair.sharp.astype(float)).mean(axis=2) / 65535
            assert diff[inside].mean() > 3 * diff[~inside].mean()
    assert statics and movers


def test_bayer_and_phase_options():
    config = SimulatorConfig(width=96, height=64, bayer=True, s_phase="start")
    assert config.s_window == (0.0, 0.05) and config.s_delay_us == 0.0
    pair = RigSimulator(config).render(0)
    assert pair.blur.shape == (64, 96) and pair.pixel_format == "BayerRG16"
    assert SimulatorConfig(s_phase="end").s_delay_us == pytest.approx(38000)
    with pytest.raises(ReloblurError, match="phase"):
        SimulatorConfig(s_phase="late")


def test_reloblur_layout_is_a_valid_dataset(sim_dataset):
    report = validate_dataset(ValidateOptions(sim_dataset / "dataset", workers=1, progress=False))
    assert report.problems == []
    pairs = discover_pairs(sim_dataset / "dataset", require_masks=True)
    assert len(pairs) == 12 and {p.split for p in pairs} == {"train", "test"}
    sidecar = json.loads(pairs[0].sidecar.read_text())
    assert sidecar["status"] == "done" and sidecar["truth"]["aligned"] is True
    blur = read_image(pairs[0].blur)
    assert blur.shape == (120, 160, 3) and blur.dtype == np.uint8


def test_varied_scenes_add_plain_walls_dark_and_clipped_scenes_and_leave_the_default_alone():
    """``varied_scenes``: some backgrounds are plain (a wall, a sky: almost no detail), some
    scenes dark, some with clipped highlights; without it, nothing changes (the config's
    record included, so older sessions resume)."""
    import cv2

    config = SimulatorConfig(width=160, height=120, seed=3, pairs_per_scene=1, varied_scenes=True)
    sim = RigSimulator(config)
    detail, dark, clipped = [], [], []
    for scene in range(24):
        background = sim.background(scene)
        grey = background.mean(axis=2)
        detail.append(float(np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean() / max(float(grey.mean()), 1e-6)))
        blur = sim.render(scene).blur
        dark.append(float(blur.mean()) / 65535 < 0.05)  # photographic scenes: 0.07 and up
        clipped.append(float((blur == 65535).mean()) > 0.01)
    plain = [d < 0.05 for d in detail]
    assert 2 <= sum(plain) <= 16 and sum(dark) >= 2 and sum(clipped) >= 2
    assert "varied_scenes" in config.to_dict()
    default = SimulatorConfig(width=160, height=120, seed=3, pairs_per_scene=1)
    assert "varied_scenes" not in default.to_dict()
    photographic = RigSimulator(default)
    assert min(float(np.abs(cv2.Laplacian(photographic.background(s).mean(axis=2), cv2.CV_32F)).mean()
                     / photographic.background(s).mean()) for s in range(24)) > 0.05
    assert not any((photographic.render(s).blur == 65535).mean() > 0.01 for s in range(24))
