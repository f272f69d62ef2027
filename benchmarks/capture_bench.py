"""Capture throughput: the sim backend at full ReLoBlur size through the real recorder.

Two 2152x1436 16-bit cameras (raw Bayer by default, as industrial cameras deliver) are
hardware-triggered through the sync-box emulator on a pseudo-terminal at 5 Hz for 60 s;
the frames go through the bounded queue and the writer thread into a session (atomic,
fsynced TIFFs). Reported: pairs kept (goal 100 %), the writer queue's high-water mark,
how often the trigger loop had to wait for the disk, and the write rate against the
disk's raw sequential write speed measured in the same run (the same bytes written with
one fsync at the end).

    python benchmarks/capture_bench.py                        # 60 s at 5 Hz
    python benchmarks/capture_bench.py --seconds 20 --rgb --json

``--burst`` measures the single-camera method's recorder instead (``capture --mode
burst``): a camera that hands out 1920x360 BayerRG12 frames with consecutive ids as fast as
they are fetched (nothing is rendered), K = 8 frames a burst, the exact sum and S written
by the writer thread (or every frame, ``--keep-frames``). Reported: the sustained frame
rate end to end and whether the fetch loop ever waited for the writer (a real camera would
then drop frames), against the raw sequential write of the same bytes.

    python benchmarks/capture_bench.py --burst --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reloblur.capture.burst import WRITERS, BurstCaptureOptions, capture_bursts
from reloblur.capture.cameras import Camera, CameraBackend, DeviceInfo, FeatureInfo, Frame
from reloblur.capture.recorder import CaptureOptions, capture, quick_rig
from reloblur.capture.registry import SimOptions, register_backend


def raw_write_speed(directory: Path, total_bytes: int) -> float:
    """MB/s of one sequential write of ``total_bytes`` plus fsync (the disk's ceiling)."""
    chunk = os.urandom(16 * 2**20)
    path = directory / "raw-speed.bin"
    start = time.perf_counter()
    with open(path, "wb") as handle:
        written = 0
        while written < total_bytes:
            handle.write(chunk)
            written += len(chunk)
        handle.flush()
        os.fsync(handle.fileno())
    seconds = time.perf_counter() - start
    path.unlink()
    return written / 2**20 / seconds


class InstantCamera(Camera):
    """Frames as fast as they are fetched: the recorder's own ceiling, no renderer."""

    def __init__(self, info: DeviceInfo, size: tuple[int, int]):
        self.info = info
        rng = np.random.default_rng(0)
        self._frames = [rng.integers(0, 4096, (size[1], size[0]), dtype=np.uint16) for _ in range(2)]
        self._values: dict[str, Any] = {"ExposureTime": 1960.0, "PixelFormat": "BayerRG12", "TriggerMode": "Off",
                                        "AcquisitionFrameRate": 500.0}
        self._id = 0

    def feature(self, name: str) -> FeatureInfo:
        if name not in self._values:
            return FeatureInfo(name, None)
        return FeatureInfo(name, name, True, True, self._values[name])

    def set(self, name: str, value: Any) -> Any:
        self._values[name] = value
        return value

    def start(self) -> None:
        self._id = 0

    def stop(self) -> None:
        pass

    def fetch(self, timeout_s: float = 2.0) -> Frame:
        self._id += 1
        return Frame(self._frames[self._id % 2], "BayerRG12", self._id, None)

    def close(self) -> None:
        pass


class InstantBackend(CameraBackend):
    name = "instant"

    def __init__(self, size: tuple[int, int]):
        self.size = size

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(0, "bench", "Instant", "FAST-0", "instant://0", "fast", "ReadWrite")]

    def open(self, selector: str) -> Camera:
        return InstantCamera(self.select(selector), self.size)


@dataclass(frozen=True)
class InstantOptions:
    size: tuple[int, int] = (1920, 360)


register_backend("instant", InstantOptions, lambda o: InstantBackend(o.size), "benchmark: frames as fast as fetched")


