"""``reloblur burst build``: burst folders to B/S pairs in the ReLoBlur layout.

Every burst folder under ``BURSTS`` (:mod:`reloblur.formats.burst_folder`) becomes one
pair: its raw frames decoded to linear light by the one pipeline both B and S share
(black level, demosaic), B their mean, S the frame at the chosen phase, both written as
sRGB PNG in ReLoBlur's layout as ``align`` writes it (``OUT/train/<scene>/00/<NN>_blur.png``,
``_sharp.png``; ``reloblur dataset split`` moves whole scenes to ``test/``) with a sidecar
(``<NN>.burst.json``) saying which frame S is, the exposed fraction and the shake measured.
No registration and no colour matching: one sensor took both. A burst whose frames are not
consecutive, or that the camera shook, is reported and not built (exit 2); every pair
already built from the same frames with the same settings is skipped on a rerun.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reloblur import resume
from reloblur.atomic import atomic_write_bytes, atomic_write_json
from reloblur.batch import ItemFailure, Shard, run_batch
from reloblur.burst.build import (
    DASHED_BELOW,
    SHAKE_LIMIT_PX,
    BurstError,
    build_burst_pair,
    build_from_sum,
    check_contiguous,
    sharp_index,
)
from reloblur.errors import ReloblurError
from reloblur.formats.burst_folder import MANIFEST, BurstManifest, find_bursts
from reloblur.formats.timing import SPhase, check_s_phase
from reloblur.imaging.imageio import PngCompression, encode_image, encode_srgb, read_image
from reloblur.imaging.raw import frame_to_linear

SIDECAR_SUFFIX = ".burst.json"


@dataclass(frozen=True)
class BurstBuildOptions:
    """Options of ``reloblur burst build``."""

    bursts: Path
    out: Path
    phase: SPhase = "middle"
    bit_depth: int = 8
    png_compression: PngCompression = "fast"
    shake_limit_px: float = SHAKE_LIMIT_PX
    keep_shaken: bool = False
    workers: int | None = None
    progress: bool = True
    shard: Shard | None = None


@dataclass
class BurstReport:
    """What ``reloblur burst build`` did (``--json`` prints it)."""

    bursts: str
    out: str
    pairs: int
    built: int
    resumed: int
    phase: str
    failures: list[ItemFailure] = field(default_factory=list)
    dashed: list[str] = field(default_factory=list)  # bursts whose exposed fraction is below DASHED_BELOW
    shaken_kept: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Job:
    folder: Path
    blur: Path
    sharp: Path
    sidecar: Path
    options: BurstBuildOptions


def _jobs(options: BurstBuildOptions) -> list[_Job]:
    root = options.bursts
    if not root.is_dir():
        raise ReloblurError(f"{root}: no such folder of bursts")
    folders = find_bursts(root)
    if not folders:
        raise ReloblurError(f"{root}: no burst folders (a folder holding {MANIFEST}) found")
    # ReLoBlur's layout, as align writes it: train/<scene>/00/<NN>_blur.png ('dataset split'
    # then moves whole scenes to test/). The scene is the path of folders above the burst.
    by_scene: dict[str, list[Path]] = {}
    for folder in folders:
        rel = Path(folder.name) if folder == root else folder.relative_to(root)
        by_scene.setdefault("_".join(rel.parent.parts) or "s01", []).append(folder)
    jobs = []
    for scene, members in by_scene.items():
        target = options.out / "train" / scene / "00"
        numbered = all(m.name.isdigit() for m in members)
        for position, folder in enumerate(members):
            index = folder.name if numbered else f"{position:02d}"
            jobs.append(_Job(folder, target / f"{index}_blur.png", target / f"{index}_sharp.png",
                             target / f"{index}{SIDECAR_SUFFIX}", options))
    return options.shard.select(jobs) if options.shard is not None else jobs


def _params(options: BurstBuildOptions) -> dict[str, Any]:
    return {"phase": options.phase, "bit_depth": options.bit_depth, "shake_limit_px": options.shake_limit_px,
            "keep_shaken": options.keep_shaken}


def build_job(job: _Job) -> dict[str, Any]:
    """Build one burst's pair; returns its sidecar record (``resumed`` when already done)."""
    options = job.options
    manifest = BurstManifest.read(job.folder)
    count = len(manifest.frames)
    if manifest.frames_kept:
        inputs = {f"frame {k}": manifest.frame_path(job.folder, k) for k in range(count)}
    else:
        wanted = sharp_index(count, options.phase)
        if wanted != manifest.sharp_index:
            raise BurstError(f"{job.folder / MANIFEST}: only frame {manifest.sharp_index} was kept beside the sum, "
                             f"--phase {options.phase} asks for frame {wanted} (capture with --keep-frames to "
                             "choose the phase afterwards)")
        inputs = {"sum": manifest.sum_path(job.folder), f"frame {wanted}": manifest.frame_path(job.folder, wanted)}
    inputs["manifest"] = job.folder / MANIFEST
    params = _params(options)
    if resume.is_done(job.sidecar, inputs, params, outputs=(job.blur, job.sharp)):
        return {"status": "resumed"}
    period_ns = manifest.frame_period_us * 1000 if manifest.frame_period_us else None
    check_contiguous([f.frame_id for f in manifest.frames], timestamps_ns=[f.timestamp_ns for f in manifest.frames],
                     period_ns=period_ns)
    if manifest.frames_kept:
        frames = [decode_frame(inputs[f"frame {k}"], read_image(inputs[f"frame {k}"]), manifest) for k in range(count)]
        for k, frame in enumerate(frames):
            if frame.shape != frames[0].shape:
                raise BurstError(f"{inputs[f'frame {k}']}: {frame.shape[1]}x{frame.shape[0]} pixels, frame 0 has "
                                 f"{frames[0].shape[1]}x{frames[0].shape[0]}")
        pair = build_burst_pair(np.stack(frames), black_level=0.0, white_level=1.0, phase=options.phase,
                                shake_limit_px=options.shake_limit_px)
        if pair.flags and not options.keep_shaken:
            raise BurstError(f"{pair.flags[0]}; not built (--keep-shaken builds it anyway, flagged)")
    else:
        total = read_image(inputs["sum"]).astype(np.float64)
        sharp_raw = read_image(inputs[f"frame {wanted}"])
        if total.shape != sharp_raw.shape:
            raise BurstError(f"{inputs['sum']}: {total.shape} but S is {sharp_raw.shape}")
        # The mean goes through the same decoding as S (a mosaic's demosaic wants integers:
        # rounding the mean costs less than one code).
        mean = np.rint(total / count).astype(sharp_raw.dtype) if sharp_raw.dtype.kind == "u" else total / count
        pair = build_from_sum(decode_frame(inputs["sum"], mean, manifest) * count, decode_frame(inputs[f"frame {wanted}"],
                              sharp_raw, manifest), count=count, black_level=0.0, white_level=1.0, phase=options.phase)
    dtype = np.uint16 if options.bit_depth == 16 else np.uint8
    for path, image in ((job.blur, pair.blur), (job.sharp, pair.sharp)):
        atomic_write_bytes(path, encode_image(encode_srgb(np.clip(image, 0, 1), dtype), ".png",
                                              png=options.png_compression))
    record = resume.done_record(inputs, params)
    record.update({
        "source": {"burst": str(job.folder)},
        "frames": pair.frames, "sharp_index": pair.sharp_index, "phase": options.phase,
        "exposed_fraction": manifest.exposed_fraction, "shake_px": pair.shake_px, "flags": pair.flags,
        "frame_ids": [f.frame_id for f in manifest.frames],
    })
    if manifest.truth is not None:
        record["truth"] = manifest.truth
    atomic_write_json(job.sidecar, record)
    return record


