"""Clipped values as bounds: what the mask step may conclude where a camera clipped.

A pixel at the top (or bottom) of an image's range is a bound, not a value: its true level
is at least (at most) what was recorded, and the cameras clip at different radiances. Here
are the flags of one image and how they bear on smoothed values (:class:`Clipping`), the
bounds of the true level they leave (:func:`value_bounds`), how far a colour correction
applied after the clip moved the other channels (:func:`crosstalk_bound`,
:func:`unmeasured_excess`, :func:`clipped_output_mixing`), and the bias black clipping
leaves in a dark footprint's mean (:func:`black_clip_factor`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist

import cv2
import numpy as np

from reloblur.errors import ImageFormatError
from reloblur.imaging.clipping import clipped_planes, decode_clip_flags
from reloblur.lbfmg.encoding import decode, encode, encoding_slope
from reloblur.lbfmg.kernels import at_pixels, footprint_reach
from reloblur.lbfmg.params import Transfer
from reloblur.robust import (
    MEDIAN_STANDARD_ERROR,
    evenly_spaced,
    mad_along_last,
    median_along_last,
    median_of_sorted,
    stable_argsort,
)


@dataclass
class Clipping:
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
    # (C, H, W) bool, where the true level may lie any way from the smoothed one though
    # the channel did not clip: an excess or deficit no camera measured, mixed in by the
    # colour correction (:func:`unmeasured_excess`); None: nowhere
    unbounded: np.ndarray | None = None
    _any: np.ndarray | None = field(default=None, repr=False)
    _at_all: bool | None = field(default=None, repr=False)

    def clipped_at_all(self) -> bool:
        """Whether any pixel is clipped either way, or partly black (cached)."""
        if self._at_all is None:
            self._at_all = bool(self.high.any() or self.low.any()
                                or (self.black_bias is not None and self.black_bias.any()))
        return self._at_all

    def window(self, rows: slice, cols: slice) -> Clipping:
        """The flags cut to a window."""
        bias = None if self.black_bias is None else self.black_bias[:, rows, cols]
        mixed = None if self.mixed_share is None else self.mixed_share[:, rows, cols]
        unbounded = None if self.unbounded is None else self.unbounded[:, rows, cols]
        return Clipping(self.high[:, rows, cols], self.low[:, rows, cols], bias, mixed, unbounded)

    def measured_where(self, measured: np.ndarray, mixed_share: np.ndarray | None) -> Clipping:
        """Widened flags with no white bound where ``measured`` (``(C, H, W)`` bool) says
        the smoothing left the clipped pixels out (:func:`smooth_pair`), and the crosstalk
        prior's share (:func:`measured_beside_white`)."""
        high = self.high & ~measured if self.high.any() else self.high
        return Clipping(high, self.low, self.black_bias, mixed_share)

    def opened(self, unbounded: np.ndarray) -> Clipping:
        """The flags with the bounds open both ways where :func:`unmeasured_excess` says."""
        return Clipping(self.high, self.low, self.black_bias, self.mixed_share, unbounded)

    def widened(self, reach: int, sigma_px: float | None = None) -> Clipping:
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

        def any_near(flags: np.ndarray) -> np.ndarray:
            if not flags.any():
                return flags
            return _per_channel(flags, lambda f: cv2.dilate(f.astype(np.uint8), kernel) > 0, bool)

        bias = None
        if sigma_px is not None and self.low.any():
            bias = black_clip_factor(_per_channel(
                self.low, lambda f: cv2.GaussianBlur(f.astype(np.float32), (0, 0), sigma_px), np.float32))
        return Clipping(any_near(self.high), mostly_flagged(self.low, reach), bias)

    def any(self) -> np.ndarray:
        """``(H, W)`` bool: clipped in any channel, either way."""
        if self._any is None:
            self._any = (self.high | self.low).any(axis=0)
        return self._any


