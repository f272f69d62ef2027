"""Known answers for the static rendering residual (``kappa |grad B|``): a radial profile
recovered from its tiles, and a moving object's edges kept out of it."""

from __future__ import annotations

import numpy as np

from reloblur.lbfmg.generate import fit_edge_residual, fit_edge_residual_field

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

    from reloblur.lbfmg.generate import _nonnegative_least_squares

    rng = np.random.default_rng(5)
    for unknowns in (1, 2):
        design = rng.normal(0, 1, (300, 36, unknowns)) * rng.uniform(0.1, 10, (300, 1, unknowns))
        target = rng.normal(0, 1, (300, 36)) + rng.normal(0, 1, (300, 1))  # many solutions on a face
        solved = _nonnegative_least_squares(design, target)
        assert (solved >= 0).all()
        for problem in range(300):
            reference, _ = nnls(design[problem], target[problem])
            np.testing.assert_allclose(solved[problem], reference, rtol=1e-9, atol=1e-12)
