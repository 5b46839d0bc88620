"""``mparticle-dest send``: deliver (or preview) a file of walkerOS events.

The input is JSON Lines, one walkerOS event per line. Every line ends up in exactly
one place of the final report: delivered, skipped by the mapping, or rejected (bad
JSON, invalid event, a limit the config rejects, or a delivery that failed for
good). Rejected lines go to the rejects file with their line number; the run goes
on.

SIGINT (Ctrl-C) or SIGTERM stops the reading: the events accepted so far are still
delivered within the close timeout, or reported as rejected lines, and the report is
printed before the command exits with 128 + the signal number.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any

import anyio
from anyio.abc import TaskStatus
from attrs import define, field

from .._batching import Accumulator, BatchLimits
from .._config import DestinationConfig
from .._destination import Destination
from .._exceptions import InvalidEventError
from .._mparticle import BULK_PATH, HISTORICAL_PATH
from .._payload import EventBuilder, Skipped
from .._receipt import Receipt
from .io import Progress, RejectSink, count_lines, read_lines

__all__ = ["SendReport", "dry_run", "run_send", "send"]

Echo = Callable[[str], None]

# Receipts are settled (and their lines forgotten) in sweeps, so memory stays bounded
# by the destination's buffer rather than growing with the input. A sweep runs once the
# pending list has grown by this much since the last one, so its cost stays O(1) per line.
_SWEEP_EVERY = 2048


@define
class SendReport:
    """What happened to every input line of one run."""

    lines: int = 0
    blank: int = 0
    accepted: int = 0
    delivered: int = 0
    skipped: Counter[str] = field(factory=Counter)
    rejected: Counter[str] = field(factory=Counter)  # by stage: parse, event, delivery
    batches: int = 0
    requests: int = 0
    retries: int = 0
    elapsed: float = 0.0
    path: str = BULK_PATH
    dry_run: bool = False
    stopped_by: int | None = None  # the signal that stopped the run early
    read_all: bool = False  # the input was read to its end

    @property
    def ok(self) -> bool:
        """Whether every line was read, and delivered (or skipped by the mapping)."""
        return not self.rejected and self.stopped_by is None

    def lines_of_text(self) -> list[str]:
        """The human-readable report."""
        rate = self.lines / self.elapsed if self.elapsed > 0 else 0.0
        verb = "built (dry run, nothing sent)" if self.dry_run else "delivered"
        out = [
            f"{self.lines:,} lines read in {self.elapsed:.1f} s ({rate:,.0f} lines/s)",
            f"  {self.delivered:,} events {verb}",
        ]
        if self.skipped:
            reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(self.skipped.items()))
            out.append(f"  {sum(self.skipped.values()):,} skipped by the mapping ({reasons})")
        if self.rejected:
            stages = ", ".join(f"{n:,} {s}" for s, n in sorted(self.rejected.items()))
            out.append(f"  {sum(self.rejected.values()):,} rejected ({stages})")
        if self.blank:
            out.append(f"  {self.blank:,} blank lines ignored")
        if self.stopped_by is not None:
            name = signal.Signals(self.stopped_by).name
            out.append(
                f"  {name} received after the last line was read"
                if self.read_all
                else f"  stopped by {name} after line {self.lines:,}: later lines were not read"
            )
        if self.dry_run:
            out.append(f"  {self.batches:,} batches (would be posted to {self.path})")
        else:
            out.append(
                f"  {self.batches:,} batches in {self.requests:,} requests to {self.path}"
                f" ({self.retries:,} retries)"
            )
        return out


def _parse(
    number: int, line: str, rejects: RejectSink, report: SendReport, historical: bool
) -> dict[str, Any] | None:
    """Decode one line into an event dict, or record why it is rejected."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError as exc:
        rejects.reject(number, "parse", f"invalid JSON: {exc}", raw=line)
        report.rejected["parse"] += 1
        return None
    if not isinstance(event, dict):
        rejects.reject(
            number, "parse", f"expected a JSON object, got {type(event).__name__}", raw=line
        )
        report.rejected["parse"] += 1
        return None
    if historical and event.get("timestamp") is None:
        # The historical endpoint is for backfills: "now" would be a wrong timestamp.
        rejects.reject(number, "event", "timestamp: required with --historical", event=event)
        report.rejected["event"] += 1
        return None
    return event


