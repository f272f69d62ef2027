"""Known answers for the robust fits in ``reloblur.robust``."""

from __future__ import annotations

import numpy as np

from reloblur.robust import (
    MAD_TO_SIGMA,
    biweight_weights,
    fit_gain_field,
    fit_row_gain,
    huber_weights,
    mad_along_last,
    mad_sigma,
    median_along_last,
    median_in_place,
    median_of_sorted,
    quantile_runs,
    spread_median_of_sorted,
    stable_argsort,
)


def test_a_gain_field_measured_in_one_corner_does_not_run_away_over_the_rest_of_the_frame():
    """A frame usable only in its top-left tenth (the rest clipped): the quadratic log gain
    fits that corner's noise, and extrapolated over the frame it would run to absurd gains
    (the mask benchmark met 1e30 and beyond, then infinities). Held to the range it takes
    where it was measured, the field stays near the true 1.3 everywhere."""
    rng = np.random.default_rng(4)
    h, w = 240, 320
    sharp = rng.uniform(0.2, 0.8, (1, h, w))
    blur = sharp * 1.3 * rng.lognormal(0, 0.05, (1, h, w))
    usable = np.zeros((h, w), bool)
    usable[:40, :60] = True
    gains = fit_gain_field(blur, sharp, usable)
    assert np.isfinite(gains).all()
    inside = gains[0][usable]
    assert gains.min() >= inside.min() - 1e-6 and gains.max() <= inside.max() + 1e-6
    np.testing.assert_allclose(gains, 1.3, rtol=0.05)


def test_a_row_gain_recovers_a_flicker_that_a_rolling_shutter_banded_and_ignores_a_moving_object():
    """Known answer: S's rows scaled by 1 + a sin(...) (a light flickering across a rolling
    shutter's readout: 3.3 periods a frame, as 100 Hz over a 1/30 s readout), with 3 %
    multiplicative noise and a bright object covering a third of the frame's width over half
    its height. The profile is recovered within 1 % (of the gain) at amplitudes of 3 and
    10 %, 2 % on the object's rows; with no flicker, the object alone does not make one."""
    rng = np.random.default_rng(11)
    h, w = 359, 538
    sharp = rng.uniform(0.1, 0.8, (3, h, w))
    blur = sharp * rng.lognormal(0, 0.03, sharp.shape)
    blur[:, 90:270, 200:380] = 0.9  # a moving object, as bright as nothing behind it
    usable = np.ones((h, w), bool)
    assert fit_row_gain(blur, sharp, usable) is None
    for amplitude in (0.03, 0.10):
        bands = 1 + amplitude * np.sin(2 * np.pi * 3.3 * np.arange(h) / h + 0.7)
        gain = fit_row_gain(blur, sharp / bands[None, :, None], usable)
        assert gain is not None
        error = np.abs(gain / bands - 1)
        # The object's rows: a third of each is the object, which moves their median a little.
        assert np.delete(error, np.s_[90:270]).max() < 0.01 and error.max() < 0.02


def test_the_fast_medians_are_numpys_to_the_bit():
    """The fits' medians, by one partition of the caller's sample or a sort of short rows,
    give the value ``np.median`` does (the middle one, or the mean of the middle two), for
    odd and even sizes; so do the MAD and the Huber weights built on them."""
    rng = np.random.default_rng(8)
    for size in (1, 2, 3, 10, 11, 625, 20_000, 20_001):
        values = rng.standard_t(3, size)
        assert median_in_place(values.copy()) == np.median(values)
        expected = 1.4826 * np.median(np.abs(values - np.median(values)))
        assert mad_sigma(values) == expected
        assert mad_sigma(values, center=0.25) == 1.4826 * np.median(np.abs(values - 0.25))
    rows = rng.normal(0, 1, (96, 36))
    assert np.array_equal(median_along_last(rows), np.median(rows, axis=-1))
    for axis in (0, 1, -1):
        scale = 1.4826 * np.median(np.abs(rows), axis=axis, keepdims=True)
        z = np.abs(rows) / (scale + 1e-12)
        assert np.array_equal(huber_weights(rows, axis=axis), np.where(z <= 1.345, 1.0, 1.345 / z))


def test_the_biweight_rejects_what_lies_beyond_its_bound_and_keeps_a_location_fit_on_the_majority():
    """Tukey's biweight, 4.685 robust sigmas: 1 at zero, ``(1 - u^2)^2`` inside, 0 beyond.
    As IRLS weights of a location fit, 30 % of values at +50 (what moved) leave the estimate
    at the majority's centre within 0.05 (Huber's weights keep pulling it: above 0.1)."""
    weights = biweight_weights(np.array([0.0, -2.0, 4.685, 4.7, -100.0]), scale=1.0)
    np.testing.assert_allclose(weights, [1.0, (1 - (2 / 4.685) ** 2) ** 2, 0.0, 0.0, 0.0], atol=1e-9)
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0.0, 1.0, 700), rng.normal(50.0, 1.0, 300)])
    estimates = {}
    for name, weigh in (("biweight", lambda r, s: biweight_weights(r, scale=s)),
                        ("huber", lambda r, s: huber_weights(r, scale=s))):
        centre = float(np.median(values))
        for _ in range(20):
            residual = values - centre
            w = weigh(residual, mad_sigma(residual, center=0.0))
            centre = float(np.sum(w * values) / np.sum(w))
        estimates[name] = centre
    assert abs(estimates["biweight"] - values[:700].mean()) < 0.05
    assert estimates["huber"] - values[:700].mean() > 0.1


