"""Known answers for the static rendering residual (``kappa |grad B|``): a radial profile
recovered from its tiles, and a moving object's edges kept out of it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from reloblur.lbfmg.kernels import at_pixels
from reloblur.lbfmg.residual import _scattered_order, fit_edge_residual, fit_edge_residual_field

H, W = 360, 540
SIGMA = 0.01  # noise of the smoothed difference


def _radius2() -> np.ndarray:
    """Squared distance from the centre over the half-diagonal (1 at the corners)."""
    yy, xx = np.mgrid[0:H, 0:W]
    return ((xx - (W - 1) / 2) ** 2 + (yy - (H - 1) / 2) ** 2) / (((W - 1) / 2) ** 2 + ((H - 1) / 2) ** 2)


def _static_pair(k0: float, k1: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A difference whose variance is ``SIGMA^2 + (k0 + k1 r^6) |grad|^2`` (the model)."""
    rng = np.random.default_rng(seed)
    gradient = np.abs(rng.normal(0, 0.05, (H, W))).astype(np.float32)
    kappa2 = k0 + k1 * _radius2() ** 3
    difference = (rng.normal(0, 1, (H, W)) * np.sqrt(SIGMA**2 + kappa2 * gradient**2)).astype(np.float32)
    return difference, np.full((H, W), SIGMA**2, np.float32), gradient


