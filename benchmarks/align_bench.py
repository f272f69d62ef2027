"""Alignment accuracy and speed against the registration of the original ReLoBlur code.

Baseline (measured in the same run, on the same pairs): OpenCV ``findTransformECC`` with a
homography motion model on grayscale, 100 iterations, termination epsilon 0, Gaussian
filter size 5, intensity matched by a least-squares gain, no colour correction, starting
from identity. Ours: ``reloblur.postprocess.align.align_pair`` (features + photometric
Lucas-Kanade + robust colour), timed including the final full-resolution warp of S.

Pairs come from the rig simulator, which records the true homography, the lenses'
distortion difference and the colour matrix. Reported per size: corner error (the four
image corners mapped by the estimated versus the true map, homography after the lens term;
px; median, mean, max; ECC has no lens term), colour error on static pixels after correction
(RMS of B minus corrected S relative to the RMS with the true correction: 1.00 means as
good as the truth; the ECC baseline does no colour correction), the colour map's error on
colours the scene may lack (the 24 ColorChecker patches in linear light, mapped by the fitted
and by the true correction: median relative error per pair, averaged; a grey or one-colour
scene leaves some colour directions to noise), and seconds per pair.
``--varied-scenes`` draws the simulator's plain walls, skies, dark and over-exposed scenes
and one-colour objects as well (``reloblur simulate --varied-scenes``).
Both run in this process with every core OpenCV finds, and with the allocator settings
``reloblur align``'s workers use (:func:`reloblur.allocator.keep_freed_memory`).

    python benchmarks/align_bench.py                 # 720x480 x 8 pairs, 2152x1436 x 3 pairs
    python benchmarks/align_bench.py --pairs 20 --large-pairs 5 --json
    python benchmarks/align_bench.py --varied-scenes --pairs 16 --large-pairs 0
"""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np

from reloblur.allocator import keep_freed_memory
from reloblur.postprocess.align import AlignmentError, align_pair
from reloblur.postprocess.geometry import sharp_coordinates
from reloblur.postprocess.registration import corner_error
from reloblur.sim.simulator import RigSimulator, SimulatorConfig


def ecc_baseline(blur: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    template = cv2.cvtColor(blur, cv2.COLOR_RGB2GRAY)
    moving = cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY)
    gain = float((template * moving).sum() / max((moving * moving).sum(), 1e-12))
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 0)
    try:
        _, warp = cv2.findTransformECC(template, (moving * gain).astype(np.float32), warp,
                                       cv2.MOTION_HOMOGRAPHY, criteria, None, 5)
    except cv2.error:
        pass  # did not converge: keep the last estimate (identity), as the original would fail
    return warp.astype(np.float64) / warp[2, 2]


# The 24 ColorChecker patches, sRGB 8-bit (published averages), decoded to linear light at half
# scale: a range of saturated and grey colours independent of any scene.
CHECKER_SRGB = np.array([
    [115, 82, 68], [194, 150, 130], [98, 122, 157], [87, 108, 67], [133, 128, 177], [103, 189, 170],
    [214, 126, 44], [80, 91, 166], [193, 90, 99], [94, 60, 108], [157, 188, 64], [224, 163, 46],
    [56, 61, 150], [70, 148, 73], [175, 54, 60], [231, 199, 31], [187, 86, 149], [8, 133, 161],
    [243, 243, 242], [200, 200, 200], [160, 160, 160], [122, 122, 121], [85, 85, 85], [52, 52, 52],
]) / 255
CHECKER = 0.5 * np.where(CHECKER_SRGB <= 0.04045, CHECKER_SRGB / 12.92, ((CHECKER_SRGB + 0.055) / 1.055) ** 2.4)


def checker_error(matrix: np.ndarray, truth: np.ndarray) -> float:
    """Median over the 24 patches of |fitted - true| / true, per channel's worst."""
    true = CHECKER @ truth.T
    return float(np.median((np.abs(CHECKER @ matrix.T - true) / np.maximum(true, 0.02)).max(axis=1)))


def colour_ratio(blur, sharp, homography, radial, matrix, truth_h, truth_radial, truth_c, mask) -> float:
    size = (blur.shape[1], blur.shape[0])

    def residual(h, k, c):
        warped = cv2.remap(sharp, *sharp_coordinates(h, size, radial=k), cv2.INTER_LANCZOS4)
        corrected = np.einsum("ij,hwj->hwi", c, warped)
        static = mask & (blur.max(axis=2) < 0.98) & (warped.max(axis=2) < 0.98)
        return float(np.sqrt(((blur - corrected)[static] ** 2).mean()))

    return residual(homography, radial, matrix) / residual(truth_h, truth_radial, truth_c)


