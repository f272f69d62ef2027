"""``reloblur capture``: record B/S pairs into a session, crash-safe.

Trigger loop (this thread) -> bounded queue -> writer threads -> session. The trigger
loop never waits on the disk until the queue is full; then it waits (the trigger rate
drops) and says so. Writers encode and fsync different pairs at once (one thread leaves
a fast disk idle between its fsyncs); each pair's frames are written atomically and its
log line appended after both and after every earlier pair's line, so a crash or SIGKILL
at any moment leaves a session whose every logged pair is complete and whose log is in
trigger order.

Pairing never guesses: with hardware triggering, both frames must come from the same
sync-box pulse (frame ids advance by exactly one per camera, the device timestamps differ
by the planned S delay within tolerance); with software timing (cameras without trigger
features), host timestamps must be within half a frame period. Anything else is logged
as a rejected pair with its reason.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reloblur.capture.cameras import Camera, CameraError, CameraGoneError, Frame, FrameTimeout
from reloblur.capture.registry import BackendOptions, HarvestersOptions, backend_name, open_backend
from reloblur.capture.rig import CameraSettings, RigConfig, check_clocks, configure_camera, light_balance_warning
from reloblur.capture.syncbox import (
    SyncBox,
    SyncBoxError,
    SyncBoxGoneError,
    SyncBoxProtocolError,
    SyncBoxTimeout,
    s_trigger_delay_us,
)
from reloblur.errors import ReloblurError
from reloblur.formats.session import STATUS_OK, STATUS_REJECTED, PairRecord, SessionManifest, SessionWriter
from reloblur.formats.timing import check_s_phase
from reloblur.logs import log_file
from reloblur.paths import is_folder_name

log = logging.getLogger(__name__)
CAPTURE_LOG = "capture.log"
_DONE = object()
# Writer threads of both recorders: a frame's write waits mostly on fsync, which releases
# the GIL, so several overlap (benchmarks/capture_bench.py compares one; docs/benchmarks.md).
WRITERS = 4


@dataclass(frozen=True)
class CaptureOptions:
    """Options of ``reloblur capture`` (a rig file fills most of them)."""

    session: Path
    rig: RigConfig
    backend: BackendOptions = field(default_factory=HarvestersOptions)  # see reloblur.capture.registry
    pairs: int = 10
    queue_size: int = 16
    writers: int = WRITERS
    timing_tolerance_us: float = 2_000.0
    scene: str | None = None
    progress: bool = True


@dataclass
class CaptureSummary:
    """What a capture run did: pairs kept and rejected (with reasons), queue, timing, errors."""
    session: str
    sync_mode: str
    recorded: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    queue_high_water: int = 0
    slowed: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def pairs_per_second(self) -> float:
        """Kept pairs per second of the run."""
        return self.recorded / self.seconds if self.seconds else 0.0


class _Writers:
    """Threads that write queued pairs' frames in parallel and append each pair's log line
    in queue order: the only threads that touch the disk. Items are ``(ordinal, record,
    frames)``, ordinals counting from 0 in the order queued."""

    def __init__(self, session: SessionWriter, items: queue.Queue, count: int):
        self.session = session
        self.items = items
        self.failure: BaseException | None = None
        self._turn = 0  # ordinal of the next pair whose line may be appended
        self._ordered = threading.Condition()
        self._threads = [threading.Thread(target=self._run, name=f"capture-writer-{k}", daemon=True)
                         for k in range(max(1, count))]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def _may_log(self, ordinal: int) -> bool:
        return self._turn == ordinal or self.failure is not None

    def _run(self) -> None:
        while True:
            item = self.items.get()
            if item is _DONE:
                self.items.put(_DONE)  # for the next writer: the loop queues it once, last
                return
            ordinal, record, frames = item
            try:
                if frames and self.failure is None:
                    record.frames = {
                        role: self.session.write_frame(record.pair, role, frame.data, pixel_format=frame.pixel_format,
                                                       frame_id=frame.frame_id, timestamp_ns=frame.timestamp_ns,
                                                       host_timestamp_ns=frame.host_timestamp_ns)
                        for role, frame in frames.items()
                    }
                with self._ordered:
                    self._ordered.wait_for(functools.partial(self._may_log, ordinal))
                    if self.failure is None:  # after a failure: drain, but log nothing more
                        self.session.append(record)
                    self._turn += 1
                    self._ordered.notify_all()
            except BaseException as exc:  # disk full, permissions: stop recording, keep what is written
                with self._ordered:
                    if self.failure is None:
                        self.failure = exc
                    self._ordered.notify_all()


class _OffsetTrack:
    """S - B stamp offsets of the last pairs kept, on independent camera clocks, and the
    offset they predict for the next pair: a least-squares line over B's stamps, so the
    clocks' relative drift (up to about 100 ppm: 20 us between pairs at 5 Hz) is followed."""

    WINDOW = 8

    def __init__(self) -> None:
        self._points: list[tuple[float, float]] = []  # (B stamp in s, offset in us)

    def add(self, b_ns: int, offset_us: float) -> None:
        self._points = [*self._points[1 - self.WINDOW:], (b_ns / 1e9, offset_us)]

    def predict(self, b_ns: int) -> float | None:
        if not self._points:
            return None
        times, offsets = np.array(self._points).T
        if len(times) < 3 or np.ptp(times) == 0:
            return float(np.median(offsets))
        slope, intercept = np.polyfit(times - times[-1], offsets, 1)
        return float(intercept + slope * (b_ns / 1e9 - times[-1]))


