"""The simulated rig through Basler's camera emulator: a vendor SDK in the capture path.

pypylon's emulated cameras (``PYLON_CAMEMU``) gate frames on triggers and, with
``ImageFileMode`` On, serve the images of a folder one per trigger. Here the simulator's B
and S renders of a take are written to two such folders, two emulated cameras serve them,
and the sync-box emulator's lines (``sim://BENCH``) fire each camera's ``TriggerSoftware``:
the stand-in for trigger cables. ``reloblur capture`` then records the take exactly as
on a real Basler rig, and the frames it records are the renders, so the simulator's truth
still scores what ``align`` and ``mask generate`` make of them.

Used by ``reloblur demo --backend pylon`` and by the tests.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from reloblur.capture.cameras import Camera
from reloblur.capture.rig import CameraSettings, RigConfig
from reloblur.imaging.imageio import write_image
from reloblur.sim.bench import bench
from reloblur.sim.simulator import SimulatedPair

ROLES = ("B", "S")
SERIALS = {"B": "0815-0000", "S": "0815-0001"}  # the emulator's first two cameras


def serve_renders(pairs: Sequence[SimulatedPair], folder: Path) -> dict[str, list[np.ndarray]]:
    """Write each render's B and S as 8-bit RGB PNGs under ``folder/B`` and ``folder/S``
    (``000.png``, ... in trigger order); returns the served images per role.

    The emulator serves 8-bit files, so the 16-bit linear renders are rounded to 8 bits
    (linear still: the camera's raw data, not display-encoded).
    """
    served: dict[str, list[np.ndarray]] = {role: [] for role in ROLES}
    for role in ROLES:
        (folder / role).mkdir(parents=True, exist_ok=True)
        for index, pair in enumerate(pairs):
            image = np.round((pair.blur if role == "B" else pair.sharp) / 257.0).astype(np.uint8)
            write_image(folder / role / f"{index:03d}.png", image)
            served[role].append(image)
    return served


def wire_emulated_cameras(folder: Path, size: tuple[int, int], bench_name: str
                          ) -> Callable[[dict[str, Camera]], None]:
    """The ``on_open`` hook of :func:`reloblur.capture.recorder.capture` for the emulated
    rig: each camera serves ``folder/<role>`` at ``size`` (width, height) and fires on its
    line of the sync-box emulator at ``sim://<bench_name>``."""
    lines = bench(bench_name)
    lines.unplug_all()  # a previous take's cameras are closed

    def on_open(cameras: dict[str, Camera]) -> None:
        for role, camera in cameras.items():
            camera.set("Width", size[0])
            camera.set("Height", size[1])
            camera.set("TestImageSelector", "Off")  # else the test pattern wins over the files
            camera.set("ImageFileMode", "On")
            camera.set("ImageFilename", str(folder / role))
            lines.connect(role, _fires(camera))

    return on_open


def _fires(camera: Camera) -> Callable[[int, int], None]:
    """A pulse on the camera's line (sequence, time in ns) becomes its software trigger."""
    def pulse(sequence: int, time_ns: int) -> None:
        camera.software_trigger()

    return pulse


def emulated_rig(bench_name: str, *, b_exposure_us: float = 40_000, s_exposure_us: float = 2_000,
                 rate_hz: float = 5.0) -> RigConfig:
    """The two emulated cameras as B and S, 8-bit RGB, triggered through ``sim://<bench_name>``."""
    return RigConfig(
        cameras={role: CameraSettings(SERIALS[role], exposure_us=b_exposure_us if role == "B" else s_exposure_us,
                                      pixel_format="RGB8", trigger_source="Software") for role in ROLES},
        rate_hz=rate_hz, sync_port=f"sim://{bench_name}", s_phase="middle")
