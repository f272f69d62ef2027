from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy import ndimage

from reloblur.postprocess.registration import _bilinear


def test_bilinear_sampling_matches_scipy_to_the_bit():
    # The registration's sampler replaced scipy's order-1 map_coordinates; the fits (and so
    # every aligned output) stay byte-identical only if each sample does.
    rng = np.random.default_rng(3)
    image = (rng.random((301, 517), dtype=np.float32) * 7.3).astype(np.float32)
    h, w = image.shape
    rows, cols = rng.uniform(0, h - 1, 100_000), rng.uniform(0, w - 1, 100_000)
    rows[:50], cols[50:100] = h - 1, w - 1  # the last row and column have no neighbour beyond
    rows[100:200], cols[200:300] = np.round(rows[100:200]), np.round(cols[200:300])  # on the grid
    expected = ndimage.map_coordinates(image, [rows, cols], order=1, mode="nearest")
    sampled = _bilinear(image, rows, cols)
    assert sampled.dtype == np.float32
    np.testing.assert_array_equal(sampled, expected)
    quarter_down_half_right = 0.75 * (image[10, 20] + image[10, 21]) / 2 + 0.25 * (image[11, 20] + image[11, 21]) / 2
    np.testing.assert_allclose(_bilinear(image, np.array([10.25]), np.array([20.5])), quarter_down_half_right,
                               rtol=1e-6)


def test_an_align_worker_starts_without_scipy():
    # What a worker imports to align pairs; scipy alone took 0.13 s of its start.
    probe = "import sys, reloblur.pipeline.align, reloblur.batch; print('scipy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
