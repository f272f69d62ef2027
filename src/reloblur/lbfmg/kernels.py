"""Kernels the mask steps share: a disk, per-pixel derivatives, a Gaussian's reach; and
gathering planar images' values at a set of pixels."""

from __future__ import annotations

import math

import cv2
import numpy as np


def disk(radius: int) -> np.ndarray:
    """``(2 radius + 1, 2 radius + 1)`` uint8, a filled ellipse: a morphology kernel."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def gradients(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(H, W)`` x and y derivatives (Sobel, scaled to per pixel)."""
    return (cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=3, scale=0.125),
            cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=3, scale=0.125))


def gradient_magnitude(channel: np.ndarray) -> np.ndarray:
    """``(H, W)`` the length of :func:`gradients`."""
    gx, gy = gradients(channel)
    # Not cv2.magnitude: its result's last bit depends on where the arrays lie in memory
    # (a few pixels a frame), which made z, and now and then a confidence level, differ
    # between two runs on the same pair. numpy's square root is correctly rounded.
    np.square(gx, out=gx)
    np.add(gx, np.square(gy, out=gy), out=gx)
    return np.sqrt(gx, out=gx)


def at_pixels(planes: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``(C, *index.shape)`` values of the ``(C, H, W)`` (or ``(C, n)``) ``planes`` at the
    flat pixel indices ``index``. ``np.take``: indexing ``planes[:, index]`` (or with a
    boolean map) takes several times as long on the same pixels."""
    return np.take(planes.reshape(planes.shape[0], -1), index, axis=1)


def footprint_reach(sigma_px: float) -> int:
    """Pixels a Gaussian of ``sigma_px`` carries a value (the smoothing footprint's radius)."""
    return int(math.ceil(2 * sigma_px)) + 1
