"""Known answers for the energy of B - S (``reloblur.lbfmg.energy``): a static textured pair
whose S renders the texture softer (as a lens or demosaicing does) stays under the growing
threshold, a texture smeared in B alone stands out, clipped pixels count neither way, a
difference of mean taken about it is none; and
through ``generate_mask``, a textured object under S's heavy noise is found whole."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.lbfmg.energy import MIN_STATIC_PIXELS, energy_evidence
from reloblur.lbfmg.generate import generate_mask
from reloblur.lbfmg.metrics import area_fraction, iou

H, W = 160, 200
NOISE = 0.01
INVERSE = 1 / (NOISE * np.sqrt(2) / 3)  # about what the judge predicts for B - S smoothed by 1.5 px
PATCH = (slice(50, 110), slice(70, 140))


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A grey texture with detail at every scale down to the pixel, levels 0.25-0.75."""
    fine = rng.uniform(0.0, 1.0, (H, W)).astype(np.float32)
    coarse = cv2.GaussianBlur(fine, (0, 0), 4.0)
    coarse = (coarse - coarse.min()) / (coarse.max() - coarse.min())
    return (0.25 + 0.3 * coarse + 0.2 * fine).astype(np.float32)


def _planar(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[None], 3, axis=0)


def _noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = NOISE) -> np.ndarray:
    return (image + rng.normal(0, sigma, image.shape)).astype(np.float32)


def test_a_static_texture_rendered_softer_in_s_stays_under_the_threshold():
    rng = np.random.default_rng(3)
    scene = _planar(_texture(rng))
    softer = np.stack([cv2.GaussianBlur(c, (0, 0), 0.6) for c in scene])  # S's lens, or its demosaicing
    b, s = _noisy(scene, rng), _noisy(softer, rng)
    energy = energy_evidence(b, s, np.full_like(b, INVERSE), np.ones((H, W), bool), sigma_px=1.5)
    assert energy is not None
    # Gaussian noise puts about 0.1 % of pixels past 3 sigmas; the rendering's share of the
    # detail is fitted, not counted as motion.
    assert np.mean(energy >= 3.0) < 0.01


def test_a_texture_smeared_in_b_alone_stands_out_where_the_mean_does_not():
    rng = np.random.default_rng(4)
    scene = _planar(_texture(rng))
    smeared = scene.copy()
    smeared[:, PATCH[0], PATCH[1]] = np.stack([cv2.blur(c, (11, 1)) for c in scene])[:, PATCH[0], PATCH[1]]
    b, s = _noisy(smeared, rng), _noisy(scene, rng)
    energy = energy_evidence(b, s, np.full_like(b, INVERSE), np.ones((H, W), bool), sigma_px=1.5)
    assert energy is not None
    inside = energy[60:100, 80:130]
    assert np.mean(inside >= 3.0) > 0.9
    # The smoothed difference, the evidence's test of the mean, holds a small part of it.
    mean = np.abs(cv2.GaussianBlur((b - s)[0], (0, 0), 1.5)) * INVERSE
    assert np.mean(mean[60:100, 80:130] >= 3.0) < 0.5


def test_unmeasured_pixels_count_neither_way():
    rng = np.random.default_rng(5)
    scene = _planar(_texture(rng))
    b, s = _noisy(scene, rng), _noisy(scene, rng)
    b[:, PATCH[0], PATCH[1]] = 1.0  # B clipped white there: a bound, far from S
    unmeasured = np.zeros((H, W), bool)
    unmeasured[PATCH] = True
    static = ~unmeasured
    energy = energy_evidence(b, s, np.full_like(b, INVERSE), static, sigma_px=1.5, unmeasured=unmeasured)
    assert energy is not None
    assert np.abs(energy[60:100, 80:130]).max() < 3.0
    counted = energy_evidence(b, s, np.full_like(b, INVERSE), static, sigma_px=1.5)
    assert counted is not None and counted[60:100, 80:130].min() > 3.0


