"""Known answers for how the mask step treats clipped values: the bias black clipping
leaves, the bounds a colour correction after the clip opens, and smoothing that leaves
clipped pixels out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import CAMERA_MATRIX
from reloblur.errors import ImageFormatError
from reloblur.imaging.clipping import clipped_levels, clipped_planes
from reloblur.lbfmg.clipping import (
    Clipping,
    as_clipped,
    black_clip_factor,
    black_noise,
    clipped_mean,
    clipped_output_mixing,
    crosstalk_ratios,
    mostly_flagged,
    smooth_pair,
    unmeasured,
    unmeasured_deficit,
    unmeasured_excess,
    unreliable,
)


def test_black_clip_factor_recovers_the_mean_a_camera_clipped():
    """Known answer: Gaussian noise around mu, clipped at 0; from the clipped mean and the
    share at 0 alone, mu is recovered within 10 % of sigma across mu/sigma 0.3..2."""
    rng = np.random.default_rng(7)
    for mu in (0.006, 0.01, 0.02, 0.04):
        x = np.maximum(rng.normal(mu, 0.02, 400_000), 0)
        factor = float(black_clip_factor(np.full((1, 1, 1), (x == 0).mean()))[0, 0, 0])
        assert abs(x.mean() * (1 - factor) - mu) < 0.1 * 0.02


def test_clipped_planes_flag_what_clipped_levels_flags_on_the_same_image():
    """Known answer: a frame whose red blew out over a fifth and whose blue sits at black
    over a tenth (8-bit codes, noise elsewhere): the planar finder flags exactly those
    pixels, as the interleaved one does, with and without a validity mask."""
    rng = np.random.default_rng(3)
    codes = rng.integers(20, 236, (60, 80, 3)).astype(np.uint8)
    codes[:12, :, 0] = 255
    codes[-6:, :, 2] = 0
    image = codes.astype(np.float32) / 255
    planes = np.ascontiguousarray(image.transpose(2, 0, 1))
    valid = np.ones((60, 80), bool)
    valid[:, :5] = False
    for mask in (None, valid):
        high, low = clipped_planes(planes, mask, code=1 / 255)
        high_hwc, low_hwc = clipped_levels(image, mask, code=1 / 255)
        assert np.array_equal(high, high_hwc.transpose(2, 0, 1))
        assert np.array_equal(low, low_hwc.transpose(2, 0, 1))
        assert high[0, :12].all() and high[0].sum() == 12 * 80 and not high[1:].any()
        assert low[2, -6:].all() and low[2].sum() == 6 * 80 and not low[:2].any()


def test_mostly_flagged_is_where_most_of_the_box_is_flagged():
    """Known answer: against the box mean of the flags (>= 0.5, borders reflected), on
    random flags with a dense patch, for boxes from 9 to 81 px a side; a channel with no
    flags stays empty."""
    rng = np.random.default_rng(5)
    flags = np.zeros((3, 90, 120), bool)
    flags[0] = rng.random((90, 120)) < 0.4
    flags[0, 20:60, 30:90] = rng.random((40, 60)) < 0.7
    flags[2, 10:50, 10:50] = True
    for reach in (4, 12, 40):
        size = 2 * reach + 1
        found = mostly_flagged(flags, reach)
        for c in (0, 2):
            expected = cv2.blur(flags[c].astype(np.float64), (size, size)) >= 0.5
            assert np.array_equal(found[c], expected)
        assert not found[1].any()
    small = mostly_flagged(flags, 4)
    assert small[2, 30, 30] and not small[2, 80, 100]


def test_crosstalk_ratios_refuse_a_matrix_they_cannot_use():
    with pytest.raises(ImageFormatError, match="non-zero diagonal"):
        crosstalk_ratios(np.array([[1.0, 0.1, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ImageFormatError, match="square"):
        crosstalk_ratios(np.ones((3, 2)))


def test_unmeasured_excess_opens_every_channel_it_was_mixed_into_both_ways():
    """Known answer: blue blown out in both images over a square; red took +0.07 of blue,
    green -0.03. Whatever the signs (the true map's may differ from ``align``'s estimate),
    red and green are open over the square, where most of the 9x9 footprint lies on it
    (not at its corners: 25 of 81 pixels); blue itself is not opened, nor anything far
    from the square; a channel only one camera clipped opens nothing."""
    both = np.zeros((3, 40, 40), bool)
    both[2, 10:30, 10:30] = True
    matrix = np.array([[0.9, 0.0, 0.07], [0.0, 1.0, -0.03], [0.0, 0.0, 1.0]])
    opened = unmeasured_excess(both, both, matrix, reach=4)
    assert opened is not None
    assert opened[0, 12:28, 12:28].all() and opened[1, 12:28, 12:28].all()
    assert np.array_equal(opened[0], opened[1]) and not opened[0, 10, 10]
    assert not opened[2].any() and not opened[:, :5].any()
    flipped = matrix.copy()
    flipped[:2, 2] *= -1
    assert np.array_equal(unmeasured_excess(both, both, flipped, reach=4), opened)
    assert unmeasured_excess(both, np.zeros_like(both), matrix, reach=4) is None


def test_unmeasured_deficit_opens_every_channel_it_was_mixed_into_both_ways():
    """Known answer: green clipped black in both images over a square beside a bright red
    (0.8 in linear light: an output clip, since no sensor channel is dark behind it); red
    took +0.04 of green, blue -0.03. Red and blue are open over the square; green itself
    opens nothing. The same clip beside a dark red (0.1: a sensor's black clip, a noise
    excursion at most) opens nothing, and neither does a channel only one camera
    clipped."""
    level = np.zeros((3, 40, 40))
    level[0] = 0.8
    level[2] = 0.3
    low = np.zeros(level.shape, bool)
    low[1, 10:30, 10:30] = True
    matrix = np.array([[0.9, 0.04, 0.0], [0.0, 1.0, 0.0], [0.0, -0.03, 1.0]])
    opened = unmeasured_deficit(low, low, level, level, matrix, reach=4, transfer="linear")
    assert opened is not None
    assert opened[0, 12:28, 12:28].all() and opened[2, 12:28, 12:28].all()
    assert not opened[1].any() and not opened[:, :5].any()
    dark = np.where(level > 0, 0.1, 0.0)
    assert unmeasured_deficit(low, low, dark, dark, matrix, reach=4, transfer="linear") is None
    assert unmeasured_deficit(low, np.zeros_like(low), level, level, matrix, reach=4, transfer="linear") is None


def test_clipped_output_mixing_is_the_inverse_and_for_s_its_correction_after_it():
    m = CAMERA_MATRIX
    correction = np.array([[0.5, 0.02, 0.0], [0.01, 0.45, 0.03], [0.0, 0.02, 0.48]])
    blur, sharp = clipped_output_mixing((m, m), correction)
    assert blur is not None and sharp is not None
    np.testing.assert_allclose(blur @ m, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(sharp, correction @ np.linalg.inv(m), atol=1e-12)
    assert clipped_output_mixing((None, None), correction) == (None, None)


def test_smoothing_that_leaves_clipped_pixels_out_predicts_its_own_noise():
    """Known answer for the variance factor of normalised smoothing: on pure noise with a
    clipped half-plane, the measured variance of the smoothed values near its edge, over a
    full footprint's, matches the predicted spread within 10 %."""
    rng = np.random.default_rng(13)
    noise = rng.normal(0, 1, (2, 400, 64, 64)).astype(np.float32)
    white = np.zeros((1, 64, 64), bool)
    white[:, :, 32:] = True
    measured_var, predicted = [], None
    for k in range(400):
        bs, _, kept, spread = smooth_pair(noise[0, k][None], noise[1, k][None], white, 1.5)
        measured_var.append(bs[0, 10:54, 27:32])
        predicted = spread[0, 10:54, 27:32]
        assert kept is not None and (kept[0, :, :32] >= 0.5).all()  # measured, not a bound
    full = np.var(cv2.GaussianBlur(noise[0, 0], (0, 0), 1.5)[10:54, 10:20])
    ratio = np.var(np.stack(measured_var), axis=0).mean(axis=0) / full
    assert predicted is not None and predicted.max() > 1.3  # the edge is noisier
    np.testing.assert_allclose(ratio, predicted.mean(axis=0), rtol=0.1)


