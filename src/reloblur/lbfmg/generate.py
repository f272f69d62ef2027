"""Local blur foreground masks by background subtraction (LBFMG), judged against a noise model.

After alignment the static background agrees between B and S up to noise; what remains
different is the moving foreground and its blur trail. Every step has a physical reason:

1. **Clipping.** A pixel at the top (or bottom) of an image's range is a bound, not a
   value: its true level is at least (at most) what was recorded, and the cameras clip at
   different radiances. Clipped levels are found as a pile-up at a channel's extreme; such
   pixels only count as evidence in the direction clipping cannot explain (S clipped white
   and B clearly darker than S's clip level is motion; both clipped is nothing). Where a
   minority of a footprint is black-clipped (noise reaching zero), its mean is biased up
   by an amount the clipped share fixes, and the level is bounded below by the mean without
   it; where S was resampled after it clipped, which hides the zeros but not the bias, B is
   compared as S's camera would have recorded it, under S's noise at black fitted on the
   pair (:mod:`reloblur.lbfmg.clipping`).
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
   and edge residual together), the largest over channels (:mod:`reloblur.lbfmg.evidence`).
   A candidate region that a local model of the pair explains (a local colour map, a
   sub-pixel shift, an excess both cameras clipped) is judged again with S as that model
   makes it, a colour map's S against the noise the map carries
   (:mod:`reloblur.lbfmg.explained`).
5. **Regions** (:mod:`reloblur.lbfmg.morphology`). Hysteresis (``low_sigmas`` grows
   regions seeded above ``high_sigmas``); specks under two smoothing footprints (or
   ``min_area`` of the image, where given) are removed *before* a small closing, so no
   closing can merge scattered false positives into a blob; a hole
   is filled only when the evidence around it, not the closing, encloses it, and a pixel
   only when one cluster of evidence brackets it on opposite sides. A uniform object
   wider than that is completed from S, which shows it sharp: a region that S's own edges
   and the mask enclose, with the mask (or evidence above ``low_sigmas``: a band too short or
   thin to keep on its own) a third of its rim or more, is the object's
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
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np

from reloblur.errors import ImageFormatError
from reloblur.formats.masks import Component, blur_ratio, mask_components
from reloblur.formats.timing import SPhase, check_s_phase
from reloblur.imaging.imageio import ensure_rgb, to_float
from reloblur.lbfmg.clipping import (
    Clipping,
    any_clipped,
    as_clipped,
    black_noise,
    crosstalk_bound,
    crosstalk_ratios,
    measured_beside_white,
    output_rays,
    pair_clipping,
    smooth_pair,
    unmeasured,
    unmeasured_deficit,
    unmeasured_excess,
    unreliable,
)
from reloblur.lbfmg.encoding import DECODE_CODES, decode, encode
from reloblur.lbfmg.energy import energy_evidence
from reloblur.lbfmg.evidence import (
    Judge,
    edge_derivatives,
    fit_judge,
    fit_noise,
    fit_region,
    followed_motion,
    guard_rests_on_structure,
)
from reloblur.lbfmg.explained import (
    ExplainedS,
    discount_local_colour,
    discount_local_shift,
    discount_unmeasured_excess,
)
from reloblur.lbfmg.kernels import disk, footprint_reach, gradient_magnitude
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
    grow_into,
    hysteresis,
    segments,
    trim_spill,
    within,
)
from reloblur.lbfmg.motion import MAX_LENGTH, fill_moved_segments
from reloblur.lbfmg.noise import NoiseLevel, table_index
from reloblur.lbfmg.params import Crosstalk, MaskParams
from reloblur.lbfmg.phase import StepEvidence, step_evidence
from reloblur.lbfmg.region import HULL_GAP, fill_hulls
from reloblur.lbfmg.residual import EdgeResidual
from reloblur.robust import GAIN_FIELD_MIN_PIXELS, evenly_spaced, fit_gain_field, fit_row_gain, mad_sigma

# Edge residual (fit_edge_residual, in pixels of equivalent misregistration) beyond which
# a pair is flagged: align's median corner error is ~0.05 px, so half a pixel means the
# pair's geometry is not what registration made it.
EDGE_FLAG_PX = 0.5
# Noise fits use smoothed values whose noise is at most this factor (in variance) above a
# full footprint's: near clipped pixels fewer pixels are averaged.
SPREAD_FIT_LIMIT = 1.2
# Linear level below which a pixel's B/S ratio is mostly noise: left out of the gain fit.
GAIN_FLOOR = 2e-3
# Every fit here (noise, gain field, edge residual, colour) takes the static majority of the
# frame as its data, and a median stops describing it once half is something else: a mask
# over more than this share of the frame where S is defined contradicts the fits it was
# made with, so it is withheld and the pair flagged (issue 13: say so instead of masking
# half the frame).
STATIC_MAJORITY = 0.5
WithheldReason = Literal["majority", "unmeasured gain"]
# The smallest region kept by default, in smoothing footprints (disks of footprint_reach's
# radius). What noise makes comes in blobs about one footprint across, in pixels, however
# large the frame, and a moving object's bands are as wide as its motion, also in pixels.
# Two footprints (100.5 px at the default smoothing) is about what the former default,
# 0.05 % of the image, came to at 538x359 (96.6 px), where it was validated; as a share of
# the image it grew with the frame, to 1545 px at 2152x1436, and dropped the bands of
# objects that moved a few pixels there.
SPECK_FOOTPRINTS = 2.0
# Where S was exposed at the start (or end) of B's exposure, one end of every trail is S's
# sharp outline, and the difference steps there from the object's full contrast to nothing.
# The spill trim places such a step at a finer scale than the evidence's; this second pass
# smooths at 0.5 px (fine_evidence smooths at sigma_px / sqrt(2)), about the finest at which
# a pixel's difference is still averaged with its neighbours'.
STEP_TRIM_SIGMA_PX = 0.5 * math.sqrt(2)


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
    # S's noise at black per channel (linear), as its black clipping biased its dark levels
    # (clipping.black_noise); 0 where none was taken. B was compared as S would record it.
    black_noise: list[float] = field(default_factory=list)
    # share of the frame where S is defined that clipping left a bound rather than a
    # measurement, per image (clipping.unmeasured); ``clipped`` counts every clipped pixel
    unmeasured: dict[str, float] = field(default_factory=dict)
    # whether S was taken as exposed at the start or end of B's exposure (told, or read from
    # the pair), so that the spill trim runs again to place trails' ends at S's outline
    step_ends: bool = False
    # how one-sided B - S was across S's edges on the first mask, where S's instant was not
    # told (phase.step_evidence); None where it was
    step_evidence: StepEvidence | None = None
    # px^2, per channel: the fine-detail residual of the largest detail of any channel at
    # the pixel (demosaicing aliases the scene's detail into red and blue: evidence.fit_judge)
    detail_gamma_across: list[float] = field(default_factory=list)

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
            "fine_detail_residual_across": self.detail_gamma_across,
            "shift_tolerance_px": self.shift_tolerance,
            "noise_source": self.noise_source,
            "crosstalk_ratio": self.crosstalk_ratio,
            "unjudged_fraction": self.unjudged_fraction,
            "withheld_fraction": self.withheld_fraction,
            "withheld_reason": self.withheld_reason,
            "refitted": self.refitted,
            "black_noise_sigma": self.black_noise,
            "unmeasured_fraction": self.unmeasured,
            "step_ends": self.step_ends,
            "s_phase_evidence": None if self.step_evidence is None else self.step_evidence.to_dict(),
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


def _edges(sharp: np.ndarray, noise_variance: np.ndarray, edge_sigmas: float) -> np.ndarray:
    """``(H, W)`` bool, S's edges: a gradient of the smoothed S (``(C, H, W)``) above
    ``edge_sigmas`` of the smoothed difference's predicted noise sigma per pixel
    (``noise_variance``, ``(C, H, W)``; S's own noise is less than the difference's, so noise
    makes fewer edges than that, never more)."""
    strength = None
    for channel, variance in zip(sharp, noise_variance):
        scale = np.sqrt(variance)
        gradient = gradient_magnitude(channel)
        gradient *= np.divide(1.0, scale, out=scale)
        strength = gradient if strength is None else np.maximum(strength, gradient, out=strength)
    assert strength is not None
    return np.asarray(strength > edge_sigmas)


def generate_mask(blur: np.ndarray, sharp: np.ndarray, *, params: MaskParams = MaskParams(),
                  valid: np.ndarray | None = None, clipped: np.ndarray | None = None,
                  noise: list[NoiseLevel] | None = None, colour_matrix: np.ndarray | None = None,
                  crosstalk: Crosstalk = "prior",
                  output_mixing: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
                  s_phase: SPhase | None = None) -> MaskResult:
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
        both cameras clipped a channel, S's other channels differ from B's by an unmeasured
        share of its excess, of a sign the matrix's small terms do not settle: a region
        that this explains is not motion (:func:`unmeasured_excess`). Default: unknown.
    crosstalk
        How far the correction after the clip moved each channel beside a clipped one.
        ``"prior"``: up to :data:`~reloblur.lbfmg.clipping.CLIP_CROSSTALK` of the level, for cameras that may have
        mixed colour themselves after their sensors clipped. ``"measured"``: what
        ``colour_matrix`` made of the excess where B did not clip that channel
        (:func:`crosstalk_bound`); only for cameras that do not transform colour after
        their sensors clip (raw capture).
    output_mixing
        For B and S, where ``align`` undid a camera's own colour matrix: the directions of
        :func:`~reloblur.lbfmg.clipping.clipped_output_mixing`. Where ``clipped`` says that camera's output clipped, the
        excess it lost may explain the part of the difference along them, and only the
        rest is evidence. None for an image whose matrix was not undone.
    s_phase
        The instant of B's exposure S was exposed at (``"start"``, ``"middle"``, ``"end"``;
        a session records it as ``rig["s_phase"]``, and ``align``'s sidecar as ``s_phase``),
        or None where it is not known. At the start or the end, one end of every trail
        is S's sharp outline, where the difference steps from the object's full contrast
        to nothing, and the spill trim runs again at a finer scale
        (:data:`STEP_TRIM_SIGMA_PX`) to place that step (30 aligned pairs of the
        benchmark's default rig with S at the start: mean IoU 0.911 -> 0.929). In the
        middle no trail ends in a step: its evidence fades over the displacement at both
        ends, and the finer scale's noise takes back the ends of short trails (the same
        scenes with S in the middle: 0.939 -> 0.934), so the second pass does not run.
        Not known: read from the pair (:func:`~reloblur.lbfmg.phase.step_evidence` on the
        first mask), and the second pass runs where the trails end in steps with
        confidence (``MaskResult.step_evidence``).

    Returns
    -------
    MaskResult
        ``mask`` is ``(H, W)`` uint8 with 0 (static) and 255 (blurred).

    Raises
    ------
    ImageFormatError
        The images differ in size, or hold non-finite values; ``colour_matrix`` does not
        fit them, or ``crosstalk`` is ``"measured"`` without one.
    ReloblurError
        ``s_phase`` is not one of the three instants.

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
    step_ends = s_phase is not None and check_s_phase(s_phase) != "middle"
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
        matrix, reach = np.asarray(colour_matrix, np.float64), footprint_reach(params.smooth_sigma)
        opened = _either(unmeasured_excess(clip_b.high, clip_s.high, matrix, reach=reach),
                         unmeasured_deficit(clip_b.low, clip_s.low, bp, sp, matrix, reach=reach,
                                            transfer=params.transfer))
        if crosstalk == "measured":
            ratios_s = ratios
    if ratios_s is not None:
        ratios_b = np.zeros_like(ratios_s)  # align leaves B's colours as its camera made them
        bounds = (crosstalk_bound(bp, sp, bs, clip_b.high, clip_s.high, sigma_px=params.smooth_sigma,
                                  ratios=ratios_b, transfer=params.transfer, rim=pair.rims[0]),
                  crosstalk_bound(sp, bp, ss, clip_s.high, clip_b.high, sigma_px=params.smooth_sigma,
                                  ratios=ratios_s, transfer=params.transfer, rim=pair.rims[1]))
    rays = None if pair.output is None else output_rays(pair.output, output_mixing)
    inside, fit_on = fit_region(pair.wide_b, pair.wide_s, usable, valid_in, params.smooth_sigma)
    # A second judgement fits again, on the same images.
    difference, levels, derivatives = bs - ss, (table_index(bs), table_index(ss)), edge_derivatives(bs)
    # Only a noise fit reads it, and a calibration's model is not fitted here.
    fine = None
    if noise is None:
        fine = bp - sp
        fine -= difference
    camera_noise = {role: [noise_sigma(channel) for channel in image] for role, image in (("B", bp), ("S", sp))}
    noise_share_s = _noise_share(camera_noise["B"], camera_noise["S"])

    def judged(fitted: list[NoiseLevel] | None, fit_pixels: np.ndarray, supported: bool = False,
               rendering: tuple[list[EdgeResidual], np.ndarray] | None = None
               ) -> tuple[Judge, list[NoiseLevel], list[float], list[float], np.ndarray]:
        return fit_judge(bs, difference, bp, levels, derivatives, pair.wide_b, pair.wide_s, inside, fit_pixels,
                         sigma_px=params.smooth_sigma, tolerance=params.shift_tolerance, transfer=params.transfer,
                         noise=fitted, fine=fine, spread=pair.spread, crosstalk=bounds, rays=rays,
                         supported=supported, rendering=rendering, noise_share_s=noise_share_s)

    judge, models, edge_kappa, sharpness_beta, detail_gamma = judged(noise, fit_on)
    z = judge.z(bs, ss)
    blind = np.asarray(pair.wide_b.high.all(axis=0) & pair.wide_s.high.all(axis=0), bool)
    clipped_any = {role: any_clipped(clip, pair.output, role.lower()) for role, clip in (("B", clip_b), ("S", clip_s))}
    unclipped = ~(clipped_any["B"] | clipped_any["S"])
    first = _judged_regions(z, bp, sp, bs, ss, judge, usable, valid_in, params, blind, opened, blended=pair.blended,
                            unclipped=unclipped)
    recoloured, shifted = first.recoloured, first.shifted
    mask, placed = _finished(first, bp, sp, bs, ss, judge, usable, valid_in, params, step_ends=step_ends)
    evidence = None
    if s_phase is None:
        evidence = step_evidence(bp, sp, mask, usable=usable, clipped=judge.clip_b.any() | judge.clip_s.any())
        if evidence.at_an_end:
            step_ends = True
            mask, placed = _finished(first, bp, sp, bs, ss, judge, usable, valid_in, params, step_ends=True)

    def without(candidate: np.ndarray) -> tuple[Judge, list[NoiseLevel], list[float], list[float], np.ndarray] | None:
        """The fits done again without ``candidate`` (grown by the smoothing's reach, where
        smoothed values mix its pixels in), if the first ones followed its pixels."""
        moving = cv2.dilate(candidate.astype(np.uint8), disk(footprint_reach(params.smooth_sigma))) > 0
        pixels = fit_on & ~moving
        again = fit_noise(difference, bs, pixels, params.transfer, fine)
        return judged(again, pixels) if followed_motion(models, again, judge, levels, pair.spread) else None

    # The fits took the frame for the static majority. Where the moving pixels fill a level
    # bin of their own, the noise model follows them there, and everything at those levels
    # is judged too leniently. Fit again without the first mask and, where that changes the
    # noise model grossly, judge again.
    refit = None
    if noise is None and mask.any():
        # What placing the steps took back lies within the smoothing's reach of the moving
        # object, whose smoothed values mix it in there: it stays out of the fits, as before.
        refit = without(mask | placed)
    elif noise is None and guard_rests_on_structure(models):
        # Where the guard rests on such a bin, the first mask may hold none of the object
        # (thin uniform bars on a uniform wall: every pixel of theirs is a blend). Judged
        # by what the bins' noise supports, they are candidates; whether the fits followed
        # them is decided as for a first mask. The rendering residuals stay the first
        # judge's: fitted again against the lower noise on such a wall, the edge term
        # took up the difference (0.5-2.8 px in 8 of 16 tiles, against one tile of 0.5)
        # and forgave the bars' edges, the frame's only ones, as misregistration.
        provisional = judged(models, fit_on, supported=True, rendering=judge.rendering)[0]
        candidate = _regions(provisional.z(bs, ss), bp, sp, bs, ss, provisional, usable, valid_in, params, blind,
                             opened, blended=pair.blended, unclipped=unclipped)[0]
        refit = without(candidate) if candidate.any() else None
    refitted = refit is not None
    if refit is not None:
        judge, models, edge_kappa, sharpness_beta, detail_gamma = refit
        z = judge.z(bs, ss)
        mask, recoloured, shifted, _ = _regions(z, bp, sp, bs, ss, judge, usable, valid_in, params, blind, opened,
                                                blended=pair.blended, step_ends=step_ends, unclipped=unclipped)
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
    reach = footprint_reach(params.smooth_sigma)
    static = usable & ~(cv2.dilate(out, disk(max(2, reach))) > 0)
    residual_ratio = _residual_ratio(bp, sp, static, camera_noise, pair.code)
    clipped_fraction = {role: float(pixels[valid_in].mean()) for role, pixels in clipped_any.items()}
    unmeasured_fraction = {role: float(unmeasured(bounded, pair.output, role.lower(), reach=reach)[valid_in].mean())
                           for role, bounded in zip(("B", "S"), pair.bounded)}
    flags = _flags(edge_kappa, recoloured, unmeasured_fraction, withheld, reason, shifted)
    return MaskResult(out, blur_ratio(out), confidence, z, mask_components(out), models, camera_noise,
                      clipped_fraction, pair.gains, residual_ratio, flags, edge_kappa, sharpness_beta, judge.tolerance,
                      "pair" if noise is None else "calibration", detail_gamma[:, 0].tolist(),
                      None if ratios_s is None else float(ratios_s.max()), unjudged, withheld, refitted, reason,
                      pair.black_noise, unmeasured_fraction, step_ends, evidence,
                      detail_gamma_across=detail_gamma[:, 1].tolist())


def pair_noise_model(blur: np.ndarray, sharp: np.ndarray, *, params: MaskParams = MaskParams(),
                     valid: np.ndarray | None = None) -> list[NoiseLevel]:
    """The noise-level function per channel of an aligned *static* pair, fitted exactly as
    :func:`generate_mask` fits it: what ``align calibrate`` stores from its static capture
    and ``mask generate --calibration`` uses instead of each pair's own fit."""
    pair = _prepare(blur, sharp, valid, None, params)
    _, fit_on = fit_region(pair.wide_b, pair.wide_s, pair.usable, pair.valid, params.smooth_sigma)
    return fit_noise(pair.bs - pair.ss, pair.bs, fit_on, params.transfer)