def test_the_mad_leaves_its_input_alone_and_skips_non_finite_values():
    values = np.array([3.0, np.nan, 1.0, np.inf, 2.0, 100.0])
    before = values.copy()
    assert mad_sigma(values) == 1.4826 * np.median(np.abs(np.array([3.0, 1.0, 2.0, 100.0]) - 2.5))
    np.testing.assert_array_equal(values, before)
    assert np.isnan(mad_sigma(np.array([np.nan]))) and np.isnan(median_in_place(np.array([])))


def _runs_as_sets(positions: np.ndarray, size: int, count: int) -> np.ndarray:
    return np.sort(positions.reshape(positions.shape[:-1] + (count, size)), axis=-1)


def test_quantile_runs_are_a_stable_argsorts_runs():
    """On rows of the edge fits' shapes (float32 ratios, 4000 a row and runs of 666 with the
    top 4 left out; 666 a group in runs of 111), every run holds exactly the positions a
    stable argsort puts there, and the sorted values are numpy's; also on rows of a few
    integer levels, where most bounds fall inside runs of tied values."""
    rng = np.random.default_rng(3)
    for shape, size, count in (((48, 4000), 666, 6), ((48, 6, 666), 111, 6), ((5, 10), 5, 2)):
        for values in (rng.lognormal(0, 2, shape).astype(np.float32), rng.integers(0, 4, shape).astype(np.float32)):
            positions, ordered = quantile_runs(values, size, count)
            assert positions.shape == shape[:-1] + (size * count,)
            expected = np.argsort(values, axis=-1, kind="stable")[..., : size * count]
            assert np.array_equal(_runs_as_sets(positions, size, count), _runs_as_sets(expected, size, count))
            assert np.array_equal(ordered, np.sort(values, axis=-1))


def test_quantile_runs_fill_a_bound_with_tied_values_first_come_and_rank_nan_last():
    """Values tied across a bound fill the lower run in the order they come in; NaN ranks
    above every number (as numpy sorts it), also where NaN reaches into the runs kept, and
    the codes of many runs (beyond int8) keep their order."""
    values = np.array([[0.7, 0.2, 0.2, 0.2, 0.9, 0.1]])
    positions, _ = quantile_runs(values, 3, 2)
    assert sorted(positions[0, :3].tolist()) == [1, 2, 5] and sorted(positions[0, 3:].tolist()) == [0, 3, 4]
    with_nan = np.array([[1.0, np.nan, 0.0, 2.0, np.nan]])
    positions, ordered = quantile_runs(with_nan, 2, 2)
    assert sorted(positions[0, :2].tolist()) == [0, 2] and sorted(positions[0, 2:].tolist()) == [1, 3]
    assert ordered[0, :3].tolist() == [0.0, 1.0, 2.0] and np.isnan(ordered[0, 3:]).all()
    many = np.arange(300.0)[::-1]  # 100 runs of 3: codes beyond int8
    positions, _ = quantile_runs(many, 3, 100)
    assert sorted(many[positions[:3]].tolist()) == [0.0, 1.0, 2.0]
    assert sorted(many[positions[-3:]].tolist()) == [297.0, 298.0, 299.0]


def test_the_spread_of_sorted_rows_is_the_median_of_their_deviations():
    """The median absolute deviation from the median, found by bisection on sorted rows, is
    numpy's median of the deviations to the last bit: odd and even lengths, one value, many
    ties (integer levels), and heavy tails."""
    rng = np.random.default_rng(5)
    samples = [rng.normal(size=(32, 625)), rng.normal(size=(3, 624)), rng.integers(0, 4, (20, 101)).astype(float),
               np.round(rng.standard_cauchy((8, 50)), 1), rng.normal(size=(4, 1)), rng.normal(size=(2, 2))]
    for values in samples:
        ordered = np.sort(values, axis=-1)
        centre = median_of_sorted(ordered)
        expected = np.median(np.abs(values - centre[:, None]), axis=-1)
        assert np.array_equal(spread_median_of_sorted(ordered, centre), expected)
    assert spread_median_of_sorted(np.array([[0.0, 1.0, 1.0, 1.0, 9.0]]), np.array([1.0])).tolist() == [0.0]


def test_mad_along_last_is_two_medians_of_many_rows():
    """The robust sigma of each row, by one sort, is what two medians give to the last bit,
    on the noise fit's float64 bins and the edge fits' float32 (regions, bins, samples)."""
    rng = np.random.default_rng(6)
    for values in (rng.normal(size=(32, 625)), rng.lognormal(0, 1, (48, 36, 111)).astype(np.float32)):
        centre = median_along_last(values)[..., None]
        expected = MAD_TO_SIGMA * median_along_last(np.abs(values - centre))
        got = mad_along_last(values)
        assert got.shape == values.shape[:-1] and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_stable_argsort_is_numpys_stable_order_ties_and_signed_zeros_included() -> None:
    # The noise fit's and the black-noise fit's level bins depend on which of the tied levels land in which bin, so
    # the faster sort must give numpy's stable order exactly, not only a sorted one.
    rng = np.random.default_rng(5)
    pool = np.concatenate([rng.normal(0, 1, 40), [0.0, -0.0, 1.0, np.inf, -np.inf]]).astype(np.float32)
    for size in (1, 2, 17, 5000):
        values = rng.choice(pool, size).astype(np.float64)
        np.testing.assert_array_equal(stable_argsort(values), np.argsort(values, kind="stable"))
    finer = rng.normal(0, 1, 300)  # not float32 values: numpy's sort itself
    np.testing.assert_array_equal(stable_argsort(finer), np.argsort(finer, kind="stable"))
