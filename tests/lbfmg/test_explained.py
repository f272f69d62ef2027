"""Known answers for the local models that explain a region of a first mask away."""

from __future__ import annotations

import cv2
import numpy as np

from conftest import displaced
from reloblur.lbfmg.explained import fit_local_shift


def test_fit_local_shift_recovers_a_known_displacement():
    """S is B's texture moved by (0.4, -0.3) px: sampled at ``x + d``, S is B again, so
    ``d`` comes back as the displacement, within 0.02 px. On one straight edge only the
    displacement across it is fixed: it comes back, and the one along it stays zero."""
    rng = np.random.default_rng(4)
    texture = np.stack([cv2.GaussianBlur(rng.normal(0.5, 0.2, (80, 90)).astype(np.float32), (0, 0), 2.5)
                        for _ in range(3)], -1)
    region = np.zeros((80, 90), bool)
    region[10:-10, 10:-10] = True
    planar = lambda image: np.ascontiguousarray(np.moveaxis(image, -1, 0))  # noqa: E731
    fit = fit_local_shift(planar(texture), planar(displaced(texture, 0.4, -0.3)), region, np.ones((3, 80, 90)))
    assert fit is not None
    np.testing.assert_allclose(fit[0], [0.4, -0.3], atol=0.02)
    edge = np.broadcast_to(cv2.GaussianBlur(np.where(np.arange(90) < 45, 0.1, 0.8).astype(np.float32)[None].repeat(80, 0),
                                            (0, 0), 1.5)[..., None], (80, 90, 3))
    fit = fit_local_shift(planar(edge), planar(displaced(edge, 0.6)), region, np.ones((3, 80, 90)))
    assert fit is not None
    np.testing.assert_allclose(fit[0], [0.6, 0.0], atol=0.03)
    assert fit_local_shift(planar(edge), planar(edge), np.zeros((80, 90), bool), np.ones((3, 80, 90))) is None
