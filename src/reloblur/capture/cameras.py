"""The camera interface every backend implements, and what frames look like.

Backends live in :mod:`reloblur.capture.backends` and are chosen by name through
:mod:`reloblur.capture.registry`; code after ``open_backend`` is the same for all of them.
This module imports no SDK.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reloblur.errors import ReloblurError
from reloblur.imaging.pixel_formats import PixelFormat

# Standard feature names (SFNC) a capture cares about, with the aliases older cameras use.
SFNC_FEATURES: dict[str, tuple[str, ...]] = {
    "ExposureTime": ("ExposureTime", "ExposureTimeAbs"),
    "Gain": ("Gain", "GainRaw"),
    "PixelFormat": ("PixelFormat",),
    "TriggerMode": ("TriggerMode",),
    "TriggerSource": ("TriggerSource",),
    "TriggerActivation": ("TriggerActivation",),
    "ExposureAuto": ("ExposureAuto",),
    "GainAuto": ("GainAuto",),
    "BalanceWhiteAuto": ("BalanceWhiteAuto",),
    "ChunkModeActive": ("ChunkModeActive",),
    "DeviceTemperature": ("DeviceTemperature",),
}
TRIGGER_FEATURES = ("TriggerMode", "TriggerSource")
# ColorTransformationValueSelector's entries of the 3x3 RGB-to-RGB matrix, row by row.
COLOUR_GAINS = tuple(f"Gain{row}{col}" for row in range(3) for col in range(3))


class CameraError(ReloblurError):
    """A camera could not be found, opened or configured."""


class CameraGoneError(CameraError):
    """A camera stopped answering (unplugged, powered off, destroyed) mid-run."""


class FrameTimeout(CameraError):
    """No frame arrived in time."""


@dataclass(frozen=True)
class DeviceInfo:
    """What identifies a device before it is opened."""

    index: int
    vendor: str
    model: str
    serial: str
    id: str
    user_name: str = ""
    access: str = ""

    def matches(self, selector: str) -> bool:
        """True if ``selector`` is this device's index, serial, user-defined name or id."""
        return selector in (str(self.index), self.serial, self.user_name, self.id) and selector != ""


@dataclass(frozen=True)
class FeatureInfo:
    """A standard feature on one camera: the node that implements it and its state."""

    name: str
    node: str | None
    readable: bool = False
    writable: bool = False
    value: Any = None

    @property
    def present(self) -> bool:
        """True when the camera implements the feature under some alias."""
        return self.node is not None


@dataclass
class Frame:
    """One acquired image, copied out of the camera's buffer."""

    data: np.ndarray  # (H, W) or (H, W, C), uint8 / uint16
    pixel_format: str
    frame_id: int | None
    timestamp_ns: int | None  # device clock, None when the camera gives none
    host_timestamp_ns: int = field(default_factory=time.time_ns)


