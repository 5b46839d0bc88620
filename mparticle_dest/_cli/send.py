"""``mparticle-dest send``: deliver (or preview) a file of walkerOS events.

The input is JSON Lines, one walkerOS event per line. Every line ends up in exactly
one place of the final report: delivered, skipped by the mapping, built (dry run), or
rejected (bad JSON, invalid event, a limit the config rejects, or a delivery that
failed for good, with its real cause). Rejected lines go to the rejects file with
their line number; the run goes on.

A backfill waits until every event is final: throttling (429 and ``Retry-After``)
only slows it down, while errors still end within each request's retry budget. Only
``--drain-timeout`` bounds the wait. A host that refuses connections is found before
the first line is read, so such a run fails at once.

SIGINT (Ctrl-C) or SIGTERM stops the reading (and the wait): the events accepted so
far are still delivered within the close timeout, or reported as rejected lines, and
the report is printed before the command exits with 128 + the signal number.
"""

from __future__ import annotations

import errno
import functools
import json
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import TaskStatus
from attrs import define, field, frozen
from rich.console import Console

from .._config import DestinationConfig
from .._destination import Destination, DestinationOptions
from .._exceptions import InvalidEventError
from .._mparticle import BULK_PATH, HISTORICAL_PATH
from .._receipt import Outcome, Receipt
from .._wire import endpoint
from .io import LiveCounts, ProgressDisplay, RejectSink, count_lines, print_summary, read_lines

__all__ = ["SendOptions", "SendReport", "failure_cause", "run_send", "send", "unreachable"]

Echo = Callable[[str], None]

# Receipts are settled (and their lines forgotten) in sweeps, so memory stays bounded
# by the destination's buffer rather than growing with the input. A sweep runs once the
# pending list has grown by this much since the last one, so its cost stays O(1) per line.
_SWEEP_EVERY = 2048
_REDRAW_EVERY = 0.1  # seconds between two updates of the live display
_CONNECT_TIMEOUT = 10.0  # seconds the reachability check waits for a TCP connection
_SHOWN_CAUSES = 5  # distinct failure causes listed in the report
_BUDGET_LAST = re.compile(r"^retry budget spent \(\d+ attempts?, last: (.*)\)$")


@frozen(kw_only=True)
class SendOptions:
    """What ``mparticle-dest send`` was asked to do: the one record its flags become.

    Attributes:
        input_path: The JSON Lines file, or ``None`` for stdin.
        rejects_path: The rejects file, or ``None`` to write the records to stderr.
        source: Where the config came from, for the report's first line.
        base_url: Replaces the pod's host (a proxy, a test server).
        historical: Post to ``/v2/bulkevents/historical``; events need a timestamp.
        dry_run: Print the batches (stdout) instead of sending them.
        pretty: With ``dry_run``, indent the JSON.
        progress: Draw the live display (``None``: when stderr is a terminal).
        drain_timeout: Seconds to wait, after the input ends, for the events still
            on their way; ``None`` waits until every event is final. When given, it
            also bounds the close after a signal, in place of ``close_timeout``.
        close_timeout: Seconds the close gets after SIGINT/SIGTERM stopped the run.
    """

    input_path: Path | None
    rejects_path: Path | None
    source: str
    base_url: str | None = None
    historical: bool = False
    dry_run: bool = False
    pretty: bool = False
    progress: bool | None = None
    drain_timeout: float | None = None
    close_timeout: float = 10.0

    @property
    def path(self) -> str:
        """The endpoint path the batches go to."""
        return HISTORICAL_PATH if self.historical else BULK_PATH


