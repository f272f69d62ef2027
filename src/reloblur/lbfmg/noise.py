"""Noise-level functions: how much B - S varies on a static pixel, as a function of its level.

Camera noise is Poisson-Gaussian in linear light: a pixel of linear value ``x`` varies by
``var = a * x + b`` (``a`` from photon shot noise, the gain; ``b`` from read noise). After the
display encoding ``v = f(x)`` (sRGB), the variance becomes ``f'(x)^2 * (a * x + b)`` plus
quantisation, so dark regions of an 8-bit image are far noisier than bright ones. B - S
of an aligned static pixel carries both cameras' noise (S's short exposure makes it the
noisier one); its variance is the same form with ``a = a_B + a_S`` and ``b = b_B + b_S``.

:func:`fit_noise_level` estimates that function from the pair itself: pixels are binned by
level, each bin's robust spread of the difference (MAD) is measured, and the model is
fitted to the bins with non-negative least squares and Huber weights. Moving pixels are a
minority of most bins and an outlier of the few bins they dominate, so neither inflates
the fit much.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reloblur.lbfmg.params import Transfer
from reloblur.robust import (
    evenly_spaced,
    huber_weights,
    mad_along_last,
    mad_sigma,
    median_of_sorted,
    nonnegative_least_squares,
    stable_argsort,
)

_BASIS_NAMES = ("quantisation", "shot", "read")


def srgb_decode(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded ``v`` in [0, 1] -> linear ``x`` (float64)."""
    v = np.clip(np.asarray(v, np.float64), 0.0, 1.0)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_slope(x: np.ndarray) -> np.ndarray:
    """``d f / d x`` of the sRGB encoding at linear ``x``; finite at 0 (the linear toe)."""
    x = np.asarray(x, np.float64)
    return np.where(x <= 0.0031308, 12.92, 1.055 / 2.4 * np.power(np.maximum(x, 0.0031308), 1 / 2.4 - 1))


def noise_basis(level: np.ndarray, transfer: Transfer = "srgb") -> np.ndarray:
    """Basis functions of the variance at display ``level``: ``(..., 3)``.

    Columns: quantisation (constant), shot noise (``f'(x)^2 x``), read noise (``f'(x)^2``).
    For linear levels the first is zero: a constant holds read noise and quantisation alike.
    """
    level = np.asarray(level, np.float64)
    if transfer == "linear":
        # Quantisation and read noise are both constant here: one column holds them.
        x = np.clip(level, 0.0, 1.0)
        return np.stack([np.zeros_like(level), x, np.ones_like(level)], axis=-1)
    x = srgb_decode(level)
    slope2 = srgb_slope(x) ** 2
    return np.stack([np.ones_like(level), slope2 * x, slope2], axis=-1)


@dataclass(frozen=True)
class NoiseLevel:
    """``sigma(level)`` of one channel: ``sqrt(basis(level) @ coefficients)``.

    Attributes
    ----------
    coefficients
        Non-negative ``(quantisation, shot, read)`` variance coefficients, in the units of
        the statistic that was fitted (display units squared).
    transfer
        The encoding of the levels: ``srgb`` or ``linear``.
    bins
        ``(n, 4)``: per bin the median level, the measured sigma, the pixel count, and the
        sigma the bin's fine-scale difference supports (:func:`fit_noise_level`'s ``fine``;
        the measured sigma where it was not given).
    floor
        Smallest sigma this function returns (keeps a flat, noiseless region from
        dividing by zero).
    """

    coefficients: tuple[float, float, float]
    transfer: Transfer
    bins: np.ndarray
    floor: float

    def __call__(self, level: np.ndarray) -> np.ndarray:
        """Predicted sigma at each ``level`` (float32, same shape)."""
        variance = noise_basis(level, self.transfer) @ np.asarray(self.coefficients)
        return np.sqrt(np.maximum(variance, self.floor**2)).astype(np.float32)

    def table(self, size: int = 1024) -> np.ndarray:
        """``sigma`` at ``size`` evenly spaced levels in [0, 1], for fast lookup (:func:`table_index`)."""
        return self(np.linspace(0.0, 1.0, size))


    def to_dict(self) -> dict[str, object]:
        """JSON form for sidecars and calibration files: coefficients by name, the floor,
        and sigma at a few levels (for reading, not for :meth:`from_dict`)."""
        probe = np.array([0.05, 0.2, 0.5, 0.8])
        return {
            "transfer": self.transfer,
            "coefficients": dict(zip(_BASIS_NAMES, (float(c) for c in self.coefficients))),
            "floor": self.floor,
            "sigma_at": {f"{p:g}": float(s) for p, s in zip(probe, self(probe))},
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> NoiseLevel:
        """The function :meth:`to_dict` wrote (its per-bin measurements are not kept)."""
        coefficients = data["coefficients"]
        if not isinstance(coefficients, dict) or data.get("transfer") not in ("srgb", "linear"):
            raise ValueError("noise model needs 'coefficients' by name and a transfer")
        values = tuple(float(coefficients[name]) for name in _BASIS_NAMES)
        if not all(np.isfinite(values)) or min(values) < 0:
            raise ValueError(f"noise model coefficients {values} must be finite and >= 0")
        return cls(values, data["transfer"], np.zeros((0, 4)), float(data.get("floor", 1e-5)))  # type: ignore[arg-type]


def table_index(level: np.ndarray, size: int = 1024) -> np.ndarray:
    """The entry nearest ``level`` of a table of ``size`` over [0, 1] (1024 entries are
    1/1023 apart), read as ``table.take(index)``: computed once, the indices serve every
    table over the same levels."""
    scaled = np.multiply(level, size - 1)
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, size - 1, out=scaled)
    return scaled.astype(np.intp)


