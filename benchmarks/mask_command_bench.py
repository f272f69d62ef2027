"""`reloblur mask generate` as a whole command: seconds per pair as a user sees them, on
one core and on every core, against the cheapest mask command there is, in the same run.

Pairs: ``benchmarks/pairgen.py``'s pairs of one row at 538x359 or ``--size`` (photographs, moving objects,
two camera models, a homography between them; a share of them static), written as 8-bit
sRGB PNG pairs and aligned once by ``reloblur align IN OUT --no-crop``, so that the mask
step reads what it reads in use: ``align``'s output with its validity and clip maps.

Measured in the same run, each as the wall time of its own process (imports count), into
a fresh masks folder each time:

* ``mask generate -j 1``: ``python -m reloblur mask generate ALIGNED --out M --workers 1``;
* ``mask generate``: the same with every core (the default);
* ``plain difference script`` (the baseline): one process that reads each aligned pair,
  thresholds ``|B - S|`` at 3 noise sigmas (Immerkaer's estimate) and writes the mask:
  reading, the least computing a mask needs, writing.

    python benchmarks/mask_command_bench.py                  # 24 pairs, 3 repeats
    python benchmarks/mask_command_bench.py --pairs 8 --repeats 1 --json
    python benchmarks/mask_command_bench.py --pairs 4 --repeats 2 --size 3840x2160
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mask_bench import plain_difference  # noqa: E402
from pairgen import CONDITIONS, make_pair, parse_size  # noqa: E402
from reloblur.imaging.imageio import encode_srgb, read_image, write_image  # noqa: E402

SIZE = (538, 359)  # the default; --size for ReLoBlur's 2152x1436 or a 4K camera's
STATIC_SHARE = 0.25  # as the mask benchmark's rows: 10 moving and 3 static of 13


def write_pairs(folder: Path, row: str, count: int, seed: int, size: tuple[int, int] = SIZE) -> None:
    """``count`` unaligned pairs of ``row`` at ``size`` as ``NN_blur.png`` / ``NN_sharp.png``."""
    condition = next(c for c in CONDITIONS if c.name == row)
    folder.mkdir(parents=True, exist_ok=True)
    moving = count - round(STATIC_SHARE * count)
    for index in range(count):
        pair = make_pair(condition, index, size=size, static=index >= moving, seed=seed)
        write_image(folder / f"{index:02d}_blur.png", encode_srgb(pair.blur))
        write_image(folder / f"{index:02d}_sharp.png", encode_srgb(pair.sharp))


def plain_script(aligned: Path, out: Path) -> None:
    """The baseline (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    for blur_path in sorted(aligned.rglob("*_blur.png")):
        blur = read_image(blur_path)
        sharp = read_image(blur_path.with_name(blur_path.name.replace("_blur", "_sharp")))
        write_image(out / blur_path.name.replace("_blur", ""), plain_difference(blur, sharp))


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--row", default="default rig", help="a row of benchmarks/pairgen.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", default=f"{SIZE[0]}x{SIZE[1]}", type=parse_size, help="WxH of the pairs")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plain-script", nargs=2, type=Path, metavar=("ALIGNED", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_script:
        plain_script(*args.plain_script)
        return
    if args.row not in {c.name for c in CONDITIONS}:
        parser.error(f"--row {args.row!r}: not a row of pairgen.CONDITIONS")
    size = width, height = args.size
    python = [sys.executable]
    work = Path(tempfile.mkdtemp(prefix="mask-command-bench-"))
    try:
        write_pairs(work / "in", args.row, args.pairs, args.seed, size)
        aligned = work / "aligned"
        subprocess.run(python + ["-m", "reloblur", "align", str(work / "in"), str(aligned), "--no-crop", "--json"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        runs = {
            "mask generate -j 1": lambda out: python + ["-m", "reloblur", "mask", "generate", str(aligned), "--out",
                                                        str(out), "--workers", "1", "--json"],
            "mask generate": lambda out: python + ["-m", "reloblur", "mask", "generate", str(aligned), "--out",
                                                   str(out), "--json"],
            "plain difference script": lambda out: python + [__file__, "--plain-script", str(aligned), str(out)],
        }
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        for repeat in range(args.repeats):
            for name, command in runs.items():  # interleaved: drift in the machine's speed hits all alike
                out = work / f"out-{repeat}-{len(seconds[name])}-{name.replace(' ', '_')}"
                seconds[name].append(timed(command(out)))
                shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    baseline = statistics.median(seconds["plain difference script"])
    summary = {
        name: {"seconds": values, "median_s": statistics.median(values),
               "s_per_pair": statistics.median(values) / args.pairs,
               "x_plain_script": statistics.median(values) / baseline}
        for name, values in seconds.items()
    }
    if args.json:
        print(json.dumps({"pairs": args.pairs, "row": args.row, "repeats": args.repeats, "cores": os.cpu_count(),
                          "size": f"{width}x{height}", "results": summary}, indent=2))
        return
    print(f"{args.pairs} pairs of {args.row!r} at {width}x{height}, {args.repeats} repeats, {os.cpu_count()} cores")
    for name, row in summary.items():
        spread = f"{min(row['seconds']):.2f}-{max(row['seconds']):.2f}"
        print(f"{name:26s} {row['median_s']:7.2f} s ({spread})  {row['s_per_pair']:.3f} s/pair  "
              f"{row['x_plain_script']:.2f}x the plain difference script")


if __name__ == "__main__":
    main()
