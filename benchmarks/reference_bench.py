"""The shipped reference LBAG on pairs its simulator did not make, one row per camera condition.

The reference model (``reloblur.lbag.checkpoint.REFERENCE_FILE``) was trained on
``reloblur simulate`` scenes only. Here it meets ``benchmarks/pairgen.py``'s pairs:
another generator (B the mean of 48 sub-frames in linear light over photographs, S the
middle one, each camera with its own colour, gain, noise, clipping, optional Bayer,
vignetting and distortion), at ReLoBlur's released size 538x359. Each pair goes through
``align_pair`` as ``reloblur align`` runs it (cropped to the area both cameras see), is
written as an 8-bit sRGB ReLoBlur dataset with the generator's true blur mask, and is
scored by ``reloblur eval --checkpoint reference`` (the original evaluation): the model's
PSNR, weighted PSNR and background MAE against the blurry input's. Baseline, in the same
run: the blurry input itself (a model that does nothing).

    python benchmarks/reference_bench.py --pairs 8 --json > results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_bench import as_recorded  # noqa: E402
from pairgen import CONDITIONS, make_pair  # noqa: E402
from reloblur.imaging.imageio import encode_srgb, write_image  # noqa: E402
from reloblur.lbag.checkpoint import REFERENCE_FILE  # noqa: E402
from reloblur.lbag.evaluate import EvalOptions, evaluate  # noqa: E402
from reloblur.postprocess.align import AlignmentError, AlignSettings, align_pair  # noqa: E402


def write_dataset(root: Path, condition, pairs: int, seed: int) -> int:
    """``pairs`` moving pairs of ``condition``, aligned and cropped, as ``test/<row>/00/NN``;
    returns how many ``align`` refused (as it would refuse them for a user)."""
    refused = 0
    for index in range(pairs):
        pair = make_pair(condition, index, seed=seed)
        blur, sharp, output_clipped = as_recorded(pair)
        if condition.burst_frames:  # one camera: nothing to align
            truth = pair.mask
        else:
            try:
                result = align_pair(blur, sharp, settings=AlignSettings(crop=True), output_clipped=output_clipped,
                                    prior_homography=pair.homography if condition.calibrated else None)
            except AlignmentError:
                refused += 1
                continue
            rows, cols = result.crop.slices()
            blur, sharp, truth = blur[rows, cols], result.sharp_aligned[rows, cols], pair.mask[rows, cols]
        folder = root / "dataset" / "test" / "row" / "00"
        write_image(folder / f"{index:02d}_blur.png", encode_srgb(np.clip(blur, 0, 1)))
        write_image(folder / f"{index:02d}_sharp.png", encode_srgb(np.clip(sharp, 0, 1)))
        write_image(root / "masks" / "test" / "row" / "00" / f"{index:02d}.png", truth)
    return refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8, help="moving pairs per condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run the conditions whose name contains this")
    parser.add_argument("--checkpoint", type=Path, default=REFERENCE_FILE, help="default: the shipped reference")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for condition in CONDITIONS:
        if args.only and args.only not in condition.name:
            continue
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            refused = write_dataset(root, condition, args.pairs, args.seed)
            result = evaluate(EvalOptions(data=root / "dataset", checkpoint=args.checkpoint, device="cpu",
                                          progress=False))
        per_image = [image["weighted_psnr"] - image["blurry_weighted_psnr"] for image in result.images]
        rows.append({"condition": condition.name, "pairs": len(result.images), "refused_by_align": refused,
                     "model": result.summary,
                     "blurry": result.baseline, "weighted_gain_min": float(np.min(per_image)),
                     "weighted_gain_max": float(np.max(per_image))})
        if not args.json:
            m, b = result.summary, result.baseline
            print(f"{condition.name:36s} PSNR {m['psnr']:.2f} vs {b['psnr']:.2f}  weighted {m['weighted_psnr']:.2f} "
                  f"vs {b['weighted_psnr']:.2f}  background MAE {m['background_mae']:.4f}  ({len(result.images)} pairs, "
                  f"{refused} refused by align)", flush=True)
    if args.json:
        print(json.dumps({"pairs_per_condition": args.pairs, "seed": args.seed, "checkpoint": str(args.checkpoint),
                          "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
