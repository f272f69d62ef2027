"""The LBAG training loop: single process or DDP under torchrun, resumable bit-exactly.

Bit-exact resume (single process, CPU) holds because every source of randomness is either
a pure function of the step (the sample stream and its crops) or saved in the checkpoint
(torch's RNG, which drives dropout, plus optimizer and scheduler states).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from reloblur import __version__
from reloblur.atomic import atomic_write_json, atomic_write_text, remove_stale_temporaries
from reloblur.batch import make_progress
from reloblur.errors import ReloblurError, WriteError
from reloblur.formats.dataset import Pair, discover_pairs
from reloblur.lbag.checkpoint import (
    BEST_NAME,
    list_checkpoints,
    model_from_checkpoint,
    read_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from reloblur.lbag.config import TrainConfig, apply_settings, dump_config, load_config
from reloblur.lbag.data import SampleStream, TrainPatches, WholeImages, check_pairs
from reloblur.lbag.device import cpu_has_native_bf16, resolve_device
from reloblur.lbag.inference import run_whole
from reloblur.lbag.losses import lbag_loss
from reloblur.lbag.metrics import image_metrics
from reloblur.lbag.model import LBAG
from reloblur.logs import log_file
from reloblur.paths import output_folder

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
HISTORY_FILE = "history.jsonl"
ENV_PREFIXES = ("CUDA", "NCCL", "TORCH", "OMP_", "MKL_", "RANK", "LOCAL_RANK", "WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE", "PYTHONHASHSEED")


@dataclass
class TrainResult:
    """What a training run reached: step, last checkpoint and losses, validation, time."""
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


_FINISHED = "reloblur/finished"
_runs_finished = 0  # every rank trains the same runs in the same order, so the count agrees


def _leave_process_group(ddp: _Dist) -> None:
    """Destroy the process group once every rank is past its last collective.

    A gloo barrier returns on a rank once its own messages are written, which can be before
    its peer has read them, so the first rank to destroy the group may close a connection
    its peer is still reading (gloo issue 155, "barrier followed by context destruction").
    On one CI machine the peer aborted ("terminate called without an active exception")
    in about 1 of 15 two-rank runs; none of over 120 runs here did. The ranks therefore meet
    once more through the rendezvous store, which the launcher holds and no rank's
    teardown touches, before any of them closes its gloo connections.
    """
    global _runs_finished
    dist.barrier()
    store = dist.distributed_c10d._get_default_store()
    prefix = f"{_FINISHED}/{_runs_finished}"
    _runs_finished += 1
    store.set(f"{prefix}/{ddp.rank}", "1")
    store.wait([f"{prefix}/{rank}" for rank in range(ddp.world_size)], _dt.timedelta(minutes=5))
    dist.destroy_process_group()


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
    # The saved config must mean the same files from wherever the run is resumed.
    def absolute(value: str | None) -> str | None:
        return str(Path(value).resolve()) if value else value

    # The warm start as the file it was (a folder's newest checkpoint, or the packaged
    # reference model), and a missing one is reported before any work.
    init = str(resolve_checkpoint(config.init)) if config.init else None
    return dataclasses.replace(config, data=absolute(config.data) or "", masks=absolute(config.masks),
                               init=absolute(init))


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
    """Mean ReLoBlur metrics of whole validation images, and of their blurry inputs
    (``input_psnr``, ``input_weighted_psnr``: what doing nothing scores), and an image
    grid in TensorBoard."""
    net = _unwrap(model)
    was_training = net.training
    net.eval()
    data = WholeImages(pairs[:max_images] if max_images else pairs)
    sums = {"psnr": 0.0, "ssim": 0.0, "weighted_psnr": 0.0, "weighted_ssim": 0.0, "input_psnr": 0.0,
            "input_weighted_psnr": 0.0}
    weighted = 0
    for i in range(len(data)):
        item = data[i]
        out, gate = run_whole(net, item["blur"][None].to(device))
        m = image_metrics(out[0].float().cpu(), item["sharp"], item["mask"][0])
        # The blurry input's own score: the line a model must rise above.
        baseline = image_metrics(item["blur"], item["sharp"], item["mask"][0])
        sums["psnr"] += m.psnr
        sums["ssim"] += m.ssim
        sums["input_psnr"] += baseline.psnr
        if m.weighted_psnr is not None:
            weighted += 1
            sums["weighted_psnr"] += m.weighted_psnr
            sums["weighted_ssim"] += m.weighted_ssim or 0.0
            sums["input_weighted_psnr"] += baseline.weighted_psnr or 0.0
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
        "input_psnr": sums["input_psnr"] / n,
        "input_weighted_psnr": sums["input_weighted_psnr"] / weighted if weighted else None,
    }


def _summary_writer(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard comes with the 'train' extra
        import logging

        logging.getLogger(__name__).warning("tensorboard is not installed: no TensorBoard logs")
        return None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


@dataclass
class _TrainState:
    """What a checkpoint holds and a step changes."""

    model: LBAG
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    global_step: int = 0


def _build_state(config: TrainConfig, run_dir: Path, *, resume: bool, ddp: _Dist,
                 device: torch.device) -> _TrainState:
    """The model (fresh, warm-started from ``config.init``, or resumed), optimizer and schedule."""
    torch.manual_seed(config.seed)
    if config.init and not resume:
        model = model_from_checkpoint(config.init, num_res=config.num_res).model
        for module in model.modules():
            if isinstance(module, nn.Dropout2d):
                module.p = config.dropout
    else:
        model = LBAG(config.num_res, dropout=config.dropout)
    torch.manual_seed(config.seed + ddp.rank)  # different dropout per rank, same weights
    model.to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stubs lack it
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.lr_milestones,
                                                     gamma=config.lr_gamma)
    state = _TrainState(model, optimizer, scheduler)
    if resume:
        _resume(state, run_dir, ddp)
    return state


def _resume(state: _TrainState, run_dir: Path, ddp: _Dist) -> None:
    """Load the newest checkpoint's weights, optimizer, schedule, step and RNG states."""
    found = list_checkpoints(run_dir)
    if not found:
        raise ReloblurError(f"{run_dir}: no checkpoint to resume from")
    saved = read_checkpoint(found[-1][1])
    state.model.load_state_dict(saved["state_dict"]["model"])
    state.optimizer.load_state_dict(saved["optimizer_states"][0])
    if saved.get("scheduler_states"):
        state.scheduler.load_state_dict(saved["scheduler_states"][0])
    state.global_step = int(saved["global_step"])
    _restore_rng(saved.get("rng_states", []), ddp)