@define
class SendReport:
    """What happened to every input line of one run."""

    lines: int = 0
    blank: int = 0
    accepted: int = 0
    delivered: int = 0
    built: int = 0  # dry run: events mapped and batched, never sent
    skipped: Counter[str] = field(factory=Counter)
    rejected: Counter[str] = field(factory=Counter)  # by stage: parse, event, delivery
    causes: Counter[str] = field(factory=Counter)  # delivery failures, by cause
    batches: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    elapsed: float = 0.0
    path: str = BULK_PATH
    dry_run: bool = False
    unreachable: str | None = None  # why nothing could be sent at all
    stopped_by: int | None = None  # the signal that stopped the run early
    read_all: bool = False  # the input was read to its end

    @property
    def ok(self) -> bool:
        """Whether every line was read, and delivered (or skipped by the mapping)."""
        return not self.rejected and self.unreachable is None and self.stopped_by is None

    def summary(self) -> tuple[list[str], list[tuple[str, str]], list[str]]:
        """The report as heading lines, ``(figure, what)`` rows and closing notes."""
        rate = self.lines / self.elapsed if self.elapsed > 0 else 0.0
        heading = [f"{self.lines:,} lines read in {self.elapsed:.1f} s ({rate:,.0f} lines/s)"]
        if self.unreachable is not None:
            return heading, [], [f"nothing sent: {self.unreachable}"]
        rows = []
        if self.dry_run:
            rows.append((f"{self.built:,}", "events built (dry run, nothing sent)"))
        else:
            rows.append((f"{self.delivered:,}", "events delivered"))
        if self.skipped:
            reasons = ", ".join(f"{n:,} {r}" for r, n in sorted(self.skipped.items()))
            rows.append((f"{sum(self.skipped.values()):,}", f"skipped by the mapping ({reasons})"))
        if self.rejected:
            stages = ", ".join(f"{n:,} {s}" for s, n in sorted(self.rejected.items()))
            rows.append((f"{sum(self.rejected.values()):,}", f"rejected ({stages})"))
        if self.blank:
            rows.append((f"{self.blank:,}", "blank lines ignored"))
        if self.stopped_by is not None:
            name = signal.Signals(self.stopped_by).name
            rows.append(
                (name, "received after the last line was read")
                if self.read_all
                else (
                    "stopped",
                    f"by {name} after line {self.lines:,}: later lines were not read",
                )
            )
        if self.dry_run:
            rows.append((f"{self.batches:,}", f"batches (would be posted to {self.path})"))
        else:
            rows.append(
                (
                    f"{self.batches:,}",
                    f"batches in {self.requests:,} requests to {self.path}"
                    f" ({self.retries:,} retries, {self.throttled:,} throttled)",
                )
            )
        notes = []
        if self.causes:
            notes.append("delivery failures:")
            ranked = self.causes.most_common()
            notes += [f"  {n:,} × {cause}" for cause, n in ranked[:_SHOWN_CAUSES]]
            if len(ranked) > _SHOWN_CAUSES:
                rest = sum(n for _cause, n in ranked[_SHOWN_CAUSES:])
                notes.append(f"  {rest:,} × other causes (see the rejects)")
        return heading, rows, notes


def failure_cause(outcome: Outcome, closed: str) -> str:
    """Why an event was not delivered, in words a user can act on.

    The same words for every event of one cause (the report groups by them): the
    server's message for a rejection, the credentials for a 401/403, "connection
    refused" or the last error for a spent retry budget, and ``closed`` for an event
    still on its way when the close timeout ran out.
    """
    if outcome.reason == "closed":
        return closed
    error = outcome.error
    if error is None:
        return outcome.reason or outcome.status
    text = str(error)
    budget = _BUDGET_LAST.match(text)
    if budget is not None:
        last = budget.group(1)
        if "connection refused" in last.lower():
            return "connection refused (retry budget spent)"
        return f"retry budget spent, last: {last}"
    return text


