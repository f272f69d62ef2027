"""Known-answer tests for the regions of S whose motion explains the mask's bands."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from reloblur.lbfmg.generate import _edges, generate_mask
from reloblur.lbfmg.morphology import segments
from reloblur.lbfmg.motion import fill_moved_segments, line_kernel

H, W = 160, 200
TOP, LEFT, BOTTOM, RIGHT = 50, 60, 110, 150  # the object in S
OBJECT = np.array([0.78, 0.74, 0.62], np.float32)
SIGMA_B = 0.004  # per pixel, before smoothing
SMOOTH = 1.5


def _ground(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 4)
    grey = 0.42 + 0.03 * texture / texture.std()
    return np.stack([grey * 1.05, grey, grey * 0.9], axis=-1).astype(np.float32)


def _object_at(dy: float, dx: float) -> np.ndarray:
    """The object's coverage, ``(H, W)`` float, shifted by (dy, dx) px (sub-pixel)."""
    box = np.zeros((H, W), np.float32)
    box[TOP:BOTTOM, LEFT:RIGHT] = 1
    shift = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(box, shift, (W, H), flags=cv2.INTER_LINEAR)


def moving_pair(seed: int, *, travel: float, angle: float, s_noise: float, ground: np.ndarray | None = None):
    """B (the object moving ``travel`` px along ``angle`` radians during the exposure, S in
    its middle), S, the swept region and the object in S; Gaussian noise, S ``s_noise``
    times B's."""
    rng = np.random.default_rng(seed + 1)
    ground = _ground(seed) if ground is None else ground
    steps = np.linspace(-0.5, 0.5, 41) * travel
    coverage = np.mean([_object_at(t * math.sin(angle), t * math.cos(angle)) for t in steps], axis=0)
    blur = ground * (1 - coverage[..., None]) + OBJECT * coverage[..., None]
    at_s = _object_at(0, 0)
    sharp = ground * (1 - at_s[..., None]) + OBJECT * at_s[..., None]
    blur = blur + rng.normal(0, SIGMA_B, blur.shape)
    sharp = sharp + rng.normal(0, SIGMA_B * s_noise, sharp.shape)
    return blur.astype(np.float32), sharp.astype(np.float32), coverage > 0.02, at_s > 0.5


