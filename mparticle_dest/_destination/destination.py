"""``Destination``: lifecycle, the push hot path, backpressure, close.

Structure::

    push ── build (caller's task) ── Accumulator.add ── the user's open batch (grows until taken)
                                                       │ eligible: age or size reached
                                                       ▼
    background: max_in_flight senders ── Scheduler.take (seals) ── Pacer (batches/s)
                                          └─ Deliverer.send (HTTP); 429: back in line

This module holds the lifecycle and the caller-facing API; ``engine.Engine`` holds
the machinery behind it. ``push`` does not even yield to the loop unless it must wait
for room.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import logging
import os
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from attrs import frozen

from .._batching import DEFAULT_LINGER, DEFAULT_MAX_DELAY, Accumulator, BatchLimits, Scheduler
from .._config import DestinationConfig
from .._delivery import Pacer, PacingPolicy, QuotaGate, RetryPolicy
from .._exceptions import DestinationClosedError, InvalidEventError
from .._mparticle import BULK_PATH, HISTORICAL_PATH, MAX_BATCHES_PER_REQUEST
from .._payload import EventBuilder, Skipped
from .._receipt import Receipt
from .._telemetry import Telemetry
from .._telemetry import check as check_telemetry
from .._telemetry import prepare as prepare_telemetry
from .._telemetry import start as start_telemetry
from .._wire import basic_auth_header, check_base_url, endpoint
from .dry_run import DryRunSender
from .engine import Engine
from .options import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_BUFFERED_EVENTS,
    DEFAULT_MAX_IN_FLIGHT,
    BeforeSend,
    DeliveryOptions,
    FailedBatch,
    FullPolicy,
    SendMode,
)
from .shelter import Started, on_asyncio, run_sheltered, spawn_loop_task
from .stats import Counters, Stats
from .telemetry import EngineFigures

if TYPE_CHECKING:
    import httpx

    from .._delivery import Deliverer

__all__ = ["CloseReport", "Destination"]

logger = logging.getLogger("mparticle_dest")


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@frozen(kw_only=True)
class CloseReport:
    """What ``aclose()`` (or leaving ``async with``) achieved.

    Attributes:
        delivered: Events delivered over the destination's life.
        failed: Events that failed over its life (each batch passed to ``on_error``),
            ``undelivered`` included.
        undelivered: Events still buffered when the close timeout ran out; they
            failed with reason ``"closed"``.
        timed_out: Whether the close timeout ran out before everything was final.
        duration: Seconds the close took.
        stats: The final counters.
    """

    delivered: int
    failed: int
    undelivered: int
    timed_out: bool
    duration: float
    stats: Stats

    @property
    def ok(self) -> bool:
        """Whether every accepted event was delivered."""
        return self.failed == 0


# Destinations inherited through fork() must refuse to work: their loop, sockets and
# background tasks exist only in the parent.
_live: weakref.WeakSet[Destination] = weakref.WeakSet()


def _mark_forked() -> None:
    for destination in list(_live):
        destination._forked = True
        destination._stop_accepting()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked)


def _loop_probe() -> tuple[Callable[[], object], Callable[[], float]]:
    """Cheap functions for the hot path: one identifying the running event loop, and
    the loop's clock (the one ``anyio.current_time()`` reads, minus its dispatch)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        import trio  # not asyncio: anyio's other backend

        return trio.lowlevel.current_trio_token, trio.current_time
    if type(loop).time is asyncio.BaseEventLoop.time:
        # The stock loops' clock *is* time.monotonic(): call it without the Python method.
        return asyncio.get_running_loop, time.monotonic
    return asyncio.get_running_loop, loop.time