def _wrap(model: nn.Module, config: TrainConfig, ddp: _Dist, device: torch.device) -> nn.Module:
    """The network the steps run: compiled and/or DistributedDataParallel as configured."""
    net: nn.Module = model
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]  # an OptimizedModule is a Module
    if ddp.enabled:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return net


def _batches(config: TrainConfig, pairs: list, ddp: _Dist, device: torch.device, start_step: int) -> Any:
    """An endless iterator of training batches, continuing where step ``start_step`` left off."""
    dataset = TrainPatches(pairs, patch=config.patch_size, bapc_prob=config.bapc_prob,
                           bapc_min_ratio=config.bapc_min_ratio, hflip=config.hflip,
                           seed=config.seed, cache=config.cache_images)
    stream = SampleStream(dataset, num_replicas=ddp.world_size, rank=ddp.rank, seed=config.seed,
                          start=start_step * config.batch_size)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=stream,
                        num_workers=config.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=config.num_workers > 0,
                        # Its own generator: creating the iterator must not draw from the
                        # global RNG that dropout uses, or a resumed run would diverge.
                        generator=torch.Generator().manual_seed(config.seed))
    return _worker_errors_unwrapped(iter(loader))


def _worker_errors_unwrapped(batches: Iterator[Any]) -> Iterator[Any]:
    """``batches``, with an error a loader worker raised re-raised with its own message.

    torch re-raises a worker's exception in the main process with the worker's whole
    traceback as its message; the user needs its last line, which names the file."""
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except ReloblurError as exc:
            text = str(exc).rstrip()
            if "Original Traceback" not in text:
                raise
            raise type(exc)(text.splitlines()[-1].split(": ", 1)[-1]) from None
        yield batch


def cpu_bf16(config: TrainConfig) -> bool:
    """Whether a CPU run of ``config`` trains under bf16 autocast: where it asks for it
    (``cpu_amp``) and the CPU computes bf16 in hardware; on another CPU bf16 is many times
    slower than float32 (:func:`~reloblur.lbag.device.cpu_has_native_bf16`), so it trains
    in float32."""
    return config.cpu_amp and cpu_has_native_bf16()