def burst_main(args: argparse.Namespace) -> None:
    width, height = (int(v) for v in args.size.lower().split("x"))
    frames = 8
    bursts = int(args.seconds * 500 / frames)  # what a 500 fps camera delivers in --seconds
    workdir = Path(tempfile.mkdtemp(prefix="burst-bench-", dir=args.dir))
    try:
        options = BurstCaptureOptions(out=workdir / "bursts", camera="0", backend=InstantOptions((width, height)),
                                      bursts=bursts, frames=frames, keep_frames=args.keep_frames,
                                      progress=not args.json, writers=args.writers)
        started = time.perf_counter()
        summary = capture_bursts(options)
        elapsed = time.perf_counter() - started
        written = sum(p.stat().st_size for p in (workdir / "bursts").rglob("*") if p.is_file())
        shutil.rmtree(workdir / "bursts")
        raw = raw_write_speed(workdir, written)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    fps = summary.recorded * frames / elapsed
    result = {"bursts": bursts, "recorded": summary.recorded, "frames_per_burst": frames, "seconds": elapsed,
              "sustained_fps": fps, "fetch_waits": summary.slowed, "queue_high_water": summary.queue_high_water,
              "write_mb_s": written / 2**20 / elapsed, "raw_sequential_mb_s": raw, "bytes_written": written,
              "size": args.size, "keep_frames": args.keep_frames, "writers": args.writers, "error": summary.error}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    kept = "every frame" if args.keep_frames else "the 32-bit sum and S"
    print(f"{bursts} bursts of {frames} frames, {args.size} BayerRG12, {kept}, {args.writers} writer(s); baseline: "
          "raw sequential write of the same bytes, same run")
    print(f"sustained {fps:.0f} frames/s ({summary.recorded} bursts in {elapsed:.1f} s), fetch waits "
          f"{summary.slowed}, queue high-water {summary.queue_high_water}")
    print(f"write {result['write_mb_s']:.0f} MB/s vs raw sequential {raw:.0f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=5.0)
    parser.add_argument("--size", default="2152x1436")
    parser.add_argument("--rgb", action="store_true", help="RGB16 frames (3x the bytes of Bayer)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--burst", action="store_true", help="the burst recorder (one fast camera), see above")
    parser.add_argument("--keep-frames", action="store_true", help="--burst: write every frame, not the sum and S")
    parser.add_argument("--writers", type=int, default=WRITERS, help="--burst: writer threads (baseline: 1)")
    args = parser.parse_args()
    if args.burst:
        if args.size == "2152x1436":
            args.size = "1920x360"
        burst_main(args)
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    pairs = int(args.seconds * args.rate)
    workdir = Path(tempfile.mkdtemp(prefix="capture-bench-", dir=args.dir))
    try:
        rig = quick_rig("SIM-B", "SIM-S", b_exposure_us=40000, s_exposure_us=2000, gain_db=0.0,
                        pixel_format="RGB16" if args.rgb else "BayerRG16", sync="sim", s_phase="middle",
                        rate_hz=args.rate, simulated_nd=True)
        options = CaptureOptions(session=workdir / "session", rig=rig, pairs=pairs, progress=not args.json,
                                 backend=SimOptions(size=(width, height), distinct_pairs=2))
        started = time.perf_counter()
        summary = capture(options)
        elapsed = time.perf_counter() - started
        written = sum(p.stat().st_size for p in (workdir / "session").rglob("*") if p.is_file())
        capture_mb_s = written / 2**20 / summary.seconds
        shutil.rmtree(workdir / "session")
        raw = raw_write_speed(workdir, written)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "pairs_planned": pairs, "pairs_kept": summary.recorded, "kept_percent": 100 * summary.recorded / pairs,
        "rejected": summary.rejected, "queue_high_water": summary.queue_high_water, "trigger_waits": summary.slowed,
        "seconds": elapsed, "achieved_rate_hz": summary.recorded / summary.seconds,
        "capture_write_mb_s": capture_mb_s, "raw_sequential_mb_s": raw,
        "fraction_of_raw": capture_mb_s / raw, "bytes_written": written, "size": args.size,
        "pixel_format": "RGB16" if args.rgb else "BayerRG16", "error": summary.error,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{pairs} pairs planned at {args.rate} Hz, 2 x {args.size} {result['pixel_format']}; "
          "baseline: raw sequential write of the same bytes, same run")
    print(f"kept {summary.recorded}/{pairs} ({result['kept_percent']:.1f} %), rejected {summary.rejected}, "
          f"queue high-water {summary.queue_high_water}, trigger waits {summary.slowed}, "
          f"achieved {result['achieved_rate_hz']:.2f} Hz")
    print(f"session write {capture_mb_s:.0f} MB/s vs raw sequential {raw:.0f} MB/s "
          f"({100 * result['fraction_of_raw']:.0f} % of the disk's ceiling)")


if __name__ == "__main__":
    main()
