"""Running LBAG on images of any size: padding, overlapping tiles, smooth blending.

Whole-image inference pads bottom/right by reflection to a multiple of 4 and crops back,
as the original test code does. For large images, :func:`deblur` runs overlapping tiles
and blends them with weights that ramp linearly across each overlap (weight 1 inside a
tile and at the image border), so seams vanish and memory is bounded by the tile size.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from reloblur.errors import ReloblurError
from reloblur.lbag.device import cpu_has_native_bf16
from reloblur.lbag.model import SIZE_MULTIPLE, pad_to_multiple


@dataclass(frozen=True)
class TileOptions:
    """Tile side and overlap in pixels; ``tile=None`` runs whole images. ``batch`` tiles go
    through the model at once (every tile of an image has the same size, so they stack):
    fewer, larger calls keep a GPU busy, at ``batch`` times one tile's activation memory
    (see :func:`default_tile_batch`)."""

    tile: int | None = 1024
    overlap: int = 64
    batch: int = 1

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ReloblurError(f"tile batch {self.batch} must be at least 1")
        if self.tile is not None:
            if self.tile < 4 * SIZE_MULTIPLE:
                raise ReloblurError(f"tile size {self.tile} is too small (min {4 * SIZE_MULTIPLE})")
            if not 0 <= self.overlap < self.tile // 2:
                raise ReloblurError(f"overlap {self.overlap} must be in [0, tile/2) for tile {self.tile}")


@torch.no_grad()
def run_whole(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Full-scale output and gate of ``x`` (``(N, 3, H, W)``), padded and cropped back."""
    padded, (h, w) = pad_to_multiple(x)
    images, gates = model(padded)
    return images[-1][..., :h, :w], gates[-1][..., :h, :w]


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(size: int, overlap: int, ramp_start: bool, ramp_end: bool) -> Tensor:
    w = torch.ones(size)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 0.5) / overlap
        if ramp_start:
            w[:overlap] = torch.minimum(w[:overlap], ramp)
        if ramp_end:
            w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def default_tile_batch(device: torch.device | None) -> int:
    """Tiles per model call: 4 on a GPU, where one tile leaves it partly idle; 1 on the CPU,
    where a batch of 4 measured no faster and held 2.9x the memory (docs/benchmarks.md)."""
    return 1 if device is None or device.type == "cpu" else 4


AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision for inference: ``off``, ``bf16`` (CPU and recent GPUs; 2.3x on the
    reference CPU, docs/benchmarks.md; on a CPU without bf16 arithmetic many times slower,
    with a warning) or ``fp16`` (GPUs only)."""
    if amp not in AMP_DTYPES:
        raise ReloblurError(f"--amp {amp!r}: choose from {', '.join(AMP_DTYPES)}")
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return contextlib.nullcontext()
    if dtype is torch.float16 and device.type == "cpu":
        raise ReloblurError("--amp fp16 runs on a GPU only; on the CPU use bf16")
    if device.type == "cpu" and not cpu_has_native_bf16():
        _warn_slow_bf16()
    return torch.autocast(device_type=device.type, dtype=dtype)


@functools.cache
def _warn_slow_bf16() -> None:
    """Once a process: every image and tile enters the autocast again."""
    logging.getLogger(__name__).warning("--amp bf16: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX), where "
                                        "bf16 runs many times slower than --amp off")


@torch.no_grad()
def deblur(model: nn.Module, image: Tensor, *, tiles: TileOptions = TileOptions(),
           device: torch.device | None = None, amp: str = "off") -> tuple[Tensor, Tensor]:
    """Deblur one image.

    Parameters
    ----------
    model
        An LBAG in eval mode.
    image
        ``(3, H, W)`` float in [0, 1] (any device).
    tiles
        Tiling; images no larger than ``tiles.tile`` in both sides run whole.
    device
        Where to run the model (default: the model's device). Blending happens on the CPU.
    amp
        Mixed precision (:func:`autocast`); the output is float32 either way.

    Returns
    -------
    (output, gate)
        ``(3, H, W)`` and ``(1, H, W)`` float CPU tensors; the output is not clamped.
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ReloblurError(f"expected a (3, H, W) image, got {tuple(image.shape)}")
    device = device or next(model.parameters()).device
    _, h, w = image.shape
    tile = tiles.tile
    if tile is None or (h <= tile and w <= tile):
        with autocast(device, amp):
            out, gate = run_whole(model, image[None].to(device))
        return out[0].float().cpu(), gate[0].float().cpu()

    out = torch.zeros(3, h, w)
    gate = torch.zeros(1, h, w)
    weight = torch.zeros(1, h, w)
    # Every tile is min(tile, side) on each axis (the last start is pulled back to the
    # border), so any run of tiles stacks into one batch.
    th, tw = min(tile, h), min(tile, w)
    origins = [(y0, x0) for y0 in _starts(h, tile, tiles.overlap) for x0 in _starts(w, tile, tiles.overlap)]
    for first in range(0, len(origins), tiles.batch):
        chunk = origins[first : first + tiles.batch]
        crops = torch.stack([image[:, y0 : y0 + th, x0 : x0 + tw] for y0, x0 in chunk]).to(device)
        with autocast(device, amp):
            tile_out, tile_gate = run_whole(model, crops)
        tile_out, tile_gate = tile_out.float().cpu(), tile_gate.float().cpu()
        for index, (y0, x0) in enumerate(chunk):
            wy = _ramp(th, tiles.overlap, y0 > 0, y0 + th < h)
            wx = _ramp(tw, tiles.overlap, x0 > 0, x0 + tw < w)
            blend = (wy[:, None] * wx[None, :])[None]
            out[:, y0 : y0 + th, x0 : x0 + tw] += tile_out[index] * blend
            gate[:, y0 : y0 + th, x0 : x0 + tw] += tile_gate[index] * blend
            weight[:, y0 : y0 + th, x0 : x0 + tw] += blend
    return out / weight, gate / weight


def to_tensor(image: np.ndarray) -> Tensor:
    """``(H, W, 3)`` uint8/uint16 RGB -> ``(3, H, W)`` float32 in [0, 1]."""
    from reloblur.imaging.imageio import ensure_rgb, to_float

    return torch.from_numpy(np.ascontiguousarray(to_float(ensure_rgb(image)).transpose(2, 0, 1)))


def to_uint8(tensor: Tensor) -> np.ndarray:
    """``(C, H, W)`` float -> ``(H, W, C)`` (or ``(H, W)`` for C = 1) uint8, clamped and rounded."""
    array = torch.round(torch.clamp(tensor, 0, 1) * 255).to(torch.uint8).cpu().numpy()
    array = array.transpose(1, 2, 0)
    return array[:, :, 0] if array.shape[2] == 1 else array