@dataclass
class _Prepared:
    """A pair made ready to judge: planar ``(C, H, W)`` images (S brightness-matched), both
    smoothed, the clipping of each, the validity mask and the pixels usable for fits."""

    bp: np.ndarray
    sp: np.ndarray
    bs: np.ndarray
    ss: np.ndarray
    clip_b: Clipping
    clip_s: Clipping
    wide_b: Clipping  # the clipping as it bears on the smoothed values
    wide_s: Clipping
    valid: np.ndarray
    usable: np.ndarray
    # (H, W) per image: where clipping left a bound rather than a measurement (unreliable)
    bounded: tuple[np.ndarray, np.ndarray]
    code: float
    gains: dict[str, list[float]]
    gain_measured: bool  # False: too few pixels to fit the gain field on (_match_brightness)
    spread: np.ndarray | None  # (C, H, W) noise variance of bs - ss relative to a full footprint's
    output: dict[str, np.ndarray] | None = None  # where a camera's output clipped (pair_clipping)
    # (C, H, W) per image: measured beside its own white clip (measured_beside_white), or None
    rims: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    black_noise: list[float] = field(default_factory=list)  # S's noise at black (black_noise), per channel
    # (C, H, W) smoothed B as recorded where ``bs`` is B as S's black clipping would record
    # it (as_clipped), or None: the moved-segment step's blends of object and ground are
    # sums of light, which a clipped mean of them is not
    blended: np.ndarray | None = None


