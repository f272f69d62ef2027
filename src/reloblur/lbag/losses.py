"""LBAG's training losses: L1, SSIM and FFT per scale with the shift-tolerant minimum, plus
gate supervision by the blur mask.

Per scale, each image loss is evaluated against the target shifted by every
``(dx, dy)`` in ``{-1, 0, 1}^2`` (reflect-padded on one side, cropped on the other) and
the minimum over the 9 shifts is taken **per sample**, then averaged over the batch: the
two cameras of a beam-splitter rig never align to better than about a pixel, and the
model should not be punished for that. The gate loss (MSE between each scale's gate and
the mask resized by nearest neighbour) has no shift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from reloblur.lbag.metrics import ssim_map

SHIFTS = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the LBAG loss terms (the original recipe's by default)."""
    l1: float = 1.0
    ssim: float = 1.0
    fft: float = 0.1
    gate: float = 0.1
    shift_tolerant: bool = True


def shift(target: Tensor, dx: int, dy: int) -> Tensor:
    """``target`` moved by ``(dx, dy)`` pixels, same size (reflect-filled edge)."""
    if dx:
        pad = (1, 0, 0, 0) if dx > 0 else (0, 1, 0, 0)
        target = F.pad(target, pad, mode="reflect")
        target = target[..., :, :-1] if dx > 0 else target[..., :, 1:]
    if dy:
        pad = (0, 0, 1, 0) if dy > 0 else (0, 0, 0, 1)
        target = F.pad(target, pad, mode="reflect")
        target = target[..., :-1, :] if dy > 0 else target[..., 1:, :]
    return target


def l1_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per sample: ``(N,)``."""
    return (pred - target).abs().flatten(1).mean(1)


def ssim_loss_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """Minus the SSIM of metrics.md (valid 11x11 Gaussian window), per sample."""
    return -ssim_map(pred, target).flatten(1).mean(1)


def fft_per_sample(pred: Tensor, target: Tensor) -> Tensor:
    """Mean complex magnitude of the difference of the 2-D real FFTs, per sample."""
    diff = torch.fft.rfft2(pred.float()) - torch.fft.rfft2(target.float())
    return diff.abs().flatten(1).mean(1)


def shift_tolerant(loss: Callable[[Tensor, Tensor], Tensor], pred: Tensor, target: Tensor) -> Tensor:
    """Per-sample minimum of ``loss`` over the 9 one-pixel shifts of the target."""
    values = torch.stack([loss(pred, shift(target, dx, dy)) for dx, dy in SHIFTS], dim=0)
    return values.min(dim=0).values


def multiscale_targets(sharp: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Targets for the 1/4, 1/2 and full scales: sharp bilinear, mask nearest."""
    images = [F.interpolate(sharp, scale_factor=s, mode="bilinear", align_corners=False) for s in (0.25, 0.5)]
    masks = [F.interpolate(mask, scale_factor=s, mode="nearest") for s in (0.25, 0.5)]
    return images + [sharp], masks + [mask]


def lbag_loss(images: list[Tensor], gates: list[Tensor], sharp: Tensor, mask: Tensor,
              weights: LossWeights = LossWeights()) -> tuple[Tensor, dict[str, float]]:
    """Total training loss and its parts (summed over scales, batch-averaged).

    Parameters
    ----------
    images, gates
        The model's outputs at 1/4, 1/2 and full scale.
    sharp, mask
        ``(N, 3, H, W)`` target in [0, 1] and ``(N, 1, H, W)`` binary blur mask.
    """
    targets, masks = multiscale_targets(sharp, mask)
    parts = {"l1": 0.0, "ssim": 0.0, "fft": 0.0, "gate": 0.0}
    total = sharp.new_zeros(())
    for pred, gate, target, mask_s in zip(images, gates, targets, masks):
        for name, fn, weight in (
            ("l1", l1_per_sample, weights.l1),
            ("ssim", ssim_loss_per_sample, weights.ssim),
            ("fft", fft_per_sample, weights.fft),
        ):
            if weight == 0:
                continue
            per_sample = shift_tolerant(fn, pred, target) if weights.shift_tolerant else fn(pred, target)
            value = per_sample.mean()
            total = total + weight * value
            parts[name] += float(value.detach())
        if weights.gate:
            value = F.mse_loss(gate, mask_s)
            total = total + weights.gate * value
            parts["gate"] += float(value.detach())
    parts["total"] = float(total.detach())
    return total, parts
