"""B and S of one burst: the single-camera method beside the beam-splitter rig.

A fast camera in overlapping-exposure mode records K consecutive raw frames. In linear
light their mean is what a K times longer exposure would have recorded (up to the small
gaps between exposures): **B**. One of them, at the phase the dataset asks for, is **S**.
Both come from one sensor through one pipeline, so there is nothing to register and no
colour to match; S is only noisier (by about sqrt(K)).

Two things can make a burst a bad pair, and both are checked here rather than averaged
over:

* **A frame missing or repeated** (a dropped buffer, a camera that resent one): the mean
  would then span a gap or count a moment twice. The frame ids (or, without ids, the
  device timestamps against the frame period) must count up by one.
* **Camera shake**: if the camera itself moved between the first and last frame, the
  static background is blurred too and B is not a *local* blur. The global shift between
  the first and last frame is measured (phase correlation, which the static majority
  dominates) and a burst shaken beyond a fraction of a pixel is flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from reloblur.errors import ReloblurError
from reloblur.formats.timing import SPhase, check_s_phase

# Global shift (px) between a burst's first and last frame beyond which it is flagged as
# shaken: a quarter pixel already blurs fine static texture visibly in B, and phase
# correlation measures a noisy pair's shift to a few hundredths of a pixel.
SHAKE_LIMIT_PX = 0.25
# Exposed fraction (exposure / frame period) below which the gaps between a burst's
# exposures dash B's streaks.
DASHED_BELOW = 0.9


class BurstError(ReloblurError):
    """A burst cannot give a pair: a frame missing or repeated, or frames that disagree."""


@dataclass
class BurstPair:
    """B and S of one burst, in linear light with the black level removed.

    Attributes
    ----------
    blur
        ``(H, W)`` or ``(H, W, C)`` float32, the mean of the ``frames`` raw frames, in
        units of the sensor's range above black (1.0 = white level).
    sharp
        The same for frame ``sharp_index`` alone.
    shake_px
        Global shift between the first and last frame (px); ``None`` when only the sum
        was kept (no frames to compare).
    """

    blur: np.ndarray
    sharp: np.ndarray
    frames: int
    sharp_index: int
    shake_px: float | None = None
    flags: list[str] = field(default_factory=list)


def sharp_index(frames: int, phase: SPhase) -> int:
    """The frame that is S: the first, the last, or the middle one (of an even count, the
    later of the two middle frames; the dataset records which).

    >>> [sharp_index(5, p) for p in ("start", "middle", "end")], sharp_index(4, "middle")
    ([0, 2, 4], 2)
    """
    if frames < 1:
        raise BurstError(f"a burst needs at least one frame (got {frames})")
    return {"start": 0, "middle": frames // 2, "end": frames - 1}[check_s_phase(phase)]


def check_contiguous(frame_ids: Sequence[int | None], *, timestamps_ns: Sequence[int | None] | None = None,
                     period_ns: float | None = None) -> None:
    """Raise :class:`BurstError` unless the burst's frames are consecutive.

    With frame ids (the camera's block or frame counter), each must be the previous plus
    one; without them, device timestamps must be one frame period apart (within half a
    period). A burst the camera can prove nothing about (neither) is accepted: the caller
    records that it was not checked.

    >>> check_contiguous([7, 8, 9])
    >>> check_contiguous([7, 9, 10])
    Traceback (most recent call last):
    ...
    reloblur.burst.build.BurstError: frame 8 missing between frames 7 and 9 (frame 2 of the burst)
    """
    ids = list(frame_ids)
    if ids and all(i is not None for i in ids):
        for k in range(1, len(ids)):
            previous, current = int(ids[k - 1]), int(ids[k])  # type: ignore[arg-type]
            if current == previous:
                raise BurstError(f"frame {current} repeated (frames {k} and {k + 1} of the burst)")
            if current != previous + 1:
                missing = f"frame {previous + 1}" if current == previous + 2 else f"frames {previous + 1}-{current - 1}"
                if current < previous:
                    raise BurstError(f"frame ids go back from {previous} to {current} (frame {k + 1} of the burst)")
                raise BurstError(f"{missing} missing between frames {previous} and {current} "
                                 f"(frame {k + 1} of the burst)")
        return
    stamps = list(timestamps_ns or [])
    if period_ns and stamps and all(t is not None for t in stamps):
        for k in range(1, len(stamps)):
            gap = (int(stamps[k]) - int(stamps[k - 1])) / period_ns  # type: ignore[arg-type]
            if abs(gap - 1.0) > 0.5:
                raise BurstError(f"frames {k} and {k + 1} of the burst are {gap:.2f} frame periods apart "
                                 f"({period_ns / 1e3:.0f} us each): a frame {'missing' if gap > 1 else 'repeated'}")


def _normalised(raw: np.ndarray, black_level: float, white_level: float) -> np.ndarray:
    if not white_level > black_level:
        raise BurstError(f"white level {white_level} must be above the black level {black_level}")
    return ((raw.astype(np.float64) - black_level) / (white_level - black_level)).astype(np.float32)


def global_shift(first: np.ndarray, last: np.ndarray, *, tiles: int = 4) -> float:
    """The camera's own motion between two frames of a burst (px).

    Each of ``tiles`` x ``tiles`` tiles is phase-correlated on its own and the median of
    their shifts taken: a moving object moves the tiles it covers, the camera moves them
    all, so the median follows the static majority (one correlation over the whole frame
    follows a large moving object instead). Colour frames are compared by their mean over
    channels.
    """
    a, b = (np.asarray(f, np.float64) for f in (first, last))
    if a.ndim == 3:
        a, b = a.mean(axis=2), b.mean(axis=2)
    h, w = a.shape
    th, tw = h // tiles, w // tiles
    if th < 16 or tw < 16:
        tiles, th, tw = 1, h, w
    window = cv2.createHanningWindow((tw, th), cv2.CV_64F)
    shifts = []
    for i in range(tiles):
        for j in range(tiles):
            ta = a[i * th : (i + 1) * th, j * tw : (j + 1) * tw]
            tb = b[i * th : (i + 1) * th, j * tw : (j + 1) * tw]
            if ta.std() == 0:
                continue  # a flat tile says nothing
            (dx, dy), _ = cv2.phaseCorrelate(ta - ta.mean(), tb - tb.mean(), window)
            shifts.append((dx, dy))
    if not shifts:
        return 0.0
    dx, dy = np.median(np.array(shifts), axis=0)
    return float(math.hypot(dx, dy))


def build_burst_pair(frames: np.ndarray, *, black_level: float = 0.0, white_level: float = 65535.0,
                     phase: SPhase = "middle", frame_ids: Sequence[int | None] | None = None,
                     shake_limit_px: float = SHAKE_LIMIT_PX) -> BurstPair:
    """B (mean of the frames) and S (one of them) of a burst whose raw frames were kept.

    Parameters
    ----------
    frames
        ``(K, H, W)`` (mono or a Bayer mosaic, demosaiced afterwards for both alike) or
        ``(K, H, W, C)`` raw frames as the camera delivered them, integer or float.
    black_level, white_level
        The sensor's black and white levels in the frames' units.
    phase
        Which frame is S (:func:`sharp_index`).
    frame_ids
        The camera's frame counter per frame, checked by :func:`check_contiguous`.

    Returns
    -------
    BurstPair
        ``shake_px`` is measured; ``flags`` names a shake beyond ``shake_limit_px``.

    Raises
    ------
    BurstError
        Fewer than two frames, a frame missing or repeated, or bad levels.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or frames.shape[0] < 2:
        raise BurstError(f"a burst is (K, H, W[, C]) with K >= 2 frames, got shape {frames.shape}")
    if frame_ids is not None:
        if len(frame_ids) != frames.shape[0]:
            raise BurstError(f"{len(frame_ids)} frame ids for {frames.shape[0]} frames")
        check_contiguous(frame_ids)
    total = frames.sum(axis=0, dtype=np.float64)
    pair = build_from_sum(total, frames[sharp_index(frames.shape[0], phase)], count=frames.shape[0],
                          black_level=black_level, white_level=white_level, phase=phase)
    pair.flags = []  # the frames were kept: shake is measured below
    pair.shake_px = global_shift(frames[0], frames[-1])
    if pair.shake_px > shake_limit_px:
        pair.flags.append(f"camera shake: the background moved {pair.shake_px:.2f} px between the first and last "
                          f"frame (limit {shake_limit_px} px), so B is blurred everywhere, not locally")
    return pair


def build_from_sum(frame_sum: np.ndarray, sharp: np.ndarray, *, count: int, black_level: float = 0.0,
                   white_level: float = 65535.0, phase: SPhase = "middle") -> BurstPair:
    """B and S of a burst of which only the exact sum of its ``count`` frames and the S frame
    were kept (``capture --mode burst`` without ``--keep-frames``). Camera shake cannot be
    measured without the frames: ``shake_px`` is None, and a flag says so."""
    if count < 2:
        raise BurstError(f"a burst needs at least two frames (got {count})")
    if frame_sum.shape != sharp.shape:
        raise BurstError(f"the frame sum is {frame_sum.shape} but S is {sharp.shape}")
    blur = _normalised(np.asarray(frame_sum, np.float64) / count, black_level, white_level)
    return BurstPair(blur=blur, sharp=_normalised(sharp, black_level, white_level), frames=count,
                     sharp_index=sharp_index(count, phase),
                     flags=["camera shake not checked: only the frame sum was kept"])
