"""Known-answer tests of colour correction, registration and the align command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import CAMERA_MATRIX, png_with_chunk
from reloblur.dataset.validate import ValidateOptions, validate_dataset
from reloblur.dataset_cli.app import app
from reloblur.imaging.imageio import encode_srgb, from_float, linear_to_srgb, read_image, srgb_to_linear, write_image
from reloblur.imaging.raw import BAYER_PATTERNS, decode_raw, demosaic, mosaic
from reloblur.postprocess.align import AlignmentError, AlignSettings, _require_overlap, align_pair, flicker_rows
from reloblur.postprocess.color import fit_color
from reloblur.postprocess.registration import (
    FeaturelessError,
    RegistrationError,
    corner_error,
    direct_homography,
    gray,
    initial_homography,
    refine_homography,
)
from reloblur.sim.simulate import SimulateOptions, simulate

runner = CliRunner()
W, H = 480, 320


def scene(seed: int = 0) -> np.ndarray:
    """A textured linear-light scene from a real photograph: (H, W, 3) float32."""
    from skimage import data

    photo = srgb_to_linear(data.astronaut()[40:360, 0:480].astype(np.float32) / 255)
    coffee = srgb_to_linear(cv2.resize(data.coffee(), (W, H)).astype(np.float32) / 255)
    rng = np.random.default_rng(seed)
    return np.clip(0.6 * photo + 0.4 * np.roll(coffee, int(rng.integers(0, 50)), axis=1), 0, 1) * 0.8


def known_homography() -> np.ndarray:
    rotation = np.eye(3)
    rotation[:2] = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), 0.4, 1.006)
    rotation[:2, 2] += [3.3, -2.1]
    rotation[2, :2] = [4e-6, -3e-6]
    return rotation


def make_sharp(blur_scene: np.ndarray, homography: np.ndarray, matrix: np.ndarray, rng) -> np.ndarray:
    """S as a camera behind a homography with its own colour response would record it."""
    warped = cv2.warpPerspective(blur_scene, homography, (W, H), flags=cv2.INTER_LANCZOS4,
                                 borderMode=cv2.BORDER_REFLECT)
    camera = np.einsum("ij,hwj->hwi", matrix, warped).astype(np.float32)
    return np.clip(camera + rng.normal(0, 0.002, camera.shape), 0, 1).astype(np.float32)


def test_recovers_known_homography_colour_matrix_and_gain():
    rng = np.random.default_rng(1)
    truth = known_homography()
    s_response = np.array([[0.9, 0.08, 0.02], [0.05, 0.92, 0.03], [0.02, 0.1, 0.88]]) * 0.8  # gain 0.8
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    sharp = make_sharp(scene(), truth, s_response, rng)
    result = align_pair(blur, sharp)
    # Stated tolerances: corners within 0.05 px, colour matrix within 0.01, gain within 0.5 %.
    assert corner_error(result.homography, truth, W, H).max() < 0.05
    assert result.radial == 0.0  # no lens term where the cameras' lenses agree
    assert result.flicker_rows is None  # a steady light
    np.testing.assert_allclose(result.color.matrix, np.linalg.inv(s_response), atol=0.01)
    assert result.color.gain == pytest.approx(np.linalg.inv(s_response).sum(1).mean(), rel=0.005)
    assert result.static_psnr > 35 and result.status == "ok"  # noise-limited
    # The crop lies inside the region S covers.
    assert 0 < result.crop.width <= W and 0 < result.crop.height <= H


def test_an_s_camera_of_another_size_and_aspect_ratio_is_registered_and_cropped_to_what_both_see(tmp_path):
    """B 480x320 (3:2); S a 16:9 sensor of 400x225 px that sees B's rows 25-295 (a
    different camera model behind the splitter): the command recovers the homography and
    crops B's grid to the band S covers."""
    rng = np.random.default_rng(3)
    scale, top = 400 / 480, 25.0
    truth = np.array([[scale, 0, 0], [0, scale, -top * scale], [0, 0, 1]]) @ known_homography()
    image = scene(2)
    sharp = cv2.warpPerspective(image, truth, (400, 225), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
    sharp = np.clip(sharp + rng.normal(0, 0.002, sharp.shape), 0, 1)
    blur = np.clip(image + rng.normal(0, 0.002, image.shape), 0, 1)
    session = tmp_path / "in"
    write_image(session / "00_blur.png", from_float(blur, np.uint16))  # 16-bit: linear light
    write_image(session / "00_sharp.png", from_float(sharp, np.uint16))
    result = runner.invoke(app, ["align", str(session), str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "00.align.json").read_text())
    estimated = np.array(record["homography_blur_to_sharp"])
    # Corners of the band S covers (B's rows 25-295 after the rotation: 35-285 inside it).
    band = np.array([[0, 35, 1], [W - 1, 35, 1], [W - 1, 285, 1], [0, 285, 1.0]]).T
    moved = estimated @ band, truth @ band
    error = np.hypot(*(moved[0][:2] / moved[0][2] - moved[1][:2] / moved[1][2]))
    assert error.max() < 0.1  # px on S's grid
    x, y, width, height = record["crop"]
    assert y >= 25 and y + height <= 296 and width > 0.9 * W  # the band, nearly all of B's width
    assert read_image(tmp_path / "out" / "00_sharp.png").shape[:2] == (height, width)


def test_16_bit_pngs_that_say_they_are_srgb_are_aligned_as_srgb(tmp_path):
    """An editor's 16-bit export carries an sRGB chunk: auto reads it as sRGB, so the pair
    gives what its 8-bit version gives (without the chunk it would be read as linear light
    and come out gamma-encoded twice)."""
    rng = np.random.default_rng(5)
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1)
    sharp = make_sharp(scene(), known_homography(), np.eye(3) * 0.9, rng)
    for name, image in (("blur", blur), ("sharp", sharp)):
        codes = encode_srgb(image)
        write_image(tmp_path / "8" / f"00_{name}.png", codes)
        write_image(tmp_path / "16" / f"00_{name}.png", codes.astype(np.uint16) * 257)
        data = (tmp_path / "16" / f"00_{name}.png").read_bytes()
        (tmp_path / "16" / f"00_{name}.png").write_bytes(png_with_chunk(data, b"sRGB", b"\x00"))
    for bits in ("8", "16"):
        result = runner.invoke(app, ["align", str(tmp_path / bits), str(tmp_path / f"out{bits}"), "--workers", "1"])
        assert result.exit_code == 0, result.output
    for name in ("blur", "sharp"):
        a = read_image(tmp_path / "out8" / f"00_{name}.png").astype(int)
        b = read_image(tmp_path / "out16" / f"00_{name}.png").astype(int)
        assert np.abs(a - b).max() <= 1, name


def test_an_s_recorded_with_another_transfer_is_flagged_naming_what_to_check():
    """S's camera with gamma on (B's off) relates to B by no colour matrix: the ratio S/B
    falls with level. Known answer: gamma 1/2.2 on S is an exponent of 1/2.2 - 1 = -0.55;
    S's sensor noise, under the curve, lifts the darkest levels' ratio and the fit finds
    -0.48 (within 0.1 is the tolerance), far past the flag's 0.25; the same pair in linear
    light is neither measured off nor flagged."""
    rng = np.random.default_rng(1)
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    sharp = make_sharp(scene(), known_homography(), np.eye(3) * 0.8, rng)
    plain = align_pair(blur, sharp)
    assert abs(plain.level.exponent) < 0.05 and plain.status == "ok"
    gamma = align_pair(blur, np.power(sharp, 1 / 2.2))
    assert gamma.level.exponent == pytest.approx(1 / 2.2 - 1, abs=0.1)
    assert [f for f in gamma.flags if "ratio changes with level" in f and "gamma" in f]


def test_a_16_bit_s_holding_srgb_codes_beside_an_8_bit_b_is_flagged_not_silently_aligned(tmp_path):
    """B an 8-bit PNG (read as sRGB), S a 16-bit PNG of sRGB codes without an sRGB chunk
    (read as linear light, as OpenCV and camera software write 16-bit): the pair is
    aligned, but flagged, its sidecar saying by how much the ratio S/B changes with level,
    and the mask made from it says so too."""
    rng = np.random.default_rng(5)
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1)
    sharp = make_sharp(scene(), known_homography(), np.eye(3) * 0.9, rng)
    write_image(tmp_path / "in" / "00_blur.png", encode_srgb(blur))
    write_image(tmp_path / "in" / "00_sharp.png", encode_srgb(sharp).astype(np.uint16) * 257)
    result = runner.invoke(app, ["align", str(tmp_path / "in"), str(tmp_path / "out"), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["flagged"] == ["00"]
    record = json.loads((tmp_path / "out" / "00.align.json").read_text())
    assert record["qa_status"] == "flagged" and record["qa"]["level_exponent"] < -0.3
    assert any("16-bit without an sRGB chunk as linear" in f for f in record["flags"])
    # The mask made from it carries the flag: a reviewer sees why it may be wrong.
    masks = runner.invoke(app, ["mask", "generate", str(tmp_path / "out"), "--workers", "1", "--json"])
    assert masks.exit_code == 0, masks.output
    mask_flags = json.loads((tmp_path / "masks" / "00.json").read_text())["diagnostics"]["flags"]
    assert any(f.startswith("align flagged the pair: S/B brightness ratio changes with level") for f in mask_flags)


def test_out_the_same_as_in_is_refused_and_nothing_is_written(tmp_path):
    rng = np.random.default_rng(6)
    write_image(tmp_path / "in" / "00_blur.png", encode_srgb(scene()))
    write_image(tmp_path / "in" / "00_sharp.png", encode_srgb(make_sharp(scene(), known_homography(), np.eye(3), rng)))
    before = {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()}
    result = runner.invoke(app, ["align", str(tmp_path / "in"), str(tmp_path / "in" / ".." / "in")])
    assert result.exit_code == 1 and "is IN" in result.output, result.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "in").iterdir()} == before


