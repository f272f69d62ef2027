"""Regions of a first mask that a local model of the pair explains, judged again.

Some differences between B and S are not motion: colours the pair's global colour fit got
wrong (:func:`fit_local_colour`), a sub-pixel misregistration a homography cannot hold
(:func:`fit_local_shift`), an excess both cameras clipped that ``align``'s colour matrix
carried into the other channels. Each candidate region is judged again with S as such a
model makes it, and where that explains most of it, the evidence there takes the smaller
of the two judgements.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from reloblur.imaging.regions import connected_regions
from reloblur.lbfmg.encoding import decode, encode, encoding_slope
from reloblur.lbfmg.evidence import Judge
from reloblur.lbfmg.kernels import at_pixels, disk, gradient_magnitude, gradients
from reloblur.lbfmg.morphology import component_window
from reloblur.lbfmg.params import MaskParams
from reloblur.robust import evenly_spaced, huber_weights, mad_sigma

# A region is reported as a colour mismatch, not motion, when a local colour map leaves
# less than this fraction of it above the growing threshold. A colour map fitted on a ring
# around a static object still leaves its sharpest edges (0.20-0.27 of the region on a
# static saturated object over a grey or dark-blue scene, two generators); a moving
# object's blend of object and background leaves most of it (over 0.32 for 99 % of the
# benchmark's moving objects, 0.87 typically).
EXPLAINED_FRACTION = 0.3
# The largest displacement (px) of S that discount_local_shift takes as a residual
# misregistration: align's corners are within 0.25 px, and a lens distortion that differs
# between the cameras leaves up to about a pixel locally that a homography cannot hold; a
# moving object's blur is no displacement at all, whatever its size.
LOCAL_SHIFT_MAX_PX = 1.0
# Prior standard deviation of a local colour correction's entries once align has fitted
# the global one: cameras' crosstalk differs by tens of percent on saturated colours.
LOCAL_COLOUR_PRIOR = 0.3
# The upper tail of the prior beyond which a local colour map is not a camera's colours but
# a fit to something else (a moving object's blend with its ground: maps with negative
# diagonal terms or entries near 3 on the test's uniform objects): the standard normal
# quantile of chi-squared's 99th percentile, one degree of freedom per entry.
PLAUSIBLE_MAP_QUANTILE = 2.326
# The fewest pixels a local model is fitted on, and the fewest measured (unclipped) pixels
# of a mostly clipped region that can say whether a colour map explains it.
LOCAL_FIT_MIN_PIXELS = 50
# A region more than this share of whose pixels either image clipped in some channel is
# mostly clipped: its clipped pixels are evidence one way only, so they read as explained
# whatever the model, and only its measured pixels can tell.
MOSTLY_CLIPPED = 0.3


@dataclass
class ExplainedS:
    """S as the local colour maps explain the pair, for the steps that compare B with S
    after the regions were judged again: a region a colour map explained differs by that
    map's difference over all of it, which is not motion either.

    Attributes
    ----------
    sharp
        ``(C, H, W)`` smoothed S (brightness-matched to B), each explained region's grown
        pixels as its map made them.
    where
        ``(H, W)`` bool, those pixels.
    """

    sharp: np.ndarray
    where: np.ndarray

    @classmethod
    def unexplained(cls, ss: np.ndarray) -> ExplainedS:
        """``ss`` as it is (the maps write into a copy)."""
        return cls(ss, np.zeros(ss.shape[1:], bool))

    def take(self, rows: slice, cols: slice, grown: np.ndarray, sharp_local: np.ndarray) -> None:
        """A map's smoothed S (``sharp_local``, over the window) on its ``grown`` pixels."""
        if not self.where.any():
            self.sharp = self.sharp.copy()
        self.sharp[:, rows, cols][:, grown] = sharp_local[:, grown]
        self.where[rows, cols] |= grown


