"""The capture session format: what ``reloblur capture`` records and ``reloblur align`` reads.

::

    SESSION/session.json         manifest: rig, cameras (as applied), sync settings
    SESSION/pairs.jsonl          append-only log, one JSON object per pair
    SESSION/frames/000000_B.tiff lossless frames (16-bit TIFF for raw Bayer/mono or RGB)
    SESSION/frames/000000_S.tiff
    SESSION/truth/               simulator only: ground truth per pair

Frames are written atomically before their log line is appended (and fsynced), so a log
line implies complete frames. Readers still check every frame (a disk can lose data) and
tolerate a truncated last log line, which is what a crash during the append leaves.
See ``docs/session-format.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reloblur import __version__
from reloblur.atomic import atomic_write_json, remove_stale_temporaries
from reloblur.errors import SessionError
from reloblur.imaging.imageio import read_image, write_image
from reloblur.paths import UnsafePathError, confined

FORMAT_NAME = "reloblur-session"
FORMAT_VERSION = 1
MANIFEST = "session.json"
LOG = "pairs.jsonl"
FRAMES = "frames"
TRUTH = "truth"
ROLES = ("B", "S")
STATUS_OK = "ok"
STATUS_REJECTED = "rejected"


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that ``cls`` has fields for (newer writers may add keys)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass
class CameraRecord:
    """One camera as configured and as it actually applied the settings (read back)."""

    role: str
    vendor: str = ""
    model: str = ""
    serial: str = ""
    backend: str = ""
    device_id: str = ""
    width: int = 0
    height: int = 0
    pixel_format: str = ""
    bit_depth: int = 16
    exposure_us: float | None = None
    gain_db: float | None = None
    black_level: float | None = None
    trigger_source: str | None = None
    lens: str | None = None
    nd_filter: dict[str, Any] | None = None  # {"name": ..., "transmission": 0..1}
    temperature_c: float | None = None
    missing_features: list[str] = field(default_factory=list)
    # The image-pipeline features pinned for linear, unflipped frames (Gamma, LUTEnable,
    # ReverseX/Y, ExposureMode, ColorTransformationEnable, BlackLevel), as each read back,
    # and ColorTransformationMatrix where a camera's colour matrix stays on; absent ones are
    # left out.
    state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraRecord:
        """The record of a manifest's camera entry (unknown keys ignored); ``TypeError``
        naming the field when a number is not a finite number."""
        known = _known_fields(cls, data)
        for name in _CAMERA_NUMBERS:
            value = known.get(name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TypeError(f"{name} = {value!r} is not a finite number")
            if value < 0 and name != "gain_db":
                raise TypeError(f"{name} = {value!r} is negative")
        return cls(**known)


# Numeric fields of a camera entry: values that arithmetic will use, checked on reading.
_CAMERA_NUMBERS = ("width", "height", "bit_depth", "exposure_us", "gain_db", "black_level")


@dataclass
class SessionManifest:
    """The session's ``session.json``.

    ``sync["mode"]`` is ``hardware`` (sync-box triggered), ``software`` (timed pairing,
    looser) or ``simulated``; ``rig["s_phase"]`` says which instant of B's exposure S
    shows: ``start``, ``middle`` or ``end``.
    """

    cameras: dict[str, CameraRecord]
    rig: dict[str, Any] = field(default_factory=dict)
    sync: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    simulation: dict[str, Any] | None = None
    created: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat())
    software: str = f"reloblur {__version__}"
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``session.json``."""
        data = asdict(self)
        if data["simulation"] is None:
            del data["simulation"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: Path) -> SessionManifest:
        """The manifest of a ``session.json`` object; :class:`SessionError` naming ``source`` if invalid."""
        if data.get("format") != FORMAT_NAME:
            raise SessionError(f"{source}: not a reloblur session manifest")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise SessionError(
                f"{source}: session format version {data['version']} is newer than this "
                f"reloblur understands ({FORMAT_VERSION}); upgrade reloblur"
            )
        try:
            cameras = {role: CameraRecord.from_dict(c) for role, c in data["cameras"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise SessionError(f"{source}: malformed 'cameras' section ({exc})") from None
        missing = [r for r in ROLES if r not in cameras]
        if missing:
            raise SessionError(f"{source}: no camera for role(s) {', '.join(missing)}")
        return cls(
            cameras=cameras,
            rig=dict(data.get("rig", {})),
            sync=dict(data.get("sync", {})),
            warnings=list(data.get("warnings", [])),
            simulation=data.get("simulation"),
            created=str(data.get("created", "")),
            software=str(data.get("software", "")),
            version=int(data.get("version", FORMAT_VERSION)),
        )


@dataclass
class FrameRecord:
    """One recorded frame: its file (relative to the session) and acquisition facts."""

    file: str
    bytes: int
    pixel_format: str
    width: int
    height: int
    frame_id: int | None = None
    timestamp_ns: int | None = None  # device clock; None when the camera gives none
    host_timestamp_ns: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameRecord:
        """The record of a frame entry of ``pairs.jsonl`` (unknown keys ignored)."""
        return cls(**_known_fields(cls, data))


@dataclass
class PairRecord:
    """One line of ``pairs.jsonl``."""

    pair: int
    status: str
    trigger: int | None = None
    frames: dict[str, FrameRecord] = field(default_factory=dict)
    scene: str | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of one ``pairs.jsonl`` line."""
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairRecord:
        """The record of one ``pairs.jsonl`` line (unknown keys ignored)."""
        return cls(
            pair=int(data["pair"]),
            status=str(data["status"]),
            trigger=data.get("trigger"),
            frames={r: FrameRecord.from_dict(f) for r, f in data.get("frames", {}).items()},
            scene=data.get("scene"),
            timing=dict(data.get("timing", {})),
            reason=data.get("reason"),
        )


@dataclass(frozen=True)
class SkippedPair:
    """A logged pair that cannot be used, and why (rejected, or its frames missing)."""
    pair: int
    reason: str


def frame_name(pair: int, role: str, suffix: str = ".tiff") -> str:
    """The file name of pair ``pair``'s frame of camera ``role``."""
    return f"{FRAMES}/{pair:06d}_{role}{suffix}"


def _read_manifest(root: Path) -> SessionManifest:
    path = root / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SessionError(f"{root}: not a capture session (no {MANIFEST})") from None
    except (OSError, ValueError) as exc:
        raise SessionError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise SessionError(f"{path}: manifest is not a JSON object")
    return SessionManifest.from_dict(data, source=path)


def _read_log(path: Path) -> tuple[list[PairRecord], bool]:
    """Records of the log and whether its last line was truncated (and ignored)."""
    if not path.exists():
        return [], False
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records: list[PairRecord] = []
    truncated = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        is_last = number == len(lines)  # no newline after it: the append did not finish
        try:
            data = json.loads(line)
            record = PairRecord.from_dict(data)
        except (ValueError, KeyError, TypeError) as exc:
            if is_last:
                truncated = True
                break
            raise SessionError(f"{path}:{number}: malformed log line ({exc})") from None
        if is_last:
            truncated = True  # complete JSON, but the newline is missing: treat as unfinished
            break
        records.append(record)
    return records, truncated


class Session:
    """A capture session on disk, read-only.

    Use :meth:`pairs` for the pairs that are safe to process: logged as ``ok`` with both
    frames present and of the recorded size. Everything else is listed in
    :attr:`skipped` with a reason.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SessionError(f"{self.root}: session directory does not exist")
        self.manifest = _read_manifest(self.root)
        self.records, self.truncated_log = _read_log(self.root / LOG)
        self.skipped: list[SkippedPair] = []
        latest: dict[int, PairRecord] = {}
        for record in self.records:
            latest[record.pair] = record  # a re-recorded pair supersedes the earlier line
        self._complete: list[PairRecord] = []
        for index in sorted(latest):
            record = latest[index]
            if record.status != STATUS_OK:
                self.skipped.append(SkippedPair(index, f"{record.status}: {record.reason or ''}".strip()))
                continue
            problem = self._frame_problem(record)
            if problem:
                self.skipped.append(SkippedPair(index, problem))
            else:
                self._complete.append(record)

    def _frame_problem(self, record: PairRecord) -> str | None:
        for role in ROLES:
            frame = record.frames.get(role)
            if frame is None:
                return f"no {role} frame recorded"
            try:
                path = confined(self.root, frame.file, what=f"pair {record.pair} {role} frame")
            except UnsafePathError as exc:
                return str(exc)
            try:
                size = path.stat().st_size
            except OSError:
                return f"{path}: frame file missing"
            if size != frame.bytes:
                return f"{path}: frame is {size} bytes, log says {frame.bytes} (incomplete)"
        return None

    def pairs(self) -> list[PairRecord]:
        """The usable pairs, in order (a pair logged twice: its last line)."""
        return list(self._complete)

    def frame_path(self, record: PairRecord, role: str) -> Path:
        """Where ``record``'s frame of camera ``role`` is, confined to the session folder."""
        return confined(self.root, record.frames[role].file, what=f"pair {record.pair} {role} frame")

    def read_frame(self, record: PairRecord, role: str) -> np.ndarray:
        """``record``'s frame of camera ``role`` as recorded (uint8/uint16)."""
        return read_image(self.frame_path(record, role))

    def truth_path(self, record: PairRecord) -> Path:
        """Simulator ground truth JSON of a pair (absent for real captures)."""
        return self.root / TRUTH / f"{record.pair:06d}.json"

    def truth(self, record: PairRecord) -> dict[str, Any] | None:
        """The simulator's ground truth of ``record`` (``None`` for a real capture)."""
        path = self.truth_path(record)
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def truth_mask(self, record: PairRecord) -> np.ndarray | None:
        """The simulator's blur mask of ``record`` (``None`` for a real capture)."""
        path = self.root / TRUTH / f"{record.pair:06d}_mask.png"
        return read_image(path) if path.exists() else None


def write_frame(
    root: Path,
    pair: int,
    role: str,
    image: np.ndarray,
    *,
    pixel_format: str,
    frame_id: int | None = None,
    timestamp_ns: int | None = None,
    host_timestamp_ns: int | None = None,
) -> FrameRecord:
    """Write one frame of a session losslessly (TIFF, atomically) and return its record.

    Safe to call from worker processes: it touches only the frame's own file. The caller
    appends the pair's log line once both frames are written.
    """
    if role not in ROLES:
        raise SessionError(f"unknown camera role {role!r}; expected one of {ROLES}")
    name = frame_name(pair, role)
    path = Path(root) / name
    description = json.dumps({"pair": pair, "role": role, "pixel_format": pixel_format})
    write_image(path, image, description=description)
    return FrameRecord(
        file=name,
        bytes=path.stat().st_size,
        pixel_format=pixel_format,
        width=int(image.shape[1]),
        height=int(image.shape[0]),
        frame_id=frame_id,
        timestamp_ns=timestamp_ns,
        host_timestamp_ns=host_timestamp_ns,
    )


def write_truth(root: Path, pair: int, truth: dict[str, Any], mask: np.ndarray | None) -> None:
    """Simulator only: a pair's ground truth, written before its log line."""
    atomic_write_json(Path(root) / TRUTH / f"{pair:06d}.json", truth)
    if mask is not None:
        write_image(Path(root) / TRUTH / f"{pair:06d}_mask.png", mask)


class SessionWriter:
    """Appends pairs to a session directory, creating it or resuming it.

    Frames are written first (atomically), then the pair's log line is appended and
    fsynced. On resume, numbering continues after the highest pair and trigger in the
    log, a truncated last line is cut off, and leftover temporary files are removed.
    """

    def __init__(self, root: str | os.PathLike[str], manifest: SessionManifest | None = None):
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if manifest_path.exists():
            existing = _read_manifest(self.root)
            self.manifest = manifest or existing
            if manifest is not None:
                atomic_write_json(manifest_path, manifest.to_dict())
        elif manifest is None:
            raise SessionError(f"{self.root}: no session here and no manifest to create one")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            self.manifest = manifest
            atomic_write_json(manifest_path, manifest.to_dict())
        (self.root / FRAMES).mkdir(exist_ok=True)
        remove_stale_temporaries(self.root)
        self._log_path = self.root / LOG
        self._repair_log_tail()
        records, _ = _read_log(self._log_path)
        self.recorded_pairs = {r.pair for r in records if r.status == STATUS_OK}
        self.next_pair = max((r.pair for r in records), default=-1) + 1
        self.next_trigger = max((r.trigger for r in records if r.trigger is not None), default=-1) + 1
        self._log = open(self._log_path, "ab")

    def _repair_log_tail(self) -> None:
        if not self._log_path.exists():
            return
        raw = self._log_path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            keep = raw.rfind(b"\n") + 1
            with open(self._log_path, "r+b") as handle:
                handle.truncate(keep)
                handle.flush()
                os.fsync(handle.fileno())

    def write_frame(self, pair: int, role: str, image: np.ndarray, **facts: Any) -> FrameRecord:
        """Write one frame losslessly; see :func:`write_frame`."""
        return write_frame(self.root, pair, role, image, **facts)

    def append(self, record: PairRecord) -> None:
        """Append one log line durably; call only after the pair's frames are written."""
        line = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":")) + "\n"
        self._log.write(line.encode("utf-8"))
        self._log.flush()
        os.fsync(self._log.fileno())
        if record.status == STATUS_OK:
            self.recorded_pairs.add(record.pair)
        self.next_pair = max(self.next_pair, record.pair + 1)
        if record.trigger is not None:
            self.next_trigger = max(self.next_trigger, record.trigger + 1)

    def write_truth(self, pair: int, truth: dict[str, Any], mask: np.ndarray | None) -> None:
        """Simulator only; see :func:`write_truth`."""
        write_truth(self.root, pair, truth, mask)

    def close(self) -> None:
        """Close the pair log (idempotent)."""
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
