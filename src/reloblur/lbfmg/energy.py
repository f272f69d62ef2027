"""The energy of B - S: a second test of each footprint, of the difference's spread where
the evidence tests its mean.

A textured object that moved leaves its texture's fine detail in ``B - S`` (B holds it
smeared along the motion, S sharp): a signal of mean zero that the evidence's smoothing
averages away, so that such an object shows as scattered blobs above the thresholds. Its
energy does not cancel. Over each footprint, the squared difference in units of its
predicted noise is a chi-square test of "``B - S`` is noise and what two cameras render
differently of a static scene"; :func:`energy_evidence` gives it in sigmas of its own
spread on the pair's static pixels, and the mask grows into where it exceeds the growing
threshold (never seeds from it).
"""

from __future__ import annotations

import cv2
import numpy as np

from reloblur.robust import evenly_spaced, mad_sigma

# px: the scale of the detail a static pair's rendering differences (demosaicing,
# resampling, the lenses' sharpness) leave in B - S in proportion to: the pixel's own.
DETAIL_SIGMA_PX = 1.0
# A pixel's squared evidence counts at most this (5 sigmas squared): one outlier, a hot
# pixel or a block's edge, is not a footprint's texture.
SQUARED_CAP = 25.0
# The static pixels' statistics are taken in this many bins of S's level, of equal counts
# (the noise fits bin the levels so, more finely): the noise model's relative error varies
# with the level, and a coarser bin holds enough pixels for a median of squares.
LEVEL_BINS = 8
# Fewer static pixels than this measure nothing (the test is skipped); a level bin with
# fewer than LEVEL_BIN_MIN_PIXELS takes the whole sample's statistics.
MIN_STATIC_PIXELS = 200
LEVEL_BIN_MIN_PIXELS = 50