def fit_local_colour(blur_linear: np.ndarray, sharp_linear: np.ndarray, region: np.ndarray, *,
                     prior: float = LOCAL_COLOUR_PRIOR, iterations: int = 4, samples: int = 4000) -> np.ndarray | None:
    """A colour matrix ``B ~= A S`` near the identity, fitted robustly on ``region``.

    ``align`` already corrected colour globally (a matrix, in linear light, black levels
    removed: no offset), so locally ``A`` is the identity plus a correction whose entries
    have a prior standard deviation ``prior``: a ridge (maximum a posteriori) fit with
    Huber weights. Directions the region's colours do not constrain (a grey wall and one
    uniform object span two colours) stay at the identity instead of taking any value.

    Parameters
    ----------
    blur_linear, sharp_linear
        Planar ``(3, H, W)`` linear crops.
    region
        ``(H, W)`` bool, the pixels to fit on.

    Returns
    -------
    numpy.ndarray or None
        ``(3, 3)``; ``None`` with fewer than :data:`LOCAL_FIT_MIN_PIXELS` pixels.
    """
    index = np.flatnonzero(region)
    if index.size < LOCAL_FIT_MIN_PIXELS:
        return None
    index = evenly_spaced(index, samples)
    s = at_pixels(sharp_linear, index).T
    b = at_pixels(blur_linear, index).T
    # The residual's scale at the identity sets how much the data may pull the map.
    residual_scale = max(mad_sigma(b - s, center=0.0), 1e-4)
    ridge = (residual_scale / prior) ** 2
    weights = np.ones(len(s))
    solution = np.eye(3)
    for _ in range(iterations):
        ws = s * weights[:, None]
        solution = np.linalg.solve(ws.T @ s + ridge * np.eye(3), ws.T @ b + ridge * np.eye(3))
        weights = huber_weights(np.linalg.norm(b - s @ solution, axis=1))
    return solution.T


def plausible_map(colour: np.ndarray, *, prior: float = LOCAL_COLOUR_PRIOR) -> bool:
    """Whether a local colour map lies within the prior :func:`fit_local_colour` puts on
    it: its squared distance from the identity, in units of ``prior``, under the 99th
    percentile of chi-squared with one degree of freedom per entry (Wilson-Hilferty's
    approximation; 21.7 for a 3x3 map, a Frobenius distance of 1.40 at the default prior).

    >>> plausible_map(np.eye(3) + 0.3), plausible_map(np.diag([-1.0, 1.0, 3.0]))
    (True, False)
    """
    dof = colour.size
    tail = dof * (1 - 2 / (9 * dof) + PLAUSIBLE_MAP_QUANTILE * math.sqrt(2 / (9 * dof))) ** 3
    return float(np.sum(np.square(colour - np.eye(colour.shape[0])))) / prior**2 <= tail


