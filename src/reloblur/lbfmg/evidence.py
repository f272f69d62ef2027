"""The evidence: a smoothed difference of B and S in units of its predicted sigma.

The noise-level function per channel (:mod:`reloblur.lbfmg.noise`), the rendering residuals
two cameras leave on a static scene (:mod:`reloblur.lbfmg.residual`) and the clipping's
bounds (:mod:`reloblur.lbfmg.clipping`) make a :class:`Judge`, whose :meth:`Judge.z` is
the evidence; and the test of whether a fit followed moving pixels, so that the pair is
judged again without them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reloblur.lbfmg.clipping import Clipping, OutputRays, along_rays, value_bounds
from reloblur.lbfmg.kernels import footprint_reach, gradient_magnitude
from reloblur.lbfmg.noise import NoiseLevel, fit_noise_level, guarded_table
from reloblur.lbfmg.params import Transfer
from reloblur.lbfmg.residual import (
    EDGE_MIN_TILES,
    EdgeResidual,
    edge_residual_fields,
    edge_tiles,
    fine_detail,
    whole_frame_fits,
)

# How far below the binned measurement the parametric noise fit may fall before the
# measurement wins (a camera curve that is not sRGB bends the fit's shape).
BINNED_GUARD = 0.8
# The fits are done again without the first mask when that changes the noise model by more
# than this factor in variance (its sigma twice) on more than this share of the judged
# pixels: the first fit then followed moving pixels (a uniform object's blends with a
# uniform ground fill level bins of their own, where the per-bin guard measures them).
REFIT_VARIANCE_RATIO = 4.0
REFIT_SHARE = 0.01


def _shifted(array: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    """The unpadded window of a ``pad``-padded ``(C, H, W)`` array, moved by ``(dy, dx)``."""
    h, w = array.shape[1] - 2 * pad, array.shape[2] - 2 * pad
    return array[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


@dataclass
class Judge:
    """How a smoothed difference becomes evidence: per-pixel inverse sigma, clipped bounds,
    where S is defined, and the shift tolerance."""

    inverse: np.ndarray  # (C, H, W) 1 / predicted sigma of the smoothed difference
    clip_b: Clipping  # widened to the smoothing footprint
    clip_s: Clipping
    inside: np.ndarray  # (H, W) bool, valid and away from undefined S and from the frame's border
    tolerance: int
    noise_variance: np.ndarray  # (C, H, W) predicted noise variance alone (no edge residual)
    # (C, H, W) crosstalk_bound of each image, None for the prior
    crosstalk_b: np.ndarray | None = None
    crosstalk_s: np.ndarray | None = None
    rays: OutputRays | None = None  # where a camera's output clipped before align undid its matrix
    transfer: Transfer = "srgb"
    # The rendering residuals it was made with: per channel the edge fields and the fine-detail
    # gammas, ``(C, 2)``: of the channel's own detail and of the largest of any channel's.
    rendering: tuple[list[EdgeResidual], np.ndarray] | None = None
    # (C,) S's share of ``noise_variance`` per channel (each camera's own noise measured on
    # the pair), or None where it was not measured
    noise_share_s: np.ndarray | None = None

    def z(self, bs: np.ndarray, ss: np.ndarray, window: tuple[slice, slice] = (slice(None), slice(None)),
          inverse: np.ndarray | None = None) -> np.ndarray:
        """``z`` over ``window``: the smallest over shifts of S (up to ``tolerance`` px) of the
        largest over channels of the clipping-aware gap between B and S, in sigmas; where a
        camera's output clipped, the smaller of that and the gap left once the clipped
        excess explains what it can (:func:`along_rays`; the values as recorded are one
        possibility, so the gap never grows).

        ``bs`` and ``ss`` are the smoothed images cut to ``window``; ``inverse``, cut to it
        too, replaces the judge's own 1 / sigma there (an S a local model made, whose
        noise that model carried)."""
        rows, cols = window
        inverse = self.inverse[:, rows, cols] if inverse is None else inverse
        z = self._gap(bs, ss, window, inverse)
        if self.rays is not None:
            moved = along_rays(bs, ss, inverse, self.rays.window(rows, cols), self.transfer)
            z = np.minimum(z, self._gap(*moved, window, inverse))
        return z

    def _gap(self, bs: np.ndarray, ss: np.ndarray, window: tuple[slice, slice], inverse: np.ndarray) -> np.ndarray:
        rows, cols = window
        clip_b, clip_s = self.clip_b.window(rows, cols), self.clip_s.window(rows, cols)
        b_low, b_high = value_bounds(bs, clip_b, None if self.crosstalk_b is None else self.crosstalk_b[:, rows, cols])
        s_low, s_high = value_bounds(ss, clip_s, None if self.crosstalk_s is None else self.crosstalk_s[:, rows, cols])
        pad = self.tolerance
        if pad:
            s_low = np.pad(s_low, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
            s_high = np.pad(s_high, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
        z = None
        for dy in range(-pad, pad + 1):
            for dx in range(-pad, pad + 1):
                gap = np.subtract(b_low, _shifted(s_high, dy, dx, pad))
                np.maximum(gap, np.subtract(_shifted(s_low, dy, dx, pad), b_high), out=gap)
                gap *= inverse
                if gap.shape[0] == 3:
                    e = np.maximum(gap[0], gap[1])
                    np.maximum(e, gap[2], out=e)
                else:
                    e = gap.max(axis=0)
                z = e if z is None else np.minimum(z, e, out=z)
        assert z is not None
        np.maximum(z, 0.0, out=z)
        z[~self.inside[rows, cols]] = 0.0
        return z.astype(np.float32, copy=False)


def fit_region(wide_b: Clipping, wide_s: Clipping, usable: np.ndarray, valid: np.ndarray, sigma_px: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """Where the smoothed difference is judged (``inside``), and the pixels the residual
    models are fitted on, given the clipping widened to the smoothing footprint.

    Within the smoothing's reach of undefined S, and of the frame's border, a smoothed
    value is not a measurement of the scene: the smoothing reflects the frame at its
    border, so a structure there meets its own mirror image, and the edge residual, which
    scales with the gradient that reflection cancels, cannot forgive it (a dark beam along
    the border misregistered by a pixel reached 50 sigmas). Neither is judged;
    :func:`~reloblur.lbfmg.morphology.carry_into_unjudged` decides them. The fits keep the border's pixels, a few
    percent of their sample, which robust fits barely feel: left out, they moved the edge
    residual's tiles, and static false area with them, both ways (0.83 -> 0.18 % on one
    benchmark pair, 0.97 -> 1.13 % on another)."""
    reach = footprint_reach(sigma_px)
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    defined = cv2.erode(valid.astype(np.uint8), kernel) > 0 if not valid.all() else valid
    inside = cv2.erode(valid.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return inside, usable & defined & ~wide_b.any() & ~wide_s.any()


def edge_derivatives(bs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, H, W)`` ``|grad|`` and ``|lap|`` of the smoothed B: what the edge residual scales with."""
    gradient, curvature = np.empty_like(bs), np.empty_like(bs)
    for c, channel in enumerate(bs):
        gradient[c] = gradient_magnitude(channel)
        np.abs(cv2.Laplacian(channel, cv2.CV_32F, ksize=3), out=curvature[c])
    return gradient, curvature