def _prepare(blur: np.ndarray, sharp: np.ndarray, valid: np.ndarray | None, clipped: np.ndarray | None,
             params: MaskParams) -> _Prepared:
    """What :func:`generate_mask` and :func:`pair_noise_model` both start from."""
    bp, sp, valid_in, code, codes = _inputs(blur, sharp, valid)
    clip_b, clip_s, output = pair_clipping(bp, sp, valid_in, clipped, code)
    reach = footprint_reach(params.smooth_sigma)
    wide_b, wide_s = clip_b.widened(reach, params.smooth_sigma), clip_s.widened(reach, params.smooth_sigma)
    bounded = (unreliable(clip_b, wide_b), unreliable(clip_s, wide_s))
    usable = valid_in & ~bounded[0] & ~bounded[1]
    sp, gains, gain_measured = _match_brightness(bp, sp, usable, params, codes)
    # A second, coarser scale was tried: there the static residual is colour and gain
    # misfit, spatially correlated, and it raised false area tenfold.
    white = clip_b.high | clip_s.high
    bs, ss, kept, spread = smooth_pair(bp, sp, white, params.smooth_sigma)
    black = black_noise(bs, ss, valid_in & ~white.any(axis=0), clip_s.low, transfer=params.transfer)
    blended = None
    if black.any():
        # B as S's black clipping would have recorded it; the unsmoothed B moves with it, so
        # that comparisons at a finer scale do not keep the bias the smoothed ones lost.
        recorded = as_clipped(bs, black, params.transfer)
        bp = bp + (recorded - bs)
        bs, blended = recorded, bs
    rims: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    if kept is not None:
        (wide_b, rim_b), (wide_s, rim_s) = (measured_beside_white(wide, own.high, white, kept, params.smooth_sigma)
                                            for wide, own in ((wide_b, clip_b), (wide_s, clip_s)))
        rims = (rim_b, rim_s)
    if spread is not None:  # the noise fit wants full footprints
        usable = usable & (spread.max(axis=0) < SPREAD_FIT_LIMIT)
    return _Prepared(bp, sp, bs, ss, clip_b, clip_s, wide_b, wide_s, valid_in, usable, bounded, code, gains,
                     gain_measured, spread, output, rims, black.tolist(), blended)


