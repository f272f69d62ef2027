"""``reloblur burst build``: parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from reloblur.dataset_cli.common import FlagHelpGroup, ShardOpt, finish_batch

burst_app = typer.Typer(cls=FlagHelpGroup, help="The single-camera method: pairs from bursts of overlapped exposures of one fast camera.",
                        no_args_is_help=True)


@burst_app.command("build")
def build_command(
    bursts: Annotated[Path, typer.Argument(help="Burst folders (each holds burst.json and its raw frames).",
                                           show_default=False)],
    out: Annotated[Path, typer.Argument(help="Output tree of B/S pairs (created; resumed if it exists).",
                                        show_default=False)],
    phase: Annotated[str, typer.Option("--phase", help="The frame that is S: start, middle or end of the burst.")] = "middle",
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="8 or 16-bit PNG output.")] = 8,
    keep_shaken: Annotated[bool, typer.Option(
        "--keep-shaken", metavar="", help="Build bursts the camera shook too (flagged in their sidecar).")] = False,
    shard: ShardOpt = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes \\[default: all CPUs].")] = None,
    json_output: Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")] = False,
) -> None:
    """Make one B/S pair of each burst: B the mean of its raw frames in linear light, S one frame.

    Examples:

      reloblur burst build bursts/ data/dataset

      reloblur burst build bursts/ data/dataset --phase start   # S at the burst's start, as ReLoBlur's pairs

      reloblur mask generate data/dataset                       # then masks, as for rig pairs
    """
    from reloblur.batch import Shard
    from reloblur.burst.build import DASHED_BELOW
    from reloblur.formats.timing import check_s_phase
    from reloblur.pipeline.burst import BurstBuildOptions, build_bursts

    report = build_bursts(BurstBuildOptions(bursts, out, check_s_phase(phase), bit_depth, keep_shaken=keep_shaken,
                                            workers=workers, progress=not json_output, shard=Shard.parse(shard)))

    def notes() -> list[str]:
        lines = []
        if report.dashed:
            lines.append(f"warning: {len(report.dashed)} burst(s) exposed less than {DASHED_BELOW:.0%} of each frame "
                         "period: B's streaks are dashed (shorten the frame period or lengthen the exposure)")
        if report.shaken_kept:
            lines.append(f"warning: {len(report.shaken_kept)} shaken burst(s) built anyway (--keep-shaken)")
        return lines

    finish_batch(report, report.failures, json_output=json_output, what="burst(s)", notes=notes, summary=lambda: [
        f"{report.pairs} burst(s): {report.built} built, {report.resumed} already done, {len(report.failures)} failed "
        f"(S at the {report.phase}) -> {escape(report.out)}",
    ])


def register(app: typer.Typer) -> None:
    """Add ``burst`` to the top-level app."""
    app.add_typer(burst_app, name="burst")
