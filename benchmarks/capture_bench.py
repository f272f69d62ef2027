"""Capture throughput: the rig recorder at full ReLoBlur size, until it loses pairs.

Two 2152x1436 cameras of the sim backend (raw Bayer, 12 and 16 bit), hardware-triggered
through the sync-box emulator on a pseudo-terminal, through the real recorder (bounded
queue, writer, atomic fsynced TIFFs, log line after both frames). Their pairs are rendered
before anything is timed (``--distinct`` different pairs, cycled, so no two pairs in the
queue are alike) and written to the disk under ``--dir`` (its filesystem is reported).

* **Rate sweep** at the rig's exposures (B 40 ms, S 2 ms): each rate of ``--rates`` for
  ``--seconds``; a rate is *sustained* when every pair is kept, the trigger loop never
  waited for the writer (a full queue slows the triggers) and the pairs came at >= 95 % of
  the rate. The sweep stops at the first rate not sustained; the highest sustained rate is
  what the rig can do (B's 40 ms exposure bounds it near 25 Hz whatever the disk).
* **Writer ceiling**: 1 ms exposures and triggers as fast as the queue takes them, so the
  writer is the bottleneck; its MB/s (first frame to last pair on disk) against the disk's
  raw sequential write speed measured in the same run (1 GiB or more, one fsync). Goal:
  >= 70 %, the writer not the bottleneck.

    python benchmarks/capture_bench.py                         # both formats, 5-25 Hz
    python benchmarks/capture_bench.py --formats BayerRG12 --rates 10,20 --json --dir /data

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
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reloblur.capture.backends.sim import SimBackend, SimRig
from reloblur.capture.burst import BurstCaptureOptions, capture_bursts
from reloblur.capture.cameras import Camera, CameraBackend, DeviceInfo, FeatureInfo, Frame
from reloblur.capture.recorder import WRITERS, CaptureOptions, capture, quick_rig
from reloblur.capture.registry import register_backend
from reloblur.formats.session import Session

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairgen import parse_size  # noqa: E402

DISTINCT = 16  # pre-rendered pairs, cycled: the queue (16) never holds two alike


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


def burst_main(args: argparse.Namespace, size: tuple[int, int]) -> None:
    width, height = size
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
              "size": f"{width}x{height}", "keep_frames": args.keep_frames, "writers": args.writers, "error": summary.error}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    kept = "every frame" if args.keep_frames else "the 32-bit sum and S"
    print(f"{bursts} bursts of {frames} frames, {width}x{height} BayerRG12, {kept}, {args.writers} writer(s); baseline: "
          "raw sequential write of the same bytes, same run")
    print(f"sustained {fps:.0f} frames/s ({summary.recorded} bursts in {elapsed:.1f} s), fetch waits "
          f"{summary.slowed}, queue high-water {summary.queue_high_water}")
    print(f"write {result['write_mb_s']:.0f} MB/s vs raw sequential {raw:.0f} MB/s")


@dataclass(frozen=True)
class PrerenderedOptions:
    size: tuple[int, int]


def prerender(size: tuple[int, int], distinct: int) -> None:
    """Register ``prerendered``: the sim cameras over one simulated rig whose ``distinct``
    pairs are rendered now, before any timing, and shared by every run, so that rendering
    is not measured; any ``distinct`` consecutive pairs are different images."""
    rig = SimRig(size=size, seed=0, bayer=True, s_phase="middle", distinct_pairs=distinct)
    for index in range(distinct):
        for role in ("B", "S"):
            rig.frame(index, role)

    def factory(options: PrerenderedOptions) -> SimBackend:
        backend = SimBackend(size=options.size, bayer=True)
        backend.rig = rig
        return backend

    register_backend("prerendered", PrerenderedOptions, factory, "benchmark: pre-rendered simulator pairs")


def rig_run(workdir: Path, *, rate: float, pairs: int, pixel_format: str, size: tuple[int, int],
            b_exposure_us: float, s_exposure_us: float, queue_size: int, writers: int) -> dict[str, Any]:
    """One capture of ``pairs`` pairs at ``rate`` Hz; what it kept and how fast it wrote."""
    session = workdir / f"session-{pixel_format}-{rate:g}"
    rig = quick_rig("SIM-B", "SIM-S", b_exposure_us=b_exposure_us, s_exposure_us=s_exposure_us, gain_db=0.0,
                    pixel_format=pixel_format, sync="sim", s_phase="middle", rate_hz=rate, simulated_nd=True)
    options = CaptureOptions(session=session, rig=rig, pairs=pairs, progress=False, queue_size=queue_size,
                             writers=writers, backend=PrerenderedOptions(size))
    summary = capture(options)
    finished_ns = time.time_ns()  # capture returns once the writer has written and fsynced every pair
    records = Session(session).pairs()
    written = sum(p.stat().st_size for p in session.rglob("*") if p.is_file())
    stamps = sorted(r.frames["B"].host_timestamp_ns for r in records if r.frames.get("B"))
    steady = (len(stamps) - 1) / ((stamps[-1] - stamps[0]) / 1e9) if len(stamps) > 1 else 0.0
    shutil.rmtree(session)
    return {"rate_hz": rate, "pixel_format": pixel_format, "pairs_planned": pairs, "pairs_kept": summary.recorded,
            "rejected": summary.rejected, "trigger_waits": summary.slowed, "queue_high_water": summary.queue_high_water,
            # From the first frame's arrival to the last pair on disk: start-up not counted.
            "steady_rate_hz": steady, "write_mb_s": written / 2**20 / ((finished_ns - stamps[0]) / 1e9), "bytes": written,
            "sustained": summary.recorded == pairs and summary.slowed == 0 and steady >= 0.95 * rate,
            "error": summary.error}
def filesystem(path: Path) -> str:
    """``TYPE on DEVICE`` of the filesystem holding ``path`` (from ``df``)."""
    import subprocess

    try:
        line = subprocess.run(["df", "--output=fstype,source", str(path)], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
        return f"{line[0]} on {line[1]}"
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds of capture per rate step")
    parser.add_argument("--rates", default="5,10,15,20,25", help="pair rates to try, ascending (Hz); 25 Hz: a period as long as B's 40 ms")
    parser.add_argument("--formats", default="BayerRG12,BayerRG16")
    parser.add_argument("--size", type=parse_size, default=None,
                        help="WxH of the frames (default: ReLoBlur's 2152x1436; --burst: 1920x360)")
    parser.add_argument("--distinct", type=int, default=DISTINCT, help="pre-rendered distinct pairs, cycled")
    parser.add_argument("--queue", type=int, default=16, help="the recorder's queue (pairs)")
    parser.add_argument("--ceiling-pairs", type=int, default=150,
                        help="pairs of the writer-ceiling run (short exposures, triggers as fast as it goes)")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temporary directory)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--burst", action="store_true", help="the burst recorder (one fast camera), see above")
    parser.add_argument("--keep-frames", action="store_true", help="--burst: write every frame, not the sum and S")
    parser.add_argument("--writers", type=int, default=WRITERS, help="writer threads (the baseline run: 1)")
    args = parser.parse_args()
    if args.burst:
        burst_main(args, args.size or (1920, 360))
        return
    size = args.size or (2152, 1436)
    width, height = size
    rates = [float(r) for r in args.rates.split(",")]
    prerender(size, args.distinct)
    workdir = Path(tempfile.mkdtemp(prefix="capture-bench-", dir=args.dir))
    results: dict[str, Any] = {"size": f"{width}x{height}", "filesystem": filesystem(workdir), "seconds_per_step": args.seconds,
                               "distinct_pairs": args.distinct, "formats": {}}
    try:
        for pixel_format in args.formats.split(","):
            steps = []
            for rate in rates:
                step = rig_run(workdir, rate=rate, pairs=max(2, int(rate * args.seconds)), pixel_format=pixel_format,
                               size=size, b_exposure_us=40_000, s_exposure_us=2_000, queue_size=args.queue,
                               writers=args.writers)
                steps.append(step)
                if not args.json:
                    print(f"{pixel_format} {rate:g} Hz: kept {step['pairs_kept']}/{step['pairs_planned']}, "
                          f"waits {step['trigger_waits']}, high-water {step['queue_high_water']}, steady "
                          f"{step['steady_rate_hz']:.1f} Hz, {'sustained' if step['sustained'] else 'NOT sustained'}")
                if not step["sustained"]:
                    break
            ceiling, one_writer = (
                rig_run(workdir, rate=1000.0, pairs=args.ceiling_pairs, pixel_format=pixel_format, size=size,
                        b_exposure_us=1_000, s_exposure_us=100, queue_size=args.queue, writers=writers)
                for writers in (args.writers, 1))
            per_pair = ceiling["bytes"] / max(1, ceiling["pairs_kept"])
            ceiling["writer_mb_s"] = ceiling["write_mb_s"]
            raw = raw_write_speed(workdir, max(ceiling["bytes"], 2**30))
            sustained = [s["rate_hz"] for s in steps if s["sustained"]]
            results["formats"][pixel_format] = {
                "steps": steps, "highest_sustained_hz": max(sustained) if sustained else None,
                "ceiling": ceiling, "one_writer_mb_s": one_writer["write_mb_s"], "raw_sequential_mb_s": raw,
                "writer_fraction_of_raw": ceiling["writer_mb_s"] / raw,
                "bytes_per_pair": per_pair}
            if not args.json:
                print(f"{pixel_format}: writer ceiling {ceiling['writer_mb_s']:.0f} MB/s with {args.writers} writers "
                      f"(one writer: {one_writer['write_mb_s']:.0f}; {ceiling['pairs_kept']} pairs, 1 ms exposures, "
                      f"triggers as fast as the queue takes them) vs raw sequential {raw:.0f} MB/s "
                      f"({100 * ceiling['writer_mb_s'] / raw:.0f} %)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"2 x {width}x{height}, {args.distinct} distinct pre-rendered pairs, written to {results['filesystem']}")
    for pixel_format, entry in results["formats"].items():
        print(f"{pixel_format}: highest sustained pair rate {entry['highest_sustained_hz']} Hz at 40 ms / 2 ms "
              f"exposures; writer {entry['ceiling']['writer_mb_s']:.0f} MB/s = "
              f"{100 * entry['writer_fraction_of_raw']:.0f} % of the disk's raw {entry['raw_sequential_mb_s']:.0f} MB/s")


if __name__ == "__main__":
    main()
