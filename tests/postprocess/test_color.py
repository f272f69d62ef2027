"""Known-answer tests of the colour fit's noise model: a scene that varies in fewer colour
directions than three leaves the others to S's noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import CAMERA_MATRIX
from reloblur.imaging.imageio import encode_srgb, srgb_to_linear
from reloblur.postprocess.color import ColorFitError, fit_color, level_dependence
from reloblur.robust import fit_pixel_noise

H, W = 240, 320


def _texture(rng: np.random.Generator, scale: float) -> np.ndarray:
    """``(H, W)`` smooth texture in [0, 1] with edges: what a photograph has, not white noise."""
    field = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), scale)
    field = (field - field.min()) / (field.max() - field.min())
    field[:, W // 3 : W // 3 + 40] += 0.2  # a bar: two sharp edges
    return np.clip(field, 0, 1)


@pytest.mark.parametrize("max_samples", [100_000, 20_000])
def test_pixel_noise_recovers_a_known_poisson_gaussian_model_under_texture(max_samples):
    """Shot and read variance coefficients of two channels on a textured scene (most
    pixels between 0.2 and 0.55), recovered within 10 % as the sigma they give at the
    scene's levels (within 4 % over four seeds)."""
    rng = np.random.default_rng(3)
    scene = np.dstack([0.05 + 0.6 * _texture(rng, 4.0) for _ in range(2)])
    shot, read = np.array([2e-4, 5e-5]), np.array([1e-5, 4e-6])
    noisy = scene + rng.normal(0, 1, scene.shape) * np.sqrt(shot * scene + read)
    model = fit_pixel_noise(noisy, max_samples=max_samples)
    for level in (0.2, 0.35, 0.5):
        np.testing.assert_allclose(model.sigma_at(level), np.sqrt(shot * level + read), rtol=0.1)


def test_pixel_noise_of_images_too_small_to_measure_is_zero_not_an_error():
    rng = np.random.default_rng(0)
    for shape in [(2, 2, 3), (3, 3, 3), (3, 40, 3), (5, 5)]:
        model = fit_pixel_noise(rng.random(shape))
        assert np.isfinite(model.shot).all() and np.isfinite(model.read).all()
        assert (model.shot >= 0).all() and (model.read >= 0).all()


def test_a_grey_scene_pins_the_white_balance_not_the_crosstalk():
    """A grey wall with texture (every pixel R = G = B) seen by two cameras whose relation is
    per-channel gains. The scene spans one colour direction: in the other two, S's
    noise is all there is. A plain least-squares fit maps that noise onto B's and
    desaturates (off-diagonal entries near 0.35); given S's noise, the fit follows the
    gains there: every entry within 0.05 (0.03 at most over eight seeds)."""
    rng = np.random.default_rng(5)
    grey = 0.05 + 0.5 * _texture(rng, 6.0)
    scene = np.dstack([grey] * 3)
    gains = np.array([1.15, 1.0, 0.85])
    blur = scene * gains + rng.normal(0, 0.003, scene.shape)
    sigma_s = 0.02
    sharp = scene + rng.normal(0, sigma_s, scene.shape)
    fit = fit_color(sharp.astype(np.float32), blur.astype(np.float32), mode="matrix",
                    source_noise=fit_pixel_noise(sharp))
    np.testing.assert_allclose(fit.matrix, np.diag(gains), atol=0.05)
    plain = fit_color(sharp.astype(np.float32), blur.astype(np.float32), mode="matrix")
    assert np.abs(plain.matrix - np.diag(gains)).max() > 0.2  # what it fixes


