"""Helpers shared by the command modules: output, option parsing, exit codes."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from reloblur.batch import ItemFailure
from reloblur.errors import PartialFailure, ReloblurError

stdout = Console(highlight=False, soft_wrap=True)  # long paths stay on one line when redirected
stderr = Console(stderr=True, highlight=False, soft_wrap=True)  # paths stay whole

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def to_jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types (dataclasses, paths, tuples converted)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no Infinity or NaN; PSNR of identical images is infinite
    return obj


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON document on stdout, nothing else there."""
    typer.echo(json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], *,
                right: Sequence[str] = (), fold: Sequence[str] = ()) -> None:
    """A table on a terminal; redirected or piped, the title and then one line per row,
    ``first cell: column: value; column: value``, so no path is split over lines and grep
    finds every row whole. Cells may hold Rich markup (kept on a terminal, dropped
    otherwise); ``right`` and ``fold`` name columns to right-justify or fold."""
    if stdout.is_terminal:
        table = Table(title=title)
        for name in columns:
            table.add_column(name, justify="right" if name in right else "left",
                             overflow="fold" if name in fold else "ellipsis")
        for row in rows:
            table.add_row(*row)
        stdout.print(table)
        return
    stdout.print(title, markup=False)
    for row in rows:
        cells = [Text.from_markup(cell).plain.replace("\n", "; ") for cell in row]
        facts = "; ".join(f"{name}: {cell}" for name, cell in zip(columns[1:], cells[1:]))
        stdout.print(f"{cells[0]}: {facts}", markup=False)


def parse_size(text: str, *, option: str = "--size") -> tuple[int, int]:
    """``"WxH"`` -> ``(W, H)``; raises :class:`ReloblurError` naming the option."""
    match = _SIZE.match(text)
    if not match or int(match[1]) <= 0 or int(match[2]) <= 0:
        raise ReloblurError(f"{option} {text!r}: expected WIDTHxHEIGHT, e.g. 720x480")
    return int(match[1]), int(match[2])


ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", help="Do part K of N of the pairs (K/N), e.g. one task of a cluster's array job.")]


def print_failures(failures: list[ItemFailure]) -> None:
    """One stderr line per failed item of a batch: ``failed <item>: <reason>``."""
    for failure in failures:
        stderr.print(f"[red]failed[/] {escape(failure.item)}: {escape(failure.reason)}")


def finish_batch(report: Any, failures: list[ItemFailure], *, json_output: bool,
                 summary: Callable[[], list[str]], notes: Callable[[], list[str]] = list,
                 what: str = "pair(s)") -> None:
    """The end of every batch command: the report as JSON, or its summary lines (stdout),
    notes (stderr) and one line per failure; then exit 2 if any item (``what``) failed."""
    if json_output:
        print_json(report)
    else:
        for line in summary():
            stdout.print(line)
        for line in notes():
            stderr.print(line)
        print_failures(failures)
    if failures:
        fail_partially(len(failures), what, where='"failures" in the JSON report' if json_output else "above")


def fail_partially(count: int, what: str, *, where: str = "above") -> NoReturn:
    """Exit 2 after a batch that finished with ``count`` failed items (listed ``where``)."""
    raise PartialFailure(f"{count} {what} failed (see {where})")


def _as_flag(option: Any) -> Any:
    if option is not None and option.metavar is None:
        option.metavar = ""  # a flag: no "<bool>" in the help, which reads as "takes a value"
    return option


class FlagHelpGroup(TyperGroup):
    """A command group whose ``--help``, and its subcommands', render as flags."""

    def get_help_option(self, ctx: Any) -> Any:
        """The help option, shown without a value placeholder."""
        return _as_flag(super().get_help_option(ctx))

    def get_command(self, ctx: Any, name: str) -> Any:
        """Subcommand ``name``, its help option shown as a flag too."""
        command = super().get_command(ctx, name)
        if command is not None and not isinstance(command, FlagHelpGroup):
            _as_flag(command.get_help_option(ctx))
        return command


class DefaultToRun(FlagHelpGroup):
    """A command group whose ``run`` subcommand may be left out: ``reloblur align IN OUT``
    is ``reloblur align run IN OUT`` (other subcommands are named as usual)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """Insert ``run`` when the first argument names no subcommand."""
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)
