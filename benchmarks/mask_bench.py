"""LBFMG masks on what ``align`` really produces, one row per camera condition.

Pairs come from ``benchmarks/pairgen.py`` (not from ``reloblur.sim``): unaligned B/S in
linear light under each condition of ``pairgen.CONDITIONS``. Each pair goes through
``align_pair`` exactly as ``reloblur align --no-crop`` runs it (S registered and colour-
corrected onto B's grid, both written as 8-bit sRGB, the validity mask beside them), then
each method makes a mask:

* ``lbfmg``: the current generator (``reloblur mask generate``), given the validity mask;
* ``lbfmg v1``: the generator as it was at 94cccc5 (``baselines/lbfmg_v1.py``);
* ``plain difference``: |B - S| > 3 global noise sigmas, nothing else;
* on burst rows also ``lbfmg --method flow`` and ``--method both``: the burst's frames,
  display-encoded as B and S are, through DIS optical flow (``reloblur.lbfmg.flow``),
  alone or combined with the difference mask, as ``mask generate --method`` runs them
  (goal for ``both``, issue 20: the same IoU and area, at <= 0.2 s a pair).

Moving pairs are scored by IoU, its two parts (recall: the share of the swept region the
mask covers; precision: the share of the mask on it) and boundary F (2 px) against the
swept region, and by IoU in bands of how far their objects moved (``TRAVEL_BANDS``);
static pairs (nothing moved) by the mask's area, never by IoU. A pair whose mask ``lbfmg`` withheld
(more than half the frame, flagged instead) scores the empty mask it wrote, and is counted
(``withheld_static``, ``withheld_moving``). Each row also reports ``align``'s registration
against the pairs' true geometry (``align_corner_px_*``, ``align_pairs_over_*``) and the
pairs it refused (``align_failures``); ``--exact-registration`` keeps each pair's true
homography instead, so that the two runs part a row's shortfall between ``align`` and the
mask step, and ``--exact-colour`` gives ``align`` each pair's true colour relation as a
colour calibration (``align --calibration`` with ``color_mode: calibrated``: a gain fitted on
top), so that they part it between the colour fit and the rest. Goals (issue 13): mean IoU >= 0.85
on moving pairs in every row, <= 0.5 % area on every static pair, <= 0.1 s per 538x359 pair.
Every method runs with the allocator settings ``mask generate``'s workers use
(:func:`reloblur.allocator.keep_freed_memory`).

    python benchmarks/mask_bench.py                        # 10 moving + 3 static per row
    python benchmarks/mask_bench.py --moving 4 --static 2 --repeats 3 --json
    python benchmarks/mask_bench.py --only "compressed video" --set s_noise=3   # a row, varied
    python benchmarks/mask_bench.py --only over-exposed --exact-registration   # registration exact
    python benchmarks/mask_bench.py --only "colour transformed" --exact-colour  # colours calibrated exactly
    python benchmarks/mask_bench.py --repeats 3 --json --pairs cache/   # aligned pairs made once, read after
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baselines.lbfmg_v1 import generate_mask as generate_v1  # noqa: E402
from pairgen import CONDITIONS, ISP_COLOUR, BenchPair, Condition, make_pair, parse_size, with_size  # noqa: E402
from reloblur.allocator import keep_freed_memory  # noqa: E402
from reloblur.atomic import atomic_open  # noqa: E402
from reloblur.imaging.clipping import ClippedOutput, clipped_levels  # noqa: E402
from reloblur.imaging.imageio import encode_srgb, to_float  # noqa: E402
from reloblur.imaging.lens import radial_coordinates, undo_radial  # noqa: E402
from reloblur.imaging.raw import undo_colour_transformation  # noqa: E402
from reloblur.lbfmg.clipping import clipped_output_mixing  # noqa: E402
from reloblur.lbfmg.flow import flow_mask, with_motion  # noqa: E402
from reloblur.lbfmg.generate import MaskResult, generate_mask, noise_sigma  # noqa: E402
from reloblur.lbfmg.metrics import area_fraction, area_precision, area_recall, boundary_f_score, iou  # noqa: E402
from reloblur.postprocess.align import AlignmentError, AlignResult, AlignSettings, align_pair  # noqa: E402

METHODS = ("lbfmg", "lbfmg v1", "plain difference")
BURST_METHODS = ("lbfmg --method flow", "lbfmg --method both")  # burst rows only: they need the frames
# Moving pairs are also scored in bands of how far their objects moved (pairgen's
# BenchPair.travel, px over B's exposure): a blur a few pixels wide leaves little evidence,
# and where in the 5-40 px range a row's misses lie says what its mean alone cannot.
TRAVEL_BANDS = ((0.0, 10.0), (10.0, 20.0), (20.0, float("inf")))


def travel_band(travel: float) -> str:
    """The name of the band of :data:`TRAVEL_BANDS` that ``travel`` (px) falls in.

    >>> travel_band(6.5), travel_band(10.0), travel_band(38.0)
    ('<10 px', '10-20 px', '>=20 px')
    """
    for low, high in TRAVEL_BANDS:
        if low <= travel < high:
            if low == 0:
                return f"<{high:g} px"
            return f">={low:g} px" if high == float("inf") else f"{low:g}-{high:g} px"
    raise ValueError(f"travel {travel!r} px is not a displacement")


def travel_band_names() -> list[str]:
    """The names of :data:`TRAVEL_BANDS`, shortest travel first."""
    return [travel_band(low) for low, _ in TRAVEL_BANDS]


def plain_difference(blur: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    b, s = to_float(blur), to_float(sharp)
    sigma = np.sqrt(np.mean([noise_sigma(b[..., c]) ** 2 + noise_sigma(s[..., c]) ** 2 for c in range(3)]))
    return np.where(np.abs(b - s).max(axis=2) > 3 * sigma, 255, 0).astype(np.uint8)


def as_recorded(pair) -> tuple[np.ndarray, np.ndarray, tuple[ClippedOutput | None, ClippedOutput | None]]:
    """B and S as ``align`` decodes them, and where each camera's own output clipped: where
    the session recorded the cameras' colour matrix, undone (its output clip found first),
    as ``reloblur align`` does; otherwise as they are, with no output clip."""
    if pair.camera_matrix is None:
        return pair.blur, pair.sharp, (None, None)
    output_clipped = (clipped_levels(pair.blur, code=1 / 65535), clipped_levels(pair.sharp, code=1 / 65535))
    return (undo_colour_transformation(pair.blur, pair.camera_matrix),
            undo_colour_transformation(pair.sharp, pair.camera_matrix), output_clipped)


def aligned(pair, *, calibrated: bool = False, burst: bool = False, lk_points: int | None = None,
            exact: bool = False, output_clip: bool = True, colour: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, AlignResult | None]:
    """What ``reloblur align --no-crop`` writes: 8-bit sRGB B and S, the validity and clip
    maps, and the alignment they came from (None for a burst).

    ``calibrated``: start from the rig's homography, as ``align --calibration`` does (a
    featureless scene gives feature matching nothing to work with). ``burst``: one sensor
    took both, nothing to register (``reloblur burst build`` writes them as they are).
    ``lk_points``: the registration's point budget, if not the default. ``exact``: the
    pair's true homography kept as given (``align --calibration --no-refine`` with a
    calibration without error); the colour fit and the rest as ``align`` does them.
    ``output_clip``: False tells ``align`` nothing of where the cameras' outputs clipped
    before their matrices were undone (what it was told before 9d19d35; the baseline of
    ``colour_bench.py``). ``colour``: a colour calibration, ``(3, 3)`` S -> B in the space
    ``align`` fits in (:func:`true_relation`), given as ``align --calibration`` gives a rig's:
    only a gain is fitted on top of it.
    """
    blur, sharp, output_clipped = as_recorded(pair)
    if not output_clip:
        output_clipped = (None, None)
    if burst:
        return encode_srgb(blur), encode_srgb(sharp), np.ones(blur.shape[:2], bool), None, None
    prior = pair.homography if calibrated or exact else None
    settings = AlignSettings(crop=False, refine=not exact, color_mode="matrix" if colour is None else "calibrated")
    if lk_points is not None:
        settings = replace(settings, lk_points=lk_points)
    result = align_pair(blur, sharp, settings=settings, prior_homography=prior, prior_color=colour,
                        output_clipped=output_clipped)
    valid = result.valid if result.valid is not None else np.ones(blur.shape[:2], bool)
    return (encode_srgb(blur), encode_srgb(np.clip(result.sharp_aligned, 0, 1)), valid, result.clip_flags, result)


def true_relation(pair, condition: Condition) -> np.ndarray:
    """The map from S's colours onto B's (``(3, 3)``) in the space ``align`` fits in: the
    sensors' where ``align`` undid the cameras' matrices, the cameras' outputs' otherwise.
    ``pair`` made with ``twins=True``."""
    relation = pair.twins.to_blur.astype(np.float64)
    if condition.isp_recorded:
        return np.linalg.inv(ISP_COLOUR) @ relation @ ISP_COLOUR
    return relation


def registration_error(pair, alignment: AlignResult, distortion: float) -> float:
    """How far (px) ``alignment`` puts the farthest of B's corners in S from where the
    pair's true geometry does: S's lens difference, where the row has one, taken as
    pairgen makes it (S's pixels read the scene through it), not as ``align`` models it."""
    h, w = pair.blur.shape[:2]
    x, y = np.array([0.0, w - 1, w - 1, 0.0]), np.array([0.0, 0.0, h - 1, h - 1])
    bent = np.stack(radial_coordinates(x, y, alignment.radial, w, h), axis=1)
    estimated = cv2.perspectiveTransform(bent[None], np.asarray(alignment.homography, np.float64))[0]
    mapped = cv2.perspectiveTransform(np.stack([x, y], axis=1)[None], np.asarray(pair.homography, np.float64))[0]
    truth = np.stack(undo_radial(mapped[:, 0], mapped[:, 1], distortion, w, h), axis=1)
    return float(np.linalg.norm(estimated - truth, axis=1).max())


def output_mixing(pair, alignment: AlignResult | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What `mask generate` reads from the record of a session whose cameras' matrix align
    undid (:func:`clipped_output_mixing`); nothing for other pairs, or a burst."""
    if pair.camera_matrix is None or alignment is None:
        return None, None
    return clipped_output_mixing((pair.camera_matrix, pair.camera_matrix), alignment.color.matrix)


def recorded_phase(instant: float) -> str | None:
    """S's ``instant`` within B's exposure (0 to 1) as a session of such a rig records it
    (``rig["s_phase"]``, which `align` carries to `mask generate`), or `burst build` the
    frame it took for S: the toolkit names the start, middle and end of B's exposure; None
    for an instant between."""
    return {0.0: "start", 0.5: "middle", 1.0: "end"}.get(instant)


def _sensitivity(pair, calibrated: bool, first: AlignResult, mask: np.ndarray, measured: bool,
                 phase: str | None) -> tuple[float, float]:
    """How much the mask depends on incidental alignment differences: the pair aligned
    again with half the registration's points (a few hundredths of a pixel apart), and
    ``(|IoU change|, largest corner displacement between the two alignments in px)``."""
    blur, sharp, valid, clipped, second = aligned(pair, calibrated=calibrated,
                                                  lk_points=AlignSettings().lk_points // 2)
    assert second is not None
    h, w = pair.blur.shape[:2]
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], float).T
    a, b = first.homography @ corners, second.homography @ corners
    moved = float(np.max(np.hypot(*(a[:2] / a[2] - b[:2] / b[2]))))
    mixing = output_mixing(pair, second)
    again = generate_mask(blur, sharp, valid=valid, clipped=clipped, colour_matrix=second.color.matrix,
                          crosstalk="measured" if measured else "prior", output_mixing=mixing, s_phase=phase).mask
    return abs(iou(again, pair.mask) - iou(mask, pair.mask)), moved


def lossy(image: np.ndarray, quality: int) -> np.ndarray:
    """An 8-bit RGB image through JPEG at ``quality`` (what a camera's or a video's lossy
    output leaves of it)."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])


@dataclass
class AlignedPair:
    """One pair as ``reloblur align --no-crop`` writes it (:func:`aligned`, then ``--jpeg``
    where given), with the generator's truth: what each method is scored on."""

    index: int
    static: bool
    travel: float  # px the pair's objects moved over B's exposure
    truth: np.ndarray  # (H, W), non-zero on the swept region (the generator's mask)
    blur: np.ndarray
    sharp: np.ndarray
    valid: np.ndarray
    clipped: np.ndarray | None  # align's clip map (None: a burst, not registered)
    colour: np.ndarray | None  # the matrix align corrected S's colours with (None: a burst)
    mixing: tuple[np.ndarray | None, np.ndarray | None]  # output_mixing
    corner: float | None  # registration_error, px (None: a burst)
    # Only where the pair was made in this run, not read from a cache: a burst's frames
    # (for the flow methods) and the pair and its alignment (for --sensitivity).
    frames: list[np.ndarray] | None = None
    made: tuple[BenchPair, AlignResult] | None = None


def aligned_row(condition: Condition, seed: int, *, moving: int, static: int, size: tuple[int, int],
                jpeg: tuple[int, int] | None = None, exact: bool = False, exact_colour: bool = False
                ) -> Iterator[AlignedPair | None]:
    """A row's pairs of one seed, made and aligned one at a time: None for a pair ``align``
    refused. ``exact_colour``: each pair's true colour relation given to ``align`` as a
    calibration (a burst has no colours to fit)."""
    burst = condition.burst_frames > 0
    calibrate = exact_colour and not burst
    for index in range(moving + static):
        pair = make_pair(condition, index, static=index >= moving, seed=seed, size=size, twins=calibrate)
        colour = true_relation(pair, condition) if calibrate else None
        try:
            blur, sharp, valid, clipped, alignment = aligned(pair, calibrated=condition.calibrated, burst=burst,
                                                             exact=exact, colour=colour)
        except AlignmentError:
            yield None
            continue
        if jpeg is not None:
            blur, sharp = lossy(blur, jpeg[0]), lossy(sharp, jpeg[1])
        yield AlignedPair(
            index, bool(pair.static), float(pair.travel), pair.mask, blur, sharp, valid, clipped,
            None if alignment is None else alignment.color.matrix, output_mixing(pair, alignment),
            None if alignment is None else registration_error(pair, alignment, condition.distortion),
            pair.frames, None if alignment is None else (pair, alignment))


# The cache of aligned pairs (``--pairs``, ``mask_cache.py``): one ``.npz`` file per row and
# seed, its pairs' arrays as "<i>.<field>" and its record as "meta".
CACHE_FORMAT = 2
# What a cached row's pairs were made with: a file made otherwise is not the same row.
CACHE_PROTOCOL = ("moving", "static", "size", "set", "jpeg")


class CacheMismatch(ValueError):
    """A cache file that is not the row asked for: made with another protocol, or not a cache file."""


def cache_name(row: str, seed: int) -> str:
    """The file a row's pairs of one seed are cached in.

    >>> cache_name("over-exposed, gains differ", 1077)
    'over-exposed-gains-differ-seed1077.npz'
    """
    return f"{re.sub(r'[^a-z0-9]+', '-', row.lower()).strip('-')}-seed{seed}.npz"


def cache_protocol(*, moving: int, static: int, size: tuple[int, int], changes: list[str],
                   jpeg: tuple[int, int] | None) -> dict:
    """The record of :data:`CACHE_PROTOCOL` a cache file's pairs were made with."""
    return {"moving": moving, "static": static, "size": f"{size[0]}x{size[1]}", "set": list(changes),
            "jpeg": None if jpeg is None else list(jpeg)}


def write_cached(path: Path, condition: Condition, seed: int, pairs: list[AlignedPair], failed: int,
                 protocol: dict) -> None:
    """A row's aligned pairs of one seed as a cache file, written whole or not at all."""
    arrays: dict[str, np.ndarray] = {}
    for key, pair in enumerate(pairs):
        # The last four are absent where the pair has none (a burst is not registered: no clip
        # map, no colour matrix; only a camera matrix align undid mixes outputs).
        fields = {"blur": pair.blur, "sharp": pair.sharp, "valid": pair.valid, "truth": pair.truth,
                  "clipped": pair.clipped, "colour": pair.colour, "mixing_b": pair.mixing[0], "mixing_s": pair.mixing[1]}
        arrays.update({f"{key}.{name}": np.asarray(value) for name, value in fields.items() if value is not None})
    meta = {"format": CACHE_FORMAT, **protocol, "row": condition.name, "seed": seed,
            "isp_colour": bool(condition.isp_colour), "s_phase": recorded_phase(condition.s_phase),
            "align_failures": failed,
            "items": [{"index": p.index, "static": p.static, "travel": p.travel, "corner": p.corner} for p in pairs]}
    with atomic_open(path) as handle:
        np.savez_compressed(handle, meta=np.array(json.dumps(meta)), **arrays)


def read_cached(path: Path, *, pairs: bool = True) -> tuple[dict, list[AlignedPair]]:
    """A cache file's record and (``pairs``) its aligned pairs."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, not {CACHE_FORMAT}")
            if not pairs:
                return meta, []
            stored = set(data.files)

            def optional(key: int, name: str) -> np.ndarray | None:
                return data[f"{key}.{name}"] if f"{key}.{name}" in stored else None

            return meta, [AlignedPair(item["index"], item["static"], item["travel"], data[f"{key}.truth"],
                                      data[f"{key}.blur"], data[f"{key}.sharp"], data[f"{key}.valid"],
                                      optional(key, "clipped"), optional(key, "colour"),
                                      (optional(key, "mixing_b"), optional(key, "mixing_s")), item["corner"])
                          for key, item in enumerate(meta["items"])]
    except (OSError, ValueError, KeyError) as error:
        raise CacheMismatch(f"{path}: not a mask cache file of format {CACHE_FORMAT} ({error})") from None


def cached_row(folder: Path, condition: Condition, seed: int, protocol: dict, *, load: bool = True
               ) -> tuple[list[AlignedPair], int, bool]:
    """A row's aligned pairs of one seed from ``folder``'s cache file, made and written there
    first where it has none: the pairs, how many ``align`` refused, and whether the file was
    there (``load`` False: a file there is checked by its record alone, and no pairs are
    returned from it). Raises :class:`CacheMismatch` for a file made with another
    ``protocol`` (:func:`cache_protocol`)."""
    path = folder / cache_name(condition.name, seed)
    if path.exists():  # a file is written whole, so one that exists is done
        meta, _ = read_cached(path, pairs=False)
        made = {key: meta.get(key) for key in CACHE_PROTOCOL}
        if made != protocol:
            raise CacheMismatch(f"{path} was made with {made}, not {protocol}: give another folder")
        return read_cached(path)[1] if load else [], meta["align_failures"], True
    jpeg = protocol["jpeg"]
    made_now = list(aligned_row(condition, seed, moving=protocol["moving"], static=protocol["static"],
                                size=parse_size(protocol["size"]), jpeg=None if jpeg is None else (jpeg[0], jpeg[1])))
    pairs = [p for p in made_now if p is not None]
    failed = len(made_now) - len(pairs)
    folder.mkdir(parents=True, exist_ok=True)
    write_cached(path, condition, seed, pairs, failed, protocol)
    return pairs, failed, False


def lbfmg_mask(pair: AlignedPair, *, crosstalk: str, s_phase: str | None) -> MaskResult:
    """``generate_mask`` on an aligned pair as ``mask generate`` runs it on what ``align``
    wrote: its validity and clip maps, colour matrix and output mixing, with ``crosstalk``
    (:func:`crosstalk_model`) and S's instant ``s_phase`` (None: read from the pair)."""
    return generate_mask(pair.blur, pair.sharp, valid=pair.valid, clipped=pair.clipped, colour_matrix=pair.colour,
                         crosstalk=crosstalk, output_mixing=pair.mixing, s_phase=s_phase)


def run_condition(condition, moving: int, static: int, seed: int, *, sensitivity: bool = False,
                  size: tuple[int, int] = (538, 359), jpeg: tuple[int, int] | None = None,
                  crosstalk: str = "prior", exact: bool = False, told_phase: bool = True,
                  pairs: Path | None = None, changes: list[str] | None = None,
                  exact_colour: bool = False) -> dict[str, dict]:
    """Every method's figures on one row's pairs of one ``seed``. ``pairs``: a folder of
    aligned pairs (:func:`cached_row`, ``changes`` the row's ``--set``), read where the row
    and seed are cached, made and cached otherwise; a burst row's pairs are made each time
    (the flow methods need their frames, and nothing registers them). Not with
    ``sensitivity``, ``exact`` or ``exact_colour``."""
    if pairs is not None and (sensitivity or exact or exact_colour):
        raise ValueError("cached pairs with --sensitivity, --exact-registration or --exact-colour: those align the "
                         "pairs themselves")
    methods = METHODS + (BURST_METHODS if condition.burst_frames else ())
    scores: dict[str, dict[str, list[float]]] = {
        m: {"iou": [], "recall": [], "precision": [], "bf": [], "area": [], "s": [], "withheld": [], "travel": [],
            "ends": []} for m in methods}
    failed = 0
    corners: list[float] = []  # each aligned pair's registration error (px)
    moved_by: list[tuple[float, float]] = []  # --sensitivity: (IoU change, corner difference)
    source: list[AlignedPair] | Iterator[AlignedPair | None]
    if pairs is not None and not condition.burst_frames:
        protocol = cache_protocol(moving=moving, static=static, size=size, changes=changes or [], jpeg=jpeg)
        source, failed, _ = cached_row(pairs, condition, seed, protocol)
    else:
        source = aligned_row(condition, seed, moving=moving, static=static, size=size, jpeg=jpeg, exact=exact,
                             exact_colour=exact_colour)
    for pair in source:
        if pair is None:
            failed += 1
            continue
        if pair.corner is not None:
            corners.append(pair.corner)
        blur, sharp = pair.blur, pair.sharp
        # What `mask generate` reads from align's sidecar (a burst's S was not corrected).
        # auto: measured unless the condition's cameras transform colour after their
        # sensors clip, as a session of such cameras would record them.
        model = crosstalk_model(pair.colour, crosstalk, isp_colour=condition.isp_colour)
        measured = model == "measured"
        # A session's rig or a burst's build records it; a folder of pairs does not, and the
        # mask step reads it from each pair (told_phase False)
        phase = recorded_phase(condition.s_phase) if told_phase else None
        runs = {
            "lbfmg": lambda a=pair, x=model, p=phase: lbfmg_mask(a, crosstalk=x, s_phase=p),
            "lbfmg v1": lambda b=blur, s=sharp: generate_v1(b, s).mask,
            "plain difference": lambda b=blur, s=sharp: plain_difference(b, s),
        }
        if pair.frames is not None:
            # As `mask generate --method flow|both` runs on a burst: the frames display-encoded
            # as B and S were, the difference mask combined with their motion (timed whole).
            def combined(method: str, b=blur, s=sharp, frames=pair.frames, p=phase) -> np.ndarray:
                motion = flow_mask(np.stack([encode_srgb(f) for f in frames]))
                return with_motion(generate_mask(b, s, s_phase=p), motion, method=method).mask

            runs["lbfmg --method flow"] = lambda: combined("flow")
            runs["lbfmg --method both"] = lambda: combined("both")
        for name, method in runs.items():
            start = time.perf_counter()
            mask = method()
            scores[name]["s"].append(time.perf_counter() - start)
            if isinstance(mask, MaskResult):
                # Withheld: no mask given, the pair flagged instead (more than half the frame).
                if mask.withheld_fraction is not None:
                    scores[name]["withheld"].append(float(pair.static))
                # S taken as exposed at an end of B's exposure (told, or read from the pair)
                scores[name]["ends"].append(float(mask.step_ends and not pair.static))
                mask = mask.mask
            record_mask(scores[name], mask, pair.truth, static=pair.static, travel=pair.travel)
            if not pair.static and sensitivity and name == "lbfmg" and pair.made is not None:
                made, alignment = pair.made
                moved_by.append(_sensitivity(made, condition.calibrated, alignment, mask, measured, phase))
    rows = {}
    for name, s in scores.items():
        rows[name] = {
            **mask_figures(s),
            "align_failures": failed,
            "align_corner_px_median": float(np.median(corners)) if corners else None,
            "align_corner_px_max": float(np.max(corners)) if corners else None,
            "align_pairs_over_1px": int(np.sum(np.array(corners) > 1)),
            "align_pairs_over_5px": int(np.sum(np.array(corners) > 5)),
            "withheld_static": int(sum(s["withheld"])),
            "withheld_moving": int(len(s["withheld"]) - sum(s["withheld"])),
            "moving_at_an_end": int(sum(s["ends"])),  # moving pairs whose S was taken as at an end
            "iou_by_travel": _by_travel(s["iou"], s["travel"]),
        }
    if moved_by:
        iou_change, moved = np.array(moved_by).T
        rows["lbfmg"].update({"sensitivity_mean_iou_change": float(iou_change.mean()),
                              "sensitivity_max_iou_change": float(iou_change.max()),
                              "sensitivity_pairs_over_0.1": int((iou_change > 0.1).sum()),
                              "sensitivity_pairs": int(iou_change.size),
                              "sensitivity_corner_px_median": float(np.median(moved))})
    return rows


def crosstalk_model(colour: np.ndarray | None, crosstalk: str, *, isp_colour: bool) -> str:
    """The ``crosstalk`` lbfmg runs with, as ``mask generate --crosstalk`` (``prior``,
    ``measured`` or ``auto``) gives it for a pair ``align`` corrected with ``colour`` (None: a
    burst, not corrected): ``auto`` measures it unless the row's cameras transform colour
    after their sensors clip, as a session of such cameras would record them."""
    measured = colour is not None and (crosstalk == "measured" or (crosstalk == "auto" and not isp_colour))
    return "measured" if measured else "prior"


def record_mask(scores: dict[str, list[float]], mask: np.ndarray, truth: np.ndarray, *, static: bool,
                travel: float) -> None:
    """One pair's figures appended to a method's ``scores``: a static pair's area, or a
    moving pair's IoU, recall, precision, boundary F and travel."""
    if static:
        scores["area"].append(area_fraction(mask))
        return
    scores["iou"].append(iou(mask, truth))
    scores["recall"].append(area_recall(mask, truth))
    scores["precision"].append(area_precision(mask, truth))
    scores["travel"].append(travel)
    scores["bf"].append(boundary_f_score(mask, truth))


def mask_figures(scores: dict[str, list[float]]) -> dict[str, float | None]:
    """A method's row figures from its ``scores`` (:func:`record_mask`, and ``s``: seconds
    a pair); None where no pair gave that figure."""
    def mean(key: str) -> float | None:
        return float(np.mean(scores[key])) if scores[key] else None

    area = scores["area"]
    return {
        "mean_iou": mean("iou"),
        "min_iou": float(np.min(scores["iou"])) if scores["iou"] else None,
        # which way the IoU was lost: the swept region missed, or the mask spread past it
        "mean_recall": mean("recall"),
        "mean_precision": mean("precision"),
        "mean_boundary_f": mean("bf"),
        "static_area_percent_max": 100 * float(np.max(area)) if area else None,
        "static_area_percent_mean": 100 * float(np.mean(area)) if area else None,
        "seconds_per_pair": mean("s"),
    }


def _by_travel(ious: list[float], travels: list[float]) -> dict[str, dict[str, float | int]]:
    """Mean IoU and pair count per band of :data:`TRAVEL_BANDS` that holds any pair."""
    bands: dict[str, list[float]] = {}
    for value, travel in zip(ious, travels):
        bands.setdefault(travel_band(travel), []).append(value)
    return {band: {"mean_iou": float(np.mean(bands[band])), "pairs": len(bands[band])}
            for band in travel_band_names() if band in bands}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moving", type=int, default=10, help="moving pairs per condition")
    parser.add_argument("--static", type=int, default=3, help="static pairs per condition")
    parser.add_argument("--repeats", type=int, default=1, help="repeats with different seeds (spread)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=None, help="run the conditions whose name contains this")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also align each moving pair with half the registration's points, and report how "
                             "much lbfmg's IoU changes (about doubles the time)")
    parser.add_argument("--size", default="538x359", type=parse_size,
                        help="pair size WxH (ReLoBlur's own is 2152x1436; objects and backgrounds scale with "
                             "it, motion stays 5-40 px)")
    parser.add_argument("--jpeg", default=None, metavar="QB/QS",
                        help="JPEG-compress the aligned B and S at these qualities (e.g. 85/75) before the masks "
                             "are made: lossy camera output or video")
    parser.add_argument("--crosstalk", choices=("prior", "measured", "auto"), default="prior",
                        help="lbfmg as `mask generate --crosstalk` runs it (measured: with align's colour matrix; "
                             "auto: as on pairs aligned from a session of the row's cameras; prior: as on pairs "
                             "with no session record)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="changes",
                        help="change a field of every selected condition (pairgen.Condition), e.g. video_quality=75 "
                             "or s_noise=3; the scenes stay the same (repeatable)")
    parser.add_argument("--exact-registration", action="store_true",
                        help="align each pair with its true homography kept as given (align --calibration "
                             "--no-refine): what the mask step makes of an exact geometry, against the plain run the "
                             "registration's share of a row's shortfall (the distortion row's lens difference is "
                             "not in it)")
    parser.add_argument("--exact-colour", action="store_true",
                        help="give align each pair's true colour relation as a colour calibration (only a gain "
                             "fitted on top): what the mask step makes of exact colours, against the plain run the "
                             "colour fit's share of a row's shortfall")
    parser.add_argument("--untold-phase", action="store_true",
                        help="do not tell the mask step S's instant (a folder of pairs, no session's record): it "
                             "reads it from each pair")
    parser.add_argument("--pairs", type=Path, default=None, metavar="FOLDER",
                        help="aligned pairs cached in FOLDER (mask_cache.py's files): a row and seed cached there "
                             "is read, not made and aligned again; one that is not is made and cached. Figures are "
                             "those of the run without it, seconds aside. Burst rows are made each time")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="every figure of a --json result file, one row per condition and method")
    parser.add_argument("--summary", type=Path, nargs="+", default=None, metavar="JSON",
                        help="the table in docs/benchmarks.md: --json result files of the same suite on "
                             "different --seed, side by side, one row per condition (runs of a few rows "
                             "on one --seed join in one column)")
    args = parser.parse_args()
    if args.markdown is not None:
        print(markdown(json.loads(args.markdown.read_text())))
        return
    if args.summary is not None:
        try:
            print(summary([json.loads(path.read_text()) for path in args.summary]))
        except ValueError as error:
            parser.error(f"--summary: {error}")
        return
    width, height = args.size
    jpeg = None
    if args.jpeg is not None:
        jpeg = parse_jpeg(args.jpeg)
        if isinstance(jpeg, str):
            parser.error(jpeg)
        if args.sensitivity:
            parser.error("--jpeg and --sensitivity: the second alignment would be scored uncompressed")
    if args.sensitivity and args.exact_registration:
        parser.error("--sensitivity and --exact-registration: an exact geometry has no registration to vary")
    if args.sensitivity and args.exact_colour:
        parser.error("--sensitivity and --exact-colour: the second alignment would fit its own colours")
    if args.pairs is not None and (args.sensitivity or args.exact_registration or args.exact_colour):
        parser.error("--pairs with --sensitivity, --exact-registration or --exact-colour: those align each pair "
                     "themselves")
    keep_freed_memory()
    conditions = selected_conditions(args.only, args.changes)
    if isinstance(conditions, str):
        parser.error(conditions)
    results: dict[str, list[dict]] = {}
    for condition in conditions:
        for repeat in range(args.repeats):
            try:
                rows = run_condition(condition, args.moving, args.static, args.seed + 1000 * repeat,
                                     sensitivity=args.sensitivity, size=(width, height), jpeg=jpeg,
                                     crosstalk=args.crosstalk, exact=args.exact_registration,
                                     told_phase=not args.untold_phase, pairs=args.pairs, changes=args.changes,
                                     exact_colour=args.exact_colour)
            except CacheMismatch as error:
                parser.error(f"--pairs: {error}")
            results.setdefault(condition.name, []).append(rows)
            if not args.json:
                for name, r in rows.items():
                    print(f"{condition.name:32s} {name:19s} IoU mean {_f(r['mean_iou'])} min {_f(r['min_iou'])} "
                          f"recall {_f(r['mean_recall'])} precision {_f(r['mean_precision'])} "
                          f"bF {_f(r['mean_boundary_f'])} static area max {_f(r['static_area_percent_max'], 2)} % "
                          f"{_f(r['seconds_per_pair'])} s/pair; IoU by travel: "
                          + (", ".join(f"{band} {b['mean_iou']:.3f} ({b['pairs']})"
                                       for band, b in r["iou_by_travel"].items()) or "-"), flush=True)
    if args.json:
        print(json.dumps({"moving": args.moving, "static": args.static, "repeats": args.repeats, "size": f"{width}x{height}",
                          "seed": args.seed, "jpeg": args.jpeg, "crosstalk": args.crosstalk, "set": args.changes,
                          "exact_registration": args.exact_registration, "exact_colour": args.exact_colour,
                          "untold_phase": args.untold_phase,
                          "results": results}, indent=2))


def parse_jpeg(text: str) -> tuple[int, int] | str:
    """``--jpeg QB/QS`` as two qualities, or what is wrong with it.

    >>> parse_jpeg("85/75"), parse_jpeg("85")
    ((85, 75), "--jpeg '85': give two qualities 1-100 as QB/QS, e.g. 85/75")
    """
    try:
        qualities = tuple(int(v) for v in text.split("/"))
    except ValueError:
        qualities = ()
    if len(qualities) != 2 or not all(1 <= q <= 100 for q in qualities):
        return f"--jpeg {text!r}: give two qualities 1-100 as QB/QS, e.g. 85/75"
    return qualities[0], qualities[1]


def selected_conditions(only: str | None, changes: list[str]) -> list[Condition] | str:
    """The rows whose name holds ``only`` (every row for None), each with the ``--set``
    ``changes``, or what is wrong with them. A changed row keeps its name, so that it draws
    the same scenes as without the change."""
    conditions = [c for c in CONDITIONS if only is None or only in c.name]
    if not changes:
        return conditions
    given = _changes(changes)
    if isinstance(given, str):
        return given
    try:
        return [with_size(c, **given) for c in conditions]
    except ValueError as error:
        return f"--set: {error}"


def _changes(items: list[str]) -> dict[str, object] | str:
    """``--set FIELD=VALUE`` items as typed field values, or what is wrong with one."""
    defaults = Condition("")
    changes: dict[str, object] = {}
    for item in items:
        field, _, text = item.partition("=")
        if field == "name" or not hasattr(defaults, field) or not text:
            return f"--set {item!r}: give FIELD=VALUE with a field of pairgen.Condition other than name"
        current = getattr(defaults, field)
        try:
            if isinstance(current, bool):
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                changes[field] = text.lower() == "true"
            elif isinstance(current, tuple):
                changes[field] = tuple(type(current[0])(v) for v in text.strip("()[] ").split(","))
            else:
                changes[field] = type(current)(text)
        except ValueError:
            return f"--set {item!r}: {text!r} is not a value of {field} (like {current!r})"
    return changes


def markdown(result: dict) -> str:
    """One row per condition and method: mean over repeats, and the range across repeats."""

    def spread(rows: list[dict], key: str, scale: float = 1.0, digits: int = 3) -> str:
        values = [r[key] * scale for r in rows if r.get(key) is not None]  # runs before a key existed lack it
        if not values:
            return "-"
        mean = sum(values) / len(values)
        if len(values) == 1:
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"

    lines = ["| condition | method | mean IoU | min IoU | recall | precision | boundary F | static area, max % | s / pair |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for condition, repeats in result["results"].items():
        for method in repeats[0]:
            rows = [r[method] for r in repeats]
            name = f"**{method}**" if method == "lbfmg" else method
            static = spread(rows, 'static_area_percent_max', digits=2)
            withheld = [sum(r.get(f"withheld_{kind}", 0) for r in rows) for kind in ("static", "moving")]
            if any(withheld):
                static += f"; withheld: {withheld[0]} static, {withheld[1]} moving"
            lines.append(f"| {condition} | {name} | {spread(rows, 'mean_iou')} | {spread(rows, 'min_iou')} | "
                         f"{spread(rows, 'mean_recall')} | {spread(rows, 'mean_precision')} | "
                         f"{spread(rows, 'mean_boundary_f')} | {static} | {spread(rows, 'seconds_per_pair')} |")
    sensitive = {c: [r["lbfmg"] for r in repeats] for c, repeats in result["results"].items()
                 if "sensitivity_pairs" in repeats[0]["lbfmg"]}
    if sensitive:
        lines += ["", "| condition | corner difference, median px | mean IoU change | max IoU change | pairs changed > 0.1 |",
                  "| --- | --- | --- | --- | --- |"]
        for condition, rows in sensitive.items():
            over = sum(r["sensitivity_pairs_over_0.1"] for r in rows)
            pairs = sum(r["sensitivity_pairs"] for r in rows)
            lines.append(f"| {condition} | {spread(rows, 'sensitivity_corner_px_median')} | "
                         f"{spread(rows, 'sensitivity_mean_iou_change')} | {spread(rows, 'sensitivity_max_iou_change')} | "
                         f"{over} of {pairs} |")
    registered = {c: [r["lbfmg"] for r in repeats] for c, repeats in result["results"].items()
                  if repeats[0]["lbfmg"].get("align_corner_px_max") is not None}
    if registered:
        lines += ["", "`align`'s registration against each pair's true geometry (the farthest corner, px; the median "
                  "as the mean of the repeats' and their range, the rest over all of them):", "",
                  "| condition | median | max | pairs over 1 px | over 5 px | refused |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for condition, rows in registered.items():
            lines.append(f"| {condition} | {spread(rows, 'align_corner_px_median', digits=2)} | "
                         f"{max(r['align_corner_px_max'] for r in rows):.2f} | "
                         f"{sum(r['align_pairs_over_1px'] for r in rows)} | {sum(r['align_pairs_over_5px'] for r in rows)} | "
                         f"{sum(r['align_failures'] for r in rows)} |")
    banded = {c: [r["lbfmg"]["iou_by_travel"] for r in repeats] for c, repeats in result["results"].items()
              if repeats[0]["lbfmg"].get("iou_by_travel")}
    if banded:
        names = travel_band_names()
        lines += ["", "**lbfmg**, mean IoU of the moving pairs by how far their objects moved over B's exposure "
                  "(pairs pooled over the repeats, their number in brackets):", "",
                  "| condition | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
        for condition, repeats in banded.items():
            cells = []
            for band in names:
                held = [r[band] for r in repeats if band in r]
                pairs = sum(h["pairs"] for h in held)
                cells.append(f"{sum(h['mean_iou'] * h['pairs'] for h in held) / pairs:.3f} ({pairs})" if pairs else "-")
            lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# What a run's pairs were made and scored under, beside the seed: runs that differ in any of
# these measured different things and are not summarised together.
PROTOCOL_KEYS = ("size", "jpeg", "crosstalk", "set", "exact_registration", "exact_colour", "untold_phase")
# What a result file written before a key existed ran with.
PROTOCOL_DEFAULTS = {"exact_colour": False}


def summary(results: list[dict]) -> str:
    """``lbfmg``'s figures of several runs of one suite (one ``--json`` result each, on
    different seed sets) side by side, one row per condition: each cell the runs' means over
    their repeats, separated by " / ", the lowest and highest repeat in brackets (the static
    area: its worst pair over the repeats); then the baselines' mean IoU in the same runs.
    Runs on one seed set (a few rows each, as ``--only`` makes them) join in one column, the
    first run holding a condition giving it. Conditions come in the order the runs first
    hold them; a seed set without one shows "-". Runs made under different protocols
    (:data:`PROTOCOL_KEYS`: size, lossy coding, crosstalk, changed fields...) are refused."""
    if not results:
        raise ValueError("no result files to summarise")
    protocols = {tuple(str(result.get(key, PROTOCOL_DEFAULTS.get(key))) for key in PROTOCOL_KEYS) for result in results}
    if len(protocols) > 1:
        differing = [key for i, key in enumerate(PROTOCOL_KEYS) if len({p[i] for p in protocols}) > 1]
        raise ValueError(f"the runs differ in {', '.join(differing)}: summarise runs of one protocol")
    columns: dict[object, dict] = {}
    for result in results:
        column = columns.setdefault(result["seed"], {"seed": result["seed"], "results": {}})
        for condition, repeats in result["results"].items():
            column["results"].setdefault(condition, repeats)
    results = list(columns.values())
    conditions = list(dict.fromkeys(condition for result in results for condition in result["results"]))

    def cell(result: dict, condition: str, method: str, key: str, *, worst: bool = False, spread: bool = True) -> str:
        repeats = result["results"].get(condition)
        values = [r[method][key] for r in repeats or () if method in r and r[method].get(key) is not None]
        if not values:
            return "-"
        if worst:
            return f"{max(values):.2f}"
        mean = sum(values) / len(values)
        if not spread or len(values) == 1:
            return f"{mean:.3f}"
        return f"{mean:.3f} ({min(values):.3f}-{max(values):.3f})"

    def cells(condition: str, method: str, key: str, **options: bool) -> str:
        return " / ".join(cell(result, condition, method, key, **options) for result in results)

    seeds = " / ".join(str(result["seed"]) for result in results)
    lines = [f"| condition | mean IoU, seed sets {seeds} (repeats' range) | recall | precision | "
             f"static area, worst pair % | `lbfmg v1` mean IoU | plain difference mean IoU |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for condition in conditions:
        lines.append(f"| {condition} | {cells(condition, 'lbfmg', 'mean_iou')} | "
                     f"{cells(condition, 'lbfmg', 'mean_recall', spread=False)} | "
                     f"{cells(condition, 'lbfmg', 'mean_precision', spread=False)} | "
                     f"{cells(condition, 'lbfmg', 'static_area_percent_max', worst=True)} | "
                     f"{cells(condition, 'lbfmg v1', 'mean_iou', spread=False)} | "
                     f"{cells(condition, 'plain difference', 'mean_iou', spread=False)} |")
    return "\n".join(lines)


def _f(value: float | None, digits: int = 3) -> str:
    return "  -  " if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
