"""``reloblur align calibrate``: a rig calibration from a capture of a static scene.

Every pair is aligned independently; the rig's homography is the element-wise median of
the per-pair homographies (normalised so H[2, 2] = 1) and its colour matrix the median of
the per-pair matrices. The spread (how far each pair's corners land from the median's)
says how stable the rig is. ``reloblur align --calibration FILE`` starts every pair from
this homography instead of feature matching, and ``--color-mode calibrated`` applies the
matrix with only a per-pair gain (for scenes too weak in colour to fit a matrix).
Vignetting is not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reloblur import __version__
from reloblur.batch import ItemFailure, StageTimer, run_batch
from reloblur.errors import ReloblurError
from reloblur.formats.calibration import Calibration
from reloblur.imaging.imageio import encode_srgb
from reloblur.imaging.raw import InputTransfer
from reloblur.lbfmg.generate import generate_mask, pair_noise_model
from reloblur.lbfmg.noise import NoiseLevel
from reloblur.pipeline.align import AlignJob, AlignOptions, _load, discover_jobs
from reloblur.postprocess.align import AlignSettings, align_pair
from reloblur.postprocess.registration import corner_error


@dataclass(frozen=True)
class CalibrateOptions:
    """Options of ``reloblur align calibrate``."""
    input: Path
    out: Path
    transfer: InputTransfer = "auto"
    workers: int | None = None
    progress: bool = True


# docs/alignment.md: the pairs of a rigid rig agree to half a pixel at the corners; beyond
# a pixel the rig moved during the capture (or the scene was not static).
SPREAD_PASS_PX, SPREAD_FAIL_PX = 0.5, 1.0
# A calibration scene is static: beyond this share of a pair's pixels that move, the
# capture is not one (the median over pairs, so one passer-by does not fail it).
MOVING_WARN = 0.02


@dataclass
class CalibrationResult:
    """The fitted rig transform, how well the pairs agreed on it, and the verdict."""
    out: str
    pairs_used: int
    homography_blur_to_sharp: list[list[float]]
    color_matrix: list[list[float]]
    corner_spread_px: float
    moving_fraction: float  # median over pairs of the share of pixels that moved
    verdict: str  # pass, warn or fail
    reasons: list[str] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)


def verdict(spread_px: float, moving_fraction: float) -> tuple[str, list[str]]:
    """``pass``/``warn``/``fail`` of a calibration, with what decided it, in words.

    >>> verdict(0.2, 0.0)
    ('pass', ['corner spread 0.20 px <= 0.5 px: the rig held still'])
    """
    if spread_px <= SPREAD_PASS_PX:
        level, reasons = "pass", [f"corner spread {spread_px:.2f} px <= {SPREAD_PASS_PX} px: the rig held still"]
    elif spread_px <= SPREAD_FAIL_PX:
        level, reasons = "warn", [f"corner spread {spread_px:.2f} px > {SPREAD_PASS_PX} px: the pairs disagree; "
                                  "check that the cameras are fixed"]
    else:
        level, reasons = "fail", [f"corner spread {spread_px:.2f} px > {SPREAD_FAIL_PX} px: the rig moved during the "
                                  "capture, or the pairs are not of one rig; do not use this calibration"]
    if moving_fraction > MOVING_WARN:
        reasons.append(f"{100 * moving_fraction:.1f} % of a typical pair moved (> {100 * MOVING_WARN:.0f} %): "
                       "capture a static scene to calibrate")
        level = "fail" if level == "fail" else "warn"
    return level, reasons


@dataclass(frozen=True)
class _CalTask:
    job: AlignJob
    transfer: InputTransfer


def _calibrate_pair(task: _CalTask
                    ) -> tuple[list[list[float]], list[list[float]], list[int], list[list[float]], float, float]:
    import cv2

    cv2.setNumThreads(1)
    job = task.job
    if job.problem:
        raise ReloblurError(job.problem)
    timer = StageTimer()  # not reported: calibration is one short batch
    blur = _load(job.blur, job.blur_format, job.black_levels[0], task.transfer, timer).linear
    sharp = _load(job.sharp, job.sharp_format, job.black_levels[1], task.transfer, timer).linear
    result = align_pair(blur, sharp, settings=AlignSettings(crop=True))
    # The pair as align writes it (cropped, 8-bit sRGB), as mask generate sees it: its
    # noise, and what moved in it. align's own motion mask is grown generously to keep the
    # fits off anything that might have moved; as a measure of motion it flagged a tenth
    # of static simulated pairs.
    rows, cols = result.crop.slices()
    blur_8, sharp_8 = encode_srgb(blur[rows, cols]), encode_srgb(np.clip(result.sharp_aligned[rows, cols], 0, 1))
    models = pair_noise_model(blur_8, sharp_8)
    moving = generate_mask(blur_8, sharp_8, clipped=result.clip_flags[rows, cols]).blur_ratio
    return (result.homography.tolist(), result.color.matrix.tolist(), [blur.shape[1], blur.shape[0]],
            [list(m.coefficients) for m in models], moving, result.radial)


def calibrate(options: CalibrateOptions) -> CalibrationResult:
    """Fit the rig calibration and write it to ``options.out`` (JSON)."""
    jobs = discover_jobs(AlignOptions(input=options.input, out=options.out.parent, transfer=options.transfer))
    batch = run_batch(_calibrate_pair, [_CalTask(j, options.transfer) for j in jobs], key=lambda t: t.job.key,
                      workers=options.workers, description="calibrating", progress=options.progress)
    if not batch.results:
        raise ReloblurError(f"{options.input}: no pair could be aligned for the calibration")
    homographies = np.array([r[0] for r in batch.results.values()])
    colors = np.array([r[1] for r in batch.results.values()])
    width, height = next(iter(batch.results.values()))[2]
    # Per channel, the median of the pairs' coefficients (a moving object in one pair of a
    # "static" capture does not carry the fit).
    noise = np.median(np.array([r[3] for r in batch.results.values()]), axis=0)
    noise_model = [NoiseLevel((float(row[0]), float(row[1]), float(row[2])), "srgb", np.zeros((0, 4)), 1e-5).to_dict()
                   for row in noise]
    rig_h = np.median(homographies, axis=0)
    rig_h /= rig_h[2, 2]
    spread = max(float(corner_error(h, rig_h, width, height).max()) for h in homographies)
    moving = float(np.median([r[4] for r in batch.results.values()]))
    radial = float(np.median([r[5] for r in batch.results.values()]))
    level, reasons = verdict(spread, moving)
    result = CalibrationResult(
        out=str(options.out),
        pairs_used=len(homographies),
        homography_blur_to_sharp=rig_h.tolist(),
        color_matrix=np.median(colors, axis=0).tolist(),
        corner_spread_px=spread,
        moving_fraction=moving,
        verdict=level,
        reasons=reasons,
        failures=list(batch.failures),
    )
    Calibration(
        homography_blur_to_sharp=result.homography_blur_to_sharp, color_matrix=result.color_matrix,
        blur_size=[width, height], pairs_used=result.pairs_used, corner_spread_px=spread,
        source=str(options.input), software=f"reloblur {__version__}", noise_model=noise_model,
        radial_distortion=radial,
    ).write(options.out)
    return result
