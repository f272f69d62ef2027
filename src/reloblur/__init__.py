"""reloblur: real-world local motion blur datasets (ReLoBlur method) and LBAG deblurring.

The stages are libraries; the names most used from Python (a notebook, a script) are
importable from here and load on first use, so ``import reloblur`` stays instant and
pulls in neither OpenCV nor torch until asked (``docs/api.md``)::

    import reloblur
    pair = reloblur.RigSimulator(reloblur.SimulatorConfig(width=538, height=359)).render(0)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Names loaded on first access (PEP 562), by the module that defines them.
_MODULES = {
    # simulated rig
    "reloblur.sim.simulator": ("RigSimulator", "SimulatorConfig"),
    "reloblur.sim.simulate": ("simulate", "SimulateOptions"),
    # images
    "reloblur.imaging.imageio": ("read_image", "write_image", "encode_srgb", "srgb_to_linear"),
    "reloblur.imaging.raw": ("load_linear", "frame_to_linear"),
    # alignment
    "reloblur.postprocess.align": ("align_pair", "AlignSettings"),
    "reloblur.postprocess.color": ("fit_color",),
    # masks
    "reloblur.lbfmg.generate": ("generate_mask", "MaskParams"),
    "reloblur.lbfmg.metrics": ("iou", "boundary_f_score"),
    # datasets
    "reloblur.formats.dataset": ("find_pairs",),
    "reloblur.formats.session": ("Session",),
    # batch commands as functions
    "reloblur.pipeline.align": ("align_all", "AlignOptions"),
    "reloblur.pipeline.masks": ("generate_masks", "GenerateOptions"),
    # LBAG (needs the train extra: torch)
    "reloblur.lbag.model": ("LBAG",),
    "reloblur.lbag.metrics": ("image_metrics",),
    "reloblur.lbag.checkpoint": ("model_from_checkpoint",),
    "reloblur.lbag.inference": ("deblur",),
}
_PUBLIC = {name: module for module, names in _MODULES.items() for name in names}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'reloblur' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