def fit_noise_level(difference: np.ndarray, level: np.ndarray, usable: np.ndarray, *,
                    transfer: Transfer = "srgb", bins: int = 32, min_count: int = 64,
                    iterations: int = 5, max_samples: int = 20_000, fine: np.ndarray | None = None) -> NoiseLevel:
    """Fit ``sigma(level)`` of ``difference`` on the ``usable`` pixels.

    Parameters
    ----------
    difference
        ``(H, W)`` float, a zero-mean statistic on static pixels (B - S, smoothed or not).
    level
        ``(H, W)`` float in [0, 1], the display level each pixel is judged at.
    usable
        ``(H, W)`` bool: valid, unclipped pixels.
    transfer
        Encoding of ``level``; picks the basis functions.
    bins
        Number of equally populated level bins.
    min_count
        Bins with fewer pixels are not used.
    max_samples
        Pixels used at most: an even, deterministic subsample (sigma to about 1 %).
    fine
        ``(H, W)`` float, optional: what smoothing removed from ``difference`` (the
        unsmoothed difference less ``difference``). Noise is averaged down by the smoothing
        in one ratio, the same at every level; a difference that is structure (a moving
        object's blend) passes it unchanged and leaves ``fine`` near zero. Each bin's
        measured sigma is bounded by its ``fine`` spread in the ratio the bins show on
        their median (``bins[:, 3]``): how much of the bin's spread is noise.

    Returns
    -------
    NoiseLevel
        The fitted function; if fewer than 3 bins are usable, a constant (MAD of all).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> level = rng.uniform(0, 1, (200, 200))
    >>> sigma = np.sqrt(1e-4 + 4e-4 * level)
    >>> fit = fit_noise_level(rng.normal(0, sigma), level, np.ones((200, 200), bool), transfer="linear")
    >>> bool(abs(fit(np.array([0.5]))[0] / np.sqrt(3e-4) - 1) < 0.1)
    True
    """
    index = np.flatnonzero(usable)
    index = evenly_spaced(index, max_samples)
    d = np.asarray(difference).ravel()[index].astype(np.float64)
    v = np.asarray(level).ravel()[index].astype(np.float64)
    overall = mad_sigma(d) if d.size else 0.0
    floor = max(overall * 0.05, 1e-5)
    if d.size < 3 * min_count:
        return NoiseLevel((overall**2, 0.0, 0.0), transfer, np.zeros((0, 4)), floor)
    # Equally populated level bins, as rows of one array so each statistic is one call.
    count = min(bins, d.size // min_count)
    per_bin = d.size // count
    order = stable_argsort(v)[: count * per_bin].reshape(count, per_bin)
    sigma = mad_along_last(d[order])
    supported = sigma
    if fine is not None:
        fine_sigma = mad_along_last(np.asarray(fine).ravel()[index].astype(np.float64)[order])
        # The static majority sets the ratio: it depends on the smoothing and on how the
        # camera's processing (demosaicing, compression, resampling) correlates its noise.
        ratio = float(np.median(sigma / np.maximum(fine_sigma, 1e-12)))
        supported = np.minimum(sigma, ratio * fine_sigma)
    # Each bin's levels are a run of the sorted levels: its median needs no partition.
    table = np.stack([median_of_sorted(v[order]), sigma, np.full(count, float(per_bin)), supported], axis=1)
    basis = noise_basis(table[:, 0], transfer)
    variance = table[:, 1] ** 2
    # A bin's variance estimate has relative error ~ sqrt(2 / n) (more for the MAD); fit the
    # relative misfit, so dark, noisy bins and bright, quiet bins count alike.
    weights = np.sqrt(table[:, 2])
    coefficients = np.zeros(3)
    for _ in range(iterations):
        scale = np.maximum(basis @ coefficients, 1e-12) if coefficients.any() else np.maximum(variance, 1e-12)
        a = basis / scale[:, None] * weights[:, None]
        b = variance / scale * weights
        coefficients = nonnegative_least_squares(a, b)
        predicted = np.maximum(basis @ coefficients, 1e-12)
        weights = np.sqrt(table[:, 2]) * huber_weights((variance - predicted) / predicted)
    return NoiseLevel(tuple(float(c) for c in coefficients), transfer, table, floor)  # type: ignore[arg-type]


def guarded_table(noise: NoiseLevel, *, guard: float, size: int = 1024, supported: bool = False) -> np.ndarray:
    """``sigma`` over [0, 1] (``size`` entries): the fit, but never below ``guard`` times the
    measured per-bin sigmas (smoothed over neighbouring bins), which protects against a
    camera curve that is not the assumed one bending the fit's shape. ``supported``: the
    sigmas the bins' fine-scale differences support instead (``bins[:, 3]``)."""
    fitted = noise.table(size)
    bins = noise.bins
    if len(bins) < 3:
        return fitted
    sig = bins[:, 3 if supported else 1]
    padded = np.concatenate([sig[:1], sig, sig[-1:]])
    smooth = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    measured = np.interp(np.linspace(0.0, 1.0, size), bins[:, 0], smooth)
    return np.maximum(fitted, guard * measured).astype(np.float32)