def distorted_pair(k: float, rng, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """B and an S whose camera sees B's points moved radially by ``k`` (see
    ``reloblur.imaging.lens.radial_coordinates``) before the known homography, with corners 15 % darker."""
    from reloblur.imaging.lens import undo_radial
    from reloblur.postprocess.geometry import sharp_coordinates

    image = scene(seed)
    # S(p) = scene(q) where H(D_k(q)) = p.
    qx, qy = undo_radial(*sharp_coordinates(np.linalg.inv(known_homography()), (W, H)), k, W, H)
    sharp = cv2.remap(image, qx.astype(np.float32), qy.astype(np.float32), cv2.INTER_LANCZOS4,
                      borderMode=cv2.BORDER_REFLECT)
    yy, xx = np.mgrid[0:H, 0:W]
    falloff = 1 - 0.15 * ((xx - (W - 1) / 2) ** 2 + (yy - (H - 1) / 2) ** 2) / (((W - 1) / 2) ** 2 + ((H - 1) / 2) ** 2)
    sharp = np.clip(sharp * falloff[..., None] + rng.normal(0, 0.002, sharp.shape), 0, 1).astype(np.float32)
    blur = np.clip(image + rng.normal(0, 0.002, image.shape), 0, 1).astype(np.float32)
    return blur, sharp


def test_recovers_a_lens_distortion_difference_under_a_vignetting_difference():
    """k = 0.015 moves the corners 4.3 px: the radial term is found and the warp lands
    within 0.1 px everywhere; the crop holds only pixels S covers."""
    from reloblur.postprocess.geometry import sharp_coordinates

    truth, k = known_homography(), 0.015
    blur, sharp = distorted_pair(k, np.random.default_rng(4))
    result = align_pair(blur, sharp)
    assert result.radial == pytest.approx(k, rel=0.05)
    found = np.stack(sharp_coordinates(result.homography, (W, H), radial=result.radial))
    expected = np.stack(sharp_coordinates(truth, (W, H), radial=k))
    error = np.hypot(*(found - expected))[8:-8, 8:-8]
    assert np.median(error) < 0.03 and error.max() < 0.1
    # A homography alone is off by pixels at the corners: the term is needed.
    plain = np.stack(sharp_coordinates(truth, (W, H)))
    assert np.hypot(*(plain - expected)).max() > 3
    rows, cols = result.crop.slices()
    crop_s = found[:, rows, cols]
    assert crop_s.min() >= 0 and crop_s[0].max() <= W - 1 and crop_s[1].max() <= H - 1
    assert result.crop.width * result.crop.height > 0.8 * W * H


def _calibrated_pairs(tmp_path: Path, k: float, rng) -> tuple[Path, Path]:
    """Two :func:`distorted_pair` pairs written as 16-bit PNGs, and ``align calibrate``'s file
    made from them."""
    pairs = tmp_path / "pairs"
    for index in range(2):
        blur, sharp = distorted_pair(k, rng, seed=index)
        write_image(pairs / f"{index:02d}_blur.png", from_float(blur, np.uint16))
        write_image(pairs / f"{index:02d}_sharp.png", from_float(sharp, np.uint16))
    calibration = tmp_path / "rig.json"
    result = runner.invoke(app, ["align", "calibrate", str(pairs), "--out", str(calibration), "--workers", "1"])
    assert result.exit_code == 0, result.output
    return pairs, calibration


def test_calibration_keeps_the_lens_term_and_align_applies_it(tmp_path):
    """``align calibrate`` stores the rigs' radial term; ``align --calibration`` applies it
    (recorded in each sidecar) instead of fitting its own."""
    k = 0.012
    pairs, calibration = _calibrated_pairs(tmp_path, k, np.random.default_rng(5))
    fitted = json.loads(calibration.read_text())["radial_distortion"]
    assert fitted == pytest.approx(k, rel=0.05)
    out = tmp_path / "aligned"
    result = runner.invoke(app, ["align", str(pairs), str(out), "--calibration", str(calibration), "--workers", "1"])
    assert result.exit_code == 0, result.output
    for sidecar in sorted(out.rglob("*.align.json")):
        record = json.loads(sidecar.read_text())
        assert record["radial_distortion"] == fitted
        assert record["qa"]["static_psnr"] > 35


def test_a_calibration_kept_as_given_is_not_refined_and_the_colour_is_still_fitted():
    """The rig's calibration 0.8 px off the scene's true homography (a mount's drift):
    refined, the pair's own geometry is recovered within 0.05 px; with refine off, the
    calibration is kept to the bit and says so, and the colour fit still runs on it (its
    gain within 2 % of the truth at that misregistration)."""
    rng = np.random.default_rng(7)
    truth = known_homography()
    drifted = truth.copy()
    drifted[0, 2] += 0.8
    s_response = np.diag([0.95, 0.8, 0.7])
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    sharp = make_sharp(scene(), truth, s_response, rng)
    refined = align_pair(blur, sharp, prior_homography=drifted)
    assert corner_error(refined.homography, truth, W, H).max() < 0.05
    kept = align_pair(blur, sharp, prior_homography=drifted, settings=AlignSettings(refine=False))
    assert kept.registration.method == "calibration (kept as given: not refined)"
    assert kept.registration.iterations == 0
    np.testing.assert_array_equal(kept.homography, drifted)
    assert kept.color.gain == pytest.approx(np.linalg.inv(s_response).sum(1).mean(), rel=0.02)


def test_keeping_a_calibration_without_one_is_an_error_naming_it(tmp_path):
    image = scene()
    with pytest.raises(AlignmentError, match="needs a calibration"):
        align_pair(image, image.copy(), settings=AlignSettings(refine=False))
    pairs = tmp_path / "pairs"
    write_image(pairs / "00_blur.png", from_float(image, np.uint16))
    write_image(pairs / "00_sharp.png", from_float(image, np.uint16))
    result = runner.invoke(app, ["align", str(pairs), str(tmp_path / "out"), "--no-refine"])
    assert result.exit_code == 1
    assert "--no-refine" in result.output and "--calibration" in result.output
    assert not (tmp_path / "out").exists()


def test_align_no_refine_writes_the_calibrations_homography(tmp_path):
    """``align --calibration F --no-refine``: every sidecar holds the calibration's own
    homography, unrefined; without --no-refine the pairs refine it."""
    pairs, calibration = _calibrated_pairs(tmp_path, 0.0, np.random.default_rng(6))
    rig = json.loads(calibration.read_text())["homography_blur_to_sharp"]
    for flags, refined in (([], True), (["--no-refine"], False)):
        out = tmp_path / f"aligned-{refined}"
        result = runner.invoke(app, ["align", str(pairs), str(out), "--calibration", str(calibration),
                                     "--workers", "1", *flags])
        assert result.exit_code == 0, result.output
        for sidecar in sorted(out.rglob("*.align.json")):
            record = json.loads(sidecar.read_text())
            assert (record["homography_blur_to_sharp"] == rig) is not refined
            assert (record["qa"]["registration"]["iterations"] == 0) is not refined


def test_identity_pair_gives_identity():
    rng = np.random.default_rng(2)
    image = scene()
    blur = np.clip(image + rng.normal(0, 0.002, image.shape), 0, 1).astype(np.float32)
    sharp = np.clip(image + rng.normal(0, 0.002, image.shape), 0, 1).astype(np.float32)
    result = align_pair(blur, sharp)
    assert corner_error(result.homography, np.eye(3), W, H).max() < 0.02
    np.testing.assert_allclose(result.color.matrix, np.eye(3), atol=0.01)


def test_large_blurred_region_does_not_bias_the_fit():
    rng = np.random.default_rng(3)
    truth = known_homography()
    image = scene()
    blur = image.copy()
    # A third of B is a moving object smeared horizontally: it differs from S entirely.
    from skimage import data

    patch = srgb_to_linear(cv2.resize(data.chelsea(), (200, 220)).astype(np.float32) / 255)
    blur[50:270, 120:320] = cv2.blur(patch, (41, 1))
    blur = np.clip(blur + rng.normal(0, 0.002, blur.shape), 0, 1).astype(np.float32)
    sharp = make_sharp(image, truth, np.eye(3) * 1.1, rng)
    result = align_pair(blur, sharp)
    assert corner_error(result.homography, truth, W, H).max() < 0.1
    np.testing.assert_allclose(result.color.matrix, np.eye(3) / 1.1, atol=0.01)
    assert result.motion_mask[100:220, 160:280].mean() > 0.9  # the object is found as moving
    assert result.flicker_rows is None  # a large object brighter than its ground is no flicker


def test_featureless_pair_is_a_clear_error():
    flat = np.full((H, W, 3), 0.3, np.float32) + np.random.default_rng(0).normal(0, 0.001, (H, W, 3)).astype(np.float32)
    with pytest.raises(AlignmentError, match="featureless.*--calibration"):
        align_pair(flat, flat.copy())


def test_a_pair_with_nothing_to_fit_colour_on_is_an_alignment_error_naming_the_colour_fit():
    """Red blown out over the whole of both frames: the geometry registers, but no pixel is
    left for the colour fit. align_pair says so as an AlignmentError, as it documents."""
    blown = scene().copy()
    blown[..., 0] = 1.0
    with pytest.raises(AlignmentError, match="colour fit failed: only 0 usable static pixels"):
        align_pair(blown, blown.copy())


def test_a_featureless_pair_is_aligned_by_the_rigs_calibration_and_its_colour_fitted():
    """A plain wall gives registration nothing to hold on to; with the rig's calibrated
    homography the pair is still aligned: the calibration is kept as it is (and says so),
    and the colour difference (S 10 % brighter in red, 5 % darker in blue) is corrected."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    wall = (0.25 + 0.05 * xx / W + 0.03 * yy / H)[:, :, None] * np.array([1.0, 0.9, 0.8], np.float32)
    calibration = np.array([[1.0, 0.001, 1.5], [-0.001, 1.0, -0.8], [0, 0, 1.0]])
    sharp = cv2.warpPerspective(wall * np.array([1.1, 1.0, 0.95], np.float32), calibration, (W, H),
                                flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    blur, sharp = (np.clip(x + rng.normal(0, 0.002, x.shape), 0, 1).astype(np.float32) for x in (wall, sharp))
    result = align_pair(blur, sharp, prior_homography=calibration)
    assert result.registration.method == "calibration (featureless scene: not refined)"
    np.testing.assert_array_equal(result.homography, calibration)
    # One colour cannot pin a 3x3 matrix down; what it must do is map S's wall onto B's.
    rows, cols = result.crop.slices()
    corrected, target = result.sharp_aligned[rows, cols], blur[rows, cols]
    np.testing.assert_allclose(corrected.mean(axis=(0, 1)) / target.mean(axis=(0, 1)), 1.0, atol=0.01)
    assert np.abs(corrected - target).mean() < 0.004
    assert np.abs(sharp[rows, cols].mean(axis=(0, 1)) / target.mean(axis=(0, 1)) - 1).max() > 0.04  # it was off


def test_direct_registration_recovers_a_known_homography_from_the_identity():
    rng = np.random.default_rng(6)
    truth = known_homography()  # corners move 2-5 px
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    sharp = make_sharp(scene(), truth, np.eye(3) * 0.9, rng)
    found = direct_homography(gray(blur), gray(sharp))
    # Stated tolerance: corners within 0.05 px (no static mask, no colour fit: the scene is static and grey-gained).
    assert corner_error(found.homography, truth, W, H).max() < 0.05
    assert found.method == "direct from the identity" and found.converged


def jpeg_pair(scene_linear: np.ndarray, truth: np.ndarray, quality: int) -> tuple[np.ndarray, np.ndarray]:
    """B and S (behind ``truth``, 10 % darker, twice the noise) as 8-bit sRGB JPEGs decode."""
    rng = np.random.default_rng(0)

    def through_jpeg(linear: np.ndarray, sigma: float) -> np.ndarray:
        noisy = np.clip(linear + rng.normal(0, sigma, linear.shape), 0, 1).astype(np.float32)
        ok, data = cv2.imencode(".jpg", encode_srgb(noisy)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        return srgb_to_linear(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255)

    warped = cv2.warpPerspective(scene_linear, truth, (W, H), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
    return through_jpeg(scene_linear, 0.002), through_jpeg(warped * 0.9, 0.004)


def test_a_pair_whose_features_do_not_match_is_registered_from_the_identity():
    """A fundus photograph's fine vessels through JPEG at quality 90 (as pairs made from
    video are): texture enough to register on, but too few distinctive SIFT matches. Such
    a pair used to fail; it is now registered from the identity, as accurately as
    features would have."""
    from skimage import data

    truth = known_homography()
    zoomed = cv2.resize(data.retina(), (int(W * 2.4), int(H * 2.4)), interpolation=cv2.INTER_CUBIC)
    top, left = int(H * 0.7), int(W * 0.7)
    retina = srgb_to_linear(zoomed[top:top + H, left:left + W].astype(np.float32) / 255)
    blur, sharp = jpeg_pair(retina, truth, 90)
    with pytest.raises(FeaturelessError, match="distinctive feature matches"):
        initial_homography(gray(blur), gray(sharp))
    result = align_pair(blur, sharp)
    assert result.initial.method.startswith("direct from the identity (only")
    assert corner_error(result.homography, truth, W, H).max() < 0.1  # align's accuracy goal
    assert result.status == "ok" and not result.flags


def test_registration_from_the_identity_converges_or_refuses_never_settles_on_a_wrong_homography(monkeypatch):
    """Where no features match, how far apart the views may be: a photograph shifted 20 px
    (4 % of the width) is registered; 64 px is refused, naming both attempts."""
    import reloblur.postprocess.align as align_module

    def no_matches(*_args, **_kwargs):
        raise FeaturelessError("only 3 distinctive feature matches between B and S (need 15)")

    monkeypatch.setattr(align_module, "initial_homography", no_matches)
    rng = np.random.default_rng(7)
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    for shift, reachable in ((20.0, True), (64.0, False)):
        truth = np.array([[1, 0, shift], [0, 1, -shift / 2], [0, 0, 1.0]])
        sharp = make_sharp(scene(), truth, np.eye(3) * 0.9, rng)
        if reachable:
            result = align_pair(blur, sharp)
            assert result.initial.method == "direct from the identity (only 3 distinctive feature matches between B and S (need 15))"
            assert corner_error(result.homography, truth, W, H).max() < 0.05
        else:
            with pytest.raises(AlignmentError, match="only 3 distinctive.*from the identity.*did not converge"):
                align_pair(blur, sharp)


def test_a_repetitive_pattern_whose_features_match_wrongly_is_registered_from_the_identity():
    """Tiles repeat every 24 px: SIFT's matches agree on a homography hundreds of pixels
    off (aliases of one another), from which the refinement diverges. Align starts again
    from the identity and says so."""
    rng = np.random.default_rng(4)
    truth = known_homography()
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    tiles = (0.3 + 0.12 * np.sin(2 * np.pi * xx / 24) * np.sin(2 * np.pi * yy / 24)
             + 0.06 * np.sin(2 * np.pi * (xx + 2 * yy) / 48))[:, :, None] * np.array([1.0, 0.9, 0.8], np.float32)
    blur = np.clip(tiles + rng.normal(0, 0.002, tiles.shape), 0, 1).astype(np.float32)
    sharp = make_sharp(tiles.astype(np.float32), truth, np.eye(3) * 0.9, rng)
    matched = initial_homography(gray(blur), gray(sharp))
    assert corner_error(matched.homography, truth, W, H).min() > 50  # the premise: features mislead
    result = align_pair(blur, sharp)
    assert result.initial.method.startswith("direct from the identity (refining")
    assert corner_error(result.homography, truth, W, H).max() < 0.05


def mover_over_plain_ground() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B, S (behind :func:`known_homography`) and that homography: a ground of one edge and
    a few soft spots, which SIFT finds next to nothing on, crossed by a striped box that
    moved 60 px during B's exposure (blurred there, sharp in S): it holds most of the
    frame's strong gradients, and none of them agree between B and S."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    ground = 0.12 + 0.05 * xx / W + 0.25 * (yy < 0.4 * H)
    for cx, cy in ((60, 50), (240, 50), (420, 50), (120, 220), (380, 240)):
        ground += 0.12 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 14.0**2))
    ground = ground[:, :, None] * np.array([0.9, 1.0, 0.8], np.float32)

    def frame(offset: float) -> np.ndarray:
        box = ((np.abs(xx - 220 - offset) < 34) & (yy > 70) & (yy < 300))[:, :, None]
        stripes = 0.1 + 0.8 * (np.sin(2 * np.pi * (yy + 0.7 * (xx - offset)) / 9) > 0)
        return np.where(box, stripes[:, :, None] * np.array([1.0, 0.6, 0.3], np.float32), ground)

    blur_scene = np.mean([frame(offset) for offset in np.linspace(-30, 30, 31)], axis=0).astype(np.float32)
    truth = known_homography()
    blur = np.clip(blur_scene + rng.normal(0, 0.004, blur_scene.shape), 0, 1).astype(np.float32)
    return blur, make_sharp(frame(0.0).astype(np.float32), truth, np.eye(3) * 0.9, rng), truth


def test_a_mover_over_plain_ground_does_not_drag_the_registration_from_the_identity():
    """Under Huber's loss the mover's gradients pull the fit from the identity off (the
    pair was refused); where that fit does not converge, it runs again under the biweight,
    whose weights stop the mover pulling once it lies outside the ground's residuals, and
    align registers the pair (as it did four of 195 pairs made as
    from video, ``benchmarks/videogen.py``). Stated tolerance: corners within 0.15 px (the
    ground's few soft spots and one edge hold less than a photograph's texture)."""
    blur, sharp, truth = mover_over_plain_ground()
    with pytest.raises(FeaturelessError):
        initial_homography(gray(blur), gray(sharp))
    identity = np.eye(3)
    dragged = refine_homography(gray(blur), gray(sharp), identity)
    assert not dragged.converged or corner_error(dragged.homography, truth, W, H).max() > 5  # the premise
    result = align_pair(blur, sharp)
    assert result.initial.method.startswith("direct from the identity, outliers rejected (too few features")
    assert corner_error(result.homography, truth, W, H).max() < 0.15
    assert result.status == "ok" and not result.flags


@pytest.mark.parametrize("homography, reason", [
    (np.array([[-0.59, -0.588, 297.3], [-0.339, -0.338, 170.9], [-0.002, -0.002, 1.0]]), "behind|folds|overlapping"),
    (np.array([[-1.0, 0.0, W - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "folds"),  # a mirror image
    (np.array([[1.0, 0.0, 2000.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "overlapping in only 0x"),
], ids=["singular (what a repetitive pattern refined to on one CPU)", "mirrored", "off S"])
def test_a_refined_homography_that_cannot_be_the_rigs_is_refused(homography, reason):
    _require_overlap(np.array([[1.0, 0.02, 3.0], [-0.01, 1.0, -2.0], [1e-6, 0.0, 1.0]]), (W, H), (W, H))
    with pytest.raises(RegistrationError, match=reason):
        _require_overlap(homography, (W, H), (W, H))


def test_robust_colour_fit_ignores_outliers():
    rng = np.random.default_rng(4)
    source = rng.random((100, 100, 3)).astype(np.float32) * 0.7  # no target clips
    matrix = np.array([[1.1, 0.05, 0.0], [0.02, 0.95, 0.04], [0.0, 0.1, 1.2]])
    target = np.einsum("ij,hwj->hwi", matrix, source).astype(np.float32)
    target[:30] = rng.random((30, 100, 3))  # 30 % garbage (a moving object)
    fit = fit_color(source, target, mode="matrix")
    np.testing.assert_allclose(fit.matrix, matrix, atol=0.01)
    gains = fit_color(source, source * np.array([1.2, 1.0, 0.8], np.float32), mode="gain")
    np.testing.assert_allclose(np.diag(gains.matrix), [1.2, 1.0, 0.8], atol=1e-3)


def test_colour_fit_is_not_shrunk_by_a_noisy_source():
    """Regression dilution: least squares with a noisy regressor shrinks the matrix towards
    zero. With S's noise (0.05) comparable to the scene's contrast, the plain fit loses
    over 10 % of the gain; smoothing both sides first recovers the matrix within 2 %."""
    rng = np.random.default_rng(5)
    clean = np.stack([cv2.GaussianBlur(rng.normal(0, 1, (200, 300)), (0, 0), 6) for _ in range(3)], -1)
    clean = (0.3 + 0.1 * clean / clean.std()).astype(np.float32)
    matrix = np.array([[1.1, 0.05, 0.0], [0.02, 0.95, 0.04], [0.0, 0.1, 1.2]])
    target = np.einsum("ij,hwj->hwi", matrix, clean) + rng.normal(0, 0.01, clean.shape)
    source = clean + rng.normal(0, 0.05, clean.shape)
    plain = fit_color(source.astype(np.float32), target.astype(np.float32), denoise_sigma=0)
    denoised = fit_color(source.astype(np.float32), target.astype(np.float32))
    assert np.abs(plain.matrix - matrix).max() > 0.1  # the failure is real at this noise
    np.testing.assert_allclose(denoised.matrix, matrix, atol=0.02 * 1.2)


@pytest.mark.parametrize("pattern", BAYER_PATTERNS)
def test_demosaic_inverts_mosaic_for_every_pattern(pattern):
    smooth = cv2.GaussianBlur((np.random.default_rng(0).random((64, 64, 3)) * 60000).astype(np.uint16), (0, 0), 3)
    restored = demosaic(mosaic(smooth, pattern), pattern).astype(float)
    assert np.abs(restored[4:-4, 4:-4] - smooth[4:-4, 4:-4]).mean() < 200  # of 65535


def write_dng(path: Path, rgb: np.ndarray) -> None:
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import (
        CalibrationIlluminant,
        CFAPattern,
        DNGVersion,
        Orientation,
        PhotometricInterpretation,
        PreviewColorSpace,
    )

    h, w = rgb.shape[:2]
    raw = from_float(mosaic(rgb, "RG"), np.uint16)
    tags = DNGTags()
    for tag, value in [
        (Tag.ImageWidth, w), (Tag.ImageLength, h), (Tag.TileWidth, w), (Tag.TileLength, h),
        (Tag.Orientation, Orientation.Horizontal),
        (Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array),
        (Tag.SamplesPerPixel, 1), (Tag.BitsPerSample, 16), (Tag.CFARepeatPatternDim, [2, 2]),
        (Tag.CFAPattern, CFAPattern.RGGB), (Tag.BlackLevel, 0), (Tag.WhiteLevel, 65535),
        (Tag.ColorMatrix1, [[1, 1], [0, 1], [0, 1], [0, 1], [1, 1], [0, 1], [0, 1], [0, 1], [1, 1]]),
        (Tag.CalibrationIlluminant1, CalibrationIlluminant.D65), (Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]]),
        (Tag.Make, "reloblur"), (Tag.Model, "test"), (Tag.DNGVersion, DNGVersion.V1_4),
        (Tag.DNGBackwardVersion, DNGVersion.V1_2), (Tag.PreviewColorSpace, PreviewColorSpace.sRGB),
    ]:
        tags.set(tag, value)
    converter = RAW2DNG()
    converter.options(tags, path=str(path.parent) + "/", compress=False)
    converter.convert(raw, filename=path.stem)


def test_raw_dng_pair_decodes_linearly_and_aligns(tmp_path):
    rng = np.random.default_rng(5)
    truth = known_homography()
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1)
    sharp = make_sharp(scene(), truth, np.eye(3) * 0.9, rng)
    folder = tmp_path / "raw" / "scene1"
    folder.mkdir(parents=True)
    write_dng(folder / "00_blur.dng", blur)
    write_dng(folder / "00_sharp.dng", sharp)
    decoded = decode_raw(folder / "00_blur.dng")
    assert decoded.shape == (H, W, 3)
    # Linear, unscaled decoding: a patch keeps its value in every channel (demosaic aside);
    # its red (0.40) and blue (0.25) differ, so a swapped CFA would fail.
    patch = (slice(100, 140), slice(100, 140))
    np.testing.assert_allclose(decoded[patch].mean(axis=(0, 1)), blur[patch].mean(axis=(0, 1)), atol=0.01)
    result = runner.invoke(app, ["align", str(tmp_path / "raw"), str(tmp_path / "out"), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "out" / "scene1" / "00.align.json").read_text())
    assert corner_error(np.array(sidecar["homography_blur_to_sharp"]), truth, W, H).max() < 0.15
    assert sidecar["gain"] == pytest.approx(1 / 0.9, rel=0.02)


def simulated_session(tmp_path: Path, pairs: int, **kw) -> Path:
    out = tmp_path / "session"
    simulate(SimulateOptions(out=out, pairs=pairs, width=320, height=240, workers=1, progress=False, **kw))
    return out


def test_session_becomes_a_valid_reloblur_dataset_with_accurate_transforms(tmp_path):
    from reloblur.formats.session import Session

    session_dir = simulated_session(tmp_path, 4, pairs_per_scene=2)
    out = tmp_path / "aligned"
    result = runner.invoke(app, ["align", str(session_dir), str(out), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["aligned"] == 4 and not report["failures"]
    assert validate_dataset(ValidateOptions(out, workers=1, progress=False)).problems == []
    session = Session(session_dir)
    for record in session.pairs():
        scene = record.scene
        index = f"{record.pair % 2:02d}"
        sidecar = json.loads((out / "train" / scene / "00" / f"{index}.align.json").read_text())
        assert sidecar["source"]["session_pair"] == record.pair
        truth = session.truth(record)
        error = corner_error(np.array(sidecar["homography_blur_to_sharp"]),
                             np.array(truth["homography_blur_to_sharp"]), 320, 240,
                             radial=sidecar["radial_distortion"], truth_radial=truth["radial_distortion"])
        assert error.max() < 0.25
        # Colour: on the static region the fitted correction explains B at least as well as
        # the ground-truth one (a matrix is poorly determined along colour directions the
        # scene lacks; that is harmless, and an element-wise comparison would punish it).
        blur = session.read_frame(record, "B").astype(np.float32) / 65535
        sharp = session.read_frame(record, "S").astype(np.float32) / 65535
        warped = cv2.warpPerspective(sharp, np.array(truth["homography_blur_to_sharp"]), (320, 240),
                                     flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP)
        static = cv2.dilate(session.truth_mask(record), np.ones((9, 9), np.uint8)) == 0
        static[:8] = static[-8:] = False
        static[:, :8] = static[:, -8:] = False
        static &= (blur.max(axis=2) < 0.98) & (warped.max(axis=2) < 0.98)

        def residual(matrix, blur=blur, warped=warped, static=static):
            return np.sqrt(((blur - np.einsum("ij,hwj->hwi", np.array(matrix), warped))[static] ** 2).mean())

        assert residual(sidecar["color_matrix"]) < 1.05 * residual(truth["color_matrix_sharp_to_blur"])
        blur_png = read_image(out / "train" / scene / "00" / f"{index}_blur.png")
        x, y, w, h = sidecar["crop"]
        assert blur_png.shape == (h, w, 3)
        # B is never resampled: the output is the input frame, cropped and gamma-encoded.
        frame = session.read_frame(record, "B").astype(np.float32) / 65535
        expected = from_float(linear_to_srgb(frame[y : y + h, x : x + w]), np.uint8)
        assert np.abs(blur_png.astype(int) - expected.astype(int)).max() <= 1
    again = runner.invoke(app, ["align", str(session_dir), str(out), "--workers", "1", "--json"])
    assert json.loads(again.stdout)["resumed"] == 4


def banded(image: np.ndarray, swing: float, periods: float = 3.3, phase: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with its rows banded as a light flickering across a rolling readout bands
    them (``swing``: the relative amplitude), and the bands ``(H,)``."""
    bands = 1 + swing * np.sin(2 * np.pi * periods * np.arange(image.shape[0]) / image.shape[0] + phase)
    return (image * bands[:, None, None]).astype(np.float32), bands