def fit_judge(bs: np.ndarray, difference: np.ndarray, bp: np.ndarray, levels: tuple[np.ndarray, np.ndarray],
              derivatives: tuple[np.ndarray, np.ndarray],
              clip_b: Clipping, clip_s: Clipping, inside: np.ndarray, fit_on: np.ndarray, *, sigma_px: float,
              tolerance: int, transfer: Transfer, noise: list[NoiseLevel] | None = None, fine: np.ndarray | None = None,
              spread: np.ndarray | None = None, crosstalk: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
              rays: OutputRays | None = None, supported: bool = False,
              rendering: tuple[list[EdgeResidual], np.ndarray] | None = None,
              noise_share_s: np.ndarray | None = None
              ) -> tuple[Judge, list[NoiseLevel], list[float], list[float], np.ndarray]:
    """Fit the noise-level function, the edge residual and the fine-detail residual of
    ``difference`` (the smoothed ``bs - ss``) per channel on the pixels ``fit_on``, and build the
    :class:`Judge` from them. ``bp`` is B before smoothing; ``levels``: the noise tables'
    entries at ``bs`` and at ``ss`` (:func:`~reloblur.lbfmg.noise.table_index`);
    ``derivatives``: :func:`edge_derivatives` of ``bs``; ``fine``: what the smoothing removed from
    ``difference`` (:func:`~reloblur.lbfmg.noise.fit_noise_level`); ``clip_b`` and ``clip_s``
    are widened to the smoothing footprint; ``inside`` and ``fit_on`` are
    :func:`fit_region`'s (``fit_on`` perhaps less pixels left out of every fit);
    ``spread`` is the noise variance of each smoothed value relative to a full
    footprint's (:func:`~reloblur.lbfmg.clipping.smooth_pair`); ``crosstalk`` is
    :func:`~reloblur.lbfmg.clipping.crosstalk_bound` of B and of S (None: the prior); ``rays``: where a camera's
    output clipped before ``align`` undid its matrix (:func:`~reloblur.lbfmg.clipping.output_rays`); ``supported``:
    the noise model's guard is what the bins' fine-scale differences support;
    ``rendering``: an earlier judge's edge fields and fine-detail gammas
    (:attr:`Judge.rendering`: per channel, of its own detail and of the largest of any
    channel's), kept instead of fitted again; ``noise_share_s``: :attr:`Judge.noise_share_s`.

    Returns the judge, the noise models, and per channel the edge residual (px), the
    sharpness residual (px^2) and the fine-detail residuals (:func:`~reloblur.lbfmg.residual.fine_detail`),
    ``(C, 2)``: of the channel's own detail and of the largest of any channel's."""
    models = noise if noise is not None else fit_noise(difference, bs, fit_on, transfer, fine)
    variance = predicted_variance(models, levels, supported=supported)
    detail = np.empty_like(bs)
    for c in range(bs.shape[0]):
        detail[c] = fine_detail(bp[c], variance[c], fit_on, sigma_px=sigma_px)
    if spread is not None:
        variance *= spread
    gradient, curvature = derivatives
    residuals = (edge_residual_fields(difference, variance, gradient, fit_on, curvature, edge_tiles(fit_on),
                                      EDGE_MIN_TILES) if rendering is None else rendering[0])
    modelled = np.empty_like(bs)
    for c, residual in enumerate(residuals):
        modelled[c] = variance[c] + (residual.kappa * gradient[c]) ** 2 + (residual.beta * curvature[c]) ** 2
    # Fitted on what the model above leaves, so it adds tolerance only where fine detail
    # leaves a residual the edge terms do not explain (as a second predictor of the edge
    # fit, it changed that fit's bins and moved kappa on pairs with no such residual).
    # float32, as every step that judges with it is: a float64 inverse (gammas are float64)
    # doubled the cost of each of them.
    gammas = np.zeros((bs.shape[0], 2)) if rendering is None else rendering[1]
    if rendering is None:
        gammas[:, 0] = np.sqrt(whole_frame_fits(difference, modelled, detail, None, fit_on)[:, 0])
    _add_squared(modelled, detail, gammas[:, 0])
    if bs.shape[0] > 1:
        # A Bayer camera's demosaicing interpolates red and blue from every other pixel:
        # that blurs their own detail and aliases the scene's into them (differently in S,
        # resampled afterwards), while green, sampled twice as densely, keeps more of it.
        # So each channel also answers to the largest detail of any channel at the pixel,
        # fitted on what its own term leaves: it only adds tolerance. On a static Bayer
        # frame of the mask benchmark (a gantry's lattice, S's red and blue off B's by 6
        # and 10 codes, green by 1) it took the mask from 0.62 % of the frame to none.
        across = np.ascontiguousarray(np.broadcast_to(detail.max(axis=0), detail.shape))
        if rendering is None:
            gammas[:, 1] = np.sqrt(whole_frame_fits(difference, modelled, across, None, fit_on)[:, 0])
        _add_squared(modelled, across, gammas[:, 1])
    inverse = np.reciprocal(np.sqrt(modelled, out=modelled), out=modelled)
    judge = Judge(inverse, clip_b, clip_s, inside, tolerance, variance, *crosstalk, rays, transfer, (residuals, gammas),
                  noise_share_s)
    return judge, models, [r.typical for r in residuals], [r.beta for r in residuals], gammas


