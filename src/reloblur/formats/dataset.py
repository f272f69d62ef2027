"""The ReLoBlur dataset layout: discovering pairs, masks and sidecars on disk.

::

    dataset/<split>/<scene>/<seq>/NN_blur.png     B camera (locally blurred)
    dataset/<split>/<scene>/<seq>/NN_sharp.png    S camera (sharp target)
    dataset/<split>/<scene>/<seq>/NN.json         optional sidecar metadata (also NN.<kind>.json)
    masks/<split>/<scene>/<seq>/NN.png            blur mask of pair NN

A mask's path is its sharp image's path with the root ``dataset`` replaced by ``masks``
and the ``_sharp`` suffix dropped. The masks root defaults to the sibling ``masks`` of the
dataset root.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from reloblur.atomic import is_temporary
from reloblur.batch import ItemFailure
from reloblur.errors import DatasetError, ImageFormatError
from reloblur.formats.align_record import SIDECAR_SUFFIX as ALIGN_SIDECAR
from reloblur.formats.align_record import AlignRecord
from reloblur.imaging.imageio import read_image
from reloblur.imaging.raw import checked_colour_matrix
from reloblur.paths import outside

# The maps align leaves beside a pair for the mask step (written by pipeline.align).
VALIDITY_SUFFIX = ".valid.png"
CLIP_SUFFIX = ".clip.png"
PAIR_FILE = re.compile(r"^(?P<index>.+)_(?P<role>blur|sharp)(?P<ext>\.[A-Za-z0-9]+)$", re.I)
DATASET_SUFFIXES = frozenset({".png", ".tif", ".tiff"})  # what a ReLoBlur dataset holds
# Sidecars beside a pair: NN.json, NN.<kind>.json (e.g. NN.align.json), NN.valid.png.
# Files that belong to a pair without being one of its images: sidecars (<id>.json,
# <id>.align.json), align's validity and clip maps (<id>.valid.png, <id>.clip.png), a mask's
# confidence (<id>.conf.png).
SIDECAR_FILE = re.compile(r"^(?P<index>[^.]+)(?:\.[a-z]+)?\.json$|^(?P<valid>[^.]+)\.(?:valid|clip|conf)\.png$")
MASK_FILE = re.compile(r"^(?P<index>.+)\.png$", re.I)
RELOBLUR_DEPTH = 3  # <split>/<scene>/<seq>


@dataclass(frozen=True)
class Pair:
    """One blurred/sharp pair and, when present, its mask.

    ``rel_dir`` is the pair's directory relative to the dataset root
    (``train/s01/00`` in the ReLoBlur layout) and ``index`` its file prefix (``00``).
    """

    rel_dir: PurePosixPath
    index: str
    blur: Path
    sharp: Path
    mask: Path | None = None

    @property
    def id(self) -> str:
        """Unique name within a dataset: ``<rel_dir>/<index>``."""
        return str(self.rel_dir / self.index) if self.rel_dir.parts else self.index

    @property
    def split(self) -> str | None:
        """``train``/``test`` for a ReLoBlur-layout pair, else ``None``."""
        return self.rel_dir.parts[0] if len(self.rel_dir.parts) == RELOBLUR_DEPTH else None

    @property
    def scene(self) -> str | None:
        """The scene folder of a ReLoBlur-layout pair, else ``None``."""
        return self.rel_dir.parts[1] if len(self.rel_dir.parts) == RELOBLUR_DEPTH else None

    @property
    def seq(self) -> str | None:
        """The sequence folder of a ReLoBlur-layout pair, else ``None``."""
        return self.rel_dir.parts[2] if len(self.rel_dir.parts) == RELOBLUR_DEPTH else None

    @property
    def sidecar(self) -> Path:
        """Where this pair's metadata lives: ``<dir>/<index>.json`` beside the images."""
        return self.blur.parent / f"{self.index}.json"

    @property
    def validity_map(self) -> Path:
        """``<index>.valid.png``: where ``align --no-crop`` says S is defined."""
        return self.blur.parent / f"{self.index}{VALIDITY_SUFFIX}"

    @property
    def clip_map(self) -> Path:
        """``<index>.clip.png``: where ``align`` found either camera's output clipped."""
        return self.blur.parent / f"{self.index}{CLIP_SUFFIX}"

    @property
    def align_record(self) -> Path:
        """``<index>.align.json``: ``align``'s record, with the colour matrix S was corrected with."""
        return self.blur.parent / f"{self.index}{ALIGN_SIDECAR}"


