"""Aligning one B/S pair: colour, brightness and geometry, with the blurred region excluded.

``align_pair`` is a pure function on linear RGB arrays. B is the reference grid and is
never resampled; S is colour-corrected and warped onto it. The moving object differs
between B and S by construction, so every estimate excludes it: from the mask when one
is given, otherwise from a provisional difference mask that is refined as the alignment
improves.

Chain: features + MAGSAC++ (or a calibration prior) -> robust colour fit on the initial
warp -> motion mask from the residual -> photometric Lucas-Kanade refinement on
colour-corrected grey with the static mask -> colour refit and motion mask on the final
warp -> Lanczos warp of the corrected S -> crop to the region valid in both -> QA. Where a
light flickering across S's rolling readout banded S's rows, a gain per row of S's sensor
is fitted after the first colour fit and S is flattened by it before everything that
follows (:func:`flicker_rows`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import cv2
import numpy as np

from reloblur.errors import ReloblurError
from reloblur.imaging.clipping import (
    B_HIGH,
    S_HIGH,
    ClippedOutput,
    any_channel,
    channel_max,
    channel_min,
    clipped_levels,
    encode_clip_flags,
)
from reloblur.imaging.imageio import linear_to_srgb
from reloblur.postprocess.color import (
    MATRIX_MODES,
    MIN_COLOR_SAMPLES,
    SATURATION,
    ColorFit,
    ColorFitError,
    ColorMode,
    LevelDependence,
    fit_color,
    level_dependence,
)
from reloblur.postprocess.geometry import (
    Rect,
    TransformSummary,
    inner_rect,
    inner_rect_of,
    sharp_coordinates,
    summarize,
    valid_coordinates,
    valid_mask,
)
from reloblur.postprocess.registration import (
    FeaturelessError,
    Lens,
    Registration,
    RegistrationError,
    direct_homography,
    gray,
    initial_homography,
    refine_homography,
    texture_fraction,
)
from reloblur.robust import (
    PixelNoise,
    fit_gain_field,
    fit_pixel_noise,
    fit_row_gain,
    fit_row_levels,
    mad_sigma,
    row_gain_step,
)

__all__ = ["MIRRORS", "AlignLimits", "AlignResult", "AlignSettings", "AlignmentError", "Mirror", "align_pair",
           "check_mirror", "flicker_rows"]

# How S's image may be mirrored relative to B's. A beam splitter reflects the view of one of
# the two cameras: unless that camera flips its readout (ReverseX), which capture pins off
# so that frames are recorded as the sensor reads them, its frames are the other's mirror
# image, and no homography of the plane maps one onto the other without that reflection.
# "horizontal": S's columns reversed (a splitter that reflects sideways); "vertical": its
# rows (one that reflects up or down).
Mirror = Literal["auto", "none", "horizontal", "vertical"]
MIRRORS: tuple[str, ...] = get_args(Mirror)
REFLECTIONS: tuple[Mirror, ...] = ("horizontal", "vertical")


# Reaches in pixels: S's white clip flags on B's grid are widened by the bilinear kernel's
# (_clip_flags), and _confine_clipped resamples S bilinearly wherever Lanczos-4 would read
# a clipped pixel, i.e. within the rest of Lanczos-4's reach of those flags.
S_WHITE_FLAG_WIDENING = 1
LANCZOS4_REACH = 4
# The least overlap of B and S, each side in pixels, that a registration may leave.
MIN_OVERLAP_PX = 16
# Linear level below which a pixel's B/S ratio is mostly noise: left out of the flicker fit.
FLICKER_FLOOR = 2e-3
# The first flicker profile is measured through a colour fit and a static mask made on the
# banded S, and carries their errors (3-6 % on rows of saturated or dark colours): each
# round fits both again on S flattened by the last profile and measures it again, until
# it moves by less than FLICKER_SETTLED (in log) or FLICKER_ROUNDS profiles were measured.
# On the mask benchmark's flicker row the second profile moved by up to 3 %, and an
# over-exposed variation of it took six to settle (with the bands' slow part then taken
# from a smooth field; four rounds left a static pair 2.5 % marked).
FLICKER_ROUNDS = 8
FLICKER_SETTLED = 0.005


class AlignmentError(ReloblurError):
    """A pair cannot be aligned (sizes, texture, failed fit)."""


def check_mirror(mirror: str) -> Mirror:
    """``mirror`` as a :data:`Mirror`, or :class:`AlignmentError` naming the choices."""
    if mirror not in MIRRORS:
        raise AlignmentError(f"mirror {mirror!r}: choose from {', '.join(MIRRORS)}")
    return mirror  # type: ignore[return-value]


@dataclass(frozen=True)
class AlignLimits:
    """Sanity limits on the B -> S transform; beyond them a pair is flagged."""

    max_shift_px: float = 200.0
    max_rotation_deg: float = 5.0
    max_scale_change: float = 0.05
    min_static_psnr: float = 25.0
    # The exponent of a brightness ratio S/B that changes with level (level_dependence):
    # 0 for linear cameras (at most 0.076 on 152 of the mask benchmark's pairs); -0.4 for
    # gamma 0.6 in one camera, -0.35 to -0.55 for an sRGB file read as linear.
    max_level_exponent: float = 0.25


@dataclass(frozen=True)
class AlignSettings:
    """Algorithm settings of :func:`align_pair` (all have working defaults)."""

    color_mode: ColorMode = "matrix"
    motion_sigmas: float = 5.0
    mask_dilation: float = 0.01  # of the shorter image side
    lk_points: int = 40_000
    work_max_side: int = 1024
    feature_max_side: int = 640
    min_texture: float = 0.002
    crop: bool = True
    limits: AlignLimits = field(default_factory=AlignLimits)
    # How S's image is mirrored relative to B's (MIRRORS): "auto" tries S as it is and,
    # where it cannot be registered, its mirror images (a beam splitter's reflected path)
    mirror: Mirror = "auto"
    # False: a calibration's homography is kept as given, not refined on the scene. A scene
    # clipped over most of the frame can pull the refinement away from the rig's geometry:
    # on the mask benchmark's undone row, fundus photographs whose cameras' outputs clipped
    # over most of the frame drew it from the true homography to 90 and 7 px off at a corner.
    refine: bool = True


@dataclass
class AlignResult:
    """Everything :func:`align_pair` found and made."""

    homography: np.ndarray  # B -> S, full-resolution input pixels, after B's radial lens term
    color: ColorFit
    registration: Registration
    initial: Registration
    sharp_aligned: np.ndarray  # (H, W, 3) linear in [0, 1], on B's full grid, corrected
    valid: np.ndarray | None  # (H, W) bool: where sharp_aligned is defined (uncropped runs)
    clip_flags: np.ndarray  # (H, W, C) uint8, reloblur.imaging.clipping bits per channel: B's and (warped) S's
    motion_mask: np.ndarray  # (H, W) bool: where B and corrected S differ, or S is undefined
    crop: Rect
    transform: TransformSummary
    static_psnr: float
    static_ssim: float
    flags: list[str]
    level: LevelDependence  # how the ratio S/B of the static region changes with level
    warp_seconds: float = 0.0  # of the final full-resolution warp, for stage timings
    radial: float = 0.0  # lens-distortion difference (imaging.lens.radial_coordinates); 0: a plain homography
    # (Hs,) the gain per row of S's sensor that flattened a flickering light's bands before
    # anything else was done with S (flicker_rows); None where none was found
    flicker_rows: np.ndarray | None = None
    # how S's image was mirrored before it was aligned ("none", "horizontal" or "vertical"):
    # ``homography`` includes that reflection; ``registration`` and ``transform`` describe
    # the map onto the mirrored S
    mirror: str = "none"

    @property
    def status(self) -> str:
        """``flagged`` when a QA limit was crossed, else ``ok``."""
        return "flagged" if self.flags else "ok"


def _clip_flags(blur: np.ndarray, sharp: np.ndarray, homography: np.ndarray, size: tuple[int, int], *,
                maps: tuple[np.ndarray, np.ndarray] | None = None,
                output_clipped: tuple[ClippedOutput | None, ClippedOutput | None] = (None, None)) -> np.ndarray:
    """Where B, and S warped onto B's grid, recorded a clipped bound, per channel (bits of
    encode_clip_flags).

    Found on the inputs, before the colour matrix mixes S's channels and hides the pile-up.
    Kept per channel: a sky whose blue channel clipped still measures red and green (on the
    mask benchmark's over-exposed row, per-pixel flags hid every channel of 5-30 % of the
    frame). S's flags are warped with the pair's homography; its white ones are widened by
    1 px, the reach of the bilinear kernel that resamples S beside them
    (:func:`_confine_clipped`). Wider flags hide the blur trail beside a blown-out moving
    object: 2 px (what Lanczos's ringing needed before the bilinear confinement) left one
    such pair of the mask benchmark's over-exposed row at IoU 0.00, 1 px at 0.89, and the
    row's mean IoU at 0.71 against 0.78 (both with the mask step as it is now).
    Black ones are not widened: a black-clipped pixel hides at most a noise excursion,
    and the mask step reads the share of them around a pixel as the size of that bias.
    ``output_clipped``: per image, where the camera's own output clipped before its colour
    matrix was undone (:func:`align_pair`); S's is warped as its other flags, not widened.

    Returns ``(H, W, C)`` uint8 for C-channel images, ``(H, W)`` where either is grey.
    """
    b_high, b_low = clipped_levels(blur, code=1 / 65535)
    s_high, s_low = clipped_levels(sharp, code=1 / 65535)
    if b_high.shape[2] != s_high.shape[2] or b_high.shape[2] == 1:
        b_high, b_low, s_high, s_low = (any_channel(f) for f in (b_high, b_low, s_high, s_low))
    shape = (size[1], size[0], *b_high.shape[2:])

    def onto_b(flags: np.ndarray, widen: bool) -> np.ndarray:
        if not flags.any():
            return np.zeros(shape, bool)
        if maps is None:
            warped = cv2.warpPerspective(flags.astype(np.uint8), homography, size,
                                         flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
        else:
            warped = cv2.remap(flags.astype(np.uint8), *maps, cv2.INTER_NEAREST, borderValue=0)
        return (cv2.dilate(warped, _square(S_WHITE_FLAG_WIDENING)) if widen else warped).reshape(shape) > 0

    b_output, s_output = output_clipped
    for role, output, flags in (("B", b_output, b_high), ("S", s_output, s_high)):
        if output is not None and flags.shape != output[0].shape:
            raise AlignmentError(f"{role}'s output clip flags are {output[0].shape}, its clip flags {flags.shape}")
    return encode_clip_flags(b_high, b_low, onto_b(s_high, True), onto_b(s_low, False), b_output=b_output,
                             s_output=None if s_output is None else (onto_b(s_output[0], False),
                                                                     onto_b(s_output[1], False)))


def _square(radius: int) -> np.ndarray:
    """A square structuring element reaching ``radius`` px from its centre."""
    return np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)


def _confine_clipped(corrected: np.ndarray, source: np.ndarray, clip_flags: np.ndarray, homography: np.ndarray,
                     maps: tuple[np.ndarray, np.ndarray] | None) -> None:
    """Resample S bilinearly, in place, where Lanczos reads a white-clipped S pixel.

    A clipped pixel holds less than the scene sent, and Lanczos-4 spreads that error 4 px
    with alternating sign, where the clip map no longer says so: on a static blown-out
    window the ring read as motion around it (and the window was filled in as a moving
    object). The bilinear kernel reads 1 px, which the clip map's 1-px widening covers.
    """
    s_white = np.asarray((clip_flags & S_HIGH) > 0)
    if s_white.ndim == 3:
        s_white = any_channel(s_white)
    if not s_white.any():
        return
    near = cv2.dilate(s_white.astype(np.uint8), _square(LANCZOS4_REACH - S_WHITE_FLAG_WIDENING)) > 0
    # Only the rectangle around them is resampled again (clipping is usually local).
    rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if maps is not None:
        box = cv2.remap(source, maps[0][y0:y1, x0:x1], maps[1][y0:y1, x0:x1], cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    else:
        offset = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]])  # box pixel -> B pixel
        box = _warp(source, homography @ offset, (x1 - x0, y1 - y0), cv2.INTER_LINEAR)
    window = near[y0:y1, x0:x1]
    corrected[y0:y1, x0:x1][window] = box[window]


def _motion_mask(gray_b: np.ndarray, gray_s: np.ndarray, usable: np.ndarray, *, sigmas: float,
                 dilation: int) -> np.ndarray:
    """Where B and corrected S differ beyond noise, given their :func:`gray` (S's by
    :func:`_corrected_gray`): ``(H, W)`` bool.

    S's brightness is first matched to B's by a smooth gain field: the cameras' vignetting
    differs, and a global colour fit leaves the corners brighter or darker in one of them,
    which is not motion, and whose points the registration needs for a lens term (on 6
    pairs of the mask benchmark's vignetting row, the static outer frame flagged as moving
    fell from 20 % to 15 % on average).
    """
    measured = usable & (gray_b > 0.05) & (gray_s > 0.05)  # grey is sqrt(luminance): a dark floor
    gain = fit_gain_field((gray_b * gray_b)[None], (gray_s * gray_s)[None], measured)[0]
    difference = np.abs(gray_b - gray_s * np.sqrt(gain))
    difference = cv2.GaussianBlur(difference, (0, 0), 1.5)
    values = difference[usable][::7]  # a deterministic subsample is plenty for two medians
    if values.size == 0:
        return np.zeros(gray_b.shape, bool)
    centre = float(np.median(values))
    level = centre + sigmas * mad_sigma(values, center=centre)
    moving = ((difference > level) & usable).astype(np.uint8)
    # Drop specks (noise, edge residue); close and grow the rest to cover blur tails.
    moving = cv2.morphologyEx(moving, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if dilation > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
        moving = cv2.dilate(moving, kernel)
    return moving.astype(bool)


def _warp(sharp: np.ndarray, homography: np.ndarray, size: tuple[int, int], flags: int, *,
          maps: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """S resampled onto B's grid: by the homography, or by precomputed maps (a radial term)."""
    if maps is not None:
        return cv2.remap(sharp, *maps, flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.warpPerspective(sharp, homography, size, flags=flags | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)


def _corrected_gray(color: ColorFit, sharp: np.ndarray) -> np.ndarray:
    """:func:`gray` of S after the colour fit, negative values (noise below a black level)
    read as 0; in place of the corrected copy (37 MB at full resolution)."""
    corrected = color.apply(sharp)
    return gray(np.maximum(corrected, 0, out=corrected))


def _static_quality(blur: np.ndarray, sharp: np.ndarray, static: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM (grey, Gaussian window) of the static region, in sRGB values."""
    a, b = linear_to_srgb(blur), linear_to_srgb(sharp)
    if not static.any():
        return float("nan"), float("nan")
    # OpenCV's masked mean accumulates in double; boolean indexing of the (H, W, 3) squares
    # gathered a copy of every static pixel first (five times slower).
    difference = a - b
    mse = float(np.mean(cv2.mean(cv2.multiply(difference, difference), mask=static.astype(np.uint8))[:3]))
    psnr = 10 * math.log10(1.0 / mse) if mse > 0 else float("inf")
    # The channels' mean, summed plane by plane: the same values as mean(axis=2), which
    # numpy reduces over a length-3 innermost axis about fifteen times slower.
    ga, gb = ((x[..., 0] + x[..., 1] + x[..., 2]) / np.float32(3) for x in (a, b))

    def blur_(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5)

    mu_a, mu_b = blur_(ga), blur_(gb)
    var_a = blur_(ga * ga) - mu_a**2
    var_b = blur_(gb * gb) - mu_b**2
    cov = blur_(ga * gb) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return psnr, float(ssim[static].mean())


def _scaling(factor: float) -> np.ndarray:
    """Full-resolution pixel -> working-scale pixel (pixel-centre convention)."""
    offset = 0.5 * factor - 0.5
    return np.array([[factor, 0, offset], [0, factor, offset], [0, 0, 1.0]])


def _to_full(h_work: np.ndarray, d_blur: np.ndarray, d_sharp: np.ndarray) -> np.ndarray:
    h = np.linalg.inv(d_sharp) @ h_work @ d_blur
    return h / h[2, 2]


def _to_work(h_full: np.ndarray, d_blur: np.ndarray, d_sharp: np.ndarray) -> np.ndarray:
    h = d_sharp @ h_full @ np.linalg.inv(d_blur)
    return h / h[2, 2]


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def align_pair(blur: np.ndarray, sharp: np.ndarray, *, settings: AlignSettings = AlignSettings(),
               blur_mask: np.ndarray | None = None, prior_homography: np.ndarray | None = None,
               prior_color: np.ndarray | None = None, prior_radial: float | None = None,
               output_clipped: tuple[ClippedOutput | None, ClippedOutput | None] = (None, None)) -> AlignResult:
    """Align S onto B.

    Parameters
    ----------
    blur, sharp
        ``(H, W, 3)`` and ``(Hs, Ws, 3)`` linear RGB float32 in [0, 1].
    settings
        Algorithm settings; estimates other than the final refinement and warp run at a
        working scale of at most ``settings.work_max_side`` pixels.
    blur_mask
        ``(H, W)`` bool, True where B is known to be blurred (excluded from every fit);
        None: estimated from the residual.
    prior_homography
        Rig calibration (``reloblur align calibrate``): the starting homography B -> S,
        replacing feature matching.
    prior_color
        Calibrated 3x3 colour matrix (S -> B); with ``settings.color_mode == "calibrated"``
        only a brightness gain on top of it is fitted per pair (for weak scenes).
    prior_radial
        The calibration's lens-distortion difference (see
        :func:`reloblur.imaging.lens.radial_coordinates`): kept as it is (a
        lens does not drift as a mount does). None: tested for, and fitted where found.
    settings.mirror
        ``"auto"`` (default) aligns S as it is and, where that fails, its mirror images,
        horizontal then vertical: a beam splitter reflects one camera's view. With a
        calibration, its homography's reflection decides. ``"none"``, ``"horizontal"`` or
        ``"vertical"`` say it outright (a rig known to be mirrored pays no failed attempt).
    settings.refine
        False: keep ``prior_homography`` (and ``prior_radial``) as given, for a rig whose
        calibration is trusted over scenes too clipped or featureless to register; the
        colour fit and everything after it run on that geometry.
    output_clipped
        For B and for S, where the camera's own RGB output clipped, ``(high, low)``
        ``(H, W, 3)`` bool on that image's grid, when the image is that output with the
        camera's colour matrix undone (:func:`reloblur.imaging.raw.undo_colour_transformation`):
        handed on in ``clip_flags`` for the mask step; None where nothing was undone.

    Returns
    -------
    AlignResult
        Homography B -> S (full-resolution pixels, with S's reflection where it was
        mirrored: ``mirror``), colour fit, corrected S on B's grid, masks, crop and QA.

    Raises
    ------
    AlignmentError
        Featureless scene, or a fit that cannot be made; the message says which.
    """
    if blur.ndim != 3 or sharp.ndim != 3 or blur.shape[2] != 3 or sharp.shape[2] != 3:
        raise AlignmentError(f"expected RGB images, got shapes {blur.shape} and {sharp.shape}")
    check_mirror(settings.mirror)
    if not settings.refine and prior_homography is None:
        raise AlignmentError("keeping the calibration's homography (refine off) needs a calibration "
                             "(align --calibration FILE)")
    priors = (blur_mask, prior_homography, prior_color, prior_radial)
    mirror = settings.mirror
    if mirror == "auto" and prior_homography is not None:
        # The calibration holds the rig's reflection, if it has one.
        mirror = _reflection_of(np.asarray(prior_homography, float), (sharp.shape[1], sharp.shape[0]))
    if mirror != "auto":
        return _aligned_mirrored(blur, sharp, mirror, settings, priors, output_clipped)
    try:
        return _aligned_mirrored(blur, sharp, "none", settings, priors, output_clipped)
    except AlignmentError as exc:
        for reflection in REFLECTIONS:
            try:
                mirrored = _aligned_mirrored(blur, sharp, reflection, settings, priors, output_clipped)
            except AlignmentError:
                continue
            # Where S as it is could not be aligned, a mirror image is taken only as a rig
            # would hold it: within the geometric limits, converged. A pair that failed for
            # another reason may still register its mirror image onto something (on the
            # mask benchmark's undone row, one pair at a 153 degree turn and a scale of 0).
            if _rig_like(mirrored, settings.limits):
                return mirrored
        raise AlignmentError(f"{exc}; nor could S's mirror image be registered as a rig holds it") from None


def _rig_like(result: AlignResult, limits: AlignLimits) -> bool:
    """Whether ``result``'s map is one a rig holds: shift, rotation and scale within
    ``limits``, and the registration converged (the static PSNR may be low for other
    reasons: a scene's clipped or moving share)."""
    transform = result.transform
    return (result.registration.converged and transform.shift_px <= limits.max_shift_px
            and abs(transform.rotation_deg) <= limits.max_rotation_deg
            and abs(transform.scale - 1) <= limits.max_scale_change)


def _reflection(mirror: str, size: tuple[int, int]) -> np.ndarray:
    """``(3, 3)`` the map between the pixels of an image of ``size`` (w, h) and of its mirror
    image (its own inverse); the identity for ``"none"``."""
    w, h = size
    return {"none": np.eye(3), "horizontal": np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]]),
            "vertical": np.array([[1.0, 0, 0], [0, -1, h - 1], [0, 0, 1]])}[mirror]