def mostly_flagged(flags: np.ndarray, reach: int) -> np.ndarray:
    """``(C, H, W)`` bool: where most of the box of ``reach`` px around a pixel is flagged,
    per channel of ``flags`` (``(C, H, W)`` bool)."""
    if not flags.any():
        return flags
    size = 2 * reach + 1
    # Most of an odd box: at least half its pixels and one more, counted in integers (the
    # same pixels as a float box filter's mean >= 0.5, at a fraction of the cost).
    most = (size * size + 1) // 2

    def mostly(f: np.ndarray) -> np.ndarray:
        # Sums of 0s and 1s are exact in float32 up to 2**24 pixels a box.
        counts = cv2.boxFilter(np.ascontiguousarray(f).view(np.uint8), cv2.CV_32F, (size, size),
                               normalize=False, borderType=cv2.BORDER_REFLECT_101)
        return counts >= most

    return _per_channel(flags, mostly, bool)


def _per_channel(flags: np.ndarray, spread: Callable[[np.ndarray], np.ndarray], dtype: type) -> np.ndarray:
    """``(C, H, W)`` of ``dtype``: ``spread`` of each channel of ``flags`` (``(C, H, W)``
    bool), zero for a channel with no flags (left out: often two of three)."""
    out: np.ndarray = np.zeros(flags.shape, dtype)
    for c, f in enumerate(flags):
        if f.any():
            out[c] = spread(f)
    return out


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
    whole prior holds, as it does under the prior alone (:func:`measured_beside_white`):
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
        gap.flat[at] = np.maximum(decode(theirs.take(at), transfer) - decode(own.take(at), transfer), 0.0)
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
            down = encode(decode(image[c], transfer) - sum(mixed), transfer)
            bound[c] = cv2.GaussianBlur(np.maximum(image[c] - down, 0.0), (0, 0), sigma_px)
        if prior is not None:
            bound[c] += CLIP_CROSSTALK * level * prior[c]
    if rim is not None:
        near = Clipping(unknown, np.zeros_like(unknown)).widened(footprint_reach(sigma_px)).high
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
                      ) -> np.ndarray | None:
    """Where ``align``'s colour correction of S mixed an excess that neither camera measured
    into S's other channels, which leaves each of them open both ways.

    Where both cameras clipped channel ``j`` white, S's true ``j`` exceeds what it recorded
    by some ``e_j >= 0`` that nothing bounds from above. B's channel ``c`` holds
    ``T[c, j]`` of it, ``T`` the true map from S's colours onto B's, and S's corrected
    ``c`` none: they differ by ``T[c, j] e_j``, unboundedly. ``align``'s matrix ``M`` only
    estimates ``T``, and its off-diagonal terms, a few hundredths, are no surer than that:
    on a pair of the second benchmark generator whose true ``T`` is known, ``M`` erred by
    up to 0.08 and took blue's share of green as -0.029 where the truth was +0.041 (a
    static object whose green both cameras blew out then read 11 codes bluer in B). So
    the sign of ``M[c, j]`` is not taken: every other channel is open above and below.
    A smoothed value carries it where most of its footprint (the box of ``reach`` px
    around it, as black clipping's rule has it) is on such pixels.

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
    numpy.ndarray or None
        ``(C, H, W)`` bool: where the truth of S's smoothed channel may lie any way from
        the value recorded; None where no channel clipped in both images, or the images
        have one channel.

    Examples
    --------
    >>> both = np.zeros((3, 24, 24), bool); both[2, 4:20, 4:20] = True  # blue blown in both
    >>> m = np.array([[0.9, 0.02, 0.07], [0.0, 1.0, -0.03], [0.0, 0.0, 1.0]])
    >>> opened = unmeasured_excess(both, both, m, reach=4)
    >>> bool(opened[0, 12, 12]), bool(opened[1, 12, 12])  # whatever the signs of m[:2, 2]
    (True, True)
    >>> bool(opened[2, 12, 12]), bool(opened[0, 1, 1])  # blue itself; far from the square
    (False, False)
    """
    channels = s_high.shape[0]
    if channels == 1 or np.shape(matrix) != (channels, channels):
        return None
    both = b_high & s_high
    if not both.any():
        return None
    return _opened_by_mixing(both, np.asarray(matrix), reach)


