"""``reloblur eval``: ReLoBlur metrics of a model (or of existing predictions) on a dataset.

Each image is scored as the original evaluation does (see :mod:`reloblur.lbag.metrics`),
next to the blurry input scored against the same target (the baseline row). Images with
an empty mask have no weighted metrics; they are left out of the weighted means and
counted in ``weighted_skipped``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reloblur.atomic import atomic_write_json, atomic_write_text
from reloblur.batch import make_progress
from reloblur.errors import ReloblurError
from reloblur.formats.dataset import Pair, discover_pairs
from reloblur.imaging.imageio import read_image
from reloblur.lbag.checkpoint import model_from_checkpoint
from reloblur.lbag.data import check_pairs, load_pair
from reloblur.lbag.deblur_files import deblurred_name
from reloblur.lbag.device import resolve_device
from reloblur.lbag.inference import TileOptions, autocast, deblur, default_tile_batch, to_tensor
from reloblur.lbag.metrics import CONVENTIONS, Convention, ImageMetrics, image_metrics, quantize

METRICS = ("psnr", "ssim", "weighted_psnr", "weighted_ssim")
CONVENTION_TEXT = {
    "original": "ReLoBlur original: 8-bit quantised, valid 11x11 Gaussian SSIM on RGB",
    "lmdvit": "LMD-ViT: not quantised, PSNR as pyiqa (RGB, 10 log10(1 / (MSE + 1e-8))); SSIM as the original "
              "(valid 11x11 Gaussian on RGB), unquantised",
}


@dataclass(frozen=True)
class EvalOptions:
    """Options of ``reloblur eval``: exactly one of ``checkpoint`` and ``pred``."""

    data: Path
    checkpoint: Path | None = None
    pred: Path | None = None
    masks: Path | None = None
    split: str | None = "test"
    device: str = "auto"
    tile: int | None = None
    overlap: int = 64
    tile_batch: int | None = None  # tiles per model call; None: inference.default_tile_batch
    out: Path | None = None
    trust_checkpoint: bool = False
    progress: bool = True
    amp: str = "off"  # mixed precision: off, bf16, fp16 (inference.autocast)
    convention: Convention = "original"  # metrics.py: the original evaluation, or LMD-ViT's


@dataclass
class EvalResult:
    """Per-image and mean metrics of the model (or predictions) and of the blurry input."""
    summary: dict[str, float | None]
    baseline: dict[str, float | None]
    images: list[dict[str, Any]] = field(default_factory=list)
    weighted_skipped: int = 0
    masks: bool = True  # False: the dataset has no masks at all (weighted metrics need them)
    source: str = ""
    convention: str = "original"
    csv: str | None = None
    summary_json: str | None = None


def prediction_path(pred_dir: Path, pair: Pair) -> Path:
    """A pair's prediction: where ``reloblur deblur`` puts it (``NN_deblurred.png``), or,
    from tools that keep the input's name, the blur file's name as PNG; the path expected
    when there is none.

    ``deblur`` mirrors the folder it was given: run on the dataset root, the split is part
    of the path; run on one split's folder (``dataset/test``), it is not, and a prediction
    tree without a ``<split>`` folder is read that way, and a prediction missing from it
    is expected there too.
    """
    parts = pair.rel_dir.parts
    folders = [pred_dir.joinpath(*parts)]
    if pair.split is not None and pred_dir.is_dir() and not (pred_dir / pair.split).is_dir():
        folders.insert(0, pred_dir.joinpath(*parts[1:]))
    for folder in folders:
        for name in (deblurred_name(pair.blur), pair.blur.with_suffix(".png").name):
            if (folder / name).exists():
                return folder / name
    return folders[0] / deblurred_name(pair.blur)


def background_mae(output: torch.Tensor, blur: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean absolute difference between the output (as saved: 8-bit) and the blurry input
    where nothing moved (``mask == 0``), in [0, 1] units: what a model did to the static
    background it should leave alone (0 for the input itself). ``None`` without static
    pixels."""
    static = np.asarray(mask) == 0
    if not static.any():
        return None
    saved = quantize(output[None].float())[0].numpy().transpose(1, 2, 0)
    return float(np.abs(saved - blur)[static].mean())


