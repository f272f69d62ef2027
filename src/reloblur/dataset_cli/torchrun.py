"""``python -m reloblur.dataset_cli.torchrun``: the training command as a module, for torchrun.

    torchrun --nproc_per_node 4 -m reloblur.dataset_cli.torchrun DATA --run-dir RUN [options of reloblur train]
"""

from __future__ import annotations

import os
import sys

import typer

from reloblur.dataset_cli.app import ReloblurGroup
from reloblur.dataset_cli.lbag import train_command


def main() -> None:
    """Run ``reloblur train``'s options as this process's command (torchrun starts one per rank)."""
    app = typer.Typer(cls=ReloblurGroup, add_completion=False)
    app.command()(train_command)
    try:
        app()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    # By now every output is written and the process group destroyed. What is left is the
    # interpreter's teardown, where a rank whose run had finished was once aborted by a
    # gloo thread still being destroyed ("terminate called without an active exception",
    # then a segmentation fault; once in a CI run of the two-rank tests): leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