def mapped_noise_inverse(judge: Judge, window: tuple[slice, slice], colour: np.ndarray, sharp_linear: np.ndarray
                         ) -> np.ndarray | None:
    """``(C, h, w)`` 1 / sigma over ``window`` of B less S mapped by ``colour``, where S's
    share of the noise (:attr:`Judge.noise_share_s`) passes through the map; None where
    the share was not measured.

    The judge's noise model was fitted on S as ``align`` corrected it, so a local map
    ``A`` carries S's part of it: in linear light each output channel's variance is
    ``sum_j A_cj**2 var_j`` (the channels' noise taken as independent), brought to and
    from the encoded values by the curve's slope at S's levels and at the mapped ones. A
    map that resaturates a colour the global fit flattened amplifies S's noise (and its
    coding error, on JPEG frames) on the saturated object, most in its dark channels,
    where the curve is steep and a bright channel's noise is mixed in (tenfold in green on
    a saturated red, in the known-answer test): the judgement must allow it. Where a map
    lowers S's noise, the judge's own sigma is kept.

    Parameters
    ----------
    judge
        Its ``noise_variance`` and ``inverse`` over the window are the map's starting point.
    window
        ``(rows, cols)`` slices of the frame.
    colour
        ``(C, C)`` the local map, ``S_mapped = colour @ S`` in linear light.
    sharp_linear
        ``(C, h, w)`` smoothed S over the window, in linear light (before the map).
    """
    if judge.noise_share_s is None:
        return None
    rows, cols = window
    share = judge.noise_share_s.astype(np.float32)[:, None, None]
    s_noise = share * judge.noise_variance[:, rows, cols]
    slope_in = encoding_slope(sharp_linear, judge.transfer)
    slope_out = encoding_slope(np.einsum("ij,jhw->ihw", colour, sharp_linear), judge.transfer)
    carried = np.einsum("ij,jhw->ihw", np.square(colour), s_noise / np.square(slope_in)) * np.square(slope_out)
    # Where the map lowers S's noise, the judge's own sigma stays: what else it holds (edge
    # and detail residuals, the noise model's fit beside them) was measured on S as it was,
    # and does not shrink with the map (a colour wheel a flattening map explained, 99 %
    # clipped, kept 32 % of its measured pixels above --low judged by the lowered noise).
    variance = np.reciprocal(np.square(judge.inverse[:, rows, cols])) + np.maximum(carried - s_noise, 0)
    return np.reciprocal(np.sqrt(variance)).astype(np.float32)


def fit_local_shift(blur: np.ndarray, sharp: np.ndarray, region: np.ndarray, inverse: np.ndarray, *,
                    iterations: int = 3) -> tuple[np.ndarray, np.ndarray] | None:
    """The displacement ``d`` (px) for which S sampled at ``x + d`` best matches B on ``region``.

    Gauss-Newton on the first-order model ``B - S(x + d) ~= grad S . dd``, every channel
    weighted by its inverse noise sigma (a residual misregistration is one displacement for
    all channels), S resampled at each step, bicubic: at a strong edge bilinear
    interpolation errs by several sigmas. Where the region's gradients fix only one
    direction (a straight edge), the displacement along the other stays zero.

    Parameters
    ----------
    blur, sharp
        ``(C, H, W)`` smoothed crops (the smoothing makes the first-order model hold
        over a pixel).
    region
        ``(H, W)`` bool, the pixels to fit on.
    inverse
        ``(C, H, W)`` 1 / the predicted sigma of ``blur - sharp``.

    Returns
    -------
    tuple of numpy.ndarray, or None
        ``d`` as ``(dx, dy)`` and ``(C, H, W)`` S resampled at ``x + d``; ``None`` with fewer
        than :data:`LOCAL_FIT_MIN_PIXELS` pixels.
    """
    if np.count_nonzero(region) < LOCAL_FIT_MIN_PIXELS:
        return None
    grid_x, grid_y = np.meshgrid(np.arange(sharp.shape[2], dtype=np.float32),
                                 np.arange(sharp.shape[1], dtype=np.float32))
    index = np.flatnonzero(region)
    weight = at_pixels(inverse, index).astype(np.float64)
    shift = np.zeros(2)
    moved = sharp
    for _ in range(iterations):
        gx, gy = (at_pixels(np.stack(d), index) * weight for d in zip(*(gradients(c) for c in moved)))
        gap = (at_pixels(blur, index) - at_pixels(moved, index)) * weight
        normal = np.array([[np.sum(gx * gx), np.sum(gx * gy)], [np.sum(gx * gy), np.sum(gy * gy)]])
        step, *_ = np.linalg.lstsq(normal, [np.sum(gx * gap), np.sum(gy * gap)], rcond=1e-3)
        shift += step
        moved = np.stack([cv2.remap(c, grid_x + np.float32(shift[0]), grid_y + np.float32(shift[1]),
                                    cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT) for c in sharp])
    return shift, moved


