"""``reloblur align``, ``align calibrate`` and ``align report``: parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from reloblur.dataset_cli.common import (
    DefaultToRun,
    ShardOpt,
    finish_batch,
    parse_size,
    print_json,
    stdout,
)
from reloblur.errors import ReloblurError

TransferOpt = Annotated[str, typer.Option(
    "--transfer", help="Input encoding: auto (what a PNG declares; else 8-bit sRGB, 16-bit and raw linear), "
                       "linear or srgb.")]

align_app = typer.Typer(
    cls=DefaultToRun,
    help=(
        "Align B/S pairs (colour, brightness, sub-pixel geometry, crop), calibrate a rig, report.\n\n"
        "reloblur align IN OUT is short for reloblur align run IN OUT."
    ),
    no_args_is_help=True,
)
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes \\[default: all CPUs].")]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")]


@align_app.command("run")
def align_command(
    input: Annotated[Path, typer.Argument(help="Capture session, or a folder tree of <id>_blur/<id>_sharp files.",
                                          show_default=False)],
    out: Annotated[Path, typer.Argument(help="Output directory (mirrors the input).", show_default=False)],
    no_crop: Annotated[bool, typer.Option("--no-crop", metavar="", help="Keep B's full grid; write <id>.valid.png masks.")] = False,
    resize: Annotated[Optional[str], typer.Option("--resize", help="Resize outputs to WxH (e.g. 538x359).")] = None,
    resize_filter: Annotated[str, typer.Option("--resize-filter", help="area or bicubic.")] = "area",
    color_mode: Annotated[str, typer.Option(
        "--color-mode", help="matrix, affine, gain, scalar, colourful (colour directions from the colourful pixels "
        "alone: truer to a few coloured objects on a grey frame) or calibrated.")] = "matrix",
    mirror_sharp: Annotated[str, typer.Option(
        "--mirror-sharp",
        help="How S's image is mirrored relative to B's (a beam splitter reflects one camera's view): auto (S as it "
             "is, else its mirror images), none, horizontal or vertical.")] = "auto",
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Rig calibration from 'align calibrate'.")] = None,
    no_refine: Annotated[bool, typer.Option(
        "--no-refine", metavar="",
        help="With --calibration: keep its homography as given, not refined on each scene (scenes clipped or "
             "featureless over most of the frame can pull the refinement off the rig's geometry).")] = False,
    masks: Annotated[Optional[Path], typer.Option("--masks", help="Known blur masks (<dir>/<id>.png) to exclude.")] = None,
    transfer: TransferOpt = "auto",
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="Output PNG bit depth: 8 or 16.")] = 8,
    max_shift: Annotated[float, typer.Option("--max-shift", help="Flag pairs shifted more (px).")] = 200.0,
    max_rotation: Annotated[float, typer.Option("--max-rotation", help="Flag pairs rotated more (deg).")] = 5.0,
    max_scale: Annotated[float, typer.Option("--max-scale-change", help="Flag pairs scaled more (fraction).")] = 0.05,
    min_psnr: Annotated[float, typer.Option("--min-static-psnr", help="Flag pairs below (dB).")] = 25.0,
    max_level_exponent: Annotated[float, typer.Option(
        "--max-level-exponent",
        help="Flag pairs whose brightness ratio S/B changes with level more (g of S ~ B^(1+g); gamma 0.6 on one "
             "camera is -0.4).")] = 0.25,
    append: Annotated[bool, typer.Option("--append", metavar="",
                                         help="OUT holds other sessions: number this one's pairs on after theirs.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", metavar="",
                                            help="Replace pairs OUT already holds where these go (refused by default).")] = False,
    png_compression: Annotated[str, typer.Option(
        "--png-compression",
        help="fast (4.5 MB a 2152x1436 photo), small (4.3 MB, twice the time) or none (9.3 MB, a quarter).")] = "fast",
    shard: ShardOpt = None,
    workers: WorkersOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Align every pair: S colour-corrected, brightness-matched and warped onto B.

    A session's pairs go to OUT/train/<scene>/00/NN_*; a second session aligned into the
    same OUT is refused where its pairs would replace the first's, unless --append
    (numbered on) or --overwrite.

    Examples:

      reloblur align run session/ aligned/

      reloblur align run session-2/ aligned/ --append

      reloblur align run photos/ aligned/ --resize 538x359 --workers 4

      reloblur align run session/ aligned/ --shard $SLURM_ARRAY_TASK_ID/8   # one of 8 machines
    """
    from reloblur.batch import Shard
    from reloblur.imaging.raw import check_transfer
    from reloblur.pipeline.align import AlignOptions, align_all
    from reloblur.postprocess.align import AlignLimits, check_mirror
    from reloblur.postprocess.color import check_color_mode

    if append and overwrite:
        raise ReloblurError("--append and --overwrite: choose one")
    report = align_all(AlignOptions(
        input=input, out=out, crop=not no_crop, resize=parse_size(resize, option="--resize") if resize else None,
        resize_filter=resize_filter, color_mode=check_color_mode(color_mode), mirror=check_mirror(mirror_sharp),
        calibration=calibration, refine=not no_refine, masks=masks,
        transfer=check_transfer(transfer), bit_depth=bit_depth,
        limits=AlignLimits(max_shift, max_rotation, max_scale, min_psnr, max_level_exponent),
        workers=workers, progress=not json_output, merge="append" if append else "overwrite" if overwrite else "refuse",
        shard=Shard.parse(shard), png_compression=png_compression,  # type: ignore[arg-type]
    ))
    finish_batch(report, report.failures, json_output=json_output, summary=lambda: [
        f"{report.pairs} pair(s): {report.aligned} aligned, {report.resumed} already done, "
        f"{len(report.flagged)} flagged, {len(report.failures)} failed -> {escape(report.out)}",
        *(f"[yellow]flagged[/] {escape(key)} (see its .align.json)" for key in report.flagged),
        *(f"skipped {escape(s.item)}: {escape(s.reason)}" for s in report.skipped),
    ])


