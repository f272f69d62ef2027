"""``reloblur capture --mode burst``: one fast camera, bursts of overlapped exposures.

The single-camera method (``docs/burst.md``): the camera free-runs as fast as its node map
allows (or at ``--fps``), with an exposure close to the frame period, and every burst of K
consecutive frames becomes one burst folder (:mod:`reloblur.formats.burst_folder`) that
``reloblur burst build`` turns into a B/S pair. What the camera applied is read back:
exposure and frame period, so the exposed fraction (exposure / period) is the camera's,
not the request's; below 90 % the gaps between exposures dash B's streaks, and the
warning says which setting limits it.

A burst whose frame ids (or device timestamps) are not consecutive is rejected with its
reason and never averaged across the gap; the next burst starts from the next frame. By
default a burst keeps the exact sum of its frames (32-bit) and the S frame, so a long
campaign does not write K times the data; ``--keep-frames`` keeps every raw frame (then
camera shake can be checked and the phase chosen afterwards). A burst folder is complete
once its ``burst.json`` is written (last, atomically); folders a crash left without one
are swept on the next run, which numbers its bursts on from the existing ones.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reloblur.atomic import atomic_write_bytes
from reloblur.burst.build import DASHED_BELOW, BurstError, check_contiguous, sharp_index
from reloblur.capture.cameras import Camera, CameraError, FeatureInfo, Frame
from reloblur.capture.recorder import WRITERS
from reloblur.capture.registry import BackendOptions, open_backend
from reloblur.capture.rig import check_setting, load_user_set, pin_image_pipeline, set_gain_db, try_set
from reloblur.errors import ReloblurError
from reloblur.formats.burst_folder import MANIFEST, BurstFrame, BurstManifest
from reloblur.formats.timing import SPhase
from reloblur.imaging.imageio import encode_image
from reloblur.paths import is_folder_name

log = logging.getLogger(__name__)

FRAME_RATE_FEATURES = ("AcquisitionFrameRate", "AcquisitionFrameRateAbs")
RESULTING_RATE_FEATURES = ("ResultingFrameRate", "ResultingFrameRateAbs")


@dataclass(frozen=True)
class BurstCaptureOptions:
    """Options of ``reloblur capture --mode burst``."""

    out: Path  # the bursts root; bursts go to OUT/<scene>/<NN>/
    camera: str
    backend: BackendOptions
    bursts: int
    frames: int = 8
    exposure_us: float | None = None
    fps: float | None = None  # None: as fast as the camera runs
    pixel_format: str | None = None
    gain_db: float | None = None
    user_set: str | None = "Default"  # loaded before anything is set (rig.load_user_set); None: keep
    keep_frames: bool = False
    phase: SPhase = "middle"
    scene: str = "s01"
    progress: bool = True
    queue_size: int = 16  # bursts buffered for the writer threads
    writers: int = WRITERS


@dataclass
class BurstCaptureSummary:
    """What a burst capture did (``--json`` prints it)."""

    out: str
    recorded: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    exposure_us: float | None = None
    frame_period_us: float | None = None
    exposed_fraction: float | None = None
    warnings: list[str] = field(default_factory=list)
    swept: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    queue_high_water: int = 0
    slowed: int = 0  # times the fetch loop waited for the writer (a real camera may then drop frames)
    error: str | None = None


def _feature(camera: Camera, names: tuple[str, ...]) -> FeatureInfo | None:
    for name in names:
        info = camera.feature(name)
        if info.present:
            return info
    return None


def configure_fast_camera(camera: Camera, options: BurstCaptureOptions) -> tuple[dict[str, Any], list[str]]:
    """Free-running, fixed exposure and gain, at ``options.fps`` or the camera's fastest;
    returns what the camera applied (exposure, frame period, pixel format) and warnings."""
    warnings: list[str] = []
    user_set = load_user_set(camera, options.user_set, warnings)
    try_set(camera, "TriggerMode", "Off", warnings)  # bursts free-run: the camera's own clock spaces the frames
    for name in ("ExposureAuto", "GainAuto"):
        try_set(camera, name, "Off", warnings)
    if options.pixel_format:
        applied = try_set(camera, "PixelFormat", options.pixel_format, warnings)
        if applied is not None and str(applied) != options.pixel_format:
            raise CameraError(f"{options.camera}: pixel format {options.pixel_format!r} did not take "
                              f"(reads {applied!r})")
    state = pin_image_pipeline(camera, warnings)  # after the format: whether a colour matrix applies depends on it
    if user_set is not None:
        state["UserSetLoad"] = user_set
    if options.exposure_us is not None:
        try_set(camera, "ExposureTime", options.exposure_us, warnings)
    set_gain_db(camera, options.gain_db, warnings)
    enable = camera.feature("AcquisitionFrameRateEnable")
    if enable.present and enable.writable:
        try_set(camera, "AcquisitionFrameRateEnable", options.fps is not None, warnings)
    rate = _feature(camera, FRAME_RATE_FEATURES)
    if options.fps is not None:
        if rate is None:
            warnings.append("the camera has no AcquisitionFrameRate: --fps is ignored, it runs at its own rate")
        else:
            try_set(camera, rate.name, options.fps, warnings)
    exposure = camera.feature("ExposureTime").value
    resulting = _feature(camera, RESULTING_RATE_FEATURES)
    rate = _feature(camera, FRAME_RATE_FEATURES)
    fps = resulting.value if resulting is not None else rate.value if rate is not None else None
    period = 1e6 / float(fps) if fps else None
    applied = {"exposure_us": float(exposure) if exposure is not None else None, "frame_period_us": period,
               "pixel_format": camera.feature("PixelFormat").value, "state": state}
    return applied, warnings


def exposed_fraction_warning(exposure_us: float | None, period_us: float | None, fps_requested: bool) -> str | None:
    """A warning when the exposed fraction is below :data:`DASHED_BELOW`, naming what limits it."""
    if not exposure_us or not period_us:
        return ("exposure or frame period unknown (the camera reports no frame rate): the exposed fraction, and so "
                "whether B's streaks are continuous, is not recorded")
    fraction = exposure_us / period_us
    if fraction >= DASHED_BELOW:
        return None
    limit = (f"the frame rate you set (--fps {1e6 / period_us:g}) leaves {period_us - exposure_us:.0f} us of each "
             f"{period_us:.0f} us frame unexposed: raise it towards {1e6 / exposure_us:.0f} fps, or lengthen the "
             "exposure"
             if fps_requested else
             f"the exposure ({exposure_us:.0f} us) is shorter than the frame period ({period_us:.0f} us): lengthen "
             f"it towards {DASHED_BELOW * period_us:.0f} us or more")
    return f"exposed fraction {fraction:.0%} (< {DASHED_BELOW:.0%}): B's streaks will be dashed; {limit}"


def _sweep_incomplete(scene_dir: Path) -> list[str]:
    swept = []
    if scene_dir.is_dir():
        for folder in sorted(scene_dir.iterdir()):
            if folder.is_dir() and folder.name.isdigit() and not (folder / MANIFEST).exists():
                shutil.rmtree(folder)  # frames of a burst whose manifest never landed: incomplete
                swept.append(str(folder))
    return swept


def _next_number(scene_dir: Path) -> int:
    numbers = [int(p.name) for p in scene_dir.iterdir() if p.is_dir() and p.name.isdigit()] if scene_dir.is_dir() else []
    return max(numbers, default=-1) + 1


def _write_burst(folder: Path, frames: list[Frame], options: BurstCaptureOptions, applied: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    index = sharp_index(len(frames), options.phase)
    records = []
    for k, frame in enumerate(frames):
        name = f"frame_{k:03d}.tiff" if options.keep_frames or k == index else None
        if name is not None:
            atomic_write_bytes(folder / name, encode_image(frame.data, ".tiff"))
        records.append(BurstFrame(name, frame.frame_id, frame.timestamp_ns))
    manifest = BurstManifest(frames=records, pixel_format=str(frames[0].pixel_format),
                             black_level=float(applied["state"].get("BlackLevel") or 0.0),
                             exposure_us=applied["exposure_us"], frame_period_us=applied["frame_period_us"],
                             scene=options.scene)
    if not options.keep_frames:
        if len(frames) * float(np.iinfo(frames[0].data.dtype).max) > np.iinfo(np.uint32).max:
            raise BurstError(f"the sum of {len(frames)} frames could overflow 32 bits: use --keep-frames")
        total = np.asarray(np.sum([f.data for f in frames], axis=0, dtype=np.uint32))
        atomic_write_bytes(folder / "sum.tiff", encode_image(total, ".tiff"))
        manifest.sum_file, manifest.sharp_index = "sum.tiff", index
    manifest.write(folder)  # last: a folder with its manifest is complete


class _Writer(threading.Thread):
    """Sums and writes bursts off the fetch loop, so the camera's buffers are drained at
    its frame rate whatever the disk does; the queue is bounded, and a full one is counted.
    Each burst's folder is named by the fetch loop, so several writers need no order."""

    def __init__(self, items: queue.Queue, options: BurstCaptureOptions, applied: dict[str, Any]):
        super().__init__(name="burst-writer", daemon=True)
        self.items, self.options, self.applied = items, options, applied
        self.failure: BaseException | None = None
        self.written = 0

    def run(self) -> None:
        while True:
            item = self.items.get()
            if item is None:
                return
            if self.failure is not None:
                continue  # drain: the fetch loop sees the failure and stops
            folder, frames = item
            try:
                _write_burst(folder, frames, self.options, self.applied)
                self.written += 1
            except BaseException as exc:  # reported by the fetch loop, which stops
                self.failure = exc


