"""``reloblur align``: align every pair of a capture session or a folder tree, in parallel.

Inputs: a capture session (its frames are decoded by pixel format; pairs go to
``OUT/train/<scene>/00/NN_*``, a ReLoBlur layout ready for ``reloblur dataset split``), or
any tree of ``<id>_blur.<ext>`` / ``<id>_sharp.<ext>`` files (PNG, TIFF, camera raw), whose
relative paths OUT mirrors. Per pair: ``<id>_blur.png`` (B, cropped, never resampled
unless resized), ``<id>_sharp.png`` (S corrected and warped onto B), ``<id>.align.json``
(transform, colour, crop, QA), and with ``crop=False`` ``<id>.valid.png``.

Resumable: a pair whose sidecar says done, with unchanged inputs and settings, is
skipped. Outputs are written atomically, sidecar last, and the computation is
deterministic (OpenCV runs single-threaded inside each worker), so a run interrupted at
any point and restarted produces the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from reloblur import __version__, resume
from reloblur.atomic import atomic_write_bytes, remove_own_temporaries, remove_stale_temporaries
from reloblur.batch import ItemFailure, Shard, StageTimer, run_batch, total_seconds
from reloblur.errors import ImageFormatError, ReloblurError
from reloblur.formats.align_record import (
    SIDECAR_SUFFIX,
    AlignQA,
    AlignRecord,
    AlignSource,
    CameraColour,
    Registration,
)
from reloblur.formats.calibration import Calibration
from reloblur.formats.dataset import CLIP_SUFFIX, VALIDITY_SUFFIX, scan_dataset
from reloblur.formats.session import LOG, MANIFEST, CameraRecord, Session
from reloblur.formats.timing import SPhase, recorded_s_phase
from reloblur.imaging.clipping import ClippedOutput, clipped_levels
from reloblur.imaging.imageio import (
    IMAGE_SUFFIXES,
    PNG_COMPRESSION,
    PngCompression,
    decode_image,
    encode_image,
    encode_srgb,
    png_declared_transfer,
    read_bytes,
    read_image,
)
from reloblur.imaging.pixel_formats import PixelFormat
from reloblur.imaging.raw import (
    RAW_SUFFIXES,
    InputTransfer,
    checked_colour_matrix,
    frame_to_linear,
    image_to_linear,
    load_linear,
    resolved_transfer,
    undo_colour_transformation,
)
from reloblur.paths import is_folder_name, output_folder
from reloblur.postprocess.align import AlignLimits, AlignmentError, AlignResult, AlignSettings, Mirror, align_pair
from reloblur.postprocess.color import ColorMode

RESIZE_FILTERS = {"area": cv2.INTER_AREA, "bicubic": cv2.INTER_CUBIC}
Merge = Literal["refuse", "append", "overwrite"]
MERGES: tuple[str, ...] = get_args(Merge)


@dataclass(frozen=True)
class AlignOptions:
    """Options of ``reloblur align``."""

    input: Path
    out: Path
    crop: bool = True
    resize: tuple[int, int] | None = None
    resize_filter: str = "area"
    color_mode: ColorMode = "matrix"
    mirror: Mirror = "auto"  # how S's image is mirrored relative to B's (postprocess.align.MIRRORS)
    calibration: Path | None = None
    refine: bool = True  # False: the calibration's homography as given (AlignSettings.refine)
    masks: Path | None = None
    transfer: InputTransfer = "auto"
    bit_depth: int = 8
    limits: AlignLimits = field(default_factory=AlignLimits)
    workers: int | None = None
    progress: bool = True
    # What to do when OUT already holds other pairs where these would go: refuse (the
    # default), append (a session's pairs are numbered on after them), or overwrite.
    merge: Merge = "refuse"
    shard: Shard = field(default_factory=Shard)  # this machine's part of the campaign
    # Size against time of the output PNGs (imageio.PNG_COMPRESSION); not part of the
    # resume digest: the pixels are the same whichever is chosen.
    png_compression: PngCompression = "fast"


ColourMatrix = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class AlignJob:
    """One pair to align and where its outputs go."""

    key: str
    blur: Path
    sharp: Path
    out_dir: Path
    index: str
    blur_format: str | None = None  # session pixel format; None: an ordinary image file
    sharp_format: str | None = None
    black_levels: tuple[float, float] = (0.0, 0.0)
    # B's and S's own colour matrices where the session records them on (undone at decoding)
    colour_matrices: tuple[ColourMatrix | None, ColourMatrix | None] = (None, None)
    # per camera, its colour processing after the sensor clipped (AlignRecord.camera_colour)
    camera_colour: dict[str, CameraColour] | None = None
    s_phase: SPhase | None = None  # the session's rig["s_phase"] (AlignRecord.s_phase)
    mask: Path | None = None
    session_pair: int | None = None
    problem: str | None = None  # known before any work: reported as this pair's failure


@dataclass
class AlignReport:
    """What ``reloblur align`` did: pairs aligned, resumed, flagged and failed."""
    out: str
    pairs: int
    aligned: int
    resumed: int
    flagged: list[str] = field(default_factory=list)
    failures: list[ItemFailure] = field(default_factory=list)
    skipped: list[ItemFailure] = field(default_factory=list)  # rejected at capture: nothing to align
    shard: str = "1/1"  # the part of the campaign these figures are of
    # Seconds per stage summed over the pairs aligned (not resumed), in their worker
    # processes: read, decode, register, warp, encode (sRGB and PNG), write.
    stage_seconds: dict[str, float] = field(default_factory=dict)


def _session_jobs(options: AlignOptions) -> tuple[list[AlignJob], list[ItemFailure]]:
    """The usable pairs of a session as jobs (a pair whose frames are missing, truncated or
    outside the session, or whose scene label is not a folder name, as a failing job), and
    the pairs the capture itself rejected."""
    session = Session(options.input)
    cameras = session.manifest.cameras
    black = (cameras["B"].black_level or 0.0, cameras["S"].black_level or 0.0)
    colour = (_camera_colour(cameras["B"], options.input / MANIFEST), _camera_colour(cameras["S"], options.input / MANIFEST))
    s_phase = recorded_s_phase(session.manifest.rig.get("s_phase"), f"{options.input / MANIFEST}: rig s_phase")
    by_scene: dict[str, list[Any]] = {}
    jobs, rejected = [], []
    if session.truncated_log:
        rejected.append(ItemFailure(str(options.input / LOG), "its last line is cut off (the capture stopped while "
                                    "writing it): that pair is not aligned"))
    for skipped in session.skipped:
        if skipped.reason.startswith("rejected"):
            rejected.append(ItemFailure(f"pair {skipped.pair}", skipped.reason))
        else:
            jobs.append(AlignJob(key=f"pair {skipped.pair}", blur=options.input, sharp=options.input,
                                 out_dir=options.out, index="", problem=f"pair {skipped.pair}: {skipped.reason}"))
    for record in session.pairs():
        scene = record.scene or "s01"
        if not is_folder_name(scene):
            jobs.append(AlignJob(key=f"pair {record.pair}", blur=options.input, sharp=options.input,
                                 out_dir=options.out, index="",
                                 problem=f"pair {record.pair}: scene label {record.scene!r} is not a folder name"))
            continue
        by_scene.setdefault(scene, []).append(record)
    for scene, records in by_scene.items():
        rel = Path("train", scene, "00")
        blurs = [session.frame_path(record, "B") for record in records]
        indices = _session_indices(options.out / rel, blurs, append=options.merge == "append")
        for record, blur, index in zip(records, blurs, indices):
            jobs.append(AlignJob(
                key=f"{rel.as_posix()}/{index}", blur=blur, sharp=session.frame_path(record, "S"),
                out_dir=options.out / rel, index=index, blur_format=record.frames["B"].pixel_format,
                sharp_format=record.frames["S"].pixel_format, black_levels=black, session_pair=record.pair,
                colour_matrices=colour,
                camera_colour={role: _colour_processing(cameras[role], record.frames[role].pixel_format, matrix)
                               for role, matrix in zip(("B", "S"), colour)},
                s_phase=s_phase,
            ))
    return jobs, rejected


def _camera_colour(camera: CameraRecord, manifest: Path) -> ColourMatrix | None:
    """The colour matrix ``camera`` applied to its RGB output, where the capture recorded it
    on (``state.ColorTransformationMatrix``; ``capture`` switches it off where it can);
    :class:`ReloblurError` naming the manifest when it is not a finite, invertible 3x3."""
    matrix = camera.state.get("ColorTransformationMatrix")
    if matrix is None or camera.state.get("ColorTransformationEnable") is False:
        return None
    try:
        values = checked_colour_matrix(matrix)
    except ImageFormatError as exc:
        raise ReloblurError(f"{manifest}: camera {camera.role}'s ColorTransformationMatrix {matrix!r} cannot be "
                            f"undone ({exc})") from None
    rows = tuple(tuple(float(v) for v in row) for row in values)
    return rows  # type: ignore[return-value]


def _colour_processing(camera: CameraRecord, pixel_format: str, undone: ColourMatrix | None) -> CameraColour:
    """What ``camera`` did to the colours of frames in ``pixel_format`` after its sensor
    clipped (:data:`reloblur.formats.align_record.CameraColour`), given the matrix
    :func:`_camera_colour` found on (``undone``): the mask step may measure the crosstalk
    of S's colour correction only where nothing else mixed a clipped channel's lost excess
    into the others."""
    try:
        raw = PixelFormat.parse(pixel_format).raw
    except ImageFormatError:
        return "unknown"  # the pair fails when its frames are decoded, naming the format
    if raw:
        return "raw"
    if undone is not None:
        return "undone"
    return "off" if camera.state.get("ColorTransformationEnable") is False else "unknown"


@dataclass(frozen=True)
class _Occupant:
    """A pair already in an output folder: the fingerprint of the B it was made from, and
    where that was (``None`` for both when its files have no readable sidecar)."""

    blur: dict[str, Any] | None
    source: str | None


def _occupants(folder: Path) -> dict[str, _Occupant]:
    """The pairs an output folder already holds, by index: every ``NN.align.json`` and
    every ``NN_blur.png`` / ``NN_sharp.png``, whether or not it has a sidecar."""
    if not folder.is_dir():
        return {}
    indices = set()
    for path in folder.iterdir():
        for ending in (SIDECAR_SUFFIX, "_blur.png", "_sharp.png"):
            if path.name.endswith(ending) and len(path.name) > len(ending):
                indices.add(path.name[: -len(ending)])
    found = {}
    for index in indices:
        data = resume.read_sidecar(folder / f"{index}{SIDECAR_SUFFIX}") or {}
        blur = (data.get("inputs") or {}).get("blur") if isinstance(data.get("inputs"), dict) else None
        source = (data.get("source") or {}).get("blur") if isinstance(data.get("source"), dict) else None
        found[index] = _Occupant(blur if isinstance(blur, dict) else None, str(source) if source else None)
    return found


def _session_indices(folder: Path, blurs: list[Path], *, append: bool) -> list[str]:
    """The pair indices of one scene's pairs: ``00``, ``01``, ... or, appending, after the
    highest index the folder already holds (a pair of this session already there, from an
    interrupted or earlier ``--append`` run, keeps its index, so appending resumes)."""
    if not append:
        return [f"{number:02d}" for number in range(len(blurs))]
    occupants = _occupants(folder)
    held = {o.blur["blake2b"]: index for index, o in occupants.items() if o.blur and "blake2b" in o.blur}
    numbers = [int(index) for index in occupants if index.isdigit()]
    following = max(numbers, default=-1) + 1
    indices = []
    for blur in blurs:
        index = held.get(resume.file_fingerprint(blur)["blake2b"]) if held and blur.is_file() else None
        if index is None:
            index, following = f"{following:02d}", following + 1
        indices.append(index)
    return indices


def check_collisions(jobs: list[AlignJob]) -> list[str]:
    """The output slots that already hold a different pair, in words (empty when none).

    A slot is this job's when its sidecar records a B of the same content (the same pair,
    perhaps aligned with other settings or from a moved session): resuming or redoing it
    is safe. Anything else (another session's pair, or pair files whose sidecar is
    missing or unreadable) would be replaced."""
    problems = []
    by_folder: dict[Path, dict[str, _Occupant]] = {}
    for job in jobs:
        if job.problem:
            continue
        occupants = by_folder.setdefault(job.out_dir, _occupants(job.out_dir))
        occupant = occupants.get(job.index)
        if occupant is None:
            continue
        if occupant.blur is not None and job.blur.is_file() and resume.file_fingerprint(job.blur) == occupant.blur:
            continue
        held = f"a pair made from {occupant.source}" if occupant.source else "pair files without a readable sidecar"
        problems.append(f"{job.out_dir / job.index}_*: already holds {held}, not {job.blur}")
    return problems


def _tree_jobs(options: AlignOptions) -> list[AlignJob]:
    """The pairs of a folder tree, found by the dataset scanner (camera raw allowed)."""
    scan = scan_dataset(options.input, masks_root=options.masks, depth=None, suffixes=frozenset(IMAGE_SUFFIXES) | frozenset(RAW_SUFFIXES),
                        exclude=options.out)
    jobs = []
    for orphan in scan.orphans:
        rel = Path(orphan.rel_dir)
        jobs.append(AlignJob(key=(rel / orphan.index).as_posix(), blur=orphan.path, sharp=orphan.path,
                             out_dir=options.out / rel, index=orphan.index,
                             problem=f"{orphan.path}: its {orphan.missing_role} partner is missing"))
    for pair in scan.pairs:
        rel = Path(pair.rel_dir)
        jobs.append(AlignJob(key=(rel / pair.index).as_posix(), blur=pair.blur, sharp=pair.sharp,
                             out_dir=options.out / rel, index=pair.index,
                             mask=pair.mask if options.masks is not None else None))
    return sorted(jobs, key=lambda j: (str(Path(j.key).parent), Path(j.key).name))


def discover_jobs(options: AlignOptions) -> list[AlignJob]:
    """The pairs under ``options.input`` (a session or a folder tree)."""
    return _discover(options)[0]


def _discover(options: AlignOptions) -> tuple[list[AlignJob], list[ItemFailure]]:
    if not options.input.is_dir():
        raise ReloblurError(f"{options.input}: input is not a directory")
    if options.out.resolve() == options.input.resolve():
        raise ReloblurError(f"OUT {options.out} is IN: the aligned pairs would be written over the pairs they are "
                            "made from. Choose another OUT (a folder inside IN is fine).")
    if (options.input / MANIFEST).exists():
        jobs, rejected = _session_jobs(options)
    else:
        jobs, rejected = _tree_jobs(options), []
    if not jobs:
        raise ReloblurError(f"{options.input}: no <id>_blur / <id>_sharp pairs found")
    return jobs, rejected


@dataclass(frozen=True)
class _Input:
    """One input in linear light, and its file's bytes and codes when they are already what
    align would write for it unchanged (an 8-bit sRGB RGB PNG): then they are passed
    through, or cropped as codes (the sRGB round trip of 8-bit codes is exact)."""

    linear: np.ndarray
    png: bytes | None = None
    codes: np.ndarray | None = None
    # where the camera's own output clipped, when its colour matrix was undone
    output_clipped: ClippedOutput | None = None


def _load(path: Path, pixel_format: str | None, black: float, transfer: InputTransfer,
          timer: StageTimer, colour_matrix: ColourMatrix | None = None) -> _Input:
    """One input; time split into reading the file and decoding it. ``colour_matrix``: the
    camera's own, undone on a session's RGB frames."""
    if path.suffix.lower() in RAW_SUFFIXES:
        with timer.stage("decode"):  # the raw decoder reads the file itself
            return _Input(load_linear(path, transfer=transfer))
    with timer.stage("read"):
        data = read_bytes(path)
    with timer.stage("decode"):
        image = decode_image(data, path)
        if pixel_format is None:
            declared = png_declared_transfer(data)
            same = (path.suffix.lower() == ".png" and image.dtype == np.uint8 and image.ndim == 3
                    and image.shape[2] == 3 and resolved_transfer(transfer, image.dtype, declared) == "srgb")
            return _Input(image_to_linear(image, path, transfer=transfer, declared=declared), data if same else None,
                          image if same else None)
        try:
            output = frame_to_linear(image, pixel_format, black_level=black)
            if colour_matrix is None or PixelFormat.parse(pixel_format).raw:
                return _Input(output)
            # Found on the camera's output: once its matrix is undone, a clipped channel's
            # loss is spread over all three and piles up nowhere.
            code = 1 / 255 if image.dtype == np.uint8 else 1 / 65535
            return _Input(undo_colour_transformation(output, np.array(colour_matrix)),
                          output_clipped=clipped_levels(output, code=code))
        except ImageFormatError as exc:
            raise ImageFormatError(f"{path}: {exc}") from None


def _params(options: AlignOptions, calibration: dict[str, Any] | None) -> dict[str, Any]:
    params = {
        "crop": options.crop, "resize": options.resize, "resize_filter": options.resize_filter,
        "color_mode": options.color_mode, "calibration": calibration, "transfer": options.transfer,
        "bit_depth": options.bit_depth, "limits": dataclasses.asdict(options.limits), "version": __version__,
    }
    if options.mirror != "auto":  # only then, so that pairs aligned before the option still resume
        params["mirror"] = options.mirror
    if not options.refine:  # as mirror
        params["refine"] = False
    return params


@dataclass(frozen=True)
class _Task:
    job: AlignJob
    options: AlignOptions
    rig: Calibration | None  # --calibration, read once by the command


def _outputs(job: AlignJob) -> tuple[Path, ...]:
    """Every file :func:`align_job` may write for ``job``."""
    return tuple(job.out_dir / f"{job.index}{ending}" for ending in
                 ("_blur.png", "_sharp.png", SIDECAR_SUFFIX, CLIP_SUFFIX, VALIDITY_SUFFIX))


@dataclass(frozen=True)
class PairOutcome:
    """What :func:`align_job` did to one pair (``aligned``, ``flagged`` or ``resumed``) and
    the seconds each stage took (read, decode, register, warp, encode, write)."""

    status: str
    seconds: dict[str, float] = field(default_factory=dict)


def align_job(task: _Task) -> PairOutcome:
    """Align one pair and write its outputs."""
    job, options = task.job, task.options
    if job.problem:
        raise AlignmentError(job.problem)
    cv2.setNumThreads(1)  # determinism (and no oversubscription in the process pool)
    sidecar = job.out_dir / f"{job.index}{SIDECAR_SUFFIX}"
    blur_out = job.out_dir / f"{job.index}_blur.png"
    sharp_out = job.out_dir / f"{job.index}_sharp.png"
    inputs = {"blur": job.blur, "sharp": job.sharp}
    if job.mask is not None:
        inputs["mask"] = job.mask
    priors = None if task.rig is None else task.rig.priors()
    params = _params(options, priors)
    if job.colour_matrices != (None, None):  # only then, so that every other pair still resumes
        params["camera_colour_undone"] = dict(zip(("B", "S"), job.colour_matrices))
        params["output_clip_flags"] = True  # pairs aligned before the clip map held them are aligned again
    if resume.is_done(sidecar, inputs, params, outputs=(blur_out, sharp_out)):
        return PairOutcome("resumed")
    timer = StageTimer()
    blur_input, sharp_input, known = _read_pair(job, options, timer)
    blur, sharp = blur_input.linear, sharp_input.linear
    calibration = priors or {}
    made_on = None if task.rig is None else task.rig.made_on
    if made_on is not None and made_on != (blur.shape[1], blur.shape[0]):
        # Its homography is in pixels of those images: another size (binning, a region of
        # interest) is another geometry, which no rescaling can tell apart.
        raise ReloblurError(f"{job.blur} is {blur.shape[1]}x{blur.shape[0]}, but the calibration {options.calibration} "
                            f"was made on {made_on[0]}x{made_on[1]} images: calibrate the rig at this size")
    with timer.stage("register"):
        result = align_pair(
            blur, sharp, settings=AlignSettings(color_mode=options.color_mode, crop=options.crop,
                                                limits=options.limits, mirror=options.mirror, refine=options.refine),
            blur_mask=known, prior_homography=calibration.get("homography_blur_to_sharp"),
            prior_color=calibration.get("color_matrix"), prior_radial=calibration.get("radial_distortion"),
            output_clipped=(blur_input.output_clipped, sharp_input.output_clipped),
        )
    timer.add("register", -result.warp_seconds)
    timer.add("warp", result.warp_seconds)
    _write_outputs(job, options, blur_input, result, blur_out, sharp_out, timer)
    with timer.stage("write"):
        _record(job, options, blur, result, resume.done_record(inputs, params)).write(sidecar)
    return PairOutcome("flagged" if result.flags else "aligned", {k: round(v, 4) for k, v in timer.seconds.items()})


def _read_pair(job: AlignJob, options: AlignOptions, timer: StageTimer
               ) -> tuple[_Input, _Input, np.ndarray | None]:
    """B (with its bytes, when they can pass through) and S, and the known-static mask if
    the pair has one."""
    blur_input = _load(job.blur, job.blur_format, job.black_levels[0], options.transfer, timer, job.colour_matrices[0])
    blur = blur_input.linear
    # Any size and aspect ratio: cameras of two models see one scene through the splitter,
    # and the registration and the crop to the region both see are what make them comparable.
    sharp_input = _load(job.sharp, job.sharp_format, job.black_levels[1], options.transfer, timer,
                        job.colour_matrices[1])
    if job.mask is None:
        return blur_input, sharp_input, None
    raw = read_image(job.mask)
    known = (raw if raw.ndim == 2 else raw[:, :, 0]) > 0
    if known.shape != blur.shape[:2]:
        raise AlignmentError(f"{job.mask}: mask size differs from {job.blur}")
    return blur_input, sharp_input, known


def _write_outputs(job: AlignJob, options: AlignOptions, blur_input: _Input, result: AlignResult,
                   blur_out: Path, sharp_out: Path, timer: StageTimer) -> None:
    """The aligned pair, cropped and resized, display-encoded; its clip and validity maps.
    Time goes to ``encode`` (sRGB and PNG compression) and ``write`` (the files). B,
    never resampled, is passed through as it was read when nothing would change it."""
    blur = blur_input.linear
    encoded: list[tuple[Path, bytes]] = []

    def encode(path: Path, image: np.ndarray, png: PngCompression | Literal["flags"] = options.png_compression
               ) -> None:
        with timer.stage("encode"):
            encoded.append((path, encode_image(image, path.suffix, png=png)))

    rows, cols = result.crop.slices()
    blur_final = blur[rows, cols]
    sharp_final = result.sharp_aligned[rows, cols]
    clip_flags = result.clip_flags[rows, cols]
    if options.resize is not None:
        interpolation = RESIZE_FILTERS[options.resize_filter]
        blur_final = cv2.resize(blur_final, options.resize, interpolation=interpolation)
        sharp_final = cv2.resize(sharp_final, options.resize, interpolation=interpolation)
        clip_flags = cv2.resize(clip_flags, options.resize, interpolation=cv2.INTER_NEAREST)
    out_dtype = np.uint16 if options.bit_depth == 16 else np.uint8
    unchanged = (blur_input.png is not None and options.bit_depth == 8 and options.resize is None
                 and blur_final.shape == blur.shape)
    if unchanged:
        assert blur_input.png is not None
        encoded.append((blur_out, blur_input.png))  # the sRGB round trip of 8-bit codes is exact
    elif blur_input.codes is not None and options.bit_depth == 8 and options.resize is None:
        encode(blur_out, np.ascontiguousarray(blur_input.codes[rows, cols]))  # cropped, not re-encoded
    else:
        with timer.stage("encode"):
            blur_encoded = encode_srgb(blur_final, out_dtype)
        encode(blur_out, blur_encoded)
    with timer.stage("encode"):
        sharp_encoded = encode_srgb(sharp_final, out_dtype)
    encode(sharp_out, sharp_encoded)
    clip_out = job.out_dir / f"{job.index}{CLIP_SUFFIX}"
    if clip_flags.any():
        encode(clip_out, clip_flags, png="flags")
    if not options.crop and result.valid is not None:
        valid_u8: np.ndarray = result.valid.astype(np.uint8) * 255
        if options.resize is not None:
            valid_u8 = cv2.resize(valid_u8, options.resize, interpolation=cv2.INTER_NEAREST)
        encode(job.out_dir / f"{job.index}{VALIDITY_SUFFIX}", valid_u8, png="flags")
    with timer.stage("write"):
        for path, data in encoded:
            atomic_write_bytes(path, data)
        if not clip_flags.any() and clip_out.exists():
            clip_out.unlink()  # a rerun with other settings found no clipping


def _record(job: AlignJob, options: AlignOptions, blur: np.ndarray, result: AlignResult,
            done: dict[str, Any]) -> AlignRecord:
    """The pair's sidecar record."""
    registration = Registration(
        initial=result.initial.method, matches=result.initial.matches, inliers=result.initial.inliers,
        iterations=result.registration.iterations, points=result.registration.points,
        converged=result.registration.converged,
    )
    return AlignRecord(
        software=f"reloblur {__version__}",
        source=AlignSource(str(job.blur), str(job.sharp), job.session_pair),
        qa_status=result.status,
        flags=result.flags,
        homography_blur_to_sharp=result.homography.tolist(),
        radial_distortion=result.radial,
        camera_colour=job.camera_colour,
        s_phase=job.s_phase,
        camera_matrices=None if job.colour_matrices == (None, None) else
        {role: None if m is None else [list(map(float, row)) for row in m]
         for role, m in zip(("B", "S"), job.colour_matrices)},
        mirror_sharp=result.mirror,
        color_matrix=result.color.matrix.tolist(),
        color_offset=result.color.offset.tolist(),
        # 6 digits: the bands' own error is about 1e-3
        flicker_rows=None if result.flicker_rows is None else [round(float(g), 6) for g in result.flicker_rows],
        gain=result.color.gain,
        color_mode=result.color.mode,
        input_size=[int(blur.shape[1]), int(blur.shape[0])],
        crop=result.crop.to_list(),
        output_size=list(options.resize) if options.resize else [result.crop.width, result.crop.height],
        qa=AlignQA(
            static_psnr=result.static_psnr, static_ssim=result.static_ssim,
            color_residual_rms=result.color.residual_rms, scale=result.transform.scale,
            rotation_deg=result.transform.rotation_deg, shift_px=result.transform.shift_px,
            moving_fraction=float(result.motion_mask.mean()), registration=registration,
            level_exponent=round(result.level.exponent, 4) if math.isfinite(result.level.exponent) else None,
        ),
        status=done["status"], inputs=done["inputs"], params_digest=done["params_digest"],
    )


