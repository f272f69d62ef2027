"""Local blur foreground masks by background subtraction (LBFMG), judged against a noise model.

After alignment the static background agrees between B and S up to noise; what remains
different is the moving foreground and its blur trail. Every step has a physical reason:

1. **Clipping.** A pixel at the top (or bottom) of an image's range is a bound, not a
   value: its true level is at least (at most) what was recorded, and the cameras clip at
   different radiances. Clipped levels are found as a pile-up at a channel's extreme; such
   pixels only count as evidence in the direction clipping cannot explain (S clipped white
   and B clearly darker than S's clip level is motion; both clipped is nothing). Where a
   minority of a footprint is black-clipped (noise reaching zero), its mean is biased up
   by an amount the clipped share fixes (:func:`black_clip_factor`).
2. **Brightness.** A smooth gain field per channel (quadratic in x and y, fitted robustly
   in linear light on unclipped pixels) maps S onto B: exposure and flicker differences
   and the cameras' different vignetting would otherwise light up whole regions.
3. **Noise.** Camera noise is Poisson-Gaussian in linear light, so after the display
   encoding dark regions are far noisier than bright ones, and S (short exposure, more
   gain) is noisier than B. The standard deviation of the smoothed B - S is fitted as a
   function of level on this pair's own pixels (:mod:`reloblur.lbfmg.noise`), per channel.
   What two cameras render differently on a static scene is fitted beside it
   (:mod:`reloblur.lbfmg.residual`). Two cameras never render an edge identically
   (misregistration, a distortion the homography cannot hold, sharpness, demosaicing): a
   residual ``kappa(r) |grad B|`` is fitted beside the noise, measured per tile and
   combined by a robust radial model that grows towards the corners as a distortion does,
   so a moving object's edges in one tile do not discount evidence anywhere. Detail finer
   than the smoothing, which demosaicing and S's resampling alias differently, leaves a
   residual that grows with its energy (:func:`~reloblur.lbfmg.residual.fine_detail`):
   fitted on what the other terms leave.
4. **Evidence.** ``z`` is the smoothed difference in units of its predicted sigma (noise
   and edge residual together), the largest over channels.
5. **Regions** (:mod:`reloblur.lbfmg.morphology`). Hysteresis (``low_sigmas`` grows
   regions seeded above ``high_sigmas``); specks under two smoothing footprints (or
   ``min_area`` of the image, where given) are removed *before* a small closing, so no
   closing can merge scattered false positives into a blob; a hole
   is filled only when the evidence around it, not the closing, encloses it, and a pixel
   only when one cluster of evidence brackets it on opposite sides. A uniform object
   wider than that is completed from S, which shows it sharp: a region that S's own edges
   and the mask enclose, with the mask a third of its rim or more, is the object's
   interior (:func:`~reloblur.lbfmg.morphology.fill_outlined`); one the mask flanks on two
   sides is taken when a motion of it explains the bands on both
   (:func:`reloblur.lbfmg.motion.fill_moved_segments`). Where nothing could be judged
   (undefined S, and a smoothing footprint beside it or beside the frame's border), the
   nearest judged pixel decides (:func:`~reloblur.lbfmg.morphology.carry_into_unjudged`).
6. **Fitted again.** Where the noise model fitted without the first mask (and the
   smoothing's reach around it) differs grossly from the first fit, that fit followed
   moving pixels (a uniform object's blends filling level bins of their own): every fit
   is done again without them, and the pair judged again from step 4.

A soft confidence map comes with the mask (``>= 128`` exactly where the mask is set), and
diagnostics say what the pair looked like: noise per camera and the fitted noise-level
function, clipped fractions, the gain field, and a flag when the static residual is far
above the cameras' noise (a misaligned or colour-mismatched pair).

Known limits (docs/masks.md): an object of the background's own colour and texture is
missed; a moving object's shadow counts as foreground; a uniform object moving obliquely
to all its edges keeps only its bands.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any, Literal

import cv2
import numpy as np

from reloblur.errors import ImageFormatError
from reloblur.formats.masks import Component, blur_ratio, mask_components
from reloblur.imaging.clipping import clipped_levels, decode_clip_flags
from reloblur.imaging.imageio import ensure_rgb, to_float
from reloblur.imaging.regions import connected_regions
from reloblur.lbfmg.kernels import at_pixels, disk, footprint_reach, gradient_magnitude, gradients
from reloblur.lbfmg.morphology import (
    CARRY_REACH,
    FILL_GAP,
    FILL_REACH,
    MIN_HALF_WIDTH,
    Segments,
    between_bands,
    blown_out_movers,
    carry_into_unjudged,
    component_window,
    drop_small,
    drop_thin,
    fill_enclosed,
    fill_enclosed_holes,
    fill_outlined,
    hysteresis,
    segments,
    trim_spill,
)
from reloblur.lbfmg.motion import MAX_LENGTH, fill_moved_segments
from reloblur.lbfmg.noise import NoiseLevel, fit_noise_level, guarded_table, srgb_decode, table_index
from reloblur.lbfmg.params import Crosstalk, MaskParams, Transfer
from reloblur.lbfmg.residual import (
    EDGE_MIN_TILES,
    EdgeResidual,
    edge_residual_fields,
    edge_tiles,
    fine_detail,
    whole_frame_fits,
)
from reloblur.robust import GAIN_FIELD_MIN_PIXELS, evenly_spaced, fit_gain_field, huber_weights, mad_sigma

# Edge residual (fit_edge_residual, in pixels of equivalent misregistration) beyond which
# a pair is flagged: align's median corner error is ~0.05 px, so half a pixel means the
# pair's geometry is not what registration made it.
EDGE_FLAG_PX = 0.5
# A region is reported as a colour mismatch, not motion, when a local colour map leaves
# less than this fraction of it above the growing threshold. A colour map fitted on a ring
# around a static object still leaves its sharpest edges (0.20-0.27 of the region on a
# static saturated object over a grey or dark-blue scene, two generators); a moving
# object's blend of object and background leaves most of it (over 0.32 for 99 % of the
# benchmark's moving objects, 0.87 typically).
EXPLAINED_FRACTION = 0.3
# The largest displacement (px) of S that _discount_local_shift takes as a residual
# misregistration: align's corners are within 0.25 px, and a lens distortion that differs
# between the cameras leaves up to about a pixel locally that a homography cannot hold; a
# moving object's blur is no displacement at all, whatever its size.
LOCAL_SHIFT_MAX_PX = 1.0
# Prior standard deviation of a local colour correction's entries once align has fitted
# the global one: cameras' crosstalk differs by tens of percent on saturated colours.
LOCAL_COLOUR_PRIOR = 0.3
# Noise fits use smoothed values whose noise is at most this factor (in variance) above a
# full footprint's: near clipped pixels fewer pixels are averaged.
SPREAD_FIT_LIMIT = 1.2
# Linear level below which a pixel's B/S ratio is mostly noise: left out of the gain fit.
GAIN_FLOOR = 2e-3
# How far below the binned measurement the parametric noise fit may fall before the
# measurement wins (a camera curve that is not sRGB bends the fit's shape).
BINNED_GUARD = 0.8
# Every fit here (noise, gain field, edge residual, colour) takes the static majority of the
# frame as its data, and a median stops describing it once half is something else: a mask
# over more than this share of the frame where S is defined contradicts the fits it was
# made with, so it is withheld and the pair flagged (issue 13: say so instead of masking
# half the frame).
STATIC_MAJORITY = 0.5
WithheldReason = Literal["majority", "unmeasured gain"]
# The fits are done again without the first mask when that changes the noise model by more
# than this factor in variance (its sigma twice) on more than this share of the judged
# pixels: the first fit then followed moving pixels (a uniform object's blends with a
# uniform ground fill level bins of their own, where the per-bin guard measures them).
REFIT_VARIANCE_RATIO = 4.0
REFIT_SHARE = 0.01
# The smallest region kept by default, in smoothing footprints (disks of footprint_reach's
# radius). What noise makes comes in blobs about one footprint across, in pixels, however
# large the frame, and a moving object's bands are as wide as its motion, also in pixels.
# Two footprints (100.5 px at the default smoothing) is about what the former default,
# 0.05 % of the image, came to at 538x359 (96.6 px), where it was validated; as a share of
# the image it grew with the frame, to 1545 px at 2152x1436, and dropped the bands of
# objects that moved a few pixels there.
SPECK_FOOTPRINTS = 2.0


@dataclass
class MaskResult:
    """A mask, its confidence, and what it was made from.

    Attributes
    ----------
    mask
        ``(H, W)`` uint8, 0 (static) or 255 (blurred).
    confidence
        ``(H, W)`` float32 in [0, 1]; ``>= 0.5`` exactly where ``mask`` is set.
    z
        ``(H, W)`` float32, the evidence in predicted sigmas.
    noise
        The fitted noise-level function per channel (R, G, B).
    """

    mask: np.ndarray
    blur_ratio: float
    confidence: np.ndarray
    z: np.ndarray
    components: list[Component] = field(default_factory=list)
    noise: list[NoiseLevel] = field(default_factory=list)
    camera_noise: dict[str, list[float]] = field(default_factory=dict)
    clipped: dict[str, float] = field(default_factory=dict)
    gain: dict[str, list[float]] = field(default_factory=dict)
    residual_ratio: float = 0.0
    flags: list[str] = field(default_factory=list)
    edge_kappa: list[float] = field(default_factory=list)  # px, per channel: see EdgeResidual.typical
    sharpness_beta: list[float] = field(default_factory=list)  # px^2, per channel: see fit_edge_residual
    shift_tolerance: int = 0  # px of misregistration forgiven (see MaskParams.shift_tolerance)
    noise_source: str = "pair"  # "pair": fitted on this pair; "calibration": given
    detail_gamma: list[float] = field(default_factory=list)  # px^2, per channel: see fine_detail
    # the largest of crosstalk_ratios(colour_matrix); None: no matrix, the prior bound
    crosstalk_ratio: float | None = None
    # share of the mask's pixels where nothing could be judged (undefined S, and the
    # smoothing's footprint beside it or beside the frame's border): carried there
    # (carry_into_unjudged), not measured
    unjudged_fraction: float = 0.0
    # share of the frame where S is defined that the mask would have covered when it was
    # withheld (``mask`` is then empty and a flag says why); None: given
    withheld_fraction: float | None = None
    # whether the fits were done again without the first mask (REFIT_VARIANCE_RATIO)
    refitted: bool = False
    # why the mask was withheld: "majority", it covered over STATIC_MAJORITY; "unmeasured
    # gain", too few pixels to measure the cameras' relative gain on (_match_brightness)
    withheld_reason: WithheldReason | None = None

    def confidence_u8(self) -> np.ndarray:
        """The confidence as an 8-bit image (``NN.conf.png``); ``>= 128`` where the mask is."""
        return np.clip(np.rint(self.confidence * 255), 0, 255).astype(np.uint8)

    def diagnostics(self) -> dict[str, Any]:
        """What the mask sidecar records about how the pair looked, to 9 significant digits.

        numpy's vectorised sums start on aligned memory, so their last bits follow where the
        allocator put an array: the same pair, masked after another pair (or as one shard
        of a campaign), fits the same models to within 1e-12 but not always to the bit.
        Rounded, every run of one pair writes the same sidecar."""
        return _significant({
            "noise_model": [n.to_dict() for n in self.noise],
            "camera_noise_sigma": self.camera_noise,
            "clipped_fraction": self.clipped,
            "gain_field": self.gain,
            "residual_ratio": self.residual_ratio,
            "edge_residual_px": self.edge_kappa,
            "sharpness_residual_px2": self.sharpness_beta,
            "fine_detail_residual": self.detail_gamma,
            "shift_tolerance_px": self.shift_tolerance,
            "noise_source": self.noise_source,
            "crosstalk_ratio": self.crosstalk_ratio,
            "unjudged_fraction": self.unjudged_fraction,
            "withheld_fraction": self.withheld_fraction,
            "withheld_reason": self.withheld_reason,
            "refitted": self.refitted,
            "flags": list(self.flags),
        })


def _significant(value: Any, digits: int = 9) -> Any:
    """``value`` with every float in it (nested in lists and dicts) to ``digits`` significant digits."""
    if isinstance(value, float):
        return float(f"{value:.{digits}g}")
    if isinstance(value, dict):
        return {k: _significant(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_significant(v, digits) for v in value]
    return value


def noise_sigma(channel: np.ndarray) -> float:
    """Noise standard deviation of a 2-D image (Immerkaer, 1996): an upper bound on textured
    images, exact on flat ones.

    >>> flat = np.random.default_rng(0).normal(0.5, 0.01, (256, 256))
    >>> round(noise_sigma(flat), 3)
    0.01
    """
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(channel.astype(np.float32), cv2.CV_32F, kernel)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6)


# Lookup tables for the sRGB curve: exact for 8-bit input, and 16-bit-fine for the rest
# (an error far below one 8-bit code), at a fraction of a power function's cost.
_ENCODE_TABLE = np.where((x := np.linspace(0.0, 1.0, 65536)) <= 0.0031308, x * 12.92,
                         1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)
_DECODE_TABLE = srgb_decode(np.linspace(0.0, 1.0, 65536)).astype(np.float32)
# The sRGB curve's slope, d(encoded)/d(linear), on the same grid.
_SLOPE_TABLE = np.where(x <= 0.0031308, 12.92,
                        (1.055 / 2.4) * np.power(np.maximum(x, 0.0031308), 1 / 2.4 - 1)).astype(np.float32)
# An 8-bit code k is the 16-bit code 257 k (to_float's k / 255 indexes it exactly).
_DECODE_CODES = np.ascontiguousarray(_DECODE_TABLE[257 * np.arange(256)].reshape(1, 256))


def _table_index(values: np.ndarray) -> np.ndarray:
    """Nearest 16-bit code of values in [0, 1] (clipped), as table indices."""
    scaled = np.clip(values, 0.0, 1.0, dtype=np.float32) * np.float32(65535)
    return np.rint(scaled, out=scaled).astype(np.uint16)


def _decode(image: np.ndarray, transfer: Transfer) -> np.ndarray:
    if transfer == "linear":
        return image.astype(np.float32)
    return _DECODE_TABLE.take(_table_index(image))


def _encode(linear: np.ndarray, transfer: Transfer) -> np.ndarray:
    if transfer == "linear":
        return np.clip(linear, 0.0, 1.0).astype(np.float32)
    return _ENCODE_TABLE.take(_table_index(linear))


def _shifted(array: np.ndarray, dy: int, dx: int, pad: int) -> np.ndarray:
    """The unpadded window of a ``pad``-padded ``(C, H, W)`` array, moved by ``(dy, dx)``."""
    h, w = array.shape[1] - 2 * pad, array.shape[2] - 2 * pad
    return array[:, pad + dy : pad + dy + h, pad + dx : pad + dx + w]


@dataclass
class _Clipping:
    """Per-channel clipped flags of one image, planar ``(C, H, W)``."""

    high: np.ndarray
    low: np.ndarray
    # (C, H, W) share of the smoothed level that black clipping added (black_clip_factor
    # of the share of black-clipped pixels under the smoothing kernel), once widened
    black_bias: np.ndarray | None = None
    # (C, H, W) share of each smoothed channel's weight on pixels where another channel
    # of this image clipped white (:func:`_mixed_share`): a colour correction after the
    # clipping mixed part of that channel's lost excess into this one there
    mixed_share: np.ndarray | None = None
    # (C, H, W) bool, where the true level may lie any way above (below) the smoothed one
    # though the channel did not clip: an excess no camera measured, mixed in with a
    # positive (negative) coefficient (:func:`unmeasured_excess`); None: nowhere
    open_above: np.ndarray | None = None
    open_below: np.ndarray | None = None
    _any: np.ndarray | None = field(default=None, repr=False)
    _at_all: bool | None = field(default=None, repr=False)

    def clipped_at_all(self) -> bool:
        """Whether any pixel is clipped either way, or partly black (cached)."""
        if self._at_all is None:
            self._at_all = bool(self.high.any() or self.low.any()
                                or (self.black_bias is not None and self.black_bias.any()))
        return self._at_all

    def window(self, rows: slice, cols: slice) -> _Clipping:
        """The flags cut to a window."""
        bias = None if self.black_bias is None else self.black_bias[:, rows, cols]
        mixed = None if self.mixed_share is None else self.mixed_share[:, rows, cols]
        above = None if self.open_above is None else self.open_above[:, rows, cols]
        below = None if self.open_below is None else self.open_below[:, rows, cols]
        return _Clipping(self.high[:, rows, cols], self.low[:, rows, cols], bias, mixed, above, below)

    def measured_where(self, measured: np.ndarray, mixed_share: np.ndarray | None) -> _Clipping:
        """Widened flags with no white bound where ``measured`` (``(C, H, W)`` bool) says
        the smoothing left the clipped pixels out (:func:`_smooth_pair`), and the crosstalk
        prior's share (:func:`_measured_beside_white`)."""
        high = self.high & ~measured if self.high.any() else self.high
        return _Clipping(high, self.low, self.black_bias, mixed_share)

    def opened(self, above: np.ndarray, below: np.ndarray) -> _Clipping:
        """The flags with the bounds open where :func:`unmeasured_excess` says."""
        return _Clipping(self.high, self.low, self.black_bias, self.mixed_share, above, below)

    def widened(self, reach: int, sigma_px: float | None = None) -> _Clipping:
        """The flags as they bear on values smoothed over ``reach`` pixels (a Gaussian of
        ``sigma_px``).

        A white-clipped pixel hides an unbounded excess, so any of them in a footprint
        makes the smoothed value a bound (unless the smoothing leaves it out: see
        :meth:`measured_where`). A black-clipped one hides at most a noise
        excursion (the signal is never negative): only where most of the footprint is
        clipped is the region black rather than a dark one whose noise touches zero; where
        a minority is, the smoothed value is biased up, by a share of it that the share of
        clipped pixels under the kernel fixes (:func:`black_clip_factor`).
        """
        size = 2 * reach + 1
        kernel = np.ones((size, size), np.uint8)

        def per_channel(flags: np.ndarray, spread: Callable[[np.ndarray], np.ndarray], dtype: type) -> np.ndarray:
            # A channel with no flags spreads to nothing: left out, often two of three.
            return np.stack([spread(f) if f.any() else np.zeros(f.shape, dtype) for f in flags])

        def any_near(flags: np.ndarray) -> np.ndarray:
            if not flags.any():
                return flags
            return per_channel(flags, lambda f: cv2.dilate(f.astype(np.uint8), kernel) > 0, bool)

        bias = None
        if sigma_px is not None and self.low.any():
            bias = black_clip_factor(per_channel(
                self.low, lambda f: cv2.GaussianBlur(f.astype(np.float32), (0, 0), sigma_px), np.float32))
        return _Clipping(any_near(self.high), _mostly(self.low, reach), bias)

    def any(self) -> np.ndarray:
        """``(H, W)`` bool: clipped in any channel, either way."""
        if self._any is None:
            self._any = (self.high | self.low).any(axis=0)
        return self._any