def _reflection_of(homography: np.ndarray, sharp_size: tuple[int, int]) -> Mirror:
    """How the map B -> S ``homography`` mirrors S: "none" where it keeps the frame's
    orientation, else the reflection that leaves the smaller turn (a horizontal and a
    vertical mirror image differ by half a turn)."""
    jacobian = homography[:2, :2] - np.outer(homography[:2, 2], homography[2, :2])
    if np.linalg.det(jacobian) > 0:
        return "none"
    turns: dict[Mirror, float] = {}
    for reflection in REFLECTIONS:
        inner = _reflection(reflection, sharp_size) @ homography
        turns[reflection] = abs(math.atan2(inner[1, 0] - inner[0, 1], inner[0, 0] + inner[1, 1]))
    return min(turns, key=lambda name: turns[name])


def _aligned_mirrored(blur: np.ndarray, sharp: np.ndarray, mirror: str, settings: AlignSettings,
                      priors: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, float | None],
                      output_clipped: tuple[ClippedOutput | None, ClippedOutput | None]) -> AlignResult:
    """:func:`_aligned` on S mirrored as ``mirror`` says, its homography and flicker rows
    then taken back to S's own pixels and rows."""
    if mirror == "none":
        return _aligned(blur, sharp, settings, *priors, output_clipped)
    axis = 1 if mirror == "horizontal" else 0
    flip = _reflection(mirror, (sharp.shape[1], sharp.shape[0]))
    blur_mask, prior_homography, prior_color, prior_radial = priors
    prior = None if prior_homography is None else flip @ np.asarray(prior_homography, float)
    b_output, s_output = output_clipped
    if s_output is not None:
        s_output = (np.flip(s_output[0], axis), np.flip(s_output[1], axis))
    result = _aligned(blur, np.ascontiguousarray(np.flip(sharp, axis)), settings, blur_mask, prior, prior_color,
                      prior_radial, (b_output, s_output))
    rows = result.flicker_rows
    if rows is not None and mirror == "vertical":
        rows = np.ascontiguousarray(rows[::-1])
    return replace(result, homography=flip @ result.homography, flicker_rows=rows, mirror=mirror)


