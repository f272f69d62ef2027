"""S's instant within B's exposure, read from the pair itself.

A pair from a folder says nothing of when S was exposed, but its trails do. Across an
edge of S inside a moving region, ``B - S`` takes one of two shapes:

- **S at the middle of B's exposure.** S's edge lies inside the trail: on one side B
  holds part of the object where S shows the ground, on the other part of the ground where
  S shows the object. The two sides' differences are about equal and opposite (measured
  along S's step), and their sum is about 0.
- **S at the start or end.** S's edge is where the trail ends: beyond it B shows what S
  shows (the object was never there during B's exposure, or always), so the difference
  is 0 on that side and the full step on the other. The sum is as large as the parts.

Texture, noise and blends of other edges give the two sides' differences independent
signs, whose sum is on average ``1 / sqrt(2)`` of their sizes' (two Gaussians). So the
share ``sum |d+ + d-| / sum (|d+| + |d-|)`` over S's strong edges in the moving region
is about 0.5 for S at the middle (measured: 0.46-0.65 per row of pairs) and 0.8 for an
end (0.78-0.83), and a pair is taken to have S at an end only where the share is above
the random-sign value with confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from reloblur.robust import mad_sigma

RANDOM_SIGN_SHARE = 1.0 / math.sqrt(2.0)  # two sides with independent Gaussian differences
CONFIDENCE_SIGMAS = 2.0  # standard errors the share must stand above RANDOM_SIGN_SHARE
MIN_EDGE_SAMPLES = 50  # fewer: too few steps to say (a pair whose moving edges clipped)
STEP_OFFSET_PX = 2.0  # where each side is read, along S's gradient: past the edge's own blur
FINE_SIGMA_PX = 0.7  # the smoothing both images get first: a step stays within a pixel
EDGE_SIGMAS = 4.0  # S's step, and the two sides' differences together, in the difference's noise
REGION_GROWTH_PX = 2  # the moving region grown by this: a trail's end is on its rim
CLIP_GUARD_PX = 3  # clipped pixels grown by this are left out: a bound is no measurement


@dataclass(frozen=True)
class StepEvidence:
    """How one-sided ``B - S`` is across S's edges in the moving region.

    Attributes
    ----------
    share
        ``sum |d+ + d-| / sum (|d+| + |d-|)`` over the edge samples: about 0 for S at the
        middle of B's exposure, 1 for S at an end, ``1 / sqrt(2)`` for random signs;
        ``nan`` without samples.
    standard_error
        Of ``share`` (delta method over the samples); ``nan`` without samples.
    samples
        Edge pixels read.
    """

    share: float
    standard_error: float
    samples: int

    @property
    def at_an_end(self) -> bool:
        """Whether the pair shows S exposed at the start or end of B's exposure: enough
        samples, and the share :data:`CONFIDENCE_SIGMAS` standard errors above what random
        signs give."""
        return (self.samples >= MIN_EDGE_SAMPLES
                and self.share - CONFIDENCE_SIGMAS * self.standard_error > RANDOM_SIGN_SHARE)

    def to_dict(self) -> dict[str, Any]:
        """As the mask sidecar's diagnostics record it (``None`` for a share not measured)."""
        return {"share": None if math.isnan(self.share) else round(self.share, 4),
                "standard_error": None if math.isnan(self.standard_error) else round(self.standard_error, 4),
                "samples": self.samples, "at_an_end": self.at_an_end}


NO_EVIDENCE = StepEvidence(float("nan"), float("nan"), 0)