def _reason_key(reason: str) -> str:
    return reason.split(":")[0]


class Recorder:
    """One capture run; see :func:`capture`."""

    def __init__(self, options: CaptureOptions, on_pair: Callable[[int, dict[str, Camera], object], None] | None = None,
                 on_open: Callable[[dict[str, Camera]], None] | None = None):
        self.options = options
        self.on_pair = on_pair
        self.on_open = on_open
        self.rig = options.rig
        self.summary = CaptureSummary(session=str(options.session), sync_mode="")
        self._last_ids: dict[str, int | None] = {"B": None, "S": None}
        self._offsets = _OffsetTrack()

    def _check_ids(self, frames: dict[str, Frame]) -> str | None:
        problems = []
        for role, frame in frames.items():
            last = self._last_ids[role]
            if frame.frame_id is not None and last is not None and frame.frame_id != last + 1:
                problems.append(f"{role} frame id gap (expected {last + 1}, got {frame.frame_id})")
            self._last_ids[role] = frame.frame_id
        return "; ".join(problems) or None

    def _check_timing(self, frames: dict[str, Frame], delay_us: float) -> str | None:
        b, s = frames["B"].timestamp_ns, frames["S"].timestamp_ns
        if b is None or s is None:
            return None
        tolerance = self.options.timing_tolerance_us
        if self.rig.clocks == "shared":
            measured = (s - b) / 1000
            if abs(measured - delay_us) > tolerance:
                return f"timing: S started {measured:.0f} us after B, planned {delay_us:.0f} us"
            return None
        # Independent clocks: S - B is the trigger delay plus the clocks' offset, which drifts
        # by tens of ppm. Its prediction from the pairs just kept (a line through them) is
        # what an on-time S edge gives; a pair that is off it fired off its plan.
        offset_us = (s - b) / 1000
        predicted = self._offsets.predict(b)
        if predicted is not None and abs(offset_us - predicted) > tolerance:
            return (f"timing: S moved {offset_us - predicted:+.0f} us against B from the pairs before it "
                    f"(independent camera clocks: the S edge left its planned {delay_us:.0f} us delay, "
                    "or a camera's clock jumped)")
        self._offsets.add(b, offset_us)
        return None

    def run(self) -> CaptureSummary:
        """Open the cameras and the box, configure, record, and return the summary."""
        options, rig = self.options, self.rig
        started = time.monotonic()
        with ExitStack() as stack:
            backend = stack.enter_context(open_backend(options.backend))
            self.backend = backend
            cameras: dict[str, Camera] = {}
            for role in ("B", "S"):
                cameras[role] = stack.enter_context(backend.open(rig.cameras[role].select))
            if cameras["B"].info == cameras["S"].info and not backend.shared_devices:
                raise CameraError("B and S select the same camera")

            if self.on_open is not None:
                self.on_open(cameras)
            box = None
            if rig.sync_port:
                box = stack.enter_context(SyncBox(rig.sync_port))
                box.identify()
                for role in ("B", "S"):
                    box.power(role, True)

            applied = {role: configure_camera(cameras[role], role, rig.cameras[role],
                                              hardware_trigger=box is not None,
                                              backend=backend_name(options.backend))
                       for role in ("B", "S")}
            refused = [w for a in applied.values() if a.trigger_refused for w in a.warnings if "TriggerMode" in w]
            if box is not None and refused:
                # A sync box means hardware pairing was asked for: a camera whose trigger does
                # not arm free-runs, and quietly pairing it by software time is not that.
                raise CameraError("; ".join(refused) + ". Fix the camera's trigger settings, or capture "
                                  "software-timed pairs without a sync box (leave --sync out).")
            hardware = box is not None and all(a.has_trigger for a in applied.values())
            warnings = [w for a in applied.values() for w in a.warnings]
            if box is not None and not hardware:
                warnings.append("a camera has no trigger features: pairs are software-timed (looser pairing)")
            elif box is None:
                warnings.append("no sync box: pairs are software-timed (looser pairing)")
            balance = light_balance_warning(applied["B"].record, applied["S"].record, rig.light_tolerance)
            if balance:
                warnings.append(balance)
            for warning in warnings:
                log.warning(warning)
            self.summary.warnings = warnings
            self.summary.sync_mode = "hardware" if hardware else "software"
            for camera in cameras.values():
                camera.start()
            if hardware:
                refuse_free_running(cameras, [a.record.exposure_us or 0.0 for a in applied.values()])

            b_exp = applied["B"].record.exposure_us or rig.cameras["B"].exposure_us or 0.0
            s_exp = applied["S"].record.exposure_us or rig.cameras["S"].exposure_us or 0.0
            delay = s_trigger_delay_us(b_exp, s_exp, rig.s_phase, rig.s_offset_us) if b_exp and s_exp else 0.0
            period_s = 1.0 / rig.rate_hz
            if box is not None:
                box.set_exposure("B", b_exp or 1)
                box.set_exposure("S", s_exp or 1)
                box.set_delay(delay)
                box.set_period(period_s * 1e6)
                box.arm()
            manifest = SessionManifest(
                cameras={role: a.record for role, a in applied.items()},
                rig={"name": rig.name, "s_phase": rig.s_phase},
                sync={"mode": self.summary.sync_mode, "device": rig.sync_port, "s_phase": rig.s_phase,
                      "s_delay_us": delay, "s_offset_us": rig.s_offset_us, "period_us": period_s * 1e6,
                      "clocks": rig.clocks},
                warnings=warnings,
            )
            session = stack.enter_context(SessionWriter(options.session, manifest))
            # The session keeps its own log (capture.log): what happened at the rig travels
            # with the frames, whatever the terminal showed.
            stack.enter_context(log_file(options.session / CAPTURE_LOG))
            log.info("capture of %d pair(s), %s-triggered, S delay %.0f us", options.pairs, self.summary.sync_mode,
                     delay)
            for warning in warnings:
                log.info("warning: %s", warning)
            items: queue.Queue = queue.Queue(maxsize=options.queue_size)
            writer = _Writers(session, items, options.writers)
            writer.start()
            try:
                self._loop(cameras, box, session, items, writer, hardware, delay, period_s)
            except KeyboardInterrupt:
                self.summary.interrupted = True
            except (CameraGoneError, SyncBoxGoneError) as exc:
                self.summary.error = str(exc)
            except (SyncBoxError, SyncBoxTimeout, SyncBoxProtocolError) as exc:
                self.summary.error = f"the sync box failed: {exc}"
            except FrameTimeout as exc:  # software-timed: a free-running camera stopped streaming
                self.summary.error = f"a camera stopped delivering frames: {exc}"
            finally:
                items.put(_DONE)
                writer.join()
                if box is not None:
                    try:
                        box.stop()
                    except ReloblurError:
                        pass
            if writer.failure is not None:
                self.summary.error = f"writing the session failed: {writer.failure}"
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _loop(self, cameras: dict[str, Camera], box: SyncBox | None, session: SessionWriter, items: queue.Queue,
              writer: _Writers, hardware: bool, delay_us: float, period_s: float) -> None:
        from reloblur.batch import make_progress

        options = self.options
        reasons: Counter[str] = Counter()
        next_slot = time.monotonic()
        with make_progress(enabled=options.progress) as bar:
            task = bar.add_task("capturing", total=options.pairs)
            pair_index = session.next_pair
            for ordinal in range(options.pairs):
                if writer.failure is not None:
                    return
                wait = next_slot - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                next_slot = max(next_slot + period_s, time.monotonic())
                frames, reason, trigger = self._acquire(cameras, box, hardware, delay_us, period_s)
                record = PairRecord(pair=pair_index, status=STATUS_OK if reason is None else STATUS_REJECTED,
                                    trigger=trigger, scene=options.scene, reason=reason,
                                    timing={"s_delay_us": delay_us, "period_us": period_s * 1e6,
                                            "clocks": self.rig.clocks})
                if reason is None:
                    self.summary.recorded += 1
                else:
                    self.summary.rejected += 1
                    reasons[_reason_key(reason)] += 1
                    log.warning("pair %d rejected: %s", pair_index, reason)
                    frames = {}
                try:
                    items.put_nowait((ordinal, record, frames))
                except queue.Full:
                    self.summary.slowed += 1
                    if self.summary.slowed == 1:
                        log.warning("the disk cannot keep up: waiting for the writer (trigger rate drops)")
                    items.put((ordinal, record, frames))
                self.summary.queue_high_water = max(self.summary.queue_high_water, items.qsize())
                if self.on_pair is not None:
                    self.on_pair(pair_index, cameras, self.backend)
                pair_index += 1
                bar.advance(task)
        self.summary.reasons = dict(reasons)

    def _acquire(self, cameras: dict[str, Camera], box: SyncBox | None, hardware: bool, delay_us: float,
                 period_s: float) -> tuple[dict[str, Frame], str | None, int | None]:
        timeout = max(1.0, 3 * period_s)
        if hardware:
            assert box is not None
            box.fire(1)
            event = box.wait_trigger(timeout)
            frames: dict[str, Frame] = {}
            missing = []
            for role, camera in cameras.items():
                try:
                    frames[role] = camera.fetch(timeout)
                except FrameTimeout:
                    missing.append(role)
            if missing:
                for role in cameras:  # resynchronise: the delivered frames were consumed
                    self._last_ids[role] = frames[role].frame_id if role in frames else None
                return {}, f"dropped: no {' and no '.join(missing)} frame for trigger {event.sequence}", event.sequence
            problem = self._check_ids(frames) or self._check_timing(frames, delay_us)
            return frames, problem, event.sequence
        # Software timing: free-running cameras, paired by host clock.
        frames = {role: camera.fetch(timeout) for role, camera in cameras.items()}
        tolerance_ns = period_s * 0.5e9
        for _ in range(3):
            gap = frames["S"].host_timestamp_ns - frames["B"].host_timestamp_ns
            if abs(gap) <= tolerance_ns:
                return frames, self._check_ids(frames), None
            late = "B" if gap > 0 else "S"  # the camera whose frame is older fetches again
            frames[late] = cameras[late].fetch(timeout)
        return {}, f"unpaired: frames {abs(gap) / 1e6:.1f} ms apart (tolerance {tolerance_ns / 1e6:.1f} ms)", None


