"""Robust statistics used by the colour fit, registration, motion masks and the noise model.

Each constant says why it has its value, so that no module carries its own copy.
"""

from __future__ import annotations

import numpy as np

# Scale of the median absolute deviation that makes it an unbiased estimate of a normal
# distribution's standard deviation: 1 / Phi^-1(3/4).
MAD_TO_SIGMA = 1.4826
# Huber's tuning constant: 95 % efficiency at the normal model while bounding outliers.
HUBER_K = 1.345
# Median of |N(0, 1)|: converts the median of absolute values to a standard deviation.
HALF_NORMAL_MEDIAN = 0.6745


def mad_sigma(values: np.ndarray, *, center: float | None = None) -> float:
    """Robust standard deviation of ``values``: ``MAD_TO_SIGMA * median(|v - center|)``.

    ``center`` defaults to the median. NaNs are ignored; an empty input gives ``nan``.

    >>> round(mad_sigma(np.array([1.0, 2.0, 3.0, 4.0, 100.0])), 4)
    1.4826
    """
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    c = float(np.median(v)) if center is None else center
    return float(MAD_TO_SIGMA * np.median(np.abs(v - c)))


def huber_weights(residual: np.ndarray, *, scale: float | None = None, k: float = HUBER_K) -> np.ndarray:
    """IRLS weights of Huber's loss: 1 within ``k`` robust sigmas, ``k / |r|`` beyond.

    ``residual`` may be signed or a norm; ``scale`` defaults to the MAD scale about zero.

    >>> huber_weights(np.array([0.0, 1.0, 10.0]), scale=1.0).round(3).tolist()
    [1.0, 1.0, 0.135]
    """
    r = np.abs(np.asarray(residual, np.float64))
    s = MAD_TO_SIGMA * float(np.median(r)) if scale is None else scale
    z = r / (s + 1e-12)
    return np.where(z <= k, 1.0, k / np.maximum(z, 1e-12))
