"""The ``sim`` camera backend: two simulated cameras (B and S) looking at the simulated rig.

They implement the full set of standard features (exposure, gain, pixel format, trigger
mode/source/activation, auto functions, chunk timestamps, temperature) and behave like
hardware-triggered cameras: with ``TriggerMode`` On and a ``Line`` source, a frame is
exposed when the sync box pulses that camera's line (each camera is wired to its role's
line of a :mod:`reloblur.sim.bench`, which the emulator behind ``sim://`` drives); with the ``Software`` source, on :meth:`software_trigger`; with
``TriggerMode`` Off they free-run at ``AcquisitionFrameRate``. Frame *k* of each camera
shows pair *k* of the rig simulator, so B and S of one trigger are a true pair. Exposure
is applied in steps of 10 us, as real sensors round it, so read-back matters. Pixel
formats: ``RGB16``, ``BayerRG16`` and ``BayerRG12`` (a 12-bit sensor's data in 16-bit
words, as GenICam's unpacked formats deliver it). Like a colour camera's ISP, they apply
a colour transformation (SFNC ``ColorTransformation*``, on as shipped) to ``RGB16`` output
after the sensor clipped; raw Bayer output bypasses it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

from reloblur.capture.cameras import (
    COLOUR_GAINS,
    SFNC_FEATURES,
    Camera,
    CameraBackend,
    CameraError,
    DeviceInfo,
    FeatureInfo,
    Frame,
    FrameTimeout,
)
from reloblur.formats.timing import DEFAULT_B_EXPOSURE_US, DEFAULT_S_EXPOSURE_US, SPhase
from reloblur.sim import register_serial_handlers
from reloblur.sim.bench import bench
from reloblur.sim.clock import camera_clocks
from reloblur.sim.simulator import RigSimulator, SimulatorConfig, nominal_sensor_response, render_burst

EXPOSURE_STEP_US = 10.0
PIXEL_FORMATS = ("RGB16", "BayerRG16", "BayerRG12")
_READ_ONLY = ("DeviceTemperature", "Width", "Height", "UserSetLoad")
ROLES = ("B", "S")
# The RGB-to-RGB matrix the cameras ship with: the one made for their sensor model, which
# undoes its crosstalk (rows sum to 1, negative off-diagonals), to four decimals as a
# camera's register list shows it. A matrix made for a sensor of stronger overlap (a
# typical [[1.6, -0.4, -0.2], ...]) over-saturated these sensors' colours: some channel
# clipped at black over 8.6 % of the median frame, against 3.3 % with this one and 2.6 %
# with none (docs/simulator.md).
FACTORY_COLOUR_MATRIX = tuple(tuple(round(float(v), 4) for v in row)
                              for row in np.linalg.inv(nominal_sensor_response()))


class SimRig:
    """The scene both simulated cameras look at: renders each pair once, on demand."""

    def __init__(self, *, size: tuple[int, int], seed: int, bayer: bool, s_phase: SPhase,
                 distinct_pairs: int | None = None, burst_frames: int | None = None, shared_clock: bool = False,
                 colour_switch: bool = True):
        self.size, self.seed, self.bayer, self.s_phase = size, seed, bayer, s_phase
        self.colour_switch = colour_switch
        # Each camera's own timestamp counter (sim.clock); shared: PTP-synchronised cameras.
        self.clocks = camera_clocks(seed, shared=shared_clock, now_ns=time.time_ns())
        self.distinct_pairs = distinct_pairs
        # Burst mode (the single-camera method): free-running frame n is frame n % K of the
        # burst of pair n // K, as sim.simulator.render_burst renders it.
        self.burst_frames = burst_frames
        self._bursts: OrderedDict[tuple[int, float], Any] = OrderedDict()
        self.exposures = {"B": DEFAULT_B_EXPOSURE_US, "S": DEFAULT_S_EXPOSURE_US}
        self._simulator: RigSimulator | None = None
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._lock = threading.Lock()

    def burst_frame(self, index: int, exposed_fraction: float):
        """Free-running frame ``index`` of a fast camera in burst mode, and its pixel format."""
        k = self.burst_frames or 1
        key = (index // k, round(exposed_fraction, 4))
        with self._lock:
            simulator = self._get_simulator()
            if key not in self._bursts:
                self._bursts[key] = render_burst(simulator, key[0], frames=k, exposed_fraction=key[1])
                while len(self._bursts) > 2:
                    self._bursts.popitem(last=False)
            burst = self._bursts[key]
        return burst.frames[index % k], burst.pixel_format

    def _get_simulator(self) -> RigSimulator:
        if self._simulator is None:
            config = SimulatorConfig(width=self.size[0], height=self.size[1], seed=self.seed, bayer=self.bayer,
                                     s_phase=self.s_phase, b_exposure_us=self.exposures["B"],
                                     s_exposure_us=min(self.exposures["S"], self.exposures["B"]))
            self._simulator = RigSimulator(config)
        return self._simulator

    def frame(self, index: int, role: str):
        """Camera ``role``'s image of pair ``index`` (frames of one trigger form a true pair)."""
        if self.distinct_pairs:
            index %= self.distinct_pairs  # benchmarks: reuse a few renders, measure the pipeline
        with self._lock:
            simulator = self._get_simulator()
            if index not in self._cache:
                self._cache[index] = simulator.render(index)
                while len(self._cache) > max(4, self.distinct_pairs or 0):
                    self._cache.popitem(last=False)
            pair = self._cache[index]
        return (pair.blur if role == "B" else pair.sharp), pair.pixel_format