def _either(first: np.ndarray | None, second: np.ndarray | None) -> np.ndarray | None:
    """Bounds open where either of two maps opens them (None: nowhere)."""
    if first is None or second is None:
        return first if second is None else second
    return first | second


def _inputs(blur: np.ndarray, sharp: np.ndarray, valid: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, tuple[np.ndarray, np.ndarray] | None]:
    """Both images as planar ``(3, H, W)`` float32 in [0, 1], the validity mask, one code
    value of the input, and where both are 8-bit, their planar codes (None otherwise)."""
    if blur.shape[:2] != sharp.shape[:2]:
        raise ImageFormatError(
            f"B is {blur.shape[1]}x{blur.shape[0]} but S is {sharp.shape[1]}x{sharp.shape[0]}: align the pair first"
        )
    eight_bit = blur.dtype == np.uint8 and sharp.dtype == np.uint8
    code = 1 / 255 if eight_bit else 1 / 1023
    # Planar once, in the input's own type (a byte a value for 8-bit data): every step
    # after works on contiguous channel planes.
    planar = [np.ascontiguousarray(ensure_rgb(image).transpose(2, 0, 1)) for image in (blur, sharp)]
    b, s = (_unit_range(name, image) for name, image in zip("BS", planar))
    h, w = b.shape[1:]
    valid_in = np.ones((h, w), bool) if valid is None else np.asarray(valid) > 0
    if valid_in.shape != (h, w):
        raise ImageFormatError(f"validity mask is {valid_in.shape[1]}x{valid_in.shape[0]}, the images {w}x{h}")
    return b, s, valid_in, code, (planar[0], planar[1]) if eight_bit else None


