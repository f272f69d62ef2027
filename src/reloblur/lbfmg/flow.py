"""Masks from motion: dense optical flow between a burst's consecutive frames.

Where a burst's raw frames were kept (``capture --mode burst --keep-frames``), what moved
can be seen directly instead of inferred from B - S: the flow between frames k and k+1
(OpenCV's DIS, on lightly smoothed grey frames) with the camera's own motion (the median
flow) removed. Noise makes flow wander in flat, dark regions, so a pixel counts as moving
in a frame pair only where the flow is both large (over ``min_px`` per frame) and
consistent forwards and backwards (the backward flow, sampled where the forward flow
lands, returns within ``consistency_px``); and it must move in at least ``min_votes`` of
the K - 1 pairs. Specks are opened away and regions below ``min_area`` dropped.

Measured on the simulator's bursts (8 frames): mean IoU 0.89 at 538x359 (the difference
method: 0.96), at most 0.43 % of a static frame flagged; at 320x224 0.53-0.78, as slow
objects move less than ``min_px`` a frame (a lower threshold lets noise through: 0.5 px
flagged 2.5-5 % of static frames). So flow alone is weaker than the difference method on
these bursts; ``mask generate --method both`` adds its regions to the difference's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from reloblur.errors import ReloblurError
from reloblur.formats.masks import blur_ratio, mask_components
from reloblur.lbfmg.generate import MaskResult
from reloblur.robust import mad_sigma


@dataclass
class FlowMaskResult:
    """A mask from motion, and how many frame pairs saw each pixel move."""

    mask: np.ndarray  # (H, W) uint8 0/255
    votes: np.ndarray  # (H, W) int32, frame pairs in which the pixel moved consistently
    pairs: int


def flow_mask(frames: np.ndarray, *, min_px: float = 1.0, consistency_px: float = 0.5, min_votes: int = 2,
              min_area: float = 0.0005, smooth_px: float = 1.0, change_sigmas: float = 4.0) -> FlowMaskResult:
    """What moved during a burst, from the optical flow between its consecutive frames.

    Parameters
    ----------
    frames
        ``(K, H, W, 3)`` or ``(K, H, W)`` uint8 display-encoded frames (K >= 2).
    min_px
        Flow per frame pair (px) below which a pixel is not moving.
    consistency_px
        Largest forward-backward disagreement (px) of a trusted flow vector.
    min_votes
        Frame pairs in which a pixel must move (fewer when the burst has fewer pairs).
    min_area
        Smallest kept region, as a fraction of the image.
    smooth_px
        Gaussian smoothing of the grey frames before the flow (px).
    change_sigmas
        A flow vector counts only where the frame pair changed beyond its noise by this
        many robust sigmas (:func:`_changed`): DIS finds consistent-looking flow in noise
        on flat regions, which a change test rejects on physical grounds.

    Returns
    -------
    FlowMaskResult

    Raises
    ------
    ReloblurError
        Fewer than two frames, or frames that are not 8-bit images of one size.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or frames.shape[0] < 2 or frames.dtype != np.uint8:
        raise ReloblurError(f"flow masks need (K, H, W[, 3]) uint8 frames with K >= 2, got {frames.shape} "
                            f"{frames.dtype}")
    grey = [cv2.GaussianBlur(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) if f.ndim == 3 else f, (0, 0), smooth_px)
            for f in frames]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)  # type: ignore[attr-defined]  # not in the stubs
    h, w = grey[0].shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    votes = np.zeros((h, w), np.int32)
    for a in range(len(grey) - 1):
        forward = dis.calc(grey[a], grey[a + 1], None)
        backward = dis.calc(grey[a + 1], grey[a], None)
        # The camera's own motion (the static majority's flow) is not local blur.
        forward -= _camera_motion(forward)
        backward -= _camera_motion(backward)
        fx, fy = forward[..., 0], forward[..., 1]
        returned = cv2.remap(backward, xx + fx, yy + fy, cv2.INTER_LINEAR)
        rx, ry = fx + returned[..., 0], fy + returned[..., 1]
        consistent = rx * rx + ry * ry < consistency_px**2  # squared lengths: no square roots
        votes += (consistent & (fx * fx + fy * fy > min_px**2)
                  & _changed(grey[a], grey[a + 1], change_sigmas)).astype(np.int32)
    pairs = len(grey) - 1
    moving = cv2.morphologyEx((votes >= min(min_votes, pairs)).astype(np.uint8), cv2.MORPH_OPEN,
                              np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(moving, connectivity=8)
    keep = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area * h * w) + 1
    mask = np.where(np.isin(labels, keep), 255, 0).astype(np.uint8)
    return FlowMaskResult(mask, votes, pairs)


def _camera_motion(flow: np.ndarray) -> np.ndarray:
    """The median flow, per component, of every 3rd pixel in each direction (a full median
    costs more than the flow)."""
    return np.array([np.median(flow[::3, ::3, c]) for c in (0, 1)], np.float32)


def _changed(a: np.ndarray, b: np.ndarray, sigmas: float) -> np.ndarray:
    """Where the frame changed beyond its noise: the smoothed |a - b| above the static
    majority's level by ``sigmas`` robust sigmas. Flow in a region that did not change
    (flat, or noise alone) says nothing about motion, however consistent it looks."""
    change = cv2.GaussianBlur(np.abs(a.astype(np.float32) - b.astype(np.float32)), (0, 0), 2.0)
    sample = change[::3, ::3]
    centre = float(np.median(sample))
    spread = mad_sigma(sample, center=centre)
    return change > centre + sigmas * max(spread, 0.25)


def with_motion(result: MaskResult, flow: FlowMaskResult, *, method: str) -> MaskResult:
    """A difference mask combined with a burst's motion mask.

    Parameters
    ----------
    result
        :func:`reloblur.lbfmg.generate.generate_mask`'s result for the burst's B and S.
    flow
        :func:`flow_mask` of the burst's frames (same grid).
    method
        ``flow``: the motion mask replaces the difference's; ``both``: the difference's
        mask plus every motion region that overlaps it (motion fills what the difference
        saw only in part, e.g. a uniform object's interior).

    Returns
    -------
    MaskResult
        A copy of ``result`` with the mask, confidence, blur ratio and components of the
        combination; confidence is at least the share of frame pairs that saw motion.
    """
    if method not in ("flow", "both"):
        raise ReloblurError(f"method {method!r}: choose flow or both")
    moving = flow.mask > 0
    if method == "flow":
        mask = moving
    else:
        evidence = result.mask > 0
        _, labels = cv2.connectedComponents(moving.astype(np.uint8), connectivity=8)
        touching = np.unique(labels[evidence & moving])
        mask = evidence | np.isin(labels, touching[touching > 0])
    out = np.where(mask, 255, 0).astype(np.uint8)
    share = np.clip(flow.votes / max(flow.pairs, 1), 0.0, 1.0).astype(np.float32)
    confidence = np.where(mask, np.maximum(np.maximum(result.confidence, share), 0.5),
                          np.minimum(np.maximum(result.confidence, share), 127 / 255)).astype(np.float32)
    return dataclasses.replace(result, mask=out, confidence=confidence, blur_ratio=blur_ratio(out),
                               components=mask_components(out))
