"""Known-answer tests of the colour fit's noise model: a scene that varies in fewer colour
directions than three leaves the others to S's noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.postprocess.color import fit_color
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
