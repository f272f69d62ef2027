"""``reloblur mask generate | review | stats``: parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from reloblur.dataset_cli.common import FlagHelpGroup, ShardOpt, finish_batch, print_json, print_table, stderr, stdout
from reloblur.lbfmg.params import MaskParams, MaskParamsError

mask_app = typer.Typer(cls=FlagHelpGroup, help="LBFMG blur masks: generate automatically, review and edit in the browser, statistics.",
                       no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")]


def _default_masks(data: Path) -> Path:
    return data.resolve().parent / "masks"


# The library's defaults, so that the command runs what the benchmark measures (the CLI
# once closed at 0.03 of the short side while the generator's default was 0.01).
_DEFAULT = MaskParams()
_OPTION_OF = {"high_sigmas": "--high", "low_sigmas": "--low", "close_radius": "--close", "min_area": "--min-area",
              "dilate_radius": "--dilate"}


def _params(high: float, low: float, close: float, min_area: float | None, dilate: float) -> MaskParams:
    try:
        return MaskParams(high_sigmas=high, low_sigmas=low, close_radius=close, min_area=min_area,
                          dilate_radius=dilate)
    except MaskParamsError as exc:
        message = str(exc)
        for field, option in _OPTION_OF.items():
            message = message.replace(field, option)
        raise MaskParamsError(message) from None


@mask_app.command("generate")
def generate_command(
    data: Annotated[Path, typer.Argument(help="Aligned pairs: a ReLoBlur dataset root or 'align' output.",
                                         show_default=False)],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Masks tree \\[default: sibling 'masks'].")] = None,
    high: Annotated[float, typer.Option("--high", help="Seed threshold, in noise sigmas.")] = _DEFAULT.high_sigmas,
    low: Annotated[float, typer.Option("--low", help="Growing threshold, in noise sigmas.")] = _DEFAULT.low_sigmas,
    close: Annotated[float, typer.Option(
        "--close", help="Closing radius (fraction of the short side).")] = _DEFAULT.close_radius,
    min_area: Annotated[Optional[float], typer.Option(
        "--min-area", help="Smallest kept region (fraction of the image) \\[default: two smoothing footprints, "
                           "about 100 px at any resolution].", show_default=False)] = _DEFAULT.min_area,
    dilate: Annotated[float, typer.Option(
        "--dilate", help="Safety dilation (fraction of the short side).")] = _DEFAULT.dilate_radius,
    force: Annotated[bool, typer.Option("--force", metavar="", help="Also regenerate masks a curator edited or reviewed.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", metavar="", help="Replace masks of the same names that another dataset's pairs made "
                                        "(a masks tree two datasets share).")] = False,
    calibration: Annotated[Optional[Path], typer.Option(
        "--calibration", help="Judge noise by the model 'align calibrate' fitted on a static capture.")] = None,
    method: Annotated[str, typer.Option(
        "--method", help="difference: B against S, judged by the noise model; flow: motion between a burst's "
                         "kept frames; both: the difference plus motion regions overlapping it.")] = "difference",
    crosstalk: Annotated[str, typer.Option(
        "--crosstalk", help="What S's colour correction mixed from a clipped channel into the others. prior: up to "
                            "5 % of the level; measured: by align's colour matrix, where B measures the lost excess "
                            "(only when neither camera transforms colour after its sensor clips: raw or linear "
                            "output, or pairs made from one camera's frames, as from video); auto: measured for pairs "
                            "whose align record says so of the session's cameras "
                            "(raw frames, or the colour transformation recorded off), prior for the rest.")] = "auto",
    s_phase: Annotated[str, typer.Option(
        "--s-phase", help="The instant of B's exposure S was exposed at: start, middle or end. At the start or end "
                          "(ReLoBlur's rig: start), every blur trail ends in a step at S's outline, which the mask "
                          "places more finely. auto: as align's record says the session's rig had it, or burst "
                          "build's sidecar the frame it took for S; for pairs with neither, read from each pair "
                          "(whether its trails end in steps at S's edges).")] = "auto",
    shard: ShardOpt = None,
    workers: Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes \\[default: all CPUs].")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Make the blur mask of every pair by noise-aware background subtraction.

    Examples:

      reloblur mask generate data/dataset --out data/masks

      reloblur mask generate data/dataset --shard 3/8   # part 3 of 8, e.g. on a cluster

      reloblur mask generate data/dataset --method both  # burst pairs whose frames were kept

      reloblur mask generate ReLoBlur/ --s-phase start  # a rig known to expose S at the start
    """
    from reloblur.batch import Shard
    from reloblur.pipeline.masks import GenerateOptions, generate_masks

    report = generate_masks(GenerateOptions(data, out or _default_masks(data), _params(high, low, close, min_area, dilate),
                                            force, workers, progress=not json_output, calibration=calibration,
                                            shard=Shard.parse(shard),
                                            method=method,  # type: ignore[arg-type]  # checked, naming the choices
                                            overwrite=overwrite,
                                            crosstalk=crosstalk,  # type: ignore[arg-type]  # checked, naming the choices
                                            s_phase=s_phase))  # type: ignore[arg-type]  # checked, naming the choices
    ratio = "-" if report.mean_blur_ratio is None else f"{100 * report.mean_blur_ratio:.2f} %"
    finish_batch(report, report.failures, json_output=json_output, summary=lambda: [
        f"{report.pairs} pair(s): {report.generated} generated, {report.resumed} already done, "
        f"{report.kept_edited} edited/reviewed kept, {len(report.failures)} failed; mean blur ratio {ratio} "
        f"-> {escape(str(report.masks))}",
        *([f"{len(report.withheld)} mask(s) withheld and written empty ({escape(', '.join(report.withheld))}): "
           "mask those pairs by hand (reloblur mask review) or leave them out"] if report.withheld else []),
        *([f"S's instant was read from the {report.phase_read} pair(s) that record none: at the start or end of "
           f"B's exposure on {report.phase_read_at_an_end}, the middle or undecided on the rest (--s-phase gives "
           "your rig's instant to every pair)"] if report.phase_read else []),
    ], notes=lambda: [f"[yellow]check[/] {escape(w.item)}: {escape(w.reason)}" for w in report.flagged])


