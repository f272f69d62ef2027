"""Cameras through harvesters, on any GenTL producer (``.cti``).

Producers come from ``cti`` paths and from ``GENICAM_GENTL64_PATH`` (colon-separated
directories, as harvesters users expect). Buffers are copied inside
``with ia.fetch() as buffer:`` so the camera gets its buffer back at once. Harvesters
raises bare exceptions (e.g. ``IndexError`` after ``destroy()``) when a device vanishes;
they become :class:`CameraGoneError`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

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


def producer_paths(cti: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """Explicit ``.cti`` files, then every ``.cti`` in ``GENICAM_GENTL64_PATH`` directories."""
    paths = [Path(p) for p in cti]
    for directory in filter(None, os.environ.get("GENICAM_GENTL64_PATH", "").split(os.pathsep)):
        paths += sorted(Path(directory).glob("*.cti"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise CameraError(f"GenTL producer not found: {', '.join(missing)}")
    return paths


def _field(info: Any, name: str) -> str:
    # Producers leave many device-info fields unimplemented (they raise on access).
    try:
        value = getattr(info, name)
    except Exception:
        return ""
    return "" if value is None else str(value)


def _device_timestamp(buffer: Any) -> int | None:
    """The buffer's device timestamp in ns, or None where the producer has none."""
    try:
        stamp = int(buffer.timestamp_ns)
    except Exception:  # NotAvailableException and friends: "timestamps not supported"
        return None
    return stamp or None


class HarvestersCamera(NodeMapCamera):
    """One camera opened through a GenTL producer; buffers are copied inside ``fetch``'s context."""
    def __init__(self, acquirer: Any, info: DeviceInfo):
        self._ia = acquirer
        self.info = info
        self._closed = False

    def _lookup(self, alias: str) -> Any:
        node_map = self._ia.remote_device.node_map
        return getattr(node_map, alias) if hasattr(node_map, alias) else None

    def _access(self, node: Any) -> tuple[bool, bool]:
        from genicam.genapi import EAccessMode

        try:
            mode = node.get_access_mode()
        except Exception:
            mode = None
        return mode in (EAccessMode.RO, EAccessMode.RW), mode in (EAccessMode.WO, EAccessMode.RW)

    def _value(self, alias: str, node: Any) -> Any:
        return node.value

    def _execute(self, alias: str, node: Any) -> None:
        node.execute()

    def set(self, name: str, value: Any) -> Any:
        """Write a standard feature and return the value the camera applied (read back)."""
        alias, node = self._node(name)
        if node is None:
            raise CameraError(f"{self.info.serial}: camera has no {name} feature")
        try:
            node.value = value
            return node.value
        except Exception as exc:
            raise CameraError(f"{self.info.serial}: cannot set {alias} to {value!r} ({exc})") from None

    def start(self) -> None:
        """Start acquisition."""
        self._ia.start()

    def stop(self) -> None:
        """Stop acquisition (idempotent)."""
        try:
            self._ia.stop()
        except Exception:
            pass

    def fetch(self, timeout_s: float = 2.0) -> Frame:
        """The next frame, copied out of its buffer; :class:`FrameTimeout` or :class:`CameraGoneError`."""
        try:
            with self._ia.fetch(timeout=timeout_s) as buffer:
                host = time.time_ns()
                component = buffer.payload.components[0]
                image = decode_component(component.data, component.width, component.height,
                                         component.num_components_per_pixel, component.data_format)
                return Frame(image, stored_format(component.data_format), int(buffer.frame_id),
                             _device_timestamp(buffer), host)
        except CameraError:
            raise
        except Exception as exc:
            name = type(exc).__name__
            if "Timeout" in name:
                raise FrameTimeout(f"{self.info.serial}: no frame within {timeout_s} s") from None
            raise CameraGoneError(f"camera {self.info.model} {self.info.serial} is gone ({name}: {exc})") from None

    def close(self) -> None:
        """Stop and destroy the acquirer (idempotent)."""
        if not self._closed:
            self._closed = True
            self.stop()
            try:
                self._ia.destroy()
            except Exception:
                pass


class HarvestersBackend(CameraBackend):
    """Cameras behind GenTL producers (``.cti`` files, or those on ``GENICAM_GENTL64_PATH``)."""
    name = "harvesters"

    def __init__(self, cti: tuple[str, ...] | list[str] = ()):
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise CameraError("the harvesters backend needs: pip install 'reloblur[capture]'") from None
        paths = producer_paths(cti)
        if not paths:
            raise CameraError("no GenTL producer: give --cti PATH or set GENICAM_GENTL64_PATH")
        self._harvester = Harvester()
        for path in paths:
            self._harvester.add_file(str(path))
        self._harvester.update()

    def devices(self) -> list[DeviceInfo]:
        """The devices the producers report, in their order."""
        return [
            DeviceInfo(i, _field(d, "vendor"), _field(d, "model"), _field(d, "serial_number"), _field(d, "id_"),
                       _field(d, "user_defined_name"), _field(d, "access_status"))
            for i, d in enumerate(self._harvester.device_info_list)
        ]

    def open(self, selector: str) -> Camera:
        """Open the device ``selector`` names (index, serial, user-defined name or id)."""
        info = self.select(selector)
        try:
            acquirer = self._harvester.create(info.index)
        except Exception as exc:
            raise CameraError(f"cannot open camera {info.serial or info.id}: {exc}") from None
        return HarvestersCamera(acquirer, info)

    def close(self) -> None:
        """Reset harvesters (releases every producer)."""
        self._harvester.reset()
