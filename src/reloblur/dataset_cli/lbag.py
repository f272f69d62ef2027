"""``reloblur train | eval | deblur``: parsing and printing only.

Importing this module does not import torch: the commands import the LBAG modules when
they run, so the rest of the CLI works without the ``train`` extra.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from reloblur.dataset_cli.common import finish_batch, print_json, print_table, stderr, stdout
from reloblur.errors import ReloblurError

DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
TrustOpt = Annotated[
    bool, typer.Option("--trust-checkpoint", metavar="", help="Allow arbitrary pickled objects in the checkpoint (trusted files only).")
]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")]
TileBatchOpt = Annotated[int, typer.Option(
    "--tile-batch", help="Tiles run through the model at once; 0: 4 on a GPU, 1 on the CPU (memory grows with it).")]
AmpOpt = Annotated[str, typer.Option(
    "--amp", help="Mixed precision: off, bf16 (CPU and recent GPUs, about 2x faster) or fp16 (GPUs).")]


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ReloblurError("this command needs torch: pip install 'reloblur[train]'") from None


def train_command(
    data: Annotated[Optional[Path], typer.Argument(help="Dataset root (train/ and test/ inside).", show_default=False)] = None,
    run: Annotated[Optional[Path], typer.Option("--run-dir", help="Run directory \\[default: runs/lbag-<date>-<time>].")] = None,
    resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue this run directory (bit-exact on CPU).")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="YAML file of settings.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="Override one setting: KEY=VALUE (repeatable).")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", help="Total training steps (max_steps).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Batch size per process.")] = None,
    patch_size: Annotated[Optional[int], typer.Option("--patch-size", help="Training crop size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Adam learning rate.")] = None,
    num_res: Annotated[Optional[int], typer.Option("--num-res", help="Residual blocks per stage (20 = LBAG).")] = None,
    init: Annotated[Optional[Path], typer.Option("--init", help="Warm start: MIMO-UNet+ pretrained file or LBAG checkpoint.")] = None,
    masks: Annotated[Optional[Path], typer.Option("--masks", help="Masks tree \\[default: sibling 'masks'].")] = None,
    device: DeviceOpt = "auto",
    nproc: Annotated[int, typer.Option("--nproc", help="Processes (GPUs) on this machine: runs torchrun for you.")] = 1,
    json_output: JsonOpt = False,
) -> None:
    """Train LBAG on a ReLoBlur-format dataset (recipe defaults = the original paper's).

    Examples:

      reloblur train data/dataset --run-dir runs/lbag --steps 200000

      reloblur train data/dataset --run-dir runs/tiny --set num_res=2 --set patch_size=128

      reloblur train --resume runs/lbag --steps 300000

      torchrun --nproc_per_node 4 -m reloblur.dataset_cli.torchrun data/dataset --run-dir runs/lbag4
    """
    _require_torch()
    from reloblur.lbag.config import TrainConfig, apply_settings, load_config, parse_overrides
    from reloblur.lbag.loop import train

    config = load_config(config_file) if config_file else TrainConfig()
    direct = {"max_steps": steps, "batch_size": batch_size, "patch_size": patch_size, "lr": lr,
              "num_res": num_res, "init": str(init) if init else None,
              "masks": str(masks) if masks else None, "data": str(data) if data else None}
    merged = {k: v for k, v in direct.items() if v is not None}
    merged.update(parse_overrides(settings or []))
    if device != "auto":
        merged["device"] = device
    changes: dict = {}
    if resume is not None:
        run_dir = resume
        changes = merged
        if config_file is not None:
            raise ReloblurError("--config cannot be combined with --resume: the run keeps its own config.yaml")
    else:
        config = apply_settings(config, merged, source="command line")
        if data is None and not config.data:
            raise ReloblurError("give the dataset root (DATA) or --resume RUN")
        run_dir = run or Path("runs") / time.strftime("lbag-%Y%m%d-%H%M%S")

    if nproc > 1:
        raise typer.Exit(_launch_torchrun(nproc, config, run_dir, resume=resume is not None, changes=changes))

    result = train(config, run_dir, resume=resume is not None, changes=changes, progress=not json_output)
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun, rank 0 reports
    if json_output:
        print_json(result)
        return
    stdout.print(f"trained to step {result.global_step} in {result.seconds:.1f} s; checkpoint: {result.checkpoint}")
    if result.validation:
        v = result.validation
        stdout.print("validation: " + ", ".join(f"{k} {val:.4f}" for k, val in v.items() if val is not None))


def _launch_torchrun(nproc: int, config, run_dir: Path, *, resume: bool, changes: dict) -> int:
    """Run this training under torchrun with ``nproc`` local processes; returns its exit code."""
    from reloblur.lbag.config import dump_config

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "reloblur.dataset_cli.torchrun"]
    if resume:
        command += ["--resume", str(run_dir)] + [f"--set={k}={v}" for k, v in changes.items()]
        stderr.print(f"launching: {' '.join(command)}")
        return subprocess.call(command)
    with tempfile.TemporaryDirectory() as tmp:
        resolved = Path(tmp) / "config.yaml"
        resolved.write_text(dump_config(config))
        command += ["--config", str(resolved), "--run-dir", str(run_dir)]
        stderr.print(f"launching: {' '.join(command)}")
        return subprocess.call(command)


def _print_metrics(title: str, rows: list[tuple[str, dict]]) -> None:
    names = ("PSNR", "SSIM", "weighted PSNR", "weighted SSIM", "background MAE")
    keys = ("psnr", "ssim", "weighted_psnr", "weighted_ssim", "background_mae")
    print_table(title, ("images", *names),
                [(label, *("-" if values.get(k) is None else f"{values[k]:.4f}" for k in keys)) for label, values in rows],
                right=names)


def eval_command(
    data: Annotated[Path, typer.Argument(help="Dataset root.", show_default=False)],
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", help="Checkpoint file or run directory (newest).")] = None,
    pred: Annotated[Optional[Path], typer.Option("--pred", help="Score these existing outputs instead of running a model.")] = None,
    masks: Annotated[Optional[Path], typer.Option("--masks", help="Masks tree \\[default: sibling 'masks'].")] = None,
    split: Annotated[str, typer.Option("--split", help="Split to score ('all' for every split).")] = "test",
    out: Annotated[Optional[Path], typer.Option("--out", help="Write metrics.csv and summary.json here.")] = None,
    tile: Annotated[int, typer.Option("--tile", help="Tile size for big images (0: whole images, as the original).")] = 0,
    tile_batch: TileBatchOpt = 0,
    device: DeviceOpt = "auto",
    amp: AmpOpt = "off",
    trust_checkpoint: TrustOpt = False,
    convention: Annotated[str, typer.Option(
        "--convention", help="original: ReLoBlur's evaluation (8-bit quantised); lmdvit: the later papers' "
                             "(not quantised, pyiqa's PSNR), to compare with them.")] = "original",
    json_output: JsonOpt = False,
) -> None:
    """PSNR, SSIM, weighted PSNR and weighted SSIM, as the original ReLoBlur evaluation.

    Examples:

      reloblur eval data/dataset --checkpoint runs/lbag --out runs/lbag/eval

      reloblur eval data/dataset --pred outputs/ --json

      reloblur eval data/dataset --checkpoint runs/lbag --convention lmdvit   # comparable with LMD-ViT's tables
    """
    _require_torch()
    from reloblur.lbag.evaluate import EvalOptions, evaluate

    result = evaluate(EvalOptions(
        data=data, checkpoint=checkpoint, pred=pred, masks=masks,
        split=None if split == "all" else split, device=device, tile=tile or None, tile_batch=tile_batch or None,
        out=out, trust_checkpoint=trust_checkpoint, progress=not json_output, amp=amp,
        convention=convention,  # type: ignore[arg-type]  # checked by evaluate, naming the choices
    ))
    if json_output:
        print_json({"summary": result.summary, "baseline": result.baseline, "images": result.images,
                    "weighted_skipped": result.weighted_skipped, "masks": result.masks, "source": result.source,
                    "convention": result.convention})
        return
    _print_metrics(f"{len(result.images)} images of {data} ({result.convention} convention)",
                   [("blurry input", result.baseline), (result.source, result.summary)])
    if not result.masks:
        stdout.print("no masks (none beside the dataset; --masks names a tree): weighted metrics need them")
    elif result.weighted_skipped:
        stdout.print(f"{result.weighted_skipped} image(s) with an empty mask have no weighted metrics")
    if result.csv:
        stdout.print(f"per-image metrics: {result.csv}; summary: {result.summary_json}")


def deblur_command(
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.", show_default=False)],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint file or run directory (newest).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")],
    device: DeviceOpt = "auto",
    tile: Annotated[int, typer.Option("--tile", help="Tile size (0: whole images).")] = 1024,
    overlap: Annotated[int, typer.Option("--overlap", help="Tile overlap in pixels.")] = 64,
    tile_batch: TileBatchOpt = 0,
    gates: Annotated[bool, typer.Option("--gates", metavar="", help="Also write each gate map as <name>_gate.png.")] = False,
    pattern: Annotated[Optional[str], typer.Option("--pattern", help="File-name glob inside folders \\[default: *_blur.* if present].")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="", help="Redo outputs that exist.")] = False,
    amp: AmpOpt = "off",
    trust_checkpoint: TrustOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Deblur images with a trained LBAG; writes 8-bit PNGs, any image size.

    Examples:

      reloblur deblur photo.png --checkpoint runs/lbag --out deblurred/

      reloblur deblur data/dataset/test --checkpoint runs/lbag --out preds/test --gates

      reloblur deblur big-photos/ --checkpoint runs/lbag --out deblurred/ --amp bf16
    """
    _require_torch()
    from reloblur.lbag.deblur_files import DeblurOptions, deblur_files

    result = deblur_files(DeblurOptions(
        checkpoint=checkpoint, inputs=tuple(inputs), out=out, device=device, tile=tile or None,
        overlap=overlap, tile_batch=tile_batch or None, gates=gates, pattern=pattern, overwrite=overwrite,
        trust_checkpoint=trust_checkpoint, progress=not json_output, amp=amp,
    ))
    finish_batch(result, result.failures, json_output=json_output, what="image(s)", summary=lambda: [
        f"{len(result.written)} image(s) written to {escape(result.out)}, {result.skipped} already there",
    ])


def register(app: typer.Typer) -> None:
    """Add ``train``, ``eval`` and ``deblur`` to the app."""
    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("deblur")(deblur_command)