def _in_event_loop() -> bool:
    """Whether this thread is running an event loop (asyncio's or trio's)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")
        if trio is None:
            return False
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            return False
    return True


def _prepare_http(options: DeliveryOptions, telemetry: Telemetry | bool, own_client: bool) -> None:
    """Import httpx, httpcore (and opentelemetry, when on) and load the shared TLS context.

    The costly part of a process's first destination (100-300 ms of CPU, most of it
    with the GIL held), idempotent: run where it holds no event loop.
    """
    if options.send is not True:
        return  # a dry run sends nothing: no client, no telemetry
    from .._delivery import deliverer

    if own_client:
        deliverer.load_client_modules()
    prepare_telemetry(telemetry)


def _prepare_before_loop(
    options: DeliveryOptions, telemetry: Telemetry | bool, own_client: bool
) -> None:
    """:func:`_prepare_http` for a destination built before its event loop runs.

    The imports add tens of thousands of long-lived objects, enough to make a full
    garbage collection due (20-30 ms, the whole heap); collected here, once per
    process, it is not paid inside the loop soon after.
    """
    fresh = "httpcore" not in sys.modules
    _prepare_http(options, telemetry, own_client)
    if fresh and "httpcore" in sys.modules:
        gc.collect()


def _http_side(
    options: DeliveryOptions, telemetry: Telemetry | bool, client: httpx.AsyncClient | None
) -> tuple[type[Deliverer], httpx.AsyncClient]:
    """The deliverer class and the HTTP client (built when the caller gave none)."""
    _prepare_http(options, telemetry, client is None)
    from .._delivery.deliverer import Deliverer, make_client

    if client is None:
        timeout = options.request_timeout
        client = (
            make_client(max_connections=options.max_in_flight)
            if timeout is None
            else make_client(timeout=timeout, max_connections=options.max_in_flight)
        )
    return Deliverer, client


def _no_loop() -> object:
    return None


# What ``Destination._accepting`` holds while pushes are refused: no loop is ever this.
_REFUSING: object = object()


def _no_clock() -> float:
    raise DestinationClosedError("the Destination is not open")


def take_decoded_events(dest: Destination) -> None:
    """Make ``dest.push`` take events exactly as ``orjson.loads`` returned them: checked
    by ``prepare_decoded_event``, without the walk for values JSON cannot carry, which
    decoding rules out. For the Redis relay, the only caller of its destination's
    ``push``; a dict from anywhere else must not reach it. Call before the first push.
    """
    dest._builder = EventBuilder.from_config(dest.config, decoded=True)


class Destination:
    """Delivers walkerOS events to mParticle in per-user batches.

    Use it as an async context manager; leaving the context delivers everything
    buffered (within ``close_timeout``) and closes::

        async with Destination(config) as dest:
            receipt = await dest.push(event)

    Where opening and closing happen in different tasks (start-up and shutdown hooks),
    ``await dest.start()`` and ``await dest.aclose()`` do the same (asyncio only).

    Args:
        config: The destination config: a walkerOS-style dict (camelCase keys, as in
            a ``flow.json``) or a :class:`~mparticle_dest.DestinationConfig`.
        base_url: Scheme + host (+ port, path prefix) replacing the pod host, e.g.
            ``http://127.0.0.1:8080`` (proxies, tests): ``http`` or ``https``, a host,
            no credentials (they belong in the settings), query, fragment,
            whitespace or control characters.
        http_client: An ``httpx.AsyncClient`` you own (not closed by the destination).
            Give it ``follow_redirects=False`` and a pool of at least ``max_in_flight``.
        max_buffered_events: Cap on events accepted and not yet final (default 20,000).
        full_policy: At the cap, ``"wait"`` for room (default), ``"drop"`` the event
            (counted; its receipt resolves ``dropped``) or ``"raise"``
            :class:`~mparticle_dest.BufferFullError`.
        full_timeout: With ``"wait"``, raise ``BufferFullError`` after this many
            seconds (default ``None``: wait as long as it takes).
        close_timeout: Seconds the close spends delivering what is buffered
            (default 10); what is left fails with reason ``"closed"``.
        max_in_flight: Most concurrent requests (default 4).
        max_batches_per_request: Most batches in one request (1–100, default 100).
        request_timeout: Seconds one HTTP attempt may take in all, connecting,
            sending and receiving (default 30; also the per-phase limit of the own
            client, 10 s to connect); then it ends as a timeout, retried.
        retry: Per-request retry budget and backoff (default ``RetryPolicy()``:
            8 attempts within 60 s).
        pacing: Adaptive pacing tuning (default ``PacingPolicy()``).
        batches_per_second: The workspace's batch quota if you know it (or this
            process's share of it): pacing starts there and never exceeds it
            (default ``None``: learned from mParticle's answers).
        quota_gate: A :class:`~mparticle_dest.QuotaGate` awaited before every request,
            e.g. a token bucket in Redis shared by every process (default ``None``).
        linger: Seconds a request that is not full waits for more eligible batches
            (default 0.05).
        max_delay: Under the quota, a batch eligible for this many seconds goes before
            fuller ones (default 10; the latency bound).
        before_send: An async hook awaited with a request's batches before their first
            attempt (each has ``source_request_id``, ``body`` and ``event_count``); if
            it raises, the request is not sent and its batches fail with reason
            ``"error"``. The Redis relay records batch composition with it.
        on_error: Sync callable receiving a :class:`~mparticle_dest.FailedBatch` for
            every batch that failed for good; its exceptions are logged and contained.
        historical: Post to ``/v2/bulkevents/historical``, mParticle's endpoint for
            data older than 30 days (default ``False``); ``push`` then refuses events
            without a ``timestamp``.
        send: ``False`` makes a dry run (staging, tests): events are validated,
            mapped, batched and counted as usual, every receipt resolves ``skipped``
            with reason ``"dry_run"``, and nothing is sent (no HTTP client is
            opened). A sync callable makes a dry run too and receives each batch's
            JSON body. Default ``True``.
        telemetry: OpenTelemetry metrics and request spans (see the observability
            guide): ``True`` (default) reports to the global providers when
            ``opentelemetry-api`` is installed, ``False`` turns it off, a
            :class:`~mparticle_dest.Telemetry` names the destination or its providers.

    Raises:
        ConfigError: The config is invalid (the message names every bad key).
        ValueError: A delivery option or ``base_url`` is invalid.
        TypeError: A numeric option is a bool, ``base_url`` is not a string,
            ``on_error`` is not a sync callable, or ``telemetry`` is neither a bool
            nor a ``Telemetry``.
        ImportError: A ``Telemetry`` was given without ``opentelemetry-api``.
    """

    def __init__(
        self,
        config: DestinationConfig | Mapping[str, Any],
        *,
        base_url: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_buffered_events: int = DEFAULT_MAX_BUFFERED_EVENTS,
        full_policy: FullPolicy = "wait",
        full_timeout: float | None = None,
        close_timeout: float = DEFAULT_CLOSE_TIMEOUT,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_batches_per_request: int = MAX_BATCHES_PER_REQUEST,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
        pacing: PacingPolicy | None = None,
        on_error: Callable[[FailedBatch], object] | None = None,
        historical: bool = False,
        send: SendMode = True,
        batches_per_second: float | None = None,
        quota_gate: QuotaGate | None = None,
        linger: float = DEFAULT_LINGER,
        max_delay: float = DEFAULT_MAX_DELAY,
        before_send: BeforeSend | None = None,
        telemetry: Telemetry | bool = True,
    ) -> None:
        self.config = DestinationConfig.coerce(config)
        self.options = DeliveryOptions(
            max_buffered_events=max_buffered_events,
            full_policy=full_policy,
            full_timeout=full_timeout,
            close_timeout=close_timeout,
            max_in_flight=max_in_flight,
            max_batches_per_request=max_batches_per_request,
            request_timeout=request_timeout,
            retry=retry if retry is not None else RetryPolicy(),
            pacing=pacing if pacing is not None else PacingPolicy(),
            on_error=on_error,
            historical=historical,
            send=send,
            batches_per_second=batches_per_second,
            quota_gate=quota_gate,
            linger=linger,
            max_delay=max_delay,
            before_send=before_send,
        )
        if base_url is not None:
            check_base_url(base_url)
        path = HISTORICAL_PATH if historical else BULK_PATH
        self._url = endpoint(self.config.settings.pod, base_url, path)
        if base_url is not None:  # (the pods' URLs are known good: no httpx import for them)
            from .._delivery.deliverer import parse_url

            parse_url(self._url)  # what httpx would refuse only when entered
        self._builder = EventBuilder.from_config(self.config)
        self._counters = Counters()
        options = self.options
        acc = Accumulator(BatchLimits().override(self.config.batch))
        pacer = Pacer(
            options.pacing,
            batches_per_second=options.batches_per_second,
            quota=options.quota_gate,
        )
        self._engine = Engine(
            acc,
            Scheduler(
                acc,
                max_batches=options.max_batches_per_request,
                linger=options.linger,
                max_delay=options.max_delay,
                # Young batches are held back only under a declared quota (see Scheduler).
                quota_rate=None if batches_per_second is None else (lambda: pacer.rate),
                max_events=options.max_buffered_events,
                # Ranking by events per batch saves quota tokens: none to save without a
                # quota (no rate declared or learned yet, no gate of the caller's).
                quota_known=(
                    None if options.quota_gate is not None else (lambda: pacer.rate is not None)
                ),
            ),
            options,
            self._counters,
            pacer,
            is_open=self._is_open,
            closed_error=self._closed_error,
            on_broken=self._stop_accepting,
        )
        self._http_client = http_client
        self._client_to_close: httpx.AsyncClient | None = None

        self._state = _State.UNOPENED
        self._forked = False
        self._loop: object = None
        # The loop push accepts events on: ``self._loop`` while open (not closing, not
        # broken, not forked), else ``_REFUSING``; one identity test on the hot path.
        self._accepting: object = _REFUSING
        self._loop_probe: Callable[[], object] = _no_loop
        self._now: Callable[[], float] = _no_clock
        self._cap = self.options.max_buffered_events
        self._historical = historical
        check_telemetry(telemetry)
        self._telemetry = telemetry
        self._telemetry_reporter: object = None  # keeps this destination's metrics reported

        self._closed: anyio.Event | None = None
        self._close_report: CloseReport | None = None
        self._lifespan_cm: AbstractAsyncContextManager[Destination] | None = None
        if not _in_event_loop():
            # Built before the event loop runs (module level, an app factory): the
            # imports and the TLS context cost no loop time now, and entering is cheap.
            _prepare_before_loop(self.options, telemetry, http_client is None)

    def __repr__(self) -> str:
        return (
            f"<Destination {self._state.value} url={self._url!r}"
            f" buffered={self._engine.buffered} in_flight={self._engine.in_flight}>"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Destination:
        self._check_openable()
        cm = self._lifespan()
        destination = await cm.__aenter__()
        self._lifespan_cm = cm
        return destination

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        cm, self._lifespan_cm = self._lifespan_cm, None
        if cm is None:
            return None
        return await cm.__aexit__(exc_type, exc, tb)

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[Destination]:
        # The task group is entered and left by the task running ``async with``; aclose()
        # may run on any task, so it stops the background through its own cancel scope.
        self._bind_loop()
        with anyio.CancelScope(shield=True):  # a client made is a client to close
            await self._make_deliverer()
        try:
            # Re-raised below, outside the task group, which would wrap them in an
            # ExceptionGroup: the caller sees its own error, or its Ctrl-C, unchanged.
            error: BaseException | None = None
            interruption: BaseException | None = None
            async with anyio.create_task_group() as tg:
                # The engine shields itself from cancellation; if the caller were cancelled
                # before it reported readiness, start() (and the task group) would wait forever.
                with anyio.CancelScope(shield=True):
                    await tg.start(self._engine.run)
                self._mark_open()
                try:
                    yield self
                except (Exception, KeyboardInterrupt, SystemExit) as exc:
                    error = exc
                finally:
                    try:
                        await self.aclose()
                    except BaseException as exc:  # an interruption held back during the close
                        interruption = exc
            if interruption is not None:
                raise interruption
            if error is not None:
                raise error
        finally:
            _live.discard(self)
            if self._state is not _State.CLOSED:  # start-up failed
                self._state = _State.CLOSED
                await self._close_client()

    async def start(self) -> Destination:
        """Open the destination without ``async with``; close it with :meth:`aclose`.

        For start-up and shutdown hooks that run in different tasks (aiohttp's
        ``on_startup`` and ``on_cleanup``, say): the background delivery runs in a task
        of its own on the event loop rather than in a task group of the caller, so
        ``aclose()`` may be awaited from any task. Prefer ``async with`` wherever the
        destination's life fits in one block (a FastAPI lifespan, a script), and
        always ``aclose()`` a started destination at shutdown: events still buffered
        when the event loop stops are lost.

        asyncio only. On trio every task belongs to a nursery, so ``start()`` raises
        ``RuntimeError``: use ``async with`` around the code that pushes.

        Returns:
            The destination itself: ``dest = await Destination(config).start()``.

        Raises:
            RuntimeError: The destination is already open, or the loop is trio's.
            DestinationClosedError: The destination was closed (create a new one), or
                its engine failed to start.
        """
        self._check_openable()
        if not on_asyncio():
            raise RuntimeError(
                "Destination.start() needs asyncio: under trio a background task must"
                " belong to a nursery. Use `async with Destination(...) as dest:` around"
                " the code that pushes (for an app, in the task that owns its nursery)"
            )
        self._bind_loop()
        status = Started()
        engine = self._engine

        async def run_engine() -> None:
            try:
                await engine.run(task_status=status)
            finally:
                status.event.set()  # readiness never comes if the engine failed to start

        task = spawn_loop_task(run_engine)
        try:
            with anyio.CancelScope(shield=True):
                await status.event.wait()
        except BaseException:
            # A plain task.cancel() of the caller, which the shield cannot stop. Nothing
            # was accepted (nor an HTTP client made) yet: stop the engine task outright.
            task.cancel()
            self._state = _State.CLOSED
            raise
        if not status.ready:
            self._state = _State.CLOSED
            raise self._closed_error()
        with anyio.CancelScope(shield=True):  # the engine runs already: it needs its sender
            await self._make_deliverer()
        self._mark_open()
        return self

    def _check_openable(self) -> None:
        if self._state is _State.UNOPENED:
            return
        if self._state is _State.OPEN:
            raise RuntimeError(
                "this Destination is already open (a Destination can be opened only once)"
            )
        raise DestinationClosedError(
            "a Destination can be opened only once and this one is closed: create a new one"
        )

    def _bind_loop(self) -> None:
        self._loop_probe, self._now = _loop_probe()
        self._loop = self._loop_probe()
        self._closed = anyio.Event()

    async def _make_deliverer(self) -> None:
        """Make the HTTP client (unless one was given) and the deliverer using it.

        For a dry run (``send`` not ``True``), the dry-run sender instead: no client.
        """
        send = self.options.send
        if send is not True:
            self._engine.sender = DryRunSender(self._counters, None if send is False else send)
            return
        client = self._http_client
        owns_client = client is None
        # Importing httpx (and opentelemetry) and loading the TLS context take 100-250 ms
        # unless the destination was built outside the loop: in a worker thread, so
        # entering does not hold the caller's event loop.
        Deliverer, http = await anyio.to_thread.run_sync(
            _http_side, self.options, self._telemetry, client
        )
        from .._delivery.deliverer import DEFAULT_ATTEMPT_TIMEOUT  # imported by now

        self._client_to_close = http if owns_client else None
        settings = self.config.settings
        observer, self._telemetry_reporter = start_telemetry(
            self._telemetry,
            EngineFigures(
                lambda: self.stats,
                self._counters,
                self._engine,
                clock_offset=self._now() - time.monotonic(),
            ),
            url=self._url,
            attributes={
                "mparticle.pod": settings.pod,
                "mparticle.environment": settings.environment,
            },
        )
        self._engine.sender = Deliverer(
            http,
            url=self._url,
            auth_header=basic_auth_header(settings.api_key, settings.api_secret.get_secret_value()),
            retry=self.options.retry,
            pacer=self._engine.pacer,
            scheduled=True,
            attempt_timeout=self.options.request_timeout or DEFAULT_ATTEMPT_TIMEOUT,
            observer=observer,
            own_client=owns_client,
        )

    def _mark_open(self) -> None:
        self._state = _State.OPEN
        self._accepting = self._loop
        _live.add(self)

    async def aclose(self) -> CloseReport:
        """Deliver everything buffered (within ``close_timeout``), stop and report.

        Idempotent: later calls return the first report. The close runs to its end
        even when the caller is cancelled meanwhile, by anyio or trio, or by a plain
        asyncio ``task.cancel()`` (Ctrl-C under ``asyncio.run``, a SIGTERM handler),
        however many times: it finishes within ``close_timeout`` (plus the moment it
        takes to stop), then the cancellation propagates. Events still buffered when
        the timeout runs out fail with reason ``"closed"`` (their receipts resolve,
        ``on_error`` receives their batches). Leaving ``async with`` calls it.

        Returns:
            A :class:`CloseReport`.
        """
        if self._close_report is not None:
            return self._close_report
        if self._state is _State.CLOSING:
            assert self._closed is not None
            await self._closed.wait()
            return self._final_report()
        if self._state in (_State.UNOPENED, _State.CLOSED) or self._forked:
            # Nothing to deliver (never opened, or failed to open), or (after fork)
            # nothing this process may touch.
            self._state = _State.CLOSED
            self._close_report = self._report(timed_out=False, duration=0.0)
            return self._close_report
        self._check_loop()
        self._state = _State.CLOSING
        self._stop_accepting()
        self._engine.wake_room()
        return await run_sheltered(self._close)

    async def _close(self) -> CloseReport:
        """The close itself, in a task of its own (see ``run_sheltered``)."""
        started = anyio.current_time()
        engine = self._engine
        timed_out = False
        try:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(self.options.close_timeout) as drain:
                    await engine.flush()
                timed_out = drain.cancelled_caught
                await engine.stop()
                await engine.fail_leftovers()  # in slices: the event loop keeps running
                await self._close_client()
        finally:
            # Also when the event loop itself tears this task down: every receipt resolves.
            engine.fail_leftovers_now()
            _live.discard(self)
            self._state = _State.CLOSED
            report = self._report(timed_out=timed_out, duration=anyio.current_time() - started)
            self._close_report = report
            assert self._closed is not None
            self._closed.set()
        self._log_close(report)
        return report

    def _final_report(self) -> CloseReport:
        assert self._close_report is not None
        return self._close_report

    async def _close_client(self) -> None:
        client, self._client_to_close = self._client_to_close, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.aclose()

    # -- public API --------------------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        """A snapshot of the counters (see :class:`~mparticle_dest.Stats`)."""
        return self._engine.stats()

    @property
    def closed(self) -> bool:
        """Whether the destination no longer accepts events (closing or closed)."""
        return self._state in (_State.CLOSING, _State.CLOSED)

    async def push(self, event: Mapping[str, Any]) -> Receipt:
        """Map one event and add it to its user's batch; return once it is buffered.

        Validation and mapping run on the caller's task; no network wait, and no
        yield to the event loop unless the buffer is full and the policy is
        ``"wait"``. Cancelling a waiting ``push`` leaves the event not accepted.

        Args:
            event: A walkerOS event (a dict, or any mapping).

        Returns:
            A :class:`~mparticle_dest.Receipt`; ``await receipt`` gives the final
            :class:`~mparticle_dest.Outcome`. Skipped (consent, ignore) and dropped
            events get an already resolved receipt.

        Raises:
            InvalidEventError: The event is invalid (the error names the field); a
                :class:`~mparticle_dest.LimitExceededError` for a broken mParticle limit.
            BufferFullError: The buffer is full and the policy is ``"raise"``, or
                ``full_timeout`` passed while waiting.
            DestinationClosedError: The destination is not open (not entered yet,
                closing, closed, used from another event loop or after ``fork()``).
        """
        try:
            here = self._loop_probe()
        except RuntimeError:
            here = None
        if here is not self._accepting:
            raise self._refusal()
        engine = self._engine
        counters = self._counters
        counters.pushed += 1
        try:
            built = self._builder.build(event)
            # After the build: an invalid event reports its own error, and one the
            # mapping skips needs no timestamp.
            if self._historical and not isinstance(built, Skipped):
                self._check_historical(event)
        except InvalidEventError:
            counters.invalid += 1
            raise
        if isinstance(built, Skipped):
            counters.skip(built.reason)
            return Receipt.resolved(built.event_id, "skipped", built.reason)
        counters.mapped += 1
        if engine.buffered >= self._cap:
            dropped = await engine.wait_for_room(built.event_id)
            if dropped is not None:
                return dropped
        try:
            # Engine.admit, inline: this runs for every event.
            receipt, sealed = engine.acc.add(built, self._now())
        except InvalidEventError:  # the event alone is over the batch byte limit
            counters.mapped -= 1
            counters.invalid += 1
            raise
        engine.buffered += 1
        if sealed:  # a hard limit sealed the user's previous batch
            engine.queue_sealed(sealed)
        return receipt

    async def resend(self, body: bytes, *, source_request_id: str, event_count: int) -> Receipt:
        """Queue a batch sealed earlier, byte for byte, as one more batch to deliver.

        A relay that takes over the entries of a crashed one resends the batches that
        relay recorded: identical bytes under the identical ``source_request_id``, so
        mParticle's de-duplication ingests them once. The batch counts against the
        buffer like its events would (the full policy applies; ``"drop"`` drops it).

        Args:
            body: The batch JSON exactly as recorded (``source_request_id`` inside).
            source_request_id: The ``source_request_id`` inside ``body``.
            event_count: Number of events in ``body``.

        Returns:
            A receipt for the whole batch (``event_id`` ``None``).

        Raises:
            BufferFullError: As :meth:`push`.
            DestinationClosedError: As :meth:`push`.
        """
        try:
            here = self._loop_probe()
        except RuntimeError:
            here = None
        if here is not self._accepting:
            raise self._refusal()
        engine = self._engine
        if engine.buffered >= self._cap:
            dropped = await engine.wait_for_room(source_request_id)
            if dropped is not None:
                return Receipt.resolved(None, "dropped", "buffer_full")
        return engine.admit_sealed(
            body, source_request_id=source_request_id, event_count=event_count
        )

    async def flush(self) -> None:
        """Send every buffered event now and return when each one's outcome is final.

        Open batches become eligible at once, whatever their age or size, and requests
        leave without lingering (still at the pace mParticle's quota allows). Delivery
        failures do not raise: they are on the receipts, in ``stats`` and passed to
        ``on_error``.

        Raises:
            DestinationClosedError: The destination is not open.
        """
        if self._state is not _State.OPEN or self._engine.broken:
            raise self._closed_error()
        self._check_loop()
        await self._engine.flush()

    # -- push helpers ------------------------------------------------------------------------

    @staticmethod
    def _check_historical(event: Mapping[str, Any]) -> None:
        # "Now" would be a wrong time for a backfill, and mParticle requires it there.
        if event.get("timestamp") is None:
            raise InvalidEventError(
                "timestamp: required when posting to the historical endpoint",
                field="timestamp",
            )

    def _is_open(self) -> bool:
        return self._state is _State.OPEN

    def _stop_accepting(self) -> None:
        self._accepting = _REFUSING

    def _refusal(self) -> DestinationClosedError:
        """Why ``push`` refuses the event: closed (or broken, forked) first, else the loop."""
        if self._state is not _State.OPEN or self._engine.broken or self._forked:
            return self._closed_error()
        return DestinationClosedError(
            "this Destination belongs to another event loop; create one per event loop"
        )

    def _closed_error(self) -> DestinationClosedError:
        if self._forked:
            return DestinationClosedError(
                "this Destination was opened in another process (before fork());"
                " create and enter a new Destination in this process"
            )
        if self._state is _State.UNOPENED:
            return DestinationClosedError(
                "the Destination is not open: use `async with Destination(...) as dest:`"
                " (or `await dest.start()`)"
            )
        if self._engine.broken:
            return DestinationClosedError(
                "the Destination stopped after an internal error (see the log)"
            )
        return DestinationClosedError("the Destination is closed")

    def _check_loop(self) -> None:
        if self._forked:
            raise self._closed_error()
        try:
            loop = self._loop_probe()
        except RuntimeError:
            loop = None
        if loop is not self._loop:
            raise DestinationClosedError(
                "this Destination belongs to another event loop; create one per event loop"
            )

    # -- reporting ---------------------------------------------------------------------------

    def _report(self, *, timed_out: bool, duration: float) -> CloseReport:
        stats = self.stats
        return CloseReport(
            delivered=stats.delivered_events,
            failed=stats.failed_events,
            undelivered=stats.undelivered_at_close,
            timed_out=timed_out,
            duration=duration,
            stats=stats,
        )

    @staticmethod
    def _log_close(report: CloseReport) -> None:
        if report.undelivered:
            logger.warning(
                "mparticle_dest closed: %d events delivered, %d failed, of which %d were"
                " still buffered when the close timeout ran out",
                report.delivered,
                report.failed,
                report.undelivered,
            )
        elif report.failed:
            logger.warning(
                "mparticle_dest closed: %d events delivered, %d failed",
                report.delivered,
                report.failed,
            )
        else:
            logger.info("mparticle_dest closed: %d events delivered", report.delivered)