def align_all(options: AlignOptions) -> AlignReport:
    """Align every pair; failures are collected (the caller exits 2 when there are any)."""
    if options.resize_filter not in RESIZE_FILTERS:
        raise ReloblurError(f"--resize-filter {options.resize_filter!r}: choose from {', '.join(RESIZE_FILTERS)}")
    if options.png_compression not in PNG_COMPRESSION:
        raise ReloblurError(f"--png-compression {options.png_compression!r}: choose from "
                            f"{', '.join(PNG_COMPRESSION)}")
    if options.bit_depth not in (8, 16):
        raise ReloblurError(f"--bit-depth {options.bit_depth}: choose 8 or 16")
    if options.merge not in MERGES:
        raise ReloblurError(f"merge {options.merge!r}: choose from {', '.join(MERGES)}")
    if not options.refine and options.calibration is None:
        raise ReloblurError("--no-refine keeps a calibration's homography as given: give the rig's calibration "
                            "(--calibration FILE, from 'align calibrate')")
    output_folder(options.out, what="align OUT")
    if options.merge == "append" and not options.shard.whole:
        raise ReloblurError("--append and --shard: parts appending at once would number over each other; "
                            "append unsharded, or align each session into its own OUT")
    jobs, rejected = _discover(options)
    if options.merge == "append" and not (options.input / MANIFEST).exists():
        raise ReloblurError(f"{options.input}: --append numbers a capture session's pairs on; a folder tree's "
                            "outputs mirror its paths (use --overwrite to replace what is there)")
    jobs, rejected = options.shard.select(jobs), options.shard.select(rejected)
    if options.merge != "overwrite":
        collisions = check_collisions(jobs)
        if collisions:
            more = f" (and {len(collisions) - 5} more)" if len(collisions) > 5 else ""
            raise ReloblurError(
                f"{options.out} already holds other pairs where these would go: " + "; ".join(collisions[:5]) + more
                + ". Nothing was written. Pass --append to number this session's pairs on after them, "
                "--overwrite to replace them, or choose another OUT."
            )
    rig = None if options.calibration is None else Calibration.read(options.calibration)
    # What a killed run left half-written: all of it, or only this shard's own files
    # (another machine may be writing the rest now).
    if options.out.is_dir() and options.shard.whole:
        remove_stale_temporaries(options.out)
    elif options.out.is_dir():
        remove_own_temporaries(path for job in jobs if not job.problem for path in _outputs(job))
    result = run_batch(
        align_job,
        [_Task(job, options, rig) for job in jobs],
        key=lambda task: task.job.key,
        workers=options.workers,
        description="aligning pairs",
        progress=options.progress,
    )
    outcomes = {key: outcome.status for key, outcome in result.results.items()}
    return AlignReport(
        out=str(options.out),
        pairs=len(jobs),
        aligned=sum(1 for v in outcomes.values() if v in ("aligned", "flagged")),
        resumed=sum(1 for v in outcomes.values() if v == "resumed"),
        flagged=[k for k, v in outcomes.items() if v == "flagged"],
        stage_seconds=total_seconds(outcome.seconds for outcome in result.results.values()),
        failures=list(result.failures),
        skipped=rejected,
        shard=str(options.shard),
    )