async def unreachable(url: str) -> str | None:
    """Why nothing can be sent to ``url`` (refused, unknown host), or ``None``.

    One TCP connection before the first line is read, so that a wrong
    ``--base-url`` or a server that is down fails the run at once, instead of each
    request spending its retry budget. Skipped when a proxy carries the requests
    (httpx reads ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``): the proxy's answers
    then go through the normal retries. A slow connection is not a verdict either.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    if (proxies.get(parts.scheme) or proxies.get("all")) and not urllib.request.proxy_bypass(host):
        return None
    try:
        with anyio.fail_after(_CONNECT_TIMEOUT):
            stream = await anyio.connect_tcp(host, port)
    except TimeoutError:
        return None
    except socket.gaierror as exc:
        return f"cannot resolve host {host} ({exc.strerror})"
    except OSError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        if errno.ECONNREFUSED in (exc.errno, cause.errno):
            return f"connection refused by {host}:{port} (is the URL right, the server up?)"
        return f"cannot connect to {host}:{port}: {cause.strerror or cause}"
    await stream.aclose()
    return None


async def _numbered_events(
    lines: AsyncIterator[tuple[int, str]], rejects: RejectSink, report: SendReport
) -> AsyncIterator[tuple[int, str, dict[str, Any]]]:
    """Decode each line into an event dict, or record why it is rejected."""
    async for number, line in lines:
        report.lines = number
        if not line.strip():
            report.blank += 1
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            rejects.reject(number, "parse", f"invalid JSON: {exc}", raw=line)
            report.rejected["parse"] += 1
            continue
        if not isinstance(event, dict):
            kind = type(event).__name__
            rejects.reject(number, "parse", f"expected a JSON object, got {kind}", raw=line)
            report.rejected["parse"] += 1
            continue
        yield number, line, event


class _OnTheWay:
    """The accepted lines whose receipts are not counted yet, settled in sweeps.

    Each line is kept until its receipt resolves, then counted in the report (and,
    when it failed, written to the rejects with its cause). Sweeping only once the
    list has grown by ``_SWEEP_EVERY`` since the last sweep keeps the cost O(1) per
    line and the memory bounded by the destination's buffer.
    """

    def __init__(self, report: SendReport, rejects: RejectSink) -> None:
        self._report = report
        self._rejects = rejects
        self.closed_cause = "the close timeout ran out before it was delivered"
        self._pending: list[tuple[int, str, Receipt]] = []
        self._sweep_at = _SWEEP_EVERY

    def add(self, number: int, line: str, receipt: Receipt) -> None:
        """Keep one accepted line until its outcome is final."""
        pending = self._pending
        pending.append((number, line, receipt))
        if len(pending) >= self._sweep_at:
            self.settle(final=False)
            self._sweep_at = 2 * len(pending) + _SWEEP_EVERY

    def settle(self, *, final: bool) -> None:
        """Count every line whose outcome is final; after the close, all are."""
        keep = []
        report = self._report
        for number, line, receipt in self._pending:
            outcome = receipt.outcome
            if outcome is None:
                if final:  # pragma: no cover - aclose resolves every receipt
                    raise AssertionError(f"line {number}: receipt not resolved after close")
                keep.append((number, line, receipt))
            elif outcome.status == "delivered":
                report.delivered += 1
            elif outcome.status == "skipped" and outcome.reason == "dry_run":
                report.built += 1
            elif outcome.status == "skipped":
                report.skipped[outcome.reason or "mapping"] += 1
            else:
                self._failed(number, line, outcome)
        self._pending = keep

    def _failed(self, number: int, line: str, outcome: Outcome) -> None:
        cause = failure_cause(outcome, self.closed_cause)
        detail = str(outcome.error) if outcome.error is not None else cause
        # The file keeps the full error (attempts, last status) after the cause.
        with_detail = outcome.reason != "closed" and detail != cause
        error = f"{cause} — {detail}" if with_detail else cause
        self._rejects.reject(number, "delivery", error, event=json.loads(line))
        self._report.rejected["delivery"] += 1
        self._report.causes[cause] += 1


async def send(
    config: DestinationConfig,
    lines: AsyncIterator[tuple[int, str]],
    options: SendOptions,
    *,
    rejects: RejectSink,
    display: ProgressDisplay,
    echo: Echo,
) -> SendReport:
    """Push every event of ``lines`` through a :class:`Destination` and wait for the outcomes.

    Args:
        config: The destination config.
        lines: ``(line number, text)`` pairs.
        options: The command's options.
        rejects: Where rejected lines go.
        display: The live progress display (disabled off a terminal).
        echo: Prints one batch of a dry run (stdout).

    Returns:
        The report; ``report.ok`` tells whether everything was delivered.
    """
    report = SendReport(path=options.path, dry_run=options.dry_run)
    start = time.monotonic()
    if not options.dry_run:
        url = endpoint(config.settings.pod, options.base_url, options.path)
        report.unreachable = await unreachable(url)
        if report.unreachable is not None:
            report.elapsed = time.monotonic() - start
            return report

    def show(body: bytes) -> None:
        text = body.decode()
        echo(json.dumps(json.loads(text), indent=2, ensure_ascii=False) if options.pretty else text)

    on_the_way = _OnTheWay(report, rejects)
    tuning: DestinationOptions = {
        "base_url": options.base_url,
        "historical": options.historical,
        "send": show if options.dry_run else True,
        "close_timeout": (
            options.close_timeout if options.drain_timeout is None else options.drain_timeout
        ),
    }
    dest = Destination(config, **tuning)

    def redraw() -> None:
        stats = dest.stats
        display.update(
            LiveCounts(
                lines=report.lines,
                final=report.lines - stats.buffered,
                delivered=stats.delivered_events,
                failed=report.rejected["parse"] + report.rejected["event"] + stats.failed_events,
                throttled=stats.throttled,
                waiting=stats.buffered,
            )
        )

    async def keep_drawing() -> None:
        while True:
            redraw()
            await anyio.sleep(_REDRAW_EVERY)

    async def feed() -> None:
        """Push every line, then wait until every event is final (unless bounded)."""
        pushing = 0  # the line whose push is under way (a stop cancels it: not accepted)
        with stop:
            async for number, line, event in _numbered_events(lines, rejects, report):
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
                on_the_way.add(number, line, receipt)
            report.read_all = True
            if options.drain_timeout is None:
                await dest.flush()  # every event final: no close timeout applies
        if pushing:
            report.lines = pushing - 1

    stop = anyio.CancelScope()  # cancelled by SIGINT/SIGTERM
    received: list[int] = []
    error: Exception | None = None
    async with anyio.create_task_group() as background:
        if display.enabled:
            background.start_soon(keep_drawing)
        if _can_watch_signals():
            await background.start(_stop_on_signals, stop, received, display.message)
        try:
            async with dest:
                await feed()
                await dest.aclose()
        except Exception as exc:  # re-raised outside the task group, unwrapped
            error = exc
        finally:
            background.cancel_scope.cancel()
    if error is not None:
        raise error
    report.stopped_by = received[0] if received else None
    if options.drain_timeout is not None:
        on_the_way.closed_cause = (
            f"--drain-timeout ({options.drain_timeout:g} s) ran out before it was delivered"
        )
    elif received:
        name = signal.Signals(received[0]).name
        on_the_way.closed_cause = (
            f"not delivered: stopped by {name}, and the close timeout"
            f" (--close-timeout {options.close_timeout:g} s) ran out"
        )
    on_the_way.settle(final=True)
    redraw()
    stats = dest.stats
    report.batches = stats.batches
    report.requests = stats.requests
    report.retries = stats.retries
    report.throttled = stats.throttled
    report.elapsed = time.monotonic() - start
    return report


def run_send(
    config: DestinationConfig, options: SendOptions, stream: IO[str], *, echo: Echo
) -> SendReport:
    """The ``send`` command: read ``stream`` on a fresh event loop, print the report.

    The report goes to stdout, except with ``--dry-run`` where stdout carries the
    batches and the report goes to stderr. It is a table when its stream is a
    terminal, plain lines otherwise.

    Returns:
        The report: ``ok`` tells whether every line was delivered (or skipped by the
        mapping), ``stopped_by`` the signal that stopped the run early, if one did.
    """
    stderr = _console(sys.stderr, force=bool(options.progress))
    stdout = _console(sys.stdout)
    enabled = not options.dry_run and (
        stderr.is_terminal if options.progress is None else options.progress
    )
    total = None
    if enabled and options.input_path is not None:
        total = count_lines(options.input_path)  # for the bar and the ETA; counting is fast
    display = ProgressDisplay(total, console=stderr, enabled=enabled)
    rejects = RejectSink(options.rejects_path, display.message)
    try:
        with display:
            report = anyio.run(
                functools.partial(
                    send,
                    config,
                    read_lines(stream),
                    options,
                    rejects=rejects,
                    display=display,
                    echo=echo,
                )
            )
    finally:
        rejects.close()
    heading, rows, notes = report.summary()
    if rejects.count and rejects.path is not None:
        notes.append(f"rejected lines written to {rejects.path}")
    print_summary(
        stderr if options.dry_run else stdout,
        [f"mparticle-dest send: {options.source}", *heading],
        rows,
        notes,
    )
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


def _console(stream: IO[str], *, force: bool = False) -> Console:
    """A console on ``stream`` that draws only on a terminal (whatever FORCE_COLOR says)."""
    try:
        terminal = force or stream.isatty()
    except (AttributeError, ValueError):
        terminal = force
    return Console(file=stream, force_terminal=terminal, markup=False, emoji=False, highlight=False)