def test_centred_pixels_test_the_spread_alone():
    """S's colour off B's over a static patch by a few noise sigmas, as where a local colour
    map explained a region: taken whole, the offset's square is energy over all of the
    patch; taken about its mean over the footprint, it is none but at the patch's edge,
    where the offset steps within a footprint. A texture smeared in B over the same patch,
    with the same offset, still stands out: its detail is spread, not mean."""
    rng = np.random.default_rng(6)
    scene = _planar(_texture(rng))
    centred = np.zeros((H, W), bool)
    centred[PATCH] = True
    offset = np.zeros_like(scene)
    offset[:, PATCH[0], PATCH[1]] = np.array([3, -2, 4], np.float32)[:, None, None] * NOISE
    b, s = _noisy(scene, rng), _noisy(scene - offset, rng)
    static = np.ones((H, W), bool)
    whole = energy_evidence(b, s, np.full_like(b, INVERSE), static, sigma_px=1.5)
    spread = energy_evidence(b, s, np.full_like(b, INVERSE), static, sigma_px=1.5, centred=centred)
    assert whole is not None and spread is not None
    inside = (slice(60, 100), slice(80, 130))  # 10 px from the patch's edge
    assert np.mean(whole[inside] >= 3.0) > 0.9
    assert np.mean(spread[inside] >= 3.0) < 0.01
    smeared = scene.copy()
    smeared[:, PATCH[0], PATCH[1]] = np.stack([cv2.blur(c, (11, 1)) for c in scene])[:, PATCH[0], PATCH[1]]
    b = _noisy(smeared, rng)
    moved = energy_evidence(b, s, np.full_like(b, INVERSE), ~centred, sigma_px=1.5, centred=centred)
    assert moved is not None and np.mean(moved[inside] >= 3.0) > 0.9


def test_too_few_static_pixels_measure_nothing():
    b = s = np.full((3, H, W), 0.5, np.float32)
    static = np.zeros((H, W), bool)
    static.flat[: MIN_STATIC_PIXELS - 1] = True
    assert energy_evidence(b, s, np.full_like(b, INVERSE), static, sigma_px=1.5) is None


@pytest.mark.parametrize("seed", [11, 12])
def test_a_textured_object_under_s_heavy_noise_is_found_whole(seed):
    """A textured square moving 10 px over a textured ground, S six times noisier than B
    (a short exposure's read noise): the evidence finds it in blobs, its energy whole."""
    rng = np.random.default_rng(seed)
    ground, object_texture = _texture(rng), _texture(rng)
    side, travel = 60, 10
    y0, x0 = 50, 60

    def frame(dx: float) -> np.ndarray:
        out = ground.copy()
        moved = cv2.warpAffine(object_texture, np.float32([[1, 0, dx], [0, 1, 0]]), (W, H))
        out[y0 : y0 + side, x0 + int(np.floor(dx)) : x0 + side + int(np.floor(dx))] = moved[
            y0 : y0 + side, x0 + int(np.floor(dx)) : x0 + side + int(np.floor(dx))]
        return out

    instants = np.arange(travel + 1)
    blur = np.mean([frame(float(dx)) for dx in instants], axis=0)
    sharp = frame(travel / 2)
    truth = np.zeros((H, W), bool)
    truth[y0 : y0 + side, x0 : x0 + side + travel] = True
    b = np.clip(np.repeat(blur[..., None], 3, axis=2) + rng.normal(0, 0.004, (H, W, 3)), 0, 1)
    s = np.clip(np.repeat(sharp[..., None], 3, axis=2) + rng.normal(0, 0.024, (H, W, 3)), 0, 1)
    mask = generate_mask(b.astype(np.float32), s.astype(np.float32)).mask > 0
    assert iou(mask, truth) > 0.8
    still = generate_mask(np.clip(np.repeat(ground[..., None], 3, axis=2) + rng.normal(0, 0.004, (H, W, 3)), 0, 1),
                          np.clip(np.repeat(ground[..., None], 3, axis=2) + rng.normal(0, 0.024, (H, W, 3)), 0, 1))
    assert area_fraction(still.mask) < 0.005
