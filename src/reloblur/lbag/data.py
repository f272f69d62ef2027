"""Training and evaluation data from a ReLoBlur-format dataset.

Training samples are random ``patch x patch`` crops with a random horizontal flip (the
original augmentation) and **blur-aware patch cropping** (BAPC): with probability
``bapc_prob``, if the pair's mask has enough blurred pixels, the crop is centred on a
randomly chosen blurred pixel among those at least half a patch from the border.

"Enough" reproduces the original's effective behaviour: it compares the sum of the 0/255
mask over its size with 0.05, so any mask with more than ``0.05 / 255`` of its pixels
blurred (about 0.02 %) qualifies. ``bapc_min_ratio`` changes that threshold.

Randomness is a pure function of ``(seed, epoch, index)``: :class:`SampleStream` hands
the dataset ``(epoch, index)`` items, so a run resumed mid-epoch draws exactly the crops
the uninterrupted run would have drawn, in any worker process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

from reloblur.errors import DatasetError, ImageReadError
from reloblur.formats.dataset import Pair
from reloblur.imaging.imageio import ensure_rgb, probe_image, read_image, to_float

ORIGINAL_BAPC_MIN_RATIO = 0.05 / 255.0


def load_pair(pair: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(blur, sharp, mask)``: ``(H, W, 3)`` float32 in [0, 1] and ``(H, W)`` float32 0/1."""
    blur = to_float(ensure_rgb(read_image(pair.blur)))
    sharp = to_float(ensure_rgb(read_image(pair.sharp)))
    if blur.shape != sharp.shape:
        raise DatasetError(f"{pair.sharp}: size {sharp.shape[:2]} differs from {pair.blur} {blur.shape[:2]}")
    if pair.mask is None:
        mask = np.zeros(blur.shape[:2], np.float32)
    else:
        raw = read_image(pair.mask)
        raw = raw if raw.ndim == 2 else raw[:, :, 0]
        if raw.shape != blur.shape[:2]:
            raise DatasetError(f"{pair.mask}: mask size {raw.shape} differs from {pair.blur} {blur.shape[:2]}")
        mask = (raw > 0).astype(np.float32)
    return blur, sharp, mask


def check_pairs(pairs: Sequence[Pair], *, min_side: int = 0) -> None:
    """Read every pair's image headers before a long run: a file that cannot be read, or
    sizes that differ, fail here, naming the files, rather than hours later in a data
    loader worker when the pair is first drawn.

    Only headers are read (three small reads a pair): a file damaged after its header
    still fails when it is loaded, with its name.

    Raises
    ------
    DatasetError
        Each defect found (the first few named), or an image under ``min_side`` pixels.
    """
    damaged, small = [], []
    for pair in pairs:
        try:
            blur, sharp = probe_image(pair.blur), probe_image(pair.sharp)
            if (sharp.width, sharp.height) != (blur.width, blur.height):
                damaged.append(f"{pair.sharp} is {sharp.width}x{sharp.height}, its partner {pair.blur.name} "
                               f"{blur.width}x{blur.height}")
            elif min(blur.width, blur.height) < min_side:
                small.append(f"{pair.blur} ({blur.width}x{blur.height})")
            if pair.mask is not None:
                mask = probe_image(pair.mask)
                if (mask.width, mask.height) != (blur.width, blur.height):
                    damaged.append(f"{pair.mask} is {mask.width}x{mask.height}, its image {blur.width}x{blur.height}")
        except ImageReadError as exc:
            damaged.append(str(exc))
    if damaged:
        raise DatasetError(f"{len(damaged)} damaged pair(s): " + _first(damaged)
                           + " (`reloblur dataset validate` lists every defect)")
    if small:
        raise DatasetError(f"{len(small)} pair(s) smaller than the {min_side}px training patch: {_first(small)}; "
                           "choose a smaller --patch-size")


def _first(items: list[str], count: int = 3) -> str:
    return "; ".join(items[:count]) + ("; ..." if len(items) > count else "")


