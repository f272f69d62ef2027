"""Known-answer tests of the colour fit's noise model: a scene that varies in fewer colour
directions than three leaves the others to S's noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.postprocess.color import ColorFitError, fit_color
from reloblur.robust import pixel_noise_sigma

H, W = 240, 320


def _texture(rng: np.random.Generator, scale: float) -> np.ndarray:
    """``(H, W)`` smooth texture in [0, 1] with edges: what a photograph has, not white noise."""
    field = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), scale)
    field = (field - field.min()) / (field.max() - field.min())
    field[:, W // 3 : W // 3 + 40] += 0.2  # a bar: two sharp edges
    return np.clip(field, 0, 1)


def test_pixel_noise_sigma_recovers_known_noise_under_texture():
    """Gaussian noise of 0.01 and 0.03 on textured channels: recovered within 10 %."""
    rng = np.random.default_rng(3)
    scene = np.dstack([0.1 + 0.6 * _texture(rng, 4.0) for _ in range(2)])
    noisy = scene + rng.normal(0, 1, scene.shape) * np.array([0.01, 0.03])
    np.testing.assert_allclose(pixel_noise_sigma(noisy), [0.01, 0.03], rtol=0.1)
    np.testing.assert_allclose(pixel_noise_sigma(noisy, step=2), [0.01, 0.03], rtol=0.1)


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
                    source_noise=pixel_noise_sigma(sharp))
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
                    source_noise=pixel_noise_sigma(sharp))
    np.testing.assert_allclose(fit.matrix, matrix, atol=0.01)


def test_source_noise_must_be_three_finite_numbers():
    image = np.full((H, W, 3), 0.3, np.float32)
    with pytest.raises(ColorFitError, match="source_noise"):
        fit_color(image, image, source_noise=np.array([0.01, np.nan, 0.01]))