class SimCamera(Camera):
    """One simulated camera (``B`` or ``S``) with a full standard feature set and a trigger line."""
    def __init__(self, rig: SimRig, info: DeviceInfo, role: str):
        self.info = info
        self.role = role
        self._rig = rig
        self._clock = rig.clocks[role]
        self._jitter = np.random.default_rng([rig.seed, ord(role)])
        self._pending: queue.Queue[tuple[int, int]] = queue.Queue()  # (trigger sequence, device stamp ns)
        self._values: dict[str, Any] = {
            "ExposureTime": rig.exposures[role], "Gain": 0.0,
            "PixelFormat": "BayerRG16" if rig.bayer else "RGB16",
            "TriggerMode": "Off", "TriggerSource": "Line0" if role == "B" else "Line1",
            "TriggerActivation": "RisingEdge", "ExposureAuto": "Continuous", "GainAuto": "Continuous",
            "BalanceWhiteAuto": "Continuous", "ChunkModeActive": True, "DeviceTemperature": 41.5,
            "AcquisitionFrameRate": 5.0, "Width": rig.size[0], "Height": rig.size[1],
            "UserSetSelector": "Default", "UserSetLoad": None,
            "ColorTransformationSelector": "RGBtoRGB", "ColorTransformationEnable": True,
            "ColorTransformationValueSelector": COLOUR_GAINS[0], "ColorTransformationValue": FACTORY_COLOUR_MATRIX[0][0],
        }
        self._colour = np.array(FACTORY_COLOUR_MATRIX)
        if not rig.colour_switch:  # a camera whose matrix comes with presets: no switch
            del self._values["ColorTransformationEnable"]
        self._factory = dict(self._values)  # what UserSetLoad of "Default" restores
        self._running = False
        self._frame_id = 0
        self._next_free_run = 0.0
        self._own_sequence = 0  # free-run and software trigger count their own frames

    def feature(self, name: str) -> FeatureInfo:
        """State of standard feature ``name``."""
        if name not in self._values:
            return FeatureInfo(name, None)
        writable = name not in _READ_ONLY
        return FeatureInfo(name, SFNC_FEATURES.get(name, (name,))[0], True, writable, self._values[name])

    def execute(self, name: str) -> None:
        """``UserSetLoad``: back to the factory settings (the one user set, ``Default``)."""
        self._check()
        if name != "UserSetLoad":
            raise CameraError(f"{self.info.serial}: camera has no {name} command")
        self._values = dict(self._factory)
        self._colour = np.array(FACTORY_COLOUR_MATRIX)
        self._rig.exposures[self.role] = self._values["ExposureTime"]
        self._rig.bayer = self._values["PixelFormat"].startswith("Bayer")

    def set(self, name: str, value: Any) -> Any:
        """Write a standard feature and return the applied value (exposure rounds to 10 us)."""
        self._check()
        if name not in self._values or name in _READ_ONLY:
            raise CameraError(f"{self.info.serial}: camera has no writable {name} feature")
        if name == "UserSetSelector" and value != "Default":
            raise CameraError(f"{self.info.serial}: no user set {value!r} (only Default)")
        if name == "ExposureTime":
            value = max(EXPOSURE_STEP_US, round(float(value) / EXPOSURE_STEP_US) * EXPOSURE_STEP_US)
            self._rig.exposures[self.role] = value
        elif name == "PixelFormat" and value not in PIXEL_FORMATS:
            raise CameraError(f"{self.info.serial}: pixel format {value!r} not supported ({', '.join(PIXEL_FORMATS)})")
        elif name == "PixelFormat":
            self._rig.bayer = value.startswith("Bayer")
        elif name == "ColorTransformationSelector" and value != "RGBtoRGB":
            raise CameraError(f"{self.info.serial}: no colour transformation {value!r} (only RGBtoRGB)")
        elif name == "ColorTransformationValueSelector":
            if value not in COLOUR_GAINS:
                raise CameraError(f"{self.info.serial}: no colour transformation value {value!r}")
            self._values["ColorTransformationValue"] = float(self._colour[divmod(COLOUR_GAINS.index(value), 3)])
        elif name == "ColorTransformationValue":
            value = float(value)
            self._colour[divmod(COLOUR_GAINS.index(self._values["ColorTransformationValueSelector"]), 3)] = value
        self._values[name] = value
        return value

    def _check(self) -> None:
        """Raise :class:`CameraGoneError` if the camera stopped answering (never, simulated)."""

    def start(self) -> None:
        """Start acquisition."""
        self._check()
        self._running = True
        self._next_free_run = time.monotonic()

    def stop(self) -> None:
        """Stop acquisition."""
        self._running = False

    def pulse(self, sequence: int, timestamp_ns: int) -> None:
        """A rising edge on this camera's trigger line, driven at host time ``timestamp_ns``:
        expose the image of pair ``sequence``, stamped on this camera's own clock."""
        if self._running and self._values["TriggerMode"] == "On" and self._values["TriggerSource"].startswith("Line"):
            self._pending.put((sequence, self._clock.stamp(timestamp_ns, self._jitter)))

    def software_trigger(self) -> None:
        """Expose a frame now (``TriggerMode`` On, ``TriggerSource`` Software)."""
        self._check()
        if self._values["TriggerMode"] == "On" and self._values["TriggerSource"] == "Software":
            self._pending.put((self._own_sequence, self._clock.stamp(time.time_ns(), self._jitter)))
            self._own_sequence += 1

    def fetch(self, timeout_s: float = 2.0) -> Frame:
        """The next frame: the pair of the pulse that triggered it, or the next free-running one."""
        self._check()
        if not self._running:
            raise CameraError(f"{self.info.serial}: acquisition not started")
        if self._values["TriggerMode"] == "On":
            try:
                index, stamp = self._pending.get(timeout=timeout_s)
            except queue.Empty:
                self._check()
                raise FrameTimeout(f"{self.info.serial}: no trigger within {timeout_s} s") from None
            self._check()
        else:
            wait = self._next_free_run - time.monotonic()
            if wait > timeout_s:
                raise FrameTimeout(f"{self.info.serial}: no frame within {timeout_s} s")
            if wait > 0:
                time.sleep(wait)
            self._next_free_run += 1.0 / float(self._values["AcquisitionFrameRate"])
            stamp = self._clock.stamp(time.time_ns(), self._jitter)
            index = self._own_sequence
            self._own_sequence += 1
        self._frame_id += 1
        if self._rig.burst_frames and self._values["TriggerMode"] == "Off":
            exposed = min(1.0, float(self._values["ExposureTime"]) * float(self._values["AcquisitionFrameRate"]) / 1e6)
            image, pixel_format = self._rig.burst_frame(index, exposed)
            return Frame(self._processed(image, pixel_format), pixel_format, self._frame_id, stamp, time.time_ns())
        image, pixel_format = self._rig.frame(index, self.role)
        if self._values["PixelFormat"] == "BayerRG12":
            # A 12-bit sensor: the same light in 12 bits, LSB-aligned in 16-bit words as
            # GenICam's unpacked formats are.
            image = np.minimum((image.astype(np.uint32) + 8) >> 4, 4095).astype(np.uint16)
            return Frame(image, "BayerRG12", self._frame_id, stamp, time.time_ns())
        return Frame(self._processed(image, pixel_format), pixel_format, self._frame_id, stamp, time.time_ns())

    def _processed(self, image: np.ndarray, pixel_format: str) -> np.ndarray:
        """``image`` (the sensor's clipped data) as the camera delivers it: through the colour
        transformation where it is on and the output is RGB."""
        # A camera without the switch (its matrix set by presets) keeps the matrix on.
        if pixel_format != "RGB16" or not self._values.get("ColorTransformationEnable", True):
            return image.copy()
        mixed = np.einsum("ij,hwj->hwi", self._colour, image.astype(np.float32))
        return np.clip(np.rint(mixed), 0, 65535).astype(np.uint16)

    def close(self) -> None:
        """Stop acquisition (idempotent)."""
        self._running = False


