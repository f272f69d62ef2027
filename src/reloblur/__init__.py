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

# name -> module that defines it (loaded on first access, PEP 562)
_PUBLIC = {
    # simulated rig
    "RigSimulator": "reloblur.sim.simulator", "SimulatorConfig": "reloblur.sim.simulator",
    "simulate": "reloblur.sim.simulate", "SimulateOptions": "reloblur.sim.simulate",
    # images
    "read_image": "reloblur.imaging.imageio", "write_image": "reloblur.imaging.imageio",
    "encode_srgb": "reloblur.imaging.imageio", "srgb_to_linear": "reloblur.imaging.imageio",
    "load_linear": "reloblur.imaging.raw", "frame_to_linear": "reloblur.imaging.raw",
    # alignment
    "align_pair": "reloblur.postprocess.align", "AlignSettings": "reloblur.postprocess.align",
    "fit_color": "reloblur.postprocess.color",
    # masks
    "generate_mask": "reloblur.lbfmg.generate", "MaskParams": "reloblur.lbfmg.generate",
    "iou": "reloblur.lbfmg.metrics", "boundary_f_score": "reloblur.lbfmg.metrics",
    # datasets
    "find_pairs": "reloblur.formats.dataset", "Session": "reloblur.formats.session",
    # batch commands as functions
    "align_all": "reloblur.pipeline.align", "AlignOptions": "reloblur.pipeline.align",
    "generate_masks": "reloblur.pipeline.masks", "GenerateOptions": "reloblur.pipeline.masks",
    # LBAG (needs the train extra: torch)
    "LBAG": "reloblur.lbag.model", "image_metrics": "reloblur.lbag.metrics",
    "model_from_checkpoint": "reloblur.lbag.checkpoint", "deblur": "reloblur.lbag.inference",
}

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
