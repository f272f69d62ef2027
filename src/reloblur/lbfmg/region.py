"""The object inside a box a curator drew on S: the review app's object tool.

The generator's most common miss is the inside of an object that moved: where B and S
agree (a uniform interior), or where S's clipped or noisy values leave too little
evidence, only the bands along the edges that faced the motion are marked
(``docs/masks.md``). S shows the object sharp, so a curator who draws a box around it can
take the whole object from S's colours at once instead of painting it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ImageFormatError, ReloblurError
from ..imaging.imageio import ensure_rgb, to_float

MIN_BOX_PX = 4  # a side shorter than this holds no object a box could separate


class RegionError(ReloblurError):
    """No object can be taken from the box: it lies outside the image, is too small, leaves
    nothing around it to learn the background from, or holds nothing that stands out."""


@dataclass(frozen=True)
class ObjectSegment:
    """The object found inside a box.

    Attributes
    ----------
    region
        ``(H, W)`` bool, the object's pixels (all inside the box).
    box
        ``(top, left, bottom, right)`` px, bottom and right exclusive, clipped to the image.
    box_share
        The region's share of the box.
    """

    region: np.ndarray
    box: tuple[int, int, int, int]
    box_share: float


def segment_object(image: np.ndarray, box: tuple[int, int, int, int], *, ring: int = 8, iterations: int = 5) -> ObjectSegment:
    """The object inside ``box``: the pixels whose colours belong with the box's inside
    rather than with the ``ring`` of pixels around it (GrabCut: a Gaussian mixture of
    colours for each side, and a graph cut that keeps the boundary on S's edges).

    Unlike a flood fill by colour, this takes textured objects whole, and it never marks a
    pixel outside the box. S goes through a 3x3 median first: it is the noisier camera,
    and its noise spreads both colour models into each other (on the mask benchmark's
    S noise 4x pairs, 7 of the 11 objects whose inside the generator missed were found,
    against 4 unfiltered); a median keeps an edge where it is (a Gaussian of 1 px moved the
    boundary a pixel outwards), and rounds only the corners.

    Parameters
    ----------
    image
        ``(H, W, 3)`` or ``(H, W)``, uint8/uint16 or float in [0, 1]: S, aligned to B.
    box
        ``(top, left, bottom, right)`` px, bottom and right exclusive; clipped to the
        image. A side on the image's border has no ring there (an object the frame cuts).
    ring
        px of background around the box the colours of the background are learnt from (>= 1).
    iterations
        GrabCut iterations (>= 1).

    Returns
    -------
    ObjectSegment

    Raises
    ------
    RegionError
        The box lies outside the image, is thinner than :data:`MIN_BOX_PX`, covers the
        whole frame (no background around it), or nothing inside it stands out from the
        ring.
    ImageFormatError
        ``image`` holds non-finite values, or an option is out of range.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = np.empty((80, 100, 3))
    >>> ground = cv2.resize(rng.uniform(0.1, 0.4, (8, 10)), (100, 80))  # a textured green
    >>> s[...] = ground[:, :, None] * (0.4, 0.8, 0.5)
    >>> s[25:55, 30:70] = cv2.resize(rng.uniform(0.6, 0.9, (3, 4)), (40, 30))[:, :, None] * (1.0, 0.5, 0.6)
    >>> found = segment_object(s, (20, 25, 60, 75))
    >>> truth = np.zeros((80, 100), bool); truth[25:55, 30:70] = True
    >>> int((found.region & truth).sum()), int((found.region & ~truth).sum())  # the median rounds 4 corners
    (1196, 0)
    """
    if ring < 1 or iterations < 1:
        raise ImageFormatError(f"need ring >= 1 ({ring}) and iterations >= 1 ({iterations})")
    rgb = to_float(ensure_rgb(image))
    if not np.isfinite(rgb).all():
        raise ImageFormatError(f"the image holds {int((~np.isfinite(rgb)).sum())} non-finite (NaN/inf) values")
    h, w = rgb.shape[:2]
    top, left, bottom, right = (int(v) for v in box)
    if bottom <= 0 or right <= 0 or top >= h or left >= w:
        raise RegionError(f"the box (top {top}, left {left}, bottom {bottom}, right {right}) lies outside "
                          f"the {w}x{h} image")
    top, left, bottom, right = max(0, top), max(0, left), min(h, bottom), min(w, right)
    if bottom - top < MIN_BOX_PX or right - left < MIN_BOX_PX:
        raise RegionError(f"the box is {right - left}x{bottom - top} px: draw one at least "
                          f"{MIN_BOX_PX} px on each side around the object")
    rows = slice(max(0, top - ring), min(h, bottom + ring))
    cols = slice(max(0, left - ring), min(w, right + ring))
    crop = cv2.medianBlur(rgb[rows, cols].astype(np.float32), 3)
    labels = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
    inside = (slice(top - rows.start, bottom - rows.start), slice(left - cols.start, right - cols.start))
    labels[inside] = cv2.GC_PR_FGD
    if not (labels == cv2.GC_BGD).any():
        raise RegionError("the box covers the whole frame: leave some background around the object")
    # GrabCut seeds its colour models with k-means from OpenCV's random generator: seeded,
    # the same box gives the same object every time.
    cv2.setRNGSeed(0)
    colours = np.ascontiguousarray(np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8))
    try:
        # The rectangle is unused: the labels say which pixels are which.
        cv2.grabCut(colours, labels, (0, 0, 0, 0), np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                    cv2.GC_INIT_WITH_MASK)
    except cv2.error as exc:  # too few distinct colours on one side to fit its model
        raise RegionError(f"the box's colours cannot be told from those around it ({exc.err})") from None
    found = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if not found.any():
        raise RegionError("nothing in the box stands out from around it: draw the box closer to the object, "
                          "or paint it")
    region = np.zeros((h, w), bool)
    region[rows, cols] = found
    share = float(np.count_nonzero(found)) / ((bottom - top) * (right - left))
    return ObjectSegment(region, (top, left, bottom, right), share)
