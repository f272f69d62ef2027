"""What share of each benchmark row's true region belongs to objects that stand out of the
noise at all: a ceiling on the IoU any mask made from B and S can reach, beside what
``mask generate`` reaches on the same pairs.

A mask can only start from a place where B and S differ beyond their noise. For every
moving pair of a still-camera row of ``mask_bench.py``, ``pairgen`` also renders the
pair's twins (:class:`pairgen.Twins`): each camera without its noise, S's instant on B's
own grid (registration, colour and vignetting exact: ``to_blur`` maps S's camera's output
to B's), and each object's own swept region. On the 8-bit sRGB images ``align`` writes,
the clean difference ``d`` is all the pair shows of its motion; the noise of ``B - S`` is
measured from the pair's own B and a second noise draw of S's camera (the same cameras, on
the same grid), per channel in bins of level.

An object *stands out* when, somewhere in its swept region, a 3x3 block of ``|G_s * d|``
exceeds ``--seed-sigmas`` standard deviations of ``G_s * noise`` in some channel
(``mask generate`` seeds its regions so, at ``--high`` 6), for a Gaussian of ``s`` = 1.5 px
(``mask generate``'s smoothing), 3 or 6 px, and no pixel within ``2 s`` of the block's
centre is clipped in any channel of either camera's output: a clipped value is only a
bound, and a colour correction carries its unknown excess into the other channels, so only
measurements count. A camera that transforms colour after its sensor (the in-camera colour
rows) could clip its sensor where its output does not show it; ``pairgen``'s matrix cannot:
its rows sum to 1 and its off-diagonal terms are negative, so an output channel is at least
its sensor channel's value where that is at full scale, and at most 0 where it is black
(``tests/test_mask_bench.py``). The ceiling of a
pair is the share of its true region that objects standing out cover: every such object is
taken as found whole, and nothing else as marked. Registration and colour are perfect and
an object counts whole from one block, so a row whose ceiling is under a goal cannot meet
it from what its pairs show: without noise its evidence already falls short of what a mask
needs to tell motion from noise (with noise it passes on half the draws at best; a method
may lower the threshold only by marking noise elsewhere). A ceiling of 1 says only that
every object shows itself somewhere.

``python benchmarks/mask_ceiling.py --moving 10 --repeats 3 --seed N [--only ROW] [--json]``
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rich.progress import Progress  # noqa: E402

from mask_bench import aligned, output_mixing  # noqa: E402
from pairgen import CONDITIONS, BenchPair, Condition, make_pair  # noqa: E402
from reloblur.imaging.imageio import encode_srgb  # noqa: E402
from reloblur.lbfmg.generate import generate_mask  # noqa: E402
from reloblur.lbfmg.metrics import iou  # noqa: E402
from reloblur.postprocess.align import AlignmentError  # noqa: E402

SCALES = (1.5, 3.0, 6.0)  # px: Gaussian smoothing at which an object may stand out of the noise
LEVEL_BINS = 24


def encoded(linear: np.ndarray) -> np.ndarray:
    """8-bit sRGB codes (as float32) of linear values, as ``align`` writes its output."""
    return encode_srgb(np.asarray(linear, np.float32)).astype(np.float32)


def level_sigma(noise: np.ndarray, level: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """``(H, W)`` the standard deviation of ``noise`` over the usable pixels of each pixel's
    level bin (:data:`LEVEL_BINS` equally populated bins of ``level``)."""
    values = level[usable]
    if values.size < LEVEL_BINS * 50:
        return np.full(level.shape, float(np.std(noise[usable])) if values.size > 1 else np.inf)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, LEVEL_BINS + 1)))
    bins = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    used = bins[usable]
    counts = np.bincount(used, minlength=len(edges) - 1)
    sums = np.bincount(used, noise[usable], minlength=len(edges) - 1)
    squares = np.bincount(used, noise[usable] ** 2, minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
        sigma = np.sqrt(np.maximum(squares / counts - mean**2, 0.0))
    sigma[counts < 2] = np.inf
    return sigma[bins]


def standing_out(pair: BenchPair, seed_sigmas: float, scales: tuple[float, ...] = SCALES) -> np.ndarray:
    """``(len(scales), H, W)`` bool: per scale, the centres of 3x3 blocks where the pair's
    noise-free difference exceeds ``seed_sigmas`` of its noise, away from every clipped
    value."""
    twins = pair.twins
    assert twins is not None, "make the pair with twins=True"
    mix = twins.to_blur.T
    clean_b = encoded(twins.blur_clean)
    difference = clean_b - encoded(twins.sharp_clean @ mix)
    noise = (encoded(pair.blur) - encoded(twins.sharp_noisy @ mix)) - difference
    clipped = np.any((twins.blur_clean >= 1.0) | (twins.blur_clean <= 0.0)
                     | (twins.sharp_clean >= 1.0) | (twins.sharp_clean <= 0.0), axis=2).astype(np.uint8)
    block = np.ones((3, 3), np.uint8)
    found = np.zeros((len(scales), *difference.shape[:2]), bool)
    for k, scale in enumerate(scales):
        reach = math.ceil(2 * scale)
        measured = cv2.dilate(clipped, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) == 0
        smooth_d = cv2.GaussianBlur(difference, (0, 0), scale)
        smooth_n = cv2.GaussianBlur(noise, (0, 0), scale)
        level = cv2.GaussianBlur(clean_b, (0, 0), scale)
        for c in range(difference.shape[2]):
            sigma = level_sigma(smooth_n[..., c], level[..., c], measured)
            above = ((np.abs(smooth_d[..., c]) >= seed_sigmas * sigma) & measured).astype(np.uint8)
            found[k] |= cv2.erode(above, block) > 0
    return found


def pair_ceiling(pair: BenchPair, seed_sigmas: float, scales: tuple[float, ...] = SCALES) -> float:
    """The share of the pair's true region covered by the objects that stand out at some
    scale."""
    return covered_share(pair, standing_out(pair, seed_sigmas, scales).any(axis=0))


def covered_share(pair: BenchPair, found: np.ndarray) -> float:
    """The share of the pair's true region covered by the objects ``found`` ``(H, W)``
    touches."""
    assert pair.twins is not None
    covered = np.zeros(found.shape, bool)
    for region in pair.twins.objects:
        inside = region > 0
        if np.any(found & inside):
            covered |= inside
    return float(np.count_nonzero(covered & (pair.mask > 0))) / max(1, int(np.count_nonzero(pair.mask)))


def run_row(condition: Condition, moving: int, seed: int, seed_sigmas: float, method: bool,
            advance) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {"ceiling": [], "ceiling_own_scale": [], "lbfmg": [], "travel": []}
    for index in range(moving):
        pair = make_pair(condition, index, seed=seed, twins=True)
        found = standing_out(pair, seed_sigmas)  # SCALES, mask generate's first
        rows["ceiling"].append(covered_share(pair, found.any(axis=0)))
        rows["ceiling_own_scale"].append(covered_share(pair, found[0]))
        rows["travel"].append(pair.travel)
        score = float("nan")
        if method:
            try:
                blur, sharp, valid, clipped, alignment = aligned(pair, calibrated=condition.calibrated)
            except AlignmentError:
                pass
            else:
                assert alignment is not None
                mask = generate_mask(blur, sharp, valid=valid, clipped=clipped, colour_matrix=alignment.color.matrix,
                                     crosstalk="prior", output_mixing=output_mixing(pair, alignment)).mask
                score = iou(mask, pair.mask)
        rows["lbfmg"].append(score)
        advance()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moving", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="repeats with different seeds (spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seed-sigmas", type=float, default=6.0, help="a block must exceed this (mask generate's --high)")
    parser.add_argument("--only", default=None, help="run the rows whose name contains this")
    parser.add_argument("--no-method", action="store_true", help="skip aligning and masking the pairs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    conditions = [c for c in CONDITIONS if (args.only is None or args.only in c.name)
                  and not c.burst_frames and not c.video_frames]
    if not conditions:
        parser.error(f"--only {args.only!r}: no still-camera row's name holds it")
    result: dict[str, dict] = {}
    start = time.perf_counter()
    with Progress(transient=True, disable=args.json) as progress:
        task = progress.add_task("pairs", total=len(conditions) * args.repeats * args.moving)
        for condition in conditions:
            pooled: dict[str, list[float]] = {}
            for repeat in range(args.repeats):
                rows = run_row(condition, args.moving, args.seed + 1000 * repeat, args.seed_sigmas,
                               not args.no_method, lambda: progress.advance(task))
                for key, values in rows.items():
                    pooled.setdefault(key, []).extend(values)
            result[condition.name] = {
                "ceiling": float(np.mean(pooled["ceiling"])),
                "ceiling_own_scale": float(np.mean(pooled["ceiling_own_scale"])),
                "lbfmg_mean_iou": None if args.no_method else float(np.nanmean(pooled["lbfmg"])),
                "pairs": len(pooled["ceiling"]),
                "per_pair": pooled,
            }
    meta = {"seed": args.seed, "repeats": args.repeats, "moving": args.moving, "seed_sigmas": args.seed_sigmas,
            "seconds": time.perf_counter() - start}
    if args.json:
        print(json.dumps({"meta": meta, "rows": result}))
        return
    print("| condition | ceiling (any scale) | ceiling (1.5 px) | lbfmg IoU |")
    print("| --- | --- | --- | --- |")
    for name, row in result.items():
        score = "-" if row["lbfmg_mean_iou"] is None else f"{row['lbfmg_mean_iou']:.3f}"
        print(f"| {name} | {row['ceiling']:.3f} | {row['ceiling_own_scale']:.3f} | {score} |")


if __name__ == "__main__":
    main()
