"""GenICam pixel formats (PFNC names), parsed once.

``PixelFormat.parse("BayerRG12")`` says everything the toolkit needs: the layout (mono,
Bayer with its pattern, RGB/BGR with or without alpha), the significant bits, the
container the unpacked samples come in, and whether the samples are packed. Unpacked 10-,
12- and 14-bit formats are LSB-aligned in 16-bit containers, so their full scale is
``2**bits - 1``, not 65535. Packed formats (``Mono12p``, ``BayerRG12Packed``...) are refused
with a clear error rather than misread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

from reloblur.errors import ImageFormatError

Layout = Literal["mono", "bayer", "rgb", "bgr"]
_NAME = re.compile(r"^(?P<kind>Mono|Bayer(?P<pattern>RG|GR|GB|BG)|RGBa|BGRa|RGB|BGR)(?P<bits>\d+)(?P<packed>p|Packed)?$",
                   re.IGNORECASE)


@dataclass(frozen=True)
class PixelFormat:
    """A parsed pixel format.

    Attributes
    ----------
    name
        The PFNC name as given.
    layout
        ``mono``, ``bayer``, ``rgb`` or ``bgr``.
    pattern
        The Bayer pattern's first row (``RG``, ``GR``, ``GB``, ``BG``), else ``None``.
    bits
        Significant bits per sample.
    alpha
        True for ``RGBa``/``BGRa`` (the alpha plane is dropped when decoded).
    """

    name: str
    layout: Layout
    pattern: str | None
    bits: int
    alpha: bool = False

    @classmethod
    def parse(cls, name: str) -> PixelFormat:
        """Parse a PFNC name; :class:`ImageFormatError` naming it when unsupported.

        >>> PixelFormat.parse("BayerRG12")
        PixelFormat(name='BayerRG12', layout='bayer', pattern='RG', bits=12, alpha=False)
        >>> PixelFormat.parse("BayerRG12").full_scale
        4095
        """
        match = _NAME.match(name.strip())
        if not match:
            raise ImageFormatError(f"unsupported pixel format {name!r} (Mono, Bayer.., RGB, BGR; 8 to 16 bits)")
        if match["packed"]:
            raise ImageFormatError(f"packed pixel format {name!r} is not supported: set the camera to the "
                                   f"unpacked {name[: match.start('packed')]} instead")
        bits = int(match["bits"])
        if not 8 <= bits <= 16:
            raise ImageFormatError(f"pixel format {name!r}: {bits} bits per sample is not supported (8 to 16)")
        kind = match["kind"].lower()
        if match["pattern"]:
            return cls(name, "bayer", match["pattern"].upper(), bits)
        layout: Layout = "mono" if kind == "mono" else ("bgr" if kind.startswith("bgr") else "rgb")
        return cls(name, layout, None, bits, alpha=kind.endswith("a"))

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """The container of an unpacked sample: uint8 for 8 bits, else uint16."""
        return np.uint8 if self.bits == 8 else np.uint16

    @property
    def full_scale(self) -> int:
        """The largest sample value: ``2**bits - 1``."""
        return 2**self.bits - 1

    @property
    def raw(self) -> bool:
        """Mono or Bayer: the sensor's own samples, which a camera's colour transformation
        (applied to processed RGB output only) never touches."""
        return self.layout in ("mono", "bayer")

    @property
    def channels(self) -> int:
        """Samples per pixel as delivered (alpha included)."""
        return 1 if self.raw else (4 if self.alpha else 3)

    @property
    def stored_name(self) -> str:
        """The format of what is stored after decoding: alpha dropped, colour in RGB order."""
        if self.layout in ("rgb", "bgr"):
            return f"RGB{self.bits}"
        return self.name
