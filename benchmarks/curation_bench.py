"""What a curator's boxes add to ``mask generate``'s masks, one row per camera condition.

The pairs are the mask benchmark's (``mask_bench.py``: ``pairgen`` pairs through
``align_pair`` as ``reloblur align --no-crop`` runs it, then ``generate_mask``). A curator
in ``reloblur mask review`` is simulated: every moving object whose swept region the
mask covers less than ``--covered`` of gets one box with the object tool, drawn around
that region with ``--margin`` px to spare, and the object ``segment_object`` finds in S
is added to the mask. Reported per row: the mean and min IoU before and after, the boxes
drawn per pair, the boxes refused (nothing found), and the pixels the boxes added outside
the swept region (false area).

The curator knows where the objects are (the swept region's bounding box: what a person
sees in B and S), not the answer inside the box.

    python benchmarks/curation_bench.py --only "S noise 4x" --repeats 3
    python benchmarks/curation_bench.py --repeats 3 --json > results/curation.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_bench import aligned, output_mixing  # noqa: E402
from pairgen import CONDITIONS, make_pair  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.lbfmg.generate import generate_mask  # noqa: E402
from reloblur.lbfmg.metrics import iou  # noqa: E402
from reloblur.lbfmg.region import RegionError, segment_object  # noqa: E402
from reloblur.postprocess.align import AlignmentError  # noqa: E402


def curate(mask: np.ndarray, truth: np.ndarray, sharp: np.ndarray, *, covered: float, margin: int
           ) -> tuple[np.ndarray, int, int, int, list[float]]:
    """The mask after one box per poorly covered object: the mask, boxes drawn, boxes
    refused, pixels added outside ``truth``, and the seconds each box took."""
    count, labels = cv2.connectedComponents(truth.astype(np.uint8), connectivity=8)
    out, boxes, refused, seconds = mask.copy(), 0, 0, []
    for label in range(1, count):
        swept = labels == label
        if np.count_nonzero(mask & swept) >= covered * np.count_nonzero(swept):
            continue
        ys, xs = np.nonzero(swept)
        boxes += 1
        start = time.perf_counter()
        try:
            found = segment_object(sharp, (ys.min() - margin, xs.min() - margin,
                                           ys.max() + 1 + margin, xs.max() + 1 + margin))
        except RegionError:
            refused += 1
            continue
        finally:
            seconds.append(time.perf_counter() - start)
        out |= found.region
    return out, boxes, refused, int(np.count_nonzero(out & ~truth & ~mask)), seconds


def run_condition(condition, moving: int, seed: int, *, covered: float, margin: int) -> dict:
    before, after, boxes, refused, false_px, seconds = [], [], 0, 0, 0, []
    for index in range(moving):
        pair = make_pair(condition, index, static=False, seed=seed)
        try:
            blur, sharp, valid, clipped, alignment = aligned(pair, calibrated=condition.calibrated,
                                                              burst=condition.burst_frames > 0)
        except AlignmentError:
            continue
        mask = generate_mask(blur, sharp, valid=valid, clipped=clipped,
                             output_mixing=output_mixing(pair, alignment)).mask > 0
        truth = pair.mask > 0
        curated, drawn, failed, false, took = curate(mask, truth, sharp, covered=covered, margin=margin)
        before.append(iou(mask, truth))
        after.append(iou(curated, truth))
        boxes, refused, false_px = boxes + drawn, refused + failed, false_px + false
        seconds += took
    return {"mean_iou_before": float(np.mean(before)), "mean_iou_after": float(np.mean(after)),
            "min_iou_before": float(np.min(before)), "min_iou_after": float(np.min(after)),
            "pairs": len(before), "boxes": boxes, "refused": refused, "false_px": false_px,
            "seconds_per_box": float(np.mean(seconds)) if seconds else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moving", type=int, default=10, help="moving pairs per condition")
    parser.add_argument("--repeats", type=int, default=1, help="repeats with different seeds (spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run the conditions whose name contains this")
    parser.add_argument("--covered", type=float, default=0.8,
                        help="an object whose swept region the mask covers less than this share of gets a box")
    parser.add_argument("--margin", type=int, default=6, help="px the curator's box leaves around the object")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    keep_freed_memory()
    results: dict[str, list[dict]] = {}
    for condition in (c for c in CONDITIONS if args.only is None or args.only in c.name):
        for repeat in range(args.repeats):
            row = run_condition(condition, args.moving, args.seed + 1000 * repeat, covered=args.covered,
                                margin=args.margin)
            results.setdefault(condition.name, []).append(row)
            if not args.json:
                print(f"{condition.name:45s} IoU {row['mean_iou_before']:.3f} -> {row['mean_iou_after']:.3f} "
                      f"(min {row['min_iou_before']:.3f} -> {row['min_iou_after']:.3f}) boxes {row['boxes']} "
                      f"refused {row['refused']} false px {row['false_px']}", flush=True)
    if args.json:
        print(json.dumps({"moving": args.moving, "repeats": args.repeats, "seed": args.seed,
                          "covered": args.covered, "margin": args.margin, "results": results}, indent=2))


if __name__ == "__main__":
    main()
