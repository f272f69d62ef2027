"""The burst folder: the raw frames of one single-camera burst, and what the camera said.

::

    BURSTS/<scene>/<NN>/burst.json       manifest (below)
    BURSTS/<scene>/<NN>/frame_000.tiff   raw frames as the camera delivered them, in order

Any folder holding a ``burst.json`` is a burst, at any depth; ``reloblur burst build``
mirrors the folders above it and names the pair after it (``<scene>/<NN>_blur.png``).
``burst.json``::

    {"format": "reloblur-burst", "version": 1,
     "pixel_format": "BayerRG12", "black_level": 64, "bit_depth": 12,
     "exposure_us": 1960, "frame_period_us": 2000,
     "frames": [{"file": "frame_000.tiff", "frame_id": 1041, "timestamp_ns": 1700000000000},
                ...]}

``exposure_us / frame_period_us`` is the exposed fraction (below 90 % B's streaks are
dashed); frame ids or timestamps, where the camera gives them, prove the frames
consecutive. A burst captured without ``--keep-frames`` keeps only the exact sum of its
frames (``"sum_file": "sum.tiff"``, 32-bit) and the S frame (``"sharp_index": k``, the
only frame entry with a ``file``); the other entries keep their ids and timestamps. Frames are any lossless format :func:`~reloblur.imaging.imageio.read_image`
reads (16-bit TIFF or PNG), mono, Bayer mosaic or RGB, as ``pixel_format`` says. A lab can
write this layout from any vendor tool's frame dump with a few lines of script.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reloblur.atomic import atomic_write_json
from reloblur.errors import ReloblurError
from reloblur.paths import UnsafePathError, confined

FORMAT_NAME = "reloblur-burst"
FORMAT_VERSION = 1
MANIFEST = "burst.json"


class BurstFolderError(ReloblurError):
    """A burst folder that cannot be read (names the file and what is wrong)."""


@dataclass
class BurstFrame:
    """One raw frame of a burst: its file (relative to the burst folder; None when only the
    sum was kept) and counters."""

    file: str | None
    frame_id: int | None = None
    timestamp_ns: int | None = None


@dataclass
class BurstManifest:
    """A burst's ``burst.json``."""

    frames: list[BurstFrame]
    pixel_format: str
    black_level: float = 0.0
    bit_depth: int | None = None  # significant bits when the pixel format's name does not say
    exposure_us: float | None = None
    frame_period_us: float | None = None
    truth: dict[str, Any] | None = None  # simulator only
    sum_file: str | None = None  # the exact sum of every frame (32-bit TIFF) when frames were not kept
    sharp_index: int | None = None  # the frame kept beside the sum (S)
    scene: str | None = None
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exposed_fraction(self) -> float | None:
        """Exposure over frame period (1.0: no gap between exposures), when both are known."""
        if self.exposure_us and self.frame_period_us:
            return self.exposure_us / self.frame_period_us
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``burst.json``."""
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        return data

    @classmethod
    def read(cls, folder: Path) -> BurstManifest:
        """The manifest of the burst in ``folder``; :class:`BurstFolderError` naming the file."""
        path = folder / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BurstFolderError(f"{path}: cannot read ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise BurstFolderError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise BurstFolderError(f"{path}: not a {FORMAT_NAME} manifest (its 'format' is not {FORMAT_NAME!r})")
        if int(data.get("version", 0)) > FORMAT_VERSION:
            raise BurstFolderError(f"{path}: version {data['version']} is newer than this reloblur reads "
                                   f"({FORMAT_VERSION}); upgrade reloblur")
        try:
            frames = [BurstFrame(None if f.get("file") is None else str(f["file"]), _optional_int(f.get("frame_id")),
                                 _optional_int(f.get("timestamp_ns"))) for f in data["frames"]]
            manifest = cls(frames=frames, pixel_format=str(data["pixel_format"]),
                           black_level=float(data.get("black_level", 0.0)),
                           bit_depth=_optional_int(data.get("bit_depth")),
                           exposure_us=_optional_float(data.get("exposure_us")),
                           frame_period_us=_optional_float(data.get("frame_period_us")),
                           truth=data.get("truth"),
                           sum_file=None if data.get("sum_file") is None else str(data["sum_file"]),
                           sharp_index=_optional_int(data.get("sharp_index")),
                           scene=None if data.get("scene") is None else str(data["scene"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BurstFolderError(f"{path}: malformed manifest ({type(exc).__name__}: {exc})") from None
        if len(frames) < 2:
            raise BurstFolderError(f"{path}: a burst needs at least 2 frames, it lists {len(frames)}")
        if not math.isfinite(manifest.black_level) or manifest.black_level < 0:
            raise BurstFolderError(f"{path}: black_level {manifest.black_level!r} must be a finite number >= 0")
        if not manifest.frames_kept:
            index = manifest.sharp_index
            if manifest.sum_file is None or index is None or not 0 <= index < len(frames) \
                    or frames[index].file is None:
                raise BurstFolderError(f"{path}: frames without files need 'sum_file' and a 'sharp_index' whose "
                                       "frame has its file")
        return manifest

    @property
    def frames_kept(self) -> bool:
        """Whether every frame's file is there (else only the sum and S)."""
        return all(f.file is not None for f in self.frames)

    def frame_path(self, folder: Path, index: int) -> Path:
        """Frame ``index``'s file, confined to the burst folder."""
        name = self.frames[index].file
        if name is None:
            raise BurstFolderError(f"{folder / MANIFEST}: frame {index} was not kept (only the sum and S were)")
        return self._confined(folder, name, f"frame {index}")

    def sum_path(self, folder: Path) -> Path:
        """The frame sum's file, confined to the burst folder."""
        if self.sum_file is None:
            raise BurstFolderError(f"{folder / MANIFEST}: no frame sum recorded")
        return self._confined(folder, self.sum_file, "frame sum")

    @staticmethod
    def _confined(folder: Path, name: str, what: str) -> Path:
        try:
            return confined(folder, name, what=what)
        except UnsafePathError as exc:
            raise BurstFolderError(f"{folder / MANIFEST}: {exc}") from None

    def write(self, folder: Path) -> None:
        """Write ``burst.json`` into ``folder`` (atomically)."""
        atomic_write_json(folder / MANIFEST, self.to_dict())


def _optional_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"{value!r} is not a whole number")
    return int(value)


def _optional_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{value!r} is not a positive number")
    return float(value)


def find_bursts(root: Path) -> list[Path]:
    """Every burst folder under ``root`` (a folder holding ``burst.json``), sorted."""
    if (root / MANIFEST).is_file():
        return [root]
    return sorted(p.parent for p in root.rglob(MANIFEST))
