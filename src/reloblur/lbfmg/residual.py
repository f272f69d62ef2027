"""What two cameras render differently on a static scene, fitted beside the noise.

Two cameras never render an edge identically (misregistration, a distortion the
homography cannot hold, sharpness, demosaicing): a residual ``kappa(r) |grad B|`` (plus a
curvature term) is fitted per channel, measured per tile and combined by a robust radial
model that grows towards the corners as a distortion does (:func:`fit_edge_residual_field`).
Detail finer than the smoothing, which demosaicing and S's resampling alias differently,
leaves a residual that grows with its energy (:func:`fine_detail`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from reloblur.lbfmg.kernels import at_pixels
from reloblur.robust import (
    MAD_TO_SIGMA,
    evenly_spaced,
    huber_weights,
    mad_along_last,
    median_along_last,
    median_in_place,
    median_of_sorted,
    quantile_runs,
)

# fit_edge_residual_field: the grid of tiles the static rendering residual is measured on,
# and the fewest tiles (of enough usable pixels) that a radial model is fitted through.
EDGE_TILES = 4
EDGE_MIN_TILES = 6
# fit_edge_residual bins pixels EDGE_FIT_CELLS x EDGE_FIT_CELLS by gradient and curvature,
# and reports no residual from fewer usable pixels than EDGE_FIT_MIN_PIXELS (~55 a bin).
EDGE_FIT_CELLS = 6
EDGE_FIT_MIN_PIXELS = 2000
# Pixels a whole-frame fit (fit_edge_residual) samples, evenly over the usable ones.
EDGE_FIT_MAX_SAMPLES = 10_000
# Pixels per tile of fit_edge_residual_field: ~110 a bin; 2000 left single tiles' MADs so
# noisy that the vignetting-and-distortion row's worst static area rose from 0.34 to 1.6 %.
EDGE_TILE_SAMPLES = 4000


def fine_detail(channel: np.ndarray, noise_variance: np.ndarray, usable: np.ndarray, *,
                sigma_px: float) -> np.ndarray:
    """The local energy of detail finer than the smoothing, above its noise floor.

    Two cameras render detail near their pixel pitch differently: demosaicing samples red
    and blue every other pixel and aliases what is finer (on a Bayer pair, the static
    residual of a lattice tower was 0.24-0.35 of the Laplacian's RMS in R and B, a moving
    edge's 1.4-3), and S is resampled onto B's grid. Aliasing folds that detail down to the
    frequencies the smoothing keeps, so the smoothed difference carries a residual that
    grows with it, and neither ``|grad B|`` nor the smoothed curvature measures it (both
    are computed after the smoothing that removes the detail itself).

    Parameters
    ----------
    channel
        ``(H, W)`` float32, one channel of B before smoothing.
    noise_variance
        ``(H, W)`` predicted noise variance of the smoothed difference at each pixel's
        level (the noise's share of the energy scales with it).
    usable
        ``(H, W)`` bool, the static pixels the noise floor is measured on.
    sigma_px
        The smoothing scale: the energy is averaged over the same footprint.

    Returns
    -------
    np.ndarray
        ``(H, W)`` float32, ``sqrt(max(E - f * v, 0))`` where ``E`` is the Gaussian-weighted
        mean of the squared 4-neighbour Laplacian, ``v`` is ``noise_variance`` and ``f`` is
        the median of ``E / v`` over ``usable``. On a frame of mostly plain background that
        median is the noise's own energy; where detail fills most of the frame it is more,
        which only withholds tolerance.
    """
    laplacian = cv2.Laplacian(channel, cv2.CV_32F, ksize=1)
    energy = cv2.GaussianBlur(laplacian * laplacian, (0, 0), sigma_px)
    # The floor from every 4th row and column: a median of tens of thousands of pixels is as
    # good as one of all of them, at a sixteenth of the cost.
    step = (slice(None, None, 4), slice(None, None, 4))
    measured = usable[step] & (noise_variance[step] > 0)
    if not measured.any():
        return np.zeros_like(energy)
    floor = float(np.median(energy[step][measured] / noise_variance[step][measured]))
    # In place on the frame-sized arrays: at 2152x1436 each temporary is 12 MB of traffic.
    above = noise_variance * floor
    np.subtract(energy, above, out=energy)
    np.maximum(energy, 0.0, out=energy)
    return np.sqrt(energy, out=energy)


@dataclass(frozen=True)
class EdgeResidual:
    """The static rendering residual of one channel (:func:`fit_edge_residual_field`)."""

    kappa: np.ndarray | float  # px: (H, W), or one value where it does not vary over the frame
    typical: float  # px: kappa at the tiles' median radius, the sidecar's diagnostic
    beta: float  # px^2
    tiles: int  # tiles measured; 0 when the frame was fitted as a whole


@dataclass(frozen=True)
class EdgeTiles:
    """Where :func:`fit_edge_residual_field` measures: the same for every channel of a pair
    (it depends on the usable pixels alone), so :func:`edge_tiles` lays it out once."""

    shape: tuple[int, int]
    picked: np.ndarray  # (T, samples) flat pixel indices, one tile a row (T may be 0)
    radius2: np.ndarray  # (T,) each tile's median squared radius, 1 at the corners

    @property
    def radius6_map(self) -> np.ndarray:
        """``(H, W)`` sixth power of every pixel's radius, the radial model's term."""
        return _radius6_map(self.shape)


@functools.lru_cache(maxsize=2)
def _radius6_map(shape: tuple[int, int]) -> np.ndarray:
    # Once per frame size, read-only: a batch's pairs share it (a pixel's power took a few
    # ms a pair, about 1 %).
    yy, xx = np.ogrid[0:shape[0], 0:shape[1]]
    power = _radius2(yy, xx, shape) ** 3
    power.flags.writeable = False
    return power


def _radius2(y: np.ndarray, x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    # Over the half-diagonal, as imaging.lens measures distortion: a radial model is round,
    # not stretched to the frame's aspect ratio.
    h, w = shape
    half_diagonal2 = max(((w - 1) / 2) ** 2 + ((h - 1) / 2) ** 2, 1.0)
    return ((x - (w - 1) / 2) ** 2 + (y - (h - 1) / 2) ** 2) / half_diagonal2


def edge_tiles(usable: np.ndarray, *, tiles: int = EDGE_TILES, samples: int = EDGE_TILE_SAMPLES) -> EdgeTiles:
    """The tiles of a ``tiles`` x ``tiles`` grid with at least ``EDGE_FIT_MIN_PIXELS``
    usable pixels, ``samples`` of them each (an even subsample; a tile short of ``samples``
    repeats some of its pixels, which leaves the bins' medians where they were)."""
    h, w = usable.shape
    rows, cols = np.linspace(0, h, tiles + 1).astype(int), np.linspace(0, w, tiles + 1).astype(int)
    picked, centres = [], []
    for i in range(tiles):
        for j in range(tiles):
            local = np.flatnonzero(usable[rows[i]:rows[i + 1], cols[j]:cols[j + 1]])
            if local.size < EDGE_FIT_MIN_PIXELS:
                continue
            y, x = np.divmod(local[np.linspace(0, local.size - 1, samples).astype(np.intp)], cols[j + 1] - cols[j])
            picked.append((y + rows[i]) * w + x + cols[j])
            centres.append(median_in_place(_radius2(y + rows[i], x + cols[j], (h, w))))
    return EdgeTiles((h, w), np.array(picked, dtype=np.intp).reshape(len(picked), samples), np.array(centres))


def fit_edge_residual_field(difference: np.ndarray, variance: np.ndarray, gradient: np.ndarray,
                            usable: np.ndarray, *, curvature: np.ndarray | None = None, tiles: int = EDGE_TILES,
                            min_tiles: int = EDGE_MIN_TILES, samples: int = EDGE_TILE_SAMPLES) -> EdgeResidual:
    """The edge residual over the frame: per-tile estimates through a robust radial model.

    Two cameras' renderings of the static scene differ everywhere, a moving object only
    somewhere. So the residual is measured per tile of a ``tiles`` x ``tiles`` grid (as
    :func:`fit_edge_residual` does, on ``samples`` pixels of each), and
    ``kappa^2(r) = k0 + k1 r^6`` (``r`` 1 at the corners: a radial distortion difference
    ``k r^3`` that the homography cannot hold grows so) is fitted through the tiles'
    ``kappa^2`` by non-negative, Huber-weighted least squares. A tile that a moving
    object's edges dominate is an outlier of a two-parameter model of the whole frame, and
    does not lift the residual elsewhere; one fit over the whole frame follows those edges
    wherever they fill one of its gradient bins on a smooth background, and discounts the
    object's own evidence (on the mask benchmark it flipped single pairs by up to 0.5 IoU).
    ``beta`` (sharpness) has no radial model: the median over tiles. The tiles are not
    a local map: where a moving object fills a tile, its own evidence raises that tile's
    value, and a map would hide the object there.

    Parameters
    ----------
    difference, variance, gradient
        ``(H, W)``: the smoothed ``B - S``, its predicted noise variance, ``|grad B|``.
    usable
        ``(H, W)`` bool: the static-majority pixels to fit on.
    curvature
        ``(H, W)`` ``|lap B|``, or None for no sharpness term.

    Returns
    -------
    EdgeResidual
        With fewer than ``min_tiles`` tiles of ``EDGE_FIT_MIN_PIXELS`` usable pixels, one
        fit over the frame (``tiles == 0``).
    """
    layout = edge_tiles(usable, tiles=tiles, samples=samples)
    return edge_residual_fields(difference[None], variance[None], gradient[None], usable,
                                 None if curvature is None else curvature[None], layout, min_tiles)[0]


def edge_residual_fields(difference: np.ndarray, variance: np.ndarray, gradient: np.ndarray, usable: np.ndarray,
                          curvature: np.ndarray | None, layout: EdgeTiles, min_tiles: int) -> list[EdgeResidual]:
    """:func:`fit_edge_residual_field` of each channel of ``(C, H, W)`` inputs, all at once
    (one vectorised fit instead of a Python loop per channel)."""
    if len(layout.picked) < min_tiles:
        residuals = []
        for c in range(difference.shape[0]):
            kappa, beta = fit_edge_residual(difference[c], variance[c], gradient[c], usable,
                                            curvature=None if curvature is None else curvature[c])
            residuals.append(EdgeResidual(kappa, kappa, beta, 0))
        return residuals
    channels, tiles = difference.shape[0], len(layout.picked)
    fits = _edge_fits(difference, variance, gradient, curvature, layout.picked).reshape(channels, tiles, 2)
    target, r2 = fits[..., 0], layout.radius2
    design = np.stack([np.ones_like(r2), r2**3], axis=1)  # r^6 = (r^2)^3
    # Iteratively reweighted from the median tile (a start the outliers cannot move), so a
    # few tiles of motion are down-weighted from the first step, not argued down from a mean.
    coefficients = np.stack([np.median(target, axis=1), np.zeros(channels)], axis=1)
    for _ in range(10):
        residual = target - coefficients @ design.T
        scale = np.maximum(MAD_TO_SIGMA * np.median(np.abs(residual), axis=1, keepdims=True), 1e-4)
        root = np.sqrt(huber_weights(residual / scale, scale=1.0))
        coefficients = _nonnegative_least_squares(design[None] * root[..., None], target * root)
    beta = np.sqrt(np.median(fits[..., 1], axis=1))
    residuals = []
    for (k0, k1), b in zip(coefficients.tolist(), beta.tolist()):
        typical = math.sqrt(k0 + k1 * float(np.median(r2)) ** 3)
        kappa = math.sqrt(k0) if k1 == 0 else np.sqrt(k0 + k1 * layout.radius6_map).astype(np.float32)
        residuals.append(EdgeResidual(kappa, typical, b, tiles))
    return residuals


def fit_edge_residual(difference: np.ndarray, variance: np.ndarray, gradient: np.ndarray, usable: np.ndarray, *,
                      curvature: np.ndarray | None = None, max_samples: int = EDGE_FIT_MAX_SAMPLES
                      ) -> tuple[float, float]:
    """The static residual that two cameras' renderings of the same scene leave beside noise.

    Sub-pixel misregistration and a lens distortion the homography cannot hold leave a
    residual proportional to the gradient, ``kappa |grad B|`` (``kappa`` in pixels); a
    difference in sharpness (focus, MTF, demosaicing, S's resampling) one proportional to
    the curvature, ``beta |lap B|`` (``beta`` in pixels squared: half the difference of the
    blur variances). On static pixels ``(B - S) / sigma_noise`` then has variance
    ``1 + (kappa^2 |grad B|^2 + beta^2 |lap B|^2) / sigma_noise^2``. Pixels are binned by
    both ratios (``EDGE_FIT_CELLS`` squared bins), each bin's spread measured with the MAD
    (so the moving minority of a bin does not count), and ``kappa^2, beta^2`` fitted by
    non-negative, Huber-weighted least squares through the origin.

    Returns
    -------
    tuple of float
        ``(kappa, beta) >= 0``; zeros when the residual is noise alone (or fewer than
        ``EDGE_FIT_MIN_PIXELS`` usable pixels).
    """
    kappa2, beta2 = whole_frame_fits(difference[None], variance[None], gradient[None],
                                      None if curvature is None else curvature[None], usable, max_samples)[0]
    return math.sqrt(kappa2), math.sqrt(beta2)


def whole_frame_fits(difference: np.ndarray, variance: np.ndarray, gradient: np.ndarray,
                      curvature: np.ndarray | None, usable: np.ndarray,
                      max_samples: int = EDGE_FIT_MAX_SAMPLES) -> np.ndarray:
    """:func:`_edge_fits` of each channel of ``(C, H, W)`` inputs over the whole frame, on
    at most ``max_samples`` usable pixels evenly spaced: ``(C, 2)`` squared coefficients,
    zeros from fewer than ``EDGE_FIT_MIN_PIXELS`` usable pixels. Also fits the fine-detail
    residual (:func:`fine_detail` as ``gradient``, no curvature)."""
    index = np.flatnonzero(usable)
    if index.size < EDGE_FIT_MIN_PIXELS:
        return np.zeros((difference.shape[0], 2))
    index = evenly_spaced(index, max_samples)
    return _edge_fits(difference, variance, gradient, curvature, index[None])


def _edge_fits(difference: np.ndarray, variance: np.ndarray, gradient: np.ndarray, curvature: np.ndarray | None,
               index: np.ndarray, *, cells: int = EDGE_FIT_CELLS) -> np.ndarray:
    """``(kappa^2, beta^2)`` of :func:`fit_edge_residual` for each channel of the
    ``(C, H, W)`` inputs and each row of ``index`` (``(T, n)`` flat pixel indices, one
    region a row), all at once: ``(C * T, 2)``, channel-major."""
    channels = difference.shape[0]
    regions, n = channels * index.shape[0], index.shape[1]
    # Samples tied at a bin's bound (flat ground, clipped or 8-bit levels give thousands)
    # fill the lower bin first come first (quantile_runs). Taken in this order, the ones a
    # bin gets are spread over the sampled region: a bin's spread is meant to be a sample
    # of the region's, not that of one patch of it (a uniform mover, a flat wall).
    index = index[:, _scattered_order(n)]

    def gathered(values: np.ndarray) -> np.ndarray:
        return at_pixels(values, index).reshape(regions, n)

    noise = np.sqrt(gathered(variance))
    u = gathered(difference) / noise
    g2 = (gathered(gradient) / noise) ** 2
    within_key = g2 if curvature is None else (gathered(curvature) / noise) ** 2
    per_cell = n // (cells * cells)
    # Bins are quantile groups: by gradient, and within each group by curvature (without
    # it, by gradient), all at once. Indices into the flattened (regions, n) arrays: np.take
    # on them is about twice as fast as np.take_along_axis.
    group = cells * per_cell
    offsets = np.arange(0, regions * n, n)[:, None]
    by_gradient, _ = quantile_runs(g2, group, cells)
    by_gradient = (by_gradient + offsets).reshape(regions, cells, group)
    within, sorted_key = quantile_runs(np.take(within_key, by_gradient), per_cell, cells)
    order = np.take_along_axis(by_gradient, within, axis=2)

    def binned(values: np.ndarray) -> np.ndarray:
        return np.take(values, order).reshape(regions, cells * cells, per_cell)

    values = binned(u)
    spread = mad_along_last(values)
    # Each bin is a run of its group's sorted key, which needs no sort for a median.
    sorted_key = sorted_key.reshape(regions, cells * cells, per_cell)
    if curvature is None:
        design = median_of_sorted(sorted_key)[..., None]
    else:
        design = np.stack([median_along_last(binned(g2)), median_of_sorted(sorted_key)], axis=2)
    target = spread**2 - 1.0
    weights = np.ones((regions, cells * cells))
    fits = np.zeros((regions, 2))
    for _ in range(5):
        fits[:, : design.shape[2]] = _nonnegative_least_squares(design * weights[..., None], target * weights)
        weights = huber_weights(target - np.einsum("rbk,rk->rb", design, fits[:, : design.shape[2]]), axis=1)
    return fits


@functools.lru_cache(maxsize=8)
def _scattered_order(n: int) -> np.ndarray:
    """An order of ``range(n)`` any of whose prefixes is spread evenly over it: positions
    by the fractional part of ``i`` times the golden ratio (a low-discrepancy sequence).

    >>> _scattered_order(8).tolist()
    [0, 5, 2, 7, 4, 1, 6, 3]
    """
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    order = np.argsort(np.arange(n) * golden % 1.0, kind="stable")
    order.flags.writeable = False
    return order


def _nonnegative_least_squares(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``argmin ||A x - b||`` over ``x >= 0`` for many problems of one or two unknowns at
    once (``design`` ``(R, M, K)``, ``target`` ``(R, M)``, ``K <= 2``): ``(R, K)``.

    Exact, as ``scipy.optimize.nnls`` is: the unconstrained solution where it is
    non-negative; otherwise the optimum lies on a face of the orthant, and the better of
    the one-unknown solutions (each clamped at zero) is it.
    """
    gram = np.einsum("rmi,rmj->rij", design, design)
    moment = np.einsum("rmi,rm->ri", design, target)
    diagonal = np.maximum(np.diagonal(gram, axis1=1, axis2=2), 1e-300)
    single = np.maximum(moment / diagonal, 0.0)  # each unknown alone
    if design.shape[2] == 1:
        return single
    determinant = gram[:, 0, 0] * gram[:, 1, 1] - gram[:, 0, 1] ** 2
    safe = np.where(determinant > 1e-12 * diagonal.prod(axis=1), determinant, np.inf)
    joint = np.stack([gram[:, 1, 1] * moment[:, 0] - gram[:, 0, 1] * moment[:, 1],
                      gram[:, 0, 0] * moment[:, 1] - gram[:, 0, 1] * moment[:, 0]], axis=1) / safe[:, None]
    # Residual sums of squares up to the common ||b||^2: -2 x.m + x.G.x.
    first = -2 * single[:, 0] * moment[:, 0] + single[:, 0] ** 2 * gram[:, 0, 0]
    second = -2 * single[:, 1] * moment[:, 1] + single[:, 1] ** 2 * gram[:, 1, 1]
    zero = np.zeros_like(single[:, 0])
    face = np.where((first <= second)[:, None], np.stack([single[:, 0], zero], axis=1),
                    np.stack([zero, single[:, 1]], axis=1))
    inside = np.isfinite(safe) & (joint >= 0).all(axis=1)
    return np.where(inside[:, None], joint, face)

