"""Robust statistics used by the colour fit, registration, motion masks, the noise model and
the smooth gain field that holds the cameras' vignetting difference.

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


def pixel_noise_sigma(image: np.ndarray, *, step: int = 1) -> np.ndarray:
    """Per-channel standard deviation of pixel noise, robust to texture.

    Immerkaer's (1996) operator (the difference of two Laplacians: it cancels planes and
    gradients, and scales white noise of ``sigma`` to ``6 sigma``), with the median of its
    magnitude rather than the mean: edges and fine texture occupy a minority of pixels, so
    they move the median little where they inflate the mean. Still an upper bound on a
    densely textured image.

    Parameters
    ----------
    image
        ``(H, W)`` or ``(H, W, C)`` float image, at least 3x3.
    step
        Use every ``step``-th row and column of the operator's output (speed on large images).

    Returns
    -------
    numpy.ndarray
        ``(C,)`` float64 sigmas, in the image's units (``(1,)`` for a 2-D image).

    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 256)[None, :, None] + rng.normal(0, 0.02, (256, 256, 1))
    >>> round(float(pixel_noise_sigma(x)[0]), 3)
    0.02
    """
    x = np.asarray(image, np.float64)
    x = x[..., None] if x.ndim == 2 else x
    c, e, n = x[1:-1, 1:-1], x[1:-1, :-2] + x[1:-1, 2:], x[:-2, 1:-1] + x[2:, 1:-1]
    diagonals = x[:-2, :-2] + x[:-2, 2:] + x[2:, :-2] + x[2:, 2:]
    response = (4 * c - 2 * (e + n) + diagonals)[::step, ::step]
    return np.median(np.abs(response), axis=(0, 1)) / (HALF_NORMAL_MEDIAN * 6)


def huber_weights(residual: np.ndarray, *, scale: float | None = None, k: float = HUBER_K,
                  axis: int | None = None) -> np.ndarray:
    """IRLS weights of Huber's loss: 1 within ``k`` robust sigmas, ``k / |r|`` beyond.

    ``residual`` may be signed or a norm; ``scale`` defaults to the MAD scale about zero,
    over all of ``residual``, or along ``axis`` (many independent fits at once).

    >>> huber_weights(np.array([0.0, 1.0, 10.0]), scale=1.0).round(3).tolist()
    [1.0, 1.0, 0.135]
    """
    r = np.abs(np.asarray(residual, np.float64))
    if scale is not None:
        s: float | np.ndarray = scale
    elif axis is None:
        s = MAD_TO_SIGMA * float(np.median(r))
    else:
        s = MAD_TO_SIGMA * np.median(r, axis=axis, keepdims=True)
    z = r / (s + 1e-12)
    return np.where(z <= k, 1.0, k / np.maximum(z, 1e-12))


def fit_gain_field(blur_linear: np.ndarray, sharp_linear: np.ndarray, usable: np.ndarray, *,
                   order: int = 2, samples: int = 8_000, iterations: int = 4) -> np.ndarray:
    """The per-channel gain field ``G`` with ``B ~= G * S``, robustly, in linear light.

    ``log G`` is a polynomial in normalised image coordinates of degree ``order`` (0: one
    gain per channel; 2: quadratic, which holds vignetting and illumination falloff);
    Huber-weighted least squares on an even, deterministic subsample of ``usable`` pixels,
    so a moving minority does not bend it.

    Parameters
    ----------
    blur_linear, sharp_linear
        ``(C, H, W)`` linear images, positive where ``usable``.
    usable
        ``(H, W)`` bool.

    Returns
    -------
    numpy.ndarray
        ``(C, H, W)`` float32 gains; ones if fewer than 200 pixels are usable.
    """
    channels, h, w = blur_linear.shape
    index = np.flatnonzero(usable)
    if index.size < 200:
        return np.ones((channels, h, w), np.float32)
    if index.size > samples:
        index = index[np.linspace(0, index.size - 1, samples).astype(np.intp)]
    ys, xs = np.divmod(index, w)
    u, v = xs / max(w - 1, 1) * 2 - 1, ys / max(h - 1, 1) * 2 - 1
    powers = [(0, 0)] + ([(1, 0), (0, 1)] if order >= 1 else []) + ([(2, 0), (1, 1), (0, 2)] if order >= 2 else [])
    design = np.stack([u**i * v**j for i, j in powers], axis=-1)
    gu, gv = np.linspace(-1, 1, w), np.linspace(-1, 1, h)
    gains = np.empty((channels, h, w), np.float32)
    for c in range(channels):
        b = blur_linear[c].ravel()[index]
        s = sharp_linear[c].ravel()[index]
        target = np.log(b) - np.log(s)
        # Shot noise makes the log ratio of a dark pixel less certain: weight by signal.
        base = np.minimum(b, s) / (np.minimum(b, s) + 0.01)
        weights = base.copy()
        coefficients = np.zeros(design.shape[1])
        for _ in range(iterations):
            # Normal equations: six well-scaled terms (u, v in [-1, 1]) solve as exactly as
            # lstsq, at a fraction of its cost.
            weighted = design * weights[:, None]
            coefficients = np.linalg.solve(weighted.T @ design + 1e-12 * np.eye(design.shape[1]), weighted.T @ target)
            weights = base * huber_weights(target - design @ coefficients)
        # Summed as a polynomial in u plus one in v plus the cross term: the same value as
        # summing every term over the full grid, at a fraction of the work.
        in_u, in_v, cross = np.zeros(w), np.zeros(h), 0.0
        for k, (i, j) in zip(coefficients, powers):
            if j == 0:
                in_u += k * gu**i
            elif i == 0:
                in_v += k * gv**j
            else:
                cross = k
        log_gain = np.add.outer(in_v, in_u)
        if cross:
            log_gain += cross * np.outer(gv, gu)
        gains[c] = np.exp(log_gain)
    return gains
