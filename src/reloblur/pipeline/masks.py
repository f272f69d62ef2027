"""``reloblur mask generate`` and ``reloblur mask stats``.

Masks go to ``MASKS/<relative dir>/<id>.png`` (the ReLoBlur masks tree: single channel,
0/255, the size of B) with a sidecar ``<id>.json``: blur ratio, components, parameters,
``source`` (``auto`` or ``edited``), ``review`` (``auto``, ``reviewed``, ``rejected``), a
``version`` that every save increments, and the edit history. Generation resumes like
every batch command, and never overwrites a mask a curator has edited or reviewed unless
``force`` is given.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from reloblur import __version__, resume
from reloblur.atomic import remove_own_temporaries, remove_stale_temporaries
from reloblur.batch import ItemFailure, Shard, make_progress, run_batch
from reloblur.dataset.stats import RatioSummary
from reloblur.errors import ReloblurError
from reloblur.formats.align_record import UNMIXED_AFTER_CLIP, AlignRecord, CameraColour
from reloblur.formats.burst_folder import BurstManifest
from reloblur.formats.calibration import Calibration
from reloblur.formats.dataset import Pair, align_map_files, find_pairs, mask_path_for, read_align_maps
from reloblur.formats.masks import (
    CONFIDENCE_SUFFIX,
    MaskRecord,
    blur_ratio,
    confidence_path,
    now,
    sidecar_path,
    write_mask,
)
from reloblur.formats.timing import S_PHASES, SPhase, check_s_phase, recorded_s_phase
from reloblur.imaging.imageio import encode_srgb, read_image, write_image
from reloblur.lbfmg.clipping import clipped_output_mixing
from reloblur.lbfmg.flow import FlowMaskResult, flow_mask, with_motion
from reloblur.lbfmg.generate import MaskParams, generate_mask
from reloblur.lbfmg.noise import NoiseLevel
from reloblur.lbfmg.params import Crosstalk
from reloblur.paths import output_folder, outside
from reloblur.pipeline.burst import SIDECAR_SUFFIX as BURST_SIDECAR
from reloblur.pipeline.burst import decode_frame


@dataclass(frozen=True)
class GenerateOptions:
    """Options of ``reloblur mask generate``."""
    data: Path
    masks: Path
    params: MaskParams = field(default_factory=MaskParams)
    force: bool = False
    workers: int | None = None
    progress: bool = True
    calibration: Path | None = None  # noise model of a static capture (align calibrate)
    shard: Shard = field(default_factory=Shard)  # this machine's part of the campaign
    method: MaskMethod = "difference"  # difference (B vs S), flow (a burst's frames), both
    overwrite: bool = False  # replace masks another dataset's pairs of the same names made
    # prior: a clipped channel may have moved the others by 5 % of the level; measured: by
    # what align's colour correction mixed in (cameras with no colour transformation after
    # their sensor clips: raw or linear output); auto: measured where align's record says
    # the session's cameras were such, the prior elsewhere
    crosstalk: CrosstalkChoice = "auto"
    # the instant of B's exposure S was exposed at; auto: as align's record says the
    # session's rig had it, or burst build's sidecar the frame it took; read from the pair
    # (lbfmg.phase) for pairs with neither
    s_phase: PhaseChoice = "auto"


@dataclass
class GenerateReport:
    """What ``mask generate`` did: generated, resumed, kept, flagged, withheld and failed pairs."""
    masks: str
    pairs: int
    generated: int
    resumed: int
    kept_edited: int
    mean_blur_ratio: float | None
    failures: list[ItemFailure] = field(default_factory=list)
    flagged: list[ItemFailure] = field(default_factory=list)  # generated, with a warning to check
    # generated empty because the generator withheld the mask (flagged too): mask them by hand
    withheld: list[str] = field(default_factory=list)
    shard: str = "1/1"  # the part of the campaign these figures are of
    # pairs of this run's masks whose S instant nothing recorded or told, so the mask step
    # read it from the pair; and of those, the pairs it read at an end of B's exposure
    phase_read: int = 0
    phase_read_at_an_end: int = 0


@dataclass(frozen=True)
class _Job:
    pair: Pair
    mask: Path
    params: MaskParams
    force: bool
    calibration: Path | None = None  # fingerprinted as an input: a new calibration redoes the masks
    noise: list[NoiseLevel] | None = None  # its noise model, read once by the command
    method: MaskMethod = "difference"
    overwrite: bool = False
    crosstalk: CrosstalkChoice = "auto"
    s_phase: PhaseChoice = "auto"


def calibrated_noise(path: Path) -> list[NoiseLevel]:
    """The noise-level functions stored by ``align calibrate`` in ``path``."""
    calibration = Calibration.read(path)
    if len(calibration.noise_model) != 3:
        raise ReloblurError(f"{path}: no noise model in this calibration (re-run 'reloblur align calibrate')")
    try:
        return [NoiseLevel.from_dict(entry) for entry in calibration.noise_model]
    except (KeyError, ValueError, TypeError) as exc:
        raise ReloblurError(f"{path}: unreadable noise model ({exc})") from None


MaskMethod = Literal["difference", "flow", "both"]
MASK_METHODS: tuple[str, ...] = ("difference", "flow", "both")
CrosstalkChoice = Literal["auto", "prior", "measured"]
CROSSTALK_CHOICES: tuple[str, ...] = ("auto", "prior", "measured")
PhaseChoice = Literal["auto", "start", "middle", "end"]
PHASE_CHOICES: tuple[str, ...] = ("auto", *S_PHASES)


def align_record(pair: Pair) -> AlignRecord | None:
    """``align``'s record of ``pair``, None where there is none; an unreadable record raises
    an error naming it."""
    return AlignRecord.read(pair.align_record) if pair.align_record.exists() else None


def pair_phase(pair: Pair, record: AlignRecord | None, choice: PhaseChoice) -> SPhase | None:
    """S's instant within B's exposure: ``choice``, or with ``auto`` what the pair's records
    say: ``align``'s ``record`` (the session's rig), else ``burst build``'s sidecar (the
    frame it took for S). None where neither says: pairs from elsewhere, or aligned before
    the record carried it."""
    if choice != "auto":
        return check_s_phase(choice)
    if record is not None and record.s_phase is not None:
        return record.s_phase
    sidecar = pair.blur.with_name(f"{pair.index}{BURST_SIDECAR}")
    return recorded_s_phase((resume.read_sidecar(sidecar) or {}).get("phase"), str(sidecar))


def pair_crosstalk(states: dict[str, CameraColour], choice: CrosstalkChoice) -> Crosstalk:
    """The crosstalk model ``choice`` means for a pair whose ``align`` record says ``states``
    (its ``camera_colour``; ``{}`` where it does not say): ``auto`` is ``measured`` where
    both cameras left a clipped channel's excess unmixed (raw frames, or RGB with the
    colour transformation recorded off), else ``prior``."""
    if choice != "auto":
        return choice
    unmixed = all(states.get(role) in UNMIXED_AFTER_CLIP for role in ("B", "S"))
    return "measured" if unmixed else "prior"


def _burst_frames(pair: Pair) -> tuple[BurstManifest, Path, dict[str, Path]]:
    """The kept raw frames of the burst a pair was built from (``burst build``'s sidecar)."""
    sidecar = pair.blur.with_name(f"{pair.index}{BURST_SIDECAR}")
    source = (resume.read_sidecar(sidecar) or {}).get("source")
    folder = source.get("burst") if isinstance(source, dict) else None
    if not folder:
        raise ReloblurError(f"{pair.id}: --method flow needs a burst pair ('reloblur burst build' writes "
                            f"{sidecar.name}); use --method difference for rig pairs")
    manifest = BurstManifest.read(Path(folder))
    if not manifest.frames_kept:
        raise ReloblurError(f"{pair.id}: its burst ({folder}) kept only the frame sum: --method flow needs every "
                            "frame (capture --mode burst --keep-frames)")
    frames = {f"frame {k}": manifest.frame_path(Path(folder), k) for k in range(len(manifest.frames))}
    return manifest, Path(folder), frames


def _flow(manifest: BurstManifest, frames: dict[str, Path]) -> FlowMaskResult:
    """The burst's frames through the pipeline B and S went through, display-encoded, to flow."""
    decoded = [encode_srgb(decode_frame(path, read_image(path), manifest)) for path in frames.values()]
    return flow_mask(np.stack(decoded))


def _made_from(blur: Path, mask: Path) -> str:
    """B's file as the mask's sidecar records it: relative to the mask's folder, so that a
    dataset copied or moved together with its masks tree still owns its masks."""
    try:
        return Path(os.path.relpath(blur.resolve(), mask.parent.resolve())).as_posix()
    except ValueError:  # another drive (Windows): no relative path
        return blur.resolve().as_posix()


def _generate_one(job: _Job) -> str:
    inputs = {"blur": job.pair.blur, "sharp": job.pair.sharp}
    burst: tuple[BurstManifest, Path, dict[str, Path]] | None = None
    if job.method != "difference":
        burst = _burst_frames(job.pair)
        inputs.update(burst[2])
    aligned = align_record(job.pair)
    crosstalk = pair_crosstalk((aligned.camera_colour if aligned else None) or {}, job.crosstalk)
    # align's record holds the matrix it corrected S with, whose signs say which way an
    # excess both cameras clipped moved S's other channels, and the camera matrices it
    # undid, whose clipped outputs the mask step follows
    inputs.update(align_map_files(job.pair, record=True))
    params = {**job.params.to_dict(), "method": job.method}
    if crosstalk == "measured":  # absent under the prior, as before the choice existed
        params["crosstalk"] = "measured"
    phase = pair_phase(job.pair, aligned, job.s_phase)
    if phase in ("start", "end"):  # the only instants the masks depend on
        params["s_phase"] = phase
    if job.calibration is not None:
        inputs["calibration"] = job.calibration
    existing = MaskRecord.read(job.mask) if job.mask.exists() else None
    if existing is not None and existing.curated and not job.force:
        return "kept"
    if crosstalk == "measured" and "align" not in inputs:
        raise ReloblurError(f"{job.pair.id}: --crosstalk measured reads the colour matrix from align's record "
                            f"{job.pair.align_record}, which is missing: run 'reloblur align' on the pair, "
                            "or use --crosstalk prior")
    if resume.is_done(sidecar_path(job.mask), inputs, params, outputs=(job.mask,)):
        return "resumed"
    made_from = _made_from(job.pair.blur, job.mask)
    if existing is not None and existing.made_from not in (None, made_from) and not job.overwrite:
        # Same name, other inputs, another B file: another dataset's mask in a shared masks
        # tree. (A dataset moved with its masks keeps the relative path; one moved alone
        # with its pairs unchanged resumed above.)
        theirs = os.path.normpath(job.mask.parent / existing.made_from)
        raise ReloblurError(f"{job.mask} holds the mask of {theirs}, not of {job.pair.blur}: nothing was written. "
                            "Give this dataset its own masks tree (--out), or pass --overwrite to replace it")
    maps = read_align_maps(job.pair, record=True)
    result = generate_mask(read_image(job.pair.blur), read_image(job.pair.sharp), params=job.params,
                           valid=maps.valid, noise=job.noise, clipped=maps.clipped,
                           colour_matrix=maps.colour_matrix, crosstalk=crosstalk,
                           output_mixing=clipped_output_mixing(maps.camera_matrices, maps.colour_matrix),
                           s_phase=phase)
    if burst is not None:
        result = with_motion(result, _flow(burst[0], burst[2]), method=job.method)
    if maps.align_flags:  # a pair align could not make agree: its mask is as doubtful
        result = dataclasses.replace(result, flags=[*result.flags, *(f"align flagged the pair: {flag}"
                                                                     for flag in maps.align_flags)])
    history = list(existing.history) if existing else []
    history.append({"time": now(), "action": "generated", "blur_ratio": result.blur_ratio})
    done = resume.done_record(inputs, params)
    record = MaskRecord(
        pair=job.pair.id, source="auto", review="auto",
        version=existing.version + 1 if existing else 1,
        params=params, diagnostics=result.diagnostics(), history=history,
        software=f"reloblur {__version__}",
        status=done["status"], inputs=done["inputs"], params_digest=done["params_digest"], made_from=made_from,
    )
    write_mask(job.mask, result.mask, record, confidence=result.confidence_u8())
    return "flagged" if result.flags else "generated"


def generate_masks(options: GenerateOptions) -> GenerateReport:
    """Generate (or resume) the masks of every pair under ``options.data``."""
    pairs, problems = find_pairs(options.data)
    if not pairs:
        raise ReloblurError(f"{options.data}: no <id>_blur / <id>_sharp pairs found")
    pairs = options.shard.select(pairs)
    problems = options.shard.select(problems)
    masks = [mask_path_for(p.rel_dir, p.index, options.masks) for p in pairs]
    # What a killed run left half-written: all of it, or only this shard's own files
    # (another machine may be writing the rest now).
    if output_folder(options.masks, what="masks tree").is_dir():
        if options.shard.whole:
            remove_stale_temporaries(options.masks)
        else:
            remove_own_temporaries(t for m in masks for t in (m, sidecar_path(m), confidence_path(m)))
    # Read once: a bad file fails the command, not every pair.
    noise = calibrated_noise(options.calibration) if options.calibration is not None else None
    if options.method not in MASK_METHODS:
        raise ReloblurError(f"--method {options.method!r}: choose {', '.join(MASK_METHODS)}")
    if options.crosstalk not in CROSSTALK_CHOICES:
        raise ReloblurError(f"--crosstalk {options.crosstalk!r}: choose {', '.join(CROSSTALK_CHOICES)}")
    if options.s_phase not in PHASE_CHOICES:
        raise ReloblurError(f"--s-phase {options.s_phase!r}: choose {', '.join(PHASE_CHOICES)}")
    jobs = [_Job(p, mask, options.params, options.force, options.calibration, noise, options.method, options.overwrite,
                 options.crosstalk, options.s_phase)
            for p, mask in zip(pairs, masks)]
    result = run_batch(_generate_one, jobs, key=lambda j: j.pair.id, workers=options.workers,
                       description="generating masks", progress=options.progress)
    outcomes = Counter(result.results.values())
    ratios, flagged, withheld = [], [], []
    phase_read = phase_at_an_end = 0
    for job in jobs:
        record = resume.read_sidecar(sidecar_path(job.mask))
        if record and isinstance(record.get("blur_ratio"), (int, float)):
            ratios.append(record["blur_ratio"])
        evidence = (record or {}).get("diagnostics", {}).get("s_phase_evidence")
        if isinstance(evidence, dict):
            phase_read += 1
            phase_at_an_end += bool(evidence.get("at_an_end"))
        if record and result.results.get(job.pair.id) == "flagged":
            diagnostics = record.get("diagnostics", {})
            flagged += [ItemFailure(job.pair.id, flag) for flag in diagnostics.get("flags", [])]
            if diagnostics.get("withheld_fraction") is not None:
                withheld.append(job.pair.id)
    return GenerateReport(
        masks=str(options.masks),
        pairs=len(pairs) + len(problems),  # every pair the command was asked about, failed ones too
        generated=outcomes["generated"] + outcomes["flagged"],
        resumed=outcomes["resumed"],
        kept_edited=outcomes["kept"],
        mean_blur_ratio=float(np.mean(ratios)) if ratios else None,
        failures=problems + list(result.failures),
        flagged=flagged,
        withheld=withheld,
        shard=str(options.shard),
        phase_read=phase_read,
        phase_read_at_an_end=phase_at_an_end,
    )


@dataclass(frozen=True)
class MaskStatsOptions:
    """Options of ``reloblur mask stats``."""
    masks: Path
    plot: Path | None = None


@dataclass
class MaskStats:
    """Blur-ratio statistics of a masks tree and its review progress."""
    masks: str
    count: int
    blur_ratio: RatioSummary
    per_group: dict[str, RatioSummary]
    review: dict[str, int]
    plot: str | None = None


def mask_stats(options: MaskStatsOptions) -> MaskStats:
    """Blur-ratio statistics of a masks tree, grouped by its top-level directory (split)."""
    from reloblur.plotting import blur_ratio_histogram

    root = options.masks
    if not root.is_dir():
        raise ReloblurError(f"{root}: masks directory does not exist")
    if options.plot is not None:
        outside(options.plot, root, what="masks tree")  # the histogram would replace a mask, or be read as one
    groups: dict[str, list[float]] = {}
    review: Counter[str] = Counter()
    paths = sorted(p for p in root.rglob("*.png")
                   if not p.name.startswith(".") and not p.name.endswith(CONFIDENCE_SUFFIX))
    for path in paths:
        mask = read_image(path)
        mask = mask if mask.ndim == 2 else mask[:, :, 0]
        rel = PurePosixPath(path.relative_to(root).as_posix())
        group = rel.parts[0] if len(rel.parts) > 1 else "."
        groups.setdefault(group, []).append(blur_ratio(mask))
        review[MaskRecord.read_or_default(path).review] += 1
    if not paths:
        raise ReloblurError(f"{root}: no mask PNGs found")
    every = [r for values in groups.values() for r in values]
    stats = MaskStats(str(root), len(paths), RatioSummary.of(every),
                      {g: RatioSummary.of(v) for g, v in sorted(groups.items())}, dict(review))
    if options.plot is not None:
        blur_ratio_histogram(groups, options.plot, title=f"Blur ratio per mask: {root}")
        stats.plot = str(options.plot)
    return stats


Convention = Literal["binary", "soft"]


@dataclass(frozen=True)
class MaskExportOptions:
    """Options of ``reloblur mask export``."""

    masks: Path
    out: Path
    convention: Convention = "soft"
    progress: bool = True


@dataclass
class MaskExport:
    """What ``mask export`` wrote."""

    out: str
    convention: str
    written: int
    without_confidence: list[str] = field(default_factory=list)  # masks exported as binary
    failures: list[ItemFailure] = field(default_factory=list)


def export_masks(options: MaskExportOptions) -> MaskExport:
    """Copy a masks tree to ``options.out`` in a mask convention.

    ``soft`` is the original ReLoBlur convention: non-binary masks that its trainer
    binarises with ``> 0``. Each exported mask is the generator's confidence (1..255)
    where the mask is set and 0 elsewhere, so binarising it gives back exactly the mask
    (a curator's edits included); a mask without a confidence map (drawn by hand, or from
    an older version) is exported as it is. ``binary`` copies the 0/255 masks.
    """
    root = options.masks
    if not root.is_dir():
        raise ReloblurError(f"{root}: masks directory does not exist")
    if options.convention not in ("binary", "soft"):
        raise ReloblurError(f"--convention {options.convention!r}: choose binary or soft")
    outside(options.out, root, what="masks tree")
    paths = sorted(p for p in root.rglob("*.png")
                   if not p.name.startswith(".") and not p.name.endswith(CONFIDENCE_SUFFIX)
                   and not p.name.endswith((".valid.png", ".clip.png")))
    if not paths:
        raise ReloblurError(f"{root}: no mask PNGs found")
    if output_folder(options.out, what="export folder").is_dir():
        remove_stale_temporaries(options.out)  # masks a killed run left half-written
    report = MaskExport(str(options.out), options.convention, 0)
    with make_progress(enabled=options.progress) as bar:
        task = bar.add_task("exporting masks", total=len(paths))
        for path in paths:
            try:
                exported = _exported_mask(path, options.convention, report)
                write_image(options.out / path.relative_to(root), exported)
                report.written += 1
            except ReloblurError as exc:  # a damaged mask is this item's failure, not the batch's
                report.failures.append(ItemFailure(str(path), str(exc)))
            bar.advance(task)
    return report


def _exported_mask(path: Path, convention: Convention, report: MaskExport) -> np.ndarray:
    """A mask in ``convention``: 0/255, or its confidence where set (``soft``)."""
    mask = read_image(path)
    mask = mask if mask.ndim == 2 else mask[:, :, 0]
    exported = np.where(mask > 0, 255, 0).astype(np.uint8)
    if convention != "soft":
        return exported
    confidence_file = confidence_path(path)
    if not confidence_file.exists():
        report.without_confidence.append(str(path))
        return exported
    confidence = read_image(confidence_file)
    if confidence.shape != mask.shape:
        raise ReloblurError(f"{confidence_file}: confidence map of shape {confidence.shape}, its mask {mask.shape}")
    return np.where(mask > 0, np.maximum(confidence, 1), 0).astype(np.uint8)
