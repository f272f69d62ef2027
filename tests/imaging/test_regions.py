"""Known answers for ``reloblur.imaging.regions``."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from reloblur.imaging.regions import connected_regions


@pytest.mark.parametrize("connectivity", [4, 8])
def test_regions_on_their_box_are_opencvs_on_the_frame(connectivity):
    """Scattered regions in one part of a frame: the count, every label and every region's
    statistics are what OpenCV gives on the whole frame; the background's area is the rest."""
    rng = np.random.default_rng(2)
    mask = np.zeros((120, 160), bool)
    mask[30:80, 50:130] = rng.random((50, 80)) < 0.35
    count, labels, stats = connected_regions(mask, connectivity=connectivity)
    expected_count, expected_labels, expected_stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=connectivity)
    assert count == expected_count > 10
    assert np.array_equal(labels, expected_labels)
    assert np.array_equal(stats[1:], expected_stats[1:])
    assert stats[0, cv2.CC_STAT_AREA] == expected_stats[0, cv2.CC_STAT_AREA]


def test_an_empty_map_is_all_background():
    count, labels, stats = connected_regions(np.zeros((7, 9), np.uint8))
    assert count == 1 and not labels.any() and stats[0, cv2.CC_STAT_AREA] == 63
