"""The LBAG training loop: single process or DDP under torchrun, resumable bit-exactly.

Bit-exact resume (single process, CPU) holds because every source of randomness is either
a pure function of the step (the sample stream and its crops) or saved in the checkpoint
(torch's RNG, which drives dropout, plus optimizer and scheduler states).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from reloblur import __version__
from reloblur.atomic import atomic_write_json, atomic_write_text
from reloblur.batch import make_progress
from reloblur.errors import ReloblurError
from reloblur.formats.dataset import discover_pairs
from reloblur.lbag.checkpoint import (
    list_checkpoints,
    model_from_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from reloblur.lbag.config import TrainConfig, apply_settings, dump_config, load_config
from reloblur.lbag.data import SampleStream, TrainPatches, WholeImages
from reloblur.lbag.device import resolve_device
from reloblur.lbag.inference import run_whole
from reloblur.lbag.losses import lbag_loss
from reloblur.lbag.metrics import image_metrics
from reloblur.lbag.model import LBAG

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
ENV_PREFIXES = ("CUDA", "NCCL", "TORCH", "OMP_", "MKL_", "RANK", "LOCAL_RANK", "WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE", "PYTHONHASHSEED")


@dataclass
class TrainResult:
    run_dir: str
    global_step: int
    checkpoint: str | None
    seconds: float
    last_losses: dict[str, float] = field(default_factory=dict)
    validation: dict[str, float | None] | None = None
    world_size: int = 1


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                timeout=_dt.timedelta(minutes=30))
    if use_cuda:
        torch.cuda.set_device(local)
    return _Dist(rank, world, local)


def _device_for(config: TrainConfig, ddp: _Dist) -> torch.device:
    device = resolve_device(config.device)
    if ddp.enabled and device.type == "cuda":
        return torch.device("cuda", ddp.local_rank)
    return device


def run_metadata(config: TrainConfig, command_line: list[str] | None) -> dict[str, Any]:
    """What made this run: command line, versions, host and the relevant environment."""
    return {
        "command_line": command_line if command_line is not None else sys.argv,
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "reloblur": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "cuda": torch.version.cuda,
        "environment": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)},
        "config": config.to_dict(),
    }


def prepare_run_dir(config: TrainConfig, run_dir: Path, *, resume: bool,
                    changes: dict[str, Any] | None = None) -> TrainConfig:
    """Create or reopen a run directory; returns the config to train with.

    A new run refuses a directory that already has checkpoints. A resumed run trains with
    its saved config; ``changes`` may set ``max_steps`` (to train longer) and ``device``.
    """
    existing = list_checkpoints(run_dir) if run_dir.exists() else []
    if resume:
        saved = run_dir / CONFIG_FILE
        if not saved.exists():
            raise ReloblurError(f"{run_dir}: not a training run (no {CONFIG_FILE}); nothing to resume")
        changes = dict(changes or {})
        unsupported = sorted(set(changes) - {"max_steps", "device"})
        if unsupported:
            raise ReloblurError(
                f"a resumed run keeps the settings in {saved}; only --steps and --device may "
                f"change (got {', '.join(unsupported)})"
            )
        return apply_settings(load_config(saved), changes, source="--resume")
    if existing:
        raise ReloblurError(
            f"{run_dir}: already holds checkpoints (newest step {existing[-1][0]}); "
            "continue it with --resume or choose another run directory"
        )
    return config


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _gather_rng(ddp: _Dist) -> list[dict[str, Any]]:
    mine = _rng_state()
    if not ddp.enabled:
        return [mine]
    every: list[Any] = [None] * ddp.world_size
    dist.all_gather_object(every, mine)
    return every


def _restore_rng(states: list[dict[str, Any]], ddp: _Dist) -> None:
    if len(states) != ddp.world_size:
        return  # different process count: keep the fresh seeds (resume is then not bit-exact)
    state = states[ddp.rank]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", model)
    return getattr(inner, "_orig_mod", inner)


@torch.no_grad()
def validate(model: nn.Module, pairs: list, device: torch.device, *, max_images: int | None = None,
             writer: Any = None, step: int = 0) -> dict[str, float | None]:
    """Mean ReLoBlur metrics of whole validation images (and an image grid in TensorBoard)."""
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    data = WholeImages(pairs[:max_images] if max_images else pairs)
    sums = {"psnr": 0.0, "ssim": 0.0, "weighted_psnr": 0.0, "weighted_ssim": 0.0}
    weighted = 0
    for i in range(len(data)):
        item = data[i]
        out, gate = run_whole(net, item["blur"][None].to(device))
        m = image_metrics(out[0].float().cpu(), item["sharp"], item["mask"][0])
        sums["psnr"] += m.psnr
        sums["ssim"] += m.ssim
        if m.weighted_psnr is not None:
            weighted += 1
            sums["weighted_psnr"] += m.weighted_psnr
            sums["weighted_ssim"] += m.weighted_ssim or 0.0
        if writer is not None and i == 0:
            grid = torch.cat([item["blur"], torch.clamp(out[0].float().cpu(), 0, 1), item["sharp"],
                              gate[0].float().cpu().expand(3, -1, -1)], dim=2)
            writer.add_image("val/blur|output|sharp|gate", grid, step)
    net.train(was_training)
    n = max(len(data), 1)
    return {
        "psnr": sums["psnr"] / n,
        "ssim": sums["ssim"] / n,
        "weighted_psnr": sums["weighted_psnr"] / weighted if weighted else None,
        "weighted_ssim": sums["weighted_ssim"] / weighted if weighted else None,
    }


def _summary_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard comes with the 'train' extra
        import logging

        logging.getLogger(__name__).warning("tensorboard is not installed: no TensorBoard logs")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def train(config: TrainConfig, run_dir: str | os.PathLike[str], *, resume: bool = False,
          changes: dict[str, Any] | None = None, progress: bool = True,
          command_line: list[str] | None = None) -> TrainResult:
    """Train LBAG as ``config`` says, writing checkpoints and logs under ``run_dir``.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its share of every epoch
    with DistributedDataParallel (NCCL on GPUs, gloo on CPU); rank 0 validates, logs and
    writes checkpoints. With ``resume`` the run continues from its newest checkpoint
    with its saved config (``config`` is ignored; see :func:`prepare_run_dir`).
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    config = prepare_run_dir(config, run_dir, resume=resume, changes=changes)
    config.validate()
    ddp = _init_distributed(config.device)
    device = _device_for(config, ddp)
    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_FILE, dump_config(config))
        atomic_write_json(run_dir / (RUN_FILE if not resume else f"run-resumed-{int(time.time())}.json"),
                          run_metadata(config, command_line))

    train_pairs = discover_pairs(config.data, masks_root=config.masks, split=config.train_split)
    val_pairs = (discover_pairs(config.data, masks_root=config.masks, split=config.val_split)
                 if config.val_split else [])

    torch.manual_seed(config.seed)
    if config.init and not resume:
        loaded = model_from_checkpoint(config.init, num_res=config.num_res)
        model = loaded.model
    else:
        model = LBAG(config.num_res)
    torch.manual_seed(config.seed + ddp.rank)  # different dropout per rank, same weights
    model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.lr_milestones,
                                                     gamma=config.lr_gamma)
    global_step = 0
    if resume:
        found = list_checkpoints(run_dir)
        if not found:
            raise ReloblurError(f"{run_dir}: no checkpoint to resume from")
        state = read_checkpoint(found[-1][1])
        model.load_state_dict(state["state_dict"]["model"])
        optimizer.load_state_dict(state["optimizer_states"][0])
        if state.get("scheduler_states"):
            scheduler.load_state_dict(state["scheduler_states"][0])
        global_step = int(state["global_step"])
        _restore_rng(state.get("rng_states", []), ddp)

    net: nn.Module = model
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]  # an OptimizedModule is a Module
    if ddp.enabled:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )

    dataset = TrainPatches(train_pairs, patch=config.patch_size, bapc_prob=config.bapc_prob,
                           bapc_min_ratio=config.bapc_min_ratio, hflip=config.hflip,
                           seed=config.seed, cache=config.cache_images)
    stream = SampleStream(dataset, num_replicas=ddp.world_size, rank=ddp.rank, seed=config.seed,
                          start=global_step * config.batch_size)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=stream,
                        num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=config.num_workers > 0,
                        # Its own generator: creating the iterator must not draw from the
                        # global RNG that dropout uses, or a resumed run would diverge.
                        generator=torch.Generator().manual_seed(config.seed))
    batches = iter(loader)
    writer = _summary_writer(run_dir) if ddp.main else None
    use_amp = config.amp and device.type == "cuda"
    weights = config.loss_weights()
    parts: dict[str, float] = {}
    validation = None
    checkpoint: Path | None = None

    def save() -> Path | None:
        rng = _gather_rng(ddp)
        if not ddp.main:
            return None
        return save_checkpoint(run_dir, model=model, global_step=global_step, optimizer=optimizer,
                               keep_last=config.keep_checkpoints,
                               extra={"scheduler_states": [scheduler.state_dict()], "rng_states": rng,
                                      "config": config.to_dict(), "world_size": ddp.world_size})

    history = open(run_dir / HISTORY_FILE, "a", encoding="utf-8") if ddp.main else None
    net.train()
    try:
        with make_progress(enabled=progress and ddp.main) as bar:
            task = bar.add_task("training", total=config.max_steps, completed=global_step)
            while global_step < config.max_steps:
                batch = next(batches)
                blur = batch["blur"].to(device, non_blocking=True)
                sharp = batch["sharp"].to(device, non_blocking=True)
                mask = batch["mask"].to(device, non_blocking=True)
                if config.channels_last:
                    blur = blur.contiguous(memory_format=torch.channels_last)
                autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if use_amp
                            else contextlib.nullcontext())
                with autocast:
                    images, gates = net(blur)
                loss, parts = lbag_loss([i.float() for i in images], [g.float() for g in gates],
                                        sharp, mask, weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                global_step += 1
                bar.update(task, completed=global_step,
                           description=f"training (loss {parts['total']:.4f})")
                if history is not None and (global_step % config.log_every == 0 or global_step == config.max_steps):
                    lr = optimizer.param_groups[0]["lr"]
                    history.write(json.dumps({"step": global_step, "lr": lr, **parts}) + "\n")
                    history.flush()
                    if writer is not None:
                        for name, value in parts.items():
                            writer.add_scalar(f"train/{name}", value, global_step)
                        writer.add_scalar("train/lr", lr, global_step)
                last = global_step == config.max_steps
                if val_pairs and (global_step % config.val_every == 0 or last):
                    if ddp.main:
                        validation = validate(net, val_pairs, device, max_images=config.val_max_images,
                                              writer=writer, step=global_step)
                        if history is not None:
                            history.write(json.dumps({"step": global_step, "validation": validation}) + "\n")
                            history.flush()
                        if writer is not None:
                            for name, metric in validation.items():
                                if metric is not None:
                                    writer.add_scalar(f"val/{name}", metric, global_step)
                    if ddp.enabled:
                        dist.barrier()
                if global_step % config.ckpt_every == 0 or last:
                    checkpoint = save() or checkpoint
    finally:
        if history is not None:
            history.close()
        if writer is not None:
            writer.close()
        del batches
    if ddp.enabled:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(
        run_dir=str(run_dir),
        global_step=global_step,
        checkpoint=str(checkpoint) if checkpoint else None,
        seconds=time.perf_counter() - started,
        last_losses=parts,
        validation=validation,
        world_size=ddp.world_size,
    )
