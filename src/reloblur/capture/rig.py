"""Rig configuration files (TOML or YAML) and applying settings to the cameras.

Example (``docs/rig-example.toml``)::

    [rig]
    name = "lab rig 1"
    s_phase = "middle"          # start | middle | end of B's exposure
    rate_hz = 5

    [sync]
    port = "/dev/ttyUSB0"       # any pyserial URL; "sim://" (or "sim") = the emulator
    s_offset_us = 0

    [cameras.B]
    select = "23456789"         # serial, user-defined name or index
    exposure_us = 40000
    gain_db = 0
    pixel_format = "BayerRG12"
    trigger_source = "Line0"
    user_set = "Default"        # loaded first; a saved set ("UserSet1"), or "none" to keep the camera's
    lens = "16 mm f/4"
    nd_filter = { name = "ND1.3", transmission = 0.05 }

    [cameras.S]
    select = "23456790"
    exposure_us = 2000
    ...
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from reloblur.capture.cameras import COLOUR_GAINS, TRIGGER_FEATURES, Camera, CameraError
from reloblur.errors import ImageFormatError, ReloblurError
from reloblur.formats.session import CameraRecord
from reloblur.formats.timing import SPhase, check_s_phase
from reloblur.imaging.pixel_formats import PixelFormat

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class CameraSettings:
    """One camera's settings in a rig file (exposure, gain, pixel format, trigger input, ND filter)."""
    select: str
    exposure_us: float | None = None
    gain_db: float | None = None
    pixel_format: str | None = None
    trigger_source: str | None = None
    lens: str | None = None
    nd_filter: dict[str, Any] | None = None
    # Loaded first, so nothing a vendor viewer left behind carries over; "UserSet1" etc.
    # is a set the lab saved (an ROI, say); None keeps whatever the camera holds.
    user_set: str | None = "Default"


Clocks = Literal["independent", "shared"]
CLOCKS: tuple[str, ...] = get_args(Clocks)


def check_clocks(value: str, *, where: str = "clocks") -> Clocks:
    """``value`` as :data:`Clocks`, or :class:`ReloblurError` naming ``where`` and the choices."""
    if value not in CLOCKS:
        raise ReloblurError(f"{where} = {value!r}: choose independent (each camera its own clock) or shared (PTP)")
    return value  # type: ignore[return-value]


@dataclass(frozen=True)
class RigConfig:
    """A rig file: both cameras, the sync box and the S phase."""
    cameras: dict[str, CameraSettings]
    name: str = "rig"
    s_phase: SPhase = "middle"
    rate_hz: float = 5.0
    sync_port: str | None = None
    s_offset_us: float = 0.0
    light_tolerance: float = 0.15
    # "shared": the cameras' timestamps count on one clock (IEEE 1588 PTP), so S - B is the
    # real trigger delay; "independent" (USB3 and most cameras): each counts from its own
    # start on its own crystal, so only the change of S - B from pair to pair means anything.
    clocks: Clocks = "independent"

    def __post_init__(self) -> None:
        """Refuse values no rig can run with, naming the setting (a rig file's key, or the
        option that sets it); ranges a camera has are checked when it is set."""
        numbers: list[tuple[str, float | None, bool]] = [
            ("rate_hz (--rate)", self.rate_hz, True), ("s_offset_us", self.s_offset_us, False),
            ("light_tolerance", self.light_tolerance, True)]
        for role, camera in self.cameras.items():
            numbers += [(f"cameras.{role}.exposure_us (--{role.lower()}-exposure)", camera.exposure_us, True),
                        (f"cameras.{role}.gain_db (--gain)", camera.gain_db, False)]
        for name, value, positive in numbers:
            check_setting(name, value, positive=positive)