def test_a_colourful_fit_of_a_grey_scene_is_the_gains_with_or_without_a_noise_model():
    """The grey wall above, fitted with ``mode="colourful"``: no pixel stands out of the
    noise, so every one is put on the dominant colour and the colour directions follow the
    gains, given S's noise model or not: every entry within 0.01 (0.001 at most over eight
    seeds)."""
    rng = np.random.default_rng(5)
    scene = np.dstack([0.05 + 0.5 * _texture(rng, 6.0)] * 3)
    gains = np.array([1.15, 1.0, 0.85])
    blur = scene * gains + rng.normal(0, 0.003, scene.shape)
    sharp = scene + rng.normal(0, 0.02, scene.shape)
    for noise in (fit_pixel_noise(sharp), None):
        fit = fit_color(sharp.astype(np.float32), blur.astype(np.float32), mode="colourful", source_noise=noise)
        np.testing.assert_allclose(fit.matrix, np.diag(gains), atol=0.01)
        assert fit.colour_samples < 0.01 * fit.samples


def _jpeg_coded(linear: np.ndarray, quality: int = 90) -> np.ndarray:
    """``linear`` as a camera's in-camera JPEG gives it back: sRGB codes, coded, decoded."""
    _, encoded = cv2.imencode(".jpg", encode_srgb(np.clip(linear, 0, 1).astype(np.float32)),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    return srgb_to_linear(cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255)


def test_a_colourful_fit_keeps_a_jpeg_coded_grey_scene_s_few_coloured_pixels_colour():
    """A near-grey textured wall with two small static coloured objects (1 % of the frame),
    both cameras' frames coded as JPEG q90, S four times noisier. The coding leaves coarse
    noise that the pixel noise model, measured on fine detail, does not see, and over the
    wall's pixels a ``matrix`` fit desaturates (0.20-0.27 off on six seeds). A
    ``colourful`` fit puts S's pixels that do not stand out of the dominant colour on it
    and recovers the known matrix within 0.1 (0.07 at most over six seeds), its colour
    directions resting on a small minority of the samples."""
    rng = np.random.default_rng(0)
    scene = np.dstack([0.05 + 0.4 * _texture(rng, 5.0)] * 3) * np.array([1.0, 0.97, 0.9])
    scene[100:120, 200:225] = [0.40, 0.15, 0.08]
    scene[30:45, 40:60] = [0.08, 0.16, 0.32]
    matrix = np.array([[0.95, 0.06, -0.02], [0.04, 1.02, 0.05], [-0.03, 0.08, 0.9]])
    blur = _jpeg_coded(scene + rng.normal(0, 1, scene.shape) * np.sqrt(5e-5 * scene + 1e-6))
    seen_by_s = np.einsum("ij,hwj->hwi", np.linalg.inv(matrix), scene)
    sharp = _jpeg_coded(seen_by_s + rng.normal(0, 1, scene.shape) * np.sqrt(8e-4 * np.clip(seen_by_s, 0, None) + 4e-6))
    matrix_fit = fit_color(sharp, blur, source_noise=fit_pixel_noise(sharp))
    assert np.abs(matrix_fit.matrix - matrix).max() > 0.15  # what it fixes
    assert matrix_fit.colour_samples == matrix_fit.samples
    fit = fit_color(sharp, blur, mode="colourful", source_noise=fit_pixel_noise(sharp))
    np.testing.assert_allclose(fit.matrix, matrix, atol=0.1)
    assert 0 < fit.colour_samples < 0.05 * fit.samples


def test_a_colourful_fit_rests_its_colour_directions_on_the_coloured_object():
    """Known answer: a grey textured wall with one static coloured patch, 2.5 % of the frame.
    The samples a colourful fit calls colourful are the patch and its rim blurred by the
    fit's smoothing (3.3 % on four seeds; every sample for a matrix fit), and the map takes
    the patch's colour to B's within 0.5 % of its brightest channel (0.14 % at most over
    four seeds)."""
    rng = np.random.default_rng(0)
    scene = np.dstack([0.1 + 0.5 * _texture(rng, 5.0)] * 3)
    colour = np.array([0.45, 0.2, 0.1])
    scene[60:100, 100:148] = colour
    matrix = np.array([[1.05, 0.05, 0.0], [0.02, 0.95, 0.03], [0.0, 0.06, 0.9]])
    blur = np.einsum("ij,hwj->hwi", matrix, scene) + rng.normal(0, 0.003, scene.shape)
    sharp = scene + rng.normal(0, 0.01, scene.shape)
    fit = fit_color(sharp.astype(np.float32), blur.astype(np.float32), mode="colourful",
                    source_noise=fit_pixel_noise(sharp))
    assert 0.025 <= fit.colour_samples / fit.samples <= 0.035
    np.testing.assert_allclose(fit.matrix @ colour, matrix @ colour, atol=0.005 * (matrix @ colour).max())
    matrix_fit = fit_color(sharp.astype(np.float32), blur.astype(np.float32), source_noise=fit_pixel_noise(sharp))
    assert matrix_fit.colour_samples == matrix_fit.samples


def test_a_colourful_scene_still_fits_its_crosstalk_with_the_noise_model():
    """Where the scene spans every colour direction well above S's noise, the shrinkage
    towards the gains is negligible: a known crosstalk matrix is recovered within 0.01."""
    rng = np.random.default_rng(6)
    scene = np.dstack([0.05 + 0.6 * _texture(rng, s) for s in (3.0, 5.0, 8.0)])
    matrix = np.array([[1.1, 0.08, -0.02], [0.05, 0.95, 0.06], [-0.03, 0.12, 1.2]])
    blur = np.einsum("ij,hwj->hwi", matrix, scene) + rng.normal(0, 0.003, scene.shape)
    sharp = scene + rng.normal(0, 0.02, scene.shape)
    fit = fit_color(sharp.astype(np.float32), blur.astype(np.float32), mode="matrix",
                    source_noise=fit_pixel_noise(sharp))
    np.testing.assert_allclose(fit.matrix, matrix, atol=0.01)


def test_pixels_whose_camera_output_clipped_are_left_out_of_the_matrix_fit():
    """Both cameras apply an ISP's colour matrix and clip their outputs; ``align`` undoes
    the matrix. Where an output clipped (a bright sky's blue, a saturated red's blue at
    black), the undone values carry the clip's loss into every channel. Told where, the fit
    recovers the known relation within 0.01 on every entry; fitted on those pixels too, it
    bends to them (off by more than 0.1)."""
    rng = np.random.default_rng(7)
    scene = np.dstack([0.05 + 0.55 * _texture(rng, s) for s in (3.0, 5.0, 8.0)])
    scene[: H // 2, :, 2] += 0.45  # a sky whose blue the cameras' outputs clip
    relation = np.array([[0.82, 0.04, -0.02], [0.03, 0.78, 0.05], [-0.02, 0.06, 0.85]])
    outputs, flags = [], np.zeros((H, W), bool)
    for sensor in (np.einsum("ij,hwj->hwi", relation, scene), scene * 1.25):
        recorded = np.einsum("ij,hwj->hwi", CAMERA_MATRIX, sensor + rng.normal(0, 0.003, sensor.shape))
        flags |= ((recorded >= 1) | (recorded <= 0)).any(axis=2)
        outputs.append(np.einsum("ij,hwj->hwi", np.linalg.inv(CAMERA_MATRIX), np.clip(recorded, 0, 1)).astype(np.float32))
    blur, sharp = outputs
    assert 0.2 < flags.mean() < 0.7
    for sigma in (1.5, 0.0):  # smoothed first, as align fits, or not
        fit = fit_color(sharp, blur, mode="matrix", clipped=flags, denoise_sigma=sigma)
        np.testing.assert_allclose(fit.matrix, relation / 1.25, atol=0.01)
        bent = fit_color(sharp, blur, mode="matrix", denoise_sigma=sigma)
        assert np.abs(bent.matrix - relation / 1.25).max() > 0.1  # what it fixes


def test_clip_flags_of_another_size_are_an_error_naming_both_sizes():
    image = np.full((H, W, 3), 0.5, np.float32)
    with pytest.raises(ColorFitError, match=r"\(240, 319\).*\(240, 320\)"):
        fit_color(image, image, clipped=np.zeros((H, W - 1), bool))


def _vignetted_pair(rng: np.random.Generator, s_of_level) -> tuple[np.ndarray, np.ndarray]:
    """B: a textured scene over two decades of level, vignetted 20 % at the corners; S: the
    same scene through ``s_of_level`` (linear light in, linear light out), vignetted 40 %,
    each with its own noise."""
    scene = np.stack([_texture(rng, 6) for _ in range(3)], axis=-1)
    scene = 0.005 * np.power(100.0, 0.7 * scene + 0.3 * scene.mean(axis=2, keepdims=True))  # 0.005 .. 0.5
    yy, xx = np.mgrid[0:H, 0:W]
    radius2 = (((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2)[..., None] / 2
    blur = scene * (1 - 0.2 * radius2) + rng.normal(0, 0.002, scene.shape)
    sharp = s_of_level(scene * (1 - 0.4 * radius2)) + rng.normal(0, 0.004, scene.shape)
    return np.clip(sharp, 0, 1).astype(np.float32), np.clip(blur, 0, 1).astype(np.float32)


@pytest.mark.parametrize("exponent", [0.0, -0.3, -0.55])
def test_level_dependence_recovers_a_known_transfer_exponent_under_vignetting(exponent):
    """S = 0.8 * B**(1 + g): the fit finds g within 0.03, though the two cameras'
    vignetting differs by 20 % at the corners (a spatial gain, not a change with level)."""
    sharp, blur = _vignetted_pair(np.random.default_rng(3), lambda x: 0.8 * np.power(x, 1 + exponent))
    found = level_dependence(sharp, blur)
    assert found.exponent == pytest.approx(exponent, abs=0.03)
    assert found.standard_error < 0.02 and found.level_span > 5


def test_level_dependence_is_blind_to_a_colour_matrix_but_not_to_an_srgb_file_read_as_linear():
    """A colour matrix between linear cameras (crosstalk, white balance, gain) keeps the
    ratio constant over level; the sRGB curve taken for linear light halves it."""
    matrix = np.array([[0.9, 0.08, 0.02], [0.05, 0.92, 0.03], [0.02, 0.1, 0.88]]) * 0.7
    sharp, blur = _vignetted_pair(np.random.default_rng(4), lambda x: np.einsum("ij,hwj->hwi", matrix, x))
    assert abs(level_dependence(sharp, blur).exponent) < 0.03
    from reloblur.imaging.imageio import linear_to_srgb

    coded, blur = _vignetted_pair(np.random.default_rng(4), lambda x: linear_to_srgb(np.clip(x, 0, 1)))
    found = level_dependence(coded, blur)
    assert found.exponent < -0.4 and found.ratio_change() < 0.5


def test_level_dependence_says_nothing_where_the_static_levels_are_too_few():
    """A flat grey frame (one level) and a mask that leaves almost nothing: nan, not a slope."""
    rng = np.random.default_rng(5)
    flat = np.full((H, W, 3), 0.3, np.float32) + rng.normal(0, 0.002, (H, W, 3)).astype(np.float32)
    found = level_dependence(flat * 0.8, flat)
    assert np.isnan(found.exponent) and found.ratio_change() == 1.0
    sharp, blur = _vignetted_pair(rng, lambda x: x)
    tiny = np.zeros((H, W), bool)
    tiny[:8, :8] = True
    assert np.isnan(level_dependence(sharp, blur, mask=tiny).exponent)


@pytest.mark.parametrize("exponent", [float("inf"), float("-inf"), 60.0, -1.999])
def test_the_ratio_change_of_an_extreme_fit_stays_a_float_its_caller_can_take_the_log_of(exponent):
    from reloblur.postprocess.color import LevelDependence

    change = LevelDependence(exponent, 0.0, 1e6, 10).ratio_change()
    assert 0 < change < float("inf") and np.isfinite(np.log(change))
    assert (change > 1) == (exponent > 0)
