"""The align sidecar: ``<id>.align.json`` beside each aligned pair (docs/alignment.md).

One typed record, :class:`AlignRecord`, written by ``reloblur align`` and read by the align
report, the demo report and anything else that needs a pair's transform or QA, so that a
renamed field breaks at one place and a type checker sees it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from reloblur.atomic import atomic_write_json
from reloblur.errors import ReloblurError
from reloblur.formats.timing import SPhase, recorded_s_phase

SIDECAR_SUFFIX = ".align.json"


class AlignRecordError(ReloblurError):
    """An align sidecar is missing a field or cannot be read."""


@dataclass
class Registration:
    """How the homography was found: the starting method and the refinement's work."""

    initial: str
    matches: int
    inliers: int
    iterations: int
    points: int
    converged: bool


@dataclass
class AlignQA:
    """What the static region says about the alignment."""

    static_psnr: float | None  # None when no static pixels were left to measure
    static_ssim: float | None
    color_residual_rms: float
    scale: float
    rotation_deg: float
    shift_px: float
    moving_fraction: float
    registration: Registration
    # g of S/B ~ level**g on the static region (postprocess.color.level_dependence): 0 for
    # two linear cameras; None where the static levels were too few to measure it
    level_exponent: float | None = None


@dataclass
class AlignSource:
    """Where the pair came from."""

    blur: str
    sharp: str
    session_pair: int | None = None


# A camera's colour processing after its sensor clipped, per ``AlignRecord.camera_colour``:
#   raw: Bayer or mono frames, which no colour transformation touches;
#   off: RGB with the camera's colour transformation recorded switched off;
#   undone: RGB through a recorded colour matrix, which align inverted (its output clip stays);
#   unknown: RGB with nothing recorded about a colour transformation.
CameraColour = Literal["raw", "off", "undone", "unknown"]
# The states in which nothing mixed a clipped channel's lost excess into the others.
UNMIXED_AFTER_CLIP = frozenset({"raw", "off"})


@dataclass
class AlignRecord:
    """Everything ``reloblur align`` records about one pair.

    ``homography_blur_to_sharp`` maps B's full-resolution input pixels to S's, after
    ``radial_distortion`` has moved them about B's centre by ``k r^2`` of their offset (``r``:
    distance over the half-diagonal; 0 where the lenses agree); ``crop`` is
    ``[x, y, width, height]`` on B's input grid; ``output_size`` is ``[width, height]``.
    """

    source: AlignSource
    qa_status: str
    flags: list[str]
    homography_blur_to_sharp: list[list[float]]
    color_matrix: list[list[float]]
    color_offset: list[float]
    gain: float
    color_mode: str
    input_size: list[int]
    crop: list[int]
    output_size: list[int]
    qa: AlignQA
    software: str = ""
    radial_distortion: float = 0.0
    # What each camera did to colour after its sensor clipped, as the session recorded it
    # (:data:`CameraColour`); None for pairs that were not captured as a session.
    camera_colour: dict[str, CameraColour] | None = None
    # Per camera, the colour matrix align undid on its RGB output (rows as the camera's
    # Gain00..Gain22; None for a camera whose was not undone), or None where none was.
    camera_matrices: dict[str, list[list[float]] | None] | None = None
    # S's gain per row of its own sensor (one value per input row of S) that flattened the
    # bands a light flickering across its rolling readout left, applied to S before its
    # colour matrix; None where no such bands were found
    flicker_rows: list[float] | None = None
    # how S's image was mirrored relative to B's before it was aligned: "none", "horizontal"
    # or "vertical" (a beam splitter reflects one camera's view); the homography includes it
    mirror_sharp: str = "none"
    # the instant of B's exposure S was exposed at ("start", "middle", "end"), as the session
    # recorded it (rig["s_phase"]); None for pairs that were not captured as a session
    s_phase: SPhase | None = None
    # the resume convention (reloblur.resume)
    status: str = "done"
    inputs: dict[str, Any] = field(default_factory=dict)
    params_digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to disk."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlignRecord:
        """The record of a JSON object; extra keys (newer writers) are ignored."""
        try:
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in data.items() if k in known}
            qa = dict(data["qa"])
            qa["registration"] = Registration(**qa["registration"])
            values["qa"] = AlignQA(**{k: v for k, v in qa.items() if k in {f.name for f in fields(AlignQA)}})
            values["source"] = AlignSource(**data["source"])
            values["s_phase"] = recorded_s_phase(values.get("s_phase"), "s_phase")
            return cls(**values)
        except (KeyError, TypeError) as exc:
            raise AlignRecordError(f"align sidecar lacks or mistypes a field ({exc})") from None
        except ReloblurError as exc:
            raise AlignRecordError(str(exc)) from None

    @classmethod
    def read(cls, path: Path) -> AlignRecord:
        """Read ``<id>.align.json``; :class:`AlignRecordError` names the file on any problem."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return cls.from_dict(data)
        except OSError as exc:
            raise AlignRecordError(f"{path}: cannot read ({exc.strerror})") from None
        except (ValueError, AlignRecordError) as exc:
            raise AlignRecordError(f"{path}: {exc}") from None

    def write(self, path: Path) -> None:
        """Write atomically (the sidecar marks the pair done, so it goes last)."""
        atomic_write_json(path, self.to_dict())
