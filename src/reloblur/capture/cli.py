"""``reloblur simulate`` (and, later, ``reloblur capture``): parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from reloblur.capture.simulate import LAYOUTS, SimulateOptions, simulate
from reloblur.dataset_cli.common import fail_partially, parse_size, print_json, stderr, stdout
from reloblur.errors import ReloblurError


def simulate_command(
    out: Annotated[Path, typer.Argument(help="Output directory (created; resumed if it exists).", show_default=False)],
    pairs: Annotated[int, typer.Option("--pairs", "-n", help="Number of B/S pairs.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same bytes.")] = 0,
    size: Annotated[str, typer.Option("--size", help="Frame size WxH (ReLoBlur captures 2152x1436).")] = "2152x1436",
    layout: Annotated[
        str, typer.Option("--layout", help="session: raw camera frames + ground truth; reloblur: aligned dataset.")
    ] = "session",
    bayer: Annotated[bool, typer.Option("--bayer", help="Write raw RGGB Bayer frames (session layout).")] = False,
    pairs_per_scene: Annotated[int, typer.Option("--pairs-per-scene", help="Pairs sharing a background.")] = 4,
    static_fraction: Annotated[float, typer.Option("--static-fraction", help="Share of pairs with no motion.")] = 0.15,
    s_phase: Annotated[str, typer.Option("--s-phase", help="Instant of B's exposure S shows: start, middle, end.")] = "middle",
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of scenes in test (reloblur layout).")] = 0.2,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes [default: all CPUs].")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Simulate the two-camera rig: moving objects over real photographs, B blurred, S sharp.

    Examples:

      reloblur simulate sim-session --size 720x480 --pairs 8

      reloblur simulate sim-data --layout reloblur --size 538x359 --pairs 40
    """
    width, height = parse_size(size)
    if layout not in LAYOUTS:
        raise ReloblurError(f"--layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    result = simulate(
        SimulateOptions(
            out=out, pairs=pairs, seed=seed, width=width, height=height, layout=layout, bayer=bayer,
            pairs_per_scene=pairs_per_scene, static_fraction=static_fraction, s_phase=s_phase,
            test_fraction=test_fraction, workers=workers, progress=not json_output,
        )
    )
    if json_output:
        print_json(result)
    else:
        stdout.print(
            f"{result.layout} at {result.out}: {result.written} pair(s) written, "
            f"{result.resumed} already there, {result.seconds:.1f} s"
        )
        for failure in result.failures:
            stderr.print(f"[red]failed[/] {failure['item']}: {failure['reason']}")
    if result.failures:
        fail_partially(len(result.failures), "pair(s)")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_command)