class SimBackend(CameraBackend):
    """Two simulated cameras, serials ``SIM-B`` and ``SIM-S``."""

    name = "sim"
    camera_class: type[SimCamera] = SimCamera

    def __init__(self, *, size: tuple[int, int] = (720, 480), seed: int = 0, bayer: bool = False,
                 s_phase: SPhase = "middle", distinct_pairs: int | None = None, bench_name: str = "default",
                 burst_frames: int | None = None, shared_clock: bool = False, colour_switch: bool = True):
        self.rig = SimRig(size=size, seed=seed, bayer=bayer, s_phase=s_phase, distinct_pairs=distinct_pairs,
                          burst_frames=burst_frames, shared_clock=shared_clock, colour_switch=colour_switch)
        self.bench = bench(bench_name)
        self._unplug: list = []
        register_serial_handlers()  # so that a sync port "sim://" finds the emulator

    def devices(self) -> list[DeviceInfo]:
        """The two simulated cameras, serials ``SIM-B`` and ``SIM-S``."""
        return [DeviceInfo(i, "reloblur", "SimCam", f"SIM-{role}", f"sim://{role}", f"sim-{role.lower()}", "ReadWrite")
                for i, role in enumerate(ROLES)]

    def open(self, selector: str) -> Camera:
        """Open ``SIM-B`` or ``SIM-S`` and wire it to its role's trigger line on the bench."""
        info = self.select(selector)
        role = info.serial[-1]
        camera = self.camera_class(self.rig, info, role)
        self._unplug.append(self.bench.connect(role, camera.pulse))
        return camera

    def close(self) -> None:
        """Unwire the cameras from the bench's trigger lines."""
        for unplug in self._unplug:
            unplug()
        self._unplug.clear()
