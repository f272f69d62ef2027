"""Colour correction and brightness alignment between the two cameras, in linear light.

Fits ``target ~ M @ source (+ t)`` robustly (iteratively reweighted least squares with
Huber weights, scale from the median absolute deviation) on static, unsaturated pixels:
moving objects and clipped highlights break any linear model and must not steer it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import cv2
import numpy as np

from reloblur.errors import ReloblurError
from reloblur.imaging.clipping import channel_max, channel_min
from reloblur.robust import PixelNoise, huber_weights, mad_sigma

FitMode = Literal["matrix", "affine", "gain", "scalar", "colourful"]
MODES: tuple[str, ...] = get_args(FitMode)
# What align accepts: a fitted model, or the calibration's matrix with a fitted gain.
ColorMode = Literal["matrix", "affine", "gain", "scalar", "colourful", "calibrated"]
COLOR_MODES: tuple[str, ...] = get_args(ColorMode)
SATURATION = 0.98
# The fits whose colour directions S's noise can pull: a 3x3 matrix, with or without offset.
MATRIX_MODES = ("matrix", "affine", "colourful")
# The fewest usable pixels a colour model is fitted on.
MIN_COLOR_SAMPLES = 100
# The ridge towards the per-channel gains, in units of S's noise energy: a colour direction
# is taken from the data once its signal outweighs twice the noise. Beyond the noise, a
# grey scene's colour directions hold the few blend pixels at a moving object's edge that
# the motion mask missed; on the simulator's pairs the map's error on the 24 ColorChecker
# colours was 0.125 at 1x, 0.077 at 2x, 0.069 at 4x (0.083, 0.067, 0.068 with varied
# scenes), the residual on static pixels the same at all three.
GAINS_PRIOR_WEIGHT = 2.0
# A pixel carries a colour direction when its colour stands this many robust sigmas of the
# fit's residual away from the frame's dominant colour (3: a pixel of that colour crosses
# it by noise in about one case of a hundred, over the three channels).
COLOURFUL_SIGMAS = 3.0
# The ridge towards the gains left where nothing measures a colour direction, relative to
# the mean energy per channel: it only settles directions the data leave undetermined.
NULL_DIRECTION_PRIOR = 1e-6


class ColorFitError(ReloblurError):
    """Too few usable pixels to fit a colour model."""


@dataclass(frozen=True)
class ColorFit:
    """A fitted colour model: ``apply(s) = s @ matrix.T + offset``.

    ``gain`` is the brightness ratio target/source for grey (the mean row sum of
    ``matrix``): what exposure and gain differences amount to.
    """

    matrix: np.ndarray
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    mode: str = "matrix"
    residual_rms: float = 0.0
    samples: int = 0
    inlier_fraction: float = 1.0
    # Fitted on pixels where a camera's output clipped before its matrix was undone, as too
    # few others were left: their values are bounds, and the fit is uncertain.
    on_clipped: bool = False
    # The samples a matrix's colour directions rest on: every one, or for a colourful fit
    # those whose colour stood out of the frame's dominant one.
    colour_samples: int = 0

    @property
    def gain(self) -> float:
        """Mean row sum of the matrix: the overall brightness ratio."""
        return float(self.matrix.sum(axis=1).mean())

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Correct an ``(H, W, 3)`` linear image; float32."""
        affine = np.hstack([self.matrix, self.offset[:, None]]).astype(np.float32)
        return cv2.transform(np.ascontiguousarray(image, np.float32), affine)


