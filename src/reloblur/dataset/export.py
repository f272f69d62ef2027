"""``reloblur dataset export --format basicsr``: the paired GT/LQ folder layout.

::

    OUT/<split>/GT/<scene>_<seq>_<NN>.png      sharp targets
    OUT/<split>/LQ/<scene>_<seq>_<NN>.png      blurred inputs
    OUT/<split>/mask/<scene>_<seq>_<NN>.png    blur masks (when present)
    OUT/<split>/meta_info.txt                  one file name per line (BasicSR meta_info_file)

Files are relative symbolic links by default (the two trees can move together) or copies
with ``copy=True``. Re-running skips entries that are already correct.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from reloblur.atomic import atomic_open, atomic_symlink, atomic_write_text, remove_stale_temporaries
from reloblur.errors import DatasetError
from reloblur.formats.dataset import Pair, discover_pairs, outside_dataset
from reloblur.paths import output_folder

FORMATS = ("basicsr",)


@dataclass(frozen=True)
class ExportOptions:
    """Options of ``reloblur dataset export``."""

    root: Path
    out: Path
    format: str = "basicsr"
    masks: Path | None = None
    copy: bool = False


@dataclass
class ExportResult:
    """What an export wrote."""
    out: str
    format: str
    pairs_per_split: dict[str, int]
    written: int
    unchanged: int
    mode: str


def flat_name(pair: Pair) -> str:
    """``<scene>_<seq>_<NN>.png`` (the pair's directories joined by underscores)."""
    return "_".join([*pair.rel_dir.parts[1:], pair.index]) + ".png"


def _place(source: Path, dest: Path, *, copy: bool) -> bool:
    """Link or copy ``source`` to ``dest``; False when ``dest`` is already right."""
    if copy:
        if dest.is_file() and not dest.is_symlink() and dest.stat().st_size == source.stat().st_size:
            return False
        with open(source, "rb") as src, atomic_open(dest) as out:
            shutil.copyfileobj(src, out)
        return True
    target = os.path.relpath(source.resolve(), dest.parent.resolve())
    if dest.is_symlink() and os.readlink(dest) == target:
        return False
    atomic_symlink(target, dest)
    return True


def export_dataset(options: ExportOptions) -> ExportResult:
    """Write the BasicSR paired layout of a ReLoBlur dataset.

    Raises
    ------
    DatasetError
        Unknown format, an image that is not PNG, or two pairs that flatten to the same
        file name.
    """
    if options.format not in FORMATS:
        raise DatasetError(f"unknown export format {options.format!r}; choose from {', '.join(FORMATS)}")
    pairs = discover_pairs(options.root, masks_root=options.masks, consistent_masks=True)
    out = Path(options.out)
    outside_dataset(out, options.root, options.masks)
    by_split: dict[str, dict[str, Pair]] = {}
    for pair in pairs:
        for image in (pair.blur, pair.sharp):
            if image.suffix.lower() != ".png":
                raise DatasetError(f"{image}: BasicSR export expects PNG images")
        names = by_split.setdefault(pair.split or "all", {})
        name = flat_name(pair)
        if name in names:
            raise DatasetError(
                f"{pair.blur} and {names[name].blur} both export as {name}; rename a scene"
            )
        names[name] = pair

    if output_folder(out, what="export folder").is_dir():
        remove_stale_temporaries(out)  # copies a killed run left half-written
    written = unchanged = 0
    for split, names in sorted(by_split.items()):
        for name, pair in names.items():
            targets = [(pair.sharp, "GT"), (pair.blur, "LQ")]
            if pair.mask is not None:
                targets.append((pair.mask, "mask"))
            for source, folder in targets:
                if _place(source, out / split / folder / name, copy=options.copy):
                    written += 1
                else:
                    unchanged += 1
        atomic_write_text(out / split / "meta_info.txt", "".join(f"{n}\n" for n in names))
    return ExportResult(
        out=str(out),
        format=options.format,
        pairs_per_split={s: len(n) for s, n in sorted(by_split.items())},
        written=written,
        unchanged=unchanged,
        mode="copy" if options.copy else "symlink",
    )
