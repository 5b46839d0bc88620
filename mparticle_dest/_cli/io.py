"""Terminal and file plumbing of ``mparticle-dest send``: input lines, rejects, progress."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import anyio.to_thread

__all__ = ["Progress", "RejectSink", "count_lines", "read_lines"]

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
    """Count the lines of a file quickly (for the progress bar's total)."""
    count = 0
    last = b"\n"
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (0 if last == b"\n" else 1)


class RejectSink:
    """Collects rejected lines: JSON lines in a rejects file, a short note on stderr.

    The file is created only when the first line is rejected. Each record holds the
    input line number, the stage (``parse``, ``event``, ``delivery``), the error, and
    the event (or, for unparsable lines, the raw text) so it can be fixed and re-sent.

    Args:
        path: The rejects file, or ``None`` to write the records to stderr.
        err: Writes one line to stderr.
    """

    def __init__(self, path: Path | None, err: Callable[[str], None]) -> None:
        self.path = path
        self._err = err
        self._file: IO[str] | None = None
        self.count = 0
        self.by_stage: dict[str, int] = {}

    def reject(
        self, line: int, stage: str, error: str, *, event: Any = None, raw: str | None = None
    ) -> None:
        """Record one rejected line."""
        self.count += 1
        self.by_stage[stage] = self.by_stage.get(stage, 0) + 1
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
        """Close the rejects file (if one was created)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class Progress:
    """A one-line progress display on a terminal: lines read, events/s, delivered.

    Silent when the stream is not a terminal (pipes, CI logs, tests), so the output of
    a scripted run is just the final report.

    Args:
        total: Number of input lines, if known (a bar is drawn), else ``None``.
        stream: Where to draw (stderr by default).
        enabled: ``None`` to draw only on a terminal; ``True``/``False`` to force.
        interval: Minimum seconds between redraws.
    """

    def __init__(
        self,
        total: int | None,
        *,
        stream: IO[str] | None = None,
        enabled: bool | None = None,
        interval: float = 0.1,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _isatty(self.stream) if enabled is None else enabled
        self.total = total
        self.interval = interval
        self._start = time.monotonic()
        self._last = 0.0
        self._drawn = False

    def due(self) -> bool:
        """Whether a redraw is due (cheap: callers skip gathering numbers otherwise)."""
        return self.enabled and time.monotonic() - self._last >= self.interval

    def update(self, lines: int, delivered: int, *, force: bool = False) -> None:
        """Redraw (at most every ``interval`` seconds unless ``force``)."""
        if not self.enabled or not (force or self.due()):
            return
        now = time.monotonic()
        self._last = now
        self.stream.write("\r" + self.render(lines, delivered, now - self._start) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def render(self, lines: int, delivered: int, elapsed: float) -> str:
        """The progress line for ``lines`` read and ``delivered`` events after ``elapsed`` s."""
        rate = lines / elapsed if elapsed > 0 else 0.0
        tail = f"{lines:,} lines · {rate:,.0f} ev/s · {delivered:,} delivered"
        if not self.total:
            return tail
        done = min(lines / self.total, 1.0)
        width = 24
        filled = int(done * width)
        return f"[{'#' * filled}{'.' * (width - filled)}] {done:4.0%} " + tail.replace(
            f"{lines:,} lines", f"{lines:,}/{self.total:,} lines", 1
        )

    def clear(self) -> None:
        """Erase the progress line, so that a message can be written on stderr."""
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False
            self._last = 0.0  # redraw at the next update

    def finish(self, lines: int, delivered: int) -> None:
        """Draw the final state and end the line."""
        if not self.enabled:
            return
        self.update(lines, delivered, force=True)
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