def _squared_detail(channel: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """The square of ``channel`` less its Gaussian of :data:`DETAIL_SIGMA_PX` (its
    pixel-scale detail), in ``unit``: a new array."""
    detail = cv2.GaussianBlur(channel, (0, 0), DETAIL_SIGMA_PX)
    np.subtract(channel, detail, out=detail)
    detail *= unit
    return np.square(detail, out=detail)


def energy_evidence(bp: np.ndarray, sp: np.ndarray, inverse: np.ndarray, static: np.ndarray, *,
                    sigma_px: float, unmeasured: np.ndarray | None = None, centred: np.ndarray | None = None,
                    samples: int = 20_000) -> np.ndarray | None:
    """The energy of ``B - S`` over each footprint, in sigmas of its spread on the static pixels.

    Per channel, ``B - S`` unsmoothed, in units of the evidence's predicted sigma
    (``inverse``) rescaled to unit spread on ``static`` (an unsmoothed difference is
    noisier than a smoothed one by a factor demosaicing and resampling change: measured,
    not assumed), is squared. A static pair's rendering differences leave energy in
    proportion to the scene's pixel-scale detail ``D`` (the larger of B's and S's, in the
    same units): the expected square is ``base + a D``, fitted on the static pixels
    (``base``, the median square over the half with the least detail; ``a``, the median
    of the excess over ``D`` on the fifth with the most), and each square is divided by
    it, then capped at :data:`SQUARED_CAP`; at ``unmeasured`` pixels (a clipped value is a
    bound, not a measurement) it is what a static pixel gives on average, so that they
    count neither way. Motion leaves an object's detail in ``B - S``
    whole, far above the share a static rendering leaves. The channels' mean, smoothed by
    the evidence's Gaussian of ``sigma_px``, is standardised by its median and robust
    spread on the static pixels, per bin of S's level (:data:`LEVEL_BINS`).

    Parameters
    ----------
    bp, sp
        ``(C, H, W)`` B and brightness-matched S before smoothing, display-encoded.
    inverse
        ``(C, H, W)`` 1 / the predicted sigma of the smoothed difference (the judge's).
    static
        ``(H, W)`` bool, pixels judged static, that measure the test's own spread.
    sigma_px
        The evidence's smoothing, pixels: the footprint the energy is summed over.
    unmeasured
        ``(H, W)`` bool, pixels either image clipped in some channel, or None: none.
    centred
        ``(H, W)`` bool, pixels where ``B - S`` is taken less its mean over the footprint
        (its Gaussian of ``sigma_px``), or None: none. There the energy tests the spread
        alone: where a difference of mean is accounted for (a local colour map explained
        it), or is not to carry the mask's growth (far from what the mask holds).
    samples
        At most this many static pixels, evenly spaced, measure each statistic.

    Returns
    -------
    numpy.ndarray or None
        ``(H, W)`` float32 in sigmas; None if fewer than :data:`MIN_STATIC_PIXELS` pixels
        are static.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> texture = rng.uniform(0.3, 0.7, (1, 96, 96)).astype(np.float32)
    >>> b = texture + rng.normal(0, 0.01, texture.shape).astype(np.float32)
    >>> s = texture + rng.normal(0, 0.01, texture.shape).astype(np.float32)
    >>> b[:, 30:60, 30:60] = cv2.blur(texture[0], (9, 1))[30:60, 30:60]  # smeared in B only
    >>> energy = energy_evidence(b, s, np.full_like(b, 100.0), np.ones((96, 96), bool), sigma_px=1.5)
    >>> bool(energy[45, 45] > 10 and abs(energy[10, 10]) < 3)
    True
    """
    index = np.flatnonzero(static)
    if index.size < MIN_STATIC_PIXELS:
        return None
    index = evenly_spaced(index, samples)
    total = np.zeros(bp.shape[1:], np.float32)
    centre = centred is not None and bool(centred.any())
    for c in range(bp.shape[0]):
        difference = bp[c] - sp[c]
        if centre:
            np.subtract(difference, cv2.GaussianBlur(difference, (0, 0), sigma_px), out=difference, where=centred)
        unit = inverse[c] / max(mad_sigma(difference.ravel()[index] * inverse[c].ravel()[index]), 1e-12)
        squared = np.square(difference * unit)
        detail = _squared_detail(bp[c], unit)
        np.maximum(detail, _squared_detail(sp[c], unit), out=detail)
        at_detail, at_squared = detail.ravel()[index], squared.ravel()[index]
        plain = at_detail <= np.median(at_detail)
        base = float(np.median(at_squared[plain]))
        textured = at_detail >= np.quantile(at_detail, 0.8)
        share = float(np.median(np.maximum(at_squared[textured] - base, 0.0) / np.maximum(at_detail[textured], 1e-12)))
        expected = detail
        expected *= share
        expected += max(base, 1e-12)
        squared /= expected
        np.minimum(squared, SQUARED_CAP, out=squared)
        if unmeasured is not None:
            np.putmask(squared, unmeasured, float(np.mean(squared.ravel()[index])))
        total += squared
    energy = cv2.GaussianBlur(total, (0, 0), sigma_px) / np.float32(bp.shape[0])
    return _standardised(energy, sp.mean(axis=0), index)


def _standardised(energy: np.ndarray, level: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``energy`` less its median over ``index`` in its level bin, over the bin's robust spread."""
    values, levels = energy.ravel()[index], level.ravel()[index]
    edges = np.quantile(levels, np.linspace(0.0, 1.0, LEVEL_BINS + 1))
    # The bin is the number of inner edges at or below the level (a tenth of searchsorted's
    # cost), in bytes: LEVEL_BINS is far below 256.
    bins = np.zeros(level.shape, np.uint8)
    for edge in edges[1:-1]:
        bins += level >= edge
    sampled = bins.ravel()[index]
    centre, spread = float(np.median(values)), mad_sigma(values)
    shift = np.full(LEVEL_BINS, centre, np.float32)
    scale = np.full(LEVEL_BINS, max(spread, 1e-12), np.float32)
    for b in range(LEVEL_BINS):
        held = values[sampled == b]
        if held.size >= LEVEL_BIN_MIN_PIXELS:
            shift[b], scale[b] = np.median(held), max(mad_sigma(held), 1e-12)
    standardised = np.take(shift, bins)
    np.subtract(energy, standardised, out=standardised)
    standardised /= np.take(scale, bins)
    return standardised
