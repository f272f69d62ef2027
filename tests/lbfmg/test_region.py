"""The review app's object tool: the object inside a box drawn on S (known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import box_around, object_on_ground
from reloblur.errors import ImageFormatError
from reloblur.lbfmg.metrics import iou
from reloblur.lbfmg.region import RegionError, segment_object


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("photons", [4000.0, 250.0])  # a long exposure's light, and a short one's at 4x the noise
@pytest.mark.parametrize("margin", [3, 12])  # a careful box, and a loose one
def test_a_box_around_a_textured_object_takes_that_object(seed, photons, margin):
    s, obj = object_on_ground(seed, photons)
    box = box_around(obj, margin)
    found = segment_object(s, box)
    assert iou(found.region, obj) >= 0.97
    outside = np.ones_like(obj)
    outside[box[0]:box[2], box[1]:box[3]] = False
    assert not (found.region & outside).any()
    assert found.box == box
    assert found.box_share == pytest.approx(found.region.sum() / ((box[2] - box[0]) * (box[3] - box[1])))


def test_an_object_the_frame_cuts_is_taken_up_to_the_border():
    """A box drawn to the image's edge has no ring there: the object's pixels on the border
    are the object's, not the background's."""
    s, obj = object_on_ground(3, 1000.0, centre=(60, 12))
    assert obj[:, 0].sum() > 20
    top, _, bottom, right = box_around(obj, 4)
    found = segment_object(s, (top, -10, bottom, right))
    assert found.box[1] == 0
    assert iou(found.region, obj) >= 0.97
    assert found.region[:, 0].sum() >= 0.95 * obj[:, 0].sum()


def test_the_same_box_gives_the_same_object_in_every_format():
    """Seeded: the same call twice is the same; uint8, uint16 and float S of one image agree."""
    s, obj = object_on_ground(4, 1000.0)
    box = box_around(obj, 6)
    first = segment_object(s, box).region
    assert np.array_equal(segment_object(s, box).region, first)
    assert np.array_equal(segment_object(s.astype(np.uint16) * 257, box).region, first)
    assert np.array_equal(segment_object(s / 255.0, box).region, first)


@pytest.mark.parametrize("box, words", [
    ((130, 10, 150, 40), "outside"),
    ((10, 170, 40, 200), "outside"),
    ((20, 20, 22, 60), "at least 4 px"),
    ((0, 0, 120, 160), "whole frame"),
    ((-5, -5, 500, 500), "whole frame"),
])
def test_a_box_that_cannot_hold_an_object_is_refused_with_the_reason(box, words):
    s, _ = object_on_ground(0, 1000.0)
    with pytest.raises(RegionError, match=words):
        segment_object(s, box)


def test_a_box_over_nothing_but_ground_says_nothing_stands_out():
    flat = np.full((120, 160, 3), 128, np.uint8)
    with pytest.raises(RegionError, match="nothing in the box stands out"):
        segment_object(flat, (40, 40, 80, 90))


def test_bad_input_is_refused():
    s, obj = object_on_ground(0, 1000.0)
    bad = s / 255.0
    bad[5, 5, 1] = np.nan
    with pytest.raises(ImageFormatError, match="non-finite"):
        segment_object(bad, box_around(obj, 4))
    with pytest.raises(ImageFormatError, match="ring"):
        segment_object(s, box_around(obj, 4), ring=0)