def _step(net: nn.Module, batch: dict[str, torch.Tensor], state: _TrainState, config: TrainConfig,
          device: torch.device, weights: Any) -> dict[str, float]:
    """One optimisation step on ``batch``; returns the loss terms."""
    blur = batch["blur"].to(device, non_blocking=True)
    sharp = batch["sharp"].to(device, non_blocking=True)
    mask = batch["mask"].to(device, non_blocking=True)
    if config.channels_last:
        blur = blur.contiguous(memory_format=torch.channels_last)
    use_amp = (config.amp and device.type == "cuda") or (device.type == "cpu" and cpu_bf16(config))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else contextlib.nullcontext()
    with autocast:
        images, gates = net(blur)
    loss, parts = lbag_loss([i.float() for i in images], [g.float() for g in gates], sharp, mask, weights)
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.optimizer.step()
    state.scheduler.step()
    state.global_step += 1
    return parts


TRAIN_LOG = "train.log"
_log = logging.getLogger(__name__)


class _TrainLog:
    """``history.jsonl``, TensorBoard and ``train.log`` (plain lines with times, for a
    scheduler's job that nobody watches), on the main process only (no-ops elsewhere)."""

    def __init__(self, run_dir: Path, main: bool):
        self.path = run_dir / HISTORY_FILE
        self.history = open(self.path, "a", encoding="utf-8") if main else None
        self.writer = _summary_writer(run_dir) if main else None
        # log_file removes its handler and restores the logger's level on close, so a
        # run in a notebook leaves logging as it found it.
        self.text = contextlib.ExitStack()
        if main:
            self.text.enter_context(log_file(run_dir / TRAIN_LOG))

    def _line(self, record: dict[str, Any]) -> None:
        if self.history is not None:
            try:
                self.history.write(json.dumps(record) + "\n")
                self.history.flush()
            except OSError as exc:  # a full disk: say which file
                raise WriteError(f"{self.path}: cannot write ({exc.strerror or exc})") from exc

    def _scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer is None:
            return
        try:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)
        except OSError as exc:  # TensorBoard's writer thread hit a full disk
            raise WriteError(f"{self.path.parent} (TensorBoard events): cannot write ({exc.strerror or exc})") from exc

    def step(self, step: int, lr: float, parts: dict[str, float]) -> None:
        self._line({"step": step, "lr": lr, **parts})
        _log.info("step %d: L1 %.4f, SSIM term %.4f, FFT %.4f, gate %.5f, lr %.3g", step, parts.get("l1", 0.0),
                  parts.get("ssim", 0.0), parts.get("fft", 0.0), parts.get("gate", 0.0), lr)
        self._scalars({**{f"train/{name}": value for name, value in parts.items()}, "train/lr": lr}, step)

    def validation(self, step: int, metrics: dict[str, float | None]) -> None:
        self._line({"step": step, "validation": metrics})
        _log.info("step %d validation: %s", step,
                  ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float))))
        self._scalars({f"val/{name}": metric for name, metric in metrics.items() if metric is not None}, step)

    def close(self) -> None:
        self.text.close()
        if self.history is not None:
            self.history.close()
        if self.writer is not None:
            with contextlib.suppress(OSError):  # already reported by the write that failed
                self.writer.close()


def _best_psnr(run_dir: Path) -> float | None:
    """The validation PSNR of the run's best checkpoint so far (a resumed run keeps it)."""
    best = run_dir / BEST_NAME
    if not best.exists():
        return None
    value = (read_checkpoint(best).get("validation") or {}).get("psnr")
    return float(value) if isinstance(value, (int, float)) else None


def _keep_best(state: _TrainState, run_dir: Path, step: int, validation: dict[str, float | None],
               best: float | None) -> float | None:
    """Write the model as ``model_ckpt_best.ckpt`` when its validation PSNR is the best yet:
    the checkpoint to deploy, kept beside the last N whatever training does after it. The
    weights only (rank 0 alone validates, so no collective can be involved); resume uses
    the step checkpoints."""
    psnr = validation.get("psnr")
    if psnr is None or (best is not None and psnr <= best):
        return best
    save_checkpoint(run_dir, model=state.model, global_step=step, keep_last=None, name=BEST_NAME,
                    extra={"validation": validation, "reloblur_best": "validation psnr"})
    return psnr


