"""The masks through the command line, on pairs from a second generator (``othergen.py``),
or (``--generator video``) a third (``videogen.py``: pairs made as from video of people
walking, B the mean of K frames).

Each row of the generator's ``ROWS`` is a camera condition. Its pairs are written as 8-bit PNGs,
then ``python -m reloblur align IN ALIGNED --no-crop`` and ``python -m reloblur mask
generate ALIGNED --out MASKS`` run on them as a user runs them, and the masks are scored
against the truth: moving pairs by mean and min IoU and boundary F, static pairs by the
share of the frame marked (issue 13's goals: mean IoU >= 0.85, static <= 0.5 %).
Baseline, in the same run on the same aligned pairs: the plain thresholded difference
(``mask_bench.plain_difference``).

    python benchmarks/othergen_bench.py                       # 10 moving + 3 static a row, 960x640
    python benchmarks/othergen_bench.py --moving 4 --static 1 --only dark --json
    python benchmarks/othergen_bench.py --align-option=--color-mode --align-option=colourful
    python benchmarks/othergen_bench.py --json --baseline-src /tmp/before/src   # a change's before, same pairs
    python benchmarks/othergen_bench.py --generator video --json --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import othergen  # noqa: E402
import videogen  # noqa: E402
from mask_bench import plain_difference, recorded_phase  # noqa: E402
from pairgen import parse_size  # noqa: E402
from reloblur.imaging.imageio import read_image, write_image  # noqa: E402
from reloblur.lbfmg.metrics import area_fraction, area_precision, area_recall, boundary_f_score, iou  # noqa: E402

GENERATORS = {"photographs": othergen, "video": videogen}
Row = othergen.Camera | videogen.Footage


def write_row(folder: Path, camera: Row, *, moving: int, static: int, seed: int,
              size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The row's pairs as ``folder/NN_blur.png`` and ``NN_sharp.png``; their truths by id."""
    make_pair = videogen.make_pair if isinstance(camera, videogen.Footage) else othergen.make_pair
    folder.mkdir(parents=True, exist_ok=True)
    truths = {}
    for index in range(moving + static):
        blur, sharp, truth = make_pair(camera, index, seed=seed, static=index >= moving, size=size)
        write_image(folder / f"{index:02d}_blur.png", blur)
        write_image(folder / f"{index:02d}_sharp.png", sharp)
        truths[f"{index:02d}"] = truth
    return truths


