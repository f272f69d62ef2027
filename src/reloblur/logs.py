"""Logging set-up for the command line: rich handler on stderr, verbosity by flag."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler


def configure_logging(verbosity: int = 0) -> None:
    """0: warnings, 1: info, 2+: debug; messages go to stderr, never to ``--json`` stdout."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    root = logging.getLogger("reloblur")
    root.setLevel(level)
    for handler in list(root.handlers):
        if isinstance(handler, RichHandler):
            root.removeHandler(handler)
    handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=True)
    handler.setLevel(level)
    root.addHandler(handler)
