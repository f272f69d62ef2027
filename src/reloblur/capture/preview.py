"""``reloblur capture preview``: live numbers to set up the rig (focus, exposure, balance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from reloblur.atomic import atomic_write_bytes
from reloblur.capture.cameras import Camera, Frame
from reloblur.errors import ReloblurError
from reloblur.imaging.pixel_formats import PixelFormat
from reloblur.imaging.raw import demosaic

SPARK = " ▁▂▃▄▅▆▇█"


@dataclass
class FrameStats:
    """What a rig builder needs from one frame."""

    fps: float
    mean: float  # fraction of full scale
    saturated_percent: float
    focus: float  # variance of the Laplacian of the grey image (higher = sharper)
    histogram: list[float] = field(default_factory=list)  # 16 bins, fractions

    def sparkline(self) -> str:
        """The histogram as a line of block characters."""
        top = max(self.histogram) or 1.0
        return "".join(SPARK[int(round(v / top * (len(SPARK) - 1)))] for v in self.histogram)


def frame_stats(frame: Frame, previous_host_ns: int | None) -> FrameStats:
    """Live-view statistics of one frame (rate from the previous frame's host time)."""
    data = frame.data
    full = float(np.iinfo(data.dtype).max)
    values = data.astype(np.float32) / full
    grey = values if values.ndim == 2 else values.mean(axis=2)
    focus = float(cv2.Laplacian(grey, cv2.CV_32F).var())
    histogram = np.histogram(grey, bins=16, range=(0.0, 1.0))[0] / grey.size
    fps = 0.0
    if previous_host_ns is not None and frame.host_timestamp_ns > previous_host_ns:
        fps = 1e9 / (frame.host_timestamp_ns - previous_host_ns)
    return FrameStats(fps, float(grey.mean()), float((values >= 0.99).mean() * 100), focus, histogram.tolist())


def preview_frame(frame: Frame) -> np.ndarray:
    """An 8-bit RGB view of a frame for a preview JPEG (gamma for display)."""
    parsed = PixelFormat.parse(frame.pixel_format)
    data = frame.data
    if parsed.pattern is not None:
        data = demosaic(frame.data, parsed.pattern)
    data = data.astype(np.float32) / float(parsed.full_scale)
    if data.ndim == 2:
        data = np.repeat(data[:, :, None], 3, axis=2)
    return np.clip(np.sqrt(data) * 255, 0, 255).astype(np.uint8)


def run_preview(cameras: dict[str, Camera], *, frames: int | None, save: Path | None, render) -> dict[str, FrameStats]:
    """Fetch from every camera until ``frames`` each (or Ctrl-C); ``render(stats, ratio)`` shows them."""
    if frames is not None and frames < 1:
        raise ReloblurError(f"--frames {frames}: at least 1 (leave it out to run until Ctrl-C)")
    last: dict[str, int | None] = {role: None for role in cameras}
    stats: dict[str, FrameStats] = {}
    for camera in cameras.values():
        camera.start()
    count = 0
    try:
        while frames is None or count < frames:
            for role, camera in cameras.items():
                frame = camera.fetch(timeout_s=5.0)
                stats[role] = frame_stats(frame, last[role])
                last[role] = frame.host_timestamp_ns
                if save is not None:
                    save.mkdir(parents=True, exist_ok=True)
                    ok, jpeg = cv2.imencode(".jpg", preview_frame(frame)[:, :, ::-1])
                    if ok:
                        atomic_write_bytes(save / f"preview_{role}.jpg", jpeg.tobytes(), fsync=False)
            ratio = stats["B"].mean / stats["S"].mean if "B" in stats and "S" in stats and stats["S"].mean > 0 else None
            render(stats, ratio)
            count += 1
    except KeyboardInterrupt:
        pass
    finally:
        for camera in cameras.values():
            camera.stop()
    return stats
