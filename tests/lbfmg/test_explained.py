"""Known answers for the local models that explain a region of a first mask away."""

from __future__ import annotations

import cv2
import numpy as np

from conftest import displaced
from reloblur.lbfmg.clipping import Clipping
from reloblur.lbfmg.encoding import decode, encode
from reloblur.lbfmg.evidence import Judge
from reloblur.lbfmg.explained import (
    EXPLAINED_FRACTION,
    discount_local_colour,
    fit_local_shift,
    mapped_noise_inverse,
    plausible_map,
)
from reloblur.lbfmg.params import MaskParams


def test_fit_local_shift_recovers_a_known_displacement():
    """S is B's texture moved by (0.4, -0.3) px: sampled at ``x + d``, S is B again, so
    ``d`` comes back as the displacement, within 0.02 px. On one straight edge only the
    displacement across it is fixed: it comes back, and the one along it stays zero."""
    rng = np.random.default_rng(4)
    texture = np.stack([cv2.GaussianBlur(rng.normal(0.5, 0.2, (80, 90)).astype(np.float32), (0, 0), 2.5)
                        for _ in range(3)], -1)
    region = np.zeros((80, 90), bool)
    region[10:-10, 10:-10] = True
    planar = lambda image: np.ascontiguousarray(np.moveaxis(image, -1, 0))  # noqa: E731
    fit = fit_local_shift(planar(texture), planar(displaced(texture, 0.4, -0.3)), region, np.ones((3, 80, 90)))
    assert fit is not None
    np.testing.assert_allclose(fit[0], [0.4, -0.3], atol=0.02)
    edge = np.broadcast_to(cv2.GaussianBlur(np.where(np.arange(90) < 45, 0.1, 0.8).astype(np.float32)[None].repeat(80, 0),
                                            (0, 0), 1.5)[..., None], (80, 90, 3))
    fit = fit_local_shift(planar(edge), planar(displaced(edge, 0.6)), region, np.ones((3, 80, 90)))
    assert fit is not None
    np.testing.assert_allclose(fit[0], [0.6, 0.0], atol=0.03)
    assert fit_local_shift(planar(edge), planar(edge), np.zeros((80, 90), bool), np.ones((3, 80, 90))) is None


def _judge(noise_variance: np.ndarray, rendering_variance: np.ndarray, share: np.ndarray | None) -> Judge:
    """A judge of the given noise and other (edge, detail) variance, and S's share of the noise."""
    shape = noise_variance.shape
    none = Clipping(np.zeros(shape, bool), np.zeros(shape, bool))
    inverse = (1 / np.sqrt(noise_variance + rendering_variance)).astype(np.float32)
    return Judge(inverse, none, none, np.ones(shape[1:], bool), 0, noise_variance.astype(np.float32),
                 noise_share_s=share)


def test_a_colour_map_carries_s_s_share_of_the_noise_as_sampling_it_does():
    """S's noise on a saturated red (sRGB levels, its part 90 % of each channel's noise,
    channels independent), mapped by a map that resaturates it and encoded again: the
    variance of B less that S, sampled over 200,000 draws, is what the judge's inverse says
    within 3 % per channel (unmapped, it is 19-91 % short); the variance that was not S's
    noise (B's, the rendering terms) stays as it was."""
    rng = np.random.default_rng(3)
    colour = np.array([[1.25, -0.2, -0.05], [-0.25, 1.35, -0.1], [-0.05, -0.25, 1.3]])
    level = np.array([0.85, 0.45, 0.4], np.float32)  # encoded
    noise = np.array([0.006, 0.004, 0.005]) ** 2
    share = np.array([0.9, 0.9, 0.9])
    rendering = np.array([0.002, 0.001, 0.001]) ** 2
    draws = level[:, None] + rng.normal(0, 1, (3, 200_000)) * np.sqrt(share * noise)[:, None]
    mapped = encode(colour @ decode(draws.astype(np.float32), "srgb"), "srgb")
    expected = mapped.var(axis=1) + (1 - share) * noise + rendering
    field = lambda v: np.broadcast_to(np.asarray(v, np.float32)[:, None, None], (3, 4, 4)).copy()  # noqa: E731
    judge = _judge(field(noise), field(rendering), share)
    inverse = mapped_noise_inverse(judge, (slice(1, 3), slice(0, 4)), colour, decode(field(level)[:, 1:3], "srgb"))
    assert inverse is not None and inverse.shape == (3, 2, 4)
    np.testing.assert_allclose(1 / inverse[:, 0, 0] ** 2, expected, rtol=0.03)
    # The identity carries the noise as it was, and a map that flattens the colour (lowering
    # S's noise) leaves the judge's own; so do unmeasured shares.
    for kept in (np.eye(3), 0.8 * np.eye(3) + 0.2 / 3):
        same = mapped_noise_inverse(judge, (slice(None), slice(None)), kept, decode(field(level), "srgb"))
        np.testing.assert_allclose(same, judge.inverse, rtol=1e-4)
    assert mapped_noise_inverse(_judge(field(noise), field(rendering), None), (slice(None), slice(None)), colour,
                                decode(field(level), "srgb")) is None


