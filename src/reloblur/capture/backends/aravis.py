"""Cameras through Aravis (GigE Vision and USB3 Vision on Linux), via PyGObject.

Features are addressed by their GenICam names with the usual aliases (``ExposureTime`` or
``ExposureTimeAbs``, ``Gain`` or ``GainRaw``) and read back after every write. Frames come
from an Aravis stream with a small pool of buffers; each buffer's data is copied out and
the buffer pushed back at once. ``fake=True`` enables Aravis's fake camera (``Fake_1``),
whose node map has real trigger, exposure and timestamp features; it may be opened twice
to play B and S, which real devices may not.
"""

from __future__ import annotations

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
    decode_component,
    stored_format,
)

BUFFERS = 8


def _aravis():
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as exc:
        raise CameraError(
            "the aravis backend needs Aravis 0.8 and PyGObject: apt install gir1.2-aravis-0.8 "
            f"and pip install 'reloblur[aravis]' ({exc})"
        ) from None
    return Aravis


class AravisCamera(NodeMapCamera):
    """One camera opened through Aravis; buffers are copied out before they are queued again."""
    def __init__(self, aravis: Any, info: DeviceInfo):
        self._arv = aravis
        self.info = info
        try:
            self._camera = aravis.Camera.new(info.id)
        except Exception as exc:
            raise CameraError(f"cannot open camera {info.id}: {exc}") from None
        self._device = self._camera.get_device()
        self._stream = None
        self._closed = False
        self._pixel_format = "Mono8"

    def _check(self) -> None:
        if self._closed:
            raise CameraGoneError(f"camera {self.info.model} {self.info.id} is gone (closed)")

    def _lookup(self, alias: str) -> Any:
        node = self._device.get_feature(alias)
        return node if node is not None and node.is_implemented() else None

    def _access(self, node: Any) -> tuple[bool, bool]:
        mode = node.get_actual_access_mode()
        modes = self._arv.GcAccessMode
        return mode in (modes.RO, modes.RW), mode in (modes.WO, modes.RW)

    def _value(self, alias: str, node: Any) -> Any:
        arv = self._arv
        if isinstance(node, arv.GcFloatNode):
            return self._device.get_float_feature_value(alias)
        if isinstance(node, (arv.GcIntegerNode,)):
            return self._device.get_integer_feature_value(alias)
        if isinstance(node, arv.GcBoolean):
            return self._device.get_boolean_feature_value(alias)
        return self._device.get_string_feature_value(alias)

    def _execute(self, alias: str, node: Any) -> None:
        self._device.execute_command(alias)

    def set(self, name: str, value: Any) -> Any:
        """Write a standard feature and return the value the camera applied (read back)."""
        self._check()
        alias, node = self._node(name)
        if node is None:
            raise CameraError(f"{self.info.id}: camera has no {name} feature")
        arv = self._arv
        try:
            if isinstance(node, arv.GcFloatNode):
                self._device.set_float_feature_value(alias, float(value))
            elif isinstance(node, arv.GcIntegerNode):
                self._device.set_integer_feature_value(alias, int(round(float(value))))
            elif isinstance(node, arv.GcBoolean):
                self._device.set_boolean_feature_value(alias, bool(value))
            else:
                self._device.set_string_feature_value(alias, str(value))
        except Exception as exc:
            raise CameraError(f"{self.info.id}: cannot set {alias} to {value!r} ({exc})") from None
        return self._value(alias, node)

    def start(self) -> None:
        """Create the stream with its buffer pool and start acquisition."""
        self._check()
        self._pixel_format = str(self._device.get_string_feature_value("PixelFormat"))
        self._camera.set_acquisition_mode(self._arv.AcquisitionMode.CONTINUOUS)
        stream = self._camera.create_stream(None, None)
        payload = self._camera.get_payload()
        for _ in range(BUFFERS):
            stream.push_buffer(self._arv.Buffer.new_allocate(payload))
        self._stream = stream
        self._camera.start_acquisition()

    def stop(self) -> None:
        """Stop acquisition (idempotent)."""
        if self._stream is not None and not self._closed:
            try:
                self._camera.stop_acquisition()
            except Exception:
                pass

    def software_trigger(self) -> None:
        """Execute ``TriggerSoftware``."""
        self._check()
        self._camera.software_trigger()

    def fetch(self, timeout_s: float = 2.0) -> Frame:
        """The next frame, copied out of its buffer; :class:`FrameTimeout` or :class:`CameraGoneError`."""
        self._check()
        if self._stream is None:
            raise CameraError(f"{self.info.id}: acquisition not started")
        buffer = self._stream.timeout_pop_buffer(int(timeout_s * 1e6))
        self._check()  # closed while we waited
        if buffer is None:
            raise FrameTimeout(f"{self.info.id}: no frame within {timeout_s} s")
        try:
            if buffer.get_status() != self._arv.BufferStatus.SUCCESS:
                raise FrameTimeout(f"{self.info.id}: incomplete frame ({buffer.get_status().value_nick})")
            data = np.frombuffer(buffer.get_data(), np.uint8)
            width, height = buffer.get_image_width(), buffer.get_image_height()
            components = 3 if self._pixel_format.upper().startswith(("RGB", "BGR")) else 1
            image = decode_component(data, width, height, components, self._pixel_format)
            stamp = int(buffer.get_timestamp()) or None
            return Frame(image, stored_format(self._pixel_format), int(buffer.get_frame_id()), stamp, time.time_ns())
        finally:
            self._stream.push_buffer(buffer)  # back to the camera at once: the data is copied

    def close(self) -> None:
        """Stop and release the camera (idempotent)."""
        if not self._closed:
            self.stop()
            self._closed = True
            self._stream = None
            self._camera = None


class AravisBackend(CameraBackend):
    """Cameras found by Aravis (GigE Vision, USB3 Vision; ``fake=True`` adds Aravis's fake camera)."""
    name = "aravis"

    def __init__(self, *, fake: bool = False):
        self._arv = _aravis()
        if fake:
            self._arv.enable_interface("Fake")
        self.shared_devices = fake
        self._arv.update_device_list()

    def devices(self) -> list[DeviceInfo]:
        """The devices Aravis sees, in its order."""
        arv = self._arv
        return [
            DeviceInfo(i, arv.get_device_vendor(i) or "", arv.get_device_model(i) or "",
                       arv.get_device_serial_nbr(i) or "", arv.get_device_id(i) or "",
                       arv.get_device_physical_id(i) or "", "")
            for i in range(arv.get_n_devices())
        ]

    def open(self, selector: str) -> Camera:
        """Open the device ``selector`` names (index, serial, user-defined name or id)."""
        return AravisCamera(self._arv, self.select(selector))

    def close(self) -> None:
        """Shut Aravis down."""
        self._arv.shutdown()