def _unit_range(name: str, image: np.ndarray) -> np.ndarray:
    """``image`` as float32 in [0, 1]; a float image must be finite (it may be the
    caller's own array: clipped into a copy)."""
    converted = to_float(image)
    if image.dtype.kind != "f":  # integer codes are finite and map into [0, 1]
        return converted
    if not np.isfinite(converted).all():
        raise ImageFormatError(f"{name} holds {int((~np.isfinite(converted)).sum())} non-finite (NaN/inf) values")
    return np.clip(converted, 0, 1)


def _match_brightness(bp: np.ndarray, sp: np.ndarray, usable: np.ndarray, params: MaskParams,
                      codes: tuple[np.ndarray, np.ndarray] | None = None
                      ) -> tuple[np.ndarray, dict[str, list[float]], bool]:
    """S mapped onto B by the smooth gain field (in linear light) and, where a light
    flickering across S's rolling readout banded its rows, a gain per row
    (:func:`~reloblur.robust.fit_row_gain`); the field's range (and the row gain's,
    ``rows``); and whether the field was measured: False where fewer than
    :data:`~reloblur.robust.GAIN_FIELD_MIN_PIXELS` pixels are unclipped and above the
    noise in both images (``params.gain_field == "none"`` asserts equal gains: True).
    ``codes``: B and S as the 8-bit ``(3, H, W)`` planes ``bp`` and ``sp`` were read from,
    decoded by a table of their 256 codes (the same values, several times faster)."""
    if params.gain_field == "none":
        return sp, {}, True
    if codes is not None and params.transfer == "srgb":
        xb, xs = (cv2.LUT(planes.reshape(-1, planes.shape[2]), DECODE_CODES).reshape(planes.shape) for planes in codes)
    else:
        xb, xs = decode(bp, params.transfer), decode(sp, params.transfer)
    fit_on = usable & (xb.min(axis=0) > GAIN_FLOOR) & (xs.min(axis=0) > GAIN_FLOOR)
    gain = fit_gain_field(xb, xs, fit_on, order=0 if params.gain_field == "global" else 2)
    field_range = {"min": [float(g.min()) for g in gain], "max": [float(g.max()) for g in gain]}
    mapped = xs * gain
    # A light flickering across a rolling shutter's readout: bands no quadratic holds.
    rows = fit_row_gain(xb, mapped, fit_on) if params.gain_field == "smooth" else None
    if rows is not None:
        mapped *= rows[None, :, None]
        field_range["rows"] = [float(rows.min()), float(rows.max())]
    return encode(mapped, params.transfer), field_range, int(np.count_nonzero(fit_on)) >= GAIN_FIELD_MIN_PIXELS


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


