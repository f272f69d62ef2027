"""The review app's object tool: the object inside a box drawn on S (known answers)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import box_around, object_on_ground
from reloblur.errors import ImageFormatError, ReloblurError
from reloblur.lbfmg.metrics import iou
from reloblur.lbfmg.morphology import filled_hull
from reloblur.lbfmg.region import RegionError, fill_hulls, segment_object


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


def _planar(s: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(s.transpose(2, 0, 1), np.float32) / 255.0


def _outline(obj: np.ndarray, width: int) -> np.ndarray:
    """The object's pixels within ``width`` px of its edge: evidence that missed its inside."""
    inner = cv2.erode(obj.astype(np.uint8), np.ones((2 * width + 1, 2 * width + 1), np.uint8)) > 0
    return obj & ~inner


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("photons", [4000.0, 250.0])
def test_the_hull_of_an_objects_outline_is_filled_with_the_object_and_no_ground(seed, photons):
    """Known answer: evidence on a textured object's outline only (its inside clipped, or drowned
    in S's noise); the fill takes the inside S shows, and the textured ground around it stays."""
    s, obj = object_on_ground(seed, photons)
    outline = _outline(obj, 3)
    filled = fill_hulls(outline, _planar(s), np.ones_like(obj), gap=6, min_pixels=50)
    assert iou(filled, obj) >= 0.97
    assert np.count_nonzero(filled & ~obj) <= 0.02 * np.count_nonzero(obj)
    assert (filled >= outline).all()  # nothing taken away


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("frame_short", [60, 30])
def test_a_frame_larger_than_the_cuts_resolution_is_filled_from_a_reduced_copy(seed, frame_short):
    """Known answer: the same outline's hull filled with the 120 px frame seen at 60 and 30 px
    (its clusters and GrabCut; as a 2152x1436 frame is seen at 720 px): the object is still
    taken, to well within a reduced pixel along its edge (2-4 px there: up to 15 % of its
    area)."""
    s, obj = object_on_ground(seed, 1000.0)
    outline = _outline(obj, 3)
    filled = fill_hulls(outline, _planar(s), np.ones_like(obj), gap=6, min_pixels=50, frame_short=frame_short)
    assert iou(filled, obj) >= 0.95
    assert np.count_nonzero(filled & ~obj) <= 0.04 * np.count_nonzero(obj)
    assert (filled >= outline).all()
    assert not (filled & ~filled_hull(outline)).any()  # nothing outside the hull
    # At full resolution the cut is exact here: differing, the fill came from the reduced copy.
    full = fill_hulls(outline, _planar(s), np.ones_like(obj), gap=6, min_pixels=50, frame_short=obj.shape[0])
    assert iou(full, obj) == 1.0 and not np.array_equal(filled, full)


def test_a_frame_of_no_pixels_to_see_is_refused():
    s, obj = object_on_ground(0, 1000.0)
    with pytest.raises(ReloblurError, match="frame_short = 0"):
        fill_hulls(_outline(obj, 3), _planar(s), np.ones_like(obj), gap=6, min_pixels=50, frame_short=0)


def test_the_leading_and_trailing_bands_of_a_uniform_objects_motion_span_its_inside():
    """A uniform-looking object that moved 8 px to the right: B and S differ only where it
    uncovered ground and where it covered new ground. Within ``gap`` of each other the two
    bands are one object's, and the inside between them is filled."""
    s, obj = object_on_ground(5, 1000.0)
    moved = np.roll(obj, 8, axis=1)
    bands = obj ^ moved
    swept = obj | moved
    width = int(np.ptp(np.nonzero(obj.any(axis=0))[0]))
    joined = fill_hulls(bands, _planar(s), np.ones_like(obj), gap=width + 4, min_pixels=50)
    assert np.count_nonzero(joined & obj) >= 0.95 * np.count_nonzero(obj)
    assert np.count_nonzero(joined & ~swept) <= 0.02 * np.count_nonzero(obj)


def test_ground_inside_a_hull_is_not_taken():
    """Two false specks on the ground, joined into one cluster by a large ``gap``: their hull
    spans ground that looks like the ground around it, and stays unmasked."""
    s, obj = object_on_ground(8, 1000.0, centre=(60, 120))
    specks = np.zeros_like(obj)
    specks[20:30, 10:20] = specks[90:100, 50:60] = True
    assert not (specks & obj).any()
    filled = fill_hulls(specks, _planar(s), np.ones_like(obj), gap=200, min_pixels=50)
    hull = filled_hull(specks)
    assert np.count_nonzero(hull) > 5 * np.count_nonzero(specks)  # there was ground to take
    assert np.count_nonzero(filled & ~specks) <= 0.05 * np.count_nonzero(hull)