@dataclass(frozen=True)
class AlignMaps:
    """What ``align`` left beside a pair for the mask step, each None where absent."""

    valid: np.ndarray | None  # (H, W)
    clipped: np.ndarray | None  # (H, W, 3) or (H, W) clip flags
    colour_matrix: np.ndarray | None = None  # (3, 3): S's linear RGB -> B's, as align corrected S
    # (3, 3) per camera (B, S): its own colour matrix, which align undid; None where it did not
    camera_matrices: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
    # what align's QA flagged on the pair (its record's ``flags``)
    align_flags: tuple[str, ...] = ()


def align_map_files(pair: Pair, *, record: bool = False) -> dict[str, Path]:
    """The files ``align`` left beside ``pair`` that the mask step reads, by name (``valid``,
    ``clip``, and with ``record`` ``align``, its record): those that exist."""
    named = [("valid", pair.validity_map), ("clip", pair.clip_map)] + ([("align", pair.align_record)] if record else [])
    return {name: path for name, path in named if path.exists()}


def read_align_maps(pair: Pair, *, record: bool = False) -> AlignMaps:
    """The validity and clip maps ``align`` wrote beside ``pair``, and with ``record`` the
    colour matrix S was corrected with, the camera matrices ``align`` undid and the flags
    its QA raised, as ``mask generate`` judges the pair with them; an unreadable one raises
    an error naming its file."""
    files = align_map_files(pair, record=record)
    valid = read_image(files["valid"]) if "valid" in files else None
    if valid is not None and valid.ndim == 3:
        valid = valid[:, :, 0]
    clipped = read_image(files["clip"]) if "clip" in files else None
    if "align" not in files:
        return AlignMaps(valid, clipped)
    align = AlignRecord.read(files["align"])
    cameras = align.camera_matrices or {}
    return AlignMaps(valid, clipped, _checked_matrix(align.color_matrix, files["align"], "color_matrix"),
                     (_camera_matrix(cameras.get("B"), files["align"], "B"),
                      _camera_matrix(cameras.get("S"), files["align"], "S")), tuple(align.flags))


def _camera_matrix(matrix: object, record: Path, role: str) -> np.ndarray | None:
    """A camera matrix of an align sidecar, checked as ``align`` checks the one it undid."""
    if matrix is None:
        return None
    checked = _checked_matrix(matrix, record, f"camera_matrices.{role}")
    try:
        return checked_colour_matrix(checked)
    except ImageFormatError as exc:
        raise DatasetError(f"{record}: camera_matrices.{role}: {exc}") from None


def _checked_matrix(values: object, record: Path, name: str) -> np.ndarray:
    """A colour matrix of an align sidecar, checked: the mask step divides by its diagonal."""
    try:
        matrix = np.array(values, float)
    except (ValueError, TypeError) as exc:  # ragged or not numbers
        raise DatasetError(f"{record}: {name} is not a matrix of numbers ({exc})") from None
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all() or (np.abs(np.diag(matrix)) < 1e-6).any():
        raise DatasetError(f"{record}: {name} must be 3x3, finite, with a non-zero diagonal; got {matrix.tolist()}")
    return matrix


@dataclass(frozen=True)
class Orphan:
    """An image whose partner is missing."""

    path: Path
    missing: Path
    rel_dir: PurePosixPath
    index: str
    missing_role: str  # "blur" or "sharp"