# How long a camera armed for hardware triggers is watched, with no trigger fired, before
# recording (beyond its exposure): a camera that ignores TriggerMode streams at its frame
# rate, so a few frame periods of most cameras (Aravis's fake camera: 25 Hz).
FREE_RUN_PROBE_S = 0.3


def refuse_free_running(cameras: dict[str, Camera], exposures_us: list[float]) -> None:
    """Raise :class:`CameraError` if a camera armed for hardware triggers delivers a frame
    before any trigger is fired.

    ``TriggerMode`` reading back ``On`` is what a camera says, not what it does: some
    cameras and emulators (Aravis's fake camera) accept it and keep streaming. Pairing
    such a camera's frames by trigger would be a fiction, so it is refused before
    anything is written: capture software-timed pairs without a sync box instead, where
    frames are paired by their host time and the session says so.
    """
    wait = FREE_RUN_PROBE_S + max(exposures_us, default=0.0) / 1e6
    for role, camera in cameras.items():
        try:
            frame = camera.fetch(wait)
        except FrameTimeout:
            wait = 0.05  # the first camera's wait covered both
            continue
        raise CameraError(
            f"the {role} camera ({camera.info.serial or camera.info.id}) delivered a frame (id {frame.frame_id}) "
            "with no trigger fired: it free-runs although TriggerMode reads On, so its frames cannot be paired "
            "by trigger. Check its trigger settings (TriggerSelector FrameStart, TriggerSource a line), or "
            "capture software-timed pairs without a sync box (leave --sync out).")


