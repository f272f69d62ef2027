"""``reloblur dataset validate | stats | split | export``: parsing and printing only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from reloblur.dataset.export import FORMATS, ExportOptions, export_dataset
from reloblur.dataset.split import SplitOptions, split_dataset
from reloblur.dataset.stats import StatsOptions, dataset_stats
from reloblur.dataset.validate import ValidateOptions, validate_dataset
from reloblur.dataset_cli.common import FlagHelpGroup, print_json, print_table, stderr, stdout

RootArg = Annotated[Path, typer.Argument(help="Dataset root (holds train/ and test/).", show_default=False)]
MasksOpt = Annotated[
    Optional[Path], typer.Option("--masks", help="Masks tree \\[default: the sibling 'masks' directory].")
]
JsonOpt = Annotated[bool, typer.Option("--json", metavar="", help="Print machine-readable JSON on stdout.")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", "-j", help="Worker processes \\[default: all CPUs].")]

dataset_app = typer.Typer(cls=FlagHelpGroup, help="Inspect, check, split and export ReLoBlur-format datasets.",
                          no_args_is_help=True)


@dataset_app.command("validate")
def validate_command(
    root: RootArg,
    masks: MasksOpt = None,
    bit_depth: Annotated[int, typer.Option("--bit-depth", help="Expected image bit depth (8 or 16).")] = 8,
    lenient_masks: Annotated[
        bool,
        typer.Option(
            "--lenient-masks",
            metavar="",
            help="Treat 3-channel and non-0/255 masks (as released with ReLoBlur) as warnings.",
        ),
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", metavar="", help="Exit 1 on warnings too.")] = False,
    workers: WorkersOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Report every defect of a dataset with its path; exit 1 if there is any.

    Checks missing partners, size mismatches, unreadable/empty/truncated files, non-RGB
    images, wrong bit depth, masks that are not single-channel or not binary, missing
    masks, stray files, and directory names containing 'sharp'.

    Example: reloblur dataset validate data/dataset --masks data/masks
    """
    report = validate_dataset(
        ValidateOptions(root, masks, bit_depth, lenient_masks, workers, progress=not json_output)
    )
    if json_output:
        print_json(
            {
                "root": report.root,
                "masks_root": report.masks_root,
                "pairs_checked": report.pairs_checked,
                "errors": len(report.errors),
                "warnings": len(report.warnings),
                "problems": report.problems,
            }
        )
    else:
        if report.problems and not stdout.is_terminal:
            # Redirected or piped: one problem per line, paths whole (grep-able, like a compiler).
            for p in report.problems:
                stdout.print(f"{p.path}: {p.severity}: {p.code}: {p.message}", markup=False)
        elif report.problems:
            table = Table(title=f"{len(report.problems)} problem(s)", show_lines=False)
            table.add_column("severity")
            table.add_column("code")
            table.add_column("message", overflow="fold")
            for p in report.problems:
                colour = "red" if p.severity == "error" else "yellow"
                table.add_row(f"[{colour}]{p.severity}[/]", p.code, p.message)
            stdout.print(table)
        verdict = "[green]valid[/]" if not report.errors else "[red]invalid[/]"
        stdout.print(
            f"{report.pairs_checked} pairs checked in {report.root}: {verdict} "
            f"({len(report.errors)} errors, {len(report.warnings)} warnings)"
        )
    if report.errors or (strict and report.warnings):
        raise typer.Exit(1)