@dataclass
class DatasetScan:
    """Everything found under a dataset root (and its masks root)."""

    root: Path
    masks_root: Path | None
    pairs: list[Pair] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    strays: list[Path] = field(default_factory=list)
    stray_masks: list[Path] = field(default_factory=list)

    def by_split(self) -> dict[str, list[Pair]]:
        """The pairs grouped by split."""
        groups: dict[str, list[Pair]] = {}
        for pair in self.pairs:
            groups.setdefault(pair.split or ".", []).append(pair)
        return groups


def default_masks_root(root: str | os.PathLike[str]) -> Path:
    """The ReLoBlur convention: ``masks`` beside the dataset root."""
    return Path(root).resolve().parent / "masks"


def masks_tree(root: str | os.PathLike[str], masks: str | os.PathLike[str] | None = None) -> Path:
    """The masks tree a command on dataset ``root`` works with: ``masks`` when given, else
    the ReLoBlur convention's sibling (which may not exist yet)."""
    return Path(masks) if masks is not None else default_masks_root(root)


def outside_dataset(path: str | os.PathLike[str], root: str | os.PathLike[str],
                    masks: str | os.PathLike[str] | None = None) -> None:
    """Refuse a path a command would write that is dataset ``root``, its masks tree
    (:func:`masks_tree`), or inside either: a PNG written there would replace, or be read
    back as, an image or a mask (:func:`reloblur.paths.outside`)."""
    outside(path, root, what="dataset")
    outside(path, masks_tree(root, masks), what="masks tree")


def mask_path_for(rel_dir: PurePosixPath, index: str, masks_root: Path) -> Path:
    """``<masks_root>/<rel_dir>/<index>.png``."""
    return masks_root.joinpath(*rel_dir.parts, f"{index}.png")


def _walk_files(root: Path, exclude: Path | None = None) -> Iterable[Path]:
    excluded = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if excluded is not None and Path(dirpath).resolve() == excluded:
            dirnames.clear()
            continue
        for name in sorted(filenames):
            yield Path(dirpath) / name