def _black_clipped_ramp(sigma: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth rising from 0 to 0.15 (linear) across the frame; S that truth plus Gaussian
    noise of ``sigma``, clipped at black, then resampled at a sub-pixel offset (cubic) and
    smoothed as the mask step smooths; and where the camera clipped. Planar ``(1, H, W)`` each."""
    rng = np.random.default_rng(seed)
    truth = np.repeat(np.linspace(0.0, 0.15, 300, dtype=np.float32)[None], 200, axis=0)
    noisy = np.maximum(truth + rng.normal(0, sigma, truth.shape), 0).astype(np.float32)
    grid_x, grid_y = np.meshgrid(np.arange(300, dtype=np.float32), np.arange(200, dtype=np.float32))
    resampled = np.maximum(cv2.remap(noisy, grid_x + 0.4, grid_y + 0.3, cv2.INTER_CUBIC,
                                     borderMode=cv2.BORDER_REFLECT), 0)
    return truth[None], cv2.GaussianBlur(resampled, (0, 0), 1.5)[None], (noisy == 0)[None]


@pytest.mark.parametrize("sigma", [0.005, 0.01, 0.03])
def test_black_noise_is_recovered_from_a_resampled_black_clip(sigma):
    """Known answer: S's noise at black comes back within 10 % from how far S's smoothed
    level sits above the truth at each dark level, though resampling left few zeros; with
    it, the truth as S's camera records it is S's level, within a tenth of sigma."""
    truth, sharp, clipped = _black_clipped_ramp(sigma, seed=3)
    fitted = black_noise(truth, sharp, np.ones(truth.shape[1:], bool), clipped, transfer="linear")
    assert abs(fitted[0] - sigma) < 0.1 * sigma
    assert (sharp - truth)[0][:, truth[0, 0] < 0.5 * sigma].mean() > 0.25 * sigma  # the bias at black
    recorded = as_clipped(truth, fitted, "linear")
    assert abs((recorded - sharp)[0, 20:-20, 5:-5].mean(axis=0)).max() < 0.1 * sigma + 2e-4
    assert (recorded >= truth).all()


def test_an_offset_at_dark_levels_without_clipping_is_no_noise_at_black():
    """S over B at dark levels, as a gain or colour misfit leaves it, but nothing clipped:
    no sigma is taken, however well one would fit the offset."""
    truth, sharp, clipped = _black_clipped_ramp(0.01, seed=4)
    fitted = black_noise(truth, sharp, np.ones(truth.shape[1:], bool), np.zeros_like(clipped), transfer="linear")
    assert fitted[0] == 0.0


def test_without_black_clipping_no_noise_at_black_is_fitted():
    """Dark, noisy, but never reaching zero (the truth starts at ten sigmas): nothing to fit,
    and B is compared as it is."""
    rng = np.random.default_rng(4)
    truth = np.repeat(np.linspace(0.02, 0.15, 300, dtype=np.float32)[None], 200, axis=0)[None]
    sharp = cv2.GaussianBlur((truth[0] + rng.normal(0, 0.002, truth.shape[1:])).astype(np.float32), (0, 0), 1.5)[None]
    fitted = black_noise(truth, sharp, np.ones(truth.shape[1:], bool), np.zeros(truth.shape, bool), transfer="linear")
    assert fitted[0] == 0.0
    assert np.array_equal(as_clipped(truth, fitted, "linear"), truth)


def test_clipped_mean_is_the_mean_of_clipped_gaussian_samples():
    rng = np.random.default_rng(5)
    for level in (-0.01, 0.0, 0.01, 0.05):
        samples = np.maximum(level + rng.normal(0, 0.02, 1_000_000), 0)
        assert abs(float(clipped_mean(np.array([level]), 0.02)[0]) - samples.mean()) < 1e-4


def test_unmeasured_counts_white_anywhere_and_black_only_where_most_of_the_footprint_is():
    """Known answer on flags: white-clipped pixels, a black region and scattered black
    noise, stored or in the camera's own output; only the scattered black is measured."""
    rng = np.random.default_rng(3)
    h, w, reach = 60, 80, 4
    high = np.zeros((3, h, w), bool)
    high[0, :, :10] = True  # 10 columns white in one channel
    low = np.zeros((3, h, w), bool)
    low[1, :, 20:40] = True  # a black region, 20 columns
    low[2] = rng.random((h, w)) < 0.2  # noise touching zero on a fifth of the pixels
    raw = Clipping(high, low)
    bounded = unreliable(raw, raw.widened(reach, 1.5))
    # the black region's border, where half the footprint is black, may go either way
    assert abs(bounded.mean() - 30 / 80) <= reach / 80
    assert bounded[:, :10].all() and bounded[:, 24:36].all() and not bounded[:, 44:].any()
    assert unmeasured(bounded, None, "s", reach=reach) is bounded
    output = {f"s_out_{side}": np.zeros((3, h, w), bool) for side in ("high", "low")}
    output["s_out_high"][2, :, 70:] = True  # the camera's output blew out 10 more columns
    output["s_out_low"][0] = rng.random((h, w)) < 0.2  # and touched zero at scattered pixels
    lost = unmeasured(bounded, output, "s", reach=reach)
    assert lost[:, 70:].all() and not lost[:, 44:70].any()
