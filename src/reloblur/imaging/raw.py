"""Decoding camera data to linear RGB: session frames (Mono/Bayer/RGB), TIFF/PNG, camera raw.

Both cameras must go through identical, fixed settings so that their differences are the
cameras', not the decoder's: linear output (no gamma), no auto-brightness, fixed unit white
balance, full 16-bit range. Gamma is applied only when writing the final 8-bit images.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal, get_args

import cv2
import numpy as np

from reloblur.errors import ImageFormatError, ImageReadError
from reloblur.imaging.imageio import (
    decode_image,
    ensure_rgb,
    png_declared_transfer,
    read_bytes,
    srgb_to_linear,
    to_float,
)
from reloblur.imaging.pixel_formats import PixelFormat

RAW_SUFFIXES = (".dng", ".nef", ".cr2", ".cr3", ".arw", ".raf", ".orf", ".rw2", ".pef", ".srw")
BAYER_PATTERNS = ("RG", "GR", "GB", "BG")  # the first two pixels of the first row
# OpenCV names Bayer codes by the second row; these map each pattern to the code that
# returns RGB for it (verified against mosaic() in the tests).
# Edge-aware interpolation: plain bilinear leaves colour fringes at edges that differ
# between B (never resampled) and S (warped), which would read as misalignment.
_DEMOSAIC = {
    "RG": cv2.COLOR_BayerBG2RGB_EA,
    "BG": cv2.COLOR_BayerRG2RGB_EA,
    "GR": cv2.COLOR_BayerGB2RGB_EA,
    "GB": cv2.COLOR_BayerGR2RGB_EA,
}


def mosaic(rgb: np.ndarray, pattern: str = "RG") -> np.ndarray:
    """Sample an ``(H, W, 3)`` image on a Bayer pattern (``RG`` = RGGB, ...): ``(H, W)``."""
    if pattern not in BAYER_PATTERNS:
        raise ImageFormatError(f"unknown Bayer pattern {pattern!r}")
    channel = {"R": 0, "G": 1, "B": 2}
    second_row = {"RG": "GB", "GR": "BG", "GB": "RG", "BG": "GR"}[pattern]
    out = np.empty(rgb.shape[:2], rgb.dtype)
    for dy, row in enumerate((pattern, second_row)):
        for dx, colour in enumerate(row):
            out[dy::2, dx::2] = rgb[dy::2, dx::2, channel[colour]]
    return out


def demosaic(raw: np.ndarray, pattern: str = "RG") -> np.ndarray:
    """Edge-aware demosaic of a uint8/uint16 Bayer image to ``(H, W, 3)`` RGB."""
    if pattern not in _DEMOSAIC:
        raise ImageFormatError(f"unknown Bayer pattern {pattern!r}")
    if raw.ndim != 2:
        raise ImageFormatError(f"a Bayer frame must be single-channel, got shape {raw.shape}")
    return cv2.cvtColor(raw, _DEMOSAIC[pattern])


def frame_to_linear(frame: np.ndarray, pixel_format: str, *, black_level: float = 0.0,
                    bit_depth: int | None = None, colour_matrix: np.ndarray | None = None) -> np.ndarray:
    """A recorded camera frame (session format) to linear RGB float32 in [0, 1].

    Parameters
    ----------
    frame
        As stored: ``(H, W)`` mono/Bayer or ``(H, W, 3|4)`` colour, uint8/uint16.
    pixel_format
        GenICam name: ``Mono8/16``, ``BayerRG8/12/16`` (any of RG, GR, GB, BG), ``RGB8/16``,
        ``BGR8``, ``RGBa8``...
    black_level
        Sensor black level in the frame's integer units, subtracted before scaling.
    bit_depth
        Significant bits, when they differ from what the pixel format's name says;
        default: the name's (``BayerRG12`` is 12-bit data, LSB-aligned in uint16, so full
        white is 4095).
    colour_matrix
        ``(3, 3)`` the colour transformation the camera applied to its RGB output (the
        session's ``ColorTransformationMatrix``), undone (:func:`undo_colour_transformation`);
        ignored for mono and Bayer frames, which bypass it.
    """
    parsed = PixelFormat.parse(pixel_format)
    planes = 1 if frame.ndim == 2 else frame.shape[2]
    if parsed.raw != (planes == 1):
        raise ImageFormatError(f"pixel format {pixel_format} does not match a frame of {planes} channel(s)")
    full_scale = float(2 ** (bit_depth or parsed.bits) - 1)
    if frame.dtype.kind in "ui" and frame.size and int(frame.max()) > full_scale:
        raise ImageFormatError(f"pixel format {pixel_format}: values up to {int(frame.max())} exceed its "
                               f"{bit_depth or parsed.bits}-bit full scale ({int(full_scale)})")
    if not math.isfinite(black_level) or not 0 <= black_level < full_scale:
        raise ImageFormatError(f"black level {black_level!r} is outside [0, {int(full_scale)})")
    if parsed.layout == "bayer":
        assert parsed.pattern is not None
        image = demosaic(frame, parsed.pattern)
    elif parsed.layout == "bgr":
        image = frame[:, :, [2, 1, 0]]
    else:
        image = ensure_rgb(frame)
    linear = np.clip((image.astype(np.float32) - black_level) / (full_scale - black_level), 0.0, 1.0)
    if colour_matrix is not None and not parsed.raw:
        return undo_colour_transformation(linear, colour_matrix)
    return linear


def checked_colour_matrix(matrix: object) -> np.ndarray:
    """``matrix`` as a ``(3, 3)`` float64 array that :func:`undo_colour_transformation` can
    invert; :class:`ImageFormatError` naming it when it is not a finite, invertible 3x3."""
    try:
        m = np.asarray(matrix, np.float64)
    except (TypeError, ValueError):
        raise ImageFormatError(f"colour matrix {matrix!r}: need a finite 3x3 matrix") from None
    if m.shape != (3, 3) or not np.isfinite(m).all():
        raise ImageFormatError(f"colour matrix {np.asarray(matrix).tolist()!r}: need a finite 3x3 matrix")
    if np.linalg.cond(m) > 1e6:
        raise ImageFormatError(f"colour matrix {m.tolist()!r} is singular: the camera's colours cannot be undone")
    return m


def undo_colour_transformation(linear: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The sensor's linear RGB from a camera's RGB output through its own colour matrix.

    A camera applies its matrix after the sensor clips, so the two cameras' colours are no
    longer related by the simple crosstalk ``align``'s colour fit models, and what a clipped
    channel lost is mixed into the others, where the mask step reads it as a difference
    between the cameras. The inverse puts every pixel whose output did not clip back where
    the sensor had it. Where the output clipped (with a typical matrix, about wherever the
    sensor clipped a channel: a diagonal above 1 carries it past full scale unless the
    other channels are near full scale too), or clipped black (a negative term takes a
    saturated colour below zero), what it lost is lost, and the undone pixel is off along
    a column of the inverse, in every channel. ``align`` marks such pixels from the output
    (the clip map's output bits) and the mask step follows that loss along the column
    (flagging them as clipped instead, in one channel or all, hid more of the moving
    objects than it saved of the static ground). See ``docs/benchmarks.md`` for what
    undoing gains there.

    Parameters
    ----------
    linear
        ``(H, W, 3)`` float32 in [0, 1], the camera's RGB output in linear light.
    matrix
        ``(3, 3)`` rows as the camera's ``Gain00``..``Gain22``: output = matrix @ sensor.

    Returns
    -------
    np.ndarray
        ``(H, W, 3)`` float32 in [0, 1].

    Raises
    ------
    ImageFormatError
        ``matrix`` is not a finite, invertible 3x3 matrix.

    Examples
    --------
    >>> m = np.array([[1.6, -0.4, -0.2], [-0.3, 1.5, -0.2], [-0.1, -0.5, 1.6]])
    >>> sensor = np.array([[[0.2, 0.5, 0.3], [1.0, 0.5, 0.3]]], np.float32)  # red clipped in the second
    >>> output = np.clip(np.einsum("ij,hwj->hwi", m, sensor), 0, 1).astype(np.float32)
    >>> np.round(undo_colour_transformation(output, m).astype(float), 4).tolist()  # the second's output clipped too
    [[[0.2, 0.5, 0.3], [0.7713, 0.4503, 0.2702]]]
    """
    m = checked_colour_matrix(matrix)
    if linear.ndim != 3 or linear.shape[2] != 3:
        raise ImageFormatError(f"a colour matrix applies to RGB images, not an image of shape {linear.shape}")
    sensor = cv2.transform(np.ascontiguousarray(linear, np.float32), np.linalg.inv(m).astype(np.float32))
    return np.clip(sensor, 0.0, 1.0, out=sensor)


def decode_raw(path: str | os.PathLike[str]) -> np.ndarray:
    """Camera raw (DNG, NEF, CR2, ARW, ...) to linear RGB float32 with fixed settings.

    rawpy (LibRaw) with: linear gamma, no auto-brightness, unit white balance, 16-bit,
    camera-native colour space (no colour matrix: colour correction is fitted later
    between the two cameras), black level subtracted, AHD demosaic.
    """
    import rawpy

    path = Path(path)
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(
                gamma=(1, 1),
                no_auto_bright=True,
                output_bps=16,
                use_camera_wb=False,
                use_auto_wb=False,
                user_wb=[1.0, 1.0, 1.0, 1.0],
                output_color=rawpy.ColorSpace.raw,
                user_flip=0,
                adjust_maximum_thr=0.0,  # never rescale by the data maximum (differs per image)
            )
    except (rawpy.LibRawError, OSError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot decode camera raw ({exc})") from None
    return rgb.astype(np.float32) / 65535.0


InputTransfer = Literal["auto", "linear", "srgb"]
INPUT_TRANSFERS: tuple[str, ...] = get_args(InputTransfer)


def check_transfer(transfer: str) -> InputTransfer:
    """``transfer`` as an :data:`InputTransfer`, or :class:`ImageFormatError` naming the choices."""
    if transfer not in INPUT_TRANSFERS:
        raise ImageFormatError(f"unknown transfer {transfer!r}: use auto, linear or srgb")
    return transfer  # type: ignore[return-value]


def load_linear(path: str | os.PathLike[str], *, transfer: InputTransfer = "auto") -> np.ndarray:
    """Any supported image file to linear RGB float32 ``(H, W, 3)``.

    ``transfer`` says how stored values relate to light: ``linear``, ``srgb`` or ``auto``
    (what a PNG declares, :func:`png_declared_transfer`; otherwise camera raw and 16-bit
    files are linear, 8-bit files sRGB-encoded).
    """
    path = Path(path)
    if path.suffix.lower() in RAW_SUFFIXES:
        return decode_raw(path)
    data = read_bytes(path)
    return image_to_linear(decode_image(data, path), path, transfer=transfer, declared=png_declared_transfer(data))


def resolved_transfer(transfer: InputTransfer, dtype: np.dtype, declared: Literal["srgb", "linear"] | None = None
                      ) -> InputTransfer:
    """The transfer ``auto`` stands for: what the file declares
    (:func:`png_declared_transfer`), else sRGB for 8-bit codes and linear for the rest."""
    if transfer != "auto":
        return transfer
    return declared or ("srgb" if dtype == np.uint8 else "linear")


def image_to_linear(image: np.ndarray, path: str | os.PathLike[str], *,
                    transfer: InputTransfer = "auto", declared: Literal["srgb", "linear"] | None = None
                    ) -> np.ndarray:
    """A decoded image file (:func:`read_image`) to linear RGB float32, as :func:`load_linear`
    does; ``path`` names it in errors, ``declared`` is what the file says of its transfer
    (:func:`png_declared_transfer`), which ``auto`` follows."""
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        bad = int((~np.isfinite(image)).sum())
        raise ImageReadError(f"{path}: {bad} non-finite (NaN or infinite) pixel value(s)")
    rgb = ensure_rgb(image)
    transfer = resolved_transfer(transfer, image.dtype, declared)
    if transfer == "srgb":
        return srgb_to_linear(rgb)  # integer codes: an exact table
    if transfer != "linear":
        raise ImageFormatError(f"unknown transfer {transfer!r}: use auto, linear or srgb")
    return to_float(rgb)
