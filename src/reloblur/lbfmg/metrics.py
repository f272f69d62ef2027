"""Mask quality against a reference mask: IoU, its two parts (recall and precision),
boundary F-measure, false-positive area."""

from __future__ import annotations

import cv2
import numpy as np

from reloblur.formats.masks import blur_ratio


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two binary masks; 1 when both are empty.

    Benchmarks never score a static pair (empty truth) with it: see :func:`area_fraction`.

    >>> a = np.zeros((4, 4)); a[:2] = 1
    >>> b = np.zeros((4, 4)); b[:1] = 1
    >>> iou(a, b)
    0.5
    """
    p, t = prediction > 0, truth > 0
    union = np.count_nonzero(p | t)
    return 1.0 if union == 0 else float(np.count_nonzero(p & t) / union)


def area_recall(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Share of the reference mask the prediction covers; 1 when the reference is empty.

    With :func:`area_precision` it says which way a mask's IoU was lost: a mask that misses
    part of the blurred region has low recall; one that spreads past it, low precision.

    >>> a = np.zeros((4, 4)); a[:2] = 1
    >>> b = np.zeros((4, 4)); b[:1] = 1
    >>> area_recall(b, a), area_recall(a, b)
    (0.5, 1.0)
    """
    p, t = prediction > 0, truth > 0
    marked = np.count_nonzero(t)
    return 1.0 if marked == 0 else float(np.count_nonzero(p & t) / marked)


def area_precision(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Share of the prediction that lies on the reference mask; 1 when the prediction is
    empty (it marked nothing wrongly: :func:`area_recall` counts what it missed).

    >>> a = np.zeros((4, 4)); a[:2] = 1
    >>> b = np.zeros((4, 4)); b[:1] = 1
    >>> area_precision(a, b), area_precision(b, a), area_precision(np.zeros((4, 4)), a)
    (0.5, 1.0, 1.0)
    """
    return area_recall(truth, prediction)


def area_fraction(mask: np.ndarray) -> float:
    """Fraction of the image a mask covers: the error measure of a static pair."""
    return blur_ratio(mask)


def boundary_f_score(prediction: np.ndarray, truth: np.ndarray, *, tolerance: int = 2) -> float:
    """Boundary F-measure: precision and recall of boundary pixels within ``tolerance`` pixels.

    1 when both masks are empty, 0 when exactly one is.
    """

    def boundary(m: np.ndarray) -> np.ndarray:
        m = (m > 0).astype(np.uint8)
        return (m - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0

    bp, bt = boundary(prediction), boundary(truth)
    if not bp.any() and not bt.any():
        return 1.0
    if not bp.any() or not bt.any():
        return 0.0
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_t = cv2.dilate(bt.astype(np.uint8), disk) > 0
    near_p = cv2.dilate(bp.astype(np.uint8), disk) > 0
    precision = np.count_nonzero(bp & near_t) / np.count_nonzero(bp)
    recall = np.count_nonzero(bt & near_p) / np.count_nonzero(bt)
    return 0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall))
