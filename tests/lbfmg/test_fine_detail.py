"""Known answers for the fine-detail residual: the detail measure on a sinusoid of known
amplitude, and a static pair whose S renders one patch of fine detail differently (as
demosaicing and resampling do) judged static, while a moving object is still found."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.lbfmg import evidence
from reloblur.lbfmg.generate import generate_mask
from reloblur.lbfmg.residual import fine_detail

H, W = 240, 320


def _sinusoid(amplitude: float, frequency: float) -> np.ndarray:
    xx = np.arange(W, dtype=np.float32)[None, :].repeat(H, 0)
    return (amplitude * np.sin(2 * np.pi * frequency * xx)).astype(np.float32)


def test_fine_detail_measures_a_sinusoid_and_leaves_noise_out():
    rng = np.random.default_rng(0)
    amplitude, frequency, noise = 0.05, 0.3, 0.005
    image = 0.4 + rng.normal(0, noise, (H, W)).astype(np.float32)
    image[:, 200:] += _sinusoid(amplitude, frequency)[:, 200:]  # detail on 3/8 of the frame
    variance = np.full((H, W), 1e-6, np.float32)  # only its shape over the frame matters
    detail = fine_detail(image, variance, np.ones((H, W), bool), sigma_px=1.5)
    # The 4-neighbour Laplacian of A sin(2 pi f x) has amplitude 4 sin^2(pi f) A; its RMS
    # is that over sqrt(2).
    expected = 4 * np.sin(np.pi * frequency) ** 2 * amplitude / np.sqrt(2)
    assert np.median(detail[20:-20, 220:-20]) == pytest.approx(expected, rel=0.1)
    # Where there is only noise, the floor takes it out (its own RMS is sqrt(20) * noise).
    assert np.median(detail[20:-20, 20:180]) < 0.1 * np.sqrt(20) * noise


DETAIL_PATCH = (slice(40, 110), slice(190, 280))


def _static_pair(rng: np.random.Generator, *, residual: float = 0.03, detail_in: slice = slice(None),
                 residual_at: tuple[slice, slice] = DETAIL_PATCH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B and S of one static scene (a plain background, a few edges, a patch of fine detail
    at ``DETAIL_PATCH`` in the channels ``detail_in``); S's red channel carries a smooth
    residual of RMS ``residual`` over ``residual_at`` alone. Returns B, S and that region."""
    yy, xx = np.mgrid[0:H, 0:W]
    scene = np.stack([0.3 + 0.1 * xx / W, 0.35 + 0.05 * yy / H, 0.4 * np.ones((H, W))], axis=2).astype(np.float32)
    scene[((xx // 40 + yy // 40) % 2 == 0) & (yy > 150)] *= 1.5
    patch = np.zeros((H, W), bool)
    patch[DETAIL_PATCH] = True
    scene[..., detail_in] += np.where(patch, _sinusoid(0.1, 0.35), 0)[..., None]
    b = scene + rng.normal(0, 0.004, scene.shape).astype(np.float32)
    s = scene + rng.normal(0, 0.006, scene.shape).astype(np.float32)  # S the noisier
    region = np.zeros((H, W), bool)
    region[residual_at] = True
    field = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 3.0)
    s[..., 0] += np.where(region, residual * field / field[region].std(), 0)
    return np.clip(b, 0, 1), np.clip(s, 0, 1), region


def test_a_residual_on_fine_detail_leaves_a_static_pair_empty(monkeypatch):
    rng = np.random.default_rng(1)
    b, s, patch = _static_pair(rng)
    result = generate_mask(b, s)
    assert (result.mask > 0).mean() == 0.0
    assert result.detail_gamma[0] > 0.0  # red carries the residual
    assert result.detail_gamma[0] > 5 * max(result.detail_gamma[1:])
    # What the fine-detail term does: without it, the patch is taken for a moving object.
    monkeypatch.setattr(evidence, "fine_detail", lambda channel, *args, **kwargs: np.zeros_like(channel))
    without = generate_mask(b, s)
    assert (without.mask[patch] > 0).mean() > 0.3


def test_a_moving_object_beside_fine_detail_is_still_found():
    rng = np.random.default_rng(2)
    b, s, patch = _static_pair(rng)
    trail = np.zeros((H, W), np.float32)
    trail[60:110, 40:100] = 1.0
    trail = cv2.blur(trail, (21, 1))  # B: a magenta square smeared along x
    colour = np.array([0.8, 0.3, 0.6], np.float32)
    b = b * (1 - trail[..., None]) + trail[..., None] * colour
    s[60:110, 40:100] = colour
    result = generate_mask(b, s)
    truth = trail > 0.05
    found = result.mask > 0
    assert (found & truth).sum() / (found | truth).sum() > 0.8
    assert (found[patch]).mean() == 0.0


def test_red_answers_to_the_detail_green_kept():
    # Fine detail in green alone (red and blue flat on it, as demosaicing's interpolation
    # leaves them), and a residual in S's red over it, what demosaicing aliases into red:
    # static, the tolerance from green's detail.
    b, s, region = _static_pair(np.random.default_rng(3), detail_in=slice(1, 2))
    result = generate_mask(b, s)
    assert (result.mask > 0).mean() == 0.0
    assert result.detail_gamma_across[0] > 0.0
    assert result.detail_gamma_across[0] > 5 * max(result.detail_gamma_across[1:])
    # The same residual where no channel has detail is still taken for motion: the term
    # forgives red's residual only as far as the detail beside it explains.
    b, s, region = _static_pair(np.random.default_rng(3), detail_in=slice(1, 2), residual_at=(slice(40, 110), slice(40, 130)))
    elsewhere = generate_mask(b, s)
    assert (elsewhere.mask[region] > 0).mean() > 0.3
