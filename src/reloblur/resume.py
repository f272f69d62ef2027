"""The resume convention shared by batch commands.

An item is *done* when its sidecar JSON says ``"status": "done"``, records the content
fingerprints of the inputs it was made from, and the parameters that made it, and all of
them still match. Sidecars are written last and atomically, so a sidecar that says done
implies the outputs beside it are complete. Fingerprints hash the content, not the
modification time, so a copied dataset still resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"size": bytes, "blake2b": hex}`` of a file's content."""
    digest = hashlib.blake2b(digest_size=20)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "blake2b": digest.hexdigest()}


def params_digest(params: Mapping[str, Any]) -> str:
    """A stable digest of JSON-serialisable parameters."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def done_record(inputs: Mapping[str, Path], params: Mapping[str, Any]) -> dict[str, Any]:
    """The sidecar fields that mark an item done for these inputs and parameters."""
    return {
        "status": "done",
        "inputs": {name: file_fingerprint(path) for name, path in sorted(inputs.items())},
        "params_digest": params_digest(params),
    }


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sidecar's JSON object, or ``None`` if it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_done(
    sidecar: str | os.PathLike[str],
    inputs: Mapping[str, Path],
    params: Mapping[str, Any],
    *,
    outputs: tuple[Path, ...] = (),
) -> bool:
    """True when the item behind ``sidecar`` need not be redone.

    Requires the sidecar to say done, every listed output to exist, the parameters'
    digest to match, and each input's size and content hash to match.
    """
    data = read_sidecar(sidecar)
    if not data or data.get("status") != "done":
        return False
    if data.get("params_digest") != params_digest(params):
        return False
    if not all(Path(p).exists() for p in outputs):
        return False
    recorded = data.get("inputs", {})
    if set(recorded) != set(inputs):
        return False
    for name, path in inputs.items():
        try:
            if os.path.getsize(path) != recorded[name].get("size"):
                return False
        except OSError:
            return False
        if file_fingerprint(path) != recorded[name]:
            return False
    return True