def test_a_radial_residual_is_recovered_from_the_tiles():
    k0, k1 = 0.1**2, 0.6**2  # 0.1 px at the centre, 0.61 px at the corners
    difference, variance, gradient = _static_pair(k0, k1, seed=1)
    result = fit_edge_residual_field(difference, variance, gradient, np.ones((H, W), bool))
    assert result.tiles == 16
    truth = np.sqrt(k0 + k1 * _radius2() ** 3)
    assert isinstance(result.kappa, np.ndarray)
    assert np.abs(result.kappa - truth).max() < 0.1  # px, over the frame
    assert abs(result.kappa[H // 2, W // 2] - 0.1) < 0.05
    assert abs(result.kappa[0, 0] - np.sqrt(k0 + k1)) < 0.1


def test_pure_noise_has_no_residual():
    difference, variance, gradient = _static_pair(0.0, 0.0, seed=2)
    result = fit_edge_residual_field(difference, variance, gradient, np.ones((H, W), bool))
    assert np.max(result.kappa) < 0.05 and result.typical < 0.05


def test_a_moving_objects_edges_do_not_become_the_residual():
    """A smooth static scene (noise alone) and one object whose edges are the frame's
    strongest gradients and differ by far more than noise: a fit over the whole frame takes
    them as the rendering residual; per tile, they are one outlier of sixteen."""
    rng = np.random.default_rng(3)
    difference, variance, gradient = _static_pair(0.0, 0.0, seed=3)
    edges = np.zeros((H, W), bool)
    edges[30:150, 40:200] = True
    edges[36:144, 46:194] = False  # a 6-px outline: 1.7 % of the frame, 2 of the 36 bins' worth
    gradient[edges] = 0.5
    difference[edges] = rng.choice([-1, 1], edges.sum()) * rng.uniform(0.1, 0.3, edges.sum())
    usable = np.ones((H, W), bool)
    whole, _ = fit_edge_residual(difference, variance, gradient, usable)
    field = fit_edge_residual_field(difference, variance, gradient, usable)
    assert whole > 0.15  # the failure this guards against
    assert np.max(field.kappa) < 0.05


def test_too_few_tiles_fall_back_to_one_fit():
    difference, variance, gradient = _static_pair(0.2**2, 0.0, seed=4)
    usable = np.zeros((H, W), bool)
    usable[:90, :] = True  # four tiles of the sixteen
    result = fit_edge_residual_field(difference, variance, gradient, usable)
    assert result.tiles == 0
    assert abs(result.typical - 0.2) < 0.04


def test_the_batched_nonnegative_least_squares_is_scipys():
    """The tiles' fits solve many two-unknown problems at once; each must be exactly the
    non-negative least-squares solution (scipy's active-set ``nnls`` as the reference)."""
    from scipy.optimize import nnls

    from reloblur.lbfmg.residual import _nonnegative_least_squares

    rng = np.random.default_rng(5)
    for unknowns in (1, 2):
        design = rng.normal(0, 1, (300, 36, unknowns)) * rng.uniform(0.1, 10, (300, 1, unknowns))
        target = rng.normal(0, 1, (300, 36)) + rng.normal(0, 1, (300, 1))  # many solutions on a face
        solved = _nonnegative_least_squares(design, target)
        assert (solved >= 0).all()
        for problem in range(300):
            reference, _ = nnls(design[problem], target[problem])
            np.testing.assert_allclose(solved[problem], reference, rtol=1e-9, atol=1e-12)


def test_the_noise_fits_nonnegative_least_squares_is_scipys():
    """The noise-level fit's three-unknown problems, solved by enumerating supports: the
    same solutions as scipy's active-set ``nnls``, including those on a face of the orthant."""
    from scipy.optimize import nnls

    from reloblur.robust import nonnegative_least_squares

    rng = np.random.default_rng(11)
    on_a_face = 0
    for unknowns in (1, 2, 3, 4):
        for _ in range(200):
            design = np.abs(rng.normal(0, 1, (24, unknowns))) * rng.uniform(0.1, 10, (1, unknowns))
            target = design @ rng.normal(0.2, 1, unknowns) + rng.normal(0, 0.3, 24)
            solved = nonnegative_least_squares(design, target)
            reference, _ = nnls(design, target)
            np.testing.assert_allclose(solved, reference, rtol=1e-9, atol=1e-12)
            on_a_face += int((reference == 0).any() and (reference > 0).any())
    assert on_a_face > 50  # the constrained cases were exercised, not only interior optima
    with pytest.raises(ValueError, match="5 unknowns"):
        nonnegative_least_squares(np.ones((8, 5)), np.ones(8))


def test_a_mask_worker_starts_without_scipy():
    """What a ``mask generate`` worker imports (scipy took 0.6 s of its start), and the
    table the black-clipping correction reads is scipy's to the bit."""
    probe = "import sys, reloblur.pipeline.masks, reloblur.batch; print('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
    from scipy import special

    from reloblur.lbfmg.clipping import _BLACK_FACTORS, _BLACK_SHARES

    a = special.ndtri(1.0 - _BLACK_SHARES)
    density = np.exp(-0.5 * a * a) / np.sqrt(2 * np.pi)
    with_scipy = np.clip(1.0 - a / np.maximum(a * (1.0 - _BLACK_SHARES) + density, 1e-6), 0.0, 1.0)
    np.testing.assert_array_equal(_BLACK_FACTORS, with_scipy.astype(np.float32))


def test_at_pixels_gathers_what_indexing_does():
    """The mask steps gather planar images at flat pixel indices with ``at_pixels``: the same
    values, in the same order and shape, as ``planes[:, index]`` and as a boolean map's
    ``planes[:, map]``."""
    rng = np.random.default_rng(5)
    planes = rng.normal(0, 1, (3, 20, 30)).astype(np.float32)
    index = rng.integers(0, 600, (4, 50))
    assert np.array_equal(at_pixels(planes, index), planes.reshape(3, -1)[:, index])
    where = rng.random((20, 30)) < 0.3
    assert np.array_equal(at_pixels(planes, np.flatnonzero(where)), planes[:, where])
    assert np.array_equal(at_pixels(planes.reshape(3, -1), np.array([599, 0])), planes.reshape(3, -1)[:, [599, 0]])


def test_the_samples_tied_at_a_bound_are_taken_in_an_order_spread_over_the_region():
    """The edge fits take samples tied at a bin's bound first come first, in
    ``_scattered_order``: any prefix of it (the tied samples a bin takes) leaves no gap
    wider than twice its even share, where the sampling order (raster) leaves one of
    almost the whole region."""
    for n in (3333, 4000, 10_000):
        order = _scattered_order(n)
        assert np.array_equal(np.sort(order), np.arange(n))
        for k in (5, 37, 100, 1000, 2500):
            taken = np.sort(order[:k])
            gaps = np.diff(np.concatenate([[-1], taken, [n]]))
            assert gaps.max() <= 2 * n / k