async def _numbered_events(
    lines: AsyncIterator[tuple[int, str]],
    rejects: RejectSink,
    report: SendReport,
    historical: bool,
) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
    async for number, line in lines:
        report.lines = number
        if not line.strip():
            report.blank += 1
            continue
        event = _parse(number, line, rejects, report, historical)
        if event is not None:
            yield number, line, event


async def send(
    config: DestinationConfig,
    lines: AsyncIterator[tuple[int, str]],
    *,
    rejects: RejectSink,
    progress: Progress,
    base_url: str | None = None,
    historical: bool = False,
    stop: anyio.CancelScope | None = None,
    **options: Any,
) -> SendReport:
    """Push every event of ``lines`` through a :class:`Destination` and wait for the outcomes.

    Args:
        config: The destination config.
        lines: ``(line number, text)`` pairs.
        rejects: Where rejected lines go.
        progress: The progress display.
        base_url: Replaces the pod host (proxies, tests).
        historical: Post to ``/v2/bulkevents/historical``; events must have a timestamp.
        stop: Cancelling this scope stops the reading; the events accepted until then
            are still delivered (within the close timeout) and reported.
        **options: More ``Destination`` keyword options.

    Returns:
        The report; ``report.ok`` tells whether everything was delivered.
    """
    report = SendReport(path=HISTORICAL_PATH if historical else BULK_PATH)
    pending: list[tuple[int, str, Receipt]] = []
    sweep_at = _SWEEP_EVERY
    start = time.monotonic()

    def settle(final: bool) -> None:
        keep = []
        for number, line, receipt in pending:
            outcome = receipt.outcome
            if outcome is None:
                if final:  # pragma: no cover - aclose resolves every receipt
                    raise AssertionError(f"line {number}: receipt not resolved after close")
                keep.append((number, line, receipt))
            elif outcome.status == "delivered":
                report.delivered += 1
            elif outcome.status == "skipped":
                report.skipped[outcome.reason or "mapping"] += 1
            else:
                why = outcome.error or outcome.reason or outcome.status
                rejects.reject(
                    number, "delivery", f"{outcome.status}: {why}", event=json.loads(line)
                )
                report.rejected["delivery"] += 1
        pending[:] = keep

    if historical:
        options["historical"] = True
    pushing = 0  # the line whose push is under way (a stop cancels it: not accepted)
    async with Destination(config, base_url=base_url, **options) as dest:
        with stop if stop is not None else anyio.CancelScope():
            async for number, line, event in _numbered_events(lines, rejects, report, historical):
                pushing = number
                try:
                    receipt = await dest.push(event)
                except InvalidEventError as exc:
                    rejects.reject(number, "event", str(exc), event=event)
                    report.rejected["event"] += 1
                    continue
                finally:
                    pushing = 0
                report.accepted += 1
                pending.append((number, line, receipt))
                if len(pending) >= sweep_at:
                    settle(final=False)
                    sweep_at = 2 * len(pending) + _SWEEP_EVERY
                if progress.due():
                    progress.update(report.lines, dest.stats.delivered_events)
            report.read_all = True
        if pushing:
            report.lines = pushing - 1
        await dest.aclose()
        stats = dest.stats
    settle(final=True)
    report.batches = stats.batches
    report.requests = stats.requests
    report.retries = stats.retries
    report.elapsed = time.monotonic() - start
    progress.finish(report.lines, report.delivered)
    return report


async def dry_run(
    config: DestinationConfig,
    lines: AsyncIterator[tuple[int, str]],
    *,
    rejects: RejectSink,
    echo: Echo,
    pretty: bool = False,
    historical: bool = False,
) -> SendReport:
    """Map and batch every event exactly as ``send`` would, and print the batches.

    Nothing is sent. Batches are assembled by the same builder and accumulator as the
    engine, so each printed line is the exact JSON a batch would carry.

    Args:
        config: The destination config.
        lines: ``(line number, text)`` pairs.
        rejects: Where rejected lines go.
        echo: Prints one batch.
        pretty: Indent the JSON instead of printing one compact batch per line.
        historical: Check timestamps as ``--historical`` does.
    """
    report = SendReport(path=HISTORICAL_PATH if historical else BULK_PATH, dry_run=True)
    start = time.monotonic()
    builder = EventBuilder.from_config(config)
    accumulator = Accumulator(BatchLimits().override(config.batch))

    def emit(body: bytes) -> None:
        report.batches += 1
        text = body.decode()
        echo(json.dumps(json.loads(text), indent=2, ensure_ascii=False) if pretty else text)

    async for number, _line, event in _numbered_events(lines, rejects, report, historical):
        try:
            built = builder.build(event)
        except InvalidEventError as exc:
            rejects.reject(number, "event", str(exc), event=event)
            report.rejected["event"] += 1
            continue
        if isinstance(built, Skipped):
            report.skipped[built.reason] += 1
            continue
        report.accepted += 1
        report.delivered += 1
        # Time stands still: batches seal on size and bytes only, and at the end.
        _receipt, sealed = accumulator.add(built, 0.0)
        for batch in sealed:
            emit(batch.body)
    for batch in accumulator.seal_all():
        emit(batch.body)
    report.elapsed = time.monotonic() - start
    return report