def _regions(z: np.ndarray, bp: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: Judge,
             usable: np.ndarray, valid: np.ndarray, params: MaskParams, blind: np.ndarray,
             opened: np.ndarray | None = None, *, blended: np.ndarray | None = None,
             step_ends: bool = False, unclipped: np.ndarray | None = None) -> tuple[np.ndarray, int, int, np.ndarray]:
    """The mask from the evidence (:func:`_judged_regions`, then :func:`_finished`); also the
    numbers of regions re-judged after a local colour correction and after a local shift,
    and what the step trim took back (``(H, W)`` bool; none without ``step_ends``)."""
    judged = _judged_regions(z, bp, sp, bs, ss, judge, usable, valid, params, blind, opened, blended=blended,
                             unclipped=unclipped)
    mask, placed = _finished(judged, bp, sp, bs, ss, judge, usable, valid, params, step_ends=step_ends)
    return mask, judged.recoloured, judged.shifted, placed


@dataclass
class _Judged:
    """The regions judged from the evidence, up to the first spill trim."""

    mask: np.ndarray  # (H, W) bool
    recoloured: int  # regions re-judged after a local colour correction
    shifted: int  # regions re-judged after a local shift
    # (H, W) bool, pixels judged static (evidence under the growing threshold, where it could
    # be judged), which measure the fine evidence's noise; None where the mask is empty
    static: np.ndarray | None