def test_specks_and_undefined_s_are_left_as_they_are():
    s, obj = object_on_ground(6, 1000.0)
    outline = _outline(obj, 3)
    valid = np.ones_like(obj)
    valid[:, : obj.shape[1] // 2] = False  # S undefined on the left half (align --no-crop)
    filled = fill_hulls(outline, _planar(s), valid, gap=6, min_pixels=50)
    assert not (filled & ~outline & ~valid).any()
    assert np.count_nonzero(filled & ~outline & valid) >= 0.9 * np.count_nonzero(obj & ~outline & valid)
    small = fill_hulls(outline, _planar(s), np.ones_like(obj), gap=6, min_pixels=outline.sum() + 1)
    assert np.array_equal(small, outline)
    empty = np.zeros_like(obj)
    assert not fill_hulls(empty, _planar(s), valid, gap=6, min_pixels=50).any()


def test_a_grey_s_fills_as_its_three_equal_channels():
    s, obj = object_on_ground(7, 1000.0)
    grey = cv2.cvtColor(s, cv2.COLOR_RGB2GRAY)
    outline = _outline(obj, 3)
    as_grey = fill_hulls(outline, grey[None].astype(np.float32) / 255.0, np.ones_like(obj), gap=6, min_pixels=50)
    as_rgb = fill_hulls(outline, _planar(np.repeat(grey[..., None], 3, axis=2)), np.ones_like(obj), gap=6, min_pixels=50)
    assert np.array_equal(as_grey, as_rgb)
    assert iou(as_grey, obj) >= 0.9


def _legs_on_ground(seed: int, photons: float) -> tuple[np.ndarray, np.ndarray]:
    """An 8-bit sRGB S: two red legs 10 px thick from one hip, apart as a walker's in
    mid-stride, on a textured green ground, with Poisson-Gaussian noise; and the legs' pixels."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    ground = cv2.resize(rng.uniform(0.15, 0.5, (h // 10, w // 10, 3)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC) * np.float32([0.5, 0.9, 0.6])
    legs = np.zeros((h, w), np.uint8)
    cv2.line(legs, (80, 15), (45, 105), 1, 10)
    cv2.line(legs, (80, 15), (115, 105), 1, 10)
    on = legs > 0
    linear = np.clip(np.where(on[..., None], np.float32([0.8, 0.3, 0.3]), ground), 0, 1) ** 2.2
    linear = rng.poisson(linear * photons) / photons + rng.normal(0, 2 / photons, linear.shape)
    return np.clip(np.rint(np.clip(linear, 0, 1) ** (1 / 2.2) * 255), 0, 255).astype(np.uint8), on


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("photons", [4000.0, 250.0])
def test_ground_a_bracket_filled_between_a_walkers_legs_is_taken_back(seed, photons):
    """Known answer: the legs are the evidence, and the ground between them, which each row
    of legs brackets, was filled by geometry alone (``doubtful``): the cut takes it back, to
    within 5 % of it, and keeps the legs. Not told it is doubtful, the fill leaves it."""
    s, legs = _legs_on_ground(seed, photons)
    rows = np.nonzero(legs.any(axis=1))[0]
    between = np.zeros_like(legs)
    for y in rows:
        xs = np.nonzero(legs[y])[0]
        between[y, xs.min():xs.max() + 1] = True
    between &= ~legs
    assert between.sum() > legs.sum()  # a wide triangle of ground
    filled = legs | between
    judged = fill_hulls(filled, _planar(s), np.ones_like(legs), gap=6, min_pixels=50, doubtful=between)
    assert np.count_nonzero(judged & between) <= 0.05 * np.count_nonzero(between)
    assert (judged >= legs).all()
    untold = fill_hulls(filled, _planar(s), np.ones_like(legs), gap=6, min_pixels=50)
    assert (untold >= filled).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_an_object_the_border_cuts_is_filled_from_a_ring_of_judged_ground_only(seed):
    """Known answer: a uniform object the frame's bottom border cuts, its evidence its
    outline within the judged frame, which stops 6 px short of the border (the smoothing's
    strip, where nothing is judged and the object goes on). Its ring is learnt where the
    frame was judged: the inside is taken. Learnt from the strip too, the ground's model
    holds the object's one colour, and most of the inside is lost."""
    s, obj = object_on_ground(seed, 1000.0, centre=(112, 80))
    h, w = obj.shape
    assert obj[-1].any()  # the border cuts it
    noise = np.random.default_rng(seed).normal(0, 3, s.shape)
    s = np.where(obj[..., None], np.clip(np.float64([200, 90, 80]) + noise, 0, 255), s).astype(np.uint8)
    judged = np.ones_like(obj)
    judged[h - 6:] = False
    outline = _outline(obj, 3) & judged
    inside = obj & judged & ~outline
    told = fill_hulls(outline, _planar(s), np.ones_like(obj), gap=6, min_pixels=50, judged=judged)
    assert np.count_nonzero(told & inside) >= 0.9 * np.count_nonzero(inside)
    assert np.count_nonzero(told & ~obj) <= 0.02 * np.count_nonzero(obj)
    untold = fill_hulls(outline, _planar(s), np.ones_like(obj), gap=6, min_pixels=50)
    assert np.count_nonzero(untold & inside) < 0.5 * np.count_nonzero(inside)
