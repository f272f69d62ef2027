"""A process-pool batch runner with a rich progress bar and per-item error collection.

Every batch command (validate, align, mask generate, export, simulate) maps one pure
function over independent items. Items that raise are collected with their reason rather
than stopping the batch, so the command can report them and exit 2 (partial failure).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from reloblur.allocator import keep_freed_memory
from reloblur.errors import ReloblurError

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ItemFailure:
    """One item of a batch that failed: which (a key, a path) and a one-line reason.

    Reports keep these typed all the way to the printer; ``--json`` shows them as
    ``{"item": ..., "reason": ...}``."""

    item: str
    reason: str


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (1-based) of ``count`` of a batch: for splitting one campaign over
    the machines of a cluster's array job, which share a filesystem and nothing else.

    Items are dealt round-robin by their position in the batch's own deterministic order,
    so every machine computes the same split without talking to the others, and the parts
    are balanced even when neighbouring items differ in size.
    """

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        """``"K/N"`` (``1 <= K <= N``); ``None`` is the whole batch. A clear error otherwise.

        >>> Shard.parse("2/3")
        Shard(index=2, count=3)
        """
        if text is None:
            return cls()
        parts = text.split("/")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ReloblurError(f"--shard {text!r}: expected K/N, e.g. 2/8 (part 2 of 8)")
        index, count = int(parts[0]), int(parts[1])
        if not 1 <= index <= count:
            raise ReloblurError(f"--shard {text!r}: K must be between 1 and N")
        return cls(index, count)

    @property
    def whole(self) -> bool:
        """True for the unsharded batch."""
        return self.count == 1

    def select(self, items: Sequence[T]) -> list[T]:
        """This part's items, in their order."""
        return [item for position, item in enumerate(items) if position % self.count == self.index - 1]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


class StageTimer:
    """Seconds spent per named stage of one item's work (``with timer.stage("read"):``),
    so a batch can say where its time goes."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to ``name``."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` (may be negative, to move time to another stage) to ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def total_seconds(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    """Stage seconds summed over items, rounded to milliseconds."""
    totals: dict[str, float] = {}
    for seconds in parts:
        for name, value in seconds.items():
            totals[name] = totals.get(name, 0.0) + value
    return {name: round(value, 3) for name, value in totals.items()}


@dataclass
class BatchResult(Generic[R]):
    """Outcome of :func:`run_batch`; ``results`` keeps the input order of the successes."""

    results: dict[str, R] = field(default_factory=dict)
    failures: list[ItemFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no item failed."""
        return not self.failures


