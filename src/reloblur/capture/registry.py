"""Camera backends by name, each built from its own options dataclass, in one place.

    >>> options = backend_options("sim", size=(96, 64))
    >>> options
    SimOptions(size=(96, 64), seed=0, s_phase='middle', bayer=False, distinct_pairs=None, bench='default')

``open_backend(options)`` opens it. Tests and plug-ins add backends with
:func:`register_backend`; the recorder and the CLI never name a backend class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Union

from reloblur.capture.backends.aravis import AravisBackend
from reloblur.capture.backends.harvesters import HarvestersBackend
from reloblur.capture.backends.pylon import PylonBackend
from reloblur.capture.backends.sim import SimBackend
from reloblur.capture.cameras import CameraBackend, CameraError
from reloblur.formats.timing import SPhase


@dataclass(frozen=True)
class HarvestersOptions:
    """GenTL producers through harvesters."""

    cti: tuple[str, ...] = ()  # producer files; GENICAM_GENTL64_PATH is searched too


@dataclass(frozen=True)
class AravisOptions:
    """Cameras through Aravis (GigE Vision, USB3 Vision)."""

    fake: bool = False  # enable Aravis's fake camera (Fake_1)


@dataclass(frozen=True)
class PylonOptions:
    """Basler cameras through pypylon."""

    emulate: int = 0  # this many emulated cameras (PYLON_CAMEMU), no hardware needed


@dataclass(frozen=True)
class SimOptions:
    """The simulated rig's two cameras."""

    size: tuple[int, int] = (720, 480)  # width, height in pixels
    seed: int = 0
    s_phase: SPhase = "middle"
    bayer: bool = False
    distinct_pairs: int | None = None  # benchmarks: render this many pairs and repeat them
    bench: str = "default"  # trigger lines shared with the sync-box emulator at sim://BENCH
    burst_frames: int | None = None  # burst mode: free-running frames are the sub-frames of K-frame bursts
    shared_clock: bool = False  # the cameras' timestamps share one clock (PTP), or each has its own
    # the cameras can switch their colour matrix off (SFNC ColorTransformationEnable); without
    # the switch, as cameras whose matrix comes with presets, it stays on for RGB output
    colour_switch: bool = True


BackendOptions = Union[HarvestersOptions, AravisOptions, PylonOptions, SimOptions]


@dataclass(frozen=True)
class BackendSpec:
    """How to build one backend: its options type and a factory taking those options."""

    name: str
    options_type: type
    factory: Callable[[Any], CameraBackend]
    summary: str


_BACKENDS: dict[str, BackendSpec] = {}


def register_backend(name: str, options_type: type, factory: Callable[[Any], CameraBackend], summary: str) -> None:
    """Make backend ``name`` available to :func:`open_backend` and the ``--backend`` option."""
    _BACKENDS[name] = BackendSpec(name, options_type, factory, summary)


register_backend("harvesters", HarvestersOptions, lambda o: HarvestersBackend(cti=o.cti), "GenTL producers (.cti)")
register_backend("aravis", AravisOptions, lambda o: AravisBackend(fake=o.fake), "Aravis (GigE/USB3 Vision)")
register_backend("pylon", PylonOptions, lambda o: PylonBackend(emulate=o.emulate), "Basler pylon (GigE/USB3)")
register_backend("sim", SimOptions, lambda o: SimBackend(size=o.size, seed=o.seed, bayer=o.bayer, s_phase=o.s_phase,
                                                          distinct_pairs=o.distinct_pairs, bench_name=o.bench,
                                                          burst_frames=o.burst_frames, shared_clock=o.shared_clock,
                                                          colour_switch=o.colour_switch),
                 "the simulated rig")


def _spec(name: str) -> BackendSpec:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise CameraError(f"unknown camera backend {name!r}: choose {', '.join(_BACKENDS)}") from None


def backend_options(name: str, **values: Any) -> Any:
    """Options of backend ``name`` from generic values; values another backend takes are ignored.

    The CLI offers every backend's options at once (``--cti``, ``--fake``, ``--size``...);
    each backend keeps the ones it has.
    """
    options_type = _spec(name).options_type
    known = {f.name for f in fields(options_type)}
    return options_type(**{k: v for k, v in values.items() if k in known and v is not None})


def backend_name(options: Any) -> str:
    """The registered name whose options type ``options`` is."""
    for spec in _BACKENDS.values():
        if type(options) is spec.options_type:
            return spec.name
    raise CameraError(f"no camera backend takes options of type {type(options).__name__}")


def open_backend(options: Any) -> CameraBackend:
    """Open the backend that ``options`` (an options dataclass from :func:`backend_options`) configures."""
    return _spec(backend_name(options)).factory(options)
