"""`reloblur align` as a whole command, against the original registration as a script, and
against the floor of its own I/O, on photographic pairs at ReLoBlur's full size.

Pairs: ``benchmarks/pairgen.py``'s default rig at 2152x1436 (photographs, moving objects,
two camera models, a homography between them), written as 8-bit sRGB PNG pairs in a
folder tree: what ``reloblur align IN OUT`` reads.

Measured in the same run, each as the wall time of its own process (so imports count):

* ``align -j 1``: ``python -m reloblur align IN OUT --workers 1`` (one process, one core);
* ``align``: the same with every core (the default);
* ``ECC script``: the original ReLoBlur registration as a script, one process: read the
  pair, ECC on grey (homography, 100 iterations, epsilon 0, Gaussian 5, least-squares
  gain, from identity), warp S, write it (``--ecc-script IN OUT``);
* ``I/O floor``: in this process, per pair, decoding the two inputs, one full-resolution
  Lanczos warp of S, and encoding the two outputs as ``align`` does: what no aligner can
  avoid. Measured with the allocator settings ``align``'s workers run with
  (:func:`reloblur.allocator.keep_freed_memory`), which make it faster too.

Each is repeated (``--repeats``) and reported as min / median / max; accuracy is the corner
error of ``align``'s homography against the generator's.

    python benchmarks/align_command_bench.py                 # 8 pairs, 3 repeats
    python benchmarks/align_command_bench.py --pairs 4 --repeats 1 --json
    python benchmarks/align_command_bench.py --png      # only: PNG encoding, time and size per setting
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

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from align_bench import ecc_baseline  # noqa: E402
from pairgen import CONDITIONS, make_pair  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.imaging.imageio import PNG_COMPRESSION, encode_image, encode_srgb, read_image, write_image  # noqa: E402
from reloblur.postprocess.registration import corner_error  # noqa: E402

SIZE = (2152, 1436)


def write_pairs(folder: Path, count: int, seed: int) -> list[np.ndarray]:
    """``count`` pairs as ``NN_blur.png`` / ``NN_sharp.png``; returns the true homographies."""
    folder.mkdir(parents=True, exist_ok=True)
    truths = []
    for index in range(count):
        pair = make_pair(CONDITIONS[0], index, size=SIZE, seed=seed)
        write_image(folder / f"{index:02d}_blur.png", encode_srgb(pair.blur))
        write_image(folder / f"{index:02d}_sharp.png", encode_srgb(pair.sharp))
        truths.append(pair.homography)
    return truths


def ecc_script(source: Path, out: Path) -> None:
    """The original registration as a user would script it (see the module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    for blur_path in sorted(source.glob("*_blur.png")):
        blur = cv2.imread(str(blur_path), cv2.IMREAD_COLOR).astype(np.float32) / 255
        sharp = cv2.imread(str(blur_path).replace("_blur", "_sharp"), cv2.IMREAD_COLOR).astype(np.float32) / 255
        rgb = (np.ascontiguousarray(image[:, :, ::-1]) for image in (blur, sharp))
        warp = ecc_baseline(*rgb)  # the same registration align_bench.py measures
        h, w = blur.shape[:2]
        warped = cv2.warpPerspective(sharp, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        cv2.imwrite(str(out / blur_path.name.replace("_blur", "_sharp")),
                    np.clip(np.rint(warped * 255), 0, 255).astype(np.uint8))


def io_floor(source: Path) -> float:
    """Seconds to decode every pair, warp each S once at full resolution and encode both."""
    started = time.perf_counter()
    for blur_path in sorted(source.glob("*_blur.png")):
        blur = read_image(blur_path)
        sharp = read_image(Path(str(blur_path).replace("_blur", "_sharp")))
        h, w = blur.shape[:2]
        warped = cv2.warpPerspective(sharp, np.eye(3), (w, h), flags=cv2.INTER_LANCZOS4)
        encode_image(blur, ".png", png="fast")
        encode_image(warped, ".png", png="fast")
    return time.perf_counter() - started


def png_settings(source: Path, repeats: int) -> dict[str, dict[str, float]]:
    """Seconds and megabytes per image of each ``--png-compression`` choice, and the seconds
    to decode what it wrote, on the pairs' 8-bit images (B as read, S as align would write
    it: same content statistics); one thread, as in align's workers."""
    cv2.setNumThreads(1)
    images = [read_image(path) for path in sorted(source.glob("*.png"))]
    # The baselines: what align's fast setting was before (OpenCV's own default), and
    # before that zlib level 3 with its default strategy.
    settings = {**{name: params for name, params in PNG_COMPRESSION.items()},
                "OpenCV default": [], "zlib 3": [cv2.IMWRITE_PNG_COMPRESSION, 3]}
    result = {}
    for name, params in settings.items():
        times, size = [], 0
        for _ in range(repeats):
            started = time.perf_counter()
            size = sum(len(cv2.imencode(".png", image[:, :, ::-1], params)[1]) for image in images)
            times.append((time.perf_counter() - started) / len(images))
        buffers = [cv2.imencode(".png", image[:, :, ::-1], params)[1] for image in images]
        decode_times = []
        for _ in range(repeats):
            started = time.perf_counter()
            for buffer in buffers:
                cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            decode_times.append((time.perf_counter() - started) / len(images))
        result[name] = {"seconds_per_image": statistics.median(times), "mb_per_image": size / len(images) / 1e6,
                        "decode_seconds_per_image": statistics.median(decode_times)}
    return result


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, completed.stdout


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--png", action="store_true", help="only measure the PNG compression settings")
    parser.add_argument("--ecc-script", nargs=2, type=Path, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ecc_script:
        ecc_script(*args.ecc_script)
        return

    keep_freed_memory()  # for the floor, measured in this process
    work = Path(tempfile.mkdtemp(prefix="align-command-bench-"))
    try:
        source = work / "in"
        truths = write_pairs(source, args.pairs, args.seed)
        if args.png:
            settings = png_settings(source, args.repeats)
            if args.json:
                print(json.dumps(settings, indent=2))
                return
            for name, row in settings.items():
                print(f"{name:16s} {row['seconds_per_image']:.3f} s/image {row['mb_per_image']:.2f} MB/image, "
                      f"decoded in {row['decode_seconds_per_image']:.3f} s")
            return
        python = [sys.executable]
        runs: dict[str, list[float]] = {"align -j 1": [], "align": [], "ECC script": [], "I/O floor": []}
        stages: dict[str, float] = {}
        for _ in range(args.repeats):
            for name, out, command in (
                ("align -j 1", "a1", ["-m", "reloblur", "align", str(source), str(work / "a1"), "--workers", "1",
                                      "--json"]),
                ("align", "an", ["-m", "reloblur", "align", str(source), str(work / "an"), "--json"]),
                ("ECC script", "ecc", [__file__, "--ecc-script", str(source), str(work / "ecc")]),
            ):
                shutil.rmtree(work / out, ignore_errors=True)  # every repeat starts from nothing
                seconds, output = timed([*python, *command])
                runs[name].append(seconds)
                if name == "align -j 1":
                    stages = json.loads(output)["stage_seconds"]
            runs["I/O floor"].append(io_floor(source))
        errors = []
        for index, truth in enumerate(truths):
            record = json.loads((work / "a1" / f"{index:02d}.align.json").read_text())
            errors.append(corner_error(np.array(record["homography_blur_to_sharp"]), truth, *SIZE))
        corners = np.concatenate(errors)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {name: spread(values) for name, values in runs.items()}
    ecc = summary["ECC script"]["median"]
    result = {
        "pairs": args.pairs, "repeats": args.repeats, "size": list(SIZE), "cpus": os.cpu_count(),
        "seconds": summary,
        "speed_up_vs_ecc": {name: ecc / summary[name]["median"] for name in ("align -j 1", "align")},
        "vs_io_floor": {name: summary[name]["median"] / summary["I/O floor"]["median"]
                        for name in ("align -j 1", "align")},
        "stage_seconds_per_pair": {k: v / args.pairs for k, v in stages.items()},
        "corner_error_px": {"median": float(np.median(corners)), "max": float(corners.max())},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.pairs} photographic pairs at {SIZE[0]}x{SIZE[1]}, 8-bit PNG in and out, "
          f"{args.repeats} repeat(s), {os.cpu_count()} CPUs; seconds for all pairs, min / median / max")
    for name, values in summary.items():
        print(f"  {name:12s} {values['min']:8.2f} {values['median']:8.2f} {values['max']:8.2f}")
    for name in ("align -j 1", "align"):
        print(f"  {name}: {result['speed_up_vs_ecc'][name]:.1f}x the ECC script, "
              f"{result['vs_io_floor'][name]:.1f}x the I/O floor")
    print("  stages of align -j 1, s per pair: "
          + ", ".join(f"{k} {v:.3f}" for k, v in result["stage_seconds_per_pair"].items()))
    print(f"  corner error: median {result['corner_error_px']['median']:.3f} px, "
          f"max {result['corner_error_px']['max']:.3f} px")


if __name__ == "__main__":
    main()
