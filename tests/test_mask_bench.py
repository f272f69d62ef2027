"""The mask benchmark's own bookkeeping: how far a pair's objects moved, and the IoU of
its moving pairs in bands of that distance (``benchmarks/pairgen.py``, ``benchmarks/mask_bench.py``)."""

from __future__ import annotations

import math
from pathlib import Path

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


@pytest.fixture(scope="module")
def mask_ceiling():
    return benchmark_module("mask_ceiling")


def test_twins_leave_the_pair_as_it_was_and_split_its_truth_by_object(pairgen):
    condition = _condition(pairgen, "S noise 4x B")
    for index in range(3):
        pair, twinned = (pairgen.make_pair(condition, index, seed=11, twins=t) for t in (False, True))
        assert pair.twins is None
        for field in ("blur", "sharp", "mask"):
            assert np.array_equal(getattr(pair, field), getattr(twinned, field))
        assert np.array_equal(np.max(twinned.twins.objects, axis=0), pair.mask)


@pytest.mark.parametrize(("row", "dark_ratio"), [("S noise 4x B", 4.0),
                                               ("S exposure 16x shorter: shot noise 4x B, read 16x", 5.5)])
def test_s_is_as_much_noisier_than_b_as_its_row_says(pairgen, row, dark_ratio):
    # The twins' clean cameras are the noisy pair's means; S's noise is s_noise times B's
    # at every level (Poisson-Gaussian, both terms scaled), or, for a shorter exposure at
    # more gain, s_noise in the shot noise and s_read in the read noise, which weighs most
    # in the dark (at 1 % of full scale sqrt(16 * 0.01 / 8000 + (16 * 3 / 8000) ** 2) over
    # sqrt(0.01 / 8000 + (3 / 8000) ** 2), 6.3; about 5.5 over the band from 0.5 to 3 %).
    # Until 2026-12-04 S's read noise grew as s_noise cubed: 4x B was 15x at 2 % of full scale.
    condition = _condition(pairgen, row)
    pair = pairgen.make_pair(condition, 1, static=True, seed=3, twins=True)
    twins = pair.twins
    for (low, high), expected in (((0.005, 0.03), dark_ratio), ((0.1, 0.9), condition.s_noise)):
        band = ((twins.blur_clean > low) & (twins.blur_clean < high)
                & (twins.sharp_clean > low) & (twins.sharp_clean < high))
        noise_b, noise_s = (pair.blur - twins.blur_clean)[band], (twins.sharp_noisy - twins.sharp_clean)[band]
        assert float(np.std(noise_s) / np.std(noise_b)) == pytest.approx(expected, rel=0.12)
        assert abs(float(np.mean(noise_b))) < 1e-4 and abs(float(np.mean(noise_s))) < 1e-3


def test_level_sigma_recovers_a_noise_that_grows_with_level(mask_ceiling):
    rng = np.random.default_rng(0)
    level = rng.uniform(0, 255, (300, 400))
    truth = 0.5 + level / 100  # sigma 0.5 in the dark, 3.05 at full scale
    noise = rng.normal(0, 1, level.shape) * truth
    usable = np.ones(level.shape, bool)
    measured = mask_ceiling.level_sigma(noise, level, usable)
    # Within a bin the sigma varies by its width (1/24 of the range: +-0.05); the estimate
    # is the bin's RMS.
    assert np.median(np.abs(measured / truth - 1)) < 0.03
    assert np.all(np.isinf(mask_ceiling.level_sigma(noise, level, np.zeros_like(usable))))


def test_a_pair_whose_objects_stand_out_is_covered_and_none_is_beyond_any_threshold(pairgen, mask_ceiling):
    pair = pairgen.make_pair(_condition(pairgen, "default rig"), 0, seed=0, twins=True)
    assert pair.mask.any()
    assert mask_ceiling.pair_ceiling(pair, 6.0) == 1.0
    assert mask_ceiling.pair_ceiling(pair, 1e9) == 0.0
    # Without noise-free evidence, nothing stands out: a static pair's B and S differ by noise alone.
    still = pairgen.make_pair(_condition(pairgen, "default rig"), 0, static=True, seed=0, twins=True)
    assert not mask_ceiling.standing_out(still, 6.0).any()


def test_an_object_that_shows_itself_only_through_clipped_values_does_not_stand_out(pairgen, mask_ceiling):
    # The over-exposed row's seeds 0, pair 9: a pale green card both cameras clip in green,
    # a few codes from its ground in red and blue beside S's blown-out ground. Clipped
    # values are bounds, not measurements: on measurements alone the card never stands out
    # (a moving object away from clipping does: the test above).
    card = pairgen.make_pair(_condition(pairgen, "over-exposed, gains differ"), 9, seed=0, twins=True)
    assert card.mask.any()
    assert mask_ceiling.pair_ceiling(card, 6.0) == 0.0
    assert mask_ceiling.pair_ceiling(card, 6.0, (1.5,)) == 0.0


