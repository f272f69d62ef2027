"""The align sidecar: ``<id>.align.json`` beside each aligned pair (see docs/alignment.md)."""

from __future__ import annotations

SIDECAR_SUFFIX = ".align.json"
