"""LBFMG mask quality and speed against the simulator's ground-truth masks.

Pairs: ``RigSimulator(...).render(i, aligned=True)``, i.e. what perfect alignment leaves
(8-bit sRGB, sensor noise, 1-2 moving objects or none). Ground truth: the region swept by
moving objects during B's exposure. Reported: mean IoU (goal >= 0.85), mean boundary
F-score (2 px tolerance), and seconds per pair. A baseline is measured in the same run:
the plain thresholded difference (|B - S| > 3 noise sigmas, no smoothing, shift tolerance,
hysteresis or morphology), to show what each part of the method buys.

    python benchmarks/mask_bench.py                 # 538x359, 40 pairs
    python benchmarks/mask_bench.py --size 2152x1436 --pairs 10 --json
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from reloblur.imaging.imageio import encode_srgb, to_float
from reloblur.lbfmg.generate import boundary_f_score, generate_mask, iou, noise_sigma
from reloblur.sim.simulator import RigSimulator, SimulatorConfig


def plain_difference(blur: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    b, s = to_float(blur), to_float(sharp)
    sigma = np.sqrt(np.mean([noise_sigma(b[..., c]) ** 2 + noise_sigma(s[..., c]) ** 2 for c in range(3)]))
    return np.where(np.abs(b - s).max(axis=2) > 3 * sigma, 255, 0).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="538x359")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    sim = RigSimulator(SimulatorConfig(width=width, height=height, seed=args.seed))
    rows = {"lbfmg": [], "plain difference": []}
    for index in range(args.pairs):
        pair = sim.render(index, aligned=True)
        blur, sharp = encode_srgb(pair.blur), encode_srgb(pair.sharp)
        for name, method in (("lbfmg", lambda: generate_mask(blur, sharp).mask),
                             ("plain difference", lambda: plain_difference(blur, sharp))):
            start = time.perf_counter()
            mask = method()
            seconds = time.perf_counter() - start
            rows[name].append((iou(mask, pair.mask), boundary_f_score(mask, pair.mask), seconds))
    results = {
        name: {
            "mean_iou": float(np.mean([r[0] for r in entries])),
            "min_iou": float(np.min([r[0] for r in entries])),
            "mean_boundary_f": float(np.mean([r[1] for r in entries])),
            "seconds_per_pair": float(np.mean([r[2] for r in entries])),
        }
        for name, entries in rows.items()
    }
    if args.json:
        print(json.dumps({"size": args.size, "pairs": args.pairs, "results": results}, indent=2))
        return
    print(f"{args.pairs} simulated pairs at {args.size}; baseline: plain thresholded difference, same run")
    print(f"{'method':18s} {'mean IoU':>9s} {'min IoU':>8s} {'boundary F':>11s} {'s/pair':>8s}")
    for name, r in results.items():
        print(f"{name:18s} {r['mean_iou']:9.3f} {r['min_iou']:8.3f} {r['mean_boundary_f']:11.3f} {r['seconds_per_pair']:8.3f}")


if __name__ == "__main__":
    main()
