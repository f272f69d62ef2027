"""Clipped pixels: where a camera recorded a bound (its full scale, or black), not a value.

Clipping leaves a pile-up at a channel's extreme: many pixels within a code value of it,
far more than in the code values just inside. A natural tail does not pile up, so a
bright or dark scene without clipping marks nothing. Only the camera's own output shows
the pile-up: after a colour matrix mixes channels it is gone, which is why ``align`` finds
clipping on its inputs and hands it on as ``<id>.clip.png`` (:func:`encode_clip_flags`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

# Bits of <id>.clip.png: which image is clipped at a pixel, and which way.
B_HIGH, B_LOW, S_HIGH, S_LOW = 1, 2, 4, 8
# Where a camera's RGB output itself clipped after the camera's own colour matrix, which
# ``align`` then undid: the undone value is off along that matrix's inverse, in every
# channel, and no pile-up shows it (:func:`reloblur.imaging.raw.undo_colour_transformation`).
B_OUT_HIGH, B_OUT_LOW, S_OUT_HIGH, S_OUT_LOW = 16, 32, 64, 128
_OUTPUT_BITS = B_OUT_HIGH | B_OUT_LOW | S_OUT_HIGH | S_OUT_LOW
# (high, low) bool maps of one image's clipped output.
ClippedOutput = tuple[np.ndarray, np.ndarray]


def clipped_levels(image: np.ndarray, valid: np.ndarray | None = None, *,
                   code: float) -> tuple[np.ndarray, np.ndarray]:
    """Where each channel of ``image`` sits at a clipped extreme: ``(high, low)`` bool ``(H, W, C)``.

    Parameters
    ----------
    image
        ``(H, W, C)`` (or ``(H, W)``) float in [0, 1].
    valid
        ``(H, W)`` bool, the pixels to look at (default: all).
    code
        One code value of the stored image (1/255 for 8-bit data, 1/65535 for 16-bit).

    Examples
    --------
    >>> image = np.linspace(0.2, 0.9, 10_000).reshape(100, 100, 1)
    >>> image[:20] = 1.0  # a blown-out fifth of the frame
    >>> high, low = clipped_levels(image, code=1 / 65535)
    >>> int(high.sum()), int(low.sum())
    (2000, 0)
    """
    if image.ndim == 2:
        image = image[:, :, None]
    high = np.zeros(image.shape, bool)
    low = np.zeros(image.shape, bool)
    # One contiguous plane per channel: numpy reduces a strided (H, W, 3) axis slowly.
    planes = (np.ascontiguousarray(image[..., c]) for c in range(image.shape[2]))
    channels = range(image.shape[2])
    _flag_clipped(planes, [high[..., c] for c in channels], [low[..., c] for c in channels], valid, code)
    return high, low


def clipped_planes(planes: np.ndarray, valid: np.ndarray | None = None, *,
                   code: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clipped_levels` of a planar image: ``planes`` ``(C, H, W)`` float in [0, 1]
    (contiguous planes), the flags ``(high, low)`` bool ``(C, H, W)``.

    >>> planes = np.linspace(0.2, 0.9, 10_000).reshape(1, 100, 100)
    >>> planes[:, :20] = 1.0
    >>> high, low = clipped_planes(planes, code=1 / 65535)
    >>> int(high.sum()), int(low.sum())
    (2000, 0)
    """
    high = np.zeros(planes.shape, bool)
    low = np.zeros(planes.shape, bool)
    _flag_clipped(iter(planes), list(high), list(low), valid, code)
    return high, low


def _flag_clipped(planes: Iterator[np.ndarray], high: list[np.ndarray], low: list[np.ndarray],
                  valid: np.ndarray | None, code: float) -> None:
    """Set ``high[c]`` and ``low[c]`` (``(H, W)`` bool, all False) where ``planes``' ``c``-th
    ``(H, W)`` plane is clipped white and black."""
    inside = None if valid is None or bool(valid.all()) else valid
    count = high[0].size if inside is None else int(np.count_nonzero(inside))
    if count == 0:
        return
    # Even a small clipped highlight (a lamp) piles up: a few pixels at exactly one level.
    least = max(8, int(5e-5 * count))
    near, band = 1.5 * code, 3.5 * code
    for plane, plane_high, plane_low in zip(planes, high, low):
        v = plane if inside is None else plane[inside]
        top, bottom = float(v.max()), float(v.min())
        # Each count only where the tests before it passed: most channels reach no bound.
        if top > 0.5 and (at_top := int(np.count_nonzero(v >= top - near))) >= least:
            below_top = int(np.count_nonzero(v >= top - band)) - at_top
            if at_top >= 2 * max(below_top, 1):
                np.greater_equal(plane, top - near, out=plane_high)
        if bottom < 0.5 and (at_bottom := int(np.count_nonzero(v <= bottom + near))) >= least:
            above_bottom = int(np.count_nonzero(v <= bottom + band)) - at_bottom
            if at_bottom >= 2 * max(above_bottom, 1):
                np.less_equal(plane, bottom + near, out=plane_low)


