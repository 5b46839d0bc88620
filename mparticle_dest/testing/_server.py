"""``FakeMparticle``: a fake mParticle Events API served over real HTTP on loopback."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any, ClassVar

import anyio.to_thread

from .._mparticle import (
    BULK_PATH,
    EVENTS_PATH,
    HISTORICAL_PATH,
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_REQUEST_BYTES,
)
from ._bodies import error_body, parse_array, parse_compact_array, parse_json
from ._faults import Fault, FaultPlan, TokenBucket
from ._http import BodyTooLargeError, Handler, Server
from ._records import RecordedBatch, RecordedEvent, RecordedRequest, Recorder, ServerStats
from ._schema import check_historical, validate_batch

__all__ = ["STATS_PATH", "BatchObserver", "BatchPredicate", "FakeMparticle"]

logger = logging.getLogger("mparticle_dest.testing")

STATS_PATH = "/_fake/stats"
"""``GET`` this path (no auth) for the counters as JSON, e.g. from another process."""

BatchPredicate = Callable[[Mapping[str, Any]], bool]
"""Called with each parsed batch of a request; a true result rejects it with a 400."""

BatchObserver = Callable[["FakeMparticle", str, Mapping[str, Any]], None]
"""Called with ``(server, path, batch)`` for each batch a server accepted (see
:meth:`FakeMparticle.observing`)."""

_ROUTES = (EVENTS_PATH, BULK_PATH, HISTORICAL_PATH)

_observers_lock = threading.Lock()


class FakeMparticle:
    """A fake mParticle Events API on ``127.0.0.1``, for tests.

    It serves ``POST /v2/events``, ``/v2/bulkevents`` and ``/v2/bulkevents/historical``
    over real HTTP/1.1 (keep-alive), checks Basic auth, validates every batch against
    its own schema of the Events API, enforces mParticle's size limits, records what it
    accepted and can inject faults. Use it as a context manager (sync or async) and
    point the destination at :attr:`url`::

        with FakeMparticle() as server:
            dest = Destination(config, base_url=server.url)

    Args:
        api_key: The accepted API key.
        api_secret: The accepted API secret.
        faults: A :class:`FaultPlan` applied to authenticated events requests.
        rate_limit: Simulated limit in batches per second (token bucket); a request
            over it gets a 429. ``None`` disables it.
        rate_limit_burst: Bucket size in batches (default: one second's worth).
        rate_limit_usage: What ``X-mp-rate-limit-percentage-used`` reports on a 2xx
            under ``rate_limit``: ``"bucket"``, how full the bucket is (the default), or
            ``"window"``, the batches accepted over the last second as a percentage of
            the limit (independent of the bucket size).
        validate: Check every batch against the schema (size and count limits are
            always enforced).
        record: Keep per-request/batch/event records; ``False`` keeps counters only.
        deduplicate: Model mParticle's de-duplication: a batch whose
            ``source_request_id`` was ingested before is answered 202 and not ingested
            again (counted in ``stats.deduplicated_batches``). ``False`` ingests it again.
        reject_batch: A predicate on each parsed batch; a true result makes the request
            fail with a 400 naming that batch's index (a "poisoned" batch).
        host: The address to bind (loopback by default).
        port: The port to bind (``0``: an ephemeral port).
    """

    # Replaced, never mutated, so server threads can iterate it without a lock.
    _observers: ClassVar[tuple[BatchObserver, ...]] = ()

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        api_secret: str = "test-secret",  # noqa: S107 - a fake server's well-known test secret
        faults: FaultPlan | None = None,
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        rate_limit_usage: str = "bucket",
        validate: bool = True,
        record: bool = True,
        deduplicate: bool = True,
        reject_batch: BatchPredicate | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self._api_secret = api_secret
        self._expected_auth = f"{api_key}:{api_secret}".encode()
        self._faults = faults
        self._bucket = TokenBucket(rate_limit, rate_limit_burst) if rate_limit else None
        if rate_limit_usage not in ("bucket", "window"):
            raise ValueError(
                f"rate_limit_usage must be 'bucket' or 'window', got {rate_limit_usage!r}"
            )
        self._window_usage = rate_limit_usage == "window"
        self.validate = validate
        self._reject_batch = reject_batch
        self._recorder = Recorder(record=record, deduplicate=deduplicate)
        self._address = (host, port)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        # Stalled requests wait on the current release event; release_stalled() swaps it.
        self._release = threading.Event()
        self._held_lock = threading.Lock()
        self._held = 0
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeMparticle:
        """Bind the socket and start serving on a background thread.

        Returns:
            The server itself.

        Raises:
            RuntimeError: The server was already started.
        """
        if self._server is not None or self._closed:
            raise RuntimeError("FakeMparticle can be started only once")
        self._server = Server(self._address, self._dispatch)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # bounds how long stop() waits for the loop
            name="mparticle-fake-server",
            daemon=True,
        )
        self._thread.start()
        logger.debug("fake mParticle listening on %s", self.url)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection (idle keep-alive ones too) and join threads.

        Stalled and slow responses are released (their connections are closed without
        an answer). Calling it again is a no-op.

        Args:
            timeout: Seconds to wait for connection threads to end.
        """
        server, thread = self._server, self._thread
        if server is None or thread is None or self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._release.set()
        server.shutdown()
        thread.join()
        if not server.close_connections(timeout):
            logger.warning("fake mParticle: some connections did not close within %ss", timeout)
        server.server_close()

    def __enter__(self) -> FakeMparticle:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeMparticle:
        return self.start()  # binding and starting a thread take well under a millisecond

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await anyio.to_thread.run_sync(self.stop)

    @property
    def url(self) -> str:
        """The base URL (``http://127.0.0.1:<port>``) to pass as ``base_url``.

        Raises:
            RuntimeError: The server is not started.
        """
        if self._server is None:
            raise RuntimeError("FakeMparticle is not started")
        return f"http://{self._server.server_name}:{self._server.server_port}"

    @property
    def port(self) -> int:
        """The bound port (see :attr:`url`)."""
        if self._server is None:
            raise RuntimeError("FakeMparticle is not started")
        return self._server.server_port

    @property
    def settings(self) -> dict[str, str]:
        """``{"apiKey": ..., "apiSecret": ...}`` matching this server, for a config's settings."""
        return {"apiKey": self.api_key, "apiSecret": self._api_secret}

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<FakeMparticle {where} events={self.event_count}>"

    # -- configuration ---------------------------------------------------------------

    @classmethod
    @contextmanager
    def observing(cls, observer: BatchObserver) -> Iterator[None]:
        """Call ``observer(server, path, batch)`` for every batch any server accepts.

        Process-wide, for every :class:`FakeMparticle` (including those started by
        code under test), while the ``with`` block runs; a test suite can use it to
        audit every accepted payload, e.g. against another schema. The observer runs
        on a server thread before the response is sent, so it must be thread-safe
        and quick; an exception it raises is logged and does not change the answer.

        Args:
            observer: Receives the server, the request path and the parsed batch
                (do not mutate it).
        """
        with _observers_lock:
            cls._observers = (*cls._observers, observer)
        try:
            yield
        finally:
            with _observers_lock:
                remaining = list(cls._observers)
                remaining.remove(observer)
                cls._observers = tuple(remaining)

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan (``None``: answer normally) for the following requests."""
        self._faults = plan

    def release_stalled(self) -> None:
        """Let every request currently held by a ``stall`` fault be processed normally.

        Requests arriving later still follow the fault plan (use :meth:`set_faults` to
        stop stalling).
        """
        with self._held_lock:
            release, self._release = self._release, threading.Event()
        release.set()

    @property
    def held(self) -> int:
        """How many requests a ``stall`` fault is holding right now."""
        with self._held_lock:
            return self._held

    def set_reject_batch(self, predicate: BatchPredicate | None) -> None:
        """Replace the ``reject_batch`` predicate (``None``: reject nothing)."""
        self._reject_batch = predicate

    # -- records -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received (accepted, rejected or faulted), in arrival order."""
        return self._recorder.requests

    @property
    def batches(self) -> list[RecordedBatch]:
        """Every accepted batch, in arrival order."""
        return self._recorder.batches

    @property
    def events(self) -> list[RecordedEvent]:
        """Every accepted event, in arrival order."""
        return self._recorder.events

    @property
    def event_count(self) -> int:
        """How many events were accepted (also counted when ``record=False``)."""
        return self._recorder.event_count

    @property
    def stats(self) -> ServerStats:
        """Counters: requests by status, faults, accepted batches/events/bytes."""
        return self._recorder.stats()

    def events_for(self, identity_type: str, value: str | int) -> list[RecordedEvent]:
        """Accepted events whose batch has ``user_identities[identity_type] == value``."""
        return [e for e in self.events if e.user_identities.get(identity_type) == value]

    def events_named(self, name: str) -> list[RecordedEvent]:
        """Accepted events whose ``event_name`` or ``screen_name`` is ``name``."""
        return [e for e in self.events if e.name == name]

    def assert_received(
        self,
        name: str | None = None,
        *,
        count: int | None = None,
        event_type: str | None = None,
        identities: Mapping[str, str | int] | None = None,
        custom_attributes: Mapping[str, Any] | None = None,
    ) -> list[RecordedEvent]:
        """Assert that matching events were accepted; return them.

        An event matches when every given criterion holds: its name, its
        ``event_type``, its batch's identities include ``identities`` and its
        ``custom_attributes`` include ``custom_attributes``.

        Args:
            name: The ``event_name``/``screen_name``.
            count: The exact number of matches expected; ``None`` means at least one.
            event_type: The mParticle ``event_type``.
            identities: Identity type → value pairs the batch must carry.
            custom_attributes: Key → value pairs the event must carry.

        Returns:
            The matching events, in arrival order.

        Raises:
            AssertionError: The number of matches is not as expected; the message
                lists what was received.
        """
        events = self.events
        matches = [
            e
            for e in events
            if (name is None or e.name == name)
            and (event_type is None or e.event_type == event_type)
            and all(e.user_identities.get(k) == v for k, v in (identities or {}).items())
            and all(
                k in e.custom_attributes and e.custom_attributes[k] == v
                for k, v in (custom_attributes or {}).items()
            )
        ]
        ok = len(matches) == count if count is not None else bool(matches)
        if not ok:
            wanted = {
                k: v
                for k, v in {
                    "name": name,
                    "event_type": event_type,
                    "identities": identities,
                    "custom_attributes": custom_attributes,
                }.items()
                if v is not None
            }
            expected = f"exactly {count}" if count is not None else "at least one"
            received = "\n  ".join(
                f"{e.event_type} {e.name!r} identities={dict(e.user_identities)} "
                f"attributes={dict(e.custom_attributes)}"
                for e in events[:50]
            )
            raise AssertionError(
                f"expected {expected} event(s) matching {wanted}, found {len(matches)}; "
                f"received {len(events)} event(s):\n  {received or '(none)'}"
            )
        return matches

    def clear(self) -> None:
        """Forget every record and reset the counters (the fault plan is kept)."""
        self._recorder.clear()

    # -- request handling (server threads) ---------------------------------------------

    def _dispatch(self, h: Handler) -> None:
        path = h.path.split("?", 1)[0]
        try:
            body = h.read_body()
        except (BodyTooLargeError, ValueError):
            h.close_connection = True
            self._answer(h, path, b"", 413, ["request body too large to read"])
            return
        if h.command == "GET" and path == STATS_PATH:
            h.send(200, json.dumps(self.stats.to_json()).encode())
            return
        if path not in _ROUTES:
            self._answer(h, path, body, 404, [f"no such endpoint: {path}"])
            return
        if h.command != "POST":
            self._answer(h, path, body, 405, [f"{h.command} not allowed; use POST"])
            return
        auth_status, auth_message = self._check_auth(h.headers.get("Authorization"))
        if auth_status:
            self._answer(h, path, body, auth_status, [auth_message])
            return
        plan = self._faults
        fault = plan.next() if plan is not None else None
        if fault is not None and fault.kind != "ok":
            if self._inject(h, path, body, fault):
                return
        self._process(h, path, body, fault)

    def _check_auth(self, header: str | None) -> tuple[int, str]:
        if not header or not header.startswith("Basic "):
            return 401, "missing Basic authentication"
        try:
            credentials = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return 401, "malformed Basic authentication"
        key, colon, secret = credentials.partition(b":")
        if not (key and colon and secret):
            return 401, "missing API key or secret"
        if not hmac.compare_digest(credentials, self._expected_auth):
            return 403, "invalid API key or secret"
        return 0, ""

    def _inject(self, h: Handler, path: str, body: bytes, fault: Fault) -> bool:
        """Apply a non-ok fault; return whether the request is finished."""
        if fault.kind == "slow":
            if self._stopping.wait(fault.delay):
                self._record(h, path, body, None, fault="slow")
                h.close_connection = True
                return True
            return False  # then processed normally
        if fault.kind == "stall":
            release = self._release
            with self._held_lock:
                self._held += 1
            try:
                release.wait()
            finally:
                with self._held_lock:
                    self._held -= 1
            if not self._stopping.is_set():
                return False  # released: processed normally
        if fault.kind in ("drop", "stall"):
            self._record(h, path, body, None, fault=fault.kind)
            h.close_connection = True
            return True
        if fault.kind in ("huge_body", "drip"):
            written = self._stream_body(h, fault)
            self._record(h, path, body, fault.status, fault=fault.kind, response_bytes=written)
            return True
        headers: dict[str, str] = {}
        messages = [fault.message] if fault.message else []
        if fault.kind == "rate_limited":
            headers["X-mp-rate-limit-exceeded"] = "true"
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            messages = ["rate limit exceeded (injected)"]
        elif fault.kind == "server_error":
            messages = [f"server error {fault.status} (injected)"]
        self._answer(h, path, body, fault.status or 500, messages, headers, fault=fault.kind)
        return True

    def _stream_body(self, h: Handler, fault: Fault) -> int:
        """Write ``huge_body``/``drip``'s answer; return the body bytes written.

        Ends when the body is complete, the client closes the connection (a failed
        write) or the server stops. The connection is closed afterwards.
        """
        h.close_connection = True
        endless = fault.kind == "drip" or fault.size is None
        h.send_response(fault.status or 202)
        h.send_header("Content-Type", "application/json")
        if endless:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(fault.size))
        h.send_header("Connection", "close")
        written = 0
        try:
            h.end_headers()
            h.wfile.flush()
            if fault.kind == "drip":
                while not self._stopping.wait(fault.delay):
                    h.wfile.write(b"1\r\n \r\n")
                    h.wfile.flush()
                    written += 1
                return written
            block = b" " * 65536
            left = fault.size
            while (left is None or left > 0) and not self._stopping.is_set():
                part = block if left is None or left >= len(block) else block[:left]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if endless else part)
                h.wfile.flush()
                written += len(part)
                if left is not None:
                    left -= len(part)
        except OSError:  # the client closed the connection (or the server is stopping)
            pass
        return written

    def _process(self, h: Handler, path: str, body: bytes, fault: Fault | None) -> None:
        injected = fault.kind if fault is not None and fault.kind != "ok" else None
        if len(body) > MAX_REQUEST_BYTES:
            self._answer(
                h,
                path,
                body,
                413,
                [f"request body is {len(body)} bytes, over {MAX_REQUEST_BYTES}"],
                fault=injected,
            )
            return
        try:
            if path == EVENTS_PATH:
                parsed = parse_json(body.decode("utf-8"))
                items = [(parsed, len(body))] if isinstance(parsed, dict) else None
                shape = "a JSON object (one batch)"
            else:
                items = parse_compact_array(body)
                if items is None:
                    items = parse_array(body.decode("utf-8"), body.isascii())
                shape = "a JSON array of batches"
        except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            self._answer(h, path, body, 400, [f"malformed JSON: {exc}"], fault=injected)
            return
        if items is None:
            self._answer(h, path, body, 400, [f"request body must be {shape}"], fault=injected)
            return
        problems = self._check_batches(path, items)
        if problems:
            self._answer(h, path, body, 400, problems, fault=injected)
            return
        if self._bucket is not None:
            wait = self._bucket.take(len(items))
            if wait is not None:
                headers = {
                    "X-mp-rate-limit-exceeded": "true",
                    "Retry-After": str(max(1, math.ceil(wait))),
                }
                self._answer(
                    h,
                    path,
                    body,
                    429,
                    ["rate limit exceeded"],
                    headers,
                    fault="simulated_rate_limit",
                )
                return
        headers = {}
        if fault is not None and fault.percentage_used is not None:
            headers["X-mp-rate-limit-percentage-used"] = str(fault.percentage_used)
        elif self._bucket is not None:
            used = (
                self._bucket.window_percentage_used()
                if self._window_usage
                else self._bucket.percentage_used()
            )
            headers["X-mp-rate-limit-percentage-used"] = str(used)
        # A batch whose source_request_id was ingested before is answered 202 and not
        # ingested again (mParticle's de-duplication); observers see ingested batches.
        ingested = self._recorder.add_request(
            method=h.command,
            path=path,
            headers=h.headers.items(),
            body=body,
            status=202,
            fault=injected,
            batches=items,
            response_bytes=0,
        )
        for observer in FakeMparticle._observers:
            self._notify(observer, path, ingested)
        h.send(202, b"", headers)

    def _notify(self, observer: BatchObserver, path: str, items: list[tuple[Any, int]]) -> None:
        try:
            for batch, _size in items:
                observer(self, path, batch)
        except Exception:
            logger.exception("fake mParticle: batch observer %r failed", observer)

    def _check_batches(self, path: str, items: list[tuple[Any, int]]) -> list[str]:
        bulk = path != EVENTS_PATH
        if bulk and not items:
            return ["bulk request holds no batches"]
        if len(items) > MAX_BATCHES_PER_REQUEST:
            return [f"bulk request holds {len(items)} batches, over {MAX_BATCHES_PER_REQUEST}"]
        historical = path == HISTORICAL_PATH
        reject = self._reject_batch
        problems: list[str] = []
        for index, (batch, size) in enumerate(items):
            where = f"batch {index}: " if bulk else ""
            if size > MAX_BATCH_BYTES:
                problems.append(f"{where}batch is {size} bytes, over {MAX_BATCH_BYTES}")
                continue
            if self.validate:
                found = validate_batch(batch, historical=historical)
            elif not isinstance(batch, dict):
                found = ["$: expected an object (a batch)"]
            else:
                found = check_historical(batch) if historical else []
            if found:
                problems.extend(where + p for p in found)
                continue
            if reject is not None and reject(batch):
                problems.append(f"{where}batch rejected (reject_batch)")
        return problems

    def _answer(
        self,
        h: Handler,
        path: str,
        body: bytes,
        status: int,
        messages: list[str],
        headers: dict[str, str] | None = None,
        fault: str | None = None,
    ) -> None:
        answer = error_body(status, messages) if messages else b""
        self._record(
            h,
            path,
            body,
            status,
            fault=fault,
            error="; ".join(messages) or None,
            response_bytes=len(answer),
        )
        h.send(status, answer, headers)

    def _record(
        self,
        h: Handler,
        path: str,
        body: bytes,
        status: int | None,
        *,
        fault: str | None = None,
        error: str | None = None,
        response_bytes: int | None = None,
    ) -> None:
        self._recorder.add_request(
            method=h.command,
            path=path,
            headers=h.headers.items(),
            body=body,
            status=status,
            fault=fault,
            error=error,
            response_bytes=response_bytes,
        )
