"""The mask benchmark's own bookkeeping: how far a pair's objects moved, and the IoU of
its moving pairs in bands of that distance (``benchmarks/pairgen.py``, ``benchmarks/mask_bench.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import benchmark_module


@pytest.fixture(scope="module")
def pairgen():
    return benchmark_module("pairgen")


@pytest.fixture(scope="module")
def mask_bench():
    return benchmark_module("mask_bench")


def _condition(pairgen, name: str):
    return next(c for c in pairgen.CONDITIONS if c.name == name)


def test_a_static_pair_travels_nothing_and_a_moving_one_as_far_as_its_draw(pairgen):
    still = pairgen.with_size(_condition(pairgen, "default rig"), spin=0.0)
    assert pairgen.make_pair(still, 0, static=True, seed=5).travel == 0.0
    low, high = still.travel
    for index in range(3):
        # Without a turn, the farthest point moves as far as the object: within the row's draw.
        assert low <= pairgen.make_pair(still, index, seed=5).travel <= high


def test_a_turn_and_a_change_of_scale_add_what_they_move_the_rim_by(pairgen):
    patch = np.zeros((40, 40, 3))
    objects = [(patch, None, None, np.array([3.0, 4.0]), -10.0, 0.05),  # 5 px, turning 10 degrees
               (patch[:20, :20], None, None, np.array([0.0, 9.0]), 0.0, 0.0)]
    assert pairgen._travel(objects) == pytest.approx(5 + 20 * (math.radians(10) + 0.05))
    assert pairgen._travel([]) == 0.0
    turning = _condition(pairgen, "turning and approaching objects")
    straight = pairgen.with_size(turning, spin=0.0)
    for index in range(3):
        # A turn of zero is drawn too: the same objects, translations and scale changes.
        spun, unspun = (pairgen.make_pair(c, index, seed=9).travel for c in (turning, straight))
        assert spun > unspun


def test_travel_bands_cover_every_displacement_and_refuse_what_is_not_one(mask_bench):
    assert [mask_bench.travel_band(t) for t in (0.0, 9.99, 10.0, 19.9, 20.0, 400.0)] == [
        "<10 px", "<10 px", "10-20 px", "10-20 px", ">=20 px", ">=20 px"]
    for bad in (-1.0, math.nan):
        with pytest.raises(ValueError, match="not a displacement"):
            mask_bench.travel_band(bad)


def test_the_bands_are_pooled_over_repeats_by_their_pairs(mask_bench):
    first = mask_bench._by_travel([0.4, 0.9], [6.0, 30.0])
    second = mask_bench._by_travel([0.6, 0.8, 0.5], [7.0, 8.0, 12.0])
    assert first == {"<10 px": {"mean_iou": 0.4, "pairs": 1}, ">=20 px": {"mean_iou": 0.9, "pairs": 1}}
    assert list(second) == ["<10 px", "10-20 px"]
    result = {"results": {"a row": [{"lbfmg": _row(first)}, {"lbfmg": _row(second)}]}}
    table = mask_bench.markdown(result)
    # (0.4 * 1 + 0.7 * 2) / 3 pairs; a band one repeat lacks counts the other's pairs only.
    assert "| a row | 0.600 (3) | 0.500 (1) | 0.900 (1) |" in table


def _row(bands: dict) -> dict:
    return {"mean_iou": 0.5, "min_iou": 0.4, "mean_boundary_f": 0.5, "static_area_percent_max": 0.0,
            "seconds_per_pair": 0.1, "iou_by_travel": bands}