def _mostly(flags: np.ndarray, reach: int) -> np.ndarray:
    """``(C, H, W)`` bool: where most of the box of ``reach`` px around a pixel is flagged,
    per channel of ``flags`` (``(C, H, W)`` bool)."""
    if not flags.any():
        return flags
    size = 2 * reach + 1
    # A channel with no flags has nothing to spread: left out, often two of three.
    return np.stack([cv2.blur(f.astype(np.float32), (size, size)) >= 0.5 if f.any() else np.zeros(f.shape, bool)
                     for f in flags])


# Stand-in for "unbounded" on the side a clipped value leaves open: far outside [0, 1].
_UNBOUNDED = 8.0
# How far a clipped channel can move the others through a colour correction, as a fraction
# of the pixel's level (crosstalk matrices differ by 5-10 %; at 10 % the benchmark's clipped
# moving objects lost most of their evidence, at 5 % static clipped scenes stay empty).
CLIP_CROSSTALK = 0.05


def crosstalk_bound(image: np.ndarray, other: np.ndarray, smoothed: np.ndarray, clip: np.ndarray,
                    other_clip: np.ndarray, *, sigma_px: float, ratios: np.ndarray | None,
                    transfer: Transfer = "srgb", rim: np.ndarray | None = None) -> np.ndarray | None:
    """How far a colour correction may have moved each smoothed channel of ``image`` off
    the truth, by mixing in the excess its white-clipped channels lost.

    A camera that clips channel ``j`` at its white level records ``j`` short by an excess
    ``e_j >= 0``; a colour matrix ``M`` applied after the clipping then carries ``M[c, j]
    e_j`` of it into channel ``c``. Where the other camera did not clip ``j``, it measures
    the excess (``other - image`` in channel ``j``, in linear light), and given the matrix
    (``ratios``, :func:`crosstalk_ratios`) the error of ``c`` is ``ratios[c, j]`` of it:
    per pixel, then smoothed as the image was. Where nothing measures the excess (both
    cameras clipped ``j``; ``image`` clipped another channel of the pixel too, so the gap
    in ``j`` mixes both excesses; or ``ratios`` is None), the bound is
    :data:`CLIP_CROSSTALK` of the level at each such pixel, a prior on an unbounded
    excess, smoothed likewise (:func:`_mixed_share`). Beside such unmeasured clipped
    pixels of a channel's own, where the smoothing kept a measurement (``rim``), the
    whole prior holds, as it does under the prior alone (:func:`_measured_beside_white`):
    the level kept there is what the clip left of one side of an edge whose other side
    neither camera measured. Without it, a white collar S blew out in every channel, and
    B in most of it, on a static frame of the mask benchmark's over-exposed row was
    filled in from the evidence along its rim (5.5 % of the frame; 8.4 % on another
    seed set). Beside a lone channel that B measured, the rim keeps the measured bound:
    there the whole prior hid a blur trail across a ground S blew out in red (IoU 0.90
    -> 0.08, ``tests/lbfmg/test_generate.py``).

    That prior, applied beside every clipped channel, hid the blur trails a moving object
    leaves across a scene whose red alone S blew out; measured, the bound is the error
    itself (within 0.3 % on a noise-free pair), and on the mask benchmark's over-exposed
    row the mean IoU rose from 0.785 to 0.815 with every static pair still empty. It
    assumes the matrix is the only mixing after the clip: a camera that transforms colour
    itself after its sensor clips mixes the excess by a matrix this one does not show, and
    a static ground is then marked where the prior marks nothing (``mask generate
    --crosstalk measured`` is opt-in for that reason).

    Parameters
    ----------
    image, other
        ``(C, H, W)`` the two aligned images before smoothing, display-encoded by
        ``transfer``; ``image`` is the one whose bound this is.
    smoothed
        ``(C, H, W)`` ``image`` smoothed by the Gaussian of ``sigma_px``.
    clip, other_clip
        ``(C, H, W)`` bool, white-clipped pixels of each image.
    ratios
        ``(C, C)`` the share of channel ``j`` that the colour correction of ``image``
        mixed into channel ``c`` (zeros for an image nothing corrected), or None: unknown.
    rim
        ``(C, H, W)`` bool, where the smoothing kept a measurement beside ``image``'s own
        white-clipped pixels of that channel, or None: nowhere.

    Returns
    -------
    numpy.ndarray or None
        ``(C, H, W)`` float32 bound in display-encoded units, or None where ``image``
        clipped nothing or has one channel.

    Examples
    --------
    >>> s = np.full((3, 32, 32), 0.5, np.float32)
    >>> s[0, :, :16] = 0.8  # S's red clipped on the left, at its white level
    >>> b = s.copy(); b[0, :, :16] = 0.95  # B's red did not clip: S lost the difference
    >>> clipped = np.zeros(s.shape, bool); clipped[0, :, :16] = True
    >>> ratios = np.zeros((3, 3)); ratios[1, 0] = 0.2  # a fifth of red went into green
    >>> bound = crosstalk_bound(s, b, s, clipped, np.zeros_like(clipped), sigma_px=1.5, ratios=ratios)
    >>> [round(float(bound[1, 16, x]), 3) for x in (4, 30)]  # 0.2 of 0.29 linear, encoded
    [0.067, 0.0]
    >>> bound = crosstalk_bound(s, b, s, clipped, np.zeros_like(clipped), sigma_px=1.5, ratios=None)
    >>> [round(float(bound[1, 16, x]), 3) for x in (4, 30)]  # the prior: 5 % of the level
    [0.04, 0.0]
    """
    if image.shape[0] == 1 or not clip.any():
        return None
    if ratios is None:
        measured, unknown = np.zeros_like(clip), clip
    else:
        # With two or more channels clipped the gap in each mixes their excesses through
        # the matrix (a negative term can cancel it): only a lone clipped channel's is its own.
        alone = clip.sum(axis=0) == 1
        measured, unknown = clip & ~other_clip & alone, clip & (other_clip | ~alone)
    gaps: list[np.ndarray | None] = []
    for j, (where, own, theirs) in enumerate(zip(measured, image, other)):
        if ratios is None or not ratios[:, j].any() or not where.any():
            gaps.append(None)
            continue
        at = np.flatnonzero(where)
        gap = np.zeros(where.shape, np.float32)
        # The excess is never negative: a negative gap is the other image's noise.
        gap.flat[at] = np.maximum(_decode(theirs.take(at), transfer) - _decode(own.take(at), transfer), 0.0)
        gaps.append(gap)
    # The prior, per pixel where nothing measures the excess, smoothed as the image was.
    prior = _mixed_share(unknown, clip | other_clip, sigma_px)
    level = smoothed.max(axis=0)
    bound = np.zeros_like(smoothed)
    for c in range(smoothed.shape[0]):
        mixed = [float(ratios[c, j]) * e for j, e in enumerate(gaps)
                 if ratios is not None and j != c and e is not None and ratios[c, j] > 0]
        if mixed:
            # Per pixel, then smoothed as the image was: the code a linear error moves
            # depends on the pixel's own level. The encoding is concave, so a shift down
            # moves it further than one up.
            down = _encode(_decode(image[c], transfer) - sum(mixed), transfer)
            bound[c] = cv2.GaussianBlur(np.maximum(image[c] - down, 0.0), (0, 0), sigma_px)
        if prior is not None:
            bound[c] += CLIP_CROSSTALK * level * prior[c]
    if rim is not None:
        near = _Clipping(unknown, np.zeros_like(unknown)).widened(footprint_reach(sigma_px)).high
        np.maximum(bound, CLIP_CROSSTALK * level, out=bound, where=rim & near)
    return bound