def _inputs(blur: np.ndarray, sharp: np.ndarray, static: np.ndarray):
    """What the generator hands the step: both images smoothed, per channel (C, H, W); the
    inverse sigma of their difference, measured on ``static``; S's edges; the evidence
    above 4 sigmas as the mask."""
    bs = np.stack([cv2.GaussianBlur(np.ascontiguousarray(blur[..., c]), (0, 0), SMOOTH) for c in range(3)])
    ss = np.stack([cv2.GaussianBlur(np.ascontiguousarray(sharp[..., c]), (0, 0), SMOOTH) for c in range(3)])
    sigma = np.array([np.std((bs[c] - ss[c])[static]) for c in range(3)], np.float32)
    inverse = np.broadcast_to((1 / sigma)[:, None, None], bs.shape).astype(np.float32)
    edges = _edges(ss, np.broadcast_to((sigma**2)[:, None, None], bs.shape).astype(np.float32), 3.0)
    z = (np.abs(bs - ss) * inverse).max(axis=0)
    mask = cv2.morphologyEx((z > 4).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    return bs, ss, inverse, edges, mask


def _fill(blur, sharp, static, mask=None):
    bs, ss, inverse, edges, found = _inputs(blur, sharp, static)
    mask = found if mask is None else mask
    everywhere, nowhere = np.ones((H, W), bool), np.zeros((H, W), bool)
    regions = segments(mask, edges, everywhere, nowhere)
    filled, motions = fill_moved_segments(mask, regions, bs, ss, inverse, edges, everywhere,
                                          min_pixels=50, max_pixels=0.5 * H * W)
    return mask, filled, motions


def test_a_line_kernel_is_a_normalised_centred_line_of_the_given_length():
    kernel = line_kernel(0.0, 10.0)
    assert kernel.dtype == np.float32 and kernel.shape[0] == kernel.shape[1]
    assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
    centre = kernel.shape[0] // 2
    assert np.count_nonzero(kernel[centre]) >= 10 and kernel[centre].sum() > 0.99  # horizontal
    ys, xs = np.nonzero(line_kernel(math.pi / 2, 10.0) > 1e-3)
    assert np.all(np.abs(xs - centre) <= 1) and ys.max() - ys.min() >= 9  # vertical, 10 px


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("travel", "angle"), [(12.0, math.pi / 2), (20.0, 0.0), (30.0, 0.0)])
def test_the_interior_of_a_uniform_object_is_taken_with_its_motion(seed, travel, angle):
    """The object moved; B and S agree inside it, so the evidence is two bands across the
    motion. The region S's edges bound between them is taken, and the motion that
    explains the bands is the true one (direction within 0.3 rad, travel within a factor
    sqrt(2), the search's step). Not yet taken (docs/masks.md): a rectangle moving
    obliquely to all its sides, and one moving 8 px at this noise (half its predicted
    change observed on neither side)."""
    blur, sharp, swept, at_s = moving_pair(seed, travel=travel, angle=angle, s_noise=4.0)
    mask, filled, motions = _fill(blur, sharp, ~swept)
    interior = cv2.erode(at_s.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    assert not mask[interior].all()  # the evidence alone leaves the inside
    assert filled[interior].all()
    # What it added outside the swept region: S's edge band along the sides the motion ran along.
    assert np.count_nonzero(filled & ~mask & ~swept) <= 0.02 * np.count_nonzero(swept)
    taken = [m for m in motions if m.taken]
    assert len(taken) == 1
    difference = abs((taken[0].direction - angle + math.pi / 2) % math.pi - math.pi / 2)
    assert difference <= 0.3
    assert travel / math.sqrt(2) * 0.99 <= taken[0].length <= travel * math.sqrt(2) * 1.01
    assert taken[0].confirmed > 0.1


def test_a_static_region_between_bands_that_b_does_not_show_is_left():
    """A mask that flanks a static patch on both sides without B showing the bands a motion
    would make there (the bands belong to nothing): the patch is scored and left."""
    ground = _ground(5)
    ground[60:100, 70:140] = (0.2, 0.3, 0.55)  # a static patch: S's edges bound it
    rng = np.random.default_rng(7)
    blur = (ground + rng.normal(0, SIGMA_B, ground.shape)).astype(np.float32)
    sharp = (ground + rng.normal(0, 4 * SIGMA_B, ground.shape)).astype(np.float32)
    mask = np.zeros((H, W), bool)
    mask[52:59, 70:140] = mask[101:108, 70:140] = True  # painted over its edges, above and below
    _, filled, motions = _fill(blur, sharp, np.ones((H, W), bool), mask=mask)
    assert not filled[65:95, 75:135].any()
    assert motions and not any(m.taken for m in motions)
    assert all(m.confirmed <= 0.1 for m in motions)


def test_a_static_region_beside_one_band_is_left():
    """A static patch that touches the moving object's leading band: the mask flanks it on
    one side only."""
    ground = _ground(3)
    ground[10:44, 70:140] = (0.25, 0.5, 0.3)  # static, just above the object's top band
    blur, sharp, swept, _ = moving_pair(3, travel=12.0, angle=math.pi / 2, s_noise=4.0, ground=ground)
    _, filled, _ = _fill(blur, sharp, ~swept)
    assert not filled[14:38, 75:135].any()


def test_nothing_is_added_without_a_mask():
    blur, sharp, swept, _ = moving_pair(0, travel=12.0, angle=0.0, s_noise=1.0)
    bs, ss, inverse, edges, _ = _inputs(blur, sharp, ~swept)
    empty = np.zeros((H, W), bool)
    everywhere = np.ones((H, W), bool)
    filled, motions = fill_moved_segments(empty, segments(empty, edges, everywhere, ~everywhere), bs, ss, inverse,
                                          edges, everywhere, min_pixels=50, max_pixels=H * W)
    assert not filled.any() and motions == []


def test_a_region_whose_smear_shows_on_one_side_only_is_left():
    """B shows the band a motion of the patch would make above it, but not the one below:
    the fit gains on one side and is contradicted on the other, so each side is judged on
    its own and the patch is left."""
    ground = _ground(6)
    patch = np.array([0.2, 0.3, 0.55], np.float32)
    ground[60:100, 70:140] = patch
    rng = np.random.default_rng(8)
    blur = ground.copy()
    ramp = np.linspace(0.1, 0.9, 8, dtype=np.float32)[:, None, None]
    blur[52:60, 70:140] = ground[52:60, 70:140] * (1 - ramp) + patch * ramp  # the band above
    blur = (blur + rng.normal(0, SIGMA_B, ground.shape)).astype(np.float32)
    sharp = (ground + rng.normal(0, 4 * SIGMA_B, ground.shape)).astype(np.float32)
    mask = np.zeros((H, W), bool)
    mask[52:59, 70:140] = mask[101:108, 70:140] = True
    _, filled, motions = _fill(blur, sharp, np.ones((H, W), bool), mask=mask)
    assert not filled[65:95, 75:135].any()
    scored = [m for m in motions if m.length > 0]
    assert scored and scored[0].gain > 100  # the band above alone is explained
    assert not scored[0].taken and scored[0].confirmed <= 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("travel", "angle"), [(12, math.pi / 2), (20, 0.0), (30, 0.0)])
def test_the_generator_finds_a_uniform_object_on_a_smooth_ground(seed, travel, angle):
    # The object's blends with the ground fill level bins that hold almost no static pixel:
    # fitted on the whole frame, the noise model followed them there (sigma about 20 times
    # too large at those levels, IoU 0.13-0.45 in 7 of these 9 cases). Fitted again
    # without the first mask, the band and the interior are found.
    blur, sharp, swept, _ = moving_pair(seed, travel=travel, angle=angle, s_noise=4)
    result = generate_mask(np.clip(blur, 0, 1), np.clip(sharp, 0, 1))
    found = result.mask > 0
    assert np.count_nonzero(found & swept) / np.count_nonzero(found | swept) > 0.85