def _save(state: _TrainState, run_dir: Path, config: TrainConfig, ddp: _Dist) -> Path | None:
    """A checkpoint of ``state`` (every rank's RNG gathered, rank 0 writes)."""
    rng = _gather_rng(ddp)
    if not ddp.main:
        return None
    return save_checkpoint(run_dir, model=state.model, global_step=state.global_step, optimizer=state.optimizer,
                           keep_last=config.keep_checkpoints,
                           extra={"scheduler_states": [state.scheduler.state_dict()], "rng_states": rng,
                                  "config": config.to_dict(), "world_size": ddp.world_size})


def _training_pairs(config: TrainConfig) -> tuple[list[Pair], list[Pair]]:
    """The training and validation pairs; every training pair must have its mask."""
    train_pairs = discover_pairs(config.data, masks_root=config.masks, split=config.train_split, require_masks=True)
    val_pairs = (discover_pairs(config.data, masks_root=config.masks, split=config.val_split, consistent_masks=True)
                 if config.val_split else [])
    check_pairs(train_pairs, min_side=config.patch_size)
    check_pairs(val_pairs)
    return train_pairs, val_pairs


def _start_run(config: TrainConfig, run_dir: Path, *, resume: bool, command_line: list[str] | None
               ) -> tuple[_Dist, torch.device]:
    """The process group and the device; the run directory's config and metadata written."""
    ddp = _init_distributed(config.device)
    device = _device_for(config, ddp)
    if ddp.main:
        output_folder(run_dir, what="run directory").mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(run_dir)  # a checkpoint a killed run left half-written
        atomic_write_text(run_dir / CONFIG_FILE, dump_config(config))
        atomic_write_json(run_dir / (RUN_FILE if not resume else f"run-resumed-{int(time.time())}.json"),
                          run_metadata(config, command_line))
    return ddp, device


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
    # Before anything is written: a damaged dataset leaves no half-started run behind.
    train_pairs, val_pairs = _training_pairs(config)
    ddp, device = _start_run(config, run_dir, resume=resume, command_line=command_line)
    state = _build_state(config, run_dir, resume=resume, ddp=ddp, device=device)
    net = _wrap(state.model, config, ddp, device)
    batches = _batches(config, train_pairs, ddp, device, state.global_step)
    log = _TrainLog(run_dir, ddp.main)
    if ddp.main and config.cpu_amp and device.type == "cpu" and not cpu_bf16(config):
        _log.warning("cpu_amp: this CPU has no bf16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast runs "
                     "many times slower than float32: training in float32")
    weights = config.loss_weights()
    parts: dict[str, float] = {}
    validation = None
    checkpoint: Path | None = None
    best_psnr = _best_psnr(run_dir) if ddp.main else None
    net.train()
    try:
        with make_progress(enabled=progress and ddp.main) as bar:
            task = bar.add_task("training", total=config.max_steps, completed=state.global_step)
            while state.global_step < config.max_steps:
                parts = _step(net, next(batches), state, config, device, weights)
                step, last = state.global_step, state.global_step == config.max_steps
                # Not the total, which the SSIM term (minus an SSIM) makes negative: the L1
                # term, which the report plots and a user can read.
                bar.update(task, completed=step, description=f"training (L1 {parts['l1']:.4f})")
                if step % config.log_every == 0 or last:
                    log.step(step, state.optimizer.param_groups[0]["lr"], parts)
                if val_pairs and (step % config.val_every == 0 or last):
                    if ddp.main:
                        validation = validate(net, val_pairs, device, max_images=config.val_max_images,
                                              writer=log.writer, step=step)
                        log.validation(step, validation)
                        best_psnr = _keep_best(state, run_dir, step, validation, best_psnr)
                    if ddp.enabled:
                        dist.barrier()
                if step % config.ckpt_every == 0 or last:
                    checkpoint = _save(state, run_dir, config, ddp) or checkpoint
    finally:
        log.close()
        del batches
        # DistributedDataParallel's reducer holds the process group: let it go before the
        # group is destroyed.
        del net
    if ddp.enabled:
        _leave_process_group(ddp)
    return TrainResult(run_dir=str(run_dir), global_step=state.global_step,
                       checkpoint=str(checkpoint) if checkpoint else None, seconds=time.perf_counter() - started,
                       last_losses=parts, validation=validation, world_size=ddp.world_size)
