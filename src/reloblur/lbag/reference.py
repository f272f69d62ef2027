"""The reference LBAG shipped with the package: a small model (num_res 2) trained on the
simulated rig, so that the demo and a new user start from a model that deblurs.

``scripts/train_reference_model.sh`` makes it (simulated data, recipe, seed); its log and
what it scores are in ``docs/lbag.md``. Any checkpoint argument accepts ``reference`` for
it (``reloblur deblur IMAGES --checkpoint reference``, ``reloblur train --init reference``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reloblur.lbag.checkpoint import REFERENCE_FILE, model_from_checkpoint, resolve_checkpoint, save_checkpoint


def export_reference(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str] = REFERENCE_FILE, *,
                     provenance: dict[str, Any] | None = None) -> Path:
    """Write ``checkpoint``'s weights alone (no optimizer state) as a reference checkpoint.

    The weights are stored in float16, half the size; ``docs/lbag.md`` gives what that
    changes in the outputs. The official layout is kept, so any LBAG loader reads it.

    Parameters
    ----------
    checkpoint
        A training checkpoint (or a run folder: its newest checkpoint).
    out
        The file to write (atomically); by default the package's reference file.
    provenance
        Recorded under ``"reference"``: how the model was made.
    """
    loaded = model_from_checkpoint(checkpoint)
    extra = {"config": loaded.checkpoint.get("config"), "validation": loaded.checkpoint.get("validation"),
             "reference": {"source": str(resolve_checkpoint(checkpoint)), **(provenance or {})}}
    out = Path(out)
    return save_checkpoint(out.parent, model=loaded.model.half(), global_step=loaded.global_step, extra=extra,
                           keep_last=None, name=out.name)
