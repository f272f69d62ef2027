"""Known answers for masks from motion on the simulator's bursts."""

from __future__ import annotations

import numpy as np
import pytest

from reloblur.errors import ReloblurError
from reloblur.imaging.imageio import encode_srgb
from reloblur.lbfmg.flow import flow_mask
from reloblur.lbfmg.metrics import area_fraction, iou
from reloblur.sim.simulator import RigSimulator, SimulatorConfig, render_burst


def _frames(burst) -> np.ndarray:
    return np.stack([encode_srgb(np.clip(f.astype(np.float32) / 65535, 0, 1)) for f in burst.frames])


def test_flow_finds_what_moved_and_nothing_on_a_static_burst():
    """Bound: measured mean IoU 0.89 on 6 moving bursts and at most 0.28 % on static ones
    (2026-11-30, 538x359, 8 frames)."""
    moving = RigSimulator(SimulatorConfig(width=538, height=359, seed=11, static_fraction=0.0))
    ious = [iou(flow_mask(_frames(b := render_burst(moving, i, frames=8))).mask, b.mask) for i in range(3)]
    assert np.mean(ious) > 0.8
    still = RigSimulator(SimulatorConfig(width=538, height=359, seed=11, static_fraction=1.0))
    for i in range(2):
        assert area_fraction(flow_mask(_frames(render_burst(still, i, frames=8))).mask) <= 0.005


def test_flow_refuses_what_it_cannot_use():
    with pytest.raises(ReloblurError, match="K >= 2"):
        flow_mask(np.zeros((1, 32, 32, 3), np.uint8))
    with pytest.raises(ReloblurError, match="uint8"):
        flow_mask(np.zeros((4, 32, 32, 3), np.float32))


def test_both_adds_the_motion_regions_the_difference_touched_and_flow_replaces_it():
    """Known answer on hand-made masks: the difference saw the rim of object A only; the
    burst's motion saw A whole and a region C the difference never touched. ``both`` is the
    difference plus A (not C); ``flow`` is the motion mask; confidence follows."""
    from reloblur.lbfmg.flow import FlowMaskResult, with_motion
    from reloblur.lbfmg.generate import generate_mask

    rng = np.random.default_rng(0)
    image = (rng.random((80, 120, 3)) * 200 + 20).astype(np.uint8)
    result = generate_mask(image, image.copy())
    assert not result.mask.any()
    difference = np.zeros((80, 120), np.uint8)
    difference[10:40, 10:14] = 255  # the rim of A
    difference[60:70, 100:110] = 255  # difference evidence motion did not see (kept)
    result.mask = difference
    motion = np.zeros((80, 120), np.uint8)
    motion[10:40, 10:40] = 255  # A
    motion[50:60, 60:80] = 255  # C
    votes = np.where(motion > 0, 5, 0).astype(np.int32)
    flow = FlowMaskResult(motion, votes, 7)

    both = with_motion(result, flow, method="both")
    expected = difference | motion
    expected[50:60, 60:80] = 0
    np.testing.assert_array_equal(both.mask, expected)
    assert both.blur_ratio == pytest.approx((expected > 0).mean())
    assert both.confidence[20, 25] >= 5 / 7 - 1e-6 and both.confidence[55, 70] <= 127 / 255 + 1e-6
    assert not result.mask[20, 25]  # the input result is unchanged
    only_flow = with_motion(result, flow, method="flow")
    np.testing.assert_array_equal(only_flow.mask, motion)
    with pytest.raises(ReloblurError, match="choose flow or both"):
        with_motion(result, flow, method="difference")


@pytest.mark.parametrize("sigma", [4.0, 8.0, 12.0])
def test_noise_alone_is_not_motion(sigma):
    """Eight frames of one soft, low-texture scene with independent noise of ``sigma``
    8-bit levels: DIS finds consistent-looking flow in the noise (without the change test
    it marked 1 %, 21 % and 35 % of the frame), but nothing changed beyond the noise, so
    nothing moved."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(cv2.resize(data.coffee(), (320, 240)).astype(np.float32), (0, 0), 3) * 0.6 + 40
    frames = np.stack([np.clip(scene + rng.normal(0, sigma, scene.shape), 0, 255).astype(np.uint8) for _ in range(8)])
    assert area_fraction(flow_mask(frames).mask) <= 0.005