def default_workers() -> int:
    """CPUs this process may run on (respects affinity masks and cgroups' cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class PlainProgress:
    """Progress as one plain line every ``interval`` seconds and one at the end, for logs:
    under nohup, a cluster scheduler or CI there is no terminal to redraw a bar on, and a
    week of training must not be silent until it ends."""

    def __init__(self, console: Console, interval: float):
        self.console, self.interval = console, interval
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self.tasks:
            self._print(task)

    def add_task(self, description: str, *, total: float | None = None, completed: float = 0) -> TaskID:
        """Start counting a task (as rich's ``Progress.add_task``)."""
        task = len(self.tasks)
        now = time.monotonic()
        self.tasks[task] = {"description": description, "total": total, "completed": completed, "start": now,
                            "start_completed": completed, "printed": now}
        return TaskID(task)

    def update(self, task: TaskID, *, completed: float | None = None, advance: float | None = None,
               description: str | None = None) -> None:
        """Move a task on (as rich's ``Progress.update``); prints when the interval is up."""
        state = self.tasks[task]
        if completed is not None:
            state["completed"] = completed
        if advance is not None:
            state["completed"] += advance
        if description is not None:
            state["description"] = description
        if time.monotonic() - state["printed"] >= self.interval:
            self._print(task)

    def advance(self, task: TaskID, advance: float = 1) -> None:
        """One more item done (as rich's ``Progress.advance``)."""
        self.update(task, advance=advance)

    def _print(self, task: int) -> None:
        state = self.tasks[task]
        state["printed"] = now = time.monotonic()
        elapsed = now - state["start"]
        done, total = state["completed"], state["total"]
        line = f"{state['description']}: {done:g}" + (f"/{total:g} ({100 * done / total:.0f} %)" if total else "")
        line += f", {_clock(elapsed)} elapsed"
        rate = (done - state["start_completed"]) / elapsed if elapsed > 0 else 0.0
        if total and rate > 0 and done < total:
            line += f", eta {_clock((total - done) / rate)}"
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


def make_progress(console: Console | None = None, *, enabled: bool = True) -> Progress | PlainProgress:
    """The progress display every long-running command uses, on stderr: a bar with ETA on
    a terminal; elsewhere a plain line every ``RELOBLUR_PROGRESS_INTERVAL`` seconds
    (default 30) and at the end."""
    console = console or Console(stderr=True)
    if enabled and not console.is_terminal:
        try:
            interval = float(os.environ.get("RELOBLUR_PROGRESS_INTERVAL", "30"))
        except ValueError:
            interval = 30.0
        return PlainProgress(console, interval)
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ReloblurError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _call(func: Callable[[T], R], item: T) -> R:
    return func(item)


def run_batch(
    func: Callable[[T], R],
    items: Sequence[T],
    *,
    key: Callable[[T], str] = str,
    workers: int | None = None,
    description: str = "working",
    progress: bool = True,
    console: Console | None = None,
    on_result: Callable[[str, R], None] | None = None,
) -> BatchResult[R]:
    """Apply ``func`` to every item, in worker processes when ``workers > 1``.

    Parameters
    ----------
    func
        A module-level function (it is pickled to the workers).
    items
        Work items; ``key(item)`` names an item in results and failure reports.
    workers
        Process count; ``None`` uses every available CPU, ``1`` runs in this process.
    description, progress, console
        The progress bar's label, whether to show it, and where (stderr by default).
    on_result
        Called in this process with ``(key, result)`` as each item succeeds, in completion
        order (e.g. to append a log line as soon as a pair is on disk).

    Returns
    -------
    BatchResult
        Successful results by key in input order, and the failures with their reasons.
        ``KeyboardInterrupt`` cancels pending items and propagates.
    """
    workers = default_workers() if workers is None else max(1, workers)
    workers = min(workers, max(1, len(items)))
    outcome: dict[str, R] = {}
    failures: dict[str, ItemFailure] = {}
    keys = [key(item) for item in items]

    with make_progress(console, enabled=progress) as bar:
        task = bar.add_task(description, total=len(items))

        def record_success(item_key: str, result: R) -> None:
            outcome[item_key] = result
            if on_result is not None:
                on_result(item_key, result)

        def record_failure(item_key: str, exc: BaseException) -> None:
            log.debug("%s failed:\n%s", item_key, "".join(traceback.format_exception(exc)))
            failures[item_key] = ItemFailure(item_key, _describe(exc))

        if workers == 1:
            keep_freed_memory()
            for item_key, item in zip(keys, items):
                try:
                    result = func(item)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:
                    record_failure(item_key, exc)
                else:
                    record_success(item_key, result)
                bar.advance(task)
        else:
            # spawn, not fork: the progress bar's refresh thread makes fork unsafe.
            context = multiprocessing.get_context("spawn")
            executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=keep_freed_memory)
            try:
                pending: dict[Future[R], str] = {
                    executor.submit(_call, func, item): item_key
                    for item_key, item in zip(keys, items)
                }
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        item_key = pending.pop(future)
                        error = future.exception()
                        if error is None:
                            record_success(item_key, future.result())
                        else:
                            record_failure(item_key, error)
                        bar.advance(task)
            except BaseException:
                executor.shutdown(wait=True, cancel_futures=True)
                raise
            executor.shutdown(wait=True)

    ordered = {k: outcome[k] for k in keys if k in outcome}
    return BatchResult(ordered, [failures[k] for k in keys if k in failures])
