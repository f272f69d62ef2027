"""Training configuration: a typed dataclass, loadable from YAML, overridable by ``key=value``.

Defaults are the original LBAG recipe (see ``docs/lbag.md``); ``max_steps`` is ours (the
original's learning-rate schedule halves up to 600k steps).
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reloblur.errors import ReloblurError
from reloblur.lbag.data import ORIGINAL_BAPC_MIN_RATIO
from reloblur.lbag.losses import LossWeights
from reloblur.lbag.metrics import WINDOW


class ConfigError(ReloblurError):
    """A configuration file or override is invalid."""


@dataclass
class TrainConfig:
    """Every setting of ``reloblur train``."""

    data: str = ""
    masks: str | None = None
    train_split: str = "train"
    val_split: str | None = "test"
    num_res: int = 20
    dropout: float = 0.1  # feature dropout while training (MIMO-UNet+'s); no effect at inference
    init: str | None = None  # warm start: MIMO-UNet+ pretrained file or an LBAG checkpoint
    patch_size: int = 256
    batch_size: int = 12
    bapc_prob: float = 0.5
    bapc_min_ratio: float = ORIGINAL_BAPC_MIN_RATIO
    hflip: bool = True
    lr: float = 1e-4
    lr_milestones: list[int] = field(default_factory=lambda: [100_000 * k for k in range(1, 7)])
    lr_gamma: float = 0.5
    max_steps: int = 700_000
    l1_weight: float = 1.0
    ssim_weight: float = 1.0
    fft_weight: float = 0.1
    gate_weight: float = 0.1
    shift_tolerant: bool = True
    val_every: int = 10_000
    val_max_images: int | None = None
    ckpt_every: int = 10_000
    keep_checkpoints: int = 3
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    # bf16 autocast on the CPU too: about 1.4-1.9x faster steps on a CPU with bf16 in
    # hardware (device.cpu_has_native_bf16; elsewhere float32, with a warning), but off by
    # default because fp32 keeps CPU runs comparable bit for bit (resume, DDP parity).
    cpu_amp: bool = False
    compile: bool = False
    channels_last: bool = False
    num_workers: int = 2
    cache_images: bool = False

    def loss_weights(self) -> LossWeights:
        """The loss weights of this recipe."""
        return LossWeights(self.l1_weight, self.ssim_weight, self.fft_weight, self.gate_weight, self.shift_tolerant)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON types."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise :class:`ReloblurError` naming the first field out of range."""
        if not self.data:
            raise ConfigError("no dataset: give DATA or 'data:' in the config file")
        for name in ("patch_size", "batch_size", "max_steps", "val_every", "ckpt_every", "log_every", "num_res"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if self.patch_size % 4:
            raise ConfigError(f"patch_size {self.patch_size} must be a multiple of 4")
        if self.ssim_weight and self.patch_size < 4 * WINDOW:
            raise ConfigError(
                f"patch_size {self.patch_size} is too small for the SSIM loss at 1/4 scale "
                f"(min {4 * WINDOW}); use a larger patch or ssim_weight=0"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout {self.dropout} is not within [0, 1)")
        if not 0.0 <= self.bapc_prob <= 1.0:
            raise ConfigError(f"bapc_prob {self.bapc_prob} is not within [0, 1]")
        for field_ in dataclasses.fields(self):
            value = getattr(self, field_.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{field_.name} = {value}: must be a finite number")
        if self.lr <= 0:
            raise ConfigError(f"lr {self.lr} must be positive")


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _coerce(name: str, value: Any) -> Any:
    hint = _HINTS[name]
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{name}: may not be null")
    for option in options:
        if option is type(None):
            continue
        origin = typing.get_origin(option)
        if origin is list:
            if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return list(value)
        elif option is bool:
            if isinstance(value, bool):
                return value
        elif option is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif option is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):  # YAML 1.1 reads "2e-4" (no dot) as a string
                try:
                    return float(value)
                except ValueError:
                    pass
        elif option is str:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)
    raise ConfigError(f"{name}: {value!r} is not a valid {hint}")


def apply_settings(config: TrainConfig, settings: dict[str, Any], *, source: str) -> TrainConfig:
    """A copy of ``config`` with ``settings`` applied; unknown keys are errors naming ``source``."""
    unknown = sorted(set(settings) - set(_FIELDS))
    if unknown:
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(unknown)}")
    try:
        values = {k: _coerce(k, v) for k, v in settings.items()}
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return dataclasses.replace(config, **values)


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """A config from a YAML file of ``setting: value`` lines."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return apply_settings(TrainConfig(), data, source=str(path))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr=2e-4", "lr_milestones=[10, 20]"]`` -> typed values (YAML scalars)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            settings[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            settings[key.strip()] = raw
    return settings


def dump_config(config: TrainConfig) -> str:
    """``config`` as YAML (what ``--config`` reads back)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
