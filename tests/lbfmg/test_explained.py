"""Known answers for the local models that explain a region of a first mask away."""

from __future__ import annotations

import cv2
import numpy as np

from conftest import displaced
from reloblur.lbfmg.clipping import Clipping
from reloblur.lbfmg.encoding import decode, encode
from reloblur.lbfmg.evidence import Judge
from reloblur.lbfmg.explained import fit_local_shift, mapped_noise_inverse, plausible_map


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