def _aligned(blur: np.ndarray, sharp: np.ndarray, settings: AlignSettings, blur_mask: np.ndarray | None,
             prior_homography: np.ndarray | None, prior_color: np.ndarray | None, prior_radial: float | None,
             output_clipped: tuple[ClippedOutput | None, ClippedOutput | None]) -> AlignResult:
    """:func:`align_pair` of S as it is given."""
    h, w = blur.shape[:2]
    hs, ws = sharp.shape[:2]
    size = (w, h)
    work = _working_scale(blur, sharp, settings, blur_mask, calibrated=prior_homography is not None,
                          output_clipped=output_clipped)
    # 1. Starting geometry (working scale).
    initial, h_work = _initial_geometry(work, settings, prior_homography)
    gray_b = gray(blur)
    try:
        initial, registration, color, static_w, rows, flattened = _registered(
            work, gray_b, sharp, initial, h_work, settings, prior_color, prior_radial)
    except ColorFitError as exc:
        raise AlignmentError(f"colour fit failed: {exc}") from None
    homography, radial = registration.homography, registration.radial

    # 4. The corrected S resampled onto B's full grid (Lanczos), crop, QA.
    started = time.perf_counter()
    coordinates = sharp_coordinates(homography, size, radial=radial) if radial else None
    # Fixed-point maps (1/32 px, as warpPerspective itself resamples) remap twice as fast.
    maps = None if coordinates is None else cv2.convertMaps(*coordinates, cv2.CV_16SC2)
    source = color.apply(flattened)
    corrected = _warp(source, homography, size, cv2.INTER_LANCZOS4, maps=maps)
    warp_seconds = time.perf_counter() - started
    clip_flags = _clip_flags(blur, sharp, homography, size, maps=maps, output_clipped=output_clipped)
    started = time.perf_counter()
    _confine_clipped(corrected, source, clip_flags, homography, maps)
    warp_seconds += time.perf_counter() - started
    static_full = cv2.resize(static_w.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    if coordinates is not None:
        valid_full = valid_coordinates(*coordinates, (ws, hs))
        crop = inner_rect_of(valid_full) if settings.crop else Rect(0, 0, w, h)
        valid = None if settings.crop else valid_full
    else:
        # Cropped output is valid by construction; the full-grid mask is only needed uncropped.
        valid = None if settings.crop else valid_mask(homography, size, (ws, hs))
        crop = inner_rect(homography, size, (ws, hs)) if settings.crop else Rect(0, 0, w, h)
    if crop.width < MIN_OVERLAP_PX or crop.height < MIN_OVERLAP_PX:
        raise AlignmentError(f"B and S overlap in only {crop.width}x{crop.height} px")
    transform = summarize(homography, w, h)
    np.clip(corrected, 0, 1, out=corrected)  # Lanczos overshoots; what follows reads [0, 1]
    corrected_w = _resize(corrected, work.b_size)
    quality_mask = static_w & (channel_max(work.blur) < 0.98)
    psnr, ssim = _static_quality(work.blur, corrected_w, quality_mask)
    level = _level_dependence(color, corrected_w, work.blur, quality_mask & ~_near_white_clip(clip_flags, work.b_size))
    return AlignResult(
        homography=homography, color=color, registration=registration, initial=initial,
        sharp_aligned=corrected, valid=valid, clip_flags=clip_flags, motion_mask=~static_full, crop=crop,
        transform=transform, static_psnr=psnr, static_ssim=ssim, level=level,
        flags=_qa_flags(transform, psnr, registration, level, settings.limits, color, settings.color_mode),
        warp_seconds=warp_seconds,
        radial=radial, flicker_rows=rows,
    )


def _level_dependence(color: ColorFit, corrected: np.ndarray, blur: np.ndarray, static: np.ndarray
                      ) -> LevelDependence:
    """:func:`level_dependence` of S as its camera recorded it, against B. Measured before
    the colour fit: a matrix with strong off-diagonals absorbs part of a transfer mismatch
    through the scene's colours (on one pair whose S was sRGB-coded and read as linear, the
    exponent was -0.37 before the fit and +0.11 after it)."""
    try:
        inverse = np.linalg.inv(color.matrix).astype(np.float32)
    except np.linalg.LinAlgError:
        return LevelDependence(math.nan, math.nan, 1.0, 0)
    recorded = cv2.transform(corrected - color.offset.astype(np.float32), inverse)
    return level_dependence(recorded, blur, mask=static)


def _near_white_clip(clip_flags: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` bool at working ``size``: within a few pixels of a channel either camera
    clipped white. After S's colour matrix its clipped channels no longer sit at full
    scale, and a clipped value's ratio to the other camera's says nothing of its transfer."""
    white = any_channel((clip_flags & (B_HIGH | S_HIGH)) > 0).astype(np.float32)
    # Averaged, not sampled, onto the working grid: a lone clipped pixel still counts.
    near = _resize(white, size) > 0
    return cv2.dilate(near.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0


def _registered(work: _Work, gray_b: np.ndarray, sharp: np.ndarray, initial: Registration, h_work: np.ndarray,
                settings: AlignSettings, prior_color: np.ndarray | None, prior_radial: float | None
                ) -> tuple[Registration, Registration, ColorFit, np.ndarray, np.ndarray | None, np.ndarray]:
    """:func:`_refined` from ``initial``, or where the refinement from matched features
    fails, from the identity: the start actually used, the registration, the colour fit,
    the static mask, S's flicker rows and S as registered (flattened by them)."""
    try:
        refined = _refined(work, gray_b, sharp, initial, h_work, settings, prior_color, prior_radial)
        if initial.method == "features":
            _require_overlap(refined[0].homography, (gray_b.shape[1], gray_b.shape[0]),
                             (sharp.shape[1], sharp.shape[0]))
        return (initial, *refined)
    except RegistrationError as exc:
        if initial.method != "features":
            raise AlignmentError(f"registration failed: {exc}") from None
        # Features can agree on a wrong homography: a repetitive pattern's aliases match
        # one another consistently. The rig's views differ by a small homography.
        features = f"{initial.inliers} matched features"
        try:
            direct, h_direct = _from_identity(work, gray(work.sharp), f"refining {features} failed: {exc}")
            return (direct, *_refined(work, gray_b, sharp, direct, h_direct, settings, prior_color, prior_radial))
        except RegistrationError as again:
            raise AlignmentError(f"registration failed from {features} ({exc}) and from the identity ({again})"
                                 ) from None


def _require_overlap(homography: np.ndarray, blur_size: tuple[int, int], sharp_size: tuple[int, int]) -> None:
    """Raise :class:`RegistrationError` where a refined homography cannot be the rig's:
    one that folds B's frame (a corner behind the projection, the frame's orientation
    reversed) or leaves less than :data:`MIN_OVERLAP_PX` square of it inside S. The refinement can settle on
    such a map from a wrong start without diverging (on some CPUs a repetitive pattern's
    aliased feature match refines to a singular map), and the start from the identity
    then deserves its chance as if it had diverged."""
    w, h = blur_size
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], np.float64) @ homography.T
    if not np.isfinite(corners).all() or (corners[:, 2] <= 1e-9).any():
        raise RegistrationError("the refined homography maps a corner of B behind the projection")
    x, y = corners[:, 0] / corners[:, 2], corners[:, 1] / corners[:, 2]
    signed_area = 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if signed_area <= 0.0:
        raise RegistrationError("the refined homography folds B's frame")
    overlap = inner_rect(homography, blur_size, sharp_size)
    if overlap.width < MIN_OVERLAP_PX or overlap.height < MIN_OVERLAP_PX:
        raise RegistrationError(f"the refined homography leaves B and S overlapping in only "
                                f"{overlap.width}x{overlap.height} px")


def _refined(work: _Work, gray_b: np.ndarray, sharp: np.ndarray, initial: Registration, h_work: np.ndarray,
             settings: AlignSettings, prior_color: np.ndarray | None, prior_radial: float | None
             ) -> tuple[Registration, ColorFit, np.ndarray, np.ndarray | None, np.ndarray]:
    """Steps 2-3 of :func:`align_pair` from a starting geometry: the registration, the
    colour fit, the static mask (working scale), S's flicker rows and S flattened by them
    (full resolution; S as given where there are none).

    2. Colour and provisional static mask on the initial warp (Huber weights ignore the
       moving object on this first pass). Where a flickering light banded S's rows, S is
       flattened by its gain per row (:func:`flicker_rows`) and both are fitted again: the
       bands' residual would otherwise mark the brightest static regions as moving and
       leave the colour fit to the darkest.
    3. Photometric refinement at full resolution on colour-corrected grey, static pixels
       only; then colour and static mask again on the refined warp, and a last refinement
       on the two finest levels with them. A featureless scene (a plain wall) gives the
       refinement nothing to hold on to: it keeps the calibration as it is, as it does
       where ``settings.refine`` is off.

    Raises
    ------
    RegistrationError
        The refinement diverged or found too little texture.
    """
    size = (gray_b.shape[1], gray_b.shape[0])
    radial = 0.0 if prior_radial is None else float(prior_radial)
    color, static_w = _colour_and_static(work, h_work, None, settings, prior_color, radial=radial)
    unflattened = (work, color, static_w)
    previous = None
    for _ in range(FLICKER_ROUNDS):
        rows = flicker_rows(work.blur, unflattened[0].sharp, h_work, static_w, colour=color,
                            clipped=work.output_clipped)
        if rows is None:
            # Measured through colours fitted on S flattened, the bands are gone: they were
            # the first colour fit's error, not a flicker.
            work, color, static_w = unflattened
            previous = None
            break
        if previous is not None and float(np.abs(np.log(rows / previous)).max()) < FLICKER_SETTLED:
            break  # the last profile and the fits made with it stand
        previous = rows
        work = replace(work, sharp=unflattened[0].sharp * rows[:, None, None])
        color, static_w = _colour_and_static(work, h_work, None, settings, prior_color, radial=radial)
    rows_full = None
    if previous is not None:  # the full-resolution S flattened once, by the profile that stood
        rows_full = _rows_at(previous, sharp.shape[0])
        sharp = sharp * rows_full[:, None, None]
    homography = initial.homography
    kept = "featureless scene" if work.featureless else "kept as given"
    registration = replace(initial, method=f"calibration ({kept}: not refined)", radial=radial)
    for round_ in range(0 if work.featureless or not settings.refine else 2):
        static_full = cv2.resize(static_w.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        # The first round also tests for a lens-distortion difference; the second keeps
        # fitting one only where the first found it.
        lens: Lens = "homography" if prior_radial is not None else (
            "auto" if round_ == 0 else ("radial" if radial else "homography"))
        registration = refine_homography(gray_b, _corrected_gray(color, sharp), homography,
                                         static_mask=static_full, points=settings.lk_points,
                                         levels=None if round_ == 0 else 2, lens=lens, radial=radial)
        radial = registration.radial
        homography = registration.homography
        color, static_w = _colour_and_static(work, _to_work(homography, work.d_blur, work.d_sharp), static_w,
                                             settings, prior_color, radial=radial)
    return registration, color, static_w, rows_full, sharp


def flicker_rows(blur: np.ndarray, sharp: np.ndarray, homography: np.ndarray, static: np.ndarray, *,
                 colour: ColorFit | None = None,
                 clipped: tuple[np.ndarray | None, np.ndarray | None] = (None, None)) -> np.ndarray | None:
    """S's gain per row of its own sensor, where a light flickering across its rolling
    readout banded it: ``(Hs,)`` float32 with ``B ~= colour(g(y) * S)``, or None.

    A lamp on mains power, or an LED dimmed by pulses, reaches a rolling shutter's rows at
    different phases: S, exposed briefly, records bands of brightness along its own rows,
    while B's long exposure averages them out. B is resampled onto S's grid (the bands
    lie along S's rows, which the homography slants on B's), a smooth gain field takes
    what vignetting and exposure leave, and :func:`reloblur.robust.fit_row_gain` says
    whether bands lie well above and well below that level (a steady light, a global
    shutter, or a large bright object: None). Where they do, the profile is fitted as a
    level per band of rows beside a radial vignetting difference
    (:func:`reloblur.robust.fit_row_levels`).

    Parameters
    ----------
    blur
        ``(H, W, 3)`` linear B.
    sharp
        ``(Hs, Ws, 3)`` linear S on its own grid.
    homography
        ``(3, 3)`` B's pixels to S's.
    static
        ``(H, W)`` bool on B's grid: where B is static (the moving object left out).
    colour
        The colour fit that maps S onto B; None: the identity.
    clipped
        ``(H, W)`` and ``(Hs, Ws)`` bool, each on its own image's grid: where B's and S's
        cameras clipped before their colour matrices were undone, so that the pixels
        hold a bound and no level (they pile up at no extreme); None where not known.
        Left out: through a matrix undone they are off in every channel, by an amount
        that differs from row to row with what the rows show.

    Returns
    -------
    numpy.ndarray or None
        ``(Hs,)`` float32: multiply S's rows by it to flatten the bands; normalised to a
        mean log of 0.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> b = rng.uniform(0.1, 0.8, (240, 320, 3)).astype(np.float32)
    >>> bands = 1 + 0.06 * np.sin(np.arange(240) / 240 * 2 * np.pi * 3.3)
    >>> s = (b / bands[:, None, None]).astype(np.float32)
    >>> rows = flicker_rows(b, s, np.eye(3), np.ones((240, 320), bool))
    >>> rows.shape, bool(np.abs(rows / bands - 1).max() < 0.01)
    ((240,), True)
    >>> flicker_rows(b, b, np.eye(3), np.ones((240, 320), bool)) is None
    True
    """
    hs, ws = sharp.shape[:2]
    # A lens-distortion difference is left out: it moves a pixel by a pixel or so, and a
    # band of rows measured here is several rows high. Only the columns fit_row_gain reads
    # are made.
    step = row_gain_step(hs, ws)
    # B's pixels to S's columns 0, step, 2 step, ...: only those are resampled.
    to_columns = np.diag([1.0 / step, 1.0, 1.0]) @ np.asarray(homography, np.float64)
    columns = (-(-ws // step), hs)
    blur_on_s = cv2.warpPerspective(np.ascontiguousarray(blur, np.float32), to_columns, columns,
                                    flags=cv2.INTER_LINEAR, borderValue=0)
    static_on_s = cv2.warpPerspective(np.asarray(static, np.uint8), to_columns, columns,
                                      flags=cv2.INTER_NEAREST, borderValue=0) > 0
    recorded = np.ascontiguousarray(sharp[:, ::step], np.float32)
    mapped = recorded if colour is None else colour.apply(recorded)
    usable = (static_on_s & (channel_max(blur_on_s) < SATURATION) & (channel_max(recorded) < SATURATION)
              & (channel_min(blur_on_s) > FLICKER_FLOOR) & (channel_min(mapped) > FLICKER_FLOOR))
    b_clipped, s_clipped = clipped
    if b_clipped is not None:
        usable &= cv2.warpPerspective(np.asarray(b_clipped, np.uint8), to_columns, columns, flags=cv2.INTER_NEAREST,
                                      borderValue=0) == 0
    if s_clipped is not None:
        usable &= ~np.asarray(s_clipped, bool)[:, ::step]
    bp, sp = (np.ascontiguousarray(image.transpose(2, 0, 1)) for image in (blur_on_s, mapped))
    if fit_row_gain(bp, sp * fit_gain_field(bp, sp, usable), usable, sampled=True) is None:
        return None
    return fit_row_levels(bp, sp, usable, step=step)


def _rows_at(rows: np.ndarray, height: int) -> np.ndarray:
    """A profile over ``len(rows)`` rows resampled to ``height`` rows of the same frame
    (row centres matched, as a resize maps them)."""
    centres = (np.arange(height) + 0.5) * (len(rows) / height) - 0.5
    return np.interp(centres, np.arange(len(rows)), rows).astype(np.float32)


@dataclass
class _Work:
    """The pair at the working scale where the estimates run (at most ``work_max_side``)."""

    blur: np.ndarray
    gray_blur: np.ndarray  # gray(blur)
    sharp: np.ndarray
    b_size: tuple[int, int]
    s_size: tuple[int, int]
    d_blur: np.ndarray  # full -> working scale of B
    d_sharp: np.ndarray
    known_static: np.ndarray | None  # where the caller says B is static (from its blur mask)
    dilation: int  # px of growth for the motion mask
    featureless: bool = False  # too little texture to refine on (allowed only from a calibration)
    sharp_noise: PixelNoise | None = None  # S's pixel noise at working scale, before any warp
    # (H, W) bool per image at working scale, on its own grid: where the camera's own output
    # clipped (align_pair's output_clipped), a bound rather than a level; None: not known
    output_clipped: tuple[np.ndarray | None, np.ndarray | None] = (None, None)


def _working_scale(blur: np.ndarray, sharp: np.ndarray, settings: AlignSettings,
                   blur_mask: np.ndarray | None, *, calibrated: bool = False,
                   output_clipped: tuple[ClippedOutput | None, ClippedOutput | None] = (None, None)) -> _Work:
    """Both images at the working scale; :class:`AlignmentError` if B has no texture."""
    h, w = blur.shape[:2]
    hs, ws = sharp.shape[:2]
    factor = min(1.0, settings.work_max_side / max(w, h, ws, hs))
    b_size = (max(1, round(w * factor)), max(1, round(h * factor)))
    s_size = (max(1, round(ws * factor)), max(1, round(hs * factor)))
    blur_w, sharp_w = _resize(blur, b_size), _resize(sharp, s_size)
    gray_w = gray(blur_w)
    texture = texture_fraction(gray_w)
    featureless = texture < settings.min_texture
    if featureless and not calibrated:
        raise AlignmentError(f"B is featureless ({100 * texture:.3f} % textured pixels): nothing to register "
                             "(a calibration of the rig, align --calibration, would align it)")
    known = None if blur_mask is None else _resize(blur_mask.astype(np.float32), b_size) < 0.01
    clipped = tuple(None if flags is None else _resize(any_channel(flags[0] | flags[1]).astype(np.float32), size) > 0
                    for flags, size in zip(output_clipped, (b_size, s_size)))
    return _Work(blur_w, gray_w, sharp_w, b_size, s_size, _scaling(b_size[0] / w), _scaling(s_size[0] / ws), known,
                 max(1, int(settings.mask_dilation * min(b_size))), featureless,
                 # only a matrix fit has colour directions to shrink
                 fit_pixel_noise(sharp_w) if settings.color_mode in MATRIX_MODES else None,
                 (clipped[0], clipped[1]))


def _initial_geometry(work: _Work, settings: AlignSettings, prior_homography: np.ndarray | None
                      ) -> tuple[Registration, np.ndarray]:
    """The starting homography: the calibration's, or features matched at working scale, or
    where no features match, a direct registration from the identity."""
    if prior_homography is not None:
        initial = Registration(np.asarray(prior_homography, float), "calibration")
        return initial, _to_work(initial.homography, work.d_blur, work.d_sharp)
    sharp_gray = gray(work.sharp)
    try:
        found = initial_homography(work.gray_blur, sharp_gray, max_side=settings.feature_max_side,
                                   mask=work.known_static)
    except FeaturelessError as exc:
        # B has texture (_working_scale checked), only no features that match: a pair
        # whose fine detail compression erased, or a repetitive pattern.
        try:
            return _from_identity(work, sharp_gray, str(exc))
        except RegistrationError as direct:
            raise AlignmentError(f"{exc}; registering without features, from the identity, failed too: {direct}"
                                 ) from None
    return (Registration(_to_full(found.homography, work.d_blur, work.d_sharp), found.method, found.matches,
                         found.inliers), found.homography)


def _from_identity(work: _Work, sharp_gray: np.ndarray, why: str) -> tuple[Registration, np.ndarray]:
    """The start registered directly from the identity (:func:`direct_homography`), its
    method saying ``why``; as :func:`_initial_geometry` returns it (full-resolution
    registration, working-scale homography). Raises :class:`RegistrationError`."""
    found = direct_homography(work.gray_blur, sharp_gray, static_mask=work.known_static)
    return (Registration(_to_full(found.homography, work.d_blur, work.d_sharp), f"{found.method} ({why})"),
            found.homography)


def _colour_and_static(work: _Work, h_w: np.ndarray, static_w: np.ndarray | None, settings: AlignSettings,
                       prior_color: np.ndarray | None, *, radial: float = 0.0) -> tuple[ColorFit, np.ndarray]:
    """Robust colour fit on the warp, then the static mask from what it cannot explain."""
    # The radial term is relative to the half-diagonal: the same at every scale.
    maps = sharp_coordinates(h_w, work.b_size, radial=radial) if radial else None
    warped = _warp(work.sharp, h_w, work.b_size, cv2.INTER_LINEAR, maps=maps)
    valid_w = valid_mask(h_w, work.b_size, work.s_size) if maps is None else valid_coordinates(*maps, work.s_size)
    allowed = valid_w if work.known_static is None else valid_w & work.known_static
    if static_w is not None:
        allowed = allowed & static_w
    bounds = _output_clipped_on_b(work, h_w, maps)

    def fitted(source: np.ndarray, mode: str, noise: PixelNoise | None = None) -> ColorFit:
        if bounds is not None:
            try:
                return fit_color(source, work.blur, mask=allowed, mode=mode, source_noise=noise, clipped=bounds)
            except ColorFitError:
                # The outputs clipped nearly everywhere: their bounds are all there is to
                # fit, and a gain per channel bends less to them than a matrix's nine terms.
                mode = "gain" if mode in MATRIX_MODES else mode
                return replace(fit_color(source, work.blur, mask=allowed, mode=mode, source_noise=noise),
                               on_clipped=True)
        return fit_color(source, work.blur, mask=allowed, mode=mode, source_noise=noise)

    if settings.color_mode == "calibrated":
        if prior_color is None:
            raise AlignmentError("colour mode 'calibrated' needs a calibration (--calibration FILE)")
        base = ColorFit(np.asarray(prior_color, float))
        gain = fitted(base.apply(warped), "scalar")
        colour = ColorFit(gain.matrix @ base.matrix, mode="calibrated", residual_rms=gain.residual_rms,
                          samples=gain.samples, inlier_fraction=gain.inlier_fraction, on_clipped=gain.on_clipped)
    else:
        colour = fitted(warped, settings.color_mode, work.sharp_noise)
    if work.known_static is not None:
        return colour, valid_w & work.known_static
    moving = _motion_mask(work.gray_blur, _corrected_gray(colour, warped), valid_w, sigmas=settings.motion_sigmas,
                          dilation=work.dilation)
    return colour, valid_w & ~moving


def _output_clipped_on_b(work: _Work, h_w: np.ndarray, maps: tuple[np.ndarray, np.ndarray] | None
                         ) -> np.ndarray | None:
    """``(H, W)`` bool at working scale on B's grid: where either camera's own output
    clipped before its colour matrix was undone (S's flags warped, any pixel its bilinear
    footprint touches); None where neither was undone."""
    b_clipped, s_clipped = work.output_clipped
    if b_clipped is None and s_clipped is None:
        return None
    bounds = np.zeros((work.b_size[1], work.b_size[0]), bool) if b_clipped is None else np.asarray(b_clipped, bool)
    if s_clipped is not None:
        warped = _warp(np.asarray(s_clipped, np.float32), h_w, work.b_size, cv2.INTER_LINEAR, maps=maps)
        bounds = bounds | (warped > 0)
    return bounds


def _qa_flags(transform: TransformSummary, psnr: float, registration: Registration, level: LevelDependence,
              limits: AlignLimits, color: ColorFit, color_mode: str) -> list[str]:
    """The QA limits a pair crosses, in words; and a colour fit made on the pixels whose
    camera outputs clipped (:attr:`ColorFit.on_clipped`)."""
    flags = []
    if color.on_clipped:
        fitted = ("a gain per channel" if color.mode == "gain" and color_mode in MATRIX_MODES
                  else "the calibration's brightness gain" if color_mode == "calibrated" else f"the {color_mode} map")
        flags.append(f"colour: under {MIN_COLOR_SAMPLES} pixels where neither camera's output clipped before its "
                     f"matrix was undone; {fitted} was fitted on the clipped ones, and S's colours are uncertain")
    if transform.shift_px > limits.max_shift_px:
        flags.append(f"shift {transform.shift_px:.1f} px > {limits.max_shift_px}")
    if abs(transform.rotation_deg) > limits.max_rotation_deg:
        flags.append(f"rotation {transform.rotation_deg:.2f} deg > {limits.max_rotation_deg}")
    if abs(transform.scale - 1) > limits.max_scale_change:
        flags.append(f"scale {transform.scale:.4f} differs from 1 by > {limits.max_scale_change}")
    if not psnr >= limits.min_static_psnr:
        flags.append(f"static PSNR {psnr:.2f} dB < {limits.min_static_psnr}")
    if not registration.converged:
        flags.append("registration did not converge")
    change = level.ratio_change()
    # Beyond the limit, and beyond four standard errors, and a tenth over the levels seen:
    # a frame clipped almost whole leaves a few cells one level wide, whose slope means nothing.
    if (abs(level.exponent) > limits.max_level_exponent and abs(level.exponent) > 4 * level.standard_error
            and abs(math.log(change)) > math.log(1.1)):
        flags.append(f"S/B brightness ratio changes with level (x{change:.2f} from the darkest static levels to "
                     f"the brightest, exponent {level.exponent:+.2f}; two linear cameras keep it constant): "
                     "their transfer curves differ. Check for gamma or a LUT on in one camera, a black level "
                     "left in one image, or a file read with the wrong transfer (8-bit is read as sRGB, 16-bit "
                     "without an sRGB chunk as linear; --transfer)")
    return flags
