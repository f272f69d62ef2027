"""Basler cameras through pypylon, the official binding (its wheels bundle the pylon runtime).

Features are addressed by their GenICam names with the usual aliases (``ExposureTime`` or
``ExposureTimeAbs``, ``Gain`` or ``GainRaw``) and read back after every write. Each frame
is copied out of its grab result before the result is released to the camera. Basler's
legacy names for unpacked colour formats (``RGB8Packed`` is three bytes a pixel) are
recorded under their PFNC names (``RGB8``).

``emulate=N`` sets ``PYLON_CAMEMU=N`` before the transport layers load: pylon then offers
N emulated cameras (device class ``BaslerCamEmu``) whose node map has the trigger
features, and which deliver a frame only when triggered. Their device timestamps are 0
(recorded as none); their frame counter (``BlockID``) counts from 0.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from reloblur.capture.cameras import (
    Camera,
    CameraBackend,
    CameraError,
    CameraGoneError,
    DeviceInfo,
    Frame,
    FrameTimeout,
    NodeMapCamera,
    stored_format,
)

# Basler's (GigE Vision 1.x) names of formats PFNC names differently; none is bit-packed.
_BASLER_NAMES = {"RGB8Packed": "RGB8", "BGR8Packed": "BGR8", "RGB16Packed": "RGB16", "BGRA8Packed": "BGRa8",
                 "RGBA8Packed": "RGBa8"}


def pfnc_name(basler_name: str) -> str:
    """The PFNC name of a Basler pixel format name.

    >>> pfnc_name("RGB8Packed"), pfnc_name("BayerRG12")
    ('RGB8', 'BayerRG12')
    """
    return _BASLER_NAMES.get(basler_name, basler_name)


def _pylon(emulate: int) -> Any:
    if emulate:
        # Read when the transport layers load, so set before the first import.
        os.environ["PYLON_CAMEMU"] = str(int(emulate))
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise CameraError(f"the pylon backend needs pypylon: pip install 'reloblur[pylon]' ({exc})") from None
    return pylon, genicam


class PylonCamera(NodeMapCamera):
    """One camera opened through pylon; every frame is copied before its grab result is released."""

    def __init__(self, pylon: Any, genicam: Any, device: Any, info: DeviceInfo):
        self._pylon, self._genicam = pylon, genicam
        self.info = info
        try:
            self._camera = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(device))
            self._camera.Open()
        except Exception as exc:
            raise CameraError(f"cannot open camera {info.serial or info.id}: {exc}") from None
        self._nodes = self._camera.GetNodeMap()
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise CameraGoneError(f"camera {self.info.model} {self.info.serial} is gone (closed)")

    def _lookup(self, alias: str) -> Any:
        try:
            node = self._nodes.GetNode(alias)
        except Exception:
            return None
        return node if node is not None and self._genicam.IsImplemented(node) else None

    def _access(self, node: Any) -> tuple[bool, bool]:
        return bool(self._genicam.IsReadable(node)), bool(self._genicam.IsWritable(node))

    def _value(self, alias: str, node: Any) -> Any:
        value = node.ToString() if isinstance(node, self._genicam.IEnumeration) else node.GetValue()
        return pfnc_name(value) if alias == "PixelFormat" else value

    def _execute(self, alias: str, node: Any) -> None:
        node.Execute()

    def set(self, name: str, value: Any) -> Any:
        """Write a standard feature and return the value the camera applied (read back)."""
        self._check()
        alias, node = self._node(name)
        if node is None:
            raise CameraError(f"{self.info.serial}: camera has no {name} feature")
        genicam = self._genicam
        try:
            if isinstance(node, genicam.IEnumeration):
                wanted = str(value)
                symbols = list(node.Symbolics)
                if wanted not in symbols:  # a PFNC name the camera knows by its Basler name
                    wanted = next((b for b, p in _BASLER_NAMES.items() if p == wanted and b in symbols), wanted)
                node.FromString(wanted)
            elif isinstance(node, genicam.IFloat):
                node.SetValue(float(value))
            elif isinstance(node, genicam.IInteger):
                node.SetValue(int(round(float(value))))
            elif isinstance(node, genicam.IBoolean):
                node.SetValue(bool(value))
            else:
                node.FromString(str(value))
        except Exception as exc:
            raise CameraError(f"{self.info.serial}: cannot set {alias} to {value!r} ({exc})") from None
        return self._value(alias, node)

    def start(self) -> None:
        """Start grabbing, one frame per buffer in order (no frame dropped for a newer one),
        and return once the camera would accept a frame trigger: a trigger that arrives
        while grabbing is still starting is lost, and with it the pair."""
        self._check()
        self._camera.StartGrabbing(self._pylon.GrabStrategy_OneByOne)
        self._wait_trigger_ready()

    def _wait_trigger_ready(self, timeout_ms: int = 1000) -> bool:
        try:
            return bool(self._camera.WaitForFrameTriggerReady(timeout_ms, self._pylon.TimeoutHandling_Return))
        except Exception:  # a camera without the trigger-wait status: nothing to wait for
            return True

    def stop(self) -> None:
        """Stop grabbing (idempotent)."""
        if not self._closed and self._camera.IsGrabbing():
            self._camera.StopGrabbing()

    def software_trigger(self) -> None:
        """Execute ``TriggerSoftware``."""
        self._check()
        self._wait_trigger_ready()
        try:
            self._nodes.GetNode("TriggerSoftware").Execute()
        except Exception as exc:
            raise CameraError(f"{self.info.serial}: TriggerSoftware failed ({exc})") from None

    def fetch(self, timeout_s: float = 2.0) -> Frame:
        """The next frame, copied out of its grab result; :class:`FrameTimeout` or
        :class:`CameraGoneError`."""
        self._check()
        if not self._camera.IsGrabbing():
            raise CameraError(f"{self.info.serial}: acquisition not started")
        result = self._camera.RetrieveResult(max(1, int(timeout_s * 1000)), self._pylon.TimeoutHandling_Return)
        self._check()  # closed while we waited
        if result is None or not result.IsValid():
            raise FrameTimeout(f"{self.info.serial}: no frame within {timeout_s} s")
        try:
            if not result.GrabSucceeded():
                raise FrameTimeout(f"{self.info.serial}: grab failed ({result.GetErrorDescription()})")
            image = np.array(result.GetArray(), copy=True)  # the buffer goes back to the camera below
            name = pfnc_name(str(self._nodes.GetNode("PixelFormat").ToString()))
            if name.startswith("BGR"):
                image = np.ascontiguousarray(image[..., [2, 1, 0]])
                name = "RGB" + name[3:]
            if image.ndim == 3 and image.shape[2] == 4:
                image = np.ascontiguousarray(image[..., :3])
            stamp = int(result.TimeStamp) or None
            return Frame(image, stored_format(name), int(result.BlockID), stamp, time.time_ns())
        finally:
            result.Release()

    def close(self) -> None:
        """Stop and release the camera (idempotent)."""
        if not self._closed:
            try:
                self.stop()
                self._camera.Close()
            finally:
                self._closed = True


class PylonBackend(CameraBackend):
    """Cameras found by pylon (GigE, USB3; ``emulate=N`` adds N emulated cameras)."""

    name = "pylon"

    def __init__(self, *, emulate: int = 0):
        self._pylon, self._genicam = _pylon(emulate)
        self._factory = self._pylon.TlFactory.GetInstance()
        self._devices = list(self._factory.EnumerateDevices())

    def devices(self) -> list[DeviceInfo]:
        """The devices pylon sees, in its order."""
        return [
            DeviceInfo(i, d.GetVendorName(), d.GetModelName(), d.GetSerialNumber(), d.GetFullName(),
                       user_name=d.GetUserDefinedName() if d.IsUserDefinedNameAvailable() else "")
            for i, d in enumerate(self._devices)
        ]

    def open(self, selector: str) -> Camera:
        """Open the device ``selector`` names (index, serial, user-defined name or id)."""
        info = self.select(selector)
        return PylonCamera(self._pylon, self._genicam, self._devices[info.index], info)
