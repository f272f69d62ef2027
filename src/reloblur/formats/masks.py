"""Blur masks on disk: ``MASKS/<relative dir>/<id>.png`` and its sidecar ``<id>.json``.

The mask is single-channel 0/255, the size of B (the ReLoBlur convention). Beside it
``<id>.conf.png`` may hold the generator's soft confidence (8-bit, 0..255). The sidecar is
a :class:`MaskRecord`: the resume fields, who made the mask (``source``: ``auto`` or
``edited``), its ``review`` state, a ``version`` that every save increments (the review
app's optimistic lock), the edit history, and the generator's diagnostics. This module is
the only reader and writer of that file.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

import cv2
import numpy as np

from reloblur.atomic import atomic_write_json
from reloblur.errors import ReloblurError
from reloblur.imaging.imageio import write_image
from reloblur.imaging.regions import connected_regions

ReviewState = Literal["auto", "reviewed", "rejected"]
REVIEW_STATES: tuple[str, ...] = get_args(ReviewState)
MaskSource = Literal["auto", "edited", "none"]
CONFIDENCE_SUFFIX = ".conf.png"


class MaskRecordError(ReloblurError):
    """A mask sidecar exists but cannot be read: never a reason to overwrite the mask."""


def now() -> str:
    """The current UTC time as an ISO 8601 string (seconds), as history entries record it."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sidecar_path(mask: Path) -> Path:
    """``<id>.png`` -> ``<id>.json``."""
    return mask.with_suffix(".json")


def confidence_path(mask: Path) -> Path:
    """``<id>.png`` -> ``<id>.conf.png``."""
    return mask.with_name(mask.stem + CONFIDENCE_SUFFIX)


def blur_ratio(mask: np.ndarray) -> float:
    """Fraction of pixels marked blurred (non-zero) in a mask.

    >>> blur_ratio(np.array([[0, 255], [0, 0]], np.uint8))
    0.25
    """
    return float(np.count_nonzero(mask) / mask.size) if mask.size else 0.0


@dataclass
class Component:
    """One connected region of a mask."""

    area: int
    bbox: list[int]  # x, y, width, height in pixels


def mask_components(mask: np.ndarray) -> list[Component]:
    """Connected components (8-connected) of a binary mask with areas and bounding boxes."""
    count, _, stats = connected_regions(mask > 0)
    return [
        Component(int(stats[i, cv2.CC_STAT_AREA]),
                  [int(stats[i, cv2.CC_STAT_LEFT]), int(stats[i, cv2.CC_STAT_TOP]),
                   int(stats[i, cv2.CC_STAT_WIDTH]), int(stats[i, cv2.CC_STAT_HEIGHT])])
        for i in range(1, count)
    ]


@dataclass
class MaskRecord:
    """The sidecar of one mask.

    A mask without a sidecar reads as ``source="none"``, ``review="auto"``, version 0, the
    same in the review app and in ``mask stats``.
    """

    pair: str = ""
    source: MaskSource = "none"
    review: ReviewState = "auto"
    version: int = 0
    blur_ratio: float | None = None
    components: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    software: str = ""
    # the resume convention (reloblur.resume): set only for generated masks
    status: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    params_digest: str | None = None
    # B's file a generated mask was made from, relative to the mask's folder: a masks tree
    # two datasets share must not let one's pairs replace the other's masks of the same name
    made_from: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields of newer versions, kept as read

    @property
    def curated(self) -> bool:
        """True when a person made or judged this mask: generation must not replace it."""
        return self.source == "edited" or self.review != "auto"

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk (unknown fields read earlier are written back)."""
        data = {k: v for k, v in asdict(self).items() if k != "extra"}
        for key in ("status", "params_digest", "made_from"):
            if data[key] is None:
                del data[key]
        if not data["inputs"]:
            del data["inputs"]
        return {**self.extra, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MaskRecord:
        """The record of a JSON object; unknown keys are kept in ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        record = cls(**{k: v for k, v in data.items() if k in known})
        record.extra = {k: v for k, v in data.items() if k not in known}
        if record.review not in REVIEW_STATES:
            raise ValueError(f"review state {record.review!r} is not one of {REVIEW_STATES}")
        record.version = int(record.version)
        return record

    @classmethod
    def read(cls, mask: Path) -> MaskRecord | None:
        """The sidecar of ``mask``; ``None`` if there is none.

        Raises
        ------
        MaskRecordError
            The sidecar exists but is not a valid record (truncated, edited by hand).
        """
        path = sidecar_path(mask)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MaskRecordError(f"{path}: cannot read the mask sidecar ({exc.strerror})") from None
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise MaskRecordError(f"{path}: unreadable mask sidecar ({exc}); the mask beside it is kept. "
                                  "Repair or delete the sidecar to go on") from None

    @classmethod
    def read_or_default(cls, mask: Path) -> MaskRecord:
        """:meth:`read`, or a default record (``source="none"``) when there is no sidecar."""
        return cls.read(mask) or cls()


def write_mask(mask_path: Path, mask: np.ndarray, record: MaskRecord, *,
               confidence: np.ndarray | None = None) -> MaskRecord:
    """Write a mask (and its confidence map), then its sidecar, each atomically.

    The sidecar is written last, so a sidecar that says done implies the images beside it
    are complete. ``blur_ratio`` and ``components`` are filled in from ``mask``.
    """
    write_image(mask_path, mask)
    if confidence is not None:
        write_image(confidence_path(mask_path), confidence)
    record.blur_ratio = blur_ratio(mask)
    record.components = [asdict(c) for c in mask_components(mask)]
    atomic_write_json(sidecar_path(mask_path), record.to_dict())
    return record