def crosstalk_ratios(matrix: np.ndarray) -> np.ndarray:
    """``|M[c, j] / M[j, j]|`` of a colour matrix (``out_c = sum_j M[c, j] in_j``, as
    ``align`` records it), zero on the diagonal: the share of channel ``j``'s level, as the
    corrected image shows it, that the correction mixed into channel ``c``.

    >>> crosstalk_ratios(np.array([[1.2, -0.1, 0.0], [0.0, 1.0, 0.0], [0.0, 0.3, 0.6]])).round(3).tolist()
    [[0.0, 0.1, 0.0], [0.0, 0.0, 0.0], [0.0, 0.3, 0.0]]
    """
    m = np.asarray(matrix, np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.isfinite(m).all() or (np.abs(np.diag(m)) < 1e-6).any():
        raise ImageFormatError(f"colour matrix must be square, finite, with a non-zero diagonal; got {m.tolist()}")
    ratios = np.abs(m / np.diag(m)[None, :])
    np.fill_diagonal(ratios, 0.0)
    return ratios


def unmeasured_excess(b_high: np.ndarray, s_high: np.ndarray, matrix: np.ndarray, *, reach: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Where ``align``'s colour correction of S mixed an excess that neither camera measured
    into S's other channels, and which way that leaves each of them open.

    Where both cameras clipped channel ``j`` white, S's true ``j`` exceeds what it recorded
    by some ``e_j >= 0`` that nothing bounds from above, and the correction ``M`` (applied
    after the clip) then recorded each other channel ``c`` short of its truth by ``M[c, j]
    e_j``: the truth lies above it, unboundedly, where ``M[c, j] > 0``, and below it where
    ``M[c, j] < 0``. The sign is certain however the cameras treated colour before
    recording: it is ``align``'s own matrix, applied to the frames as recorded. A smoothed
    value carries it where most of its footprint (the box of ``reach`` px around it, as
    black clipping's rule has it) is on such pixels.

    Parameters
    ----------
    b_high, s_high
        ``(C, H, W)`` bool, white-clipped channels of each image, per pixel.
    matrix
        ``(C, C)`` the matrix S was corrected with (``out_c = sum_j M[c, j] in_j``).
    reach
        The smoothing footprint's reach, px (:func:`~reloblur.lbfmg.kernels.footprint_reach`).

    Returns
    -------
    tuple of numpy.ndarray, or None
        ``(above, below)``, ``(C, H, W)`` bool: where the truth of S's smoothed channel
        may lie any way above (below) the value recorded; None where no channel clipped
        in both images, or the images have one channel.

    Examples
    --------
    >>> both = np.zeros((3, 24, 24), bool); both[2, 4:20, 4:20] = True  # blue blown in both
    >>> m = np.array([[0.9, 0.02, 0.07], [0.0, 1.0, -0.03], [0.0, 0.0, 1.0]])
    >>> above, below = unmeasured_excess(both, both, m, reach=4)
    >>> bool(above[0, 12, 12]), bool(below[1, 12, 12]), bool(above[1, 12, 12]), bool(above[0, 1, 1])
    (True, True, False, False)
    """
    channels = s_high.shape[0]
    if channels == 1 or np.shape(matrix) != (channels, channels):
        return None
    both = b_high & s_high
    if not both.any():
        return None
    mostly = _mostly(both, reach)
    above, below = np.zeros(both.shape, bool), np.zeros(both.shape, bool)
    for c in range(channels):
        for j in range(channels):
            if j != c and matrix[c, j] != 0 and both[j].any():
                side = above[c] if matrix[c, j] > 0 else below[c]
                side |= mostly[j]
    return above, below


def clipped_output_mixing(camera_matrices: tuple[np.ndarray | None, np.ndarray | None],
                  colour_matrix: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """How the excess a camera's RGB output lost to clipping shows in B and in S as the mask
    step compares them, when ``align`` undid that camera's own colour matrix.

    A camera that applies its matrix ``M`` to the sensor's values and then clips its output
    records channel ``j`` short by ``e >= 0`` where it clipped white (long by ``e`` where it
    clipped black). Undone, the pixel is then off by ``e M^-1[:, j]`` in every channel, and
    in S, which ``align`` also corrected by ``C`` onto B's colours, by ``e C M_S^-1[:, j]``.

    Parameters
    ----------
    camera_matrices
        B's and S's camera matrix (``output = M @ sensor``), each None where none was undone.
    colour_matrix
        ``(3, 3)`` S's colour correction onto B (linear, as ``align`` recorded it), or None.

    Returns
    -------
    tuple
        ``(3, 3)`` per image, column ``j`` the direction of output channel ``j``'s excess
        in linear light; None for an image whose camera matrix was not undone.

    Examples
    --------
    >>> m = np.array([[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [-0.1, -0.5, 1.6]])
    >>> b, s = clipped_output_mixing((m, None), None)
    >>> b[:, 0].round(3).tolist(), s  # red's excess comes back in all three channels
    ([0.673, 0.146, 0.088], None)
    """
    blur_m, sharp_m = camera_matrices
    blur = None if blur_m is None else np.linalg.inv(np.asarray(blur_m, np.float64))
    sharp = None if sharp_m is None else np.linalg.inv(np.asarray(sharp_m, np.float64))
    if sharp is not None and colour_matrix is not None:
        sharp = np.asarray(colour_matrix, np.float64) @ sharp
    return blur, sharp


@dataclass(frozen=True)
class _OutputRays:
    """Where each image's camera clipped its output before ``align`` undid its matrix: per
    image, ``(direction, where)`` pairs, ``direction`` ``(C,)`` in linear light (the true
    value is the recorded one plus a non-negative multiple of it), ``where`` ``(H, W)`` bool."""

    blur: list[tuple[np.ndarray, np.ndarray]]
    sharp: list[tuple[np.ndarray, np.ndarray]]

    def window(self, rows: slice, cols: slice) -> _OutputRays:
        return _OutputRays([(d, w[rows, cols]) for d, w in self.blur], [(d, w[rows, cols]) for d, w in self.sharp])


def _output_rays(flags: dict[str, np.ndarray], mixing: tuple[np.ndarray | None, np.ndarray | None]
                 ) -> _OutputRays | None:
    """The rays of :func:`clipped_output_mixing`'s matrices where ``flags`` (planar ``(C, H, W)``
    ``b_out_high``... of :func:`decode_clip_flags`) say an output clipped."""
    rays: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"b": [], "s": []}
    for image, matrix in zip(("b", "s"), mixing):
        if matrix is None:
            continue
        for way, sign in (("high", 1.0), ("low", -1.0)):
            planes = flags[f"{image}_out_{way}"]
            if planes.shape[0] != matrix.shape[1]:
                continue  # a grey clip map: no channel to follow
            rays[image] += [(sign * matrix[:, j], where) for j, where in enumerate(planes) if where.any()]
    return _OutputRays(rays["b"], rays["s"]) if rays["b"] or rays["s"] else None


def _encoding_slope(linear: np.ndarray, transfer: Transfer) -> np.ndarray:
    """d(encoded)/d(linear) at ``linear``: how far a small linear error moves a code."""
    if transfer == "linear":
        return np.ones_like(linear)
    return _SLOPE_TABLE.take(_table_index(linear))


def _along_rays(bs: np.ndarray, ss: np.ndarray, inverse: np.ndarray, rays: _OutputRays, transfer: Transfer
                ) -> tuple[np.ndarray, np.ndarray]:
    """``bs`` and ``ss`` moved along their rays by the non-negative amounts that best explain
    their difference (least squares in sigmas, each ray in turn, twice over): what the
    values could have been had the outputs not clipped."""
    union = np.zeros(bs.shape[1:], bool)
    for _, where in rays.blur + rays.sharp:
        union |= where
    at = np.flatnonzero(union)
    if not at.size:
        return bs, ss
    channels = bs.shape[0]
    # Only the flagged pixels, gathered once: the rays cover a share of the frame.
    images = [at_pixels(bs, at), at_pixels(ss, at)]
    weight = at_pixels(inverse, at) ** 2
    local = [(k, sign, direction[:, None].astype(np.float32), np.flatnonzero(where.ravel()[at]))
             for k, sign, image_rays in ((0, 1.0, rays.blur), (1, -1.0, rays.sharp)) for direction, where in image_rays]
    for _ in range(2):
        for k, sign, direction, index in local:
            if not index.size:
                continue
            pair_values = at_pixels(images[0], index), at_pixels(images[1], index)
            values, w = pair_values[k], at_pixels(weight, index)
            step = direction * _encoding_slope(_decode(values, transfer), transfer)
            difference = pair_values[0] - pair_values[1]
            # The image + e step, e >= 0, changes the difference by sign * e * step.
            e = -sign * (w * difference * step).sum(axis=0) / np.maximum((w * step * step).sum(axis=0), 1e-12)
            images[k][:, index] = values + np.maximum(e, 0.0) * step
    moved = []
    for image, gathered in zip((bs, ss), images):
        out = image.copy()
        out.reshape(channels, -1)[:, at] = gathered
        moved.append(out)
    return moved[0], moved[1]


def _bounds(smoothed: np.ndarray, clip: _Clipping, crosstalk: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_clipped_bounds`, open on the side an unmeasured excess leaves open
    (:attr:`_Clipping.open_above`, :attr:`_Clipping.open_below`)."""
    lower, upper = _clipped_bounds(smoothed, clip, crosstalk)
    if clip.open_above is not None:
        upper = np.where(clip.open_above, np.float32(_UNBOUNDED), upper)
    if clip.open_below is not None:
        lower = np.where(clip.open_below, np.float32(-_UNBOUNDED), lower)
    return lower, upper


def _clipped_bounds(smoothed: np.ndarray, clip: _Clipping, crosstalk: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the true level: a clipped-white pixel is only a lower bound,
    a clipped-black one only an upper bound.

    A colour correction after the clipping mixes channels with coefficients of both
    signs, so a clipped channel's excess moved the others, pixel by pixel, by up to
    :data:`CLIP_CROSSTALK` of the pixel's brightest channel (the prior). Smoothed as the
    image was, a channel's error is the prior times the share of the footprint's weight
    on pixels where another channel clipped white (:func:`_mixed_share`; the whole prior
    beside the channel's own clip, :func:`_measured_beside_white`): a channel beside a
    clipped one is still a measurement, and a clipped one still a bound on its other
    side. A black-clipped channel's bound is loosened by the whole prior. With
    ``crosstalk`` (:func:`crosstalk_bound`), by that instead: what the correction after
    the clipping mixed into each channel, clipped or not; a black-clipped bound still by
    the prior."""
    if crosstalk is not None:
        return _measured_bounds(smoothed, clip, crosstalk)
    if not clip.clipped_at_all():
        return smoothed, smoothed
    level = _unbiased(smoothed, clip)
    slack = CLIP_CROSSTALK * smoothed.max(axis=0, keepdims=True)
    # The whole prior wherever a clipped pixel lay in the footprint, however few, hid the
    # faint part of blur trails across a ground S blew out in one colour (the mask
    # benchmark's over-exposed row, cached pairs: mean IoU 0.792 -> 0.820, and 0.703 ->
    # 0.747 and 0.794 -> 0.815 on two seed sets it was not developed on).
    if clip.mixed_share is None:
        lower, upper = level.copy() if level is smoothed else level, smoothed.copy()
    else:
        mixed = clip.mixed_share * slack
        lower, upper = level - mixed, smoothed + mixed
    if clip.low.any():
        np.add(smoothed, slack, out=upper, where=clip.low)
        np.copyto(lower, -_UNBOUNDED, where=clip.low)
    np.copyto(upper, _UNBOUNDED, where=clip.high)
    return lower, upper


def _mixed_share(high: np.ndarray, white: np.ndarray, sigma_px: float, *, kept: np.ndarray | None = None
                 ) -> np.ndarray | None:
    """``(C, H, W)`` share of each smoothed channel's weight on pixels where another
    channel of the same image clipped white, or None where no pixel has that.

    ``high`` ``(C, H, W)`` bool is the image's own white flags; ``white`` those of either
    image, which :func:`_smooth_pair` leaves out of each channel's average wherever the
    rest holds half the footprint's weight (there the share is of the rest; elsewhere of
    the plain footprint, as the average was; ``kept``, that weight where the caller has
    it). A channel whose own clipped pixels were left out still averaged the others'
    there: without their share, a ring of evidence round a static blown-out helmet once
    marked it as a mover."""
    if high.shape[0] == 1 or not high.any():
        return None
    count = high.sum(axis=0, dtype=np.uint8)
    share = np.zeros(high.shape, np.float32)
    # OpenCV's kernel for a float Gaussian of this sigma. The indicators blurred below
    # vanish outside the box around ``other``; on that box widened by twice the kernel's
    # radius, a blur is exact (a reflection at an inner cut brings back only zeros, and
    # where the share is not zero the cut is out of reach), at the cost of the box alone.
    size = int(round(8 * sigma_px + 1)) | 1
    pad = size - 1
    h, w = high.shape[1:]

    def blur(flags: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(flags.astype(np.float32), (size, size), sigma_px)

    for c in range(high.shape[0]):
        other = count > high[c]
        rows, cols = np.flatnonzero(other.any(axis=1)), np.flatnonzero(other.any(axis=0))
        if not rows.size:
            continue
        box = (slice(max(0, rows[0] - pad), min(h, rows[-1] + pad + 1)),
               slice(max(0, cols[0] - pad), min(w, cols[-1] + pad + 1)))
        other, unclipped = other[box], ~white[c][box]
        weight = blur(unclipped) if kept is None else kept[c][box]
        among_kept = blur(other & unclipped) / np.maximum(weight, 1e-6)
        full = weight >= 0.5
        share[c][box] = among_kept if full.all() else np.where(full, among_kept, blur(other))
    return share if share.any() else None


def _measured_beside_white(wide: _Clipping, high: np.ndarray, white: np.ndarray, kept: np.ndarray,
                           sigma_px: float) -> tuple[_Clipping, np.ndarray | None]:
    """``wide`` (an image's flags widened to the footprint) with no white bound where the
    smoothing measured the value (:meth:`_Clipping.measured_where`), and the share of each
    smoothed channel the crosstalk prior applies to (:attr:`_Clipping.mixed_share`).

    That share is :func:`_mixed_share` of the image's own white flags ``high``, and all of
    it where the smoothing left the channel's own clipped pixels out: the level kept
    there is what the noise left under the clip, biased low, on one side of an edge whose
    other side is not measured, and no model here holds that. The whole prior stands for
    it, as it did for every pixel near a clip before the share (without it, a static
    window S clipped was filled in as a mover: ``tests/postprocess/test_align.py``).
    ``white``: either image's flags, as :func:`_smooth_pair` left them out; ``kept``: the
    footprint's weight on the rest, as it measured it (half of it or more: measured).
    Also returns that rim, ``(C, H, W)`` bool, or None where there is none."""
    measured = kept >= 0.5
    share = _mixed_share(high, white, sigma_px, kept=kept)
    rim = wide.high & measured
    if not rim.any():
        return wide.measured_where(measured, share), None
    share = np.maximum(np.zeros(rim.shape, np.float32) if share is None else share, rim)
    return wide.measured_where(measured, share), rim


def _measured_bounds(smoothed: np.ndarray, clip: _Clipping, crosstalk: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_bounds` loosened by a measured ``crosstalk`` instead of the prior."""
    slack = CLIP_CROSSTALK * smoothed.max(axis=0, keepdims=True) if clip.low.any() else 0.0
    lower = np.where(clip.low, -_UNBOUNDED, _unbiased(smoothed, clip) - crosstalk)
    upper = np.where(clip.high, _UNBOUNDED, np.where(clip.low, smoothed + slack, smoothed + crosstalk))
    return lower, upper


def _unbiased(smoothed: np.ndarray, clip: _Clipping) -> np.ndarray:
    """``smoothed`` less what black clipping of part of its footprint added (:func:`black_clip_factor`)."""
    return smoothed if clip.black_bias is None else smoothed - np.maximum(smoothed, 0.0) * clip.black_bias


def black_clip_factor(share: np.ndarray) -> np.ndarray:
    """The share of a smoothed level that black clipping of a minority of its footprint added.

    A camera records ``max(x, 0)``: where the noise of a dark region reaches below zero,
    the negative excursions are lost and the smoothed level ``m`` sits above the true mean
    ``mu``. With Gaussian noise of unknown ``sigma``, the observed share ``f`` of clipped
    pixels fixes ``mu / sigma = a = Phi^-1(1 - f)``, and ``m = sigma (a (1 - f) + phi(a))``,
    so the bias is ``m - mu = m (1 - a / (a (1 - f) + phi(a)))``: a share of ``m`` that
    depends on ``f`` alone, without a noise model. At ``f = 0.1`` it is 4 % of ``m``; at
    0.3, 27 %; at 0.5, all of it (beyond, the footprint is treated as clipped outright).

    Parameters
    ----------
    share
        ``(C, H, W)`` share of black-clipped pixels under the smoothing kernel.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` float32 factor in [0, 1]; the bias is the factor times the level.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.maximum(rng.normal(0.02, 0.03, 200_000), 0)  # a dark level, noisy
    >>> factor = black_clip_factor(np.full((1, 1, 1), (x == 0).mean()))[0, 0, 0]
    >>> round(float(x.mean() * (1 - factor)), 4)  # the true mean, 0.02
    0.02
    """
    factor = np.zeros(share.shape, np.float32)
    where = share > 1e-3  # below, the factor is under 1e-4: nothing to correct
    # The factor is smooth in f: a table of it, interpolated, is within 1e-6 of the formula
    # at a fraction of the cost of ndtri per pixel.
    position = (np.minimum(share[where], 0.5) - _BLACK_SHARES[0]) * ((_BLACK_SHARES.size - 1) / 0.499)
    lower = np.minimum(position.astype(np.intp), _BLACK_SHARES.size - 2)
    weight = (position - lower).astype(np.float32)
    factor[where] = _BLACK_FACTORS[lower] * (1 - weight) + _BLACK_FACTORS[lower + 1] * weight
    return factor


def _black_clip_formula(f: np.ndarray) -> np.ndarray:
    # The normal quantile by the standard library (Wichura's AS241, to double precision):
    # the float32 table is the same as with scipy's ndtri, without importing scipy.
    quantile = NormalDist().inv_cdf
    a = np.array([quantile(1.0 - share) for share in f.tolist()])
    density = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi)
    return np.clip(1.0 - a / np.maximum(a * (1.0 - f) + density, 1e-6), 0.0, 1.0)


_BLACK_SHARES = np.linspace(1e-3, 0.5, 4097)
_BLACK_FACTORS = _black_clip_formula(_BLACK_SHARES).astype(np.float32)


@dataclass
class _Judge:
    """How a smoothed difference becomes evidence: per-pixel inverse sigma, clipped bounds,
    where S is defined, and the shift tolerance."""

    inverse: np.ndarray  # (C, H, W) 1 / predicted sigma of the smoothed difference
    clip_b: _Clipping  # widened to the smoothing footprint
    clip_s: _Clipping
    inside: np.ndarray  # (H, W) bool, valid and away from undefined S and from the frame's border
    tolerance: int
    noise_variance: np.ndarray  # (C, H, W) predicted noise variance alone (no edge residual)
    # (C, H, W) crosstalk_bound of each image, None for the prior
    crosstalk_b: np.ndarray | None = None
    crosstalk_s: np.ndarray | None = None
    rays: _OutputRays | None = None  # where a camera's output clipped before align undid its matrix
    transfer: Transfer = "srgb"
    # The rendering residuals it was made with: per channel the edge fields and the fine-detail gamma.
    rendering: tuple[list[EdgeResidual], np.ndarray] | None = None

    def z(self, bs: np.ndarray, ss: np.ndarray, window: tuple[slice, slice] = (slice(None), slice(None))) -> np.ndarray:
        """``z`` over ``window``: the smallest over shifts of S (up to ``tolerance`` px) of the
        largest over channels of the clipping-aware gap between B and S, in sigmas; where a
        camera's output clipped, the smaller of that and the gap left once the clipped
        excess explains what it can (:func:`_along_rays`; the values as recorded are one
        possibility, so the gap never grows).

        ``bs`` and ``ss`` are the smoothed images cut to ``window``."""
        z = self._gap(bs, ss, window)
        if self.rays is not None:
            rows, cols = window
            moved = _along_rays(bs, ss, self.inverse[:, rows, cols], self.rays.window(rows, cols), self.transfer)
            z = np.minimum(z, self._gap(*moved, window))
        return z

    def _gap(self, bs: np.ndarray, ss: np.ndarray, window: tuple[slice, slice]) -> np.ndarray:
        rows, cols = window
        inverse = self.inverse[:, rows, cols]
        clip_b, clip_s = self.clip_b.window(rows, cols), self.clip_s.window(rows, cols)
        b_low, b_high = _bounds(bs, clip_b, None if self.crosstalk_b is None else self.crosstalk_b[:, rows, cols])
        s_low, s_high = _bounds(ss, clip_s, None if self.crosstalk_s is None else self.crosstalk_s[:, rows, cols])
        pad = self.tolerance
        if pad:
            s_low = np.pad(s_low, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
            s_high = np.pad(s_high, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
        z = None
        for dy in range(-pad, pad + 1):
            for dx in range(-pad, pad + 1):
                gap = np.maximum(b_low - _shifted(s_high, dy, dx, pad), _shifted(s_low, dy, dx, pad) - b_high)
                gap *= inverse
                e = np.maximum(np.maximum(gap[0], gap[1]), gap[2]) if gap.shape[0] == 3 else gap.max(axis=0)
                z = e if z is None else np.minimum(z, e)
        assert z is not None
        z = np.maximum(z, 0.0)
        z[~self.inside[rows, cols]] = 0.0
        return z.astype(np.float32)


def _unreliable(raw: _Clipping, wide: _Clipping) -> np.ndarray:
    """``(H, W)`` bool: pixels whose value is a bound rather than a measurement, for fits.

    Every white-clipped pixel; a black-clipped one only inside a mostly black footprint
    (``wide``). Where S is much noisier than B, a dark region's noise reaches zero on a
    scattered share of its pixels (flags that align once widened by its resampling kernel
    covered 70 % of such a frame): dropping those would leave the noise and gain fits only
    the bright pixels, and the dark ones judged by an extrapolation."""
    return np.asarray(raw.high.any(axis=0) | wide.low.any(axis=0), bool)


def _fit_region(wide_b: _Clipping, wide_s: _Clipping, usable: np.ndarray, valid: np.ndarray, sigma_px: float
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


def _derivatives(bs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, H, W)`` ``|grad|`` and ``|lap|`` of the smoothed B: what the edge residual scales with."""
    return (np.stack([gradient_magnitude(channel) for channel in bs]),
            np.stack([np.abs(cv2.Laplacian(channel, cv2.CV_32F, ksize=3)) for channel in bs]))


def _judge(bs: np.ndarray, difference: np.ndarray, bp: np.ndarray, levels: tuple[np.ndarray, np.ndarray],
           derivatives: tuple[np.ndarray, np.ndarray],
           clip_b: _Clipping, clip_s: _Clipping, inside: np.ndarray, fit_on: np.ndarray, *, sigma_px: float,
           tolerance: int, transfer: Transfer, noise: list[NoiseLevel] | None = None, fine: np.ndarray | None = None,
           spread: np.ndarray | None = None, crosstalk: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
           rays: _OutputRays | None = None, supported: bool = False,
           rendering: tuple[list[EdgeResidual], np.ndarray] | None = None
           ) -> tuple[_Judge, list[NoiseLevel], list[float], list[float], list[float]]:
    """Fit the noise-level function, the edge residual and the fine-detail residual of
    ``difference`` (the smoothed ``bs - ss``) per channel on the pixels ``fit_on``, and build the
    :class:`_Judge` from them. ``bp`` is B before smoothing; ``levels``: the noise tables'
    entries at ``bs`` and at ``ss`` (:func:`~reloblur.lbfmg.noise.table_index`);
    ``derivatives``: :func:`_derivatives` of ``bs``; ``fine``: what the smoothing removed from
    ``difference`` (:func:`~reloblur.lbfmg.noise.fit_noise_level`); ``clip_b`` and ``clip_s``
    are widened to the smoothing footprint; ``inside`` and ``fit_on`` are
    :func:`_fit_region`'s (``fit_on`` perhaps less pixels left out of every fit);
    ``spread`` is the noise variance of each smoothed value relative to a full
    footprint's (:func:`_smooth_pair`); ``crosstalk`` is
    :func:`crosstalk_bound` of B and of S (None: the prior); ``rays``: where a camera's
    output clipped before ``align`` undid its matrix (:func:`_output_rays`); ``supported``:
    the noise model's guard is what the bins' fine-scale differences support;
    ``rendering``: an earlier judge's edge fields and fine-detail gammas
    (:attr:`_Judge.rendering`), kept instead of fitted again.

    Returns the judge, the noise models, and per channel the edge residual (px), the
    sharpness residual (px^2) and the fine-detail residual (:func:`~reloblur.lbfmg.residual.fine_detail`)."""
    models = noise if noise is not None else _fit_noise(difference, bs, fit_on, transfer, fine)
    variance = _noise_variance(models, levels, supported=supported)
    detail = np.stack([fine_detail(bp[c], variance[c], fit_on, sigma_px=sigma_px) for c in range(bs.shape[0])])
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
    gammas = (np.sqrt(whole_frame_fits(difference, modelled, detail, None, fit_on)[:, 0]) if rendering is None
              else rendering[1])
    # float32, as every step that judges with it is: a float64 inverse (gammas are float64)
    # doubled the cost of each of them.
    modelled += (detail * gammas[:, None, None]) ** 2
    inverse = np.reciprocal(np.sqrt(modelled))
    judge = _Judge(inverse, clip_b, clip_s, inside, tolerance, variance, *crosstalk, rays, transfer, (residuals, gammas))
    return judge, models, [r.typical for r in residuals], [r.beta for r in residuals], gammas.tolist()


def _fit_noise(difference: np.ndarray, bs: np.ndarray, fit_on: np.ndarray, transfer: Transfer,
               fine: np.ndarray | None = None) -> list[NoiseLevel]:
    """The noise-level function per channel of ``difference`` (the smoothed ``bs - ss``) at
    B's levels ``bs``, on ``fit_on``; ``fine``: what the smoothing removed from it
    (:func:`~reloblur.lbfmg.noise.fit_noise_level`)."""
    return [fit_noise_level(difference[c], bs[c], fit_on, transfer=transfer, fine=None if fine is None else fine[c])
            for c in range(bs.shape[0])]


def _noise_variance(models: list[NoiseLevel], levels: tuple[np.ndarray, np.ndarray], *,
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


def _guard_rests_on_structure(models: list[NoiseLevel]) -> bool:
    """Whether the guard on some channel's noise model predicts a variance more than
    :data:`REFIT_VARIANCE_RATIO` above what the bins' fine-scale differences support."""
    return any(float(np.max(guarded_table(model, guard=BINNED_GUARD) ** 2
                            / np.maximum(guarded_table(model, guard=BINNED_GUARD, supported=True) ** 2, 1e-30)))
               > REFIT_VARIANCE_RATIO for model in models)


def _followed_motion(first: list[NoiseLevel], again: list[NoiseLevel], judge: _Judge,
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
    variance = _noise_variance(again, levels)
    if spread is not None:
        variance *= spread
    ratio = (judge.noise_variance / np.maximum(variance, 1e-30)).max(axis=0)[judge.inside]
    return bool(np.count_nonzero(ratio > REFIT_VARIANCE_RATIO) > REFIT_SHARE * ratio.size)


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
        ``(3, 3)``; ``None`` with fewer than 50 pixels.
    """
    index = np.flatnonzero(region)
    if index.size < 50:
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
        than 50 pixels.
    """
    if np.count_nonzero(region) < 50:
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


def _rejudge_explained(mask: np.ndarray, z: np.ndarray, bs: np.ndarray, judge: _Judge, usable: np.ndarray | None,
                       params: MaskParams,
                       local: Callable[[slice, slice, np.ndarray, np.ndarray], np.ndarray | None]) -> int:
    """Re-judge, in place on ``z``, each region of ``mask`` that a local model of the pair
    explains; returns how many were (reported as a flag).

    For each region, ``local(rows, cols, region, grown)`` gives smoothed S over the window
    around it (rows, columns) as the model fitted there makes it, or None where no model
    fits (``region`` is the region in that window, ``grown`` the region grown by half the
    window's margin, where the model is fitted and the region's judgement reaches: the
    smoothing's footprint). A region under :data:`EXPLAINED_FRACTION` of which stays above
    ``--low`` with that S is explained, and ``z`` over the grown region takes the smaller
    of the two judgements. A region mostly not ``usable`` (clipped) is left as it is:
    clipping bends the colour relation and makes the gradients the clip's (``usable``
    None: every region is judged)."""
    count, labels, stats = connected_regions(mask)
    margin = int(math.ceil(3 * params.smooth_sigma)) + judge.tolerance + 6
    ring = disk(max(3, margin // 2))
    explained = 0
    for label in range(1, count):
        rows, cols = component_window(stats, label, margin, labels.shape)
        component = labels[rows, cols] == label
        if usable is not None and np.mean(~usable[rows, cols][component]) > 0.3:
            continue
        grown = cv2.dilate(component.astype(np.uint8), ring) > 0
        ss_local = local(rows, cols, component, grown)
        if ss_local is None:
            continue
        z_local = judge.z(bs[:, rows, cols], ss_local, (rows, cols))
        if np.mean(z_local[component] > params.low_sigmas) >= EXPLAINED_FRACTION:
            continue  # most of it is more than the model: motion, judged as it was
        window = z[rows, cols]
        window[grown] = np.minimum(window[grown], z_local[grown])
        explained += 1
    return explained


def _discount_unmeasured_excess(mask: np.ndarray, z: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: _Judge,
                                opened: tuple[np.ndarray, np.ndarray], params: MaskParams) -> int:
    """Re-judge each candidate region with S's bounds open where an excess no camera
    measured was mixed into it (``opened``, :func:`unmeasured_excess`), in place on ``z``.

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
    above, below = opened
    near = (above | below).any(axis=0)
    if not (mask & near).any():
        return 0
    wider = replace(judge, clip_s=judge.clip_s.opened(above, below))

    def as_recorded(rows: slice, cols: slice, component: np.ndarray, _: np.ndarray) -> np.ndarray | None:
        return ss[:, rows, cols] if near[rows, cols][component].any() else None

    return _rejudge_explained(mask, z, bs, wider, None, params, as_recorded)


def _discount_local_colour(mask: np.ndarray, z: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray,
                           judge: _Judge, usable: np.ndarray, params: MaskParams) -> int:
    """Re-judge each candidate region after a local colour correction, in place on ``z``.

    A static object whose colours the pair's global colour fit got wrong (colours absent
    from the scene it was fitted on) differs between B and S everywhere on it; motion
    leaves a blend of object and background in B that no colour map turns S into. A region
    that a colour matrix fitted around it (near the identity, :func:`fit_local_colour`)
    mostly explains is re-judged with that matrix: its colour-only difference vanishes,
    and the motion at its edges, if any, stays. Other regions are left as they are.

    Returns the number of regions re-judged (reported as a flag).
    """
    # Fit on the smoothed images: S's noise would otherwise attenuate the regression (a
    # noisy regressor shrinks the slope towards zero) and a map that flattens S would seem
    # to explain a moving object away.
    def recoloured(rows: slice, cols: slice, _: np.ndarray, grown: np.ndarray) -> np.ndarray | None:
        colour = fit_local_colour(_decode(bs[:, rows, cols], params.transfer),
                                  _decode(ss[:, rows, cols], params.transfer), grown & usable[rows, cols])
        if colour is None:
            return None
        raw_s = _decode(sp[:, rows, cols], params.transfer)
        mapped = _encode(np.einsum("ij,jhw->ihw", colour, raw_s), params.transfer)
        return np.stack([cv2.GaussianBlur(c, (0, 0), params.smooth_sigma) for c in mapped])

    return _rejudge_explained(mask, z, bs, judge, usable, params, recoloured)


def _discount_local_shift(mask: np.ndarray, z: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: _Judge,
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
    def displaced(rows: slice, cols: slice, component: np.ndarray, grown: np.ndarray) -> np.ndarray | None:
        b, s, inverse = bs[:, rows, cols], ss[:, rows, cols], judge.inverse[:, rows, cols]
        if _beyond_any_shift(b, s, inverse, component, params.low_sigmas):
            return None  # most moving objects: no fit needed to see it
        fit = fit_local_shift(b, s, grown & usable[rows, cols], inverse)
        return None if fit is None or math.hypot(*fit[0]) > LOCAL_SHIFT_MAX_PX else fit[1]

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


def _edges(sharp: np.ndarray, noise_variance: np.ndarray, edge_sigmas: float) -> np.ndarray:
    """``(H, W)`` bool, S's edges: a gradient of the smoothed S (``(C, H, W)``) above
    ``edge_sigmas`` of the smoothed difference's predicted noise sigma per pixel
    (``noise_variance``, ``(C, H, W)``; S's own noise is less than the difference's, so noise
    makes fewer edges than that, never more)."""
    strength = None
    for channel, variance in zip(sharp, noise_variance):
        gradient = gradient_magnitude(channel) * (1.0 / np.sqrt(variance))
        strength = gradient if strength is None else np.maximum(strength, gradient)
    assert strength is not None
    return np.asarray(strength > edge_sigmas)


def generate_mask(blur: np.ndarray, sharp: np.ndarray, *, params: MaskParams = MaskParams(),
                  valid: np.ndarray | None = None, clipped: np.ndarray | None = None,
                  noise: list[NoiseLevel] | None = None, colour_matrix: np.ndarray | None = None,
                  crosstalk: Crosstalk = "prior",
                  output_mixing: tuple[np.ndarray | None, np.ndarray | None] = (None, None)) -> MaskResult:
    """The blur mask of an aligned pair.

    Parameters
    ----------
    blur, sharp
        ``(H, W, 3)`` (or grey ``(H, W)``) aligned images on B's grid, display-encoded
        (``params.transfer``), uint8/uint16 or float in [0, 1].
    params
        See :class:`MaskParams`.
    valid
        ``(H, W)`` bool or uint8, where S is defined (``align --no-crop`` writes it as
        ``<id>.valid.png``); outside it nothing is evidence, and the mask there is the
        nearest judged pixel's (:func:`~reloblur.lbfmg.morphology.carry_into_unjudged`). Default: everywhere.
    clipped
        ``(H, W, 3)`` (per channel) or ``(H, W)`` (per pixel) uint8 flags of
        :func:`reloblur.imaging.clipping.encode_clip_flags`, where the cameras' own outputs
        were clipped (``align`` writes them as ``<id>.clip.png``:
        after colour correction S's clipping no longer shows as a pile-up). Added to what
        is found on ``blur`` and ``sharp`` themselves.
    noise
        The noise-level function per channel from a calibration capture
        (:func:`pair_noise_model` on static pairs); default: fitted on this pair.
    colour_matrix
        ``(3, 3)`` the matrix ``align`` corrected S's colours with (its sidecar's
        ``color_matrix``; B's colours are its camera's own: nothing mixed them). Where
        both cameras clipped a channel, the correction carried S's unmeasured excess into
        the others, in the direction its signs give: a region that this explains is not
        motion (:func:`unmeasured_excess`). Default: unknown.
    crosstalk
        How far the correction after the clip moved each channel beside a clipped one.
        ``"prior"``: up to :data:`CLIP_CROSSTALK` of the level, for cameras that may have
        mixed colour themselves after their sensors clipped. ``"measured"``: what
        ``colour_matrix`` made of the excess where B did not clip that channel
        (:func:`crosstalk_bound`); only for cameras that do not transform colour after
        their sensors clip (raw capture).
    output_mixing
        For B and S, where ``align`` undid a camera's own colour matrix: the directions of
        :func:`clipped_output_mixing`. Where ``clipped`` says that camera's output clipped, the
        excess it lost may explain the part of the difference along them, and only the
        rest is evidence. None for an image whose matrix was not undone.

    Returns
    -------
    MaskResult
        ``mask`` is ``(H, W)`` uint8 with 0 (static) and 255 (blurred).

    Raises
    ------
    ImageFormatError
        The images differ in size, or hold non-finite values; ``colour_matrix`` does not
        fit them, or ``crosstalk`` is ``"measured"`` without one.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> b = np.full((120, 160, 3), 0.5) + rng.normal(0, 0.01, (120, 160, 3))
    >>> s = np.full((120, 160, 3), 0.5) + rng.normal(0, 0.02, (120, 160, 3))
    >>> s[40:80, 60:100] = 0.9  # an object S sees and B does not
    >>> result = generate_mask(b, s)
    >>> bool(result.mask[60, 80] == 255 and result.mask[10, 10] == 0)
    True
    """
    pair = _prepare(blur, sharp, valid, clipped, params)
    bp, sp, bs, ss = pair.bp, pair.sp, pair.bs, pair.ss
    clip_b, clip_s, usable, valid_in = pair.clip_b, pair.clip_s, pair.usable, pair.valid
    ratios_s = None
    bounds: tuple[np.ndarray | None, np.ndarray | None] = (None, None)  # the prior
    if crosstalk not in ("prior", "measured"):
        raise ImageFormatError(f"crosstalk {crosstalk!r}: choose prior or measured")
    if crosstalk == "measured" and colour_matrix is None:
        raise ImageFormatError("crosstalk 'measured' needs the colour matrix S was corrected with")
    opened = None
    if colour_matrix is not None and bp.shape[0] > 1:  # a grey pair has nothing to mix
        ratios = crosstalk_ratios(colour_matrix)
        if ratios.shape[0] != bp.shape[0]:
            raise ImageFormatError(f"colour matrix is {ratios.shape[0]}x{ratios.shape[0]}, "
                                   f"the images have {bp.shape[0]} channels")
        opened = unmeasured_excess(clip_b.high, clip_s.high, np.asarray(colour_matrix, np.float64),
                                   reach=footprint_reach(params.smooth_sigma))
        if crosstalk == "measured":
            ratios_s = ratios
    if ratios_s is not None:
        ratios_b = np.zeros_like(ratios_s)  # align leaves B's colours as its camera made them
        bounds = (crosstalk_bound(bp, sp, bs, clip_b.high, clip_s.high, sigma_px=params.smooth_sigma,
                                  ratios=ratios_b, transfer=params.transfer, rim=pair.rims[0]),
                  crosstalk_bound(sp, bp, ss, clip_s.high, clip_b.high, sigma_px=params.smooth_sigma,
                                  ratios=ratios_s, transfer=params.transfer, rim=pair.rims[1]))
    rays = None if pair.output is None else _output_rays(pair.output, output_mixing)
    inside, fit_on = _fit_region(pair.wide_b, pair.wide_s, usable, valid_in, params.smooth_sigma)
    # A second judgement fits again, on the same images.
    difference, levels, derivatives = bs - ss, (table_index(bs), table_index(ss)), _derivatives(bs)
    # Only a noise fit reads it, and a calibration's model is not fitted here.
    fine = (bp - sp) - difference if noise is None else None

    def judged(fitted: list[NoiseLevel] | None, fit_pixels: np.ndarray, supported: bool = False,
               rendering: tuple[list[EdgeResidual], np.ndarray] | None = None
               ) -> tuple[_Judge, list[NoiseLevel], list[float], list[float], list[float]]:
        return _judge(bs, difference, bp, levels, derivatives, pair.wide_b, pair.wide_s, inside, fit_pixels,
                      sigma_px=params.smooth_sigma, tolerance=params.shift_tolerance, transfer=params.transfer,
                      noise=fitted, fine=fine, spread=pair.spread, crosstalk=bounds, rays=rays,
                      supported=supported, rendering=rendering)

    judge, models, edge_kappa, sharpness_beta, detail_gamma = judged(noise, fit_on)
    z = judge.z(bs, ss)
    blind = np.asarray(pair.wide_b.high.all(axis=0) & pair.wide_s.high.all(axis=0), bool)
    mask, recoloured, shifted = _regions(z, bp, sp, bs, ss, judge, usable, valid_in, params, blind, opened)

    def without(candidate: np.ndarray) -> tuple[_Judge, list[NoiseLevel], list[float], list[float], list[float]] | None:
        """The fits done again without ``candidate`` (grown by the smoothing's reach, where
        smoothed values mix its pixels in), if the first ones followed its pixels."""
        moving = cv2.dilate(candidate.astype(np.uint8), disk(footprint_reach(params.smooth_sigma))) > 0
        pixels = fit_on & ~moving
        again = _fit_noise(difference, bs, pixels, params.transfer, fine)
        return judged(again, pixels) if _followed_motion(models, again, judge, levels, pair.spread) else None

    # The fits took the frame for the static majority. Where the moving pixels fill a level
    # bin of their own, the noise model follows them there, and everything at those levels
    # is judged too leniently. Fit again without the first mask and, where that changes the
    # noise model grossly, judge again.
    refit = None
    if noise is None and mask.any():
        refit = without(mask)
    elif noise is None and _guard_rests_on_structure(models):
        # Where the guard rests on such a bin, the first mask may hold none of the object
        # (thin uniform bars on a uniform wall: every pixel of theirs is a blend). Judged
        # by what the bins' noise supports, they are candidates; whether the fits followed
        # them is decided as for a first mask. The rendering residuals stay the first
        # judge's: fitted again against the lower noise on such a wall, the edge term
        # took up the difference (0.5-2.8 px in 8 of 16 tiles, against one tile of 0.5)
        # and forgave the bars' edges, the frame's only ones, as misregistration.
        provisional = judged(models, fit_on, supported=True, rendering=judge.rendering)[0]
        candidate = _regions(provisional.z(bs, ss), bp, sp, bs, ss, provisional, usable, valid_in, params, blind,
                             opened)[0]
        refit = without(candidate) if candidate.any() else None
    refitted = refit is not None
    if refit is not None:
        judge, models, edge_kappa, sharpness_beta, detail_gamma = refit
        z = judge.z(bs, ss)
        mask, recoloured, shifted = _regions(z, bp, sp, bs, ss, judge, usable, valid_in, params, blind, opened)
    share = float(np.count_nonzero(mask & valid_in)) / max(1, int(np.count_nonzero(valid_in)))
    # Every comparison of B with S rests on their relative gain: where it could not be
    # measured, neither a mask nor an empty one says anything of the pair.
    reason: WithheldReason | None = ("unmeasured gain" if not pair.gain_measured
                                     else "majority" if share > STATIC_MAJORITY else None)
    withheld = None if reason is None else share
    if withheld is not None:
        mask = np.zeros_like(mask)
    unjudged = float(np.count_nonzero(mask & ~judge.inside)) / max(1, int(np.count_nonzero(mask)))
    confidence = np.clip((z - 1.0) / max(params.high_sigmas - 1.0, 1e-6), 0.0, 1.0)
    confidence = np.where(mask, np.maximum(confidence, 0.5), np.minimum(confidence, 127 / 255)).astype(np.float32)
    out = np.where(mask, 255, 0).astype(np.uint8)
    reach = int(math.ceil(2 * params.smooth_sigma)) + 1
    static = usable & ~(cv2.dilate(out, disk(max(2, reach))) > 0)
    camera_noise, residual_ratio = _camera_noise(bp, sp, static, pair.code)
    clipped_fraction = {role: float(_any_clipped(clip, pair.output, role.lower())[valid_in].mean())
                        for role, clip in (("B", clip_b), ("S", clip_s))}
    flags = _flags(edge_kappa, recoloured, clipped_fraction, withheld, reason, shifted)
    return MaskResult(out, blur_ratio(out), confidence, z, mask_components(out), models, camera_noise,
                      clipped_fraction, pair.gains, residual_ratio, flags, edge_kappa, sharpness_beta, judge.tolerance,
                      "pair" if noise is None else "calibration", detail_gamma,
                      None if ratios_s is None else float(ratios_s.max()), unjudged, withheld, refitted, reason)


def pair_noise_model(blur: np.ndarray, sharp: np.ndarray, *, params: MaskParams = MaskParams(),
                     valid: np.ndarray | None = None) -> list[NoiseLevel]:
    """The noise-level function per channel of an aligned *static* pair, fitted exactly as
    :func:`generate_mask` fits it: what ``align calibrate`` stores from its static capture
    and ``mask generate --calibration`` uses instead of each pair's own fit."""
    pair = _prepare(blur, sharp, valid, None, params)
    _, fit_on = _fit_region(pair.wide_b, pair.wide_s, pair.usable, pair.valid, params.smooth_sigma)
    return _fit_noise(pair.bs - pair.ss, pair.bs, fit_on, params.transfer)


@dataclass
class _Prepared:
    """A pair made ready to judge: planar ``(C, H, W)`` images (S brightness-matched), both
    smoothed, the clipping of each, the validity mask and the pixels usable for fits."""

    bp: np.ndarray
    sp: np.ndarray
    bs: np.ndarray
    ss: np.ndarray
    clip_b: _Clipping
    clip_s: _Clipping
    wide_b: _Clipping  # the clipping as it bears on the smoothed values
    wide_s: _Clipping
    valid: np.ndarray
    usable: np.ndarray
    code: float
    gains: dict[str, list[float]]
    gain_measured: bool  # False: too few pixels to fit the gain field on (_match_brightness)
    spread: np.ndarray | None  # (C, H, W) noise variance of bs - ss relative to a full footprint's
    output: dict[str, np.ndarray] | None = None  # where a camera's output clipped (_clipping)
    # (C, H, W) per image: measured beside its own white clip (_measured_beside_white), or None
    rims: tuple[np.ndarray | None, np.ndarray | None] = (None, None)


def _prepare(blur: np.ndarray, sharp: np.ndarray, valid: np.ndarray | None, clipped: np.ndarray | None,
             params: MaskParams) -> _Prepared:
    """What :func:`generate_mask` and :func:`pair_noise_model` both start from."""
    b, s, valid_in, code = _inputs(blur, sharp, valid)
    bp = np.ascontiguousarray(b.transpose(2, 0, 1), np.float32)
    sp = np.ascontiguousarray(s.transpose(2, 0, 1), np.float32)
    clip_b, clip_s, output = _clipping(b, s, valid_in, clipped, code)
    reach = footprint_reach(params.smooth_sigma)
    wide_b, wide_s = clip_b.widened(reach, params.smooth_sigma), clip_s.widened(reach, params.smooth_sigma)
    usable = valid_in & ~_unreliable(clip_b, wide_b) & ~_unreliable(clip_s, wide_s)
    codes = None
    if blur.dtype == np.uint8 and sharp.dtype == np.uint8:
        codes = (np.ascontiguousarray(ensure_rgb(blur)), np.ascontiguousarray(ensure_rgb(sharp)))
    sp, gains, gain_measured = _match_brightness(bp, sp, usable, params, codes)
    # A second, coarser scale was tried: there the static residual is colour and gain
    # misfit, spatially correlated, and it raised false area tenfold.
    white = clip_b.high | clip_s.high
    bs, ss, kept, spread = _smooth_pair(bp, sp, white, params.smooth_sigma)
    rims: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if kept is not None:
        (wide_b, rim_b), (wide_s, rim_s) = (_measured_beside_white(wide, own.high, white, kept, params.smooth_sigma)
                                            for wide, own in ((wide_b, clip_b), (wide_s, clip_s)))
        rims = (rim_b, rim_s)
    if spread is not None:  # the noise fit wants full footprints
        usable = usable & (spread.max(axis=0) < SPREAD_FIT_LIMIT)
    return _Prepared(bp, sp, bs, ss, clip_b, clip_s, wide_b, wide_s, valid_in, usable, code, gains, gain_measured,
                     spread, output, rims)


def _smooth_pair(bp: np.ndarray, sp: np.ndarray, white: np.ndarray, sigma_px: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Both images smoothed by a Gaussian of ``sigma_px``, leaving out white-clipped pixels.

    A white-clipped pixel hides an unbounded excess, so a plain average over a footprint
    that holds one is only a bound, and the few pixels of blur trail beside a blown-out
    moving object (exactly the evidence) would be lost to it. Instead each channel is
    averaged over the pixels clipped in neither image (normalised convolution: the same
    pixels for B and S, so both describe the same neighbourhood) wherever they hold at
    least half the footprint's weight; elsewhere the plain average stays, and the flags
    make it a bound.

    Parameters
    ----------
    bp, sp
        ``(C, H, W)`` images.
    white
        ``(C, H, W)`` or ``(1, H, W)`` bool, white-clipped in either image.

    Returns
    -------
    tuple
        ``bs, ss`` ``(C, H, W)``; ``kept`` ``(C, H, W)``, the footprint's weight on the
        pixels clipped in neither image (1 for a channel clipped nowhere; where it is half
        or more, clipped pixels were left out rather than bounding the value), None where
        nothing is clipped; and ``spread`` ``(C, H, W)``, the noise variance of each
        smoothed value relative to a full footprint's (a weighted mean over fewer pixels is
        noisier), or None.
    """
    bs = np.stack([cv2.GaussianBlur(ch, (0, 0), sigma_px) for ch in bp])
    ss = np.stack([cv2.GaussianBlur(ch, (0, 0), sigma_px) for ch in sp])
    if not white.any():
        return bs, ss, None, None
    white = np.broadcast_to(white, bp.shape)
    spread = np.ones(bp.shape, np.float32)
    weights = np.ones(bp.shape, np.float32)
    for c in range(bp.shape[0]):
        if not white[c].any():
            continue
        kept = (~white[c]).astype(np.float32)
        weight = weights[c] = cv2.GaussianBlur(kept, (0, 0), sigma_px)
        where = (weight >= 0.5) & (weight < 1.0 - 1e-6)
        share = np.maximum(weight, 1e-6)
        # Divided in place where clipped pixels were left out, not a whole frame of quotients picked from.
        np.divide(cv2.GaussianBlur(bp[c] * kept, (0, 0), sigma_px), share, out=bs[c], where=where)
        np.divide(cv2.GaussianBlur(sp[c] * kept, (0, 0), sigma_px), share, out=ss[c], where=where)
        # Var of sum(w u x) / sum(w u) over var of sum(w x): G_{s/sqrt2}(u) / G_s(u)^2, as
        # w^2 is a Gaussian of sigma / sqrt(2) scaled by sum(w^2).
        squared = cv2.GaussianBlur(kept, (0, 0), sigma_px / math.sqrt(2))
        np.divide(squared, share * share, out=spread[c], where=where)
    return bs, ss, weights, spread


def _inputs(blur: np.ndarray, sharp: np.ndarray, valid: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Both images as float RGB in [0, 1], the validity mask, and one code value of the input."""
    if blur.shape[:2] != sharp.shape[:2]:
        raise ImageFormatError(
            f"B is {blur.shape[1]}x{blur.shape[0]} but S is {sharp.shape[1]}x{sharp.shape[0]}: align the pair first"
        )
    code = 1 / 255 if blur.dtype == np.uint8 and sharp.dtype == np.uint8 else 1 / 1023
    b, s = (_unit_range(name, image) for name, image in (("B", blur), ("S", sharp)))
    h, w = b.shape[:2]
    valid_in = np.ones((h, w), bool) if valid is None else np.asarray(valid) > 0
    if valid_in.shape != (h, w):
        raise ImageFormatError(f"validity mask is {valid_in.shape[1]}x{valid_in.shape[0]}, the images {w}x{h}")
    return b, s, valid_in, code


def _unit_range(name: str, image: np.ndarray) -> np.ndarray:
    """``image`` as float32 RGB in [0, 1]; a float image must be finite (it may be the
    caller's own array: clipped into a copy)."""
    converted = to_float(ensure_rgb(image))
    if image.dtype.kind != "f":  # integer codes are finite and map into [0, 1]
        return converted
    if not np.isfinite(converted).all():
        raise ImageFormatError(f"{name} holds {int((~np.isfinite(converted)).sum())} non-finite (NaN/inf) values")
    return np.clip(converted, 0, 1)


def _clipping(b: np.ndarray, s: np.ndarray, valid: np.ndarray, clipped: np.ndarray | None,
              code: float) -> tuple[_Clipping, _Clipping, dict[str, np.ndarray] | None]:
    """Clipping found on the stored values, joined with the clip map ``align`` handed on;
    and where the map says a camera's own output clipped before its matrix was undone
    (planar ``b_out_high``... of :func:`decode_clip_flags`), or None."""
    h, w = valid.shape
    # Planar and contiguous: numpy reduces a transposed (H, W, C) view over its channels
    # about ten times slower, and the flags are reduced and indexed many times.
    def planar(image: np.ndarray) -> _Clipping:
        high, low = clipped_levels(image, valid, code=code)
        return _Clipping(np.ascontiguousarray(high.transpose(2, 0, 1)), np.ascontiguousarray(low.transpose(2, 0, 1)))

    clip_b, clip_s = planar(b), planar(s)
    if clipped is None:
        return clip_b, clip_s, None
    if clipped.shape[:2] != (h, w):
        raise ImageFormatError(f"clip map is {clipped.shape[1]}x{clipped.shape[0]}, the images {w}x{h}")
    if clipped.ndim == 3 and clipped.shape[2] not in (1, b.shape[2]):
        raise ImageFormatError(f"clip map has {clipped.shape[2]} channels, the images {b.shape[2]}")
    # A per-pixel map (grey, as earlier versions of align wrote) holds for every channel.
    given = decode_clip_flags(clipped[None] if clipped.ndim == 2 else np.ascontiguousarray(clipped.transpose(2, 0, 1)))
    output = {key: flags for key, flags in given.items() if "_out_" in key} or None
    return (_Clipping(clip_b.high | given["b_high"], clip_b.low | given["b_low"]),
            _Clipping(clip_s.high | given["s_high"], clip_s.low | given["s_low"]), output)


def _match_brightness(bp: np.ndarray, sp: np.ndarray, usable: np.ndarray, params: MaskParams,
                      codes: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, dict[str, list[float]], bool]:
    """S mapped onto B by the smooth gain field (in linear light), the field's range, and
    whether the field was measured: False where fewer than
    :data:`~reloblur.robust.GAIN_FIELD_MIN_PIXELS` pixels are unclipped and above the
    noise in both images (``params.gain_field == "none"`` asserts equal gains: True).
    ``codes``: B and S as the 8-bit ``(H, W, 3)`` images ``bp`` and ``sp`` were read from,
    decoded by a table of their 256 codes (the same values, several times faster)."""
    if params.gain_field == "none":
        return sp, {}, True
    if codes is not None and params.transfer == "srgb":
        xb, xs = (np.ascontiguousarray(cv2.LUT(image, _DECODE_CODES).transpose(2, 0, 1)) for image in codes)
    else:
        xb, xs = _decode(bp, params.transfer), _decode(sp, params.transfer)
    fit_on = usable & (xb.min(axis=0) > GAIN_FLOOR) & (xs.min(axis=0) > GAIN_FLOOR)
    gain = fit_gain_field(xb, xs, fit_on, order=0 if params.gain_field == "global" else 2)
    return (_encode(xs * gain, params.transfer),
            {"min": [float(g.min()) for g in gain], "max": [float(g.max()) for g in gain]},
            int(np.count_nonzero(fit_on)) >= GAIN_FIELD_MIN_PIXELS)


def _unlike_surroundings(candidates: Segments, mask: np.ndarray, bs: np.ndarray, ss: np.ndarray,
                         valid: np.ndarray, *, reach: float) -> Segments:
    """``candidates`` less those whose colour in S is the ground's around them (marked
    unbounded, which no candidate test takes).

    The bands a uniform object leaves are blends of object and ground, so they differ
    from S by at most half the object's contrast with its ground: the inside of a moving
    object differs from the ground beyond its bands by more than the bands differ from S
    (2-6 times on the benchmark's pairs). The ground between two objects that moved is the
    ground beyond them. A candidate stays where, in some channel, the median of S over it
    and over the ring ``reach`` px beyond it and the mask (valid, unmasked pixels) differ
    by more than the median ``|B - S|`` of the mask pixels beside it."""
    labels, stats = candidates.labels, candidates.stats
    unbounded = candidates.unbounded.copy()
    step = int(math.ceil(reach))
    ring_disk = disk(step)
    for label in range(1, len(stats)):
        if unbounded[label]:
            continue
        rows, cols = component_window(stats, label, 2 * step, labels.shape)
        inside = labels[rows, cols] == label
        near = cv2.dilate(inside.astype(np.uint8), ring_disk) > 0
        bands = near & mask[rows, cols]
        body = cv2.dilate((inside | bands).astype(np.uint8), ring_disk) > 0
        ring = body & ~inside & ~mask[rows, cols] & valid[rows, cols]
        if not bands.any() or not ring.any():
            unbounded[label] = True
            continue
        s_crop, b_crop = ss[:, rows, cols], bs[:, rows, cols]
        contrast = np.abs(np.median(s_crop[:, inside], axis=1) - np.median(s_crop[:, ring], axis=1))
        blend = np.median(np.abs(b_crop[:, bands] - s_crop[:, bands]), axis=1)
        if not np.any(contrast > blend):
            unbounded[label] = True
    return Segments(labels, stats, unbounded)


def _regions(z: np.ndarray, bp: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: _Judge,
             usable: np.ndarray, valid: np.ndarray, params: MaskParams, blind: np.ndarray,
             opened: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, int, int]:
    """The mask from the evidence (hysteresis, an unmeasured excess, local colour and shift, specks, blown-out
    objects, closing, filling, the smoothing's spill trimmed); also the numbers of regions
    re-judged after a local colour correction and after a local shift. ``bp``, ``sp``: B and
    brightness-matched S before smoothing. ``blind``: ``(H, W)`` bool, white-clipped in
    every channel of both images. ``opened``: :func:`unmeasured_excess`, or None."""
    h, w = z.shape
    short, min_pixels = min(h, w), min_region_pixels(params, h, w)
    mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    if opened is not None and _discount_unmeasured_excess(mask, z, bs, ss, judge, opened, params):
        mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    recoloured = _discount_local_colour(mask, z, sp, bs, ss, judge, usable, params)
    if recoloured:  # z changed where a colour map explained a region: judge again
        mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    shifted = _discount_local_shift(mask, z, bs, ss, judge, usable, params)
    if shifted:
        mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    if mask.any():
        mask |= blown_out_movers(z > params.low_sigmas, blind, min_pixels)
    mask = drop_thin(mask, MIN_HALF_WIDTH)
    radius = round(params.close_radius * short)
    if radius >= 1 and mask.any():
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, disk(radius)) > 0
    if params.fill_holes and mask.any():
        mask = fill_enclosed_holes(mask, z, params.low_sigmas)
        mask = fill_enclosed(mask, gap=max(2, round(FILL_GAP * short)), reach=FILL_REACH * short)
        # No bound on an interior's size below the static majority every fit here assumes:
        # a region's enclosure and rim decide (a bound of a quarter of the short side
        # squared left the interiors of objects wider than half the frame empty).
        edges = _edges(ss, judge.noise_variance, params.low_sigmas)
        max_area = 0.5 * np.count_nonzero(valid)
        # Pixels blown out in both images are blown_out_movers' to judge: no region holds them.
        defined = valid | blind
        regions = segments(mask, edges, defined, blind)
        mask = fill_outlined(mask, regions, max_area=max_area)
        mask, _ = fill_moved_segments(mask, regions, bs, ss, judge.inverse, edges, defined,
                                      min_pixels=min_pixels, max_pixels=max_area)
        # Interiors whose outline S's edges leave open, between bands that stayed apart.
        band_half_width = MAX_LENGTH / 2 + footprint_reach(params.smooth_sigma)
        bracketed = between_bands(mask, defined, gap=max(2, round(FILL_GAP * short)), reach=FILL_REACH * short,
                                  half_width=band_half_width)
        if bracketed is not None:
            bracketed = _unlike_surroundings(bracketed, mask, bs, ss, defined, reach=band_half_width)
            mask, _ = fill_moved_segments(mask, bracketed, bs, ss, judge.inverse, edges, defined,
                                          min_pixels=min_pixels, max_pixels=max_area)
    if mask.any():
        fine = fine_evidence(bp, sp, bs, ss, judge.inverse, usable & judge.inside & (z < params.low_sigmas),
                             sigma_px=params.smooth_sigma)
        mask = trim_spill(mask, fine, usable, low=params.low_sigmas, sigma_px=params.smooth_sigma)
    mask = drop_small(mask, min_pixels) & valid
    if params.dilate_radius > 0 and mask.any():
        mask = cv2.dilate(mask.astype(np.uint8), disk(max(1, round(params.dilate_radius * short)))) > 0
        mask &= valid
    if mask.any() and not judge.inside.all():
        mask |= carry_into_unjudged(mask, judge.inside, reach=CARRY_REACH * short)
    return mask, recoloured, shifted


def min_region_pixels(params: MaskParams, height: int, width: int) -> float:
    """The smallest region (px) a mask of a ``height`` x ``width`` frame keeps:
    ``params.min_area`` of the image where given, else :data:`SPECK_FOOTPRINTS` smoothing
    footprints (about 100 px at the default smoothing, at any resolution).

    Examples
    --------
    >>> round(min_region_pixels(MaskParams(), 1436, 2152))
    101
    >>> round(min_region_pixels(MaskParams(min_area=0.0005), 1436, 2152))
    1545
    """
    if params.min_area is not None:
        return params.min_area * height * width
    reach = footprint_reach(params.smooth_sigma)
    return SPECK_FOOTPRINTS * math.pi * reach * reach


def fine_evidence(bp: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray, inverse: np.ndarray,
                  static: np.ndarray, *, sigma_px: float, samples: int = 20_000) -> np.ndarray:
    """``|B - S|`` at a finer scale than the mask's evidence, in sigmas of its own noise.

    ``B - S`` is smoothed by a Gaussian of ``sigma_px / sqrt(2)`` (half the variance of the
    evidence's smoothing: fine enough to place a step within a pixel, while still
    averaging noise), scaled by ``inverse`` (the evidence's per-pixel inverse sigma) and
    then by the ratio of the two scales' noise, measured per channel as
    the ratio of robust spreads on ``static`` pixels. The ratio is measured rather than
    taken as ``sqrt(2)``, which holds only for white noise: demosaicing and resampling
    correlate neighbouring pixels' noise.

    Parameters
    ----------
    bp, sp
        ``(C, H, W)`` B and brightness-matched S, before smoothing.
    bs, ss
        ``(C, H, W)`` the same smoothed by ``sigma_px``.
    inverse
        ``(C, H, W)`` 1 / the predicted sigma of the difference smoothed by ``sigma_px``.
    static
        ``(H, W)`` bool, pixels judged static (evidence below the growing threshold).
    sigma_px
        The evidence's smoothing, pixels.
    samples
        At most this many static pixels, evenly spaced, measure each ratio.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float32, the largest over channels; zeros if under 200 static pixels.
    """
    index = np.flatnonzero(static)
    if index.size < 200:
        return np.zeros(bp.shape[1:], np.float32)
    index = evenly_spaced(index, samples)
    fine_sigma = sigma_px / math.sqrt(2)
    evidence = np.zeros(bp.shape[1:], np.float32)
    for c in range(bp.shape[0]):
        coarse = (bs[c].ravel()[index] - ss[c].ravel()[index]) * inverse[c].ravel()[index]
        fine = cv2.GaussianBlur(bp[c] - sp[c], (0, 0), fine_sigma)  # smoothing is linear: one blur
        fine *= inverse[c]
        ratio = mad_sigma(fine.ravel()[index]) / max(mad_sigma(coarse), 1e-12)
        np.maximum(evidence, np.abs(fine) / max(ratio, 1e-12), out=evidence)
    return evidence


def _camera_noise(bp: np.ndarray, sp: np.ndarray, static: np.ndarray, code: float
                  ) -> tuple[dict[str, list[float]], float]:
    """Each camera's own noise per channel (Immerkaer), and how far the static difference
    spreads beyond it (a diagnostic: texture inflates the per-image estimate)."""
    camera_noise = {name: [noise_sigma(ch) for ch in img] for name, img in (("B", bp), ("S", sp))}
    ratios = []
    index = np.flatnonzero(static)[::7]  # an even subsample is plenty for a median
    for c in range(bp.shape[0]):
        spread = bp[c].ravel()[index] - sp[c].ravel()[index]
        if spread.size >= 500:
            expected = math.hypot(camera_noise["B"][c], camera_noise["S"][c])
            robust = mad_sigma(spread)
            ratios.append(robust / max(expected, code / math.sqrt(12)))
    return camera_noise, float(max(ratios)) if ratios else 0.0


def _any_clipped(clip: _Clipping, output: dict[str, np.ndarray] | None, image: str) -> np.ndarray:
    """``(H, W)`` bool: clipped in any channel, as stored or (before ``align`` undid its
    camera's matrix) in that camera's output (``image``: ``b`` or ``s``)."""
    if output is None:
        return clip.any()
    return clip.any() | output[f"{image}_out_high"].any(axis=0) | output[f"{image}_out_low"].any(axis=0)


def _flags(edge_kappa: list[float], recoloured: int, clipped_fraction: dict[str, float],
           withheld: float | None, reason: WithheldReason | None, shifted: int) -> list[str]:
    """What a curator should check about this pair, in words."""
    flags = []
    if withheld is not None and reason == "unmeasured gain":
        flags.append(f"fewer than {GAIN_FIELD_MIN_PIXELS} pixels are unclipped in both B and S, too few to measure "
                     "the cameras' relative gain, on which every comparison of the two rests (the mask would have "
                     f"covered {100 * withheld:.0f} % of the frame); its mask is withheld: check the pair, or mask it "
                     "by hand")
    elif withheld is not None:
        flags.append(f"the difference between B and S covers {100 * withheld:.0f} % of the frame, more than the "
                     "static majority every fit here assumes: the pair is not what the model describes (a camera "
                     "that transformed colour after its sensor clipped, a misregistration over most of the frame); "
                     "its mask is withheld: check the pair, or mask it by hand")
    if max(edge_kappa, default=0.0) > EDGE_FLAG_PX:
        flags.append(f"static edges disagree by about {max(edge_kappa):.1f} px (misalignment, a lens distortion "
                     "the homography cannot hold, or different sharpness): check the pair's alignment; evidence "
                     "along edges is discounted accordingly")
    if recoloured:
        flags.append(f"{recoloured} region(s) differ between B and S mostly in colour (the pair's colour fit does "
                     "not hold there); judged after a local colour correction")
    if shifted:
        flags.append(f"{shifted} region(s) differ between B and S by a sub-pixel displacement (a lens distortion "
                     "the homography cannot hold, or a local misregistration); judged with S displaced there")
    if max(clipped_fraction.values()) > 0.5:
        flags.append(f"over half the frame is clipped (B {100 * clipped_fraction['B']:.0f} %, "
                     f"S {100 * clipped_fraction['S']:.0f} %): little evidence is left")
    return flags
