"""Device selection: ``auto`` picks CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import functools

import torch

from reloblur.errors import ReloblurError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """A torch device for ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises
    ------
    ReloblurError
        The requested device is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ReloblurError(f"--device {name}: CUDA is not available (torch {torch.__version__})")
        return torch.device(name)
    if name == "mps":
        if getattr(torch.backends, "mps", None) is None or not torch.backends.mps.is_available():
            raise ReloblurError("--device mps: Apple MPS is not available")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise ReloblurError(f"--device {name!r}: choose from {', '.join(DEVICES)} (or cuda:N)")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 AVX512-BF16 or AMX tiles), where
    bf16 autocast makes convolutions faster. Elsewhere torch runs them through its
    reference matrix product: on an AVX2-only machine a small convolution's forward and
    backward took 75 times as long under bf16 autocast as in float32 (2026-12-05), and the
    demo's fine-tuning 64 s a step instead of about 1."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