@mask_app.command("review")
def review_command(
    data: Annotated[Path, typer.Argument(help="Aligned pairs (dataset root).", show_default=False)],
    masks: Annotated[Optional[Path], typer.Option("--masks", help="Masks tree \\[default: sibling 'masks'].")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (default: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 8765,
) -> None:
    """Review and edit masks in the browser (brush, eraser, polygon, a box that takes an object from S, threshold, undo).

    Prints a URL with an access token. On a remote server, tunnel the port:
    ssh -L 8765:127.0.0.1:8765 server, then open the printed URL locally.

    Example: reloblur mask review data/dataset --masks data/masks
    """
    from reloblur.review.server import ReviewOptions, make_server

    server, url = make_server(ReviewOptions(data, masks or _default_masks(data), host, port))
    stdout.print(f"mask review of {data}: open [bold]{url}[/] (Ctrl-C to stop)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        stderr.print("[yellow]warning:[/] listening beyond this machine; the token is the only protection")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        stdout.print("stopped")
    finally:
        server.server_close()


@mask_app.command("stats")
def stats_command(
    masks: Annotated[Path, typer.Argument(help="Masks tree.", show_default=False)],
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Histogram PNG \\[default: MASKS_stats.png beside it].")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Blur-ratio histogram and table of a masks tree, per split, with review progress.

    Example: reloblur mask stats data/masks
    """
    from reloblur.pipeline.masks import MaskStatsOptions, mask_stats

    stats = mask_stats(MaskStatsOptions(masks, plot or masks.resolve().parent / f"{masks.resolve().name}_stats.png"))
    if json_output:
        print_json(stats)
        return
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f} %"

    numbers = ("masks", "mean", "median", "min", "max", "empty")
    print_table(f"{stats.count} masks in {stats.masks}", ("group", *numbers),
                [(group, str(summary.count), pct(summary.mean), pct(summary.median), pct(summary.min),
                  pct(summary.max), str(summary.empty_masks))
                 for group, summary in [*stats.per_group.items(), ("all", stats.blur_ratio)]], right=numbers)
    stdout.print("review: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.review.items())))
    stdout.print(f"histogram: {stats.plot}")


@mask_app.command("export")
def export_command(
    masks: Annotated[Path, typer.Argument(help="Masks tree.", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Where to write the exported tree.", show_default=False)],
    convention: Annotated[str, typer.Option("--convention", help="soft (original ReLoBlur: non-binary, > 0 "
                                            "is blurred) or binary (0/255).")] = "soft",
    json_output: JsonOpt = False,
) -> None:
    """Export a masks tree in a mask convention (same folders and names).

    Example: reloblur mask export data/masks relo-masks --convention soft
    """
    from reloblur.pipeline.masks import MaskExportOptions, export_masks

    report = export_masks(MaskExportOptions(masks, out, convention,  # type: ignore[arg-type]  # checked inside
                                            progress=not json_output))
    finish_batch(report, report.failures, json_output=json_output, what="mask(s)", summary=lambda: [
        f"{report.written} mask(s) exported ({report.convention}) -> {escape(report.out)}",
    ], notes=lambda: [f"{len(report.without_confidence)} mask(s) had no confidence map and were exported binary"]
        if report.without_confidence else [])


def register(app: typer.Typer) -> None:
    """Add the ``mask`` command group to the app."""
    app.add_typer(mask_app, name="mask")
