"""``reloblur dataset validate``: every defect of a ReLoBlur-format dataset, with its path."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reloblur.batch import run_batch
from reloblur.errors import ImageReadError
from reloblur.formats.dataset import TEST, TRAIN, Pair, scan_dataset
from reloblur.formats.masks import MaskRecord, MaskRecordError
from reloblur.imaging.imageio import read_image

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One defect: the file it concerns, a stable code, a message, and its severity."""

    path: str
    code: str
    message: str
    severity: str = ERROR


@dataclass(frozen=True)
class ValidateOptions:
    """Options of ``reloblur dataset validate``.

    ``lenient_masks`` accepts what the released ReLoBlur masks contain and the original
    loader tolerates (3-channel masks, values other than 0/255) as warnings.
    """

    root: Path
    masks: Path | None = None
    bit_depth: int = 8
    lenient_masks: bool = False
    workers: int | None = None
    progress: bool = True


@dataclass
class ValidateReport:
    """Every defect found, with the pairs checked."""
    root: str
    masks_root: str | None
    pairs_checked: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """The problems that make the dataset invalid."""
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems worth a look that do not make it invalid."""
        return [p for p in self.problems if p.severity == WARNING]


@dataclass(frozen=True)
class _PairCheck:
    pair: Pair
    bit_depth: int
    lenient_masks: bool
    masks_expected: bool


def _check_image(path: Path, bit_depth: int, problems: list[Problem]) -> np.ndarray | None:
    try:
        image = read_image(path)
    except ImageReadError as exc:
        problems.append(Problem(str(path), "unreadable", str(exc)))
        return None
    if image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        problems.append(
            Problem(str(path), "channels", f"{path}: {channels} channel(s), expected RGB (3)")
        )
    depth = image.dtype.itemsize * 8
    if depth != bit_depth:
        problems.append(
            Problem(str(path), "bit-depth", f"{path}: {depth}-bit image, expected {bit_depth}-bit")
        )
    return image


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


def check_pair(check: _PairCheck) -> list[Problem]:
    """Read one pair (and mask) completely and list its defects."""
    pair = check.pair
    problems: list[Problem] = []
    for part in pair.rel_dir.parts:
        if "sharp" in part.lower():
            problems.append(
                Problem(
                    str(pair.sharp),
                    "sharp-in-path",
                    f"{pair.sharp}: directory name {part!r} contains 'sharp'; the original "
                    "ReLoBlur loader derives blur paths by replacing 'sharp' everywhere",
                )
            )
    blur = _check_image(pair.blur, check.bit_depth, problems)
    sharp = _check_image(pair.sharp, check.bit_depth, problems)
    if blur is not None and sharp is not None and blur.shape[:2] != sharp.shape[:2]:
        problems.append(
            Problem(
                str(pair.sharp),
                "size-mismatch",
                f"{pair.sharp}: {_size(sharp)} but its blurred partner is {_size(blur)}",
            )
        )
    if pair.mask is None:
        if check.masks_expected:
            problems.append(Problem(str(pair.blur), "missing-mask", f"{pair.blur}: pair has no mask"))
        return problems
    mask_severity = WARNING if check.lenient_masks else ERROR
    try:
        mask = read_image(pair.mask)
    except ImageReadError as exc:
        problems.append(Problem(str(pair.mask), "unreadable", str(exc)))
        return problems
    if mask.ndim != 2:
        problems.append(
            Problem(
                str(pair.mask),
                "mask-channels",
                f"{pair.mask}: mask has {mask.shape[2]} channels, expected 1",
                mask_severity,
            )
        )
        mask = mask[:, :, 0]
    if mask.dtype != np.uint8:
        problems.append(
            Problem(str(pair.mask), "bit-depth", f"{pair.mask}: {mask.dtype} mask, expected 8-bit")
        )
    stray_values = np.setdiff1d(np.unique(mask), [0, 255])
    if stray_values.size:
        problems.append(
            Problem(
                str(pair.mask),
                "mask-not-binary",
                f"{pair.mask}: mask is not binary 0/255 ({stray_values.size} other value(s), "
                f"e.g. {int(stray_values[0])})",
                mask_severity,
            )
        )
    if blur is not None and mask.shape[:2] != blur.shape[:2]:
        problems.append(
            Problem(
                str(pair.mask),
                "size-mismatch",
                f"{pair.mask}: mask is {_size(mask)} but its blurred image is {_size(blur)}",
            )
        )
    withheld = _withheld(pair.mask)
    if withheld is not None:
        share, reason = withheld
        why = ("too few pixels were unclipped in both images to measure the cameras' relative gain"
               if reason == "unmeasured gain" else
               f"the difference covered {100 * share:.0f} % of the frame, which its model does not describe")
        problems.append(
            Problem(
                str(pair.mask),
                "mask-withheld",
                f"{pair.mask}: empty because mask generate withheld it ({why}): mask the pair by hand "
                "(reloblur mask review) or leave it out, or a model trains on it as unblurred",
                WARNING,
            )
        )
    return problems


def _withheld(mask: Path) -> tuple[float, str] | None:
    """The share a generated mask would have covered when ``mask generate`` withheld it, and
    why (``withheld_reason``; sidecars from before it was recorded: ``"majority"``); None
    for a mask it gave, one a person edited or reviewed since, or one without a readable
    sidecar (the released ReLoBlur masks have none)."""
    try:
        record = MaskRecord.read(mask)
    except MaskRecordError:
        return None
    if record is None or record.curated:
        return None
    share = record.diagnostics.get("withheld_fraction")
    if not isinstance(share, (int, float)):
        return None
    reason = record.diagnostics.get("withheld_reason")
    return float(share), reason if isinstance(reason, str) else "majority"


def validate_dataset(options: ValidateOptions) -> ValidateReport:
    """Check a dataset tree and its masks; every problem names its file.

    Checks: missing partner, size mismatch (pair and mask), unreadable, empty or truncated
    file, image not RGB, wrong bit depth, mask not single-channel or not binary, missing
    mask (when a masks tree exists), 'sharp' in a directory name, stray files; and, as
    warnings, a scene with sequences in both train and test, and a mask ``mask generate``
    withheld (empty, its pair flagged) that nobody has edited or reviewed since.
    """
    scan = scan_dataset(options.root, masks_root=options.masks)
    report = ValidateReport(
        root=str(scan.root),
        masks_root=str(scan.masks_root) if scan.masks_root else None,
        pairs_checked=len(scan.pairs),
    )
    problems = report.problems
    if not scan.pairs and not scan.orphans:
        problems.append(Problem(str(scan.root), "empty", f"{scan.root}: no image pairs found"))
    for orphan in scan.orphans:
        problems.append(
            Problem(
                str(orphan.path),
                "missing-partner",
                f"{orphan.path}: partner {orphan.missing.name} is missing",
            )
        )
    for stray in scan.strays:
        problems.append(
            Problem(
                str(stray),
                "stray-file",
                f"{stray}: not part of the layout <split>/<scene>/<seq>/NN_(blur|sharp).png",
            )
        )
    for stray in scan.stray_masks:
        problems.append(Problem(str(stray), "stray-mask", f"{stray}: mask without a pair"))
    splits_of: dict[str, set[str]] = {}
    for pair in scan.pairs:
        if pair.scene is not None and pair.split is not None:
            splits_of.setdefault(pair.scene, set()).add(pair.split)
    for scene, splits in sorted(splits_of.items()):
        if {TRAIN, TEST} <= splits:
            problems.append(Problem(
                str(scan.root / TEST / scene), "scene-in-both-splits",
                f"{scan.root / TEST / scene}: scene {scene!r} is in train and in test: scores on a scene the model "
                "was trained on flatter it (`reloblur dataset split` moves whole scenes)", WARNING))

    checks = [
        _PairCheck(pair, options.bit_depth, options.lenient_masks, scan.masks_root is not None)
        for pair in scan.pairs
    ]
    result = run_batch(
        check_pair,
        checks,
        key=lambda c: c.pair.id,
        workers=options.workers,
        description="validating pairs",
        progress=options.progress,
    )
    for pair_problems in result.results.values():
        problems.extend(pair_problems)
    for failure in result.failures:
        problems.append(Problem(failure.item, "check-failed", failure.reason))
    return report
