"""Known answers for the robust fits in ``reloblur.robust``."""

from __future__ import annotations

import numpy as np

from reloblur.robust import fit_gain_field


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