def step_evidence(blur: np.ndarray, sharp: np.ndarray, moving: np.ndarray, *, usable: np.ndarray | None = None,
                  clipped: np.ndarray | None = None) -> StepEvidence:
    """Whether the trails of ``moving`` end in steps at S's edges (see the module).

    Parameters
    ----------
    blur, sharp
        ``(C, H, W)`` float, B and S aligned, S's brightness matched to B's, unsmoothed.
    moving
        ``(H, W)`` bool, the moving region (a first mask).
    usable
        ``(H, W)`` bool, pixels whose values can be compared; default all. The difference's
        noise is measured on usable pixels outside the grown region.
    clipped
        ``(H, W)`` bool, where either image clipped in some channel: left out, grown by
        :data:`CLIP_GUARD_PX`.

    Returns
    -------
    StepEvidence
        :data:`NO_EVIDENCE` where the region is empty or no edge is strong enough.
    """
    if blur.shape != sharp.shape or blur.ndim != 3 or moving.shape != blur.shape[1:]:
        raise ValueError(f"blur {blur.shape}, sharp {sharp.shape} and moving {moving.shape} do not match "
                         "((C, H, W), (C, H, W), (H, W))")
    if not moving.any():
        return NO_EVIDENCE
    grow = 2 * REGION_GROWTH_PX + 1
    grown = cv2.dilate(moving.astype(np.uint8), np.ones((grow, grow), np.uint8)) > 0
    comparable = np.ones(moving.shape, bool) if usable is None else usable.astype(bool)
    quiet = comparable & ~grown  # the difference's noise is measured off the moving region
    region = grown & comparable
    if clipped is not None and clipped.any():
        guard = 2 * CLIP_GUARD_PX + 1
        region &= ~(cv2.dilate(clipped.astype(np.uint8), np.ones((guard, guard), np.uint8)) > 0)
    noise_pixels = np.flatnonzero(quiet)[::13]
    if noise_pixels.size < 100 or not region.any():
        return NO_EVIDENCE
    channels = []
    for b, s in zip(blur, sharp):
        smooth_s = cv2.GaussianBlur(np.asarray(s, np.float32), (0, 0), FINE_SIGMA_PX)
        difference = cv2.GaussianBlur(np.asarray(b, np.float32) - np.asarray(s, np.float32), (0, 0), FINE_SIGMA_PX)
        sigma = max(mad_sigma(difference.ravel()[noise_pixels]), 1e-9)
        # Sobel's 3x3 weights sum to 8 across the step: a unit step reads 1 a pixel
        gx = cv2.Sobel(smooth_s, cv2.CV_32F, 1, 0, ksize=3) / 8
        gy = cv2.Sobel(smooth_s, cv2.CV_32F, 0, 1, ksize=3) / 8
        channels.append((smooth_s, difference, gx, gy, sigma))
    strongest = np.zeros(moving.shape, np.float32)
    for _, _, gx, gy, sigma in channels:
        np.maximum(strongest, cv2.magnitude(gx, gy) * np.float32(1.0 / sigma), out=strongest)
    ridge = strongest >= cv2.dilate(strongest, np.ones((3, 3), np.uint8))  # one pixel across each edge
    rows, cols = np.nonzero(region & ridge & (strongest > EDGE_SIGMAS))
    if rows.size == 0:
        return NO_EVIDENCE
    # Each pixel is read in the channel where S's step stands highest above the noise.
    channel_of = np.stack([np.hypot(gx[rows, cols], gy[rows, cols]) / sigma
                           for _, _, gx, gy, sigma in channels]).argmax(axis=0)
    one_sided, total = [], []
    for index, (smooth_s, difference, gx, gy, sigma) in enumerate(channels):
        here = channel_of == index
        if not here.any():
            continue
        r, c = rows[here], cols[here]
        nx, ny = gx[r, c], gy[r, c]
        norm = np.maximum(np.hypot(nx, ny), 1e-12)
        nx, ny = nx / norm * STEP_OFFSET_PX, ny / norm * STEP_OFFSET_PX
        x, y = c.astype(np.float32), r.astype(np.float32)
        ahead = (x + nx, y + ny)
        behind = (x - nx, y - ny)
        step = _read(smooth_s, *ahead) - _read(smooth_s, *behind)
        d_ahead, d_behind = _read(difference, *ahead), _read(difference, *behind)
        size = np.abs(d_ahead) + np.abs(d_behind)
        keep = (step > EDGE_SIGMAS * sigma) & (size > EDGE_SIGMAS * sigma)
        one_sided.append(np.abs(d_ahead + d_behind)[keep])
        total.append(size[keep])
    a, t = np.concatenate(one_sided).astype(np.float64), np.concatenate(total).astype(np.float64)
    if t.size == 0:
        return NO_EVIDENCE
    share = float(a.sum() / t.sum())
    # a ratio of sums: its variance by the delta method
    error = float(np.sqrt(np.var(a - share * t) / t.size) / t.mean())
    return StepEvidence(share, error, int(t.size))


def _read(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` at the subpixel points ``(x, y)``, bilinear."""
    return cv2.remap(image, x.reshape(-1, 1), y.reshape(-1, 1), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE).ravel()