def _judged_regions(z: np.ndarray, bp: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: Judge,
                    usable: np.ndarray, valid: np.ndarray, params: MaskParams, blind: np.ndarray,
                    opened: np.ndarray | None = None, *, blended: np.ndarray | None = None,
                    unclipped: np.ndarray | None = None) -> _Judged:
    """The regions from the evidence (hysteresis, an unmeasured excess, local colour and
    shift, specks, blown-out objects, closing, filling), the smoothing's spill trimmed.
    ``bp``, ``sp``: B and brightness-matched S before smoothing. ``blind``: ``(H, W)`` bool,
    white-clipped in every channel of both images. ``opened``: :func:`unmeasured_excess`
    and :func:`unmeasured_deficit` together, or None. ``blended``: smoothed B as recorded,
    for the moved-segment step, where ``bs`` is B as S's black clipping would record it
    (:func:`~reloblur.lbfmg.clipping.as_clipped`). ``unclipped``: ``(H, W)`` bool, where
    neither image clipped any channel, nor a camera's output: where the energy of ``B - S``
    (:func:`~reloblur.lbfmg.energy.energy_evidence`) may grow the regions; None: nowhere."""
    h, w = z.shape
    short, min_pixels = min(h, w), min_region_pixels(params, h, w)
    hull_gap = max(2, round(HULL_GAP * short))
    mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    if opened is not None and discount_unmeasured_excess(mask, z, bs, ss, judge, opened, params):
        mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    explained_s = ExplainedS.unexplained(ss)
    recoloured = discount_local_colour(mask, z, sp, bs, ss, judge, usable, params, explained_s=explained_s)
    if recoloured:  # z changed where a colour map explained a region: judge again
        mask = drop_small(hysteresis(z, params.high_sigmas, params.low_sigmas), min_pixels)
    shifted = discount_local_shift(mask, z, bs, ss, judge, usable, params)
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
        unbracketed = mask
        mask = fill_enclosed(mask, gap=max(2, round(FILL_GAP * short)), reach=FILL_REACH * short)
        # A bracket is geometry alone: it fills a uniform inside, and equally the ground
        # in a concavity (between a walker's legs, beside a swinging arm), which B and S
        # show alike. Where S measured such a pixel, its colours can tell which it is, and
        # the hull fill's cut below takes back what belongs with the ground; a clipped
        # pixel says nothing, and the bracket stands.
        bracketed = mask & ~unbracketed
        if unclipped is not None:
            bracketed &= unclipped
        # No bound on an interior's size below the static majority every fit here assumes:
        # a region's enclosure and rim decide (a bound of a quarter of the short side
        # squared left the interiors of objects wider than half the frame empty).
        edges = _edges(ss, judge.noise_variance, params.low_sigmas)
        max_area = 0.5 * np.count_nonzero(valid)
        # Pixels blown out in both images are blown_out_movers' to judge: no region holds them.
        defined = valid | blind
        regions = segments(mask, edges, defined, blind)
        mask = fill_outlined(mask, regions, max_area=max_area, disagreeing=z >= params.low_sigmas)
        moved_b = bs if blended is None else blended
        mask, _ = fill_moved_segments(mask, regions, moved_b, explained_s.sharp, judge.inverse, edges, defined,
                                      min_pixels=min_pixels, max_pixels=max_area)
        # Interiors whose outline S's edges leave open, between bands that stayed apart.
        band_half_width = MAX_LENGTH / 2 + footprint_reach(params.smooth_sigma)
        between = between_bands(mask, defined, gap=max(2, round(FILL_GAP * short)), reach=FILL_REACH * short,
                                half_width=band_half_width)
        if between is not None:
            between = _unlike_surroundings(between, mask, moved_b, ss, defined, reach=band_half_width)
            mask, _ = fill_moved_segments(mask, between, moved_b, ss, judge.inverse, edges, defined,
                                          min_pixels=min_pixels, max_pixels=max_area)
        # Insides that neither S's outline nor the bands close: what S shows inside the hull
        # of each object's evidence, unlike the ground around it.
        mask = fill_hulls(mask, sp, valid, gap=hull_gap, min_pixels=min_pixels, doubtful=bracketed,
                          judged=judge.inside)
    if mask.any():
        static = usable & judge.inside & (z < params.low_sigmas)
        if unclipped is not None:
            # A moved texture's detail averages away in the evidence, not in its energy:
            # grown into, after the fills (grown into before them, the fills closed over
            # ground beside the objects), never seeded from.
            # Where a colour map explained a region, B - S there holds the map's difference
            # over all of it: its energy is taken about its local mean, a test of its spread
            # alone (taken whole, it grew the few pixels the map left over the region).
            energy = energy_evidence(bp, sp, judge.inverse, static, sigma_px=params.smooth_sigma,
                                     unmeasured=~unclipped, centred=explained_s.where)
            if energy is not None:
                measured = unclipped & usable & judge.inside
                grown = grow_into(mask, measured & (energy >= params.low_sigmas))
                # Farther than the hull fill's gap from what the mask held, only the energy
                # about its local mean carries the growth: a moved texture's detail is
                # there whole, while an offset the colour fit leaves over a wide region (a
                # colour it was not fitted on), under the evidence's thresholds, is not
                # (taken whole, 8,100 px of a retina's macula beside a small object were
                # grown over: IoU 0.21). Nearer, the offset is part of what finds a faint
                # trail's tail.
                near = within(mask, hull_gap) if (grown & ~mask).any() else mask
                if (grown & ~near).any():
                    spread = energy_evidence(bp, sp, judge.inverse, static, sigma_px=params.smooth_sigma,
                                             unmeasured=~unclipped, centred=np.ones_like(near))
                    if spread is not None:
                        carried = np.where(near, energy, spread) >= params.low_sigmas
                        grown = grow_into(mask, measured & carried)
                mask = grown
        fine = fine_evidence(bp, sp, bs, ss, judge.inverse, static, sigma_px=params.smooth_sigma)
        mask = trim_spill(mask, fine, usable, low=params.low_sigmas, sigma_px=params.smooth_sigma)
        return _Judged(mask, recoloured, shifted, static)
    return _Judged(mask, recoloured, shifted, None)