def test_a_camera_matrix_made_for_its_sensor_gives_the_scene_s_colours_where_nothing_clipped(pairgen):
    # The in-camera colour rows' cameras apply ISP_COLOUR to a sensor whose response is the
    # overlap it undoes: on the same scene, their noise-free output is the camera's without
    # a matrix wherever neither clipped (to the outputs' 16-bit codes).
    plain = pairgen.Condition("plain", scenes="default rig")
    matrix = pairgen.Condition("matrix", isp_colour=True, scenes="default rig")
    without = pairgen.make_pair(plain, 0, seed=3, twins=True).twins.blur_clean
    within = pairgen.make_pair(matrix, 0, seed=3, twins=True).twins.blur_clean
    unclipped = np.all((without > 0) & (without < 1) & (within > 0) & (within < 1), axis=2)
    assert unclipped.mean() > 0.8
    np.testing.assert_allclose(within[unclipped], without[unclipped], atol=1e-4)


def test_the_in_camera_rows_matrix_shows_every_sensor_clip_in_its_output(pairgen):
    # mask_ceiling.py takes a pixel as measured where neither camera's output clipped. For
    # cameras that transform colour after their sensors, that holds only if every sensor
    # clip shows in the output: with rows summing to 1 and no positive off-diagonal term,
    # output_c = x_c + sum_k m_ck (x_k - x_c), at least x_c = 1 where that sensor channel
    # is the largest at full scale and at most 0 where it is black.
    matrix = pairgen.ISP_COLOUR
    off_diagonal = matrix[~np.eye(3, dtype=bool)]
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)
    assert np.all(off_diagonal <= 0)
    rng = np.random.default_rng(5)
    sensor = rng.uniform(0, 1, (20_000, 3))
    channel = rng.integers(0, 3, sensor.shape[0])
    white = rng.random(sensor.shape[0]) < 0.5
    sensor[np.arange(sensor.shape[0]), channel] = np.where(white, 1.0, 0.0)
    output = (sensor @ matrix.T)[np.arange(sensor.shape[0]), channel]
    assert np.all(np.where(white, output >= 1.0 - 1e-12, output <= 1e-12))


def test_the_true_homography_kept_as_given_scores_no_registration_error_but_the_lens_difference(pairgen, mask_bench):
    """``aligned(..., exact=True)`` keeps each pair's true homography (``align --no-refine``):
    on the default row its registration error is nil; on the lens-distortion row the
    homography alone misses S's lens difference (2 % of the half-diagonal at the corners,
    about 6.4 px at 538x359): the error is that much, neither doubled nor cancelled."""
    default = _condition(pairgen, "default rig")
    pair = pairgen.make_pair(default, 0, seed=3)
    alignment = mask_bench.aligned(pair, exact=True)[4]
    np.testing.assert_array_equal(alignment.homography, pair.homography)
    assert mask_bench.registration_error(pair, alignment, default.distortion) < 1e-6
    lens = _condition(pairgen, "vignetting + distortion differ")
    pair = pairgen.make_pair(lens, 0, seed=3)
    alignment = mask_bench.aligned(pair, exact=True)[4]
    assert 5.5 < mask_bench.registration_error(pair, alignment, lens.distortion) < 7.5
    # align's own fit models the lens difference: within a pixel.
    assert mask_bench.registration_error(pair, mask_bench.aligned(pair)[4], lens.distortion) < 1.0


def test_the_true_colour_relation_given_as_a_calibration_is_kept_up_to_a_gain(pairgen, mask_bench):
    """``aligned(..., colour=...)`` gives ``align`` the pair's true colour relation as a colour
    calibration: only a gain is fitted on top, within 1 % of 1. On these pairs it is 0.87 %
    off on the colour-transformed row, whose cameras' matrices carry their sensors' clipped
    excess into the outputs the gain is fitted on, and at most 0.02 % elsewhere. Where
    ``align`` undid the cameras' matrices the relation is taken in the sensors' space: the
    same there too, not the outputs' relation (over 0.01 off in some entry)."""
    for name in ("default rig", "over-exposed, colour transformed in camera",
                 "over-exposed, in-camera colour recorded and undone"):
        condition = _condition(pairgen, name)
        pair = pairgen.make_pair(condition, 0, seed=3, twins=True)
        truth = mask_bench.true_relation(pair, condition)
        fit = mask_bench.aligned(pair, colour=truth)[4].color
        assert fit.mode == "calibrated"
        np.testing.assert_allclose(fit.matrix, truth, rtol=0.01, atol=1e-6)
        if condition.isp_recorded:
            assert np.abs(pair.twins.to_blur - truth).max() > 0.01
    fitted = mask_bench.aligned(pairgen.make_pair(_condition(pairgen, "default rig"), 0, seed=3))[4].color
    assert fitted.mode == "matrix"  # without it, the colours are fitted as align fits them
    # Cached pairs were aligned with fitted colours: a run of exact ones cannot read them.
    with pytest.raises(ValueError, match="--exact-colour"):
        mask_bench.run_condition(_condition(pairgen, "default rig"), 1, 0, 0, pairs=Path("unused"), exact_colour=True)


