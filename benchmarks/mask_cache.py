"""The mask benchmark's aligned pairs, cached once, and the mask step scored on them.

Making and aligning the pairs is most of what ``mask_bench.py`` spends (about 23 minutes a
seed set of the whole suite, three repeats, on this project's reference machine), and a
change to the mask step does not change them. ``build`` aligns a row's pairs once, as
``mask_bench.py`` makes them (what ``reloblur align --no-crop`` writes for each, with the
generator's truth and the registration's error), into one file per row and seed
(``mask_bench.cached_row``); ``score`` runs ``generate_mask`` on them as ``mask_bench.py``
does and gives its figures for lbfmg, to the last digit on the same pairs, in minutes;
``--compare`` says which rows and which pairs a change moved. The figures for
``docs/benchmarks.md`` come from ``mask_bench.py`` itself, every method and the
registration's figures with them; ``mask_bench.py --pairs`` reads the same folder, so a
change to the mask step is benchmarked without making and aligning the pairs again.

    python benchmarks/mask_cache.py build cache/ --seed 0 --repeats 3 -j 2       # every row, 10 + 3 pairs a seed
    python benchmarks/mask_cache.py build cache/ --only over-exposed --seed 77 --repeats 3
    python benchmarks/mask_cache.py score cache/ --json before.json -j 2
    python benchmarks/mask_cache.py score cache/ --compare before.json -j 2      # after the change
    python benchmarks/mask_bench.py --seed 0 --repeats 3 --json --pairs cache/   # the suite's figures
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_bench import (  # noqa: E402
    CacheMismatch,
    cache_name,
    cache_protocol,
    cached_row,
    crosstalk_model,
    lbfmg_mask,
    mask_figures,
    parse_jpeg,
    read_cached,
    record_mask,
    selected_conditions,
)
from pairgen import Condition, parse_size  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.atomic import atomic_write_json  # noqa: E402


def score_row(path: Path, *, crosstalk: str = "prior", told_phase: bool = True) -> dict:
    """``generate_mask`` on a cache file's pairs, scored as ``mask_bench.run_condition``
    scores lbfmg: the row's figures, and each pair's (IoU, or a static pair's area)."""
    meta, pairs = read_cached(path)
    scores: dict[str, list[float]] = {"iou": [], "recall": [], "precision": [], "bf": [], "area": [], "s": [],
                                      "travel": []}
    per_pair = []
    for pair in pairs:
        model = crosstalk_model(pair.colour, crosstalk, isp_colour=meta["isp_colour"])
        start = time.perf_counter()
        result = lbfmg_mask(pair, crosstalk=model, s_phase=meta["s_phase"] if told_phase else None)
        scores["s"].append(time.perf_counter() - start)
        record_mask(scores, result.mask, pair.truth, static=pair.static, travel=pair.travel)
        if pair.static:
            per_pair.append({"index": pair.index, "static": True, "area_percent": 100 * scores["area"][-1]})
        else:
            per_pair.append({"index": pair.index, "static": False, "iou": scores["iou"][-1],
                             "recall": scores["recall"][-1], "precision": scores["precision"][-1]})
    return {"file": path.name, "row": meta["row"], "seed": meta["seed"], "moving": meta["moving"],
            "static": meta["static"], "size": meta["size"], **mask_figures(scores),
            "align_failures": meta["align_failures"], "pairs": per_pair}


def seed_sets(rows: list[dict]) -> list[str]:
    """One line per row and seed set (``seed % 1000``: a seed and its repeats, as a cell of
    ``mask_bench.py --summary``): the mean over its files of each mean, the lowest and
    highest file's mean IoU, the worst static pair."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["row"], r["seed"] % 1000), []).append(r)
    lines = []
    for (row, seed_set), members in sorted(groups.items()):
        def mean(key: str, members: list[dict] = members) -> float | None:
            values = [m[key] for m in members if m[key] is not None]
            return float(np.mean(values)) if values else None
        ious = [m["mean_iou"] for m in members if m["mean_iou"] is not None]
        statics = [m["static_area_percent_max"] for m in members if m["static_area_percent_max"] is not None]
        spread = f" ({min(ious):.4f}-{max(ious):.4f})" if len(ious) > 1 else ""
        lines.append(f"{row[:48]:48s} seed set {seed_set:3d} x{len(members)}  IoU {_text(mean('mean_iou'), 4)}{spread}  "
                     f"recall {_text(mean('mean_recall'), 4)}  precision {_text(mean('mean_precision'), 4)}  "
                     f"static max {_text(max(statics) if statics else None, 2)} %  "
                     f"{_text(mean('seconds_per_pair'), 3)} s/pair")
    return lines


def changes(before: dict, after: dict) -> list[str]:
    """What moved between two ``score --json`` results of the same cache: each row whose
    mean IoU or worst static pair changed, then each pair that did (an IoU, or a static
    pair's area); files only one of them scored are named."""
    lines = []
    old, new = before["files"], after["files"]
    for name in sorted(set(old) ^ set(new)):
        lines.append(f"{name}: scored only {'before' if name in old else 'now'}")
    for name in sorted(set(old) & set(new)):
        a, b = old[name], new[name]
        row = f"{a['row']} (seed {a['seed']})"
        for key, digits in (("mean_iou", 4), ("static_area_percent_max", 2)):
            if not _same(a[key], b[key]):
                lines.append(f"{row}: {key} {_text(a[key], digits)} -> {_text(b[key], digits)}")
        pairs = {p["index"]: p for p in a["pairs"]}
        for pair in b["pairs"]:
            was = pairs.get(pair["index"])
            key = "area_percent" if pair["static"] else "iou"
            if was is None or not _same(was.get(key), pair[key]):
                lines.append(f"  {row} pair {pair['index']}: {key} "
                             f"{_text(None if was is None else was.get(key), 3)} -> {_text(pair[key], 3)}")
    return lines


def _same(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


def _text(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _build(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    conditions = selected_conditions(args.only, args.changes)
    if isinstance(conditions, str):
        parser.error(conditions)
    if not conditions:
        parser.error(f"--only {args.only!r}: no row's name holds it")
    jpeg = None if args.jpeg is None else parse_jpeg(args.jpeg)
    if isinstance(jpeg, str):
        parser.error(jpeg)
    protocol = cache_protocol(moving=args.moving, static=args.static, size=args.size, changes=args.changes, jpeg=jpeg)
    tasks = [(condition, args.seed + 1000 * repeat) for condition in conditions for repeat in range(args.repeats)]
    try:
        with ProcessPoolExecutor(max_workers=args.workers, initializer=keep_freed_memory) as pool:
            for line in pool.map(partial(_build_one, folder=args.folder, protocol=protocol), *zip(*tasks)):
                print(line, flush=True)
    except CacheMismatch as error:
        parser.error(str(error))


def _build_one(condition: Condition, seed: int, *, folder: Path, protocol: dict) -> str:
    """One row and seed cached (or found cached): its line of ``build``'s output."""
    pairs, failed, existed = cached_row(folder, condition, seed, protocol, load=False)
    name = cache_name(condition.name, seed)
    return f"{name}: cached" if existed else f"{name}: {len(pairs)} pairs ({failed} refused by align)"


def _score(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    files = sorted(args.folder.glob("*.npz")) if args.folder.is_dir() else []
    if not files:
        parser.error(f"{args.folder}: no cache files (make them with `build`)")
    before = None
    if args.compare is not None:
        try:
            before = json.loads(args.compare.read_text())
            assert isinstance(before.get("files"), dict)
        except (OSError, ValueError, AssertionError):
            parser.error(f"--compare {args.compare}: not a `score --json` result")
    try:
        with ProcessPoolExecutor(max_workers=args.workers, initializer=keep_freed_memory) as pool:
            rows = list(pool.map(partial(score_row, crosstalk=args.crosstalk, told_phase=not args.untold_phase),
                                 files))
    except CacheMismatch as error:
        parser.error(str(error))
    result = {"crosstalk": args.crosstalk, "untold_phase": args.untold_phase, "files": {r["file"]: r for r in rows}}
    for line in seed_sets(rows):
        print(line, flush=True)
    if args.json is not None:
        atomic_write_json(args.json, result)
    if before is not None:
        moved = changes(before, result)
        print("\n".join(moved) if moved else "no row and no pair changed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="align the rows' pairs into FOLDER (resumes)")
    build.add_argument("folder", type=Path)
    build.add_argument("--only", default=None, help="the rows whose name contains this")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--repeats", type=int, default=1, help="seeds SEED, SEED + 1000, ... as mask_bench.py's repeats")
    build.add_argument("--moving", type=int, default=10)
    build.add_argument("--static", type=int, default=3)
    build.add_argument("--size", default="538x359", type=parse_size)
    build.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="changes",
                       help="as mask_bench.py's --set (repeatable)")
    build.add_argument("--jpeg", default=None, metavar="QB/QS", help="as mask_bench.py's --jpeg")
    build.add_argument("--workers", "-j", type=int, default=1, help="processes, one row and seed each at a time")
    score = commands.add_parser("score", help="generate_mask on every file of FOLDER")
    score.add_argument("folder", type=Path)
    score.add_argument("--crosstalk", choices=("prior", "measured", "auto"), default="prior",
                       help="as mask_bench.py's --crosstalk")
    score.add_argument("--untold-phase", action="store_true", help="as mask_bench.py's --untold-phase")
    score.add_argument("--json", type=Path, default=None, help="write every figure here, per row and per pair")
    score.add_argument("--compare", type=Path, default=None, metavar="JSON",
                       help="a --json result of an earlier score: print the rows and pairs that changed")
    score.add_argument("--workers", "-j", type=int, default=1, help="processes, one cache file each at a time")
    args = parser.parse_args()
    keep_freed_memory()
    (_build if args.command == "build" else _score)(args, parser)


if __name__ == "__main__":
    main()