def run(arguments: list[str], *, src: Path | None = None) -> int:
    """``python -m reloblur ARGUMENTS`` as a user runs it (``src``: that checkout's
    ``src`` folder's toolkit instead of the installed one); its exit code."""
    env = None if src is None else {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([sys.executable, "-m", "reloblur", *arguments], capture_output=True, text=True,
                          env=env).returncode


def read_masks(folder: Path) -> dict[str, np.ndarray]:
    """The masks ``mask generate`` wrote to ``folder``, by pair id (not their confidence maps)."""
    return {path.stem: read_image(path) for path in folder.glob("*.png") if not path.name.endswith(".conf.png")}


def score(masks: dict[str, np.ndarray], truths: dict[str, np.ndarray]) -> dict[str, object]:
    """Moving pairs' IoU, its two parts (recall: the share of the truth the mask covers;
    precision: the share of the mask on it) and boundary F, static pairs' marked share (%);
    a pair with no mask (align refused it) scores nothing and is counted."""
    ious, recalls, precisions, boundaries, static_area, missing = [], [], [], [], [], 0
    for pair_id, truth in truths.items():
        mask = masks.get(pair_id)
        if mask is None:
            missing += 1
        elif truth.any():
            ious.append(iou(mask, truth))
            recalls.append(area_recall(mask, truth))
            precisions.append(area_precision(mask, truth))
            boundaries.append(boundary_f_score(mask, truth))
        else:
            static_area.append(100 * area_fraction(mask))
    return {"mean_iou": float(np.mean(ious)) if ious else None, "min_iou": float(np.min(ious)) if ious else None,
            "recall": float(np.mean(recalls)) if recalls else None,
            "precision": float(np.mean(precisions)) if precisions else None,
            "boundary_f": float(np.mean(boundaries)) if boundaries else None,
            "static_area_pct_max": max(static_area) if static_area else None,
            "static_area_pct": static_area, "ious": ious, "missing": missing}


def bench_row(camera: Row, work: Path, *, moving: int, static: int, seed: int,
              size: tuple[int, int], tell_phase: bool = False, align_options: tuple[str, ...] = (),
              baseline_src: Path | None = None) -> dict[str, object]:
    pairs, aligned, out = work / "pairs", work / "aligned", work / "masks"
    truths = write_row(pairs, camera, moving=moving, static=static, seed=seed, size=size)
    start = time.perf_counter()
    align_exit = run(["align", str(pairs), str(aligned), "--no-crop", *align_options])
    # These pairs are a folder, not a session, so nothing records S's instant: the mask
    # step reads it from each pair, or (tell_phase) a user who knows the rig's tells it
    phase = recorded_phase(camera.s_instant)
    told = ["--s-phase", phase] if tell_phase and phase is not None else []
    mask_exit = run(["mask", "generate", str(aligned), "--out", str(out), *told])
    seconds = time.perf_counter() - start
    ours = read_masks(out)
    plain = {}
    for pair_id in truths:
        blur, sharp = aligned / f"{pair_id}_blur.png", aligned / f"{pair_id}_sharp.png"
        if blur.exists() and sharp.exists():
            plain[pair_id] = plain_difference(read_image(blur), read_image(sharp))
    result = {"row": camera.name, "align_exit": align_exit, "mask_exit": mask_exit, "seconds": seconds,
              "ours": score(ours, truths), "plain": score(plain, truths)}
    if baseline_src is not None:
        before = work / "masks-baseline"
        run(["mask", "generate", str(aligned), "--out", str(before), *told], src=baseline_src)
        result["baseline"] = score(read_masks(before), truths)
    return result


def _cell(value: object, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(results: list[dict]) -> str:
    """Several ``--json`` runs (one seed each) side by side, one row per camera row: the mask
    step's mean IoU, recall, precision and worst static pair, and the plain difference's
    mean IoU in the same runs, each cell the runs' figures separated by " / " ("-" where a
    run lacks the row). Rows are those of the first run, in its order."""
    if not results:
        raise ValueError("no result files to summarise")

    def cells(name: str, method: str, key: str, digits: int = 3) -> str:
        found = [next((r[method] for r in result["rows"] if r["row"] == name), None) for result in results]
        return " / ".join("-" if row is None else _cell(row[key], digits) for row in found)

    seeds = " / ".join(str(result["seed"]) for result in results)
    lines = [f"| row | mean IoU, seeds {seeds} | recall | precision | worst static pair, % | plain difference: mean IoU |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in (row["row"] for row in results[0]["rows"]):
        lines.append(f"| {name} | {cells(name, 'ours', 'mean_iou')} | {cells(name, 'ours', 'recall')} | "
                     f"{cells(name, 'ours', 'precision')} | {cells(name, 'ours', 'static_area_pct_max', 2)} | "
                     f"{cells(name, 'plain', 'mean_iou')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", choices=sorted(GENERATORS), default="photographs",
                        help="othergen.py's pairs rendered from photographs, or videogen.py's made as from video")
    parser.add_argument("--moving", type=int, default=10)
    parser.add_argument("--static", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size", default="960x640", type=parse_size, help="WxH of the pairs")
    parser.add_argument("--only", help="rows whose name contains this")
    parser.add_argument("--tell-phase", action="store_true",
                        help="tell mask generate each row's S instant (--s-phase), as a user who knows the rig's; "
                             "by default it reads it from each pair")
    parser.add_argument("--align-option", action="append", default=[], dest="align_options", metavar="ARG",
                        help="passed on to reloblur align, one argument each (e.g. --align-option=--color-mode "
                             "--align-option=colourful)")
    parser.add_argument("--baseline-src", type=Path, default=None, metavar="DIR",
                        help="another checkout's src folder (git worktree add): its mask step runs on the same "
                             "aligned pairs, scored as 'baseline' (a change's before and after in one run)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--summary", type=Path, nargs="+", default=None, metavar="JSON",
                        help="the table in docs/benchmarks.md: --json result files of different --seed, side by side")
    args = parser.parse_args()
    if args.summary is not None:
        print(summary([json.loads(path.read_text()) for path in args.summary]))
        return
    generator_rows = GENERATORS[args.generator].ROWS
    rows = [row for row in generator_rows if args.only is None or args.only in row.name]
    if not rows:
        parser.error(f"--only {args.only!r} matches no row of {[row.name for row in generator_rows]}")
    results = []
    for row in rows:
        with tempfile.TemporaryDirectory() as folder:
            result = bench_row(row, Path(folder), moving=args.moving, static=args.static, seed=args.seed,
                               size=args.size, tell_phase=args.tell_phase, align_options=tuple(args.align_options),
                               baseline_src=args.baseline_src)
        results.append(result)
        print(f"{row.name}: mean IoU {_cell(result['ours']['mean_iou'])}, static max "
              f"{_cell(result['ours']['static_area_pct_max'], 2)} %", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"generator": args.generator, "seed": args.seed, "size": list(args.size),
                          "moving": args.moving, "static": args.static, "tell_phase": args.tell_phase,
                          "align_options": args.align_options,
                          "baseline_src": None if args.baseline_src is None else str(args.baseline_src),
                          "rows": results},
                         indent=1))
        return
    print("| row | ours: mean IoU | min | recall | precision | boundary F | static max % | plain: mean IoU | "
          "static max % | exits |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        ours, plain = result["ours"], result["plain"]
        print(f"| {result['row']} | {_cell(ours['mean_iou'])} | {_cell(ours['min_iou'])} | "
              f"{_cell(ours['recall'])} | {_cell(ours['precision'])} | {_cell(ours['boundary_f'])} | "
              f"{_cell(ours['static_area_pct_max'], 2)} | {_cell(plain['mean_iou'])} | "
              f"{_cell(plain['static_area_pct_max'], 2)} | {result['align_exit']}/{result['mask_exit']} |")


if __name__ == "__main__":
    main()