def any_channel(flags: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: set in any channel of ``(H, W, C)`` flags (faster than ``any(axis=2)``)."""
    if flags.ndim == 2:
        return flags
    return np.logical_or.reduce([flags[..., c] for c in range(flags.shape[2])])


def channel_max(image: np.ndarray) -> np.ndarray:
    """``(...)``: the largest channel of ``(..., C)`` values, the one that clips first.

    The same values as ``image.max(axis=-1)``, which numpy reduces over a short innermost
    axis several times slower than this chain of element-wise maxima."""
    return functools.reduce(np.maximum, (image[..., c] for c in range(image.shape[-1])))


def channel_min(image: np.ndarray) -> np.ndarray:
    """``(...)``: the smallest channel of ``(..., C)`` values (see :func:`channel_max`)."""
    return functools.reduce(np.minimum, (image[..., c] for c in range(image.shape[-1])))


def encode_clip_flags(b_high: np.ndarray, b_low: np.ndarray, s_high: np.ndarray, s_low: np.ndarray, *,
                      b_output: ClippedOutput | None = None, s_output: ClippedOutput | None = None) -> np.ndarray:
    """Flags ``(H, W)`` or ``(H, W, C)`` uint8 from four bool maps of that shape: per pixel,
    or per pixel and channel (``<id>.clip.png`` is then an RGB image, one channel's flags
    in each). ``b_output``, ``s_output``: ``(high, low)`` maps of that shape, where the
    camera's own output clipped before ``align`` undid its colour matrix (None: not undone).

    >>> high = np.array([[True, False]]); low = ~high; none = np.zeros_like(high)
    >>> encode_clip_flags(high, none, none, low, s_output=(none, high)).tolist()
    [[129, 8]]
    """
    # A bool array is one byte of 0 or 1: viewed as uint8 it shifts into its bit in place,
    # where multiplying by the bit's value widened every map to int64 (0.2 s at 2152x1436).
    flags = np.ascontiguousarray(b_high, bool).view(np.uint8) * np.uint8(B_HIGH)
    named = [(b_low, B_LOW), (s_high, S_HIGH), (s_low, S_LOW)]
    for output, (high_bit, low_bit) in ((b_output, (B_OUT_HIGH, B_OUT_LOW)), (s_output, (S_OUT_HIGH, S_OUT_LOW))):
        if output is not None:
            named += [(output[0], high_bit), (output[1], low_bit)]
    for bits, bit in named:
        flags |= np.ascontiguousarray(bits, bool).view(np.uint8) * np.uint8(bit)
    return flags


def decode_clip_flags(flags: np.ndarray) -> dict[str, np.ndarray]:
    """``{"b_high", "b_low", "s_high", "s_low"}`` bool maps of :func:`encode_clip_flags` output,
    of its shape, and where any camera output clipped, ``"b_out_high"``, ``"b_out_low"``,
    ``"s_out_high"``, ``"s_out_low"``."""
    f = np.asarray(flags)
    decoded = {"b_high": (f & B_HIGH) > 0, "b_low": (f & B_LOW) > 0, "s_high": (f & S_HIGH) > 0,
               "s_low": (f & S_LOW) > 0}
    if f.dtype == np.uint8 and (f & _OUTPUT_BITS).any():
        decoded.update({"b_out_high": (f & B_OUT_HIGH) > 0, "b_out_low": (f & B_OUT_LOW) > 0,
                        "s_out_high": (f & S_OUT_HIGH) > 0, "s_out_low": (f & S_OUT_LOW) > 0})
    return decoded