def check_setting(name: str, value: object, *, positive: bool) -> None:
    """Refuse a capture setting that is not a finite (and, where ``positive``, positive)
    number, naming it; None (left to the camera) passes."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and (value > 0 or not positive)):
        raise ReloblurError(f"{name} = {value}: must be a {'positive' if positive else 'finite'} number")


def load_rig(path: Path) -> RigConfig:
    """Read a rig file; errors name the file and the key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReloblurError(f"{path}: cannot read rig file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else tomllib.loads(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ReloblurError(f"{path}: invalid rig file ({exc})") from None
    cameras = data.get("cameras", {})
    if set(cameras) != {"B", "S"}:
        raise ReloblurError(f"{path}: [cameras] must define exactly B and S (found {sorted(cameras)})")
    parsed = {}
    for role, entry in cameras.items():
        if "select" not in entry:
            raise ReloblurError(f"{path}: cameras.{role}.select (serial, name or index) is required")
        unknown = set(entry) - set(CameraSettings.__dataclass_fields__)
        if unknown:
            raise ReloblurError(f"{path}: unknown key(s) in cameras.{role}: {', '.join(sorted(unknown))}")
        parsed[role] = CameraSettings(**{**entry, "select": str(entry["select"]),
                                         "user_set": user_set_named(str(entry.get("user_set", "Default")))})
    rig, sync = data.get("rig", {}), data.get("sync", {})
    try:
        return _rig_config(parsed, rig, sync)
    except (ReloblurError, TypeError, ValueError) as exc:
        raise ReloblurError(f"{path}: {exc}") from None


def _rig_config(parsed: dict[str, CameraSettings], rig: dict[str, Any], sync: dict[str, Any]) -> RigConfig:
    return RigConfig(parsed, name=str(rig.get("name", "rig")), s_phase=check_s_phase(str(rig.get("s_phase", "middle"))),
                     rate_hz=float(rig.get("rate_hz", 5.0)), sync_port=sync.get("port"),
                     s_offset_us=float(sync.get("s_offset_us", 0.0)),
                     light_tolerance=float(rig.get("light_tolerance", 0.15)),
                     clocks=check_clocks(str(sync.get("clocks", "independent")), where="sync.clocks"))


@dataclass
class AppliedSettings:
    """What a camera ended up with, and what could not be done."""

    record: CameraRecord
    warnings: list[str] = field(default_factory=list)
    # The camera will wait for trigger pulses: it has the features and, when asked to,
    # reads back TriggerMode On. Anything less free-runs, and a session must not call
    # such pairs hardware-triggered.
    has_trigger: bool = False
    trigger_refused: bool = False  # asked for, features present, but TriggerMode On did not take


def try_set(camera: Camera, name: str, value: Any, warnings: list[str]) -> Any:
    """Write a standard feature if the camera has it and can; what it reads back, or None
    where it has none. A read-only feature or a refused value is a warning naming the camera."""
    info = camera.feature(name)
    label = f"{camera.info.serial or camera.info.id}"
    if not info.present:
        return None
    if not info.writable:
        warnings.append(f"{label}: {name} is not writable (left at {info.value!r})")
        return info.value
    try:
        return camera.set(name, value)
    except CameraError as exc:
        warnings.append(str(exc))
        return camera.feature(name).value


def user_set_named(text: str) -> str | None:
    """The user set a rig file or ``--user-set`` names: ``none`` (any case) keeps the
    camera's current settings (None); anything else is the set's name."""
    return None if text.lower() == "none" else text


def load_user_set(camera: Camera, name: str | None, warnings: list[str]) -> str | None:
    """Start from a known state: select user set ``name`` and run ``UserSetLoad``, before
    anything else is set (loading resets every setting). Returns the set loaded, or None on
    a camera without user sets (a warning) or when ``name`` is None. A set the camera does
    not offer is a :class:`CameraError`: the user asked for a state that cannot be had."""
    label = camera.info.serial or camera.info.id
    if name is None:
        return None
    if not (camera.feature("UserSetSelector").present and camera.feature("UserSetLoad").present):
        warnings.append(f"{label}: no user sets (UserSetSelector/UserSetLoad); its settings are taken as they are, "
                        "and pinned below where it has the features")
        return None
    refusals: list[str] = []
    selected = try_set(camera, "UserSetSelector", name, refusals)
    if str(selected) != name:
        said = f" ({'; '.join(refusals)})" if refusals else ""
        raise CameraError(f"{label}: user set {name!r} cannot be selected (reads {selected!r}){said}; "
                          "name one the camera has, or 'none' to keep its current settings")
    camera.execute("UserSetLoad")
    return name


def set_gain_db(camera: Camera, gain_db: float | None, warnings: list[str]) -> float | None:
    """Write a gain in dB and return what the camera applied (None: not asked, or no gain).

    Only the SFNC ``Gain`` node is in dB. A camera whose gain is ``GainRaw`` counts in
    device units on a model-specific scale, so writing dB into it would set some other gain
    without a word: such a camera refuses a gain in dB (``--gain``, ``gain_db``; a
    :class:`CameraError`) and its ``GainRaw`` is recorded as it is (see
    :func:`pin_image_pipeline`)."""
    if gain_db is None:
        return None
    label = camera.info.serial or camera.info.id
    info = camera.feature("Gain")
    if not info.present:
        warnings.append(f"{label}: no gain feature; the gain is not controlled and recorded as unknown")
        return None
    if info.node != "Gain":
        raise CameraError(f"{label}: the camera's gain is {info.node} (device units, reads {info.value!r}), not "
                          "Gain in dB, so a gain in dB cannot be applied: leave the gain unset (its raw value is "
                          "recorded) and set it in the camera's user set")
    applied = try_set(camera, "Gain", float(gain_db), warnings)
    return float(applied) if applied is not None else None


# Settings a vendor viewer may leave behind that silently break linear, unflipped frames,
# and the values that keep them out of the way (a pulse-width ExposureMode would hand the
# exposure to the sync box's pulse length instead of the programmed time).
PINNED = (("GammaEnable", False), ("Gamma", 1.0), ("LUTEnable", False), ("ReverseX", False), ("ReverseY", False),
          ("ExposureMode", "Timed"))


def pin_image_pipeline(camera: Camera, warnings: list[str]) -> dict[str, Any]:
    """Set the :data:`PINNED` features the camera has, and return what each reads back
    (with ``BlackLevel`` and ``GainRaw``, recorded, not changed). A value that does not
    take is a warning: the session says what the frames went through."""
    state: dict[str, Any] = {}
    for name, value in PINNED:
        if not camera.feature(name).present:
            continue
        applied = try_set(camera, name, value, warnings)
        state[name] = applied
        if applied != value and not (isinstance(value, float) and isinstance(applied, (int, float))
                                     and abs(applied - value) < 1e-6):
            warnings.append(f"{camera.info.serial or camera.info.id}: {name} stays {applied!r}, not {value!r}: "
                            "frames may not be linear or may be flipped")
    for name in ("BlackLevel", "GainRaw"):  # recorded, not changed
        info = camera.feature(name)
        if info.present and info.value is not None:
            state[name] = info.value
    state.update(pin_colour_transformation(camera, warnings))
    return state


def pin_colour_transformation(camera: Camera, warnings: list[str]) -> dict[str, Any]:
    """Switch the camera's own colour matrix off (SFNC ``ColorTransformationEnable``), or
    record it (``ColorTransformationMatrix``, 3x3) where it stays on.

    A colour camera delivering RGB applies its matrix after the sensor clips: the excess a
    clipped channel lost is mixed into the others, and negative coefficients push them to
    black. The two cameras clip at different radiances, so beside highlights that reads as
    motion, and the mask step cannot undo it (``docs/masks.md``, known limits; on the mask
    benchmark's over-exposed scenes with the matrix on, IoU 0.79-0.84, against 0.83-0.85
    without a matrix; ``docs/benchmarks.md``).
    ``align`` corrects the cameras' colours itself, after clipping is known. A matrix that
    stays on (a read-only switch, or a camera with presets and no switch) is recorded, for
    ``align`` to undo, and a warning when the camera delivers RGB (undoing cannot restore
    what the output clipped); raw Bayer output bypasses it. Call this after the pixel
    format is set."""
    enable, value = camera.feature("ColorTransformationEnable"), camera.feature("ColorTransformationValue")
    if not enable.present and not value.present:
        return {}
    state: dict[str, Any] = {}
    if camera.feature("ColorTransformationSelector").present:
        try_set(camera, "ColorTransformationSelector", "RGBtoRGB", warnings)
    if enable.present:
        state["ColorTransformationEnable"] = try_set(camera, "ColorTransformationEnable", False, warnings)
        if not state["ColorTransformationEnable"]:
            return state
    matrix = _colour_matrix(camera) if value.present else None
    if matrix is not None:
        state["ColorTransformationMatrix"] = matrix
    if matrix == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]:
        return state
    pixel_format = str(camera.feature("PixelFormat").value or "")
    try:
        raw = PixelFormat.parse(pixel_format).raw
    except ImageFormatError:
        raw = False
    if not raw:
        shown = "" if matrix is None else f" {matrix}"
        warnings.append(f"{camera.info.serial or camera.info.id}: its colour transformation{shown} stays on for "
                        f"{pixel_format or 'its'} output: align undoes it, but not where the output itself clipped, "
                        "so masks beside clipped highlights are less reliable; capture a Bayer format (align "
                        "demosaics it), or choose a user set or light-source preset that leaves it at the identity")
    return state


