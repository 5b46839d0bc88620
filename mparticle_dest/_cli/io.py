"""Terminal and file plumbing of ``mparticle-dest send``: input lines, rejects, progress.

The live display and the summary table are rich's (a ``cli`` extra dependency): on a
terminal rich redraws in place, computes the rate and the ETA and keeps messages
printed above the display; elsewhere (pipes, CI logs) the command prints plain lines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import IO, Any

import anyio.to_thread
from attrs import define
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = [
    "LiveCounts",
    "ProgressDisplay",
    "RejectSink",
    "count_lines",
    "print_summary",
    "read_lines",
]

_CHUNK_HINT = 1 << 16  # bytes of lines read per worker-thread hop from a regular file
_SHOWN_REJECTS = 10  # rejects described on stderr one by one; the rest only in the file


async def read_lines(stream: IO[str]) -> AsyncIterator[tuple[int, str]]:
    """Yield ``(line number, line)`` from ``stream`` without blocking the event loop.

    A regular file is read in chunks of lines (few thread hops); a pipe or terminal
    line by line, so events piped in slowly (``tail -f``) are sent as they come.
    """
    chunked = _is_regular_file(stream)
    number = 0
    while True:
        if chunked:
            lines = await anyio.to_thread.run_sync(stream.readlines, _CHUNK_HINT)
        else:
            line = await anyio.to_thread.run_sync(stream.readline)
            lines = [line] if line else []
        if not lines:
            return
        for line in lines:
            number += 1
            yield number, line


def _is_regular_file(stream: IO[str]) -> bool:
    try:
        return stream.seekable() and not stream.isatty()
    except (OSError, ValueError):
        return False


def count_lines(path: Path) -> int:
    """Count the lines of a file quickly (for the progress bar's total and ETA)."""
    count = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


class RejectSink:
    """Collects rejected lines: JSON lines in a rejects file, a short note on stderr.

    The file is created only when the first line is rejected, and a rejects file left
    by an earlier run is removed at the end of a run that rejected nothing: after a
    run, the file holds exactly that run's rejects. Each record holds the input line
    number, the stage (``parse``, ``event``, ``delivery``), the error, and the event
    (or, for unparsable lines, the raw text) so it can be fixed and re-sent.

    Args:
        path: The rejects file, or ``None`` to write the records to stderr.
        err: Writes one line to stderr.
    """

    def __init__(self, path: Path | None, err: Callable[[str], None]) -> None:
        self.path = path
        self._err = err
        self._file: IO[str] | None = None
        self.count = 0

    def reject(
        self, line: int, stage: str, error: str, *, event: Any = None, raw: str | None = None
    ) -> None:
        """Record one rejected line."""
        self.count += 1
        record: dict[str, Any] = {"line": line, "stage": stage, "error": error}
        if raw is not None:
            record["raw"] = raw.rstrip("\r\n")
        else:
            record["event"] = event
        text = json.dumps(record, ensure_ascii=False, default=repr)
        if self.path is None:
            self._err(text)
            return
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8")
        self._file.write(text + "\n")
        if self.count <= _SHOWN_REJECTS:
            self._err(f"line {line}: {error}")
        elif self.count == _SHOWN_REJECTS + 1:
            self._err(f"… more rejected lines are only written to {self.path}")

    def close(self) -> None:
        """Close the rejects file, or remove a stale one when nothing was rejected."""
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self.path is not None and self.count == 0:
            self.path.unlink(missing_ok=True)


@define
class LiveCounts:
    """The figures of one redraw of the progress display.

    Attributes:
        lines: Input lines read.
        final: Lines whose fate is final (delivered, failed, skipped, rejected,
            blank): what the bar, the rate and the ETA measure.
        delivered: Events mParticle accepted.
        failed: Lines rejected, at reading or in delivery.
        throttled: 429 answers so far (each one a ``Retry-After`` wait).
        waiting: Events accepted and not yet final (buffered or in flight).
    """

    lines: int = 0
    final: int = 0
    delivered: int = 0
    failed: int = 0
    throttled: int = 0
    waiting: int = 0


class _Rate(ProgressColumn):
    """Lines made final per second (rich's windowed speed of the task)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed or 0:,.0f} ev/s")


class _TwoLines(Progress):
    """rich's progress line, then a line of outcome counts below it.

    Two lines, so that each fits an 80-column terminal instead of wrapping.
    """

    def __init__(self, *columns: ProgressColumn, console: Console) -> None:
        self.counts = LiveCounts()  # first: rich may render from within __init__
        super().__init__(*columns, console=console, refresh_per_second=8, speed_estimate_period=10)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        c = self.counts
        yield Text(
            f"{c.delivered:,} delivered · {c.failed:,} failed · {c.throttled:,} throttled"
            f" · {c.waiting:,} waiting",
            no_wrap=True,
            overflow="ellipsis",
        )


class ProgressDisplay:
    """The live progress of ``send`` on a terminal: rich redraws it in place.

    Shows lines read (of the total, with a bar, when the file's length is known),
    events per second and the ETA when the total is known; below, the events
    delivered, failed, throttled (429s waited out) and waiting. A no-op when disabled.

    Args:
        total: Number of input lines, if known.
        console: Where to draw (the command's stderr console).
        enabled: Whether to draw at all.
    """

    def __init__(self, total: int | None, *, console: Console, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self._progress: _TwoLines | None = None
        self._task: TaskID | None = None
        if enabled:
            self._progress = _TwoLines(
                TextColumn("{task.fields[lines]:,}" + (f"/{total:,}" if total else "") + " lines"),
                BarColumn(bar_width=24),
                TaskProgressColumn(),
                _Rate(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
            )
            self._task = self._progress.add_task("send", total=total, lines=0)

    def __enter__(self) -> ProgressDisplay:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()

    def update(self, counts: LiveCounts) -> None:
        """Show ``counts`` (rich redraws at its own pace; this only records them)."""
        if self._progress is not None and self._task is not None:
            self._progress.counts = counts
            self._progress.update(self._task, completed=counts.final, lines=counts.lines)

    def message(self, text: str) -> None:
        """Print one line on stderr, above the live display when there is one."""
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_summary(
    console: Console, heading: list[str], rows: list[tuple[str, str]], notes: list[str]
) -> None:
    """The final report: a table on a terminal, plain lines elsewhere (scripts parse them).

    Args:
        console: The console the report goes to (stdout, or stderr for a dry run).
        heading: The first lines (what was sent with which config, lines and time).
        rows: ``(figure, what)`` pairs, e.g. ``("49,998", "events delivered")``.
        notes: Lines printed after the figures (failure causes, the rejects file).
    """

    def line(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    for text in heading:
        line(text)
    if console.is_terminal:
        table = Table(show_header=False, box=None, padding=(0, 1, 0, 2))
        table.add_column(justify="right", style="bold")
        table.add_column()
        for figure, what in rows:
            table.add_row(figure, Text(what))
        console.print(table)
    else:
        for figure, what in rows:
            line(f"  {figure} {what}")
    for note in notes:
        line(f"  {note}")