def _add_squared(modelled: np.ndarray, detail: np.ndarray, gammas: np.ndarray) -> None:
    """``modelled += (detail * gammas[:, None, None]) ** 2`` in float64, as that expression
    computes it (the gammas are float64), one plane at a time: no frame of float64
    temporaries."""
    term = np.empty(detail.shape[1:])
    for c, gamma in enumerate(gammas):
        np.multiply(detail[c], gamma, out=term)
        np.square(term, out=term)
        np.add(modelled[c], term, out=modelled[c], casting="same_kind")


def fit_noise(difference: np.ndarray, bs: np.ndarray, fit_on: np.ndarray, transfer: Transfer,
              fine: np.ndarray | None = None) -> list[NoiseLevel]:
    """The noise-level function per channel of ``difference`` (the smoothed ``bs - ss``) at
    B's levels ``bs``, on ``fit_on``; ``fine``: what the smoothing removed from it
    (:func:`~reloblur.lbfmg.noise.fit_noise_level`)."""
    return [fit_noise_level(difference[c], bs[c], fit_on, transfer=transfer, fine=None if fine is None else fine[c])
            for c in range(bs.shape[0])]


def predicted_variance(models: list[NoiseLevel], levels: tuple[np.ndarray, np.ndarray], *,
                       supported: bool = False) -> np.ndarray:
    """``(C, H, W)`` the predicted noise variance of ``bs - ss`` (a full footprint's), from
    the :func:`~reloblur.lbfmg.noise.table_index` of ``bs`` and of ``ss`` (``levels``);
    ``supported``: guarded by the sigmas the bins' fine-scale differences support."""
    at_b, at_s = levels
    variance = np.empty(at_b.shape, np.float32)
    for c, model in enumerate(models):
        table = guarded_table(model, guard=BINNED_GUARD, supported=supported) ** 2
        # On a moving pixel B and S sit at different levels, each with its own noise.
        variance[c] = (table.take(at_b[c]) + table.take(at_s[c])) / 2
    return variance


