"""``reloblur demo``: parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reloblur.dataset_cli.common import print_json, print_table, stdout


def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Empty directory for everything the demo makes.")] = Path("demo-out"),
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="Small and fast (about 2 minutes): for CI.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated scenes.")] = 0,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes \\[default: all CPUs].")] = None,
    mode: Annotated[str, typer.Option(
        "--mode", help="rig: two cameras and the sync box; burst: one fast camera's bursts (docs/burst.md).")] = "rig",
    backend: Annotated[str, typer.Option(
        "--backend", help="rig mode's cameras: sim, or pylon (Basler's emulated cameras serving the simulator's "
                          "renders through pypylon: pip install 'reloblur\\[pylon]').")] = "sim",
    from_scratch: Annotated[bool, typer.Option(
        "--from-scratch", metavar="", help="Train a fresh small LBAG instead of fine-tuning the shipped reference "
                                           "model (minutes on a CPU do not make a model that deblurs).")] = False,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print the result as JSON.")] = False,
) -> None:
    """The whole pipeline on the simulated rig: capture (sim cameras, sync-box emulator on a
    pty), align, masks, split, fine-tune the reference LBAG, eval, deblur, and an HTML report.

    Examples:

      reloblur demo --out demo-out               (then open demo-out/report.html)

      reloblur demo --out demo-burst --mode burst   (one fast camera: capture bursts, build, masks, train...)

      reloblur demo --out demo-pylon --backend pylon   (the capture through a vendor SDK's emulated cameras)
    """
    from reloblur.demo.pipeline import DemoOptions, run_demo

    result = run_demo(DemoOptions(out=out, quick=quick, seed=seed, workers=workers, progress=not json_output,
                                  mode=mode, backend=backend, from_scratch=from_scratch))
    if json_output:
        print_json(result)
        return
    print_table("reloblur demo", ("stage", "time", "result"),
                [(stage.name, f"{stage.seconds:.1f} s", stage.summary) for stage in result.stages],
                right=("time",), fold=("result",))
    stdout.print(f"report: [bold]{result.report}[/]")


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the app."""
    app.command("demo")(demo_command)