def decode_frame(path: Path, image: np.ndarray, manifest: BurstManifest) -> np.ndarray:
    """A raw frame through the pipeline B and S share (black level, demosaic, white level);
    ``path`` names it in errors."""
    try:
        return frame_to_linear(image, manifest.pixel_format, black_level=manifest.black_level,
                               bit_depth=manifest.bit_depth)
    except ReloblurError as exc:
        raise BurstError(f"{path}: {exc}") from None


def build_bursts(options: BurstBuildOptions) -> BurstReport:
    """Build every burst under ``options.bursts`` into ``options.out``; see the module docstring.

    Raises
    ------
    ReloblurError
        No bursts, or bad options (failures of single bursts are in the report instead).
    """
    check_s_phase(options.phase)
    if options.bit_depth not in (8, 16):
        raise ReloblurError(f"--bit-depth {options.bit_depth}: choose 8 or 16")
    if options.out.exists() and not options.out.is_dir():
        raise ReloblurError(f"{options.out}: exists and is not a folder")
    jobs = _jobs(options)
    started = time.perf_counter()
    result = run_batch(build_job, jobs, key=lambda job: str(job.folder), workers=options.workers,
                       description="building burst pairs", progress=options.progress)
    records = list(result.results.values())
    report = BurstReport(bursts=str(options.bursts), out=str(options.out), pairs=len(jobs),
                         built=sum(r.get("status") == "done" for r in records),
                         resumed=sum(r.get("status") == "resumed" for r in records), phase=options.phase,
                         failures=list(result.failures), seconds=time.perf_counter() - started)
    for key, record in result.results.items():
        fraction = record.get("exposed_fraction")
        if fraction is not None and fraction < DASHED_BELOW:
            report.dashed.append(key)
        if record.get("flags") and options.keep_shaken and record.get("shake_px") is not None \
                and record["shake_px"] > options.shake_limit_px:
            report.shaken_kept.append(key)
    return report
