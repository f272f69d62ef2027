"""``reloblur dataset stats``: pair counts, image sizes and the blur-ratio distribution."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reloblur.batch import run_batch
from reloblur.errors import DatasetError
from reloblur.formats.dataset import Pair, discover_pairs, outside_dataset
from reloblur.formats.masks import blur_ratio
from reloblur.imaging.imageio import probe_image, read_image

HISTOGRAM_BINS = 50  # 2 % wide, over 0-100 % blurred pixels


@dataclass(frozen=True)
class StatsOptions:
    """Options of ``reloblur dataset stats``; ``plot`` is the histogram PNG (None: no plot)."""

    root: Path
    masks: Path | None = None
    plot: Path | None = None
    workers: int | None = None
    progress: bool = True


@dataclass
class RatioSummary:
    """Blur-ratio statistics of a set of masks (fractions of the image)."""
    count: int
    mean: float | None
    median: float | None
    min: float | None
    max: float | None
    empty_masks: int
    histogram_edges: list[float]
    histogram_counts: list[int]

    @classmethod
    def of(cls, ratios: list[float]) -> RatioSummary:
        """The summary of ``ratios`` (empty: counts only)."""
        edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
        values = np.asarray(ratios, float)
        counts = np.histogram(values, bins=edges)[0] if values.size else np.zeros(HISTOGRAM_BINS)
        if not values.size:
            return cls(0, None, None, None, None, 0, edges.tolist(), counts.astype(int).tolist())
        return cls(
            count=int(values.size),
            mean=float(values.mean()),
            median=float(np.median(values)),
            min=float(values.min()),
            max=float(values.max()),
            empty_masks=int((values == 0).sum()),
            histogram_edges=edges.tolist(),
            histogram_counts=counts.astype(int).tolist(),
        )


@dataclass
class DatasetStats:
    """Counts per split and scene, image sizes and blur-ratio statistics of a dataset."""
    root: str
    pairs: int
    pairs_per_split: dict[str, int]
    pairs_per_scene: dict[str, dict[str, int]]
    sizes: dict[str, int]
    pairs_without_mask: int
    blur_ratio: RatioSummary
    blur_ratio_per_split: dict[str, RatioSummary] = field(default_factory=dict)
    plot: str | None = None


def _pair_facts(pair: Pair) -> tuple[str, float | None]:
    info = probe_image(pair.blur)
    ratio = None
    if pair.mask is not None:
        mask = read_image(pair.mask)
        mask = mask if mask.ndim == 2 else mask[:, :, 0]
        ratio = blur_ratio(mask)
    return f"{info.width}x{info.height}", ratio


def dataset_stats(options: StatsOptions) -> DatasetStats:
    """Count pairs per split and scene, image sizes, and blur ratios from the masks.

    The blur ratio of a pair is the fraction of its mask's pixels that are > 0.
    """
    from reloblur.plotting import blur_ratio_histogram

    pairs = discover_pairs(options.root, masks_root=options.masks)
    if options.plot is not None:  # a PNG in either tree would be read as (or replace) an image or a mask
        outside_dataset(options.plot, options.root, options.masks)
    facts = run_batch(
        _pair_facts,
        pairs,
        key=lambda p: p.id,
        workers=options.workers,
        description="reading masks",
        progress=options.progress,
    )
    if facts.failures:
        first = facts.failures[0]
        raise DatasetError(
            f"{len(facts.failures)} pair(s) could not be read (run `reloblur dataset validate`); "
            f"first: {first.reason}"
        )
    per_split: Counter[str] = Counter()
    per_scene: dict[str, Counter[str]] = {}
    sizes: Counter[str] = Counter()
    ratios: dict[str, list[float]] = {}
    without_mask = 0
    for pair in pairs:
        split = pair.split or "."
        per_split[split] += 1
        per_scene.setdefault(split, Counter())[pair.scene or "."] += 1
        size, ratio = facts.results[pair.id]
        sizes[size] += 1
        if ratio is None:
            without_mask += 1
        else:
            ratios.setdefault(split, []).append(ratio)

    every = [r for values in ratios.values() for r in values]
    stats = DatasetStats(
        root=str(options.root),
        pairs=len(pairs),
        pairs_per_split=dict(sorted(per_split.items())),
        pairs_per_scene={s: dict(sorted(c.items())) for s, c in sorted(per_scene.items())},
        sizes=dict(sizes.most_common()),
        pairs_without_mask=without_mask,
        blur_ratio=RatioSummary.of(every),
        blur_ratio_per_split={s: RatioSummary.of(v) for s, v in sorted(ratios.items())},
    )
    if options.plot is not None and every:
        blur_ratio_histogram(ratios, options.plot, title=f"Blur ratio per pair: {options.root}")
        stats.plot = str(options.plot)
    return stats
