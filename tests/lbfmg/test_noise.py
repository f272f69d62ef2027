"""Known answers for the noise-level function: Poisson-Gaussian noise of known parameters,
synthesised on a textured static scene, is recovered from the difference of two frames."""

from __future__ import annotations

import numpy as np
import pytest

from reloblur.lbfmg.noise import fit_noise_level, srgb_decode, srgb_slope

SHOT, READ = 4e-4, 2.5e-5  # variance = SHOT * x + READ, x linear in [0, 1]


def scene(rng: np.random.Generator, shape=(400, 600)) -> np.ndarray:
    """A static scene covering the whole range, with texture (noise must not be confused with it)."""
    ramp = np.linspace(0.02, 0.95, shape[1])[None, :].repeat(shape[0], 0)
    texture = 0.04 * np.sin(np.arange(shape[0])[:, None] / 3.0) * np.cos(np.arange(shape[1])[None, :] / 5.0)
    return np.clip(ramp + texture, 0.01, 0.99)


def expose(x: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Poisson-Gaussian noise with ``var = scale^2 (SHOT x + READ)``."""
    full_well = 1.0 / (SHOT * scale**2)
    electrons = rng.poisson(x * full_well) + rng.normal(0.0, np.sqrt(READ) * scale * full_well, x.shape)
    return electrons / full_well


@pytest.mark.parametrize("s_scale", [1.0, 2.0])
def test_recovers_poisson_gaussian_parameters_in_linear_light(s_scale):
    rng = np.random.default_rng(3)
    x = scene(rng)
    b, s = expose(x, rng), expose(x, rng, s_scale)  # S noisier than B, as a short exposure is
    # All 240 000 pixels: the read term shows only in the darkest bins, so it needs them.
    fit = fit_noise_level(b - s, x, np.ones(x.shape, bool), transfer="linear", max_samples=x.size, bins=64)
    _, shot, read = fit.coefficients
    factor = 1 + s_scale**2  # var(B - S) = var(B) + var(S)
    assert shot == pytest.approx(factor * SHOT, rel=0.10)
    assert read == pytest.approx(factor * READ, rel=0.10)


def test_predicts_the_display_domain_sigma_after_srgb_encoding():
    """Dark pixels of an sRGB image are far noisier than bright ones: the fit follows that."""
    rng = np.random.default_rng(4)
    x = scene(rng)
    encode = lambda v: np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.clip(v, 0, 1) ** (1 / 2.4) - 0.055)  # noqa: E731
    b, s = encode(np.clip(expose(x, rng), 0, 1)), encode(np.clip(expose(x, rng, 2.0), 0, 1))
    level = encode(x)
    fit = fit_noise_level(b - s, level, np.ones(x.shape, bool), transfer="srgb")
    probe = np.array([0.25, 0.4, 0.6, 0.85])
    linear = srgb_decode(probe)
    truth = srgb_slope(linear) * np.sqrt(5 * (SHOT * linear + READ))
    np.testing.assert_allclose(fit(probe), truth, rtol=0.10)
    assert fit(np.array([0.2]))[0] > 2 * fit(np.array([0.9]))[0]


def test_a_moving_minority_does_not_inflate_the_fit():
    rng = np.random.default_rng(5)
    x = scene(rng)
    b, s = expose(x, rng), expose(x, rng)
    s[100:180, 200:320] = 0.9  # an object S sees and B does not: 4 % of the pixels
    fit = fit_noise_level(b - s, x, np.ones(x.shape, bool), transfer="linear")
    assert fit(np.array([0.5]))[0] == pytest.approx(np.sqrt(2 * (SHOT * 0.5 + READ)), rel=0.10)


def _smoothed_and_fine(raw: np.ndarray, sigma_px: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """``raw`` smoothed by a Gaussian, and what the smoothing removed."""
    import cv2

    smoothed = cv2.GaussianBlur(raw.astype(np.float32), (0, 0), sigma_px).astype(np.float64)
    return smoothed, raw - smoothed


def test_a_level_band_of_smooth_structure_is_not_supported_as_noise_but_a_noisier_band_is():
    """Levels a ramp across the frame, so each level bin is a band of columns. Raw noise of
    sigma 0.01 everywhere, three times that between levels 0.2 and 0.35 (a camera curve the
    fit's basis does not hold: still noise), and above level 0.8 a smooth difference 30
    times the smoothed noise (the blends of a moving object: structure). The measured sigma
    follows both; the supported one follows only the noise, within 15 %."""
    rng = np.random.default_rng(6)
    shape = (300, 600)
    level = np.linspace(0.0, 1.0, shape[1])[None, :].repeat(shape[0], 0)
    noisier = (level > 0.2) & (level < 0.35)
    raw = rng.normal(0.0, 1.0, shape) * np.where(noisier, 0.03, 0.01)
    smoothed, fine = _smoothed_and_fine(raw)
    quiet_sigma = float(np.std(smoothed[:, 400:460]))
    structure = 30 * quiet_sigma * np.sin(np.arange(shape[0]) / 15.0)[:, None] * (level > 0.8)
    fit = fit_noise_level(smoothed + structure, level, np.ones(shape, bool), transfer="linear", fine=fine)
    centre, measured, _, supported = fit.bins.T
    moving, curve = centre > 0.82, (centre > 0.22) & (centre < 0.33)
    assert moving.sum() >= 3 and curve.sum() >= 3
    assert np.all(measured[moving] > 10 * quiet_sigma)
    np.testing.assert_allclose(supported[moving], quiet_sigma, rtol=0.15)
    np.testing.assert_allclose(supported[curve], measured[curve], rtol=0.15)
    np.testing.assert_allclose(measured[curve], 3 * quiet_sigma, rtol=0.15)
