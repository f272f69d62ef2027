"""Logging set-up for the command line: rich handler on stderr, verbosity by flag, and
plain log files (a run's or session's own, and ``--log-file``) that a scheduler keeps."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

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


_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_log_file(path: str | os.PathLike[str], level: int = logging.INFO) -> logging.Handler:
    """Append every ``reloblur`` record at ``level`` and above to ``path`` (plain text, with
    times), whatever the terminal shows; returns the handler (remove it to stop)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(_FORMAT))
    root = logging.getLogger("reloblur")
    root.addHandler(handler)
    if root.getEffectiveLevel() > level:
        root.setLevel(level)  # the file wants what the terminal may not show
    return handler


@contextlib.contextmanager
def log_file(path: str | os.PathLike[str], level: int = logging.INFO) -> Iterator[None]:
    """:func:`add_log_file` for the duration of a block (a training run, a capture)."""
    root = logging.getLogger("reloblur")
    before = root.level
    handler = add_log_file(path, level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(before)
