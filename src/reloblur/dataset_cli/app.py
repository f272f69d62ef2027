"""The ``reloblur`` command-line app: one Typer app; each stage registers its commands.

Exit codes: 0 ok, 1 user error (bad input or option, usage error), 2 partial failure (a
batch finished but some items failed), 130 interrupted.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

try:  # typer >= 0.20 vendors click; older releases use the click package
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError  # type: ignore[assignment]

from rich.markup import escape

from reloblur import __version__
from reloblur.dataset_cli.common import FlagHelpGroup
from reloblur.errors import ReloblurError
from reloblur.logs import add_log_file, configure_logging


class ReloblurGroup(FlagHelpGroup):
    """Maps errors to the project's exit codes at the edge of the program."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        """Parse arguments; a usage error exits 1 (click's 2 reads as partial failure here)."""
        try:
            return super().make_context(*args, **kwargs)
        except UsageError as exc:
            exc.exit_code = 1  # click's default 2 would read as "partial failure"
            raise

    def invoke(self, ctx: Any) -> Any:
        """Run the command; :class:`ReloblurError` becomes its message and exit code."""
        from reloblur.dataset_cli.common import stderr

        try:
            return super().invoke(ctx)
        except UsageError as exc:
            exc.exit_code = 1
            raise
        except ReloblurError as exc:
            stderr.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # the system's own I/O errors: the path and the reason, no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            stderr.print(f"[bold red]error:[/] {escape(where + (exc.strerror or str(exc)))}", markup=True,
                         soft_wrap=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=ReloblurGroup,
    name="reloblur",
    help=(
        "Build real-world local motion blur datasets (ReLoBlur method) and train LBAG "
        "deblurring models on them.\n\n"
        "Try the simulated rig:  reloblur simulate OUT --size 720x480 --pairs 8"
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reloblur {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, metavar="", help="More log output (-vv for debug).")] = 0,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit.")
    ] = False,
    log_file: Annotated[Optional[Path], typer.Option(
        "--log-file", help="Also append the log (info and above, with times) to this file.")] = None,
) -> None:
    """Options common to every command."""
    configure_logging(verbose)
    if log_file is not None:
        try:
            add_log_file(log_file)
        except OSError as exc:
            raise ReloblurError(f"--log-file {log_file}: cannot write ({exc.strerror or exc})") from None


def _register_stages() -> None:
    from reloblur.dataset_cli.align import register as register_align
    from reloblur.dataset_cli.burst import register as register_burst
    from reloblur.dataset_cli.capture import register as register_capture
    from reloblur.dataset_cli.dataset import register as register_dataset
    from reloblur.dataset_cli.demo import register as register_demo
    from reloblur.dataset_cli.lbag import register as register_lbag
    from reloblur.dataset_cli.mask import register as register_mask

    register_capture(app)
    register_align(app)
    register_mask(app)
    register_burst(app)
    register_dataset(app)
    register_lbag(app)
    register_demo(app)


_register_stages()


def _thread_error(args: threading.ExceptHookArgs) -> None:
    """A background writer's file-system error (TensorBoard's, when the disk fills) as one
    line naming the file, like the main thread's; anything else as Python reports it."""
    if isinstance(args.exc_value, OSError):
        where = f"{args.exc_value.filename}: " if args.exc_value.filename else ""
        name = args.thread.name if args.thread else "?"
        sys.stderr.write(f"error in a background writer ({name}): {where}{args.exc_value.strerror or args.exc_value}\n")
    else:
        threading.__excepthook__(args)


def main() -> None:
    """Console-script entry point."""
    threading.excepthook = _thread_error
    app()