def _finished(judged: _Judged, bp: np.ndarray, sp: np.ndarray, bs: np.ndarray, ss: np.ndarray, judge: Judge,
              usable: np.ndarray, valid: np.ndarray, params: MaskParams, *, step_ends: bool
              ) -> tuple[np.ndarray, np.ndarray]:
    """The mask of :func:`_judged_regions`' regions: with ``step_ends`` (S was exposed at the
    start or end of B's exposure, so that trails end in steps at S's outline) the spill
    trim runs again at :data:`STEP_TRIM_SIGMA_PX`; then specks are dropped, the mask grown
    by ``params.dilate_radius`` and carried into where nothing could be judged. Returns the
    mask and what the step trim took back (``(H, W)`` bool)."""
    h, w = judged.mask.shape
    short, min_pixels = min(h, w), min_region_pixels(params, h, w)
    mask, static, placed = judged.mask, judged.static, np.zeros((h, w), bool)
    if step_ends and static is not None and mask.any():
        finer = fine_evidence(bp, sp, bs, ss, judge.inverse, static, sigma_px=STEP_TRIM_SIGMA_PX)
        trimmed = trim_spill(mask, finer, usable, low=params.low_sigmas, sigma_px=STEP_TRIM_SIGMA_PX)
        placed, mask = mask & ~trimmed, trimmed
    mask = drop_small(mask, min_pixels) & valid
    if params.dilate_radius > 0 and mask.any():
        mask = cv2.dilate(mask.astype(np.uint8), disk(max(1, round(params.dilate_radius * short)))) > 0
        mask &= valid
    if mask.any() and not judge.inside.all():
        mask |= carry_into_unjudged(mask, judge.inside, reach=CARRY_REACH * short)
    return mask, placed


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


def _noise_share(b_sigma: list[float], s_sigma: list[float]) -> np.ndarray | None:
    """``(C,)`` S's share of the two cameras' noise variance per channel, from each image's
    own noise (:func:`noise_sigma`); None where neither shows any. Texture inflates both
    estimates alike, which draws the share towards a half, never past it."""
    b, s = np.square(b_sigma), np.square(s_sigma)
    total = b + s
    return None if not np.all(total > 0) else s / total


def _residual_ratio(bp: np.ndarray, sp: np.ndarray, static: np.ndarray, camera_noise: dict[str, list[float]],
                    code: float) -> float:
    """How far the static difference spreads beyond the cameras' own noise per channel
    (``camera_noise``, Immerkaer): a diagnostic; texture inflates the per-image estimate."""
    ratios = []
    index = np.flatnonzero(static)[::7]  # an even subsample is plenty for a median
    for c in range(bp.shape[0]):
        spread = bp[c].ravel()[index] - sp[c].ravel()[index]
        if spread.size >= 500:
            expected = math.hypot(camera_noise["B"][c], camera_noise["S"][c])
            robust = mad_sigma(spread)
            ratios.append(robust / max(expected, code / math.sqrt(12)))
    return float(max(ratios)) if ratios else 0.0


def _flags(edge_kappa: list[float], recoloured: int, unmeasured_fraction: dict[str, float],
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
    if max(unmeasured_fraction.values()) > 0.5:
        flags.append(f"over half the frame is clipped beyond measuring (B {100 * unmeasured_fraction['B']:.0f} %, "
                     f"S {100 * unmeasured_fraction['S']:.0f} %): little evidence is left")
    return flags
