"""What a lens does to an image beyond the pinhole: radial distortion and vignetting.

Both are expressed relative to the image centre and the half-diagonal, so one number
means the same at every resolution. Registration fits the radial term between the two
cameras (``reloblur.postprocess.registration``); the simulator renders both.
"""

from __future__ import annotations

import numpy as np


def _centre(width: int, height: int) -> tuple[float, float, float]:
    cx, cy = (width - 1) / 2, (height - 1) / 2
    return cx, cy, cx * cx + cy * cy


def radial_coordinates(x: np.ndarray, y: np.ndarray, radial: float, width: int, height: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates moved by a radial term about the image centre: ``u (1 + k r^2)``.

    ``u`` is a point's offset from the centre and ``r`` its distance over the half-diagonal,
    so ``k`` (``radial``) is the fractional displacement of a corner (positive: outwards).
    """
    cx, cy, half_diagonal2 = _centre(width, height)
    factor = 1 + radial * ((x - cx) ** 2 + (y - cy) ** 2) / half_diagonal2
    return cx + (x - cx) * factor, cy + (y - cy) * factor


def undo_radial(x: np.ndarray, y: np.ndarray, radial: float, width: int, height: int, *, iterations: int = 12
                ) -> tuple[np.ndarray, np.ndarray]:
    """The points that :func:`radial_coordinates` moves to ``(x, y)`` (fixed-point iteration;
    converges for ``|k| < 0.2``, to 1e-6 px within 12 iterations for ``|k| <= 0.02``)."""
    qx, qy = np.asarray(x, np.float64), np.asarray(y, np.float64)
    for _ in range(iterations):
        mx, my = radial_coordinates(qx, qy, radial, width, height)
        qx, qy = qx + (x - mx), qy + (y - my)
    return qx, qy


def grid_coordinates(homography: np.ndarray, size: tuple[int, int], *, radial: float = 0.0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of a ``size`` (width, height) grid goes under the radial term
    ``radial`` (:func:`radial_coordinates`) and then ``homography``: ``(x, y)``, ``(H, W)``
    float64 each."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    if radial:
        x, y = radial_coordinates(x, y, radial, w, h)
    hm = np.asarray(homography, np.float64)
    denominator = hm[2, 0] * x + hm[2, 1] * y + hm[2, 2]
    return (hm[0, 0] * x + hm[0, 1] * y + hm[0, 2]) / denominator, (hm[1, 0] * x + hm[1, 1] * y + hm[1, 2]) / denominator


def vignetting(width: int, height: int, falloff: float) -> np.ndarray:
    """``(H, W)`` float32 relative illumination ``1 - falloff r^2`` (``falloff`` at the corners)."""
    cx, cy, half_diagonal2 = _centre(width, height)
    yy, xx = np.mgrid[0:height, 0:width]
    return (1 - falloff * ((xx - cx) ** 2 + (yy - cy) ** 2) / half_diagonal2).astype(np.float32)