@dataset_app.command("stats")
def stats_command(
    root: RootArg,
    masks: MasksOpt = None,
    plot: Annotated[
        Optional[Path], typer.Option("--plot", help="Blur-ratio histogram PNG \\[default: ROOT_stats.png beside ROOT].")
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", metavar="", help="Do not write the histogram.")] = False,
    workers: WorkersOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Pair counts per split and scene, image sizes and the blur-ratio distribution.

    Example: reloblur dataset stats data/dataset --json
    """
    plot_path = None if no_plot else plot or root.resolve().parent / f"{root.resolve().name}_stats.png"
    stats = dataset_stats(StatsOptions(root, masks, plot_path, workers, progress=not json_output))
    if json_output:
        print_json(stats)
        return
    rows = []
    for split, count in stats.pairs_per_split.items():
        ratio = stats.blur_ratio_per_split.get(split)
        mean = f"{100 * ratio.mean:.2f} %" if ratio and ratio.mean is not None else "-"
        median = f"{100 * ratio.median:.2f} %" if ratio and ratio.median is not None else "-"
        rows.append((split, str(len(stats.pairs_per_scene[split])), str(count), mean, median))
    numbers = ("scenes", "pairs", "blur ratio mean", "median")
    print_table(f"{stats.root}: {stats.pairs} pairs", ("split", *numbers), rows, right=numbers)
    sizes = ", ".join(f"{size} x{n}" for size, n in stats.sizes.items())
    stdout.print(f"image sizes: {sizes}")
    overall = stats.blur_ratio
    if overall.mean is not None and overall.median is not None and overall.min is not None and overall.max is not None:
        stdout.print(
            f"blur ratio: mean {100 * overall.mean:.2f} %, median {100 * overall.median:.2f} %, "
            f"range {100 * overall.min:.2f}-{100 * overall.max:.2f} %, {overall.empty_masks} empty mask(s)"
        )
    if stats.pairs_without_mask:
        stdout.print(f"[yellow]{stats.pairs_without_mask} pair(s) have no mask[/]")
    if stats.plot:
        stdout.print(f"histogram: {stats.plot}")


@dataset_app.command("split")
def split_command(
    root: RootArg,
    masks: MasksOpt = None,
    test_fraction: Annotated[float, typer.Option("--test-fraction", help="Share of scenes for test.")] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the scene ranking.")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="Show the moves without making them.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Deterministic scene-level train/test split, in place (dataset and masks trees).

    Whole scenes move between train/ and test/; a scene never straddles both. The same
    seed always gives the same split, so an interrupted run is finished by re-running.

    Example: reloblur dataset split data/dataset --test-fraction 0.2 --seed 0
    """
    result = split_dataset(SplitOptions(root, masks, test_fraction, seed, dry_run))
    if json_output:
        print_json(result)
        return
    verb = "would move" if dry_run else "moved"
    stdout.print(
        f"train: {len(result.train_scenes)} scene(s), test: {len(result.test_scenes)} scene(s) "
        f"(seed {seed}); {verb} {len(result.moves)} {'folder' if len(result.moves) == 1 else 'folders'}"
    )
    stdout.print(f"test scenes: {', '.join(result.test_scenes) or '-'}")
    for warning in result.warnings:
        stderr.print(f"[yellow]warning:[/] {warning}")


@dataset_app.command("export")
def export_command(
    root: RootArg,
    out: Annotated[Path, typer.Argument(help="Output directory.", show_default=False)],
    format: Annotated[str, typer.Option("--format", help=f"Target layout: {', '.join(FORMATS)}.")] = "basicsr",
    masks: MasksOpt = None,
    copy: Annotated[bool, typer.Option("--copy", metavar="", help="Copy files instead of symlinking.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Export to the GT/LQ paired-folder layout BasicSR-style trainers read.

    Example: reloblur dataset export data/dataset --format basicsr exported/
    """
    result = export_dataset(ExportOptions(root, out, format, masks, copy))
    if json_output:
        print_json(result)
        return
    per_split = ", ".join(f"{s}: {n}" for s, n in result.pairs_per_split.items())
    stdout.print(
        f"exported {per_split} pairs to {result.out} ({result.mode}s; "
        f"{result.written} written, {result.unchanged} already there)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``dataset`` command group to the app."""
    app.add_typer(dataset_app, name="dataset")
