"""The object S shows inside a region: the review app's object tool, and the mask's fill of
each moving object's convex hull.

The generator's most common miss is the inside of an object that moved: where B and S
agree (a uniform interior), or where S's clipped or noisy values leave too little
evidence, only the parts that differ are marked: the bands along the edges that faced the
motion, a textured or unclipped patch (``docs/masks.md``). S shows the object sharp, so a
curator who draws a box around it can take the whole object from S's colours at once
instead of painting it (:func:`segment_object`), and the generator does the same inside
the convex hull of each cluster of its own evidence (:func:`fill_hulls`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ImageFormatError, ReloblurError
from ..imaging.imageio import ensure_rgb, to_float
from .morphology import bounding_box, clusters_with_boxes, component_window, filled_hull

MIN_BOX_PX = 4  # a side shorter than this holds no object a box could separate
# fill_hulls: mask clusters closer than this (of the short side) are one object's: twice
# fill_enclosed's gap, so that more of one object's pieces join. On cached aligned pairs of
# the mask benchmark, 1.5 and 2 times that gap gave the same IoU within 0.002; at 3 times,
# hulls spanned neighbouring objects (over-exposed row, seed set 77: 0.830 -> 0.824).
HULL_GAP = 0.06
# px of ground around a hull that the ground's colours are learnt from, as the object tool's
# ring around a curator's box.
HULL_RING = 8
# px, the short side of the frame as fill_hulls sees it at most: larger frames are reduced
# to it (its clusters' gap and its ring alike), so that the fill's cost stays bounded
# whatever the camera's resolution. GrabCut's time grows with a box's pixels (about 1 us
# each), the clusters' dilation with the frame's pixels times the gap's square: at
# 2152x1436, where the hulls' boxes hold up to a million pixels, the fill took 0.44 s of a
# 2.5 s pair, and 0.12 s reduced to 720 px (the 16x shorter exposure's 13 pairs: mean IoU
# 0.859 -> 0.860). Reduced to 360 px, as the benchmark's 538x359 frames are seen, the
# second generator's 960x640 pairs lost 0.0025 of mean IoU: pieces of an object right at
# the gap's edge fell into two clusters (one pair 0.53 -> 0.29).
HULL_FRAME_SHORT = 720


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
    inside = np.zeros((rows.stop - rows.start, cols.stop - cols.start), bool)
    inside[top - rows.start:bottom - rows.start, left - cols.start:right - cols.start] = True
    if inside.all():
        raise RegionError("the box covers the whole frame: leave some background around the object")
    try:
        found = _grabcut(rgb[rows, cols], inside, iterations)
    except cv2.error as exc:  # too few distinct colours on one side to fit its model
        raise RegionError(f"the box's colours cannot be told from those around it ({exc.err})") from None
    if not found.any():
        raise RegionError("nothing in the box stands out from around it: draw the box closer to the object, "
                          "or paint it")
    region = np.zeros((h, w), bool)
    region[rows, cols] = found
    share = float(np.count_nonzero(found)) / ((bottom - top) * (right - left))
    return ObjectSegment(region, (top, left, bottom, right), share)


def _grabcut(rgb: np.ndarray, inside: np.ndarray, iterations: int) -> np.ndarray:
    """``(h, w)`` bool, the pixels of ``inside`` whose colours belong with it rather than
    with the pixels around it: GrabCut on ``rgb`` (``(h, w, 3)`` float in [0, 1]) after a
    3x3 median. Raises ``cv2.error`` where one side has too few distinct colours."""
    crop = cv2.medianBlur(np.ascontiguousarray(rgb, np.float32), 3)
    labels = np.where(inside, cv2.GC_PR_FGD, cv2.GC_BGD).astype(np.uint8)
    # GrabCut seeds its colour models with k-means from OpenCV's random generator: seeded,
    # the same region gives the same object every time.
    cv2.setRNGSeed(0)
    colours = np.ascontiguousarray(np.clip(np.rint(crop * 255), 0, 255).astype(np.uint8))
    # The rectangle is unused: the labels say which pixels are which.
    cv2.grabCut(colours, labels, (0, 0, 0, 0), np.zeros((1, 65)), np.zeros((1, 65)), iterations,
                cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _grabcut_reduced(rgb: np.ndarray, inside: np.ndarray, scale: float) -> np.ndarray:
    """:func:`_grabcut` (one iteration) on ``rgb`` and ``inside`` reduced by ``scale`` (at most
    1), its answer brought back to their ``(h, w)``."""
    if scale >= 1.0:
        return _grabcut(rgb, inside, 1)
    h, w = inside.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(np.ascontiguousarray(rgb, np.float32), size, interpolation=cv2.INTER_AREA)
    small_inside = cv2.resize(inside.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    found = _grabcut(small, small_inside, 1)
    return cv2.resize(found.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5


def fill_hulls(mask: np.ndarray, sharp: np.ndarray, valid: np.ndarray, *, gap: int, min_pixels: float,
               ring: int = HULL_RING, frame_short: int = HULL_FRAME_SHORT, doubtful: np.ndarray | None = None,
               judged: np.ndarray | None = None) -> np.ndarray:
    """``mask`` with what S shows of each moving object inside the convex hull of its
    evidence.

    Where an object's inside is not measured (clipped in both cameras, drowned in S's noise)
    or looks the same in B and S (uniform), the evidence marks only the parts of it that
    differ: the bands along the edges that faced the motion, a patch of texture S did not
    clip. Those parts lie on the object's swept region, and together they span it: the
    convex hull of a cluster of them (mask components closer than ``gap`` px) holds the
    object's inside, and beside it ground, in the object's concavities and where it uncovered
    ground. The ground inside the hull looks like the ground around the hull, and the object
    does not: GrabCut on S (:func:`_grabcut`: a mixture of colours inside the hull, one of
    the ``ring`` px around it, and a cut that keeps the boundary on S's edges; one
    iteration, whose masks scored within 0.0005 of IoU of five iterations' on the mask
    benchmark's cached pairs, at under half the time) takes the pixels that belong with the
    inside. Nothing outside a hull is added: the hull of
    a false speck is the speck.

    The same cut judges the ``doubtful`` pixels of ``mask`` inside a hull, which a fill by
    geometry alone put there (:func:`~reloblur.lbfmg.morphology.fill_enclosed`: the ground
    between a walker's legs is bracketed as a uniform inside is): those the cut does not
    take are taken out. Each cut's window is kept within the bounding box of where the
    frame was ``judged``: an object the frame's border cuts goes on into the strip along it
    where nothing was judged, and that strip, taken for ground, taught the ground's model
    the object's own colours (a uniform polygon at the border: 2,596 px inside its hull,
    58 taken).

    Parameters
    ----------
    mask
        ``(H, W)`` bool.
    sharp
        ``(C, H, W)`` float in [0, 1], S (display-encoded, brightness-matched to B); a grey S
        (``C == 1``) is taken as three equal channels.
    valid
        ``(H, W)`` bool, where S is defined: nothing is added outside it.
    gap
        px, mask components closer than this are one cluster.
    min_pixels
        Clusters with fewer pixels are not extended, nor hulls with fewer new pixels than this.
    ring
        px of ground around each hull whose colours are the ground's, on the frame as the
        fill sees it (``frame_short``).
    frame_short
        px: the clusters are found, and GrabCut sees the frame, reduced to at most this short
        side (``gap`` and ``ring`` with it), so that the fill's cost is bounded; the
        boundary of what it adds is then as precise as a reduced pixel.
    doubtful
        ``(H, W)`` bool or None: pixels of ``mask`` the cut may take back, where a hull holds
        them and its cluster is large enough to be cut.
    judged
        ``(H, W)`` bool or None: where the evidence was defined; each cut's window is kept
        within its bounding box. None: the whole frame.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` bool, ``mask`` and what was added, less the ``doubtful`` pixels taken back.

    Examples
    --------
    >>> s = np.full((3, 60, 80), 0.3)
    >>> s[:, 20:40, 20:60] = 0.8  # an object brighter than the ground
    >>> bands = np.zeros((60, 80), bool)
    >>> bands[20:40, 20:24] = bands[20:40, 56:60] = bands[20:22, 20:60] = True  # evidence on three sides
    >>> filled = fill_hulls(bands, s, np.ones((60, 80), bool), gap=4, min_pixels=10)
    >>> int(filled[20:40, 20:60].sum()), int(filled.sum())
    (800, 800)
    """
    if frame_short < 1:
        raise ReloblurError(f"frame_short = {frame_short}: the cut needs a frame of at least 1 px")
    out = mask.copy()
    if not mask.any():
        return out
    scale = min(1.0, frame_short / min(mask.shape))
    reach = round(ring / scale)
    count, labels, stats = clusters_with_boxes(mask, gap, scale=scale)
    channels = sharp if sharp.shape[0] == 3 else np.repeat(sharp[:1], 3, axis=0)
    h, w = mask.shape
    top, bottom, left, right = (0, h, 0, w) if judged is None or not judged.any() else bounding_box(judged)
    for label in range(1, count):
        # The box holds the hull, the ring of ground around it, and the grown cluster's slack.
        rows, cols = component_window(stats, label, reach, labels.shape)
        rows = slice(max(rows.start, top), min(rows.stop, bottom))
        cols = slice(max(cols.start, left), min(cols.stop, right))
        if rows.stop - rows.start < 2 or cols.stop - cols.start < 2:
            continue
        own = labels[rows, cols] == label
        if np.count_nonzero(own) < min_pixels:
            continue
        inside = filled_hull(own)
        new = inside & ~mask[rows, cols] & valid[rows, cols]
        doubt = inside & doubtful[rows, cols] if doubtful is not None else np.zeros_like(inside)
        if np.count_nonzero(new | doubt) < min_pixels or inside.all():
            continue
        try:
            found = _grabcut_reduced(channels[:, rows, cols].transpose(1, 2, 0), inside, scale)
        except cv2.error:  # one side has too few distinct colours to model: nothing to tell apart
            continue
        out[rows, cols] |= found & new
        out[rows, cols] &= ~(doubt & ~found)
    return out