# What a local model makes of S over a region's window: smoothed S, and 1 / sigma there
# where the model changed S's noise (None: the judge's own).
LocalS = tuple[np.ndarray, np.ndarray | None]


def _rejudge_explained(mask: np.ndarray, z: np.ndarray, bs: np.ndarray, judge: Judge, usable: np.ndarray | None,
                       params: MaskParams,
                       local: Callable[[slice, slice, np.ndarray, np.ndarray], LocalS | None], *,
                       clipped_regions: bool = False,
                       on_explained: Callable[[slice, slice, np.ndarray, np.ndarray], None] | None = None) -> int:
    """Re-judge, in place on ``z``, each region of ``mask`` that a local model of the pair
    explains; returns how many were (reported as a flag).

    For each region, ``local(rows, cols, region, grown)`` gives smoothed S over the window
    around it (rows, columns) as the model fitted there makes it, with 1 / sigma over the
    window where the model changed S's noise (or None), or None where no model
    fits (``region`` is the region in that window, ``grown`` the region grown by half the
    window's margin, where the model is fitted and the region's judgement reaches: the
    smoothing's footprint). A region under :data:`EXPLAINED_FRACTION` of which stays above
    ``--low`` with that S is explained, and ``z`` over the grown region takes the smaller
    of the two judgements. A region :data:`MOSTLY_CLIPPED` (not ``usable``) is left as it
    is (clipping makes the gradients a displacement is fitted on the clip's), unless
    ``clipped_regions`` (a colour map, fitted on measured pixels only): then it is
    explained only where its measured pixels,
    at least :data:`LOCAL_FIT_MIN_PIXELS` of them, are explained too, since its clipped
    ones, judged one way only, stay under ``--low`` with any model (``usable`` None: every
    region is judged as a measured one). A mostly clipped region the model does not explain
    whole is judged once more as its clipped object alone: its clipped pixels and the
    measured ones within the ring of them, the model fitted without the rest; where that
    explains it, each piece of the rest is judged as a region of its own.
    ``on_explained(rows, cols, grown, ss_local)`` is called for each region (or part)
    explained, with the S ``local`` made for it."""
    count, labels, stats = connected_regions(mask)
    margin = int(math.ceil(3 * params.smooth_sigma)) + judge.tolerance + 6
    ring = disk(max(3, margin // 2))
    explained = 0

    def explains(rows: slice, cols: slice, component: np.ndarray, measured: np.ndarray, mostly_clipped: bool,
                 apart: np.ndarray | None = None) -> bool:
        grown = cv2.dilate(component.astype(np.uint8), ring) > 0
        made = local(rows, cols, component, grown if apart is None else grown & ~apart)
        if made is None:
            return False
        ss_local, inverse_local = made
        z_local = judge.z(bs[:, rows, cols], ss_local, (rows, cols), inverse_local)
        above = z_local > params.low_sigmas
        if np.mean(above[component]) >= EXPLAINED_FRACTION:
            return False  # most of it is more than the model: motion, judged as it was
        if mostly_clipped and (np.count_nonzero(measured) < LOCAL_FIT_MIN_PIXELS
                               or np.mean(above[measured]) >= EXPLAINED_FRACTION):
            return False
        window = z[rows, cols]
        window[grown] = np.minimum(window[grown], z_local[grown])
        if on_explained is not None:
            on_explained(rows, cols, grown, ss_local)
        return True

    for label in range(1, count):
        rows, cols = component_window(stats, label, margin, labels.shape)
        component = labels[rows, cols] == label
        measured = component if usable is None else component & usable[rows, cols]
        mostly_clipped = np.mean(~measured[component]) > MOSTLY_CLIPPED
        if mostly_clipped and not clipped_regions:
            continue
        if explains(rows, cols, component, measured, mostly_clipped):
            explained += 1
            continue
        if not mostly_clipped:
            continue
        # Hysteresis may have joined other things to a clipped object (dark JPEG-coded
        # detail beside a blown-out box, its own evidence), and one map cannot explain
        # both: the object alone, its clipped pixels and the measured ones within the ring
        # of them, is judged again, and what lies beyond, measured, piece by piece.
        core = component & (cv2.dilate((component & ~measured).astype(np.uint8), ring) > 0)
        beyond = component & ~core
        if not beyond.any() or not explains(rows, cols, core, measured & core, True, apart=beyond):
            continue
        explained += 1
        pieces, piece_labels, _ = connected_regions(beyond)
        for piece in range(1, pieces):
            region = piece_labels == piece
            explains(rows, cols, region, region, False)
    return explained


def discount_unmeasured_excess(mask: np.ndarray, z: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: Judge,
                               opened: np.ndarray, params: MaskParams) -> int:
    """Re-judge each candidate region with S's bounds open where an excess (or, clipped at
    black, a deficit) no camera measured was mixed into it (``opened``,
    :func:`~reloblur.lbfmg.clipping.unmeasured_excess`, :func:`~reloblur.lbfmg.clipping.unmeasured_deficit`),
    in place on ``z``.

    A static object both cameras blew out in some channels differs between B and S in the
    others by what ``align``'s matrix carried of S's excess, which can be any size: in a
    full-size command-line run, a static object blown out in green and blue in both images
    left S's red 30 codes under B's (6.8 % of an excess two to three times the white
    level) and was marked as a 36,000 px mover. Opened over the whole frame, the bounds
    also took the evidence of moving objects' bands beside such pixels (the mask
    benchmark's over-exposed row, cached pairs of three seed sets: mean IoU 0.831 / 0.803
    / 0.823 -> 0.750 / 0.703 / 0.728; region by region, but wherever any pixel of the
    footprint was blown out, 0.817 / 0.772 / 0.782); a region they explain is not motion,
    and a moving object keeps its bands where nothing was blown out. Clipped regions are
    judged too: this excess is only ever on them.

    Returns the number of regions re-judged."""
    near: np.ndarray = np.logical_or.reduce(opened)
    if not (mask & near).any():
        return 0
    wider = replace(judge, clip_s=judge.clip_s.opened(opened))

    def as_recorded(rows: slice, cols: slice, component: np.ndarray, _: np.ndarray) -> LocalS | None:
        return (ss[:, rows, cols], None) if near[rows, cols][component].any() else None

    return _rejudge_explained(mask, z, bs, wider, None, params, as_recorded)


def discount_local_colour(mask: np.ndarray, z: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray,
                          judge: Judge, usable: np.ndarray, params: MaskParams, *,
                          explained_s: ExplainedS | None = None) -> int:
    """Re-judge each candidate region after a local colour correction, in place on ``z``.

    A static object whose colours the pair's global colour fit got wrong (colours absent
    from the scene it was fitted on) differs between B and S everywhere on it; motion
    leaves a blend of object and background in B that no colour map turns S into. A region
    that a colour matrix fitted around it (near the identity, :func:`fit_local_colour`)
    mostly explains is re-judged with that matrix: its colour-only difference vanishes,
    and the motion at its edges, if any, stays. Other regions are left as they are.

    S's share of the noise passes through the map (:func:`mapped_noise_inverse`): a map
    that puts back the saturation the global fit took from an object's colours amplifies
    S's noise there too. Judged against the noise of the unmapped S, a static saturated
    object in JPEG-coded frames (whose chroma coding error is larger on saturated colours
    than on the grey majority the noise model was fitted on) kept a third to a half of its
    measured pixels above ``--low`` whatever map was fitted, and was marked.

    Mostly clipped regions are judged too, by their measured pixels: the map is fitted on
    pixels neither image clipped, and the clipped channels stay bounds in the judgement.
    Saturated colours are where a colour fit made on a greyer scene errs most, and where a
    camera clips a channel first: a static colour wheel one camera clipped in blue was
    otherwise marked over 3 % of the frame (the second generator's seed 1, every row).

    ``explained_s``: takes the recoloured S over each re-judged region's grown pixels.

    Returns the number of regions re-judged (reported as a flag).
    """
    # Fit on the smoothed images: S's noise would otherwise attenuate the regression (a
    # noisy regressor shrinks the slope towards zero) and a map that flattens S would seem
    # to explain a moving object away.
    def recoloured(rows: slice, cols: slice, _: np.ndarray, grown: np.ndarray) -> LocalS | None:
        smoothed_s = decode(ss[:, rows, cols], params.transfer)
        colour = fit_local_colour(decode(bs[:, rows, cols], params.transfer), smoothed_s, grown & usable[rows, cols])
        if colour is None:
            return None
        raw_s = decode(sp[:, rows, cols], params.transfer)
        mapped = encode(np.einsum("ij,jhw->ihw", colour, raw_s), params.transfer)
        sharp_local = np.stack([cv2.GaussianBlur(c, (0, 0), params.smooth_sigma) for c in mapped])
        # An implausible map's noise would make any difference look like noise: judged
        # against S's own, as before the map's noise was counted.
        inverse = mapped_noise_inverse(judge, (rows, cols), colour, smoothed_s) if plausible_map(colour) else None
        return sharp_local, inverse

    return _rejudge_explained(mask, z, bs, judge, usable, params, recoloured, clipped_regions=True,
                              on_explained=None if explained_s is None else explained_s.take)


def discount_local_shift(mask: np.ndarray, z: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: Judge,
                         usable: np.ndarray, params: MaskParams) -> int:
    """Re-judge each candidate region after a local sub-pixel shift of S, in place on ``z``.

    A lens distortion that differs between the cameras leaves a misregistration that varies
    over the frame, which align's homography cannot hold and the edge-residual model
    (a typical value per tile) underestimates along the strongest edges: a bright rocket's
    edge against a dark sky was marked as a strip. Such a region is S displaced by a
    fraction of a pixel; a moving object's blur is not a displacement of S at all. A region
    that the displacement fitted around it (:func:`fit_local_shift`, at most
    :data:`LOCAL_SHIFT_MAX_PX`) mostly explains is re-judged with S displaced; other
    regions are left as they are.

    Returns the number of regions re-judged (reported as a flag).
    """
    def displaced(rows: slice, cols: slice, component: np.ndarray, grown: np.ndarray) -> LocalS | None:
        b, s, inverse = bs[:, rows, cols], ss[:, rows, cols], judge.inverse[:, rows, cols]
        if _beyond_any_shift(b, s, inverse, component, params.low_sigmas):
            return None  # most moving objects: no fit needed to see it
        fit = fit_local_shift(b, s, grown & usable[rows, cols], inverse)
        return None if fit is None or math.hypot(*fit[0]) > LOCAL_SHIFT_MAX_PX else (fit[1], None)

    return _rejudge_explained(mask, z, bs, judge, usable, params, displaced)


def _beyond_any_shift(blur: np.ndarray, sharp: np.ndarray, inverse: np.ndarray, region: np.ndarray, low: float
                      ) -> bool:
    """Whether a displacement of S by up to :data:`LOCAL_SHIFT_MAX_PX` cannot explain
    ``region``: S moved that far changes by at most that times its steepest gradient within
    a pixel, and more than :data:`EXPLAINED_FRACTION` of the region differs by more than
    that plus ``low`` sigmas (the uniform inside of a moving object: no gradient at all)."""
    steepest = np.stack([cv2.dilate(gradient_magnitude(channel), np.ones((3, 3), np.uint8)) for channel in sharp])
    left = (np.abs(blur - sharp) - LOCAL_SHIFT_MAX_PX * steepest) * inverse
    return bool(np.mean(left.max(axis=0)[region] > low) >= EXPLAINED_FRACTION)