def run_send(
    config: DestinationConfig,
    stream: IO[str],
    *,
    total_path: Path | None,
    rejects_path: Path | None,
    base_url: str | None,
    historical: bool,
    dry_run: bool,
    pretty: bool,
    progress: bool | None,
    echo: Echo,
    err: Echo,
    source: str,
    close_timeout: float | None = None,
) -> SendReport:
    """The ``send`` command: run on a fresh event loop, print the report.

    The report goes to stdout, except with ``--dry-run`` where stdout carries the
    batches and the report goes to stderr.

    Returns:
        The report: ``ok`` tells whether every line was delivered (or skipped by the
        mapping), ``stopped_by`` the signal that stopped the run early, if one did.
    """
    display = Progress(None, enabled=False if dry_run else progress)
    if display.enabled and total_path is not None:
        display.total = count_lines(total_path)  # a bar needs the total; counting is fast

    def err_line(text: str) -> None:
        display.clear()  # messages must not collide with the progress line
        err(text)

    rejects = RejectSink(rejects_path, err_line)
    try:
        if dry_run:
            report = anyio.run(
                functools.partial(_dry_run_main, config, stream, rejects, echo, pretty, historical)
            )
            out = err
        else:
            options = {} if close_timeout is None else {"close_timeout": close_timeout}
            report = anyio.run(
                functools.partial(
                    _send_main,
                    config,
                    stream,
                    rejects,
                    display,
                    err_line,
                    base_url,
                    historical,
                    **options,
                )
            )
            out = echo
    finally:
        rejects.close()
    out(f"mparticle-dest send: {source}")
    for line in report.lines_of_text():
        out(line)
    if rejects.count and rejects.path is not None:
        out(f"  rejected lines written to {rejects.path}")
    return report


async def _send_main(
    config: DestinationConfig,
    stream: IO[str],
    rejects: RejectSink,
    display: Progress,
    err: Echo,
    base_url: str | None,
    historical: bool,
    **options: Any,
) -> SendReport:
    stop = anyio.CancelScope()
    received: list[int] = []
    error: Exception | None = None
    reports: list[SendReport] = []
    async with anyio.create_task_group() as tg:
        if _can_watch_signals():
            await tg.start(_stop_on_signals, stop, received, err)
        try:
            reports.append(
                await send(
                    config,
                    read_lines(stream),
                    rejects=rejects,
                    progress=display,
                    base_url=base_url,
                    historical=historical,
                    stop=stop,
                    **options,
                )
            )
        except Exception as exc:  # re-raised outside the task group, unwrapped
            error = exc
        finally:
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    report = reports[0]
    report.stopped_by = received[0] if received else None
    return report


def _can_watch_signals() -> bool:
    # Signal handlers can be set in the main thread only, and asyncio's need POSIX.
    return sys.platform != "win32" and threading.current_thread() is threading.main_thread()


async def _stop_on_signals(
    stop: anyio.CancelScope,
    received: list[int],
    err: Echo,
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """The first SIGINT or SIGTERM stops the reading; the close still runs to its end."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for signum in signals:
            name = signal.Signals(signum).name
            if received:
                err(f"mparticle-dest: {name}: still delivering the accepted events")
                continue
            received.append(signum)
            err(f"mparticle-dest: {name}: stopping; delivering the accepted events")
            stop.cancel()


async def _dry_run_main(
    config: DestinationConfig,
    stream: IO[str],
    rejects: RejectSink,
    echo: Echo,
    pretty: bool,
    historical: bool,
) -> SendReport:
    return await dry_run(
        config, read_lines(stream), rejects=rejects, echo=echo, pretty=pretty, historical=historical
    )
