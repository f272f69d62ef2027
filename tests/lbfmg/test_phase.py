"""Known answers for reading S's instant from a pair (reloblur.lbfmg.phase)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.imaging.imageio import encode_srgb
from reloblur.lbfmg.generate import generate_mask
from reloblur.lbfmg.metrics import iou
from reloblur.lbfmg.phase import NO_EVIDENCE, RANDOM_SIGN_SHARE, step_evidence

H, W = 240, 360


def _ground(seed: int) -> np.ndarray:
    """Linear RGB texture at two scales, mean level about 0.3."""
    rng = np.random.default_rng(seed)
    grey = sum(cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), s) for s in (1.5, 8))
    grey = 0.3 + 0.08 * grey / grey.std()
    return np.clip(grey[..., None] * np.array([1.1, 1.0, 0.85]), 0.02, 1)


def _pair(phase: float, *, seed: int = 5, shift: int = 18, steps: int = 36, noise: float = 1.0
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B: a uniform 120x120 patch moving ``shift`` px right over a textured ground; S: the
    scene at ``phase`` of B's exposure; both through a Poisson-Gaussian sensor (S at 1.5x
    B's noise). Linear ``(H, W, 3)`` B and S, and the swept region ``(H, W)`` bool."""
    ground, rng = _ground(seed), np.random.default_rng(seed)
    total, swept, sharp = np.zeros_like(ground), np.zeros((H, W), bool), ground
    for k in range(steps + 1):
        x0 = 120 + int(round(shift * (k / steps - phase)))
        frame = ground.copy()
        frame[60:180, x0 : x0 + 120] = (0.55, 0.45, 0.35)
        if k < steps:
            total += frame
        swept[60:180, x0 : x0 + 120] = True
        if k == int(phase * steps):
            sharp = frame

    def expose(radiance: np.ndarray, scale: float) -> np.ndarray:
        well = 8000.0 / scale**2
        return np.clip((rng.poisson(radiance * well) + rng.normal(0, 3 * scale, radiance.shape)) / well, 0, 1)

    return expose(total / steps, noise), expose(sharp, 1.5 * noise), swept


def _planar(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(image, -1, 0), np.float32)


@pytest.mark.parametrize("phase, at_an_end", [(0.0, True), (1.0, True), (0.5, False)])
def test_trails_that_end_at_ss_edges_read_as_s_at_an_end(phase, at_an_end):
    """Known answer: with S at the start (end), B - S is 0 beyond S's trailing (leading)
    edge and the full contrast inside, so the share is near 1; with S at the middle, the
    two sides of each edge hold part of the contrast each, of opposite signs: near 0 on a
    plain ground, here 0.59 (the ground's texture differs between the sides)."""
    blur, sharp, swept = _pair(phase)
    evidence = step_evidence(_planar(blur), _planar(sharp), swept)
    assert evidence.samples >= 80
    assert evidence.at_an_end is at_an_end
    if at_an_end:
        assert evidence.share > 0.85
    else:
        assert evidence.share < RANDOM_SIGN_SHARE


def test_no_moving_region_or_only_clipped_edges_say_nothing():
    blur, sharp, swept = _pair(0.0)
    b, s = _planar(blur), _planar(sharp)
    assert step_evidence(b, s, np.zeros_like(swept)) == NO_EVIDENCE
    assert step_evidence(b, s, swept, clipped=np.ones_like(swept)) == NO_EVIDENCE
    assert not NO_EVIDENCE.at_an_end and NO_EVIDENCE.to_dict()["share"] is None


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="do not match"):
        step_evidence(np.zeros((3, 10, 10)), np.zeros((3, 10, 12)), np.zeros((10, 10), bool))


@pytest.mark.parametrize("phase, told", [(0.0, "start"), (0.5, "middle")])
def test_not_told_the_mask_step_reads_ss_instant_and_masks_as_told(phase, told):
    """Through generate_mask on display-encoded images: not told S's instant, the mask is
    the one told it (the finer step trim where S was at the start, none at the middle),
    and the evidence is in the sidecar's diagnostics."""
    blur, sharp, swept = _pair(phase)
    b, s = encode_srgb(blur), encode_srgb(sharp)
    read, given = generate_mask(b, s), generate_mask(b, s, s_phase=told)
    assert read.step_ends is (told == "start")
    assert np.array_equal(read.mask, given.mask)
    assert iou(read.mask, swept) > 0.85
    evidence = read.diagnostics()["s_phase_evidence"]
    assert evidence["at_an_end"] is (told == "start") and evidence["samples"] >= 50
    assert given.step_evidence is None and given.diagnostics()["s_phase_evidence"] is None
