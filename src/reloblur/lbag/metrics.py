"""ReLoBlur's evaluation metrics, computed exactly as the original evaluation does.

Per image, on RGB in [0, 1], after clamping and **quantising to 8-bit levels**:

- PSNR: ``10 log10(1 / MSE)`` over all pixels and channels.
- Weighted PSNR (local PSNR): ``MSE_w = sum(se * w) / sum(w) / 3`` with ``w`` the binary
  blur mask; undefined (``None``) for an empty mask.
- SSIM: 11x11 Gaussian window (sigma 1.5), per RGB channel, **valid** convolution (the map
  is 10 px smaller each way), ``C1 = 0.01**2``, ``C2 = 0.03**2``; the mean of the map.
- Weighted SSIM: the same map weighted by the mask cropped by 5 px on every side:
  ``sum(map * w) / max(sum(w), 1) / 3``; ``None`` for an empty mask.

All arithmetic is float32, as in the original; values match its figures to 1e-4.

``convention="lmdvit"`` follows the later papers (LMD-ViT) so that numbers can be compared
with theirs: **no 8-bit quantisation** (values only clamped to [0, 1]) and PSNR as the
``pyiqa`` library computes it on RGB, ``10 log10(1 / (MSE + 1e-8))`` (data range 1); the
weighted PSNR likewise. Their SSIM settings are not documented where this project could
check them, so SSIM keeps the original definition, on the unquantised values. Reports say
which convention was used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

WINDOW = 11
SIGMA = 1.5
C1 = 0.01**2
C2 = 0.03**2


@dataclass(frozen=True)
class ImageMetrics:
    """PSNR and SSIM of one image, and their mask-weighted versions (``None`` without a mask)."""
    psnr: float
    ssim: float
    weighted_psnr: float | None
    weighted_ssim: float | None


def quantize(x: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to 8-bit levels (what saving as PNG does)."""
    return torch.round(torch.clamp(x, 0.0, 1.0) * 255.0) / 255.0


def gaussian_window(channels: int, *, size: int = WINDOW, sigma: float = SIGMA,
                    device: torch.device | None = None) -> Tensor:
    """``(channels, 1, size, size)`` normalised Gaussian kernel for a grouped conv."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = torch.outer(g, g)
    return window.expand(channels, 1, size, size).contiguous()


def ssim_map(x: Tensor, y: Tensor) -> Tensor:
    """Per-channel SSIM map with valid convolution: ``(N, C, H - 10, W - 10)``."""
    channels = x.shape[1]
    window = gaussian_window(channels, device=x.device).to(x.dtype)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    sigma_xx = blur(x * x) - mu_xx
    sigma_yy = blur(y * y) - mu_yy
    sigma_xy = blur(x * y) - mu_xy
    return ((2 * mu_xy + C1) * (2 * sigma_xy + C2)) / ((mu_xx + mu_yy + C1) * (sigma_xx + sigma_yy + C2))


def crop_to_ssim_map(mask: Tensor) -> Tensor:
    """Crop a full-size mask by half a window on every side to match :func:`ssim_map`."""
    m = WINDOW // 2
    return mask[..., m:-m, m:-m]


def _as_batch(image: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(np.asarray(image) if not isinstance(image, Tensor) else image)
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    t = t.float()
    if t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] != 3:
        t = t.permute(2, 0, 1)  # HWC -> CHW
    return t.unsqueeze(0) if t.ndim == 3 else t


def _as_mask(mask: Tensor | np.ndarray) -> Tensor:
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, Tensor) else mask)
    if m.ndim == 3 and m.shape[-1] in (3, 4):
        m = m[..., 0]  # HWC mask: first channel, as the original loader
    while m.ndim < 4:
        m = m.unsqueeze(0)
    return (m > 0).float()


Convention = Literal["original", "lmdvit"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
# pyiqa's PSNR adds this to the MSE (LMD-ViT's convention).
PYIQA_EPS = 1e-8


def _psnr(mse: Tensor, convention: Convention) -> float:
    if convention == "lmdvit":
        return float(10 * torch.log10(1.0 / (mse + PYIQA_EPS)))
    return float(10 * torch.log10(1.0 / mse)) if mse > 0 else math.inf


def image_metrics(pred: Tensor | np.ndarray, target: Tensor | np.ndarray,
                  mask: Tensor | np.ndarray | None = None, *, convention: Convention = "original") -> ImageMetrics:
    """The four ReLoBlur metrics of one image.

    Parameters
    ----------
    pred, target
        ``(3, H, W)`` / ``(1, 3, H, W)`` float in [0, 1] or ``(H, W, 3)`` uint8.
    mask
        ``(H, W)`` blur mask (> 0 is blurred), or None for no weighted metrics.
    convention
        ``original`` (ReLoBlur's evaluation) or ``lmdvit`` (see the module docstring).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"metric convention {convention!r}: choose {' or '.join(CONVENTIONS)}")
    prepare = quantize if convention == "original" else (lambda t: torch.clamp(t, 0.0, 1.0))
    x = prepare(_as_batch(pred))
    y = prepare(_as_batch(target))
    if x.shape != y.shape:
        raise ValueError(f"prediction {tuple(x.shape)} and target {tuple(y.shape)} differ in shape")
    se = (x - y) ** 2
    mse = se.mean()
    psnr = _psnr(mse, convention)
    smap = ssim_map(x, y)
    ssim = float(smap.mean())
    weighted_psnr = weighted_ssim = None
    if mask is not None:
        w = _as_mask(mask).to(x.device)
        if w.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"mask {tuple(w.shape[-2:])} and image {tuple(x.shape[-2:])} differ in size")
        total = w.sum()
        if total > 0:
            mse_w = (se * w).sum() / total / 3
            weighted_psnr = _psnr(mse_w, convention)
            wc = crop_to_ssim_map(w)
            weighted_ssim = float((smap * wc).sum() / torch.clamp(wc.sum(), min=1.0) / 3)
    return ImageMetrics(psnr, ssim, weighted_psnr, weighted_ssim)