def scan_dataset(
    root: str | os.PathLike[str],
    *,
    masks_root: str | os.PathLike[str] | None = None,
    depth: int | None = RELOBLUR_DEPTH,
    suffixes: frozenset[str] = DATASET_SUFFIXES,
    exclude: Path | None = None,
) -> DatasetScan:
    """Find pairs, orphans, stray files and stray masks under ``root``.

    Parameters
    ----------
    root
        Dataset root (the directory holding ``train/`` and ``test/``).
    masks_root
        Masks tree; ``None`` uses the sibling ``masks`` directory if it exists.
    depth
        Directory levels between the root and the pair files: 3 for the ReLoBlur layout;
        ``None`` accepts pairs at any depth (flat ``reloblur align`` output).
    suffixes
        File suffixes (lower case, with the dot) a pair's images may have; ``align`` adds
        camera raw formats.
    exclude
        A folder below ``root`` not to look into (``align`` writing inside its input).

    Raises
    ------
    DatasetError
        ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a directory")
    if masks_root is None:
        candidate = default_masks_root(root)
        masks = candidate if candidate.is_dir() else None
    else:
        masks = Path(masks_root)
        if not masks.is_dir():
            raise DatasetError(f"{masks}: masks directory does not exist")

    scan = DatasetScan(root=root, masks_root=masks)
    roles: dict[tuple[PurePosixPath, str], dict[str, Path]] = {}
    for path in _walk_files(root, exclude):
        rel = PurePosixPath(path.relative_to(root).as_posix())
        rel_dir = rel.parent if str(rel.parent) != "." else PurePosixPath()
        at_depth = depth is None or len(rel_dir.parts) == depth
        match = PAIR_FILE.match(path.name)
        if match and match["ext"].lower() in suffixes and at_depth and not is_temporary(path):
            key = (rel_dir, match["index"])
            roles.setdefault(key, {})[match["role"].lower()] = path
        elif SIDECAR_FILE.match(path.name) and at_depth:
            continue
        else:
            scan.strays.append(path)

    for (rel_dir, index), found in sorted(roles.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        blur, sharp = found.get("blur"), found.get("sharp")
        if blur is None or sharp is None:
            present = blur or sharp
            assert present is not None
            missing_role = "blur" if blur is None else "sharp"
            scan.orphans.append(
                Orphan(present, present.with_name(f"{index}_{missing_role}{present.suffix}"), rel_dir, index,
                       missing_role)
            )
            continue
        mask = None
        if masks is not None:
            candidate = mask_path_for(rel_dir, index, masks)
            mask = candidate if candidate.exists() else None
        scan.pairs.append(Pair(rel_dir, index, blur, sharp, mask))

    if masks is not None:
        # Masks of orphaned pairs are not strays: the orphan is the problem to report.
        expected = {mask_path_for(rel_dir, index, masks) for rel_dir, index in roles}
        for path in _walk_files(masks):
            if path in expected:
                continue
            sidecar = SIDECAR_FILE.match(path.name)
            if sidecar and path.with_name(f"{sidecar['index'] or sidecar['valid']}.png") in expected:
                continue
            scan.stray_masks.append(path)
    return scan


def discover_pairs(
    root: str | os.PathLike[str],
    *,
    masks_root: str | os.PathLike[str] | None = None,
    split: str | None = None,
    depth: int | None = RELOBLUR_DEPTH,
    require_masks: bool = False,
    consistent_masks: bool = False,
) -> list[Pair]:
    """The complete pairs under ``root`` (optionally one split), sorted by id.

    An image whose partner is missing is an error, not a pair to leave out: a split that
    silently lost a pair is scored or trained on as if it were whole.

    Parameters
    ----------
    require_masks
        Every pair must have a mask (training: a pair without one would be taught that
        nothing in it is blurred).
    consistent_masks
        Either every pair has a mask or none has (scoring and exporting: a mask tree with
        holes is a damaged one, and its weighted metrics would be averaged over the rest).

    Raises
    ------
    DatasetError
        No pairs found, an image without its partner, or pairs without the masks asked for.
    """
    scan = scan_dataset(root, masks_root=masks_root, depth=depth)
    pairs = [p for p in scan.pairs if split is None or p.split == split]
    orphans = [o for o in scan.orphans if split is None or (o.rel_dir.parts[:1] == (split,))]
    if orphans:
        raise DatasetError(
            f"{root}: {len(orphans)} image(s) without a partner, e.g. {orphans[0].path} has no "
            f"{orphans[0].missing.name}: complete or remove them (`reloblur dataset validate` lists every defect)")
    if not pairs:
        where = f"{root}/{split}" if split else str(root)
        elsewhere = scan_dataset(root, masks_root=masks_root, depth=None).pairs if depth is not None else []
        if elsewhere and not scan.pairs:
            # Flat 'align' output of a folder tree, say: found, but not where this layout reads.
            raise DatasetError(
                f"{root}: {len(elsewhere)} pair(s) found (e.g. {elsewhere[0].blur}), but not at "
                "<split>/<scene>/<seq>/<id>_blur.png, where the ReLoBlur layout keeps them and this command reads "
                f"them (docs/dataset-format.md): move them to, e.g., {Path(root) / 'test' / 'scene' / '00'}")
        raise DatasetError(f"{where}: no <id>_blur/<id>_sharp pairs found")
    missing = [p for p in pairs if p.mask is None]
    if missing and scan.masks_root is None and require_masks:
        raise DatasetError(
            f"{root}: no masks tree ({default_masks_root(root)} does not exist): make the masks with "
            "`reloblur mask generate`, or give the tree with --masks")
    if missing and (require_masks or (consistent_masks and len(missing) < len(pairs))):
        raise DatasetError(
            f"{len(missing)} of {len(pairs)} pair(s) have no mask under {scan.masks_root}: "
            + ", ".join(p.id for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
            + (f" ({mask_path_for(missing[0].rel_dir, missing[0].index, scan.masks_root)} does not exist)"
               if scan.masks_root is not None else ""))
    return pairs


TRAIN, TEST = "train", "test"


def scene_rank(seed: int, scene: str) -> str:
    """The hash that orders scenes for a given seed."""
    return hashlib.sha256(f"{seed}\0{scene}".encode()).hexdigest()


def assign_scenes(scenes: list[str], *, test_fraction: float, seed: int) -> dict[str, str]:
    """Map each scene name to ``train`` or ``test``.

    At least one scene goes to each side when there are two or more scenes and the
    fraction is strictly between 0 and 1.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise DatasetError(f"test fraction {test_fraction} is not within [0, 1]")
    ordered = sorted(set(scenes), key=lambda s: scene_rank(seed, s))
    n_test = round(test_fraction * len(ordered))
    if len(ordered) >= 2 and 0.0 < test_fraction < 1.0:
        n_test = min(max(n_test, 1), len(ordered) - 1)
    return {scene: TEST if i < n_test else TRAIN for i, scene in enumerate(ordered)}


