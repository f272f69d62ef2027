"""The mask benchmark's aligned pairs, cached once, and the mask step scored on them.

Making and aligning the pairs is most of what ``mask_bench.py`` spends (about 23 minutes a
seed set of the whole suite, three repeats, on this project's reference machine), and a
change to the mask step does not change them. ``build``
aligns a row's pairs once, as ``mask_bench.py`` makes them (what ``reloblur align
--no-crop`` writes for each, with the generator's truth), into one file per row and seed;
``score`` runs ``generate_mask`` on them as ``mask_bench.py`` does and gives its figures
for lbfmg, to the last digit on the same pairs, in minutes; ``--compare`` says which rows
and which pairs a change moved. The other methods, the registration figures and the
seconds of ``mask_bench.py`` are not scored here; figures for ``docs/benchmarks.md`` come
from ``mask_bench.py`` itself, run on the change.

    python benchmarks/mask_cache.py build cache/ --seed 0 --repeats 3            # every row, 10 + 3 pairs a seed
    python benchmarks/mask_cache.py build cache/ --only over-exposed --seed 77 --repeats 3
    python benchmarks/mask_cache.py score cache/ --json before.json -j 2
    python benchmarks/mask_cache.py score cache/ --compare before.json -j 2      # after the change
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_bench import (  # noqa: E402
    aligned,
    crosstalk_model,
    lossy,
    mask_figures,
    output_mixing,
    parse_jpeg,
    record_mask,
    recorded_phase,
    selected_conditions,
)
from pairgen import Condition, make_pair, parse_size  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.atomic import atomic_open, atomic_write_json  # noqa: E402
from reloblur.lbfmg.generate import generate_mask  # noqa: E402
from reloblur.postprocess.align import AlignmentError  # noqa: E402

FORMAT = 1
# What a cached row's pairs were made with: a file made otherwise is not the same row.
PROTOCOL = ("moving", "static", "size", "set", "jpeg")
# A cached pair's arrays; the last four are absent where the pair has none (a burst is not
# registered: no clip map, no colour matrix; only a camera matrix align undid mixes outputs).
FIELDS = ("blur", "sharp", "valid", "truth", "clipped", "colour", "mixing_b", "mixing_s")


def cache_name(row: str, seed: int) -> str:
    """The file a row's pairs of one seed are cached in.

    >>> cache_name("over-exposed, gains differ", 1077)
    'over-exposed-gains-differ-seed1077.npz'
    """
    return f"{re.sub(r'[^a-z0-9]+', '-', row.lower()).strip('-')}-seed{seed}.npz"


def build_row(condition: Condition, seed: int, *, moving: int, static: int, size: tuple[int, int],
              jpeg: tuple[int, int] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """One row's pairs of one seed, aligned as ``mask_bench.run_condition`` aligns them: the
    arrays of a cache file (``"<i>.<field>"``) and its record (``meta``)."""
    arrays: dict[str, np.ndarray] = {}
    items: list[dict] = []
    failed = 0
    for index in range(moving + static):
        pair = make_pair(condition, index, static=index >= moving, seed=seed, size=size)
        try:
            blur, sharp, valid, clipped, alignment = aligned(pair, calibrated=condition.calibrated,
                                                             burst=condition.burst_frames > 0)
        except AlignmentError:
            failed += 1
            continue
        if jpeg is not None:
            blur, sharp = lossy(blur, jpeg[0]), lossy(sharp, jpeg[1])
        key = str(len(items))
        mixing = output_mixing(pair, alignment)
        fields = {"blur": blur, "sharp": sharp, "valid": valid, "truth": pair.mask, "clipped": clipped,
                  "colour": None if alignment is None else alignment.color.matrix,
                  "mixing_b": mixing[0], "mixing_s": mixing[1]}
        for name, value in fields.items():
            if value is not None:
                arrays[f"{key}.{name}"] = np.asarray(value)
        items.append({"index": index, "static": bool(pair.static), "travel": float(pair.travel)})
    meta = {"format": FORMAT, "row": condition.name, "seed": seed, "moving": moving, "static": static,
            "size": f"{size[0]}x{size[1]}", "jpeg": None if jpeg is None else list(jpeg),
            "isp_colour": bool(condition.isp_colour), "s_phase": recorded_phase(condition.s_phase),
            "align_failures": failed, "items": items}
    return arrays, meta


def write_row(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """A cache file, written whole or not at all."""
    with atomic_open(path) as handle:
        np.savez_compressed(handle, meta=np.array(json.dumps(meta)), **arrays)


def read_meta(path: Path) -> dict:
    """A cache file's record alone (its pairs' arrays are not read)."""
    return _read(path, pairs=False)[0]


def read_row(path: Path) -> tuple[dict, list[dict]]:
    """A cache file's record and its pairs (each a dict of arrays, None where absent)."""
    return _read(path, pairs=True)


