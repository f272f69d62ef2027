"""How far ``align``'s colour fit lies from the true relation on the second generator's pairs,
with the cameras' in-camera JPEG and without it.

``othergen`` knows each pair's colour relation (:func:`othergen.colour_relation`: S's linear
colours from B's). Each pair of a row is aligned as ``reloblur align --no-crop`` aligns it
(the frames decoded as sRGB), and the fitted map is scored on the 24 ColorChecker colours
against the true one (``align_bench``'s ``checker_error``: median over the patches of the
worst channel's relative error) and by its largest coefficient's error.

Baseline, in the same run on the same scenes and noise draws: the row's cameras without the
JPEG coding (``jpeg=0``), so that the difference is the coding's alone. ``--color-mode``
picks ``align``'s colour fit (``reloblur align --color-mode``; default ``matrix``).

    python benchmarks/othergen_colour.py                          # the JPEG row, seeds 1-8, static pairs
    python benchmarks/othergen_colour.py --seeds 6 8 --moving 4 --json out.json
    python benchmarks/othergen_colour.py --color-mode colourful
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from align_bench import checker_error  # noqa: E402
from othergen import ROWS, colour_relation, make_pair  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.atomic import atomic_write_json  # noqa: E402
from reloblur.imaging.imageio import srgb_to_linear  # noqa: E402
from reloblur.postprocess.align import AlignmentError, AlignSettings, align_pair  # noqa: E402
from reloblur.postprocess.color import ColorFitError, ColorMode, check_color_mode  # noqa: E402


def summary(errors: list[float]) -> dict:
    e = np.asarray(errors)
    return {"pairs": int(e.size), "median": float(np.median(e)), "mean": float(e.mean()), "max": float(e.max())}


def fitted_map(camera, index: int, seed: int, static: bool, color_mode: ColorMode = "matrix") -> np.ndarray:
    """``align``'s colour matrix (S onto B) for pair ``index`` of ``camera``'s row."""
    blur, sharp, _ = make_pair(camera, index, seed=seed, static=static)
    result = align_pair(srgb_to_linear(blur), srgb_to_linear(sharp),
                        settings=AlignSettings(crop=False, color_mode=color_mode))
    return np.asarray(result.color.matrix, np.float64)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="JPEG", help="the row whose name holds this (default: JPEG)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 9)))
    parser.add_argument("--moving", type=int, default=0, help="moving pairs a seed (0..N-1)")
    parser.add_argument("--static", type=int, default=3, help="static pairs a seed (10, 11, ...)")
    parser.add_argument("--color-mode", default="matrix", help="align's colour fit (default: matrix)")
    parser.add_argument("--json", type=Path, help="write per-pair errors and the summaries here")
    args = parser.parse_args()
    keep_freed_memory()
    try:
        color_mode = check_color_mode(args.color_mode)
    except ColorFitError as exc:
        print(f"--color-mode: {exc}", file=sys.stderr)
        return 1
    rows = [r for r in ROWS if args.only in r.name]
    if len(rows) != 1 or not rows[0].jpeg:
        print(f"--only {args.only!r}: name exactly one row with in-camera JPEG", file=sys.stderr)
        return 1
    cameras = {"with JPEG": rows[0], "without JPEG (baseline)": replace(rows[0], jpeg=0)}
    jobs = [(i, False) for i in range(args.moving)] + [(10 + i, True) for i in range(args.static)]
    # per pair "seed:index", per camera: [ColorChecker error, largest coefficient error]
    pairs: dict[str, dict[str, list[float]]] = {}
    refused = 0
    for seed in args.seeds:
        for index, static in jobs:
            truth = np.linalg.inv(colour_relation(index, seed=seed, static=static))
            try:
                fits = {name: fitted_map(camera, index, seed, static, color_mode)
                        for name, camera in cameras.items()}
            except AlignmentError:
                refused += 1
                continue
            scores = {name: [checker_error(matrix, truth), float(np.abs(matrix - truth).max())]
                      for name, matrix in fits.items()}
            pairs[f"{seed}:{index}"] = scores
            print(f"seed {seed} pair {index:2d}: " + "  ".join(
                f"{name}: checker {checker:.3f}, largest {largest:.3f}" for name, (checker, largest) in scores.items()),
                flush=True)
    if not pairs:
        print("align refused every pair", file=sys.stderr)
        return 2
    report = {"row": rows[0].name, "color_mode": args.color_mode, "seeds": args.seeds, "refused": refused,
              "pairs": pairs,
              "checker": {name: summary([p[name][0] for p in pairs.values()]) for name in cameras},
              "largest": {name: summary([p[name][1] for p in pairs.values()]) for name in cameras}}
    print(f"{rows[0].name}, --color-mode {args.color_mode}: {len(pairs)} pairs ({refused} refused by align)")
    for name in cameras:
        c, g = report["checker"][name], report["largest"][name]
        print(f"  {name:24s} checker median {c['median']:.3f} max {c['max']:.3f}   "
              f"largest coefficient error median {g['median']:.3f} max {g['max']:.3f}")
    with_jpeg, without = (report["checker"][name]["median"] for name in cameras)
    print(f"  with / without JPEG: checker median {with_jpeg / max(without, 1e-12):.1f}x")
    if args.json:
        atomic_write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