def _mean_of(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _mean(rows: list[ImageMetrics], name: str) -> float | None:
    values = [getattr(r, name) for r in rows if getattr(r, name) is not None]
    return sum(values) / len(values) if values else None


def evaluate(options: EvalOptions) -> EvalResult:
    """Score a checkpoint or a folder of predictions on ``options.data``.

    Raises
    ------
    ReloblurError
        Neither or both of checkpoint/pred, no pairs, missing predictions, size mismatch.
    """
    if (options.checkpoint is None) == (options.pred is None):
        raise ReloblurError("give exactly one of --checkpoint (run a model) and --pred (score existing outputs)")
    if options.convention not in CONVENTIONS:
        raise ReloblurError(f"--convention {options.convention!r}: choose {' or '.join(CONVENTIONS)}")
    pairs = discover_pairs(options.data, masks_root=options.masks, split=options.split, consistent_masks=True)
    check_pairs(pairs)
    predictions: dict[str, Path] = {}
    if options.pred is not None:
        predictions = {pair.id: prediction_path(options.pred, pair) for pair in pairs}
        missing = [str(path) for path in predictions.values() if not path.exists()]
        if missing:
            raise ReloblurError(
                f"{len(missing)} prediction(s) missing under {options.pred}, e.g. {missing[0]}"
            )
        model = device = None
        source = str(options.pred)
    else:
        assert options.checkpoint is not None  # exactly one of the two, checked above
        loaded = model_from_checkpoint(options.checkpoint, trust=options.trust_checkpoint)
        device = resolve_device(options.device)
        model = loaded.model.to(device).eval()
        autocast(device, options.amp)  # a bad choice fails here, before any image
        source = str(options.checkpoint)
    tiles = TileOptions(options.tile, options.overlap, options.tile_batch or default_tile_batch(device))

    ours: list[ImageMetrics] = []
    blurry: list[ImageMetrics] = []
    damage: list[float | None] = []
    rows: list[dict[str, Any]] = []
    with make_progress(enabled=options.progress) as bar:
        task = bar.add_task("evaluating", total=len(pairs))
        for pair in pairs:
            blur, sharp, mask = load_pair(pair)
            if model is not None:
                output, _ = deblur(model, to_tensor(blur), tiles=tiles, device=device, amp=options.amp)
            else:
                prediction = read_image(predictions[pair.id])
                if prediction.shape[:2] != sharp.shape[:2]:
                    raise ReloblurError(
                        f"{predictions[pair.id]}: {prediction.shape[1]}x{prediction.shape[0]}, "
                        f"but the target is {sharp.shape[1]}x{sharp.shape[0]}"
                    )
                output = to_tensor(prediction)
            target = torch.from_numpy(sharp.transpose(2, 0, 1).copy())
            mask_or_none = mask if pair.mask is not None else None
            m = image_metrics(output, target, mask_or_none, convention=options.convention)
            b = image_metrics(torch.from_numpy(blur.transpose(2, 0, 1).copy()), target, mask_or_none,
                              convention=options.convention)
            ours.append(m)
            blurry.append(b)
            damage.append(background_mae(output, blur, mask) if pair.mask is not None else None)
            row: dict[str, Any] = {"pair": pair.id}
            row.update({k: getattr(m, k) for k in METRICS})
            row["background_mae"] = damage[-1]
            row.update({f"blurry_{k}": getattr(b, k) for k in METRICS})
            row["blurry_background_mae"] = None if damage[-1] is None else 0.0
            rows.append(row)
            bar.advance(task)

    result = EvalResult(
        summary={**{k: _mean(ours, k) for k in METRICS}, "background_mae": _mean_of(damage)},
        baseline={**{k: _mean(blurry, k) for k in METRICS},
                  "background_mae": None if _mean_of(damage) is None else 0.0},
        images=rows,
        weighted_skipped=sum(1 for m in ours if m.weighted_psnr is None),
        masks=any(pair.mask is not None for pair in pairs),
        source=source,
        convention=options.convention,
    )
    if options.out is not None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(options.out / "metrics.csv", buffer.getvalue())
        atomic_write_json(options.out / "summary.json", {
            "source": source, "summary": result.summary, "baseline": result.baseline,
            "images": len(rows), "weighted_skipped": result.weighted_skipped,
            "convention": CONVENTION_TEXT[options.convention],
        })
        result.csv = str(options.out / "metrics.csv")
        result.summary_json = str(options.out / "summary.json")
    return result