def capture_bursts(options: BurstCaptureOptions) -> BurstCaptureSummary:
    """Record ``options.bursts`` bursts of ``options.frames`` frames; see the module docstring.

    Raises
    ------
    ReloblurError
        Bad options, or the camera cannot be opened or configured (nothing is written).
    """
    from reloblur.batch import make_progress

    if options.frames < 2 or options.bursts < 1:
        raise ReloblurError(f"--frames-per-pair must be >= 2 (got {options.frames}) and --pairs >= 1 "
                            f"(got {options.bursts})")
    if not is_folder_name(options.scene):
        raise ReloblurError(f"--scene {options.scene!r} is not a folder name")
    check_setting("--exposure", options.exposure_us, positive=True)
    check_setting("--fps", options.fps, positive=True)
    check_setting("--gain", options.gain_db, positive=False)
    summary = BurstCaptureSummary(out=str(options.out))
    started = time.monotonic()
    scene_dir = options.out / options.scene
    with ExitStack() as stack:
        backend = stack.enter_context(open_backend(options.backend))
        camera = stack.enter_context(backend.open(options.camera))
        applied, warnings = configure_fast_camera(camera, options)
        summary.exposure_us, summary.frame_period_us = applied["exposure_us"], applied["frame_period_us"]
        if summary.exposure_us and summary.frame_period_us:
            summary.exposed_fraction = summary.exposure_us / summary.frame_period_us
            if summary.exposed_fraction > 1 + 1e-3:
                # A frame cannot expose longer than it lasts: the readback is not what the sensor does.
                raise CameraError(f"{camera.info.serial or camera.info.id} reports an exposure of "
                                  f"{summary.exposure_us:g} us in a frame period of {summary.frame_period_us:g} us: "
                                  "set an exposure shorter than the period (or --fps lower)")
        warning = exposed_fraction_warning(summary.exposure_us, summary.frame_period_us, options.fps is not None)
        if warning:
            warnings.append(warning)
        for line in warnings:
            log.warning(line)
        summary.warnings = warnings
        summary.swept = _sweep_incomplete(scene_dir)
        number = _next_number(scene_dir)
        period_ns = summary.frame_period_us * 1000 if summary.frame_period_us else None
        timeout = max(2.0, 20 * (summary.frame_period_us or 0) / 1e6)
        items: queue.Queue = queue.Queue(maxsize=max(1, options.queue_size))
        writers = [_Writer(items, options, applied) for _ in range(max(1, options.writers))]
        for writer in writers:
            writer.start()
        camera.start()
        try:
            with make_progress(enabled=options.progress) as bar:
                task = bar.add_task("capturing bursts", total=options.bursts)
                queued = 0
                while queued < options.bursts:
                    if any(w.failure is not None for w in writers):
                        break
                    frames = [camera.fetch(timeout) for _ in range(options.frames)]
                    try:
                        check_contiguous([f.frame_id for f in frames], timestamps_ns=[f.timestamp_ns for f in frames],
                                         period_ns=period_ns)
                    except BurstError as exc:
                        summary.rejected += 1
                        key = str(exc).split(" (")[0].split(" between")[0]
                        summary.reasons[key] = summary.reasons.get(key, 0) + 1
                        log.warning("burst rejected: %s", exc)
                        if summary.rejected > 10 * options.bursts:
                            raise CameraError(f"{summary.rejected} bursts rejected for gaps: the camera drops "
                                              "frames (a slower --fps, or a faster link)") from exc
                        continue
                    try:
                        items.put_nowait((scene_dir / f"{number:02d}", frames))
                    except queue.Full:
                        summary.slowed += 1
                        if summary.slowed == 1:
                            log.warning("the disk cannot keep up: the fetch loop waits for the writer, and a real "
                                        "camera drops frames meanwhile (bursts with gaps are rejected)")
                        items.put((scene_dir / f"{number:02d}", frames))
                    summary.queue_high_water = max(summary.queue_high_water, items.qsize())
                    number += 1
                    queued += 1
                    bar.advance(task)
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            camera.stop()
            for _ in writers:
                items.put(None)
            for writer in writers:
                writer.join()
        summary.recorded = sum(w.written for w in writers)  # what is on disk, complete
        failures = [w.failure for w in writers if w.failure is not None]
        if failures:
            summary.error = f"writing bursts failed: {failures[0]}"
    summary.seconds = time.monotonic() - started
    return summary