def usable_pixels(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Boolean ``(...)``: in ``mask`` (if given), unsaturated and not black in both images."""
    ok = (channel_max(source) < SATURATION) & (channel_max(target) < SATURATION)
    ok &= (channel_min(source) > 1e-4) | (channel_min(target) > 1e-4)
    if mask is not None:
        ok &= mask
    return ok


def check_color_mode(mode: str) -> ColorMode:
    """``mode`` as a :data:`ColorMode`, or :class:`ColorFitError` naming the choices."""
    if mode not in COLOR_MODES:
        raise ColorFitError(f"unknown colour mode {mode!r}; choose from {', '.join(COLOR_MODES)}")
    return mode  # type: ignore[return-value]


def fit_color(source: np.ndarray, target: np.ndarray, *, mask: np.ndarray | None = None,
              mode: str = "matrix", max_samples: int = 30_000, iterations: int = 6,
              seed: int = 0, denoise_sigma: float = 1.5, source_noise: PixelNoise | None = None,
              clipped: np.ndarray | None = None) -> ColorFit:
    """Fit the colour model that maps ``source`` onto ``target``.

    Parameters
    ----------
    source, target
        ``(H, W, 3)`` linear RGB on the same pixel grid (S warped onto B, and B).
    mask
        ``(H, W)`` bool, pixels allowed in the fit (static and valid); saturated pixels
        are removed in addition.
    mode
        ``matrix`` (3x3), ``affine`` (3x3 + offset), ``gain`` (per-channel gains, for
        scenes too weak in colour to constrain a matrix), ``scalar`` (one gain), or
        ``colourful``: a 3x3 matrix whose colour directions rest on the samples whose
        colour stands out of the frame's dominant one (:class:`_DominantColour`), truer to
        a few coloured objects on a mostly grey frame, where a ``matrix`` fit follows the
        grey majority (see ``docs/alignment.md``, step 3, for what each costs).
    max_samples
        Pixels drawn (deterministically, by ``seed``) to keep the fit fast.
    denoise_sigma
        Pixels, a Gaussian applied to both images before the fit (0: none). Least squares
        with a noisy regressor shrinks the fit towards zero (regression dilution): with S
        four times noisier than B, dark colours came out 30 % off. A colour map is linear,
        so smoothing both sides leaves it unchanged while dividing the noise variance by
        about ``4 pi sigma^2``; pixels whose footprint holds a saturated one are left out.
    source_noise
        ``source``'s pixel noise, fitted before any resampling (e.g.
        :func:`reloblur.robust.fit_pixel_noise` of the camera's image at the same scale).
        With it, ``matrix`` and ``affine`` fits shrink towards the per-channel gains, not
        towards zero, along colour directions the scene does not vary in beyond that
        noise. ``None``: the source is taken as noiseless (plain robust least squares).

    Raises
    ------
    ColorFitError
        Fewer than :data:`MIN_COLOR_SAMPLES` usable pixels, an unknown mode, or ``clipped``
        not of the images' height and width.
    """
    if mode not in MODES:
        raise ColorFitError(f"unknown colour mode {mode!r}; choose from {', '.join(MODES)}")
    if not (np.isfinite(denoise_sigma) and denoise_sigma >= 0):
        raise ColorFitError(f"denoise_sigma = {denoise_sigma!r}: must be a finite number >= 0")
    if clipped is not None and np.shape(clipped) != source.shape[:2]:
        raise ColorFitError(f"clipped flags are {np.shape(clipped)}, the images {source.shape[:2]}")
    if denoise_sigma > 0:
        source, target, mask = _denoised(source, target, mask, denoise_sigma, clipped)
    elif clipped is not None:
        mask = ~np.asarray(clipped, bool) if mask is None else np.asarray(mask, bool) & ~np.asarray(clipped, bool)
    candidates = np.flatnonzero(mask) if mask is not None else np.arange(source.shape[0] * source.shape[1])
    if candidates.size > max_samples:
        candidates = np.sort(np.random.default_rng(seed).choice(candidates, max_samples, replace=False))
    s = source.reshape(-1, 3)[candidates].astype(np.float64)
    t = target.reshape(-1, 3)[candidates].astype(np.float64)
    keep = usable_pixels(s, t, None)
    s, t = s[keep], t[keep]
    if len(s) < MIN_COLOR_SAMPLES:
        raise ColorFitError(f"only {len(s)} usable static pixels for the colour fit (need {MIN_COLOR_SAMPLES})")
    noise_variance = None
    if source_noise is not None:
        noise_variance = source_noise.variance(s) * (_smoothed_variance_factor(denoise_sigma) if denoise_sigma else 1.0)
    # A colourful fit's first pass fits every sample as measured; the later ones put the
    # samples whose colour does not stand out of that fit's residual on the dominant colour.
    colourful, s_fit, unexplained = np.ones(len(s), bool), s, None
    dominant = _DominantColour(s, t) if mode == "colourful" else None
    weights = np.ones(len(s))
    matrix, offset = np.eye(3), np.zeros(3)
    for iteration in range(iterations):
        if mode in MATRIX_MODES:
            if dominant is not None and iteration:
                unexplained = t - (s @ matrix.T + offset)
                colourful, s_fit = dominant.split(s, unexplained)
            design = np.hstack([s_fit, np.ones((len(s), 1))]) if mode == "affine" else s_fit
            wd = design * weights[:, None]
            normal, right = wd.T @ design, wd.T @ t
            if noise_variance is not None or dominant is not None:
                normal, right = _towards_gains(normal, right, s, t, weights, noise_variance, colourful,
                                               None if dominant is None else dominant.axis_s, unexplained)
            solution = np.linalg.lstsq(normal, right, rcond=None)[0]
            matrix = solution[:3].T
            offset = solution[3] if mode == "affine" else np.zeros(3)
        elif mode == "gain":
            gains = weights @ (s * t) / np.maximum(weights @ (s * s), 1e-12)
            matrix = np.diag(gains)
        else:
            g = float((weights[:, None] * s * t).sum() / max((weights[:, None] * s * s).sum(), 1e-12))
            matrix = g * np.eye(3)
        residual = t - (s @ matrix.T + offset)
        weights = huber_weights(_row_norms(residual))
    residual = t - (s @ matrix.T + offset)
    norms = _row_norms(residual)
    inliers = norms <= 3 * mad_sigma(norms, center=0.0) + 1e-9
    return ColorFit(
        matrix=matrix,
        offset=offset,
        mode=mode,
        residual_rms=float(np.sqrt((residual[inliers] ** 2).mean())),
        samples=int(len(s)),
        inlier_fraction=float(inliers.mean()),
        colour_samples=int(colourful.sum()) if mode in MATRIX_MODES else 0,
    )


class _DominantColour:
    """The frame's dominant colour, and which samples' colour stands out of it.

    Most of a frame is often one colour (grey walls, a road, sky), and its pixels say how
    that colour maps and little about any other: their colour variation is mostly noise.
    The noise correction of :func:`_towards_gains` takes S's noise out only as far as the
    pixel noise model knows it, and a camera's processing leaves noise that model cannot
    know: JPEG coding discards the fine detail of the noise, where the model measures it,
    and keeps its coarse part, so the smoothed images hold two to four times the noise the
    model predicts (the second generator's JPEG row, against its true colour relation).
    Over half a million such pixels, what is left outweighs the few hundred pixels of a
    static coloured object, and the fit desaturated the map (ColorChecker error 0.135 at the
    median against 0.048 without the coding). With S put on its dominant colour, those
    pixels say how that colour maps and add nothing to the other directions, which rest on
    the pixels whose colour stands out. B stays as measured: noise in the fitted values
    biases nothing, and where a pixel's colour is not quite the dominant one, B holds what
    that colour maps to on average.

    A pixel stands out when B's colour across the dominant one (the part of it off the
    axis of B's median chromaticity) exceeds :data:`COLOURFUL_SIGMAS` robust sigmas of the
    residual's part across that axis: both cameras' noise at the fit's scale, whatever made
    it, and what the fit has yet to explain. B's colour, not S's: S is the regressor, and
    choosing samples by its noise would bias the fit; B is the less noisy of the two.
    """

    def __init__(self, s: np.ndarray, t: np.ndarray) -> None:
        self.axis_s, self.axis_t = (_median_colour(image) for image in (s, t))
        self.s_on_axis = (s @ self.axis_s)[:, None] * self.axis_s
        across = self._across(t)
        self.t_off_axis = np.maximum(np.maximum(np.abs(across[:, 0]), np.abs(across[:, 1])), np.abs(across[:, 2]))

    def _across(self, rows: np.ndarray) -> np.ndarray:
        return rows - (rows @ self.axis_t)[:, None] * self.axis_t

    def split(self, s: np.ndarray, residual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(colourful, s_fit)``: which samples stand out of the residual ``(N, 3)`` (B less S
        through the fit so far), and ``s`` with every other sample on the dominant colour."""
        across = self._across(residual)
        spread = max(mad_sigma(np.ascontiguousarray(across[:, c])) for c in range(3))
        colourful = self.t_off_axis > COLOURFUL_SIGMAS * spread
        return colourful, np.where(colourful[:, None], s, self.s_on_axis)


def _median_colour(rows: np.ndarray) -> np.ndarray:
    """The unit vector of the per-channel median chromaticity of ``(N, 3)`` rows."""
    total = np.maximum(rows[:, 0] + rows[:, 1] + rows[:, 2], 1e-6)
    median = np.array([np.median(rows[:, c] / total) for c in range(3)])
    return median / max(float(np.linalg.norm(median)), 1e-12)


def _towards_gains(normal: np.ndarray, right: np.ndarray, s: np.ndarray, t: np.ndarray, weights: np.ndarray,
                   noise_variance: np.ndarray | None, colourful: np.ndarray, axis: np.ndarray | None,
                   residual: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The normal equations of the matrix fit, corrected for S's noise and with a prior at
    the per-channel gains (the cameras' white balance). ``s``, ``t``: the samples as
    measured; ``noise_variance``: ``(N, 3)``, each sample's, as smoothed (``None``:
    noiseless). For a colourful fit, the samples not ``colourful`` were put on S's
    dominant colour, ``axis`` (:class:`_DominantColour`), and ``residual`` is ``(N, 3)``,
    B less S through the fit so far (``None`` in its first pass); for a matrix fit, every
    sample is colourful and ``axis`` and ``residual`` are ``None``.

    S's noise adds its energy ``N`` to the normal matrix, which pulls the map towards zero
    along each colour direction by signal / (signal + noise) (regression dilution): on a
    grey scene, whose only colour variation is noise, the fit desaturates every colour the
    scene lacks. Here ``N`` (a sample put on the dominant colour keeps its noise along
    ``axis`` only) is taken out of the normal matrix (what is left is kept positive
    semi-definite, so an overestimated noise cannot turn into a negative signal), and a
    ridge towards the gains is put in of weight ``GAINS_PRIOR_WEIGHT * U``, ``U`` the
    colourful samples' noise energy or, in a colourful fit where larger, the energy of
    their residual: a colour direction with signal ``E`` follows the data by
    ``E / (E + 2 U)`` and the gains by the rest. What the map leaves unexplained on those
    samples (noise the model does not know, a vignetting difference, a blend pixel at a
    moving edge) makes the direction as uncertain as noise would: on the simulator's grey
    scenes, whose few thousand pixels that stand out carry more misfit than colour, the
    colourful map came out up to 0.52 off on the ColorChecker colours without it (0.11
    with it).
    """
    # Weighted column sums as products with the weights: numpy reduces (N, 3) columns
    # several times slower, and this runs in every iteration of every fit.
    energy = weights @ (s * s)
    normal, right = normal.copy(), right.copy()
    signal = normal[:3, :3]
    colourful_weights = weights if axis is None else weights * colourful
    uncertain = np.zeros(3)
    if noise_variance is not None:
        noise_energy = weights @ noise_variance
        energy = np.maximum(energy - noise_energy, 0.5 * energy)
        uncertain = noise_energy if axis is None else colourful_weights @ noise_variance
        noise = np.diag(uncertain)
        if axis is not None:
            noise += float((weights - colourful_weights) @ (noise_variance @ (axis * axis))) * np.outer(axis, axis)
        values, vectors = np.linalg.eigh(signal - noise)
        signal = (vectors * np.maximum(values, 0.0)) @ vectors.T
    if residual is not None:
        uncertain = np.maximum(uncertain, colourful_weights @ (residual * residual))
    gains = weights @ (s * t) / np.maximum(energy, 1e-12)
    prior = GAINS_PRIOR_WEIGHT * uncertain
    if axis is not None:
        prior = prior + NULL_DIRECTION_PRIOR * float(np.trace(normal[:3, :3])) / 3
    normal[:3, :3] = signal + np.diag(prior)
    right[:3] += np.diag(prior * gains)
    return normal, right


def _smoothed_variance_factor(sigma: float) -> float:
    """Variance of white noise after a Gaussian of ``sigma`` px, relative to before: the sum
    of the squared 2-D kernel weights."""
    kernel = cv2.getGaussianKernel(2 * int(np.ceil(3 * sigma)) + 1, sigma, cv2.CV_64F).ravel()
    return float((kernel * kernel).sum() ** 2)


def _row_norms(rows: np.ndarray) -> np.ndarray:
    """``(N,)`` Euclidean norms of ``(N, 3)`` rows: ``np.linalg.norm(rows, axis=1)``'s values,
    summed column by column (numpy reduces a length-3 row several times slower)."""
    return np.sqrt(rows[:, 0] * rows[:, 0] + rows[:, 1] * rows[:, 1] + rows[:, 2] * rows[:, 2])


def _denoised(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None, sigma: float,
              clipped: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both images smoothed, and the mask less every pixel whose footprint reaches a
    saturated or ``clipped`` pixel (smoothing would carry the clipped value into it)."""
    reach = int(np.ceil(2 * sigma))
    saturated = (channel_max(source) >= SATURATION) | (channel_max(target) >= SATURATION)
    if clipped is not None:
        saturated |= np.asarray(clipped, bool)
    kernel = np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)
    near = cv2.dilate(saturated.astype(np.uint8), kernel) > 0 if saturated.any() else saturated
    allowed = ~near if mask is None else np.asarray(mask, bool) & ~near

    def smooth(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(np.ascontiguousarray(image, np.float32), (0, 0), sigma)

    return smooth(source), smooth(target), allowed


# The span of levels (brightest over darkest, the static cells' medians) below which
# level_dependence says nothing: a frame of one level, or one clipped almost whole.
MIN_LEVEL_SPAN = 1.5


@dataclass(frozen=True)
class LevelDependence:
    """How the brightness ratio of two linear images changes with level.

    ``exponent`` is ``g`` of ``S ~ k(x, y) * B**(1 + g)`` over the static pixels (``k``
    free per tile: vignetting or a gain field is not a change with level): 0 for two
    linear cameras, -0.4 for a gamma of 0.6 on S's camera, -0.35 to -0.55 for an sRGB
    image read as linear (the sRGB curve is no power law: its slope in log-log is 0.65 at
    a hundredth of full scale, 0.45 at a half). ``nan`` where the pixels do not span
    levels enough to say.
    """

    exponent: float
    standard_error: float
    # B's level in the brightest cells over the darkest's: the span the fit saw
    level_span: float
    cells: int

    def ratio_change(self) -> float:
        """The factor by which the ratio S/B changes over ``level_span`` (1.0: none)."""
        if math.isnan(self.exponent):
            return 1.0
        if math.isinf(self.exponent):
            return 1e300 if self.exponent > 0 else 1e-300
        # Kept within floats' range: a caller takes its logarithm.
        return math.exp(min(max(self.exponent * math.log(self.level_span), -690.0), 690.0))


def level_dependence(source: np.ndarray, target: np.ndarray, *, mask: np.ndarray | None = None,
                     tiles: int = 8, bins: int = 6, smooth_sigma: float = 2.0,
                     min_cell_pixels: int = 25) -> LevelDependence:
    """Whether ``source`` (S, on B's grid) follows ``target`` (B) at every level.

    Two linear sensors relate by a colour matrix at every level, so on static pixels the
    ratio of their brightness is the same in the shadows as in the highlights. A ratio
    that changes with level is a transfer mismatch no matrix can absorb: gamma switched on
    in one camera, a black level left in one image, or a file decoded with the wrong
    transfer (a 16-bit image without an sRGB chunk is read as linear). Each tile of a
    ``tiles`` x ``tiles`` grid gets its own ratio (vignetting and lens falloff differ
    between cameras and would otherwise pass for a level dependence where a scene is
    brighter in its middle); within each tile, the median log ratio of each of ``bins``
    level classes is regressed on its median log level. The classes are quantiles of the
    two images' geometric mean level, so that neither image's noise selects them; for
    ``S = k B**(1 + g)`` the slope on it is ``g / (1 + g / 2)``, which gives ``g``.

    Parameters
    ----------
    source, target
        ``(H, W, 3)`` or ``(H, W)`` linear images on one grid.
    mask
        ``(H, W)`` bool: static, unclipped pixels to measure on (default: all).
    smooth_sigma
        Pixels, a Gaussian applied to both first: the ratio of noisy values is biased at
        low levels; smoothing divides the noise variance by about ``4 pi sigma^2``.

    Returns
    -------
    LevelDependence
        ``exponent`` nan (and ``cells`` what there was) where fewer than six cells in
        tiles of at least two levels were measured.
    """
    if source.shape != target.shape:
        raise ColorFitError(f"S is {source.shape} and B {target.shape}: not one grid")

    def brightness(image: np.ndarray) -> np.ndarray:
        # The channels' sum first: smoothing is linear, and one plane is a third of the work.
        total = np.asarray(image, np.float32)
        if total.ndim == 3:
            total = np.add.reduce([total[..., c] for c in range(total.shape[2])], dtype=np.float32)
        return cv2.GaussianBlur(total, (0, 0), smooth_sigma) if smooth_sigma else total

    s_level, b_level = brightness(source), brightness(target)
    height, width = b_level.shape
    channels = 1 if target.ndim == 2 else target.shape[2]
    # Neighbours within the smoothing share their noise; every second row and column is as
    # informative and a quarter of the work.
    usable = (s_level > 1e-3 * channels) & (b_level > 1e-3 * channels)
    if mask is not None:
        usable &= mask
    usable[1::2, :] = False
    usable[:, 1::2] = False
    rows, cols = np.nonzero(usable)
    if rows.size < min_cell_pixels * 6:
        return LevelDependence(math.nan, math.nan, 1.0, 0)
    log_s, log_b = np.log(s_level[rows, cols]), np.log(b_level[rows, cols])
    log_level, log_ratio = 0.5 * (log_s + log_b), log_s - log_b
    edges = np.quantile(log_level, np.linspace(0, 1, bins + 1)[1:-1])
    tile = (rows * tiles // height) * tiles + cols * tiles // width
    cell = tile * bins + np.searchsorted(edges, log_level, side="right")

    def cell_medians(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each cell's label, pixel count and median of ``values``, from one sort."""
        # One float sort on the cell plus the value scaled into [0, 0.5): lexsort is slower.
        low, high = float(values.min()), float(values.max())
        order = np.argsort(cell + 0.5 * (values - low) / (high - low + 1e-12))
        ordered_cells, ordered = cell[order], values[order]
        starts = np.flatnonzero(np.r_[True, ordered_cells[1:] != ordered_cells[:-1]])
        counts = np.diff(np.r_[starts, ordered_cells.size])
        middle = 0.5 * (ordered[starts + (counts - 1) // 2] + ordered[starts + counts // 2])
        return ordered_cells[starts], counts, middle

    labels, counts, level_medians = cell_medians(log_level)
    _, _, ratio_medians = cell_medians(log_ratio)
    full = counts >= min_cell_pixels
    kept = list(zip((labels[full] // bins).tolist(), level_medians[full].tolist(), ratio_medians[full].tolist()))
    by_tile: dict[int, list[tuple[float, float]]] = {}
    for tile_index, cell_level, cell_ratio in kept:
        by_tile.setdefault(tile_index, []).append((cell_level, cell_ratio))
    # Each tile's own mean taken out: its gain is free, only the change within it counts.
    centred = [np.array(members) - np.mean(members, axis=0) for members in by_tile.values() if len(members) >= 2]
    count = sum(len(c) for c in centred)
    if count < 6:
        return LevelDependence(math.nan, math.nan, 1.0, count)
    x, y = np.concatenate(centred).T
    groups = len(centred)
    levels = np.array([k[1] for k in kept])
    log_span = float(levels.max() - levels.min())
    if log_span < math.log(MIN_LEVEL_SPAN):
        return LevelDependence(math.nan, math.nan, 1.0, count)
    spread = float(x @ x)
    if spread < 1e-12:  # every tile's cells at one level
        return LevelDependence(math.nan, math.nan, 1.0, count)
    slope = float(x @ y) / spread
    residual = y - slope * x
    slope_error = math.sqrt(float(residual @ residual) / max(count - groups - 1, 1) / spread)
    if slope >= 2.0:  # no power law of B gives it: S rises much faster than B
        return LevelDependence(math.inf, slope_error, math.exp(log_span), count)
    exponent = slope / (1 - slope / 2)
    # d exponent / d slope, for the error; B's span is the geometric mean's over (1 + g / 2)
    return LevelDependence(exponent, slope_error / (1 - slope / 2) ** 2,
                           math.exp(min(log_span / (1 + exponent / 2), 700.0)), count)
