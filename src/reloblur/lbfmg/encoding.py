"""The sRGB curve by lookup tables, as the mask step encodes and decodes its images.

Exact for 8-bit input and 16-bit-fine for the rest (an error far below one 8-bit code), at
a fraction of a power function's cost. ``transfer="linear"`` passes values through.
"""

from __future__ import annotations

import numpy as np

from reloblur.lbfmg.noise import srgb_decode
from reloblur.lbfmg.params import Transfer

_ENCODE_TABLE = np.where((x := np.linspace(0.0, 1.0, 65536)) <= 0.0031308, x * 12.92,
                         1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)
_DECODE_TABLE = srgb_decode(np.linspace(0.0, 1.0, 65536)).astype(np.float32)
# The sRGB curve's slope, d(encoded)/d(linear), on the same grid.
_SLOPE_TABLE = np.where(x <= 0.0031308, 12.92,
                        (1.055 / 2.4) * np.power(np.maximum(x, 0.0031308), 1 / 2.4 - 1)).astype(np.float32)
# An 8-bit code k is the 16-bit code 257 k (to_float's k / 255 indexes it exactly).
DECODE_CODES = np.ascontiguousarray(_DECODE_TABLE[257 * np.arange(256)].reshape(1, 256))


def code_index(values: np.ndarray) -> np.ndarray:
    """Nearest 16-bit code of values in [0, 1] (clipped), as table indices."""
    scaled = np.clip(values, 0.0, 1.0, dtype=np.float32) * np.float32(65535)
    return np.rint(scaled, out=scaled).astype(np.uint16)


def decode(image: np.ndarray, transfer: Transfer) -> np.ndarray:
    """``image`` (display-encoded by ``transfer``, in [0, 1]) in linear light, float32."""
    if transfer == "linear":
        return image.astype(np.float32)
    return _DECODE_TABLE.take(code_index(image))


def encode(linear: np.ndarray, transfer: Transfer) -> np.ndarray:
    """``linear`` (clipped to [0, 1]) display-encoded by ``transfer``, float32."""
    if transfer == "linear":
        return np.clip(linear, 0.0, 1.0).astype(np.float32)
    return _ENCODE_TABLE.take(code_index(linear))


def encoding_slope(linear: np.ndarray, transfer: Transfer) -> np.ndarray:
    """d(encoded)/d(linear) at ``linear``: how far a small linear error moves a code."""
    if transfer == "linear":
        return np.ones_like(linear)
    return _SLOPE_TABLE.take(code_index(linear))
