"""The rig calibration file written by ``reloblur align calibrate`` and read by ``align
--calibration``: one typed record, :class:`Calibration`, read and written here only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from reloblur.atomic import atomic_write_json
from reloblur.errors import ReloblurError


class CalibrationError(ReloblurError):
    """A calibration file is missing, unreadable or not from ``align calibrate``."""


@dataclass
class Calibration:
    """The rig's fixed B -> S transform, fitted on static captures.

    ``homography_blur_to_sharp`` maps B's input pixels to S's (3x3), after
    ``radial_distortion`` (the lenses' difference, see ``reloblur.imaging.lens
    .radial_coordinates``; 0 where they agree) has moved them; ``color_matrix`` maps
    linear S to B (3x3); ``corner_spread_px`` is how far the pairs' own homographies
    disagreed with the median at the image corners.
    """

    homography_blur_to_sharp: list[list[float]]
    color_matrix: list[list[float]]
    blur_size: list[int] = field(default_factory=list)
    pairs_used: int = 0
    corner_spread_px: float = 0.0
    source: str = ""
    software: str = ""
    # Noise-level function per channel of the aligned static pairs (NoiseLevel.to_dict),
    # for ``mask generate --calibration``; empty in files from older versions.
    noise_model: list[dict[str, Any]] = field(default_factory=list)
    radial_distortion: float = 0.0

    def write(self, path: Path) -> None:
        """Write the file atomically."""
        atomic_write_json(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Calibration:
        """Read a calibration file; :class:`CalibrationError` names the file on any problem."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CalibrationError(f"{path}: cannot read the calibration ({exc.strerror})") from None
        except ValueError as exc:
            raise CalibrationError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or "homography_blur_to_sharp" not in data:
            raise CalibrationError(f"{path}: not a calibration file from 'reloblur align calibrate'")
        known = {f.name for f in fields(cls)}
        try:
            record = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise CalibrationError(f"{path}: incomplete calibration ({exc})") from None
        if _shape(record.homography_blur_to_sharp) != (3, 3) or _shape(record.color_matrix) != (3, 3):
            raise CalibrationError(f"{path}: homography and colour matrix must be 3x3")
        return record

    @property
    def made_on(self) -> tuple[int, int] | None:
        """``(width, height)`` of the B images it was fitted on; None in older files."""
        return (int(self.blur_size[0]), int(self.blur_size[1])) if len(self.blur_size) == 2 else None

    def priors(self) -> dict[str, Any]:
        """What ``align_pair`` starts from: the homography, the lens term and the colour matrix."""
        return {"homography_blur_to_sharp": self.homography_blur_to_sharp, "color_matrix": self.color_matrix,
                "radial_distortion": self.radial_distortion}


def _shape(matrix: Any) -> tuple[int, ...]:
    try:
        return (len(matrix), *{len(row) for row in matrix})
    except TypeError:
        return ()