class Camera(ABC):
    """An opened camera. Use as a context manager; ``close`` is idempotent."""

    info: DeviceInfo

    @abstractmethod
    def feature(self, name: str) -> FeatureInfo:
        """State of standard feature ``name`` (aliases resolved)."""

    def features(self) -> dict[str, FeatureInfo]:
        """Every standard feature's state, by standard name."""
        return {name: self.feature(name) for name in SFNC_FEATURES}

    @abstractmethod
    def set(self, name: str, value: Any) -> Any:
        """Write a standard feature and return what the camera actually applied (read back)."""

    @abstractmethod
    def start(self) -> None:
        """Start acquisition."""

    @abstractmethod
    def stop(self) -> None:
        """Stop acquisition."""

    @abstractmethod
    def fetch(self, timeout_s: float = 2.0) -> Frame:
        """The next frame; raises :class:`FrameTimeout` or :class:`CameraGoneError`."""

    def software_trigger(self) -> None:
        """Fire the camera's software trigger; cameras without one raise :class:`CameraError`."""
        raise CameraError(f"{self.info.model} {self.info.serial}: no software trigger")

    def execute(self, name: str) -> None:
        """Run command feature ``name`` (``UserSetLoad``, ...); :class:`CameraError` where
        the camera has no such command."""
        raise CameraError(f"{self.info.model} {self.info.serial}: no {name} command")

    @abstractmethod
    def close(self) -> None:
        """Release the camera (idempotent)."""

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class NodeMapCamera(Camera):
    """A camera whose features are GenICam nodes (harvesters, Aravis, pylon).

    :meth:`feature` resolves the standard names' aliases and reads access and value the
    same way for every SDK; a backend supplies four hooks: :meth:`_lookup` (the node of
    one name, or ``None`` where it is not implemented), :meth:`_access`, :meth:`_value` and
    :meth:`_execute`.
    """

    def _check(self) -> None:
        """Raise :class:`CameraGoneError` when the camera is gone (default: never checked)."""

    @abstractmethod
    def _lookup(self, alias: str) -> Any:
        """The implemented node called ``alias``, or ``None``."""

    @abstractmethod
    def _access(self, node: Any) -> tuple[bool, bool]:
        """Whether ``node`` is readable and writable now."""

    @abstractmethod
    def _value(self, alias: str, node: Any) -> Any:
        """The current value of ``node`` (may raise: the caller treats that as unknown)."""

    @abstractmethod
    def _execute(self, alias: str, node: Any) -> None:
        """Run the command ``node`` (each SDK calls it its own way)."""

    def execute(self, name: str) -> None:
        """Run command feature ``name``; :class:`CameraError` naming the camera if it fails."""
        self._check()
        alias, node = self._node(name)
        if node is None:
            raise CameraError(f"{self.info.serial or self.info.id}: camera has no {name} command")
        try:
            self._execute(alias, node)
        except Exception as exc:
            raise CameraError(f"{self.info.serial or self.info.id}: {name} failed ({exc})") from None

    def _node(self, name: str) -> tuple[str, Any]:
        """The alias that implements standard feature ``name`` and its node (``None``: absent)."""
        for alias in SFNC_FEATURES.get(name, (name,)):
            node = self._lookup(alias)
            if node is not None:
                return alias, node
        return name, None

    def feature(self, name: str) -> FeatureInfo:
        """State of standard feature ``name`` (aliases resolved) as the node map reports it."""
        self._check()
        alias, node = self._node(name)
        if node is None:
            return FeatureInfo(name, None)
        readable, writable = self._access(node)
        try:
            value = self._value(alias, node) if readable else None
        except Exception:  # a node that refuses a read is a feature whose value is unknown
            value = None
        return FeatureInfo(name, alias, readable, writable, value)


class CameraBackend(ABC):
    """A source of cameras (a set of GenTL producers, the simulator, ...)."""

    name: str
    shared_devices: bool = False  # a device may be opened twice (emulated cameras only)

    @abstractmethod
    def devices(self) -> list[DeviceInfo]:
        """The devices this backend can open."""

    @abstractmethod
    def open(self, selector: str) -> Camera:
        """Open the device whose index, serial, user-defined name or id is ``selector``."""

    def select(self, selector: str) -> DeviceInfo:
        """The device ``selector`` names; :class:`CameraError` listing the devices if none does."""
        found = [d for d in self.devices() if d.matches(selector)]
        if not found:
            known = ", ".join(f"{d.index}: {d.serial or d.id}" for d in self.devices()) or "none"
            raise CameraError(f"no camera matches {selector!r} on backend {self.name} (devices: {known})")
        return found[0]

    def close(self) -> None:
        """Release the backend's resources."""
        return None

    def __enter__(self) -> CameraBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decode_component(data: np.ndarray, width: int, height: int, components: int, data_format: str) -> np.ndarray:
    """A GenTL payload component as an image array (a copy, safe after the buffer is queued).

    Mono and Bayer formats become ``(H, W)``; RGB8/BGR8 ``(H, W, 3)`` in RGB order; RGBa8 and
    BGRa8 drop the alpha plane. More than 8 bits come as uint16.
    """
    parsed = PixelFormat.parse(data_format)
    dtype = parsed.dtype
    flat = np.asarray(data).view(dtype) if np.asarray(data).dtype != dtype else np.asarray(data)
    count = max(1, int(components))
    expected = width * height * count
    if flat.size < expected:
        raise CameraError(f"{data_format} buffer holds {flat.size} values, {width}x{height}x{count} expected")
    image = flat[:expected].reshape(height, width, count) if count > 1 else flat[:expected].reshape(height, width)
    if count >= 3:
        image = image[:, :, :3]
        if parsed.layout == "bgr":
            image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


def stored_format(data_format: str) -> str:
    """The pixel format of what :func:`decode_component` returns (alpha dropped, RGB order)."""
    return PixelFormat.parse(data_format).stored_name