# A channel clipped black where another channel of the pixel is at least this bright
# (linear light) was clipped at the output of a colour transformation, not at the sensor:
# colour filters' responses overlap by several percent, so behind such a pixel every
# sensor channel holds signal far above its noise, and only a matrix's negative
# coefficients can take one below zero.
OUTPUT_BLACK_BESIDE = 0.25


def unmeasured_deficit(b_low: np.ndarray, s_low: np.ndarray, b_level: np.ndarray, s_level: np.ndarray,
                       matrix: np.ndarray, *, reach: int, transfer: Transfer = "srgb"
                       ) -> np.ndarray | None:
    """Where ``align``'s colour correction of S mixed a deficit that neither camera measured
    into S's other channels: the black counterpart of :func:`unmeasured_excess`.

    A camera that transforms colour after its sensor records an out-of-gamut colour (a
    saturated red through a matrix with negative coefficients) with some output channel
    ``j`` below zero, clipped to black: S's true ``j`` lies below what it recorded by a
    deficit that nothing in the pair bounds, and the other channels differ from B's by
    the true map's share of it, whose sign ``align``'s estimate ``M`` does not settle
    (:func:`unmeasured_excess`): each is open both ways. Only where both images
    clipped ``j`` black beside a bright channel (:data:`OUTPUT_BLACK_BESIDE`) is that taken
    to be so: a sensor's own black clip hides a noise excursion at most.

    Parameters
    ----------
    b_low, s_low
        ``(C, H, W)`` bool, black-clipped channels of each image, per pixel.
    b_level, s_level
        ``(C, H, W)`` the images, coded by ``transfer``.
    matrix
        ``(C, C)`` the matrix S was corrected with (``out_c = sum_j M[c, j] in_j``).
    reach
        The smoothing footprint's reach, px.

    Returns
    -------
    numpy.ndarray or None
        ``(C, H, W)`` bool, as :func:`unmeasured_excess` gives it; None where no channel
        was so clipped.

    Examples
    --------
    >>> level = np.zeros((3, 24, 24)); level[0] = 0.9  # a saturated red, green and blue at black
    >>> low = level == 0
    >>> m = np.array([[0.9, 0.04, -0.05], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> opened = unmeasured_deficit(low, low, level, level, m, reach=4)
    >>> bool(opened[0, 12, 12]), bool(opened[1, 12, 12])  # red took green's; green itself
    (True, False)
    """
    channels = s_low.shape[0]
    if channels == 1 or np.shape(matrix) != (channels, channels):
        return None
    both = b_low & s_low
    at = np.flatnonzero(np.logical_or.reduce(both))
    if not at.size:
        return None
    # Only where a channel clipped in both: most such pixels are dark, and a frame has few.
    bright = np.ones(at.size, bool)
    for level in (b_level, s_level):
        bright &= decode(at_pixels(level, at), transfer).max(axis=0) > OUTPUT_BLACK_BESIDE
    beside = np.zeros(both.shape[1] * both.shape[2], bool)
    beside[at[bright]] = True
    both &= beside.reshape(both.shape[1:])[None]
    if not both.any():
        return None
    return _opened_by_mixing(both, np.asarray(matrix), reach)