@align_app.command("calibrate")
def calibrate_command(
    input: Annotated[Path, typer.Argument(help="Session (or pair tree) of a static scene.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Calibration JSON to write.")] = Path("calibration.json"),
    transfer: TransferOpt = "auto",
    workers: WorkersOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Fit the rig's homography and colour matrix from a capture of a static scene.

    Example: reloblur align calibrate calib-session/ --out rig.json
    """
    from reloblur.imaging.raw import check_transfer
    from reloblur.pipeline.calibrate import CalibrateOptions, calibrate

    result = calibrate(CalibrateOptions(input, out, check_transfer(transfer), workers, progress=not json_output))
    colour = {"pass": "green", "warn": "yellow", "fail": "red"}[result.verdict]
    finish_batch(result, result.failures, json_output=json_output, summary=lambda: [
        f"calibration from {result.pairs_used} pair(s) -> {escape(result.out)}: [{colour}]{result.verdict}[/]",
        *(f"  {escape(reason)}" for reason in result.reasons),
    ])


@align_app.command("report")
def report_command(
    out: Annotated[Path, typer.Argument(help="An 'align' output directory.", show_default=False)],
    html: Annotated[Optional[Path], typer.Option("--html", help="Page to write \\[default: OUT-report/index.html].")] = None,
    detailed: Annotated[int, typer.Option("--detailed", help="Pairs shown with images (worst first).")] = 30,
    json_output: JsonOpt = False,
) -> None:
    """Write an HTML page to check an aligned dataset: worst pairs first, flicker crops.

    Example: reloblur align report aligned/
    """
    from reloblur.reports.align_report import ReportOptions, build_report

    result = build_report(ReportOptions(out, html, detailed))
    if json_output:
        print_json(result)
    else:
        stdout.print(f"report of {result.pairs} pair(s): {result.html}")


def register(app: typer.Typer) -> None:
    """Add the ``align`` command group to the app."""
    app.add_typer(align_app, name="align")
