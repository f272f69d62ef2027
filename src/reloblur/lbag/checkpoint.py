"""Checkpoints in the official LBAG layout, plus MIMO-UNet+ warm starts.

Official (and ours)::

    {"global_step": N,
     "optimizer_states": [adam.state_dict()],
     "state_dict": {"model": model.state_dict()},
     # ours only, ignored by the original code:
     "scheduler_states": [...], "rng_states": {...}, "config": {...}, "reloblur_version": "..."}

saved as ``model_ckpt_steps_<N>.ckpt`` with torch's legacy (non-zip) serialization, so
either implementation reads the other's files. Loading uses ``weights_only=True`` (no
arbitrary code from pickles); ``trust=True`` lifts that for files from a trusted source.

A MIMO-UNet+ pretrained file is ``{"model": state_dict}``; its 3-channel output heads do
not fit LBAG's 4-channel (gate + RGB) heads, so those are re-initialised and listed.
"""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reloblur import __version__
from reloblur.atomic import atomic_open
from reloblur.errors import ReloblurError, WriteError
from reloblur.lbag.model import LBAG, infer_num_res

CHECKPOINT_NAME = re.compile(r"^model_ckpt_steps_(\d+)\.ckpt$")
# Wherever a checkpoint path is taken, this word names the reference model shipped with the
# package (reloblur.lbag.reference); a file or folder of that name in the working directory wins.
REFERENCE = "reference"
REFERENCE_FILE = Path(__file__).with_name("weights") / "lbag-sim-nr2.ckpt"
WARM_START_DROPPED = (
    "feat_extract.5.main.0.weight",
    "feat_extract.5.main.0.bias",
    "ConvsOut.0.main.0.weight",
    "ConvsOut.0.main.0.bias",
    "ConvsOut.1.main.0.weight",
    "ConvsOut.1.main.0.bias",
)