def _opened_by_mixing(both: np.ndarray, matrix: np.ndarray, reach: int) -> np.ndarray:
    """``(C, H, W)`` bool: where the matrix mixed an unmeasured error of the channels
    ``both`` flags (``(C, H, W)`` bool) into S's other channels, over most of the smoothing
    footprint."""
    mostly = mostly_flagged(both, reach)
    opened = np.zeros(both.shape, bool)
    channels = both.shape[0]
    for c in range(channels):
        for j in range(channels):
            if j != c and matrix[c, j] != 0 and both[j].any():
                opened[c] |= mostly[j]
    return opened


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
class OutputRays:
    """Where each image's camera clipped its output before ``align`` undid its matrix: per
    image, ``(direction, where)`` pairs, ``direction`` ``(C,)`` in linear light (the true
    value is the recorded one plus a non-negative multiple of it), ``where`` ``(H, W)`` bool."""

    blur: list[tuple[np.ndarray, np.ndarray]]
    sharp: list[tuple[np.ndarray, np.ndarray]]

    def window(self, rows: slice, cols: slice) -> OutputRays:
        """The rays with their pixels cut to a window."""
        return OutputRays([(d, w[rows, cols]) for d, w in self.blur], [(d, w[rows, cols]) for d, w in self.sharp])


def output_rays(flags: dict[str, np.ndarray], mixing: tuple[np.ndarray | None, np.ndarray | None]
                ) -> OutputRays | None:
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
    return OutputRays(rays["b"], rays["s"]) if rays["b"] or rays["s"] else None