def _chw(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class TrainPatches(Dataset):
    """Random training crops, indexed by ``(epoch, index)`` (see :class:`SampleStream`)."""

    def __init__(self, pairs: Sequence[Pair], *, patch: int = 256, bapc_prob: float = 0.5,
                 bapc_min_ratio: float = ORIGINAL_BAPC_MIN_RATIO, hflip: bool = True,
                 seed: int = 0, cache: bool = False):
        if not pairs:
            raise DatasetError("no training pairs")
        self.pairs = list(pairs)
        self.patch = patch
        self.bapc_prob = bapc_prob
        self.bapc_min_ratio = bapc_min_ratio
        self.hflip = hflip
        self.seed = seed
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._cache is None:
            return load_pair(self.pairs[index])
        if index not in self._cache:
            self._cache[index] = load_pair(self.pairs[index])
        return self._cache[index]

    def _crop_origin(self, mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
        h, w = mask.shape
        p = self.patch
        if rng.random() < self.bapc_prob and mask.mean() > self.bapc_min_ratio:
            half = p // 2
            eligible = mask[half : h - p + half + 1, half : w - p + half + 1]
            ys, xs = np.nonzero(eligible)
            if ys.size:
                k = int(rng.integers(ys.size))
                return int(ys[k]), int(xs[k])  # top-left of a crop centred on that pixel
        return int(rng.integers(0, h - p + 1)), int(rng.integers(0, w - p + 1))

    def __getitem__(self, item: tuple[int, int] | int) -> dict[str, torch.Tensor]:
        """The crop of pair ``index`` in ``epoch`` (``item = (epoch, index)``); a plain
        ``index`` means epoch 0, as a notebook user indexing a dataset expects."""
        epoch, index = (0, item) if isinstance(item, (int, np.integer)) else item
        if not -len(self.pairs) <= index < len(self.pairs):
            raise IndexError(f"pair {index} of {len(self.pairs)}")
        index %= len(self.pairs)
        blur, sharp, mask = self._load(index)
        h, w = mask.shape
        if h < self.patch or w < self.patch:
            raise DatasetError(
                f"{self.pairs[index].blur}: {w}x{h} is smaller than the {self.patch}px training patch"
            )
        rng = np.random.default_rng([self.seed, epoch, index])
        y, x = self._crop_origin(mask, rng)
        sl = (slice(y, y + self.patch), slice(x, x + self.patch))
        blur, sharp, mask = blur[sl], sharp[sl], mask[sl]
        if self.hflip and rng.random() < 0.5:
            blur, sharp, mask = blur[:, ::-1], sharp[:, ::-1], mask[:, ::-1]
        return {"blur": _chw(blur), "sharp": _chw(sharp), "mask": _chw(mask), "index": torch.tensor(index)}


class WholeImages(Dataset):
    """Whole pairs for validation and evaluation (no cropping, no augmentation)."""

    def __init__(self, pairs: Sequence[Pair]):
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        blur, sharp, mask = load_pair(self.pairs[index])
        return {"blur": _chw(blur), "sharp": _chw(sharp), "mask": _chw(mask), "index": torch.tensor(index)}


class SampleStream(Sampler):
    """An endless stream of ``(epoch, index)`` items, resumable at any position.

    Each epoch's order (and, with several processes, this rank's share of it) is exactly
    what :class:`~torch.utils.data.DistributedSampler` gives for that epoch and seed.
    ``start`` counts this rank's items already consumed, i.e. ``global_step * batch_size``.
    """

    def __init__(self, dataset: Dataset, *, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 start: int = 0):
        self._epochs: DistributedSampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank,
                                          shuffle=True, seed=seed, drop_last=False)
        self.start = start

    @property
    def per_epoch(self) -> int:
        """Samples this rank draws per epoch."""
        return self._epochs.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, offset = divmod(self.start, self.per_epoch)
        while True:
            self._epochs.set_epoch(epoch)
            for index in list(self._epochs)[offset:]:
                yield epoch, index
            epoch, offset = epoch + 1, 0
