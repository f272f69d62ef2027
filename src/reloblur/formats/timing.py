"""The rig's timing conventions, defined once: which instant of B's exposure S shows, the
delay of S's trigger that puts it there, and the default exposures.

The simulator, the sync-box emulator, the sim camera backend, the recorder and the CLI all
take these from here, so a change of convention cannot leave one of them behind.
"""

from __future__ import annotations

from typing import Literal, get_args

from reloblur.errors import ReloblurError

SPhase = Literal["start", "middle", "end"]
S_PHASES: tuple[str, ...] = get_args(SPhase)

# ReLoBlur's ratio: B exposes 20x longer than S (an ND filter equalises the light).
DEFAULT_B_EXPOSURE_US = 40_000.0
DEFAULT_S_EXPOSURE_US = 2_000.0


def check_s_phase(phase: str) -> SPhase:
    """``phase`` as an :data:`SPhase`, or :class:`ReloblurError` naming the choices."""
    if phase not in S_PHASES:
        raise ReloblurError(f"S phase {phase!r}: choose start, middle or end")
    return phase  # type: ignore[return-value]


def recorded_s_phase(value: object, where: str) -> SPhase | None:
    """An S phase as a file recorded it (a session's manifest, an align record, a burst's
    sidecar): None where nothing was recorded, else :func:`check_s_phase`'s, with
    :class:`ReloblurError` naming ``where`` for a value that is not one."""
    if value is None:
        return None
    try:
        return check_s_phase(str(value))
    except ReloblurError as exc:
        raise ReloblurError(f"{where}: {exc}") from None


def s_window(b_exposure_us: float, s_exposure_us: float, phase: str = "middle") -> tuple[float, float]:
    """S's exposure as a fraction interval of B's exposure, within ``[0, 1]``.

    >>> s_window(40_000, 2_000, "middle")
    (0.475, 0.525)
    """
    if not 0 < s_exposure_us <= b_exposure_us:
        raise ReloblurError(f"S exposure {s_exposure_us} us must be positive and no longer than B's "
                            f"{b_exposure_us} us")
    ratio = s_exposure_us / b_exposure_us
    start = {"start": 0.0, "middle": 0.5 - ratio / 2, "end": 1.0 - ratio}[check_s_phase(phase)]
    return start, start + ratio


def s_trigger_delay_us(b_exposure_us: float, s_exposure_us: float, phase: str = "middle",
                       offset_us: float = 0.0) -> float:
    """Delay of S's trigger after B's that puts S at ``phase`` of B's exposure.

    ``middle``: (T_B - T_S) / 2, so S's exposure is centred in B's; ``start``: 0 (as
    ReLoBlur); ``end``: T_B - T_S. ``offset_us`` corrects for the cameras' trigger latency.

    >>> s_trigger_delay_us(40_000, 2_000, "middle")
    19000.0
    """
    if s_exposure_us > b_exposure_us:
        raise ReloblurError(f"S exposure {s_exposure_us} us is longer than B's {b_exposure_us} us")
    return s_window(b_exposure_us, s_exposure_us, phase)[0] * b_exposure_us + offset_us