def test_a_colour_map_is_plausible_within_the_prior_s_99th_percentile():
    """Nine entries of prior sigma 0.3: a squared distance from the identity of 21.7 sigmas^2
    (chi-squared's 99th percentile, 9 degrees of freedom), a Frobenius distance of 1.40, is
    the bound. A camera's resaturating correction is well within; a map fitted to a moving
    object's blend (negative and near-3 diagonal terms) is far beyond."""
    direction = np.ones((3, 3)) / 3  # unit Frobenius norm
    assert plausible_map(np.eye(3) + 1.39 * direction)
    assert not plausible_map(np.eye(3) + 1.41 * direction)
    assert plausible_map(np.array([[1.22, -0.27, -0.02], [-0.21, 1.32, -0.08], [-0.05, -0.03, 1.16]]))
    assert not plausible_map(np.diag([-0.55, 0.04, 2.65]))
    assert plausible_map(np.eye(3) + 2.0 * direction, prior=0.45)  # the bound scales with the prior


def test_a_clipped_object_a_map_explains_is_judged_apart_from_what_hysteresis_joined_to_it():
    """A shaded red box S's colours differ on (a crosstalk align's grey fit left, near the
    identity) whose inside no camera measured, one candidate region with a patch beside it
    whose B and S are unrelated textures (what no map explains: here, the evidence of
    something else), joined to it across 6 px of wall. The patch is more than 30 % of the
    region's measured pixels, so the region as a whole is not explained (before: the box
    stayed marked, as the second generator's blown-out box joined to dark JPEG-coded detail
    did, 1.45 % of the frame); the box with its measured rim alone is: its ``z`` falls under
    ``--low`` over most of it and under ``--high`` everywhere (the map, fitted on the rim,
    keeps some of the ridge's pull towards the identity), and the patch keeps the ``z`` it
    had, to the last digit beyond the ring the map reaches."""
    rng = np.random.default_rng(7)
    params = MaskParams()
    h, w = 80, 130
    b_linear = np.full((3, h, w), 0.3)
    rows, cols = np.mgrid[0:40, 0:40] / 40
    b_linear[:, 20:60, 30:70] = np.stack([0.6 + 0.3 * rows, 0.08 + 0.12 * cols, 0.05 + 0.1 * (1 - rows)])
    crosstalk = np.array([[0.85, 0.12, 0.03], [0.06, 0.9, 0.04], [0.03, 0.08, 0.89]])  # rows sum to one: grey stays
    s_linear = np.einsum("ij,jhw->ihw", crosstalk, b_linear)
    b_linear[:, 30:50, 76:100] = rng.uniform(0.05, 0.6, (3, 20, 24))
    s_linear[:, 30:50, 76:100] = rng.uniform(0.05, 0.6, (3, 20, 24))
    sigma_b, sigma_s = 0.01, 0.03  # encoded: S's short exposure, three times B's noise
    bp = (encode(b_linear.astype(np.float32), "srgb") + rng.normal(0, sigma_b, (3, h, w))).astype(np.float32)
    sp = (encode(s_linear.astype(np.float32), "srgb") + rng.normal(0, sigma_s, (3, h, w))).astype(np.float32)
    smooth = lambda image: np.stack([cv2.GaussianBlur(c, (0, 0), params.smooth_sigma) for c in image])  # noqa: E731
    bs, ss = smooth(bp), smooth(sp)
    variance = np.full((3, h, w), (sigma_b**2 + sigma_s**2) / (4 * np.pi * params.smooth_sigma**2), np.float32)
    judge = _judge(variance, np.zeros_like(variance), np.full(3, sigma_s**2 / (sigma_b**2 + sigma_s**2)))
    z = judge.z(bs, ss)
    box = np.zeros((h, w), bool)
    box[20:60, 30:70] = True
    patch = np.zeros((h, w), bool)
    patch[30:50, 76:100] = True
    mask = box | patch
    mask[38:42, 70:76] = True  # the wall between them, where hysteresis joined them
    usable = ~(cv2.erode(box.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)  # the inside: clipped
    assert np.mean(z[box] > params.low_sigmas) > 0.9 and np.mean(z[patch] > params.low_sigmas) > 0.9
    measured = mask & usable
    assert np.count_nonzero(measured & patch) > 0.3 * np.count_nonzero(measured)
    before = z.copy()
    assert discount_local_colour(mask, z, sp, bs, ss, judge, usable, params) == 1
    assert np.mean(z[box] > params.low_sigmas) < EXPLAINED_FRACTION and not (z[box] > params.high_sigmas).any()
    far = patch & ~(cv2.dilate(box.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0)
    assert far.any()
    np.testing.assert_array_equal(z[far], before[far])
    assert np.mean(z[patch] > params.low_sigmas) > 0.7