def run_size(width: int, height: int, pairs: int, seed: int, varied: bool = False) -> dict:
    sim = RigSimulator(SimulatorConfig(width=width, height=height, seed=seed, varied_scenes=varied))
    rows: dict[str, list] = {"ours": [], "ecc": []}
    skipped = 0
    for index in range(pairs):
        rendered = sim.render(index)
        blur = rendered.blur.astype(np.float32) / 65535
        sharp = rendered.sharp.astype(np.float32) / 65535
        truth_h = np.asarray(rendered.truth["homography_blur_to_sharp"])
        truth_c = np.asarray(rendered.truth["color_matrix_sharp_to_blur"])
        truth_k = rendered.truth["radial_distortion"]
        border = max(8, width // 60)
        static = cv2.dilate(rendered.mask, np.ones((9, 9), np.uint8)) == 0
        static[:border] = static[-border:] = False
        static[:, :border] = static[:, -border:] = False

        start = time.perf_counter()
        try:
            result = align_pair(blur, sharp)
        except AlignmentError:  # a featureless wall: align needs the rig's calibration there
            skipped += 1
            continue
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        ecc_h = ecc_baseline(blur, sharp)
        ecc_s = time.perf_counter() - start

        gain = float((blur * sharp).sum() / (sharp * sharp).sum())
        rows["ours"].append((corner_error(result.homography, truth_h, width, height, radial=result.radial,
                                          truth_radial=truth_k), ours_s,
                             colour_ratio(blur, sharp, result.homography, result.radial, result.color.matrix, truth_h,
                                          truth_k, truth_c, static), checker_error(result.color.matrix, truth_c)))
        rows["ecc"].append((corner_error(ecc_h, truth_h, width, height, truth_radial=truth_k), ecc_s,
                            colour_ratio(blur, sharp, ecc_h, 0.0, gain * np.eye(3), truth_h, truth_k, truth_c, static),
                            checker_error(gain * np.eye(3), truth_c)))
    summary = {}
    for name, entries in rows.items():
        corners = np.concatenate([e[0] for e in entries])
        summary[name] = {
            "corner_error_median_px": float(np.median(corners)),
            "corner_error_mean_px": float(corners.mean()),
            "corner_error_max_px": float(corners.max()),
            "colour_rms_vs_truth": float(np.mean([e[2] for e in entries])),
            "checker_error": float(np.mean([e[3] for e in entries])),
            "checker_error_max": float(np.max([e[3] for e in entries])),
            "seconds_per_pair": float(np.mean([e[1] for e in entries])),
        }
    summary["speedup"] = summary["ecc"]["seconds_per_pair"] / summary["ours"]["seconds_per_pair"]
    summary["pairs"] = pairs - skipped
    summary["skipped_featureless"] = skipped
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=8, help="pairs at 720x480")
    parser.add_argument("--large-pairs", type=int, default=3, help="pairs at 2152x1436")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--varied-scenes", action="store_true", help="walls, skies, dark, over-exposed scenes too")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cv2.setNumThreads(cv2.getNumberOfCPUs())
    keep_freed_memory()
    sizes = {"720x480": (720, 480, args.pairs), "2152x1436": (2152, 1436, args.large_pairs)}
    results = {name: run_size(w, h, n, args.seed, args.varied_scenes) for name, (w, h, n) in sizes.items() if n > 0}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("baseline: OpenCV findTransformECC (homography, 100 it, eps 0, gauss 5, LS gain), same pairs, same run")
    print(f"{'size':10s} {'method':6s} {'median px':>9s} {'mean px':>8s} {'max px':>8s} {'colour':>7s} "
          f"{'checker':>8s} {'s/pair':>8s}")
    for size, summary in results.items():
        for name in ("ours", "ecc"):
            s = summary[name]
            print(f"{size:10s} {name:6s} {s['corner_error_median_px']:9.3f} {s['corner_error_mean_px']:8.3f} "
                  f"{s['corner_error_max_px']:8.3f} {s['colour_rms_vs_truth']:7.3f} {s['checker_error']:8.3f} "
                  f"{s['seconds_per_pair']:8.3f}")
        print(f"{size:10s} speed-up ours vs ECC: {summary['speedup']:.1f}x over {summary['pairs']} pairs")


if __name__ == "__main__":
    main()