def guard_rests_on_structure(models: list[NoiseLevel]) -> bool:
    """Whether the guard on some channel's noise model predicts a variance more than
    :data:`REFIT_VARIANCE_RATIO` above what the bins' fine-scale differences support."""
    return any(float(np.max(guarded_table(model, guard=BINNED_GUARD) ** 2
                            / np.maximum(guarded_table(model, guard=BINNED_GUARD, supported=True) ** 2, 1e-30)))
               > REFIT_VARIANCE_RATIO for model in models)


def followed_motion(first: list[NoiseLevel], again: list[NoiseLevel], judge: Judge,
                    levels: tuple[np.ndarray, np.ndarray], spread: np.ndarray | None) -> bool:
    """Whether the noise model fitted without the first mask (``again``) predicts a variance
    more than :data:`REFIT_VARIANCE_RATIO` below the first fit's (``first``, which ``judge``
    holds) in any channel, on more than :data:`REFIT_SHARE` of the judged pixels."""
    # A pixel's variance is the mean of a channel's table at B's and at S's level, so it
    # falls by no more than the tables do at any level: 1024 entries settle most pairs (the
    # margin covers float32 rounding).
    fall = max(float(np.max(guarded_table(a, guard=BINNED_GUARD) ** 2
                            / np.maximum(guarded_table(b, guard=BINNED_GUARD) ** 2, 1e-30)))
               for a, b in zip(first, again))
    if fall <= REFIT_VARIANCE_RATIO * (1 - 1e-4):
        return False
    variance = predicted_variance(again, levels)
    if spread is not None:
        variance *= spread
    ratio = (judge.noise_variance / np.maximum(variance, 1e-30)).max(axis=0)[judge.inside]
    return bool(np.count_nonzero(ratio > REFIT_VARIANCE_RATIO) > REFIT_SHARE * ratio.size)
