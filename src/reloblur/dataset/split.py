"""``reloblur dataset split``: a deterministic, scene-level train/test split.

Scenes are ranked by a hash of ``(seed, scene name)``; the first ``round(fraction * n)``
go to ``test``, the rest to ``train``. The assignment depends only on the seed and the
set of scene names, never on where scenes currently are, so re-running after an
interruption finishes the same split, and adding a scene moves few others. Whole
sequence directories move with ``os.rename`` (in the dataset and in the masks tree), so a
scene can never straddle both splits and no file is ever half-copied.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from reloblur.errors import DatasetError
from reloblur.formats.dataset import RELOBLUR_DEPTH, TEST, TRAIN, assign_scenes, default_masks_root, scene_rank

__all__ = ["SplitOptions", "SplitResult", "assign_scenes", "scene_rank", "split_dataset"]


@dataclass(frozen=True)
class SplitOptions:
    """Options of ``reloblur dataset split``."""

    root: Path
    masks: Path | None = None
    test_fraction: float = 0.2
    seed: int = 0
    dry_run: bool = False


@dataclass(frozen=True)
class Move:
    source: str
    target: str


@dataclass
class SplitResult:
    """The scenes on each side and the moves made (or planned, with ``dry_run``)."""
    seed: int
    test_fraction: float
    train_scenes: list[str]
    test_scenes: list[str]
    moves: list[Move] = field(default_factory=list)
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)


def _sequence_dirs(root: Path) -> dict[str, list[Path]]:
    """Scene name -> its ``<split>/<scene>/<seq>`` directories, across all splits."""
    scenes: dict[str, list[Path]] = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for scene_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            seqs = sorted(p for p in scene_dir.iterdir() if p.is_dir())
            scenes.setdefault(scene_dir.name, []).extend(seqs)
    return scenes


def split_dataset(options: SplitOptions) -> SplitResult:
    """Move scene sequences so that each scene lives wholly in ``train`` or ``test``.

    Raises
    ------
    DatasetError
        Root missing or empty, or a target sequence directory already exists (two
        splits held the same scene/sequence).
    """
    root = Path(options.root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root is not a directory")
    masks_root = Path(options.masks) if options.masks else default_masks_root(root)
    scenes = _sequence_dirs(root)
    if not scenes:
        raise DatasetError(f"{root}: no <split>/<scene>/<seq> directories found")
    assignment = assign_scenes(list(scenes), test_fraction=options.test_fraction, seed=options.seed)

    planned: list[tuple[Path, Path]] = []
    for scene, seq_dirs in sorted(scenes.items()):
        for seq_dir in seq_dirs:
            rel = seq_dir.relative_to(root)
            assert len(rel.parts) == RELOBLUR_DEPTH
            target_rel = Path(assignment[scene], *rel.parts[1:])
            # Each tree on its own: an interrupted split may have moved a sequence's images
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

    result = SplitResult(
        seed=options.seed,
        test_fraction=options.test_fraction,
        train_scenes=sorted(s for s, side in assignment.items() if side == TRAIN),
        test_scenes=sorted(s for s, side in assignment.items() if side == TEST),
        moves=[Move(str(s), str(t)) for s, t in planned],
        dry_run=options.dry_run,
    )
    if 0 < options.test_fraction and not result.test_scenes:
        result.warnings.append(f"only {len(scenes)} scene(s): the test split is empty (training needs none, but "
                               "'reloblur eval' and validation during training need test scenes)")
    if options.test_fraction < 1 and not result.train_scenes:
        result.warnings.append("every scene went to test: the train split is empty")
    if options.dry_run:
        return result
    for source, target in planned:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
        _remove_if_empty(source.parent, source.parent.parent)
    return result


def _remove_if_empty(*directories: Path) -> None:
    """Remove scene and split directories that moves left empty, innermost first."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return