@pytest.mark.parametrize("swing", [0.03, 0.08])
def test_a_flickering_light_that_banded_s_rows_is_flattened_before_colour_and_registration(swing):
    rng = np.random.default_rng(11)
    truth = known_homography()
    s_response = np.array([[0.9, 0.08, 0.02], [0.05, 0.92, 0.03], [0.02, 0.1, 0.88]]) * 0.8
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    warped = cv2.warpPerspective(scene(), truth, (W, H), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
    # The bands lie along S's own rows, before its camera records them.
    light, bands = banded(warped, swing)
    camera = np.einsum("ij,hwj->hwi", s_response, light)
    sharp = np.clip(camera + rng.normal(0, 0.002, camera.shape), 0, 1).astype(np.float32)
    result = align_pair(blur, sharp)
    assert result.flicker_rows is not None and result.flicker_rows.shape == (H,)
    # Stated tolerances: the profile undoes the bands within 1.5 % (up to a constant, which
    # the colour matrix takes; the first and last rows lie beyond the outer bands' centres),
    # corners within 0.03 px, the colour matrix within 0.025 (0.04 px and 0.056 at a 3 %
    # swing without the flattening, 0.066 px and 0.097 at 8 %; 0.018 px and 0.006 unbanded).
    flattened = result.flicker_rows * bands
    assert np.abs(flattened / flattened.mean() - 1).max() < 0.015
    assert corner_error(result.homography, truth, W, H).max() < 0.03
    np.testing.assert_allclose(result.color.matrix * flattened.mean(), np.linalg.inv(s_response), atol=0.025)
    assert result.static_psnr > 38.8  # 39.3 unbanded; 38.1 and 34.8 without the flattening


def test_the_sidecar_records_the_flicker_rows_align_flattened_s_by(tmp_path):
    rng = np.random.default_rng(12)
    folder = tmp_path / "pairs"
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1)
    sharp, bands = banded(np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1), 0.06)
    write_image(folder / "a_blur.png", from_float(linear_to_srgb(blur)))
    write_image(folder / "a_sharp.png", from_float(linear_to_srgb(np.clip(sharp, 0, 1))))
    write_image(folder / "b_blur.png", from_float(linear_to_srgb(blur)))
    write_image(folder / "b_sharp.png", from_float(linear_to_srgb(blur)))
    result = runner.invoke(app, ["align", str(folder), str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out" / "a.align.json").read_text())["flicker_rows"]
    assert len(rows) == H
    flattened = np.array(rows) * bands
    assert np.abs(flattened / flattened.mean() - 1).max() < 0.015
    assert json.loads((tmp_path / "out" / "b.align.json").read_text())["flicker_rows"] is None


def test_the_flicker_profile_is_the_bands_alone_beside_a_radial_vignetting_difference():
    # A vignetting difference varies along y too; a radial falloff is pinned by its
    # variation along x, so the profile holds the bands and not the falloff.
    rng = np.random.default_rng(17)
    blur = rng.uniform(0.1, 0.8, (359, 538, 3)).astype(np.float32)
    bands = 1 + 0.06 * np.sin(np.arange(359) / 359 * 2 * np.pi * 3.3 + 0.5)
    yy, xx = np.mgrid[0:359, 0:538]
    falloff = 1 - 0.2 * ((xx - 268.5) ** 2 + (yy - 179) ** 2) / (268.5**2 + 179**2)
    sharp = (blur / bands[:, None, None] * falloff[..., None] * rng.normal(1, 0.01, blur.shape)).astype(np.float32)
    rows = flicker_rows(blur, sharp, np.eye(3), np.ones((359, 538), bool))
    flattened = rows / bands
    assert np.abs(flattened / flattened.mean() - 1).max() < 0.006  # the falloff spans 6 % along the centre column


def test_pixels_whose_camera_output_clipped_are_no_evidence_of_flicker():
    # Through a camera matrix undone, pixels whose output clipped are off in every channel
    # by what the rows show (here a sky's rows too bright, a floor's too dark): bands both
    # ways, but no flicker.
    rng = np.random.default_rng(16)
    blur = rng.uniform(0.1, 0.8, (240, 320, 3)).astype(np.float32)
    sharp = (blur * rng.normal(1, 0.01, blur.shape)).astype(np.float32)
    clipped = np.zeros((240, 320), bool)
    for start, off in zip(range(0, 240, 40), (1.1, 0.9, 1.1, 0.9, 1.1, 0.9)):
        clipped[start + 5:start + 35, 40:300] = True
        sharp[start + 5:start + 35, 40:300] *= off
    everywhere = np.ones((240, 320), bool)
    assert flicker_rows(blur, sharp, np.eye(3), everywhere) is not None
    assert flicker_rows(blur, sharp, np.eye(3), everywhere, clipped=(None, clipped)) is None
    assert flicker_rows(sharp, blur, np.eye(3), everywhere, clipped=(clipped, None)) is None


# S's camera over B's, in the sensors' space: gains and crosstalk
S_RESPONSE = np.array([[0.9, 0.08, 0.02], [0.05, 0.92, 0.03], [0.02, 0.1, 0.88]]) * 1.1


def _through_isp(sensor: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """A camera's RGB output with its colour matrix on (noise, then the matrix, then the
    clip), undone as ``align`` reads it, and where the output clipped."""
    recorded = np.clip(np.einsum("ij,hwj->hwi", CAMERA_MATRIX, sensor + rng.normal(0, 0.002, sensor.shape)), 0, 1)
    undone = np.einsum("ij,hwj->hwi", np.linalg.inv(CAMERA_MATRIX), recorded).astype(np.float32)
    return undone, (recorded >= 1, recorded <= 0)


def _undone_pair(overexposed: float) -> tuple[np.ndarray, np.ndarray, tuple, tuple, np.ndarray]:
    """B and S of the test scene ``overexposed`` times over, both through :data:`CAMERA_MATRIX` and
    undone, S through :data:`S_RESPONSE` and the known homography: B, S, their output clip
    flags, and the homography."""
    rng = np.random.default_rng(21)
    truth = known_homography()
    bright = scene() * overexposed
    blur, b_clipped = _through_isp(bright, rng)
    warped = cv2.warpPerspective(bright, truth, (W, H), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
    sharp, s_clipped = _through_isp(np.einsum("ij,hwj->hwi", S_RESPONSE, warped), rng)
    return blur, sharp, b_clipped, s_clipped, truth


@pytest.mark.parametrize("overexposed, tolerance, corners_px", [(1.6, 0.01, 0.1), (6.0, 0.05, 0.5)])
def test_a_colour_fit_through_undone_camera_matrices_leaves_out_what_their_outputs_clipped(
        overexposed, tolerance, corners_px):
    # Both cameras' matrices were on; their outputs clipped where the exposure pushed a
    # channel past full scale (and where the negative terms pushed one below black).
    # Undone, those pixels are off in every channel. Told where, align fits the cameras'
    # relation on the rest: within 0.01 where half the frame clipped, within 0.05 from
    # the few hundred pixels left where 97 % did; fitted on them too, 0.12 and 0.28 off.
    blur, sharp, b_clipped, s_clipped, truth = _undone_pair(overexposed)
    share = np.mean([np.any(np.concatenate(flags, axis=2), axis=2).mean() for flags in (b_clipped, s_clipped)])
    assert 0.4 < share < 0.6 if overexposed < 2 else share > 0.9
    result = align_pair(blur, sharp, output_clipped=(b_clipped, s_clipped))
    assert corner_error(result.homography, truth, W, H).max() < corners_px
    relation = np.linalg.inv(S_RESPONSE)
    np.testing.assert_allclose(result.color.matrix, relation, atol=tolerance)
    told_nothing = align_pair(blur, sharp)
    assert np.abs(told_nothing.color.matrix - relation).max() > 0.1  # what it fixes


def test_a_frame_whose_outputs_clipped_nearly_everywhere_fits_gains_and_says_so():
    # Ten times over-exposed: under 100 pixels are left where neither output clipped. The
    # fit takes a gain per channel on the clipped ones (their bounds are all there is), and
    # the pair is flagged, its colours uncertain (here each gain within 0.3 of the truth).
    blur, sharp, b_clipped, s_clipped, _ = _undone_pair(10.0)
    result = align_pair(blur, sharp, output_clipped=(b_clipped, s_clipped))
    assert result.color.mode == "gain" and result.status == "flagged"
    assert any(flag.startswith("colour:") and "uncertain" in flag for flag in result.flags)
    np.testing.assert_allclose(np.diag(result.color.matrix), np.diag(np.linalg.inv(S_RESPONSE)), atol=0.3)
    assert not any(flag.startswith("colour:") for flag in align_pair(blur, sharp).flags)  # told nothing, nothing to say


def test_a_calibrated_gain_fitted_on_clipped_outputs_says_so():
    # With a calibration's matrix only one gain is fitted; where the outputs left under 100
    # unclipped pixels it too rests on bounds, and the pair says so as a matrix fit does.
    # With half the frame clipped the gain is fitted on the rest and nothing is said.
    settings = AlignSettings(color_mode="calibrated")
    relation = np.linalg.inv(S_RESPONSE)
    for overexposed, expect_flag in ((10.0, True), (1.6, False)):
        blur, sharp, b_clipped, s_clipped, _ = _undone_pair(overexposed)
        result = align_pair(blur, sharp, settings=settings, prior_color=relation,
                            output_clipped=(b_clipped, s_clipped))
        flagged = [flag for flag in result.flags if flag.startswith("colour:")]
        assert result.color.on_clipped is expect_flag
        assert bool(flagged) is expect_flag
        assert all("brightness gain" in flag and "uncertain" in flag for flag in flagged)
        if not expect_flag:
            np.testing.assert_allclose(result.color.matrix, relation, atol=0.01)


MIRROR_AXES = {"horizontal": 1, "vertical": 0}


def reflection(mirror: str) -> np.ndarray:
    """The map between S's pixels and its mirror image's (W x H)."""
    return {"horizontal": np.array([[-1.0, 0, W - 1], [0, 1, 0], [0, 0, 1]]),
            "vertical": np.array([[1.0, 0, 0], [0, -1, H - 1], [0, 0, 1]])}[mirror]


@pytest.mark.parametrize("mirror", ["horizontal", "vertical"])
def test_s_mirrored_by_a_beam_splitter_is_found_aligned_and_its_reflection_recorded(mirror):
    rng = np.random.default_rng(13)
    truth = known_homography()
    s_response = np.array([[0.9, 0.08, 0.02], [0.05, 0.92, 0.03], [0.02, 0.1, 0.88]]) * 0.8
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    sharp = make_sharp(scene(), truth, s_response, rng)
    mirrored = np.ascontiguousarray(np.flip(sharp, MIRROR_AXES[mirror]))
    with pytest.raises(AlignmentError, match="registration failed|no consistent homography"):
        align_pair(blur, mirrored, settings=AlignSettings(mirror="none"))
    found = align_pair(blur, mirrored)  # "auto": S as it is fails, its mirror image aligns
    said = align_pair(blur, mirrored, settings=AlignSettings(mirror=mirror))
    # The calibration's homography holds the rig's reflection: it decides, with no search.
    calibrated = align_pair(blur, mirrored, prior_homography=said.homography)
    for result in (found, said, calibrated):
        assert result.mirror == mirror
        # Stated tolerances, as for an unmirrored pair: corners within 0.05 px, the colour
        # matrix within 0.01; the homography maps B onto the mirrored S as given.
        assert corner_error(result.homography, reflection(mirror) @ truth, W, H).max() < 0.05
        np.testing.assert_allclose(result.color.matrix, np.linalg.inv(s_response), atol=0.01)
        assert result.static_psnr > 35 and result.status == "ok"
    np.testing.assert_allclose(found.sharp_aligned, said.sharp_aligned)


def test_a_mirrored_s_keeps_its_flicker_rows_in_its_own_row_order():
    rng = np.random.default_rng(14)
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1).astype(np.float32)
    light, bands = banded(scene(), 0.06)
    mirrored = np.ascontiguousarray(np.flip(np.clip(light + rng.normal(0, 0.002, light.shape), 0, 1), 0))
    result = align_pair(blur, mirrored.astype(np.float32), settings=AlignSettings(mirror="vertical"))
    assert result.flicker_rows is not None
    flattened = result.flicker_rows * bands[::-1]  # S as given holds the bands upside down
    assert np.abs(flattened / flattened.mean() - 1).max() < 0.015


def test_align_records_a_mirrored_s_and_refuses_an_unknown_mirror(tmp_path):
    rng = np.random.default_rng(15)
    folder = tmp_path / "pairs"
    blur = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1)
    sharp = np.clip(scene() + rng.normal(0, 0.002, (H, W, 3)), 0, 1)[:, ::-1]
    write_image(folder / "a_blur.png", from_float(linear_to_srgb(blur)))
    write_image(folder / "a_sharp.png", from_float(linear_to_srgb(sharp)))
    result = runner.invoke(app, ["align", str(folder), str(tmp_path / "sideways"), "--mirror-sharp", "sideways"])
    assert result.exit_code == 1 and "sideways" in result.output and "horizontal" in result.output
    assert not (tmp_path / "sideways").exists()
    result = runner.invoke(app, ["align", str(folder), str(tmp_path / "out"), "--no-crop", "--workers", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "out" / "a.align.json").read_text())
    assert record["mirror_sharp"] == "horizontal" and record["qa_status"] == "ok"
    assert np.linalg.det(np.array(record["homography_blur_to_sharp"])[:2, :2]) < 0  # it holds the reflection
    aligned = srgb_to_linear(read_image(tmp_path / "out" / "a_sharp.png").astype(np.float32) / 255)
    assert np.abs(aligned - blur)[20:-20, 20:-20].mean() < 0.01  # S back the right way round, on B


def test_no_crop_resize_and_report(tmp_path):
    session_dir = simulated_session(tmp_path, 2)
    out = tmp_path / "aligned"
    result = runner.invoke(app, ["align", str(session_dir), str(out), "--no-crop", "--resize", "160x120",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    valid = sorted(out.rglob("*.valid.png"))
    assert len(valid) == 2 and read_image(valid[0]).shape == (120, 160)
    assert read_image(sorted(out.rglob("*_sharp.png"))[0]).shape == (120, 160, 3)
    result = runner.invoke(app, ["align", "report", str(out)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "aligned-report" / "index.html").read_text()
    assert page.count("class='card") == 2 and "static PSNR" in page
    for src in __import__("re").findall(r"src='([^']+)'", page):
        assert (tmp_path / "aligned-report" / src).exists()


def test_corrupted_and_unpaired_files_are_reported_and_the_batch_continues(tmp_path):
    rng = np.random.default_rng(6)
    folder = tmp_path / "pairs"
    for index in ("a", "b", "c"):
        blur = np.clip(scene(ord(index)) + rng.normal(0, 0.002, (H, W, 3)), 0, 1)
        write_image(folder / f"{index}_blur.png", from_float(linear_to_srgb(blur)))
        write_image(folder / f"{index}_sharp.png", from_float(linear_to_srgb(blur)))
    data = (folder / "b_sharp.png").read_bytes()
    (folder / "b_sharp.png").write_bytes(data[:1000])
    write_image(folder / "d_blur.png", np.zeros((8, 8, 3), np.uint8))
    result = runner.invoke(app, ["align", str(folder), str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 2
    assert "b_sharp.png" in result.output and "truncated" in result.output
    assert "d_blur.png" in result.output and "partner is missing" in result.output
    assert (tmp_path / "out" / "a_sharp.png").exists() and (tmp_path / "out" / "c.align.json").exists()
    assert not (tmp_path / "out" / "b_sharp.png").exists()


def test_calibration_from_a_static_session(tmp_path):
    from reloblur.formats.session import Session

    session_dir = simulated_session(tmp_path, 3, static_fraction=1.0, seed=9)
    calibration = tmp_path / "rig.json"
    result = runner.invoke(app, ["align", "calibrate", str(session_dir), "--out", str(calibration), "--workers", "1"])
    assert result.exit_code == 0, result.output
    fitted = json.loads(calibration.read_text())
    rig = Session(session_dir).manifest.simulation["rig_truth"]
    # Per-pair drift is 0.25 px (sd): the median of 3 pairs is within 0.6 px of the rig.
    assert corner_error(np.array(fitted["homography_blur_to_sharp"]), np.array(rig["homography_blur_to_sharp"]),
                        320, 240, radial=fitted["radial_distortion"], truth_radial=rig["radial_distortion"]).max() < 0.6
    out = tmp_path / "aligned"
    result = runner.invoke(app, ["align", str(session_dir), str(out), "--calibration", str(calibration),
                                 "--color-mode", "calibrated", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads(sorted(out.rglob("*.align.json"))[0].read_text())
    assert sidecar["qa"]["registration"]["initial"] == "calibration" and sidecar["color_mode"] == "calibrated"
    # Its homography is in pixels of 320x240 images: pairs of another size are refused by
    # name (they were aligned from it, as if binning or a region of interest changed nothing).
    smaller = tmp_path / "smaller"
    simulate(SimulateOptions(out=smaller, pairs=1, width=256, height=192, workers=1, progress=False))
    result = runner.invoke(app, ["align", str(smaller), str(tmp_path / "x"), "--calibration", str(calibration),
                                 "--workers", "1"])
    assert result.exit_code == 2
    assert "is 256x192, but the calibration" in result.output and "made on 320x240 images" in result.output


def test_sigkill_mid_batch_then_rerun_is_byte_identical(tmp_path):
    session_dir = simulated_session(tmp_path, 8, pairs_per_scene=4)
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["align", str(session_dir), str(reference), "--workers", "1"]).exit_code == 0

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "reloblur", "align", str(session_dir), str(interrupted),
                                "--workers", "1", "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(interrupted.rglob("*.align.json")):
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = len(list(interrupted.rglob("*.align.json")))
    assert 0 < done_at_kill < 8
    # Whatever the kill left half-written (here made certain) is swept when the next run starts.
    stale = next(interrupted.rglob("*.align.json")).parent / ".tmp-02_sharp.png.k1ll3d"
    stale.write_bytes(b"half a PNG")
    assert runner.invoke(app, ["align", str(session_dir), str(interrupted), "--workers", "1"]).exit_code == 0
    assert not stale.exists()

    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a, b = files(reference), files(interrupted)
    assert sorted(a) == sorted(b)  # no partial or temporary files left
    assert all(a[k] == b[k] for k in a)


def test_s_white_flags_reach_one_pixel_beyond_the_clipped_pixels():
    """S's white flags on B's grid cover what the bilinear resampling beside them reads (the
    clipped pixels and 1 px around), and no more: a wider band hid the blur trail beside a
    blown-out moving object from the mask step. Known answer on an identity warp."""
    from reloblur.imaging.clipping import decode_clip_flags
    from reloblur.postprocess.align import _clip_flags

    rng = np.random.default_rng(3)
    blur = np.clip(0.5 + rng.normal(0, 0.01, (60, 90, 3)), 0, 1).astype(np.float32)
    sharp = blur.copy()
    sharp[20:30, 40:60] = 1.0  # blown out in every channel
    flags = decode_clip_flags(_clip_flags(blur, sharp, np.eye(3), (90, 60)))["s_high"].all(axis=2)
    expected = np.zeros((60, 90), bool)
    expected[19:31, 39:61] = True
    assert np.array_equal(flags, expected)


def test_clipped_inputs_leave_a_clip_map_that_follows_s_onto_bs_grid(tmp_path):
    """S's clipping must survive its colour correction: align finds it on the input and
    writes NN.clip.png, warped onto B's grid, for mask generation."""
    from reloblur.imaging.clipping import S_HIGH, decode_clip_flags

    rng = np.random.default_rng(5)
    truth = known_homography()
    bright = scene()
    bright[100:180, 150:300] = 0.99  # a window S's higher gain clips
    blur = np.clip(bright * 0.9 + rng.normal(0, 0.002, bright.shape), 0, 1).astype(np.float32)
    sharp = np.clip(make_sharp(bright, truth, np.eye(3) * 1.3, rng), 0, 1)
    folder = tmp_path / "in"
    write_image(folder / "00_blur.png", from_float(linear_to_srgb(blur), np.uint16))
    write_image(folder / "00_sharp.png", from_float(linear_to_srgb(sharp), np.uint16))
    result = runner.invoke(app, ["align", str(folder), str(tmp_path / "out"), "--workers", "1", "--no-crop"])
    assert result.exit_code == 0, result.output
    flags = decode_clip_flags(read_image(tmp_path / "out" / "00.clip.png"))
    assert flags["s_high"][120:160, 170:280].mean() > 0.95  # the window, on B's grid
    assert flags["s_high"][250:300, 20:100].mean() == 0  # elsewhere nothing
    assert not flags["b_high"].any() and S_HIGH == 4
    # The generated mask ignores the clipped window (nothing moved): it is not filled in as
    # a moving object. Beside its bottom edge, the frame's strongest, S is blurrier after
    # two resamplings (4-5 noise sigmas in this nearly noiseless scene, with the mask
    # step of 18e5f60 too, which then explained that strip away as a colour difference;
    # the per-tile edge model leaves 3 rows of it: 0.8 % of this box, measured 2026-11-30).
    result = runner.invoke(app, ["mask", "generate", str(tmp_path / "out"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    mask = read_image(tmp_path / "masks" / "00.png")
    assert not mask[100:180, 150:300].any()
    assert mask[95:185, 145:305].mean() < 255 * 0.015
    # Elsewhere this nearly noiseless scene (0.2 % noise) shows S's double resampling in
    # dark texture as a few small regions; measured 2.3 % on 2026-11-29.
    assert mask.mean() < 255 * 0.03


def test_untrusted_session_names_and_missing_frames_are_reported_not_followed(tmp_path):
    """A scene label like ../../escaped must not become a path; a pair whose frame is gone
    is reported with its reason, never dropped in silence."""
    import os

    session_dir = simulated_session(tmp_path, 3, pairs_per_scene=3, static_fraction=0.0, seed=4)
    log = session_dir / "pairs.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    lines[0]["scene"] = "../../../escaped"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    os.remove(session_dir / lines[1]["frames"]["S"]["file"])
    out = tmp_path / "work" / "out"
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    result = runner.invoke(app, ["align", str(session_dir), str(out), "--workers", "1", "--json"])
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    reasons = {f["item"]: f["reason"] for f in report["failures"]}
    assert any("is not a folder name" in r for r in reasons.values())
    assert any("frame file missing" in r for r in reasons.values())
    assert report["aligned"] == 1
    created = [p for p in tmp_path.rglob("*") if p.is_file() and p not in before]
    assert created and all(out in p.parents for p in created)  # nothing written outside OUT


def test_a_second_session_is_refused_appended_or_overwritten_never_silently_merged(tmp_path):
    """Two sessions both label their scene s01: aligning the second into the first's OUT
    would replace pairs 00-01. Refused (exit 1, nothing written) unless --append numbers
    it on after them (and resumes as such) or --overwrite replaces them."""
    first = simulated_session(tmp_path / "a", 2, pairs_per_scene=2, seed=1)
    second = simulated_session(tmp_path / "c", 2, pairs_per_scene=2, seed=2)
    out = tmp_path / "dataset"
    folder = out / "train" / "s01" / "00"

    def align(session: Path, *flags: str):
        return runner.invoke(app, ["align", str(session), str(out), "--workers", "1", "--json", *flags])

    def snapshot() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    assert align(first).exit_code == 0
    made_by_first = snapshot()
    refused = align(second)
    assert refused.exit_code == 1
    assert "--append" in refused.output and str(folder / "00") in refused.output.replace("\n", "")
    assert snapshot() == made_by_first  # nothing written, nothing replaced
    assert align(second, "--append", "--overwrite").exit_code == 1

    appended = align(second, "--append")
    assert appended.exit_code == 0, appended.output
    assert json.loads(appended.stdout)["aligned"] == 2
    after = snapshot()
    assert all(after[p] == data for p, data in made_by_first.items())  # the first session's pairs untouched
    sources = {i: json.loads((folder / f"{i}.align.json").read_text())["source"]["blur"] for i in ("02", "03")}
    assert all(str(second) in source for source in sources.values())
    again = json.loads(align(second, "--append").stdout)  # appending resumes: same slots, no 04
    assert again["resumed"] == 2 and again["aligned"] == 0 and not (folder / "04_blur.png").exists()
    assert json.loads(align(first).stdout)["resumed"] == 2  # a session's own pairs are not collisions

    (folder / "00.align.json").write_text('{"status": "do')  # a truncated sidecar: cannot tell
    assert align(first).exit_code == 1
    replaced = align(second, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert str(second) in json.loads((folder / "00.align.json").read_text())["source"]["blur"]


def test_whole_command_reports_its_stages_and_passes_unchanged_b_through(tmp_path):
    """`align --json` says where the time went; an 8-bit sRGB B that no crop or resize
    touches is written as the very bytes it was read as; every PNG compression gives the
    same pixels."""
    tree = tmp_path / "tree"
    session = simulated_session(tmp_path, 1, pairs_per_scene=1, static_fraction=0.0, seed=8)
    assert runner.invoke(app, ["align", str(session), str(tree), "--workers", "1"]).exit_code == 0
    pair = next(tree.rglob("00_blur.png")).parent
    outputs = {}
    for compression in ("fast", "small", "none"):
        out = tmp_path / f"out-{compression}"
        result = runner.invoke(app, ["align", str(pair), str(out), "--workers", "1", "--no-crop", "--json",
                                     "--png-compression", compression])
        assert result.exit_code == 0, result.output
        stages = json.loads(result.stdout)["stage_seconds"]
        assert set(stages) == {"read", "decode", "register", "warp", "encode", "write"}
        assert all(v >= 0 for v in stages.values()) and stages["register"] > 0
        assert (out / "00_blur.png").read_bytes() == (pair / "00_blur.png").read_bytes()
        outputs[compression] = read_image(out / "00_sharp.png")
    assert all(np.array_equal(outputs["fast"], other) for other in outputs.values())
    sizes = {c: (tmp_path / f"out-{c}" / "00_sharp.png").stat().st_size for c in outputs}
    assert sizes["none"] > sizes["fast"] and sizes["none"] > sizes["small"]
    bad = runner.invoke(app, ["align", str(pair), str(tmp_path / "x"), "--png-compression", "max"])
    assert bad.exit_code == 1 and "max" in bad.output


def test_a_cropped_8_bit_b_is_its_input_codes_cut_to_the_crop(tmp_path):
    """B is never resampled: cropped, an 8-bit sRGB B is written as its own codes cut to
    the crop box, without the sRGB round trip (which is exact for every 8-bit code, so the
    pixels are those the round trip gave)."""
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(encode_srgb(srgb_to_linear(codes)), codes)
    session = simulated_session(tmp_path, 1, pairs_per_scene=1, static_fraction=0.0, seed=8)
    tree = tmp_path / "tree"
    assert runner.invoke(app, ["align", str(session), str(tree), "--workers", "1"]).exit_code == 0
    aligned = next(tree.rglob("00_blur.png")).parent
    pair = tmp_path / "pair"
    pair.mkdir()
    blur = read_image(aligned / "00_blur.png")
    h, w = blur.shape[:2]
    shift = np.array([[1.0, 0.0, 9.0], [0.0, 1.0, -7.0], [0.0, 0.0, 1.0]])  # S's view moved: a crop follows
    sharp = cv2.warpPerspective(read_image(aligned / "00_sharp.png"), shift, (w, h), borderMode=cv2.BORDER_REFLECT)
    write_image(pair / "00_blur.png", blur)
    write_image(pair / "00_sharp.png", sharp)
    out = tmp_path / "out"
    assert runner.invoke(app, ["align", str(pair), str(out), "--workers", "1"]).exit_code == 0
    x, y, width, height = json.loads((out / "00.align.json").read_text())["crop"]
    assert (width, height) != (w, h)  # the crop cut B
    np.testing.assert_array_equal(read_image(out / "00_blur.png"), blur[y:y + height, x:x + width])


def test_calibration_says_pass_warn_or_fail_against_the_documented_limits(tmp_path):
    """The corner spread is judged against the 0.5 px a rigid rig holds (and 1 px beyond
    which it moved), and a capture with moving objects is called out as no calibration
    scene: figures next to a threshold come with a verdict."""
    from reloblur.pipeline.calibrate import verdict

    assert verdict(0.3, 0.0)[0] == "pass"
    assert verdict(0.7, 0.0)[0] == "warn" and "0.70 px > 0.5 px" in verdict(0.7, 0.0)[1][0]
    assert verdict(1.4, 0.0)[0] == "fail"
    assert verdict(0.3, 0.1)[0] == "warn" and "static scene" in verdict(0.3, 0.1)[1][1]

    moving = simulated_session(tmp_path, 3, static_fraction=0.0, seed=9)
    result = runner.invoke(app, ["align", "calibrate", str(moving), "--out", str(tmp_path / "rig.json"),
                                 "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verdict"] != "pass" and report["moving_fraction"] > 0.02
    assert any("static scene" in reason for reason in report["reasons"])
    human = runner.invoke(app, ["align", "calibrate", str(moving), "--out", str(tmp_path / "rig2.json"),
                                "--workers", "1"])
    assert report["verdict"] in human.output and "static scene" in human.output.replace("\n", " ")
    # A static capture is not called moving: align's own motion mask, grown to keep its fits
    # safe, put 10 % of these pairs' pixels in motion.
    still = tmp_path / "still"
    simulate(SimulateOptions(out=still, pairs=3, width=640, height=480, static_fraction=1.0, seed=9, workers=1,
                             progress=False))
    result = runner.invoke(app, ["align", "calibrate", str(still), "--out", str(tmp_path / "rig3.json"),
                                 "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["moving_fraction"] < 0.005 and not any("static scene" in r for r in report["reasons"])


@pytest.mark.parametrize("pattern, layout", [("RG", "RGGB"), ("GR", "GRBG"), ("GB", "GBRG"), ("BG", "BGGR")])
def test_demosaic_puts_each_colour_where_the_pattern_names_it(pattern, layout):
    """A frame laid out by hand (not by our own mosaic): a uniform colour with R, G and B
    at 1000, 2000 and 3000 on the sites the GenICam name says (``BayerRG``: R at the top
    left, then G; next row G, B). Demosaiced, every interior pixel is that colour; an R/B
    swap or a pattern off by one site would not be."""
    value = {"R": 1000, "G": 2000, "B": 3000}
    raw = np.empty((16, 16), np.uint16)
    for index, colour in enumerate(layout):
        dy, dx = divmod(index, 2)
        raw[dy::2, dx::2] = value[colour]
    rgb = demosaic(raw, pattern).astype(int)
    np.testing.assert_array_equal(rgb[4:-4, 4:-4], np.broadcast_to([1000, 2000, 3000], (8, 8, 3)))


def test_outputs_are_the_same_bytes_for_any_worker_count_and_options_do_what_they_say(tmp_path):
    """`--workers` changes nothing but speed; `--bit-depth 16` writes 16-bit PNGs;
    `--resize` with either filter writes that size; `--transfer linear` reads 8-bit files
    as linear light."""
    session = simulated_session(tmp_path, 4, pairs_per_scene=4, static_fraction=0.0, seed=13)

    def align(out: str, *flags: str) -> Path:
        result = runner.invoke(app, ["align", str(session), str(tmp_path / out), *flags])
        assert result.exit_code == 0, result.output
        return tmp_path / out

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    one, two = align("one", "--workers", "1"), align("two", "--workers", "2")
    assert files(one) == files(two) and len(files(one)) >= 12
    deep = align("deep", "--workers", "2", "--bit-depth", "16")
    assert read_image(next(deep.rglob("00_sharp.png"))).dtype == np.uint16
    for resize_filter in ("area", "bicubic"):
        small = align(f"small-{resize_filter}", "--workers", "2", "--resize", "160x120",
                      "--resize-filter", resize_filter)
        assert read_image(next(small.rglob("00_blur.png"))).shape == (120, 160, 3)
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("00_blur.png", "00_sharp.png"):
        (tree / name).write_bytes(next(one.rglob(name)).read_bytes())
    srgb = runner.invoke(app, ["align", str(tree), str(tmp_path / "t-srgb"), "--workers", "1"])
    linear = runner.invoke(app, ["align", str(tree), str(tmp_path / "t-linear"), "--workers", "1", "--transfer", "linear"])
    assert srgb.exit_code == 0 and linear.exit_code == 0, srgb.output + linear.output
    # Read as linear light, 8-bit codes come out sRGB-encoded, so brighter than they went in.
    means = [read_image(tmp_path / t / "00_blur.png").mean() for t in ("t-srgb", "t-linear")]
    assert means[1] > means[0] + 10


def test_qa_thresholds_flag_the_pairs_beyond_them_and_say_why(tmp_path):
    """The documented QA limits as options: with the defaults a simulated session is clean;
    with a limit tighter than what the pairs need, each pair is flagged (still written, exit
    0) with the figure and the limit in its sidecar."""
    simulate(SimulateOptions(out=tmp_path / "s", pairs=2, width=320, height=224, workers=1, progress=False))
    clean = runner.invoke(app, ["align", str(tmp_path / "s"), str(tmp_path / "a"), "--workers", "1", "--json"])
    assert clean.exit_code == 0, clean.output
    assert json.loads(clean.stdout)["flagged"] == []
    for option, value, words in (("--max-shift", "0.001", "shift"), ("--min-static-psnr", "99", "static PSNR")):
        out = tmp_path / f"flagged{option}"
        result = runner.invoke(app, ["align", str(tmp_path / "s"), str(out), "--workers", "1", "--json", option, value])
        assert result.exit_code == 0, result.output
        assert len(json.loads(result.stdout)["flagged"]) == 2
        for sidecar in out.rglob("*.align.json"):
            flags = json.loads(sidecar.read_text())["flags"]
            assert any(words in flag and value.rstrip("0").rstrip(".") in flag for flag in flags), flags


def test_known_blur_masks_keep_a_large_mover_out_of_every_fit(tmp_path):
    """A moving object over 60 % of B (another photograph, smeared, other colours): fitted
    over the whole frame, the geometry and the colour follow it (corner error of tens of
    pixels); with its mask given (`--masks`), align recovers the known homography within
    0.1 px and the colour matrix within 0.01."""
    from skimage import data

    from reloblur.formats.align_record import AlignRecord

    rng = np.random.default_rng(5)
    truth, image = known_homography(), scene()
    blur = image.copy()
    mover = int(W * 0.6)
    photo = srgb_to_linear(cv2.resize(data.rocket(), (mover, H)).astype(np.float32) / 255)
    blur[:, :mover] = cv2.blur(photo, (31, 1))[:, :, ::-1]
    blur = np.clip(blur + rng.normal(0, 0.002, blur.shape), 0, 1).astype(np.float32)
    matrix = np.diag([1.1, 0.95, 1.05])
    sharp = make_sharp(image, truth, matrix, rng)
    tree, masks = tmp_path / "tree", tmp_path / "masks"
    write_image(tree / "00_blur.png", from_float(blur, np.uint16))  # 16-bit files are linear light
    write_image(tree / "00_sharp.png", from_float(sharp, np.uint16))
    known = np.zeros((H, W), np.uint8)
    known[:, : mover + 20] = 255
    write_image(masks / "00.png", known)

    def aligned(out: str, *flags: str) -> AlignRecord:
        result = runner.invoke(app, ["align", str(tree), str(tmp_path / out), "--no-crop", "--workers", "1", *flags])
        assert result.exit_code in (0, 2), result.output  # 2: the unmasked fit is flagged by QA
        return AlignRecord.read(tmp_path / out / "00.align.json")

    blind = aligned("blind")
    assert corner_error(np.array(blind.homography_blur_to_sharp), truth, W, H).max() > 5
    told = aligned("told", "--masks", str(masks))
    assert corner_error(np.array(told.homography_blur_to_sharp), truth, W, H).max() < 0.1
    np.testing.assert_allclose(np.array(told.color_matrix), np.linalg.inv(matrix), atol=0.01)


def test_align_takes_the_colourful_colour_mode_from_the_command_line(tmp_path):
    """``--color-mode colourful`` reaches the fit: the sidecar records it, and on the
    simulator's pair its map differs from the default matrix fit's, by under 0.05 (0.002:
    both near the rig's truth there; `docs/alignment.md`, step 3, for where they part)."""
    session_dir = simulated_session(tmp_path, 1, seed=4)
    matrices = {}
    for mode in ("matrix", "colourful"):
        out = tmp_path / mode
        result = runner.invoke(app, ["align", str(session_dir), str(out), "--color-mode", mode, "--workers", "1"])
        assert result.exit_code == 0, result.output
        sidecar = json.loads(sorted(out.rglob("*.align.json"))[0].read_text())
        assert sidecar["color_mode"] == mode
        matrices[mode] = np.array(sidecar["color_matrix"])
    assert 0 < np.abs(matrices["colourful"] - matrices["matrix"]).max() < 0.05
