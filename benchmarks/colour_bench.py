"""How far ``align``'s colour fit lies from the cameras' true relation, on the mask benchmark's pairs.

``pairgen`` knows each pair's colour relation (its ``Twins.to_blur``: B's camera over S's,
gains and crosstalk, through the cameras' own colour matrices where they were on). Each pair
is aligned as ``mask_bench.py`` aligns it (what ``reloblur align --no-crop`` does), and the
fitted map is scored on the 24 ColorChecker colours against the true one (``align_bench``'s
``checker_error``: median over the patches of the worst channel's relative error).

Baseline, measured in the same run on the same pairs: the same alignment told nothing of
where the cameras' outputs clipped before their matrices were undone (what ``align`` did
before 2026-12-06), so that its colour fit takes those pixels too. Rows without a recorded
camera matrix have no output clip: there both columns are the same fit.

    python benchmarks/colour_bench.py                            # the undone row, nine seeds
    python benchmarks/colour_bench.py --only "gains differ" --seeds 0 77 500 --json out.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from align_bench import checker_error  # noqa: E402
from mask_bench import aligned, true_relation  # noqa: E402
from pairgen import CONDITIONS, make_pair  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.atomic import atomic_write_json  # noqa: E402
from reloblur.postprocess.align import AlignmentError  # noqa: E402

SEEDS = (0, 1000, 2000, 77, 1077, 2077, 500, 1500, 2500)


def summary(errors: list[float]) -> dict:
    e = np.asarray(errors)
    return {"pairs": int(e.size), "median": float(np.median(e)), "mean": float(e.mean()),
            "p90": float(np.percentile(e, 90)), "max": float(e.max()), "over_0_1": int((e > 0.1).sum())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="undone", help="rows whose name holds this (default: undone)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--moving", type=int, default=10)
    parser.add_argument("--static", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write per-pair errors and the summaries here")
    args = parser.parse_args()
    keep_freed_memory()
    # A burst row's pair comes from one sensor: nothing registers it or fits its colours.
    conditions = [c for c in CONDITIONS if args.only in c.name and not c.burst_frames]
    if not conditions:
        print(f"no row whose name holds {args.only!r} has its colours fitted by align", file=sys.stderr)
        return 1
    report: dict = {"rows": {}}
    for condition in conditions:
        ours: list[float] = []
        baseline: list[float] = []
        pairs: dict[str, list] = {}
        refused = 0
        for seed in args.seeds:
            for index in range(args.moving + args.static):
                pair = make_pair(condition, index, static=index >= args.moving, seed=seed, twins=True)
                truth = true_relation(pair, condition)
                try:
                    told, plain = (aligned(pair, calibrated=condition.calibrated, output_clip=given)[-1]
                                   for given in (True, False))
                except AlignmentError:
                    refused += 1
                    continue
                errors = [checker_error(fit.color.matrix, truth) for fit in (told, plain)]
                ours.append(errors[0])
                baseline.append(errors[1])
                pairs[f"{seed}:{index}"] = [*errors, told.color.mode, told.color.samples]
        row = {"ours": summary(ours), "untold": summary(baseline), "refused": refused, "pairs": pairs}
        report["rows"][condition.name] = row
        print(f"{condition.name}: {len(ours)} pairs ({refused} refused by align)")
        for name, s in (("ours", row["ours"]), ("untold (baseline)", row["untold"])):
            print(f"  {name:18s} median {s['median']:.3f}  mean {s['mean']:.3f}  p90 {s['p90']:.3f}  "
                  f"max {s['max']:.3f}  over 0.1: {s['over_0_1']}")
        print(f"  baseline / ours: median {row['untold']['median'] / max(row['ours']['median'], 1e-12):.1f}x, "
              f"mean {row['untold']['mean'] / max(row['ours']['mean'], 1e-12):.1f}x")
    if args.json:
        atomic_write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