def capture(options: CaptureOptions, *,
            on_pair: Callable[[int, dict[str, Camera], object], None] | None = None,
            on_open: Callable[[dict[str, Camera]], None] | None = None) -> CaptureSummary:
    """Record ``options.pairs`` pairs; returns the summary (``error`` set if the run stopped early).

    ``on_open(cameras)`` is called once both cameras are open, before the sync box is
    (wiring an emulated box's lines to cameras in tests); ``on_pair(pair_index, cameras,
    backend)`` after each pair is queued (progress reporting, fault injection in tests).
    """
    if options.pairs < 1:
        raise ReloblurError(f"--pairs must be at least 1 (got {options.pairs})")
    if options.scene is not None and not is_folder_name(options.scene):
        # align makes the label a folder: refused there, after the capture, it would cost the session
        raise ReloblurError(f"--scene {options.scene!r} is not a folder name")
    return Recorder(options, on_pair, on_open).run()


def quick_rig(b: str, s: str, *, b_exposure_us: float | None, s_exposure_us: float | None, gain_db: float | None,
              pixel_format: str | None, sync: str | None, s_phase: str, rate_hz: float,
              simulated_nd: bool = False, user_set: str | None = "Default", clocks: str = "independent") -> RigConfig:
    """The rig of the quick command-line form (no rig file).

    ``simulated_nd``: the sim backend's B camera has the ND filter that equalises the light
    built in; record it as such.
    """
    nd = None
    if simulated_nd and b_exposure_us and s_exposure_us:
        nd = {"name": "simulated ND", "transmission": s_exposure_us / b_exposure_us}
    return RigConfig(
        cameras={"B": CameraSettings(b, b_exposure_us, gain_db, pixel_format, "Line0", nd_filter=nd, user_set=user_set),
                 "S": CameraSettings(s, s_exposure_us, gain_db, pixel_format, "Line1", user_set=user_set)},
        s_phase=check_s_phase(s_phase), rate_hz=rate_hz, sync_port=sync, clocks=check_clocks(clocks, where="--clocks"),
    )
