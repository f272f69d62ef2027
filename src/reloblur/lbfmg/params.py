"""The parameters of mask generation, apart from the algorithm: what a command line needs
to parse and show them without loading the numerical stack."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from reloblur.errors import ReloblurError

GainField = Literal["none", "global", "smooth"]
Transfer = Literal["srgb", "linear"]
# What a colour correction after the clip mixed into the channels beside a clipped one
# (:func:`reloblur.lbfmg.generate.generate_mask`).
Crosstalk = Literal["prior", "measured"]


class MaskParamsError(ReloblurError):
    """A mask parameter is out of range (names the parameter and the value)."""


@dataclass(frozen=True)
class MaskParams:
    """Parameters of :func:`generate_mask`.

    Thresholds are in predicted noise sigmas of the smoothed difference; sizes are fractions
    of the shorter image side (areas: of the image) so the same values fit 538x359 and
    2152x1436. The smallest region kept is the exception by default (``min_area=None``): a
    speck is what noise makes, and noise's blobs are as large as the smoothing footprint,
    in pixels, whatever the frame's size around them.
    """

    high_sigmas: float = 6.0  # seed threshold
    low_sigmas: float = 3.0  # growing threshold
    smooth_sigma: float = 1.5  # pixels, Gaussian smoothing of both images before differencing
    # px of misregistration forgiven by shifting S. 0: the edge-residual model (kappa |grad B|)
    # holds misregistration, and a shift would also explain real motion away (at an edge of
    # S some shifted neighbour always matches B's blend; on 8 pairs of the benchmark's
    # default row: mean IoU 0.71 with a 1 px shift, 0.89 without).
    shift_tolerance: int = 0
    close_radius: float = 0.01  # of the short side
    # of the image; None: SPECK_FOOTPRINTS smoothing footprints (lbfmg.generate.min_region_pixels)
    min_area: float | None = None
    dilate_radius: float = 0.0  # of the short side, safety margin added at the end
    fill_holes: bool = True
    gain_field: GainField = "smooth"
    transfer: Transfer = "srgb"  # encoding of the input images

    def __post_init__(self) -> None:
        numbers = {"high_sigmas": self.high_sigmas, "low_sigmas": self.low_sigmas,
                   "smooth_sigma": self.smooth_sigma, "close_radius": self.close_radius,
                   "dilate_radius": self.dilate_radius}
        if self.min_area is not None:
            numbers["min_area"] = self.min_area
        for name, value in numbers.items():
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise MaskParamsError(f"mask parameter {name} = {value!r}: must be a finite number >= 0")
        if not 0 < self.low_sigmas <= self.high_sigmas:
            raise MaskParamsError(f"need 0 < low_sigmas ({self.low_sigmas}) <= high_sigmas ({self.high_sigmas})")
        if self.smooth_sigma <= 0:
            raise MaskParamsError(f"smooth_sigma = {self.smooth_sigma}: must be > 0")
        if not 0 <= self.shift_tolerance <= 3:
            raise MaskParamsError(f"shift_tolerance = {self.shift_tolerance}: must be 0..3 pixels")
        if self.close_radius > 0.2 or self.dilate_radius > 0.2 or (self.min_area or 0.0) > 0.5:
            raise MaskParamsError("close_radius and dilate_radius are fractions of the short side (<= 0.2), "
                                  "min_area a fraction of the image (<= 0.5)")
        if self.gain_field not in ("none", "global", "smooth"):
            raise MaskParamsError(f"gain_field {self.gain_field!r}: choose none, global or smooth")
        if self.transfer not in ("srgb", "linear"):
            raise MaskParamsError(f"transfer {self.transfer!r}: choose srgb or linear")

    def to_dict(self) -> dict[str, Any]:
        """JSON form (recorded in each mask's sidecar and its resume digest)."""
        return asdict(self)
