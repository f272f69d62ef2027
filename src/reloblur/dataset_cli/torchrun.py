"""``python -m reloblur.dataset_cli.torchrun``: the training command as a module, for torchrun.

    torchrun --nproc_per_node 4 -m reloblur.dataset_cli.torchrun DATA --run-dir RUN [options of reloblur train]
"""

from __future__ import annotations

import typer

from reloblur.dataset_cli.app import ReloblurGroup
from reloblur.dataset_cli.lbag import train_command


def main() -> None:
    """Run ``reloblur train``'s options as this process's command (torchrun starts one per rank)."""
    app = typer.Typer(cls=ReloblurGroup, add_completion=False)
    app.command()(train_command)
    app()


if __name__ == "__main__":
    main()
