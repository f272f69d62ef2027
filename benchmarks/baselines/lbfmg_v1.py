"""Baseline for benchmarks/mask_bench.py: the mask generator as it was at 94cccc5 (one global
noise level from the Laplacian, adaptive level, 3 % closing, hole filling), kept verbatim
but for imports (component listing from ``reloblur.formats.masks``; scoring lives in
``reloblur.lbfmg.metrics``) so that every benchmark run measures the new generator against it.

Local blur foreground masks by background subtraction (LBFMG).

After alignment the static background agrees between B and S; what remains different is
the moving foreground and its blur trail. The difference is judged against each image's
own noise level, so the same parameters work in bright and dark scenes:

1. brightness: a robust per-channel gain maps S onto B (residual exposure difference and
   flicker would otherwise light up the whole frame);
2. noise: each image's noise sigma is estimated from its Laplacian (Immerkaer's method);
   where the static majority of the image differs by more than noise (residual
   misalignment, demosaicing that differs between the cameras), the level follows that
   residual instead once it exceeds twice the noise (``adaptive_level``: from the 25th
   percentile of the difference, which is 0.52 noise levels when only noise is there);
3. difference: both images are smoothed (Gaussian, ``smooth_sigma``) and the per-pixel
   colour difference is the minimum over one-pixel shifts of S (``shift_tolerance``):
   residual misalignment at strong edges does not become thin false positives;
4. threshold with hysteresis: regions above ``low_sigmas`` noise levels are kept if they
   contain a pixel above ``high_sigmas`` (faint blur tails attached to strong evidence
   survive, isolated noise does not);
5. morphology: closing, hole filling (a uniform object interior matches between B and S
   although it moved), components below ``min_area`` of the image dropped, optional
   safety dilation.

Known limits (see docs/lbfmg.md): an object of the background's own colour is missed;
a moving object's shadow counts as foreground; no motion-direction consistency check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np
from scipy import ndimage

from reloblur.errors import ImageFormatError
from reloblur.formats.masks import Component, mask_components
from reloblur.imaging.imageio import ensure_rgb, linear_to_srgb, srgb_to_linear, to_float
from reloblur.postprocess.color import ColorFitError, fit_color

NOISE_ONLY_P25 = 0.52  # 25th percentile of the shift-min difference, in noise levels, for pure noise
RESIDUAL_ALLOWANCE = 2.0


@dataclass(frozen=True)
class MaskParams:
    """Parameters of :func:`generate_mask`; sizes are fractions of the shorter image side
    so that the same values fit 538x359 and 2152x1436."""

    high_sigmas: float = 6.0
    low_sigmas: float = 3.0
    smooth_sigma: float = 1.5  # pixels
    shift_tolerance: int = 1  # pixels
    close_radius: float = 0.03
    min_area: float = 0.0005  # fraction of the image
    dilate_radius: float = 0.0
    fill_holes: bool = True
    match_brightness: bool = True
    adaptive_level: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MaskResult:
    """A mask and what it was made from."""

    mask: np.ndarray  # (H, W) uint8, 0 or 255
    blur_ratio: float
    components: list[Component] = field(default_factory=list)
    noise_sigma: float = 0.0  # of the B - S difference, in [0, 1] display units
    threshold: float = 0.0  # the high threshold applied to the smoothed difference


def noise_sigma(channel: np.ndarray) -> float:
    """Noise standard deviation of a 2-D image (Immerkaer, 1996), robust to structure."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(channel.astype(np.float32), cv2.CV_32F, kernel)[1:-1, 1:-1]
    return float(math.sqrt(math.pi / 2) * np.abs(response).mean() / 6)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def generate_mask(blur: np.ndarray, sharp: np.ndarray, *, params: MaskParams = MaskParams()) -> MaskResult:
    """The blur mask of an aligned pair.

    Parameters
    ----------
    blur, sharp
        ``(H, W, 3)`` aligned images, display-encoded (sRGB), uint8/uint16 or float in [0, 1].
    params
        See :class:`MaskParams`.

    Returns
    -------
    MaskResult
        ``mask`` is ``(H, W)`` uint8 with 0 (static) and 255 (blurred).

    Raises
    ------
    ImageFormatError
        The two images differ in size.
    """
    if blur.shape[:2] != sharp.shape[:2]:
        raise ImageFormatError(
            f"B is {blur.shape[1]}x{blur.shape[0]} but S is {sharp.shape[1]}x{sharp.shape[0]}: align the pair first"
        )
    b = to_float(ensure_rgb(blur))
    s = to_float(ensure_rgb(sharp))
    h, w = b.shape[:2]
    if params.match_brightness:
        try:
            gains = fit_color(srgb_to_linear(s), srgb_to_linear(b), mode="gain", denoise_sigma=0)
            s = linear_to_srgb(gains.apply(srgb_to_linear(s)))
        except ColorFitError:
            pass  # nearly black or saturated everywhere: compare as is
    sigma = math.sqrt(sum(noise_sigma(b[..., c]) ** 2 + noise_sigma(s[..., c]) ** 2 for c in range(3)) / 3)
    # Gaussian smoothing divides white noise by 2 sqrt(pi) sigma.
    level = max(sigma / (2 * math.sqrt(math.pi) * params.smooth_sigma), 1e-4)
    smooth_b = cv2.GaussianBlur(b, (0, 0), params.smooth_sigma)
    smooth_s = cv2.GaussianBlur(s, (0, 0), params.smooth_sigma)
    tol = params.shift_tolerance
    pad = cv2.copyMakeBorder(smooth_s, tol, tol, tol, tol, cv2.BORDER_REPLICATE)
    difference = None
    for dy in range(-tol, tol + 1):
        for dx in range(-tol, tol + 1):
            shifted = pad[tol + dy : tol + dy + h, tol + dx : tol + dx + w]
            d = np.abs(smooth_b - shifted).max(axis=2)
            difference = d if difference is None else np.minimum(difference, d)
    assert difference is not None
    if params.adaptive_level:
        # Up to twice the white-noise level is quantisation and fine texture; beyond that
        # the static background itself disagrees, and the thresholds must follow it.
        level = max(level, float(np.percentile(difference, 25)) / NOISE_ONLY_P25 / RESIDUAL_ALLOWANCE)

    strong = difference > params.high_sigmas * level
    weak = difference > params.low_sigmas * level
    labels, count = ndimage.label(weak)
    seeds = np.unique(labels[strong])
    mask = np.isin(labels, seeds[seeds > 0])
    short = min(h, w)
    radius = max(1, round(params.close_radius * short))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, _disk(radius)) > 0
    if params.fill_holes:
        mask = ndimage.binary_fill_holes(mask)
    labels, count = ndimage.label(mask)
    if count:
        areas = ndimage.sum(mask, labels, np.arange(1, count + 1))
        small = np.flatnonzero(areas < params.min_area * h * w) + 1
        mask[np.isin(labels, small)] = False
    if params.dilate_radius > 0:
        mask = cv2.dilate(mask.astype(np.uint8), _disk(max(1, round(params.dilate_radius * short)))) > 0
    out = np.where(mask, 255, 0).astype(np.uint8)
    return MaskResult(out, float(mask.mean()), mask_components(out), sigma, params.high_sigmas * level)