def _colour_matrix(camera: Camera) -> list[list[float]] | None:
    """The 3x3 RGB-to-RGB matrix, read entry by entry through ``ColorTransformationValueSelector``;
    None where an entry cannot be selected or read."""
    entries = []
    for gain in COLOUR_GAINS:
        if try_set(camera, "ColorTransformationValueSelector", gain, []) != gain:
            return None
        entry = camera.feature("ColorTransformationValue").value
        if not isinstance(entry, (int, float)) or isinstance(entry, bool) or not math.isfinite(entry):
            return None
        entries.append(float(entry))
    return [entries[0:3], entries[3:6], entries[6:9]]


def configure_camera(camera: Camera, role: str, settings: CameraSettings, *, hardware_trigger: bool,
                     backend: str) -> AppliedSettings:
    """Apply settings, read back what the camera applied, and record missing features.

    Auto exposure, gain and white balance are switched off where they exist: a pair is
    only comparable when both cameras hold still. Missing trigger features mean the pair
    can only be software-timed (reported, not fatal); a missing exposure control makes the
    recorded exposure unknown (a warning).
    """
    warnings: list[str] = []
    user_set = load_user_set(camera, settings.user_set, warnings)
    features = camera.features()
    missing = [name for name, info in features.items() if not info.present]
    for auto in ("ExposureAuto", "GainAuto", "BalanceWhiteAuto"):
        try_set(camera, auto, "Off", warnings)
    if settings.pixel_format:
        refusals: list[str] = []
        applied_format = try_set(camera, "PixelFormat", settings.pixel_format, refusals)
        if str(applied_format) != settings.pixel_format:
            # Frames in another format than asked for would be decoded with the wrong bit
            # depth or pattern downstream: refuse before anything is recorded.
            said = f" ({'; '.join(refusals)})" if refusals else ""
            raise CameraError(f"{camera.info.serial or camera.info.id}: pixel format {settings.pixel_format!r} "
                              f"was not applied, the camera reads {applied_format!r}{said}; choose a format it "
                              "offers, or leave the pixel format unset")
    exposure = None
    if settings.exposure_us is not None:
        if features["ExposureTime"].present:
            exposure = try_set(camera, "ExposureTime", float(settings.exposure_us), warnings)
        else:
            warnings.append(f"{camera.info.serial or camera.info.id}: no ExposureTime feature; "
                            f"the exposure is not controlled and recorded as unknown")
    gain = set_gain_db(camera, settings.gain_db, warnings)
    has_trigger = all(features[name].present for name in TRIGGER_FEATURES)
    if has_trigger and camera.feature("TriggerSelector").present:
        # Trigger settings are per selector; the one that starts each frame is FrameStart.
        try_set(camera, "TriggerSelector", "FrameStart", warnings)
    armed = has_trigger
    if hardware_trigger and has_trigger:
        mode = try_set(camera, "TriggerMode", "On", warnings)
        armed = str(mode) == "On"
        if not armed:
            warnings.append(f"{camera.info.serial or camera.info.id}: TriggerMode On did not take (reads {mode!r}): "
                            "the camera free-runs, so pairs are software-timed")
        if settings.trigger_source:
            try_set(camera, "TriggerSource", settings.trigger_source, warnings)
        try_set(camera, "TriggerActivation", "RisingEdge", warnings)
    elif has_trigger:
        try_set(camera, "TriggerMode", "Off", warnings)
    state = pin_image_pipeline(camera, warnings)
    if user_set is not None:
        state["UserSetLoad"] = user_set
    final = camera.features()
    pixel_format = str(final["PixelFormat"].value or "")
    width, height = (int(camera.feature(name).value or 0) for name in ("Width", "Height"))
    record = CameraRecord(
        role=role, vendor=camera.info.vendor, model=camera.info.model, serial=camera.info.serial,
        backend=backend, device_id=camera.info.id, width=width, height=height, pixel_format=pixel_format,
        bit_depth=_bit_depth(pixel_format),
        exposure_us=float(exposure) if exposure is not None else None,
        gain_db=float(gain) if gain is not None else None,
        trigger_source=str(final["TriggerSource"].value) if final["TriggerSource"].present else None,
        lens=settings.lens, nd_filter=settings.nd_filter,
        temperature_c=float(final["DeviceTemperature"].value) if final["DeviceTemperature"].value is not None else None,
        missing_features=missing,
        state=state,
    )
    return AppliedSettings(record, warnings, armed, trigger_refused=hardware_trigger and has_trigger and not armed)


def light_balance_warning(b: CameraRecord, s: CameraRecord, tolerance: float) -> str | None:
    """Warn when T_B x transmission(ND_B) and T_S differ by more than ``tolerance``."""
    if b.exposure_us is None or s.exposure_us is None:
        return None
    transmission = float((b.nd_filter or {}).get("transmission", 1.0))
    s_transmission = float((s.nd_filter or {}).get("transmission", 1.0))
    light_b, light_s = b.exposure_us * transmission, s.exposure_us * s_transmission
    ratio = light_b / light_s
    if abs(ratio - 1) > tolerance:
        return (f"B collects {ratio:.2f}x the light of S (T_B x ND_B = {light_b:.0f} us, T_S x ND_S = "
                f"{light_s:.0f} us): fit an ND filter of transmission {s.exposure_us * s_transmission / b.exposure_us:.3f} on B")
    return None


def _bit_depth(pixel_format: str) -> int:
    """Significant bits of the camera's format (16 when the camera reports none we know)."""
    try:
        return PixelFormat.parse(pixel_format).bits
    except ImageFormatError:
        return 16