def along_rays(bs: np.ndarray, ss: np.ndarray, inverse: np.ndarray, rays: OutputRays, transfer: Transfer
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
            step = direction * encoding_slope(decode(values, transfer), transfer)
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


def value_bounds(smoothed: np.ndarray, clip: Clipping, crosstalk: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_clipped_bounds`, open both ways where an unmeasured excess leaves them open
    (:attr:`Clipping.unbounded`)."""
    lower, upper = _clipped_bounds(smoothed, clip, crosstalk)
    if clip.unbounded is not None:
        upper = np.where(clip.unbounded, np.float32(_UNBOUNDED), upper)
        lower = np.where(clip.unbounded, np.float32(-_UNBOUNDED), lower)
    return lower, upper


def _clipped_bounds(smoothed: np.ndarray, clip: Clipping, crosstalk: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds of the true level: a clipped-white pixel is only a lower bound,
    a clipped-black one only an upper bound.

    A colour correction after the clipping mixes channels with coefficients of both
    signs, so a clipped channel's excess moved the others, pixel by pixel, by up to
    :data:`CLIP_CROSSTALK` of the pixel's brightest channel (the prior). Smoothed as the
    image was, a channel's error is the prior times the share of the footprint's weight
    on pixels where another channel clipped white (:func:`_mixed_share`; the whole prior
    beside the channel's own clip, :func:`measured_beside_white`): a channel beside a
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
        # level is a copy of its own where black clipping biased it: lowered in place there.
        lower = np.subtract(level, mixed, out=None if level is smoothed else level)
        upper = np.add(smoothed, mixed, out=mixed)
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
    image, which :func:`smooth_pair` leaves out of each channel's average wherever the
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


def measured_beside_white(wide: Clipping, high: np.ndarray, white: np.ndarray, kept: np.ndarray,
                          sigma_px: float) -> tuple[Clipping, np.ndarray | None]:
    """``wide`` (an image's flags widened to the footprint) with no white bound where the
    smoothing measured the value (:meth:`Clipping.measured_where`), and the share of each
    smoothed channel the crosstalk prior applies to (:attr:`Clipping.mixed_share`).

    That share is :func:`_mixed_share` of the image's own white flags ``high``, and all of
    it where the smoothing left the channel's own clipped pixels out: the level kept
    there is what the noise left under the clip, biased low, on one side of an edge whose
    other side is not measured, and no model here holds that. The whole prior stands for
    it, as it did for every pixel near a clip before the share (without it, a static
    window S clipped was filled in as a mover: ``tests/postprocess/test_align.py``).
    ``white``: either image's flags, as :func:`smooth_pair` left them out; ``kept``: the
    footprint's weight on the rest, as it measured it (half of it or more: measured).
    Also returns that rim, ``(C, H, W)`` bool, or None where there is none."""
    measured = kept >= 0.5
    share = _mixed_share(high, white, sigma_px, kept=kept)
    rim = wide.high & measured
    if not rim.any():
        return wide.measured_where(measured, share), None
    share = np.maximum(np.zeros(rim.shape, np.float32) if share is None else share, rim)
    return wide.measured_where(measured, share), rim


def _measured_bounds(smoothed: np.ndarray, clip: Clipping, crosstalk: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`value_bounds` loosened by a measured ``crosstalk`` instead of the prior."""
    slack = CLIP_CROSSTALK * smoothed.max(axis=0, keepdims=True) if clip.low.any() else 0.0
    lower = np.where(clip.low, -_UNBOUNDED, _unbiased(smoothed, clip) - crosstalk)
    upper = np.where(clip.high, _UNBOUNDED, np.where(clip.low, smoothed + slack, smoothed + crosstalk))
    return lower, upper


def _unbiased(smoothed: np.ndarray, clip: Clipping) -> np.ndarray:
    """``smoothed`` less what black clipping of part of its footprint added (:func:`black_clip_factor`)."""
    if clip.black_bias is None:
        return smoothed
    bias = np.maximum(smoothed, 0.0)
    bias *= clip.black_bias
    return np.subtract(smoothed, bias, out=bias)


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
    # In place where the arithmetic allows (float64 as the table's grid is, then float32 as
    # its factors are): the shares of a frame's dark regions are millions of values.
    clipped = share[where]
    np.minimum(clipped, 0.5, out=clipped)
    position = np.subtract(clipped, _BLACK_SHARES[0])
    position *= (_BLACK_SHARES.size - 1) / 0.499
    lower = position.astype(np.intp)
    np.minimum(lower, _BLACK_SHARES.size - 2, out=lower)
    position -= lower
    weight = position.astype(np.float32)
    below = _BLACK_FACTORS.take(lower)
    below *= 1 - weight
    lower += 1
    above = _BLACK_FACTORS.take(lower)
    above *= weight
    below += above
    factor[where] = below
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


def unreliable(raw: Clipping, wide: Clipping) -> np.ndarray:
    """``(H, W)`` bool: pixels whose value is a bound rather than a measurement, for fits.

    Every white-clipped pixel; a black-clipped one only inside a mostly black footprint
    (``wide``). Where S is much noisier than B, a dark region's noise reaches zero on a
    scattered share of its pixels (flags that align once widened by its resampling kernel
    covered 70 % of such a frame): dropping those would leave the noise and gain fits only
    the bright pixels, and the dark ones judged by an extrapolation."""
    return np.asarray(raw.high.any(axis=0) | wide.low.any(axis=0), bool)


def pair_clipping(b: np.ndarray, s: np.ndarray, valid: np.ndarray, clipped: np.ndarray | None,
                  code: float) -> tuple[Clipping, Clipping, dict[str, np.ndarray] | None]:
    """Clipping found on the stored values of ``b`` and ``s`` (planar ``(C, H, W)``), joined
    with the clip map ``align`` handed on; and where the map says a camera's own output
    clipped before its matrix was undone (planar ``b_out_high``... of
    :func:`decode_clip_flags`), or None."""
    h, w = valid.shape
    # Planar and contiguous: numpy reduces a transposed (H, W, C) view over its channels
    # about ten times slower, and the flags are reduced and indexed many times.
    clip_b, clip_s = (Clipping(*clipped_planes(image, valid, code=code)) for image in (b, s))
    if clipped is None:
        return clip_b, clip_s, None
    if clipped.shape[:2] != (h, w):
        raise ImageFormatError(f"clip map is {clipped.shape[1]}x{clipped.shape[0]}, the images {w}x{h}")
    if clipped.ndim == 3 and clipped.shape[2] not in (1, b.shape[0]):
        raise ImageFormatError(f"clip map has {clipped.shape[2]} channels, the images {b.shape[0]}")
    # A per-pixel map (grey, as earlier versions of align wrote) holds for every channel.
    given = decode_clip_flags(clipped[None] if clipped.ndim == 2 else np.ascontiguousarray(clipped.transpose(2, 0, 1)))
    output = {key: flags for key, flags in given.items() if "_out_" in key} or None
    return (Clipping(clip_b.high | given["b_high"], clip_b.low | given["b_low"]),
            Clipping(clip_s.high | given["s_high"], clip_s.low | given["s_low"]), output)


def any_clipped(clip: Clipping, output: dict[str, np.ndarray] | None, image: str) -> np.ndarray:
    """``(H, W)`` bool: clipped in any channel, as stored or (before ``align`` undid its
    camera's matrix) in that camera's output (``image``: ``b`` or ``s``)."""
    if output is None:
        return clip.any()
    return clip.any() | output[f"{image}_out_high"].any(axis=0) | output[f"{image}_out_low"].any(axis=0)


def unmeasured(bounded: np.ndarray, output: dict[str, np.ndarray] | None, image: str, *, reach: int
               ) -> np.ndarray:
    """``(H, W)`` bool: where clipping left a bound instead of a measurement, as stored
    (``bounded``: :func:`unreliable` of the image) or (before ``align`` undid its camera's
    matrix) in that camera's output (``image``: ``b`` or ``s``; ``reach``: the footprint the
    flags were widened by): the part of the frame the evidence lost to clipping.

    Unlike :func:`any_clipped`, a dark region whose noise touches zero at scattered pixels
    is measured: its smoothed level is biased, by what the share of zeros or the noise at
    black gives (:func:`black_clip_factor`, :func:`black_noise`), not lost. A camera four
    times noisier than the other clips some channel at black on most pixels of a dark
    scene, and such pairs were flagged as having little evidence left (9-12 of the mask
    benchmark's 39 dark-scene pairs on each seed set, masked at IoU 0.89-0.96 on seeds 0)."""
    if output is None:
        return bounded
    return bounded | output[f"{image}_out_high"].any(axis=0) | mostly_flagged(output[f"{image}_out_low"], reach).any(axis=0)


def smooth_pair(bp: np.ndarray, sp: np.ndarray, white: np.ndarray, sigma_px: float
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
    bs, ss = np.empty_like(bp), np.empty_like(sp)
    for image, smoothed in ((bp, bs), (sp, ss)):
        for channel, out in zip(image, smoothed):
            cv2.GaussianBlur(channel, (0, 0), sigma_px, dst=out)
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


# E[max(x, 0)] / sigma for x ~ N(a sigma, sigma^2), a Phi(a) + phi(a) by the standard
# library, as a table of a = mean / sigma (increasing in a; beyond the top it is a itself to
# within 1e-15), read by interpolation; and Phi(a), the share such noise clips.
_CLIPPED_A = np.linspace(-6.0, 8.0, 2801)
_NORMAL_CDF = np.array([NormalDist().cdf(v) for v in _CLIPPED_A.tolist()])
_CLIPPED_MEAN = np.array([v * cdf + math.exp(-0.5 * v * v) / math.sqrt(2 * math.pi)
                          for v, cdf in zip(_CLIPPED_A.tolist(), _NORMAL_CDF.tolist())])
# The clipped mean on a uniform grid of level / sigma from 0, read by index: beyond 4 the
# bias is under 1e-5 sigma, and a level is left as it is.
_RECORD_TOP = 4.0
_RECORD_STEPS = 1024
_RECORD_MEAN = np.interp(np.linspace(0.0, _RECORD_TOP, _RECORD_STEPS + 1), _CLIPPED_A, _CLIPPED_MEAN).astype(np.float32)
# The fit of S's noise at black reads pixels whose smoothed B is darker than this (linear):
# the bias reaches four sigmas, so this covers sigmas to 0.025, the benchmark's noisiest
# camera (S at 4x B's noise: a read noise of 12 e- in a full well of 500, 0.024 at black).
BLACK_FIT_LEVEL = 0.1
# Equal-count bins of B's level, their medians compared; and the least number of dark
# pixels a fit is made from.
BLACK_FIT_BINS = 24
BLACK_FIT_MIN_PIXELS = 2000
# Candidate sigmas (linear), 0 (no clipping) among them: the fit's argmin over a grid is
# robust where a least-squares solve in sigma is not (the cost is flat once sigma is far
# below the levels).
_BLACK_SIGMAS = np.concatenate([[0.0], np.geomspace(1e-4, 0.1, 121)])


def clipped_mean(level: np.ndarray, sigma: float | np.ndarray) -> np.ndarray:
    """The mean a camera records of a true ``level`` (linear) under Gaussian noise of
    ``sigma`` that its black clips: ``E[max(x, 0)]``, ``x ~ N(level, sigma^2)``; a sigma of 0
    gives the level itself, clipped at 0. ``sigma`` ``(S,)``: each at once, ``(S, *level.shape)``.

    >>> clipped_mean(np.array([0.0, 0.01, 0.2]), 0.02).round(4).tolist()
    [0.008, 0.014, 0.2]
    >>> clipped_mean(np.array([0.0, 0.01]), np.array([0.0, 0.02])).round(4).tolist()
    [[0.0, 0.01], [0.008, 0.014]]
    """
    level = np.asarray(level, np.float64)
    sigmas = np.asarray(sigma, np.float64)
    scale = sigmas.reshape(sigmas.shape + (1,) * level.ndim)
    a = level / np.maximum(scale, 1e-300)
    mean = np.interp(a, _CLIPPED_A, _CLIPPED_MEAN) * scale
    clipped = np.where(a > _CLIPPED_A[-1], level, np.where(a < _CLIPPED_A[0], 0.0, mean))
    return np.where(scale > 0, clipped, np.maximum(level, 0.0))


def black_noise(blur: np.ndarray, sharp: np.ndarray, fit_on: np.ndarray, black: np.ndarray, *,
                transfer: Transfer = "srgb", samples: int = 20_000) -> np.ndarray:
    """S's noise at black, per channel (linear), as its black clipping shows it against B.

    A camera records ``max(x, 0)`` of a noisy ``x``, so where S's noise reaches below zero its
    mean over a footprint sits above the truth by up to ``0.4 sigma`` (:func:`clipped_mean`),
    S being the noisier camera (short exposure, more gain) and B taken as the truth. The
    share of clipped pixels under the footprint fixes that bias only where nothing resampled
    S after its camera clipped it (:func:`black_clip_factor`): a homography, applied to a
    noisy frame, averages the zeros with their neighbours, so few pixels stay at zero while
    the bias stays whole (on pairs made from video, S at four times B's noise: S over B by
    0.011 at black, 18 % of pixels at zero, a static pair marked over a quarter of its
    frame). Here ``sigma`` is the one for which ``clipped_mean(B, sigma)`` best fits the
    smoothed S over B's dark levels: medians of equal-count bins of B's level, and the sum
    of absolute misfits, least over a grid of sigmas, where it improves on no clipping by
    more than the medians' own noise, and where S did clip at black: on the pixels darker
    than that sigma, at least a quarter of the share such noise clips is flagged (an
    offset at dark levels that a gain or colour misfit leaves is not clipping; resampling
    hides half the zeros or so, not three quarters).

    Parameters
    ----------
    blur, sharp
        ``(C, H, W)`` B and S display-encoded by ``transfer``, smoothed alike, S
        brightness-matched to B.
    fit_on
        ``(H, W)`` bool, pixels the fit may read (defined, not white-clipped).
    black
        ``(C, H, W)`` bool, S's black-clipped pixels (:func:`pair_clipping`).
    samples
        At most this many dark pixels per channel, evenly spaced.

    Returns
    -------
    numpy.ndarray
        ``(C,)`` sigma per channel; 0 where fewer than :data:`BLACK_FIT_MIN_PIXELS` pixels
        are dark, or no bias shows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = np.repeat(np.linspace(0.0, 0.15, 200)[None], 200, axis=0)[None]
    >>> noisy = np.maximum(truth + rng.normal(0, 0.03, truth.shape), 0)  # the camera clips at 0
    >>> s = cv2.GaussianBlur(noisy[0].astype(np.float32), (0, 0), 1.5)[None]
    >>> sigma = float(black_noise(truth, s, np.ones(truth.shape[1:], bool), noisy == 0, transfer="linear")[0])
    >>> abs(sigma - 0.03) < 0.003  # within the grid's step
    True
    """
    sigmas = np.zeros(blur.shape[0])
    dark = float(encode(np.array([BLACK_FIT_LEVEL], np.float32), transfer)[0])
    for c, (b, s) in enumerate(zip(blur, sharp)):
        if not black[c].any():
            continue  # no clipping to fit (the test below would refuse any sigma)
        index = np.flatnonzero(fit_on & (b < dark))
        if index.size < BLACK_FIT_MIN_PIXELS:
            continue
        index = evenly_spaced(index, samples)
        level = decode(b.ravel()[index], transfer)
        order = stable_argsort(level)
        usable = order.size - order.size % BLACK_FIT_BINS
        bins = order[:usable].reshape(BLACK_FIT_BINS, -1)
        truth = median_of_sorted(level[bins])  # each bin a run of the sorted levels
        values = decode(s.ravel()[index], transfer)[bins]
        recorded = median_along_last(values)
        cost = np.abs(recorded - clipped_mean(truth, _BLACK_SIGMAS)).sum(axis=1)
        # Taken only where it fits better than no clipping by more than the bins' medians'
        # own noise: where nothing clipped, every small sigma fits as well as none, and
        # noise alone would pick among them.
        gap = values - level[bins]
        tolerance = float((MEDIAN_STANDARD_ERROR * mad_along_last(gap) / math.sqrt(bins.shape[1])).sum())
        best = int(np.argmin(cost))
        if cost[0] - cost[best] <= tolerance:
            continue
        sigma = float(_BLACK_SIGMAS[best])
        darkest = level < sigma
        if not darkest.any():
            continue
        expected = np.interp(-level[darkest] / sigma, _CLIPPED_A, _NORMAL_CDF).mean()
        if black[c].ravel()[index][darkest].mean() >= 0.25 * expected:
            sigmas[c] = sigma
    return sigmas


def as_clipped(smoothed: np.ndarray, sigmas: np.ndarray, transfer: Transfer = "srgb") -> np.ndarray:
    """``(C, H, W)`` smoothed B (display-encoded by ``transfer``) as S's camera would have
    recorded its levels: the :func:`clipped_mean` under each channel's noise at black
    (``sigmas``, linear, :func:`black_noise`); unchanged where a channel's sigma is 0, and
    beyond four sigmas, where the bias is under 1e-5 sigma.

    The comparison is made where S's values are, not by taking S back to a truth: the
    inverse of a noisy mean amplifies its noise where the mean is clipped most (twice at
    the truth 0, six times a sigma below it), which no noise model of B - S holds, while
    the clipped mean only compresses B's levels (its slope is at most 1)."""
    out = smoothed.copy()
    for c, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        top = float(encode(np.array([_RECORD_TOP * sigma], np.float32), transfer)[0])
        where = np.flatnonzero(smoothed[c] < top)
        position = np.maximum(decode(smoothed[c].ravel()[where], transfer), 0.0)
        position *= np.float32(_RECORD_STEPS / (_RECORD_TOP * sigma))
        lower = np.minimum(position.astype(np.intp), _RECORD_STEPS - 1)
        weight = position - lower
        level = (_RECORD_MEAN[lower] * (1 - weight) + _RECORD_MEAN[lower + 1] * weight) * np.float32(sigma)
        out[c].ravel()[where] = encode(level, transfer)
    return out