def _read(path: Path, *, pairs: bool) -> tuple[dict, list[dict]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, not {FORMAT}")
            if not pairs:
                return meta, []
            stored = set(data.files)
            return meta, [{**item, **{name: data[f"{key}.{name}"] if f"{key}.{name}" in stored else None
                                      for name in FIELDS}}
                          for key, item in enumerate(meta["items"])]
    except (OSError, ValueError, KeyError) as error:
        raise SystemExit(f"{path}: not a mask cache file ({error})") from None


def score_row(path: Path, *, crosstalk: str = "prior", told_phase: bool = True) -> dict:
    """``generate_mask`` on a cache file's pairs, scored as ``mask_bench.run_condition``
    scores lbfmg: the row's figures, and each pair's (IoU, or a static pair's area)."""
    meta, pairs = read_row(path)
    scores: dict[str, list[float]] = {"iou": [], "recall": [], "precision": [], "bf": [], "area": [], "s": [],
                                      "travel": []}
    per_pair = []
    for pair in pairs:
        model = crosstalk_model(pair["colour"], crosstalk, isp_colour=meta["isp_colour"])
        start = time.perf_counter()
        result = generate_mask(pair["blur"], pair["sharp"], valid=pair["valid"], clipped=pair["clipped"],
                               colour_matrix=pair["colour"], crosstalk=model,
                               output_mixing=(pair["mixing_b"], pair["mixing_s"]),
                               s_phase=meta["s_phase"] if told_phase else None)
        scores["s"].append(time.perf_counter() - start)
        record_mask(scores, result.mask, pair["truth"], static=pair["static"], travel=pair["travel"])
        if pair["static"]:
            per_pair.append({"index": pair["index"], "static": True, "area_percent": 100 * scores["area"][-1]})
        else:
            per_pair.append({"index": pair["index"], "static": False, "iou": scores["iou"][-1],
                             "recall": scores["recall"][-1], "precision": scores["precision"][-1]})
    return {"file": path.name, "row": meta["row"], "seed": meta["seed"], "moving": meta["moving"],
            "static": meta["static"], "size": meta["size"], **mask_figures(scores), "align_failures": meta["align_failures"], "pairs": per_pair}


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
    args.folder.mkdir(parents=True, exist_ok=True)
    protocol = {"moving": args.moving, "static": args.static, "size": f"{args.size[0]}x{args.size[1]}",
                "set": args.changes, "jpeg": None if jpeg is None else list(jpeg)}
    for condition in conditions:
        for repeat in range(args.repeats):
            seed = args.seed + 1000 * repeat
            path = args.folder / cache_name(condition.name, seed)
            if path.exists():  # resume: a file is written whole, so one that exists is done
                meta = read_meta(path)
                made = {key: meta.get(key) for key in PROTOCOL}
                if made != protocol:
                    parser.error(f"{path} was made with {made}, not {protocol}: give another folder")
                print(f"{path.name}: cached", flush=True)
                continue
            arrays, meta = build_row(condition, seed, moving=args.moving, static=args.static, size=args.size,
                                     jpeg=jpeg)
            meta["set"] = args.changes
            write_row(path, arrays, meta)
            print(f"{path.name}: {len(meta['items'])} pairs ({meta['align_failures']} refused by align)", flush=True)


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
    with ProcessPoolExecutor(max_workers=args.workers, initializer=keep_freed_memory) as pool:
        rows = list(pool.map(partial(score_row, crosstalk=args.crosstalk, told_phase=not args.untold_phase), files))
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
