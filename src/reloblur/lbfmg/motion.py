"""Segments of S whose motion explains the bands the mask found beside them.

A uniform object that moved is identical in B and S inside, so the evidence marks only
the bands along the edges that faced the motion. S shows the object sharp: a region
bounded by S's edges next to those bands may be the object's interior, or a static region
that happens to touch a band. The two are told apart by what each would have made of B.
If the region moved by ``v`` during B's exposure, with S taken in its middle, B around it
is S with the region's colours smeared over ``[-v/2, v/2]``::

    B = (1 - k * R) S + k * (R S)        (k: a line of length |v| along v; R: the region)

That prediction has bands on *both* sides of the region across ``v``. A static region
beside a band predicts bands where nothing was observed on its far side; an interior
predicts exactly the bands the mask holds. So each candidate region is scored by how much
of the change its best motion predicts is observed, in noise sigmas, on each side
separately, and taken when both sides confirm it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from reloblur.lbfmg.kernels import at_pixels, disk, gradients
from reloblur.lbfmg.morphology import Segments, bounding_box, component_window

# Travel (px) tried during B's exposure: coarse lengths first, then a refinement around
# the best one (a factor sqrt(2) either side) and in direction.
COARSE_LENGTHS = (4.0, 8.0, 16.0, 32.0)
MAX_LENGTH = 45.0
DIRECTION_STEP = 0.3  # rad, the refinement either side of the direction the edges suggest
LOOK_PX = 6  # a region this close to the mask is a candidate (S's edge band lies between)
OUTLINE_PX = 2.5  # the region's outline, where its edges' normals are read
EDGE_RING_PX = 2  # S's edge pixels this close to a region are its own boundary
INNER_BAND_PX = 12.0  # how far a band's inner half may reach from the region
HUBER = 3.0  # sigmas; an observed change beyond it (another object's blur) counts linearly
SIGNIFICANT = 1.0  # sigmas: a predicted change smaller than this is not scored
# The least predicted energy (sigma^2) on each side for the side to count as tested, and
# the least total improvement in chi-square for a region to be taken at all.
MIN_SIDE_ENERGY = 30.0
MIN_GAIN = 100.0
# The share of each side's predicted change that must be observed (1: all of it, -1: none
# of it). On the benchmark's seed-0 pairs the regions taken scored 0.10-0.69 (noise hides
# part of each band's ramp), those left 0.04 and below, most under -0.5.
MIN_CONFIRMED = 0.1
# A region is scored only when each of its sides across the motion holds this share of the
# mask beside it. Observed differences in place of the mask (a 5-sigma outline pixel) let in
# static regions whose edges B renders softer than S, which a short smear mimics.
FLANK_SHARE = 0.1
REJECT_EARLY = -0.25  # the coarse search's best below this: no refinement can reach MIN_CONFIRMED


@dataclass(frozen=True)
class SegmentMotion:
    """A candidate region's best-fitting motion.

    Attributes
    ----------
    pixels
        The region's size, px.
    direction
        Radians, image axes (x right, y down), modulo pi.
    length
        Travel over B's exposure, px; 0 for a region not scored (the mask beside it on one
        side only).
    gain
        Improvement of the robust chi-square around the region over "it did not move".
    confirmed
        The smaller over the two sides of the share of the predicted change observed; -1
        for a side with too little predicted change to tell, and for a region not scored.
    taken
        Whether the region was added to the mask.
    """

    pixels: int
    direction: float
    length: float
    gain: float
    confirmed: float
    taken: bool


def line_kernel(direction: float, length: float) -> np.ndarray:
    """A normalised line of ``length`` px through the kernel's centre along ``direction``
    (radians), anti-aliased: ``(2k+1, 2k+1)`` float32, summing to 1."""
    half = int(math.ceil(length / 2)) + 2
    kernel = np.zeros((2 * half + 1, 2 * half + 1), np.float32)
    t = np.linspace(-0.5, 0.5, max(8, int(4 * length))) * length
    xs, ys = half + t * math.cos(direction), half + t * math.sin(direction)
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    for dx, dy, weight in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), weight)
    return kernel / kernel.sum()


def _object_in_s(region: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The object ``region`` would be, if it moved: the region, the part of the mask's
    bands inside S's edges next to it, and those edges.

    A band straddles S's edge: its inner half is the object in S (B there mixes in the
    ground), and reaches the region without crossing an edge of S."""
    inner = (mask & ~edges).astype(np.uint8)
    _, parts = cv2.connectedComponents(inner, connectivity=4)
    touching = np.unique(parts[(cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & (inner > 0)])
    distance = cv2.distanceTransform((~region).astype(np.uint8), cv2.DIST_L2, 3)
    grown = region | (np.isin(parts, touching[touching > 0]) & (distance <= INNER_BAND_PX))
    ring = cv2.dilate(grown.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=EDGE_RING_PX) > 0
    return np.asarray(grown | (ring & edges))


def _huber(values: np.ndarray) -> np.ndarray:
    magnitude = np.abs(values)
    return np.where(magnitude <= HUBER, magnitude * magnitude, 2 * HUBER * magnitude - HUBER * HUBER)


class _Candidate:
    """One region's window, and the scoring of motion hypotheses on it."""

    def __init__(self, region: np.ndarray, mask: np.ndarray, edges: np.ndarray, valid: np.ndarray,
                 blur: np.ndarray, sharp: np.ndarray, inverse: np.ndarray) -> None:
        self.region = _object_in_s(region, mask, edges)
        self.mask = mask
        self.centre = tuple(float(v.mean()) for v in np.nonzero(region))
        self.distance = cv2.distanceTransform((~self.region).astype(np.uint8), cv2.DIST_L2, 3)  # 0 inside
        self.distance[self.region] = np.inf
        self.valid, self.blur, self.sharp, self.inverse = valid, blur, sharp, inverse

    def _around(self, reach: float) -> np.ndarray:
        """Flat indices of the valid pixels outside the region within ``reach`` px of it."""
        return np.flatnonzero((self.distance <= reach) & self.valid)

    def _observed(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(C, n)`` observed ``B - S`` in sigmas at ``index``, and the inverse sigmas."""
        inverse = at_pixels(self.inverse, index)
        return (at_pixels(self.blur, index) - at_pixels(self.sharp, index)) * inverse, inverse

    def direction(self) -> float:
        """The direction the evidence beside the region runs across: the principal axis of
        B's gradient directions on the region's outline, weighted by the observed
        chi-square (radians)."""
        index = self._around(OUTLINE_PX)
        # B's gradient: beside a band, S is flat (its edge lies a few pixels further) and its
        # gradient's direction is noise's, while B ramps from the object to the ground along
        # the motion.
        luminance = self.blur.mean(axis=0)
        gx, gy = (g.ravel()[index] for g in gradients(luminance))
        weight = np.minimum((self._observed(index)[0] ** 2).sum(axis=0), 100.0)
        norm = np.sqrt(gx * gx + gy * gy) + 1e-9
        ux, uy = gx / norm, gy / norm
        tensor = np.array([[np.sum(weight * ux * ux), np.sum(weight * ux * uy)],
                           [np.sum(weight * ux * uy), np.sum(weight * uy * uy)]])
        _, vectors = np.linalg.eigh(tensor)
        return math.atan2(vectors[1, 1], vectors[0, 1])

    def prepare(self, margin: int) -> bool:
        """Gather what scoring needs, up to ``margin`` px around the region; False when
        nothing there can be scored."""
        self.index = self._around(margin)
        if not self.index.size:
            return False
        self.ys, self.xs = np.divmod(self.index, self.region.shape[1])
        top, bottom, left, right = bounding_box(self.region)
        self.box = (top, left, bottom, right)
        self.observed, self.inverse_at = self._observed(self.index)
        self.sharp_at = at_pixels(self.sharp, self.index)
        inside = self.region.astype(np.float32)
        # The region's indicator and its colours, smeared together by one filter call.
        self.layers = np.ascontiguousarray(np.concatenate([inside[None], self.sharp * inside]).transpose(1, 2, 0))
        return True

    def _ahead(self, xs: np.ndarray, ys: np.ndarray, direction: float) -> np.ndarray:
        """Which of the pixels ``(xs, ys)`` lie ahead of the region's centre along ``direction``."""
        return (xs - self.centre[1]) * math.cos(direction) + (ys - self.centre[0]) * math.sin(direction) > 0

    def flanked(self, direction: float) -> bool:
        """Whether the mask lies beside the region on both of its sides across
        ``direction``: a motion makes a band on each, so a region the mask touches on one
        side only needs no scoring."""
        ys, xs = np.nonzero((self.distance <= LOOK_PX) & self.mask)
        ahead = self._ahead(xs, ys, direction)
        least = FLANK_SHARE * xs.size
        return bool(np.count_nonzero(ahead) > least and np.count_nonzero(~ahead) > least)

    def score(self, direction: float, length: float) -> tuple[float, float]:
        """``(gain, confirmed)`` of the motion ``length`` px along ``direction``."""
        kernel = line_kernel(direction, length)
        # Only the region and the kernel's reach around it can change: smear that part alone
        # (the layers are zero outside the region, so the result there is the same).
        half = kernel.shape[0] // 2
        top, left, bottom, right = self.box
        height, width = self.region.shape
        y0, x0, y1, x1 = max(0, top - half), max(0, left - half), min(height, bottom + half), min(width, right + half)
        reached = np.flatnonzero((self.ys >= y0) & (self.ys < y1) & (self.xs >= x0) & (self.xs < x1))
        smeared = cv2.filter2D(self.layers[y0:y1, x0:x1], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        smeared = smeared[self.ys[reached] - y0, self.xs[reached] - x0].T
        predicted = (smeared[1:] - smeared[0] * at_pixels(self.sharp_at, reached)) * at_pixels(self.inverse_at, reached)
        insignificant = np.abs(predicted) < SIGNIFICANT
        observed = at_pixels(self.observed, reached)
        change = _huber(observed) - _huber(observed - predicted)
        change[insignificant] = 0.0
        predicted[insignificant] = 0.0
        gain, energy = change.sum(axis=0), (predicted * predicted).sum(axis=0)
        ahead = self._ahead(self.xs[reached], self.ys[reached], direction)
        confirmed = math.inf
        for side in (ahead, ~ahead):
            side_energy = float(energy[side].sum())
            confirmed = min(confirmed, float(gain[side].sum()) / side_energy if side_energy > MIN_SIDE_ENERGY else -1.0)
        return float(gain.sum()), confirmed


def _longest_gaining(candidate: _Candidate, direction: float) -> tuple[tuple[float, float], float]:
    """The best of :data:`COARSE_LENGTHS` along ``direction``: ``((gain, confirmed),
    length)``. Lengths are tried in increasing order until the gain falls: it rises to the
    travel that fits and falls beyond it, and for a region that did not move it falls from
    the start (each longer smear predicts more change that is not there)."""
    best = (candidate.score(direction, COARSE_LENGTHS[0]), COARSE_LENGTHS[0])
    for length in COARSE_LENGTHS[1:]:
        trial = candidate.score(direction, length)
        if trial[0] <= best[0][0]:
            break
        best = (trial, length)
    return best


def fill_moved_segments(mask: np.ndarray, regions: Segments, blur: np.ndarray, sharp: np.ndarray,
                        inverse: np.ndarray, edges: np.ndarray, valid: np.ndarray, *, min_pixels: float,
                        max_pixels: float) -> tuple[np.ndarray, list[SegmentMotion]]:
    """Add to ``mask`` the regions of S next to it whose motion explains the bands around
    them on both sides.

    Parameters
    ----------
    mask
        ``(H, W)`` bool, the evidence's regions (a superset of the mask ``regions`` was cut
        by: a region it now holds is not a candidate).
    regions
        :func:`~reloblur.lbfmg.morphology.segments` of S.
    blur, sharp
        ``(C, H, W)`` float32 B and S, smoothed alike, S brightness-matched to B.
    inverse
        ``(C, H, W)`` 1 / predicted sigma of ``blur - sharp`` on a static pixel.
    edges
        ``(H, W)`` bool, S's edges (a region's own boundary is the edge pixels beside it).
    valid
        ``(H, W)`` bool, where S is defined; nothing outside it is scored.
    min_pixels, max_pixels
        The sizes of region considered.

    Returns
    -------
    tuple
        The mask with the regions taken, and every candidate's :class:`SegmentMotion`.
    """
    labels, stats = regions.labels, regions.stats
    if len(stats) <= 1 or not mask.any():
        return mask, []
    # Candidates lie within LOOK_PX of the mask: dilate only the mask's bounding box.
    top, bottom, left, right = bounding_box(mask)
    around = (slice(max(0, top - LOOK_PX), bottom + LOOK_PX), slice(max(0, left - LOOK_PX), right + LOOK_PX))
    near = disk(LOOK_PX)
    beside = (cv2.dilate(mask[around].astype(np.uint8), near) > 0) & ~mask[around]
    area = stats[:, cv2.CC_STAT_AREA]
    candidates = [int(label) for label in np.unique(labels[around][beside])
                  if label > 0 and not regions.unbounded[label] and min_pixels <= area[label] <= max_pixels]
    margin = int(math.ceil(MAX_LENGTH / 2)) + 2
    reach = margin + int(INNER_BAND_PX) + EDGE_RING_PX + 1  # the object in S, and the scored ring around it
    filled, motions = mask.copy(), []
    for label in candidates:
        rows, cols = component_window(stats, label, reach, labels.shape)
        region = labels[rows, cols] == label
        candidate = _Candidate(region, mask[rows, cols], edges[rows, cols], valid[rows, cols], blur[:, rows, cols],
                               sharp[:, rows, cols], inverse[:, rows, cols])
        direction = candidate.direction()
        if not candidate.flanked(direction) or not candidate.prepare(margin):
            motions.append(SegmentMotion(int(area[label]), direction % math.pi, 0.0, 0.0, -1.0, False))
            continue
        (gain, confirmed), length = _longest_gaining(candidate, direction)
        if confirmed >= REJECT_EARLY:
            trials = [(direction, length * factor) for factor in (2**-0.5, 2**0.5) if length * factor <= MAX_LENGTH]
            trials += [(direction + step, length) for step in (-DIRECTION_STEP, DIRECTION_STEP)]
            for trial_direction, trial_length in trials:
                trial = candidate.score(trial_direction, trial_length)
                if trial[0] > gain:
                    (gain, confirmed), direction, length = trial, trial_direction, trial_length
        taken = gain > MIN_GAIN and confirmed > MIN_CONFIRMED
        motions.append(SegmentMotion(int(area[label]), direction % math.pi, length, gain, confirmed, taken))
        if taken:
            # S's edge band between the region and the mask's bands belongs to the object.
            ring = np.ones((7, 7), np.uint8)
            between = (cv2.dilate(candidate.region.astype(np.uint8), ring) > 0)
            between &= (cv2.dilate(mask[rows, cols].astype(np.uint8), ring) > 0) & edges[rows, cols]
            filled[rows, cols] |= candidate.region | between
    return filled, motions