class CheckpointError(ReloblurError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


@dataclass
class LoadedModel:
    """A model built from a checkpoint and what was learned on the way."""

    model: LBAG
    kind: str  # "lbag" (official or ours), "mimo-unet-plus" (warm start), "state-dict"
    global_step: int = 0
    reinitialised: list[str] = field(default_factory=list)
    checkpoint: dict[str, Any] = field(default_factory=dict)


def checkpoint_name(step: int) -> str:
    """The file name of the checkpoint at ``step`` (the official naming)."""
    return f"model_ckpt_steps_{step}.ckpt"


def list_checkpoints(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``model_ckpt_steps_N.ckpt`` in ``directory``, by step."""
    found = []
    for path in Path(directory).glob("model_ckpt_steps_*.ckpt"):
        match = CHECKPOINT_NAME.match(path.name)
        if match:
            found.append((int(match[1]), path))
    return sorted(found)


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file, the newest one (largest N) in a directory, or the reference model."""
    path = Path(path)
    if str(path) == REFERENCE and not path.exists():
        if not REFERENCE_FILE.exists():
            raise CheckpointError(f"{REFERENCE_FILE}: the reference model is missing from this installation "
                                  "(reinstall reloblur, or make it with scripts/train_reference_model.sh)")
        return REFERENCE_FILE
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(f"{path}: no model_ckpt_steps_<N>.ckpt files in this directory")
        return found[-1][1]
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def read_checkpoint(path: str | os.PathLike[str], *, trust: bool = False) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU."""
    path = resolve_checkpoint(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint file is empty (0 bytes)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:  # what weights_only refuses: objects that could run code
        hint = "" if trust else " (if you trust the file, allow arbitrary pickles with --trust-checkpoint)"
        raise CheckpointError(f"{path}: cannot load checkpoint: {str(exc).strip().splitlines()[0]}{hint}") from None
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a checkpoint dictionary")
    return data


def _mismatch_report(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    own = model.state_dict()
    lines = [f"missing: {k}" for k in own if k not in state]
    lines += [f"unexpected: {k}" for k in state if k not in own]
    lines += [
        f"shape: {k} is {tuple(v.shape)} in the file, {tuple(own[k].shape)} in the model"
        for k, v in state.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    return lines


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    problems = _mismatch_report(model, state)
    if problems:
        shown = "\n  ".join(problems[:20]) + ("\n  ..." if len(problems) > 20 else "")
        raise CheckpointError(f"{source}: state dict does not fit LBAG:\n  {shown}")
    model.load_state_dict(state)


def model_from_checkpoint(path: str | os.PathLike[str], *, trust: bool = False,
                          num_res: int | None = None) -> LoadedModel:
    """Build an LBAG from an official/our checkpoint, a MIMO-UNet+ file or a bare state dict.

    The depth (``num_res``) is inferred from the keys unless given.

    Raises
    ------
    CheckpointError
        Unreadable file, or keys/shapes that do not fit (all of them are listed).
    """
    resolved = resolve_checkpoint(path)
    data = read_checkpoint(resolved, trust=trust)
    if isinstance(data.get("state_dict"), dict) and isinstance(data["state_dict"].get("model"), dict):
        kind, state = "lbag", data["state_dict"]["model"]
    elif isinstance(data.get("model"), dict):
        kind, state = "mimo-unet-plus", data["model"]
    elif all(isinstance(v, torch.Tensor) for v in data.values()):
        kind, state = "state-dict", data
    else:
        raise CheckpointError(
            f"{resolved}: unknown checkpoint layout (top-level keys: {', '.join(sorted(data))})"
        )
    try:
        depth = num_res or infer_num_res(state)
    except KeyError as exc:
        raise CheckpointError(f"{resolved}: {exc.args[0]}") from None
    model = LBAG(depth)
    reinitialised: list[str] = []
    if kind == "mimo-unet-plus":
        own = model.state_dict()
        fitting = {k: v for k, v in state.items() if k not in WARM_START_DROPPED}
        unfit = [k for k, v in fitting.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
        unknown = [k for k in fitting if k not in own]
        if unfit or unknown:
            raise CheckpointError(
                f"{resolved}: MIMO-UNet+ weights do not fit beyond the output heads: "
                + ", ".join(unfit + unknown)
            )
        model.load_state_dict(fitting, strict=False)
        reinitialised = [k for k in own if k not in fitting]
    else:
        _load_strict(model, state, str(resolved))
    return LoadedModel(model, kind, int(data.get("global_step", 0)), reinitialised, data)


BEST_NAME = "model_ckpt_best.ckpt"  # the best validation PSNR so far (not pruned, not resumed from)


def save_checkpoint(directory: str | os.PathLike[str], *, model: nn.Module, global_step: int,
                    optimizer: torch.optim.Optimizer | None = None, extra: dict[str, Any] | None = None,
                    keep_last: int | None = 3, name: str | None = None) -> Path:
    """Write ``model_ckpt_steps_<global_step>.ckpt`` (or ``name``) atomically; prune the
    step checkpoints to the newest ``keep_last``.

    ``extra`` adds our keys (scheduler and RNG states, config) beside the official ones.
    """
    directory = Path(directory)
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    payload: dict[str, Any] = {
        "global_step": int(global_step),
        "optimizer_states": [optimizer.state_dict()] if optimizer is not None else [],
        "state_dict": {"model": state},
        "reloblur_version": __version__,
    }
    payload.update(extra or {})
    path = directory / (name or checkpoint_name(global_step))
    try:
        with atomic_open(path) as handle:
            torch.save(payload, handle, _use_new_zipfile_serialization=False)
    except RuntimeError as exc:  # torch reports a failed write (a full disk) so, without the path
        raise WriteError(f"{path}: cannot write ({exc})") from exc
    if keep_last is not None and keep_last > 0:
        for _, old in list_checkpoints(directory)[:-keep_last]:
            old.unlink(missing_ok=True)
    return path


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    inner = getattr(model, "module", model)
    return getattr(inner, "_orig_mod", inner)