def sequence_dirs(root: Path) -> dict[str, list[Path]]:
    """Scene name -> its ``<split>/<scene>/<seq>`` directories under a dataset root, across
    all splits."""
    scenes: dict[str, list[Path]] = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for scene_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            seqs = sorted(p for p in scene_dir.iterdir() if p.is_dir())
            scenes.setdefault(scene_dir.name, []).extend(seqs)
    return scenes


def plan_scene_moves(root: Path, masks_root: Path, assignment: dict[str, str]) -> list[tuple[Path, Path]]:
    """The ``(source, target)`` sequence directories to rename, in the dataset and in the
    masks tree, so that each scene of ``assignment`` lives wholly in its split.

    Raises
    ------
    DatasetError
        A target already exists (two splits hold the same scene/sequence).
    """
    planned: list[tuple[Path, Path]] = []
    if not root.is_dir():
        return planned
    for scene, seq_dirs in sorted(sequence_dirs(root).items()):
        if scene not in assignment:
            continue
        for seq_dir in seq_dirs:
            rel = seq_dir.relative_to(root)
            assert len(rel.parts) == RELOBLUR_DEPTH
            target_rel = Path(assignment[scene], *rel.parts[1:])
            # Each tree on its own: an interrupted move may have moved a sequence's images
            # and not yet its masks.
            for tree in (root, masks_root):
                target = tree / target_rel
                for split in (TRAIN, TEST):
                    source = tree / split / target_rel.relative_to(target_rel.parts[0])
                    if source == target or not source.exists():
                        continue
                    if target.exists():
                        raise DatasetError(
                            f"{target}: already exists, cannot move {source} there "
                            "(the same scene/sequence is in two splits)"
                        )
                    planned.append((source, target))
    return planned


def move_scenes(planned: list[tuple[Path, Path]]) -> None:
    """Make the moves of :func:`plan_scene_moves` (``os.rename``: a sequence is never
    half-copied), removing the scene and split directories they leave empty."""
    for source, target in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        for directory in (source.parent, source.parent.parent):
            try:
                directory.rmdir()
            except OSError:
                break


def find_pairs(data: Path) -> tuple[list[Pair], list[ItemFailure]]:
    """Pairs at any depth below ``data`` (ReLoBlur layout or flat align output), and the
    problems found on the way (orphans)."""
    scan = scan_dataset(data, masks_root=None, depth=None)
    problems = [ItemFailure(str(o.path), f"{o.path}: partner {o.missing.name} is missing") for o in scan.orphans]
    return scan.pairs, problems
