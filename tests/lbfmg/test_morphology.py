"""The mask's clusters, found on the mask or on a reduced copy of it (known answers)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.lbfmg.morphology import clusters_with_boxes


def _blobs(h: int, w: int, factor: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Four blobs on a frame ``factor`` times 180x240: two 8 units apart, one 40 and one 80
    units beyond them. Returns the mask and each blob's pixels."""
    mask = np.zeros((h * factor, w * factor), bool)
    blobs = []
    for top, left, bottom, right in ((20, 20, 60, 50), (20, 58, 70, 90), (100, 130, 140, 170), (20, 170, 50, 230)):
        blob = np.zeros_like(mask)
        blob[top * factor:bottom * factor, left * factor:right * factor] = True
        mask |= blob
        blobs.append(blob)
    return mask, blobs


@pytest.mark.parametrize("factor", [1, 4])
@pytest.mark.parametrize("scale", [1.0, 0.5, 0.25])
def test_blobs_closer_than_the_gap_are_one_cluster_on_a_reduced_copy_too(factor, scale):
    """Two blobs 8 units apart join under a gap of 20 units, the others stay apart (40 and 80
    units away), whether the frame is 1 or 4 times larger and the clusters are decided on it
    or on a copy reduced to a half or a quarter; each box holds its cluster's pixels, with
    slack of at most half the gap plus a reduced pixel."""
    mask, blobs = _blobs(180, 240, factor)
    gap = 20 * factor
    count, labels, stats = clusters_with_boxes(mask, gap, scale=scale)
    assert count == 4  # the background and three clusters
    first, second, third, fourth = (np.unique(labels[blob]) for blob in blobs)
    assert all(len(ids) == 1 and ids[0] > 0 for ids in (first, second, third, fourth))
    assert first[0] == second[0] and len({first[0], third[0], fourth[0]}) == 3
    assert not labels[~mask].any()
    slack = gap // 2 + (1 if scale == 1.0 else int(np.ceil(1 / scale)))
    for label in range(1, count):
        ys, xs = np.nonzero(labels == label)
        x, y, width, height, area = stats[label]
        assert x <= xs.min() and xs.max() < x + width and y <= ys.min() and ys.max() < y + height
        assert xs.min() - x <= slack and x + width - 1 - xs.max() <= slack
        assert ys.min() - y <= slack and y + height - 1 - ys.max() <= slack
        if scale < 1.0:
            assert area == len(ys)


def test_a_reduced_copy_keeps_a_thin_mask_whole():
    """A one-pixel line at 4x the frame covers a small share of each reduced pixel: every
    one of its pixels still gets its cluster."""
    mask = np.zeros((720, 960), bool)
    cv2.line(mask.view(np.uint8), (100, 100), (800, 600), 1, 1)
    count, labels, _ = clusters_with_boxes(mask, 80, scale=0.25)
    assert count == 2
    assert (labels[mask] == 1).all()