def test_the_mask_step_is_told_s_instant_as_a_session_of_the_rows_rig_records_it(pairgen, mask_bench):
    """A session records S's instant by name (start, middle, end), and `align` carries it
    to `mask generate`; an instant between those has no name, and the mask step is not told."""
    assert mask_bench.recorded_phase(_condition(pairgen, "S at the start of B's exposure (ReLoBlur's rig)").s_phase) == "start"
    assert mask_bench.recorded_phase(_condition(pairgen, "default rig").s_phase) == "middle"
    assert mask_bench.recorded_phase(pairgen.Condition("late", s_phase=1.0).s_phase) == "end"
    assert mask_bench.recorded_phase(pairgen.Condition("between", s_phase=0.25).s_phase) is None


def test_a_row_counts_the_moving_pairs_whose_s_was_taken_at_an_end(pairgen, mask_bench):
    """Told the row's instant (the start), every moving pair is masked as S at an end, and
    no static pair counts; told the middle, none is."""
    start = _condition(pairgen, "S at the start of B's exposure (ReLoBlur's rig)")
    row = mask_bench.run_condition(start, 2, 1, 0)["lbfmg"]
    assert row["moving_at_an_end"] == 2
    # IoU's two parts: a mask's overlap is at most what it covers of the swept region, and
    # at most what of it lies there
    assert 0 < row["mean_iou"] <= min(row["mean_recall"], row["mean_precision"]) <= 1
    assert mask_bench.run_condition(_condition(pairgen, "default rig"), 1, 1, 0)["lbfmg"]["moving_at_an_end"] == 0


def test_the_table_gives_recall_and_precision_and_a_dash_for_runs_that_did_not_record_them(mask_bench):
    """Results written before the benchmark kept IoU's two parts still make a table."""
    scored = {**_row({}), "mean_recall": 0.9, "mean_precision": 0.6}
    table = mask_bench.markdown({"results": {"now": [{"lbfmg": scored}], "before": [{"lbfmg": _row({})}]}})
    assert "| now | **lbfmg** | 0.500 | 0.400 | 0.900 | 0.600 | 0.500 |" in table
    assert "| before | **lbfmg** | 0.500 | 0.400 | - | - | 0.500 |" in table


def test_the_summary_sets_seed_sets_side_by_side_with_the_repeats_range(mask_bench):
    def run(seed: int, ious: list[float], static: list[float]) -> dict:
        repeats = [{"lbfmg": {"mean_iou": iou, "mean_recall": 0.9, "mean_precision": 0.8,
                              "static_area_percent_max": area},
                    "lbfmg v1": {"mean_iou": 0.5}, "plain difference": {"mean_iou": 0.25}}
                   for iou, area in zip(ious, static)]
        return {"seed": seed, "results": {"a row": repeats}}

    table = mask_bench.summary([run(0, [0.8, 0.9], [0.1, 0.7]), run(77, [0.6], [0.0])])
    assert "seed sets 0 / 77" in table.splitlines()[0]
    # Means over the repeats, their range where there are several, and the worst static pair.
    assert ("| a row | 0.850 (0.800-0.900) / 0.600 | 0.900 / 0.900 | 0.800 / 0.800 | 0.70 / 0.00 | "
            "0.500 / 0.500 | 0.250 / 0.250 |") in table
    lacking = {"seed": 500, "results": {}}  # a run of other conditions: the row has nothing there
    assert "| a row | 0.850 (0.800-0.900) / - |" in mask_bench.summary([run(0, [0.8, 0.9], [0.1, 0.7]), lacking])
    with pytest.raises(ValueError, match="no result files"):
        mask_bench.summary([])


def test_the_summary_joins_runs_of_a_few_rows_on_one_seed_set_and_refuses_other_protocols(mask_bench):
    def run(seed: int, row: str, iou: float, size: str = "538x359") -> dict:
        scores = {"mean_iou": iou, "mean_recall": 0.9, "mean_precision": 0.8, "static_area_percent_max": 0.0}
        return {"seed": seed, "size": size, "results": {row: [{"lbfmg": scores}]}}

    table = mask_bench.summary([run(0, "first", 0.8), run(0, "second", 0.7), run(77, "second", 0.6),
                                run(0, "first", 0.1)])  # a second run of a row on one seed set: the first stands
    assert "seed sets 0 / 77" in table.splitlines()[0]
    assert "| first | 0.800 / - |" in table
    assert "| second | 0.700 / 0.600 |" in table
    assert table.index("| first |") < table.index("| second |")
    with pytest.raises(ValueError, match="differ in size"):
        mask_bench.summary([run(0, "first", 0.8), run(0, "second", 0.7, size="2152x1436")])
    # A file written before --exact-colour existed ran without it: it joins a run without it,
    # and a run with it is another protocol.
    plain, exact = ({**run(77, "first", 0.6), "exact_colour": flag} for flag in (False, True))
    assert "| first | 0.800 / 0.600 |" in mask_bench.summary([run(0, "first", 0.8), plain])
    with pytest.raises(ValueError, match="differ in exact_colour"):
        mask_bench.summary([run(0, "first", 0.8), exact])
