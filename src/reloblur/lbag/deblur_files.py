"""``reloblur deblur``: run a checkpoint on image files and folders.

Files go to ``OUT/<name>.png``; a folder's images go to ``OUT/<relative path>.png``
(file names kept, suffix PNG), so ``reloblur eval --pred OUT DATA`` finds a dataset's
outputs. In a folder that holds ``*_blur.*`` files only those are deblurred (the sharp
targets and masks beside them are not inputs); ``pattern`` overrides that.

Resumable: ``OUT/.reloblur-deblur.json`` records the checkpoint's fingerprint; outputs
already there are skipped when it matches, and a different checkpoint needs
``overwrite``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from reloblur import resume
from reloblur.atomic import atomic_write_bytes, atomic_write_json, remove_stale_temporaries
from reloblur.batch import ItemFailure, make_progress
from reloblur.errors import ReloblurError
from reloblur.imaging.imageio import (
    IMAGE_SUFFIXES,
    decode_image,
    encode_image,
    icc_profile,
    read_bytes,
    with_icc_profile,
    write_image,
)
from reloblur.lbag.checkpoint import model_from_checkpoint, resolve_checkpoint
from reloblur.lbag.device import resolve_device
from reloblur.lbag.inference import TileOptions, autocast, deblur, default_tile_batch, to_tensor, to_uint8
from reloblur.paths import output_folder

MANIFEST = ".reloblur-deblur.json"


@dataclass(frozen=True)
class DeblurOptions:
    """Options of ``reloblur deblur``."""
    checkpoint: Path
    inputs: tuple[Path, ...]
    out: Path
    device: str = "auto"
    tile: int | None = 1024
    overlap: int = 64
    tile_batch: int | None = None  # tiles per model call; None: inference.default_tile_batch
    gates: bool = False
    pattern: str | None = None
    overwrite: bool = False
    trust_checkpoint: bool = False
    progress: bool = True
    amp: str = "off"  # mixed precision: off, bf16, fp16 (inference.autocast)


@dataclass
class DeblurResult:
    """What ``reloblur deblur`` wrote, resumed and could not read."""
    out: str
    written: list[str] = field(default_factory=list)
    skipped: int = 0
    failures: list[ItemFailure] = field(default_factory=list)


def _folder_images(folder: Path, pattern: str | None) -> list[Path]:
    images = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if pattern is None:
        blurred = [p for p in images if fnmatch.fnmatch(p.name, "*_blur.*")]
        return blurred or images
    return [p for p in images if fnmatch.fnmatch(p.name, pattern)]


def deblurred_name(source: Path) -> str:
    """The output name of a deblurred image: ``NN_blur.*`` becomes ``NN_deblurred.png`` (an
    output named like the blurry input reads as the input); other names keep their stem.

    >>> deblurred_name(Path("00_blur.png")), deblurred_name(Path("photo.jpg"))
    ('00_deblurred.png', 'photo.png')
    """
    stem = source.stem
    if stem.endswith("_blur"):
        stem = stem[: -len("_blur")] + "_deblurred"
    return stem + ".png"


def plan_outputs(inputs: tuple[Path, ...], out: Path, pattern: str | None = None) -> list[tuple[Path, Path]]:
    """``(source, destination)`` for every input image; errors name missing inputs."""
    jobs: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            for source in _folder_images(item, pattern):
                relative = source.relative_to(item)
                jobs.append((source, out / relative.parent / deblurred_name(source)))
        elif item.is_file():
            jobs.append((item, out / deblurred_name(item)))
        else:
            raise ReloblurError(f"{item}: no such file or directory")
    seen: dict[Path, Path] = {}
    for source, destination in jobs:
        if destination in seen:
            raise ReloblurError(f"{source} and {seen[destination]} would both be written to {destination}")
        seen[destination] = source
    if not jobs:
        raise ReloblurError("no input images found")
    return jobs


def deblur_files(options: DeblurOptions) -> DeblurResult:
    """Deblur every image of ``options.inputs`` into ``options.out`` (resumable, atomic writes)."""
    checkpoint = resolve_checkpoint(options.checkpoint)
    jobs = plan_outputs(options.inputs, options.out, options.pattern)
    if output_folder(options.out, what="output directory").is_dir():
        remove_stale_temporaries(options.out)  # what a killed run left half-written
    fingerprint = resume.file_fingerprint(checkpoint)
    manifest_path = options.out / MANIFEST
    manifest = resume.read_sidecar(manifest_path)
    # Outputs are the model's at one precision: another checkpoint or precision redoes them.
    same_model = (manifest is not None and manifest.get("checkpoint") == fingerprint
                  and manifest.get("amp", "off") == options.amp)
    if manifest is not None and not same_model and not options.overwrite:
        raise ReloblurError(
            f"{options.out} holds outputs of another checkpoint or precision ({manifest.get('checkpoint_path')}, "
            f"amp {manifest.get('amp', 'off')}); "
            "use --overwrite or another output directory"
        )
    loaded = model_from_checkpoint(checkpoint, trust=options.trust_checkpoint)
    device = resolve_device(options.device)
    model = loaded.model.to(device).eval()
    autocast(device, options.amp)  # a bad choice fails here, before any output
    tiles = TileOptions(options.tile, options.overlap, options.tile_batch or default_tile_batch(device))
    atomic_write_json(manifest_path, {"checkpoint": fingerprint, "checkpoint_path": str(checkpoint),
                                      "amp": options.amp})

    result = DeblurResult(out=str(options.out))
    with make_progress(enabled=options.progress) as bar:
        task = bar.add_task("deblurring", total=len(jobs))
        for source, destination in jobs:
            gate_path = destination.with_name(destination.stem + "_gate.png")
            done = destination.exists() and (not options.gates or gate_path.exists())
            if done and same_model and not options.overwrite:
                result.skipped += 1
                bar.advance(task)
                continue
            try:
                data = read_bytes(source)
                output, gate = deblur(model, to_tensor(decode_image(data, source)), tiles=tiles, device=device,
                                      amp=options.amp)
                # The input's colour profile travels with the output, so a viewer shows both alike.
                png = with_icc_profile(encode_image(to_uint8(output), ".png"), icc_profile(data))
                atomic_write_bytes(destination, png)
                if options.gates:
                    write_image(gate_path, to_uint8(gate))
                result.written.append(str(destination))
            except ReloblurError as exc:
                result.failures.append(ItemFailure(str(source), str(exc)))
            except (RuntimeError, OSError) as exc:  # e.g. out of memory: report, go on
                result.failures.append(ItemFailure(str(source), f"{type(exc).__name__}: {exc}"))
            bar.advance(task)
    return result
