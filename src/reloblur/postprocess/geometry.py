"""Geometry helpers: valid regions under a homography, crop rectangles, transform sanity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from reloblur.imaging.lens import grid_coordinates

INTERPOLATION_MARGIN = 3  # Lanczos-4 reads 3-4 px around a point: stay clear of S's edge


@dataclass(frozen=True)
class Rect:
    """Pixel rectangle ``[x, x + width) x [y, y + height)``."""

    x: int
    y: int
    width: int
    height: int

    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices that cut this rectangle out of an array."""
        return slice(self.y, self.y + self.height), slice(self.x, self.x + self.width)

    def to_list(self) -> list[int]:
        """``[x, y, width, height]``."""
        return [self.x, self.y, self.width, self.height]


@dataclass(frozen=True)
class TransformSummary:
    """A homography near the image centre: scale, rotation (degrees), shift (px)."""

    scale: float
    rotation_deg: float
    shift_px: float


def sharp_coordinates(homography: np.ndarray, blur_size: tuple[int, int], *, radial: float = 0.0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of B's grid lies in S: ``(map_x, map_y)``, ``(H, W)`` float32 each
    (``cv2.remap``'s maps), for a homography after B's radial lens term
    (:func:`reloblur.imaging.lens.radial_coordinates`)."""
    map_x, map_y = grid_coordinates(homography, blur_size, radial=radial)
    return map_x.astype(np.float32), map_y.astype(np.float32)


def valid_coordinates(map_x: np.ndarray, map_y: np.ndarray, sharp_size: tuple[int, int], *,
                      margin: int = INTERPOLATION_MARGIN) -> np.ndarray:
    """``(H, W)`` bool: where :func:`sharp_coordinates`' maps land at least ``margin`` inside
    S (the nearest S pixel, as the homography-only nearest-neighbour warp reads it)."""
    ws, hs = sharp_size
    return ((map_x >= margin - 0.5) & (map_x < ws - margin - 0.5)
            & (map_y >= margin - 0.5) & (map_y < hs - margin - 0.5))


def valid_mask(homography: np.ndarray, blur_size: tuple[int, int], sharp_size: tuple[int, int],
               *, margin: int = INTERPOLATION_MARGIN) -> np.ndarray:
    """``(H, W)`` bool on B's grid: pixels whose S position is at least ``margin`` inside S
    (a homography alone; with a radial term, :func:`valid_coordinates` of its maps)."""
    ws, hs = sharp_size
    inside = np.zeros((hs, ws), np.uint8)
    inside[margin : hs - margin, margin : ws - margin] = 1
    # Nearest-neighbour warp of S's inside-mask onto B: dst(x) = inside(H x).
    warped = cv2.warpPerspective(inside, homography, blur_size,
                                 flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    return warped.astype(bool)


def inner_rect(homography: np.ndarray, blur_size: tuple[int, int], sharp_size: tuple[int, int],
               *, margin: int = INTERPOLATION_MARGIN) -> Rect:
    """The axis-aligned rectangle of B's grid whose pixels all map inside S under a homography.

    The S rectangle (shrunk by ``margin``) maps back to a convex quadrilateral on B; for
    each side the innermost corner bounds the rectangle, so it lies inside the quad. With
    a radial lens term the sides bow: :func:`inner_rect_of` finds it on the validity mask.
    """
    w, h = blur_size
    ws, hs = sharp_size
    corners_s = np.array([[margin, margin], [ws - 1 - margin, margin], [ws - 1 - margin, hs - 1 - margin],
                          [margin, hs - 1 - margin]], np.float64)
    tl, tr, br, bl = cv2.perspectiveTransform(corners_s[None], np.linalg.inv(homography))[0]
    x0 = max(0, math.ceil(max(tl[0], bl[0])))
    x1 = min(w - 1, math.floor(min(tr[0], br[0])))
    y0 = max(0, math.ceil(max(tl[1], tr[1])))
    y1 = min(h - 1, math.floor(min(bl[1], br[1])))
    return Rect(x0, y0, max(0, x1 - x0 + 1), max(0, y1 - y0 + 1))


def inner_rect_of(valid: np.ndarray) -> Rect:
    """A large axis-aligned rectangle inside a simply connected region (a warped rectangle):
    shrink the bounding box, one line at a time from the side with the most pixels outside,
    until its border lies inside (then, the region having no holes, all of it does)."""
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if rows.size == 0:
        return Rect(0, 0, 0, 0)
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    while y0 <= y1 and x0 <= x1:
        outside = [int((~valid[y0, x0 : x1 + 1]).sum()), int((~valid[y1, x0 : x1 + 1]).sum()),
                   int((~valid[y0 : y1 + 1, x0]).sum()), int((~valid[y0 : y1 + 1, x1]).sum())]
        worst = int(np.argmax(outside))
        if outside[worst] == 0:
            return Rect(x0, y0, x1 - x0 + 1, y1 - y0 + 1)
        if worst == 0:
            y0 += 1
        elif worst == 1:
            y1 -= 1
        elif worst == 2:
            x0 += 1
        else:
            x1 -= 1
    return Rect(0, 0, 0, 0)


def summarize(homography: np.ndarray, width: int, height: int) -> TransformSummary:
    """Local scale, rotation and shift of a homography at the image centre."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    p = homography @ np.array([cx, cy, 1.0])
    w = p[2]
    # Jacobian of the projective map at the centre.
    jac = (homography[:2, :2] * w - np.outer(p[:2], homography[2, :2])) / w**2
    scale = math.sqrt(abs(np.linalg.det(jac)))
    rotation = math.degrees(math.atan2(jac[1, 0] - jac[0, 1], jac[0, 0] + jac[1, 1]))
    shift = math.hypot(p[0] / w - cx, p[1] / w - cy)
    return TransformSummary(scale, rotation, shift)
