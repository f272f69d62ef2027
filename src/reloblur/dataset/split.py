"""``reloblur dataset split``: a deterministic, scene-level train/test split.

Scenes are ranked by a hash of ``(seed, scene name)``; the first ``round(fraction * n)``
go to ``test``, the rest to ``train``. The assignment depends only on the seed and the
set of scene names, never on where scenes currently are, so re-running after an
interruption finishes the same split, and adding a scene moves few others. Whole
sequence directories move with ``os.rename`` (in the dataset and in the masks tree), so a
scene can never straddle both splits and no file is ever half-copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reloblur.errors import DatasetError
from reloblur.formats.dataset import (
    TEST,
    TRAIN,
    assign_scenes,
    masks_tree,
    move_scenes,
    plan_scene_moves,
    scene_rank,
    sequence_dirs,
)

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
    masks_root = masks_tree(root, options.masks)
    scenes = sequence_dirs(root)
    if not scenes:
        raise DatasetError(f"{root}: no <split>/<scene>/<seq> directories found")
    assignment = assign_scenes(list(scenes), test_fraction=options.test_fraction, seed=options.seed)
    planned = plan_scene_moves(root, masks_root, assignment)
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
    move_scenes(planned)
    return result
