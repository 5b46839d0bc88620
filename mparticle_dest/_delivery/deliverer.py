"""HTTP delivery: one bulk POST per call, tenacity retries, the status policy below.

This is the only module that imports httpx. :class:`Deliverer` sends sealed batches
as one ``/v2/bulkevents`` request and returns one :class:`BatchResult` per batch; it
never raises for an HTTP or network outcome (only cancellation and bugs propagate).

Status policy:

==========================  ==========================================================
2xx                         delivered
429                         throttled: with ``scheduled=True`` (the engine) the batches
                            come back as ``throttled`` results, not failed, and the engine
                            puts them back in line; else retried like a 5xx
408, 5xx                    retried; ``Retry-After`` honoured, else full-jitter backoff
timeout, connection error   retried with the same backoff
400 (bulk)                  split in halves to isolate the rejected batches
400 (one batch)             :class:`~mparticle_dest.RejectedError` with the server's message
413 (bulk)                  split in halves (a proxy may accept less than 256 KB)
401, 403                    :class:`~mparticle_dest.AuthenticationError` for every batch,
                            logged once; later sends fail at once without a request
other 3xx/4xx               :class:`~mparticle_dest.RejectedError` (never retried; a
                            redirect is never followed, so the auth header never travels)
budget spent                :class:`~mparticle_dest.RetryBudgetExhaustedError`
no status within deadline   a timeout: retried (``attempt_timeout``, the whole attempt)
==========================  ==========================================================

Only the status decides; of the body at most ``MAX_RESPONSE_BYTES`` are read (for an
error message), and a body still arriving at the deadline is abandoned. Every server
text kept (messages, errors, logs) has the credentials masked.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any, Final, Literal, NamedTuple

import anyio
import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from .._batching import SealedBatch
from .._exceptions import (
    AuthenticationError,
    DeliveryError,
    RejectedError,
    RetryBudgetExhaustedError,
)
from .._mparticle import MAX_BATCHES_PER_REQUEST
from .._version import __version__
from .._wire import encode_bulk
from .observe import NO_OBSERVER, AttemptObserver
from .pacing import RETRY_AFTER_HEADER, USAGE_HEADER, Pacer
from .results import BatchResult, DeliveryCounters
from .retry import RetryPolicy, parse_retry_after

__all__ = ["Deliverer", "load_client_modules", "make_client", "parse_url", "tls_context"]

_LOG: Final = logging.getLogger("mparticle_dest.delivery")
#: httpx's logger: the requests of the destination's own client bypass ``client.send``,
#: which logs each one there at INFO; the deliverer logs them the same way.
_HTTPX_LOG: Final = logging.getLogger("httpx")

DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
#: Seconds one whole attempt (connect, send, receive) may take without ``request_timeout``.
DEFAULT_ATTEMPT_TIMEOUT: Final = 30.0
#: Response body bytes read at most: mParticle's answers are empty or a short error
#: text; the rest of a larger body is never read (the connection is closed instead).
MAX_RESPONSE_BYTES: Final = 8 * 1024
_MAX_MESSAGE: Final = 500  # characters of a server error message kept
_MASK: Final = "***"
_RETRY_STATUSES: Final = frozenset({408, 429})
_SPLIT_STATUSES: Final = frozenset({400, 413})
# Errors raised before any byte of the request left: a retry cannot duplicate anything.
_UNSENT_ERRORS: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Transport errors that a retry cannot fix (a bad URL scheme, an invalid header).
_FATAL_ERRORS: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)
# The answer's headers that pacing and telemetry read (lower case, raw).
_READ_HEADERS: Final = {
    RETRY_AFTER_HEADER.encode(): RETRY_AFTER_HEADER,
    USAGE_HEADER.encode(): USAGE_HEADER,
}

_Kind = Literal["delivered", "retry", "throttle", "auth", "reject", "fail"]

# Stateless, so shared by every retrier.
_RETRY_ON_RESULT: Final = retry_if_result(lambda attempt: attempt.kind == "retry")


def parse_url(url: str) -> httpx.URL:
    """``url`` as httpx will send to it.

    Raises:
        ValueError: httpx refuses the URL.
    """
    try:
        return httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from None


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every client a destination builds shares, made once per process.

    httpx's default (certifi's CA bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``):
    loading the bundle costs 20-40 ms of CPU, paid by the first destination only, and
    where it holds no event loop (see ``Destination``). A context is safe to share
    between clients; it holds no connection.
    """
    return httpx.create_ssl_context()


def load_client_modules() -> None:
    """Import what building a client imports, and make :func:`tls_context`.

    httpx imports httpcore (and httpcore imports trio when it is installed) with its
    first transport: with the TLS context, 50-200 ms of CPU a destination pays once,
    where it holds no event loop.
    """
    import httpcore  # noqa: F401

    tls_context()


def make_client(
    *, timeout: float | httpx.Timeout = DEFAULT_TIMEOUT, max_connections: int = 10
) -> httpx.AsyncClient:
    """Build the ``httpx.AsyncClient`` a destination owns when the caller gives none.

    TLS certificates are verified (:func:`tls_context`), redirects are not followed,
    and the pool holds at most ``max_connections`` connections (all kept alive).

    Args:
        timeout: Seconds for every phase, or an ``httpx.Timeout`` (default: 30 s,
            10 s to connect).
        max_connections: Pool size; keep it ≥ the number of concurrent senders.
    """
    return httpx.AsyncClient(
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
        verify=tls_context(),
        headers={"User-Agent": f"mparticle-dest/{__version__}"},
    )


class _Attempt(NamedTuple):
    """What one HTTP attempt (or the last of a retried request) came to (a named tuple:
    one is made per attempt)."""

    kind: _Kind
    status: int | None = None
    message: str = ""
    retry_after: float | None = None  # read by the retry wait (RetryPolicy.wait)
    ambiguous: bool = False


class Deliverer:
    """Posts sealed batches to mParticle with retries, splitting and adaptive pacing.

    One instance serves all concurrent sends of a destination; each request that
    needs a retry builds its own tenacity retrier (tenacity #93: a shared one
    corrupts its state).

    Args:
        client: The HTTP client (owned by the caller of this class).
        url: The bulk endpoint, e.g. ``_wire.endpoint(pod, base_url, BULK_PATH)``.
        auth_header: The ``Authorization`` value (``_wire.basic_auth_header``); it is
            kept private and never logged or shown.
        retry: The per-request retry budget.
        pacer: The pacer shared with the other senders of the destination.
        logger: Where to log (default ``mparticle_dest.delivery``).
        scheduled: The caller paces each request's first attempt itself (the engine
            does, before it seals the batches) and takes 429s back: a throttled
            request ends at once with ``throttled`` results instead of being retried.
        attempt_timeout: Seconds one attempt may take in all (connecting, sending
            the body, receiving the status and up to ``MAX_RESPONSE_BYTES`` of the
            body); whatever the server does, the attempt then ends.
        observer: Told about every HTTP attempt (telemetry); default: nobody.
        own_client: ``client`` was built by :func:`make_client` for this deliverer
            and is seen by nobody else (no event hooks, auth or cookies a caller set):
            each request then goes straight to the client's transport for ``url``
            (see :func:`_direct_transport`), a caller's client always gets the full
            ``client.send``.
    """

    __slots__ = (
        "_auth_failure",
        "_client",
        "_credentials_tried",
        "_extensions",
        "_headers",
        "_log",
        "_masks",
        "_observer",
        "_pacer",
        "_probe",
        "_retry",
        "_scheduled",
        "_timeout",
        "_transport",
        "_url",
        "_url_parsed",
        "_wire_headers",
        "counters",
    )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        url: str,
        auth_header: str,
        retry: RetryPolicy | None = None,
        pacer: Pacer | None = None,
        logger: logging.Logger | None = None,
        scheduled: bool = False,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        observer: AttemptObserver = NO_OBSERVER,
        own_client: bool = False,
    ) -> None:
        self._client = client
        self._scheduled = scheduled
        self._url = url
        self._url_parsed = parse_url(url)  # parsed once, not on every post
        # identity: a compressed body could not be read in part (nor bounded when inflated).
        self._headers = {
            "Authorization": auth_header,
            "Content-Type": "application/json",
            "Accept-Encoding": "identity",
        }
        self._masks = _credential_forms(auth_header)
        self._transport = _direct_transport(client, self._url_parsed) if own_client else None
        self._wire_headers: list[tuple[bytes, bytes]] = []
        self._extensions: dict[str, Any] = {}
        if self._transport is not None:
            # What client.build_request makes of every request but its length: the
            # client's default headers merged with ours, Host first, and its timeouts.
            template = client.build_request(
                "POST", self._url_parsed, content=b"", headers=self._headers
            )
            raw = template.headers.raw
            self._wire_headers = [h for h in raw if h[0].lower() != b"content-length"]
            self._extensions = template.extensions
        self._timeout = attempt_timeout
        self._retry = retry if retry is not None else RetryPolicy()
        self._pacer = pacer if pacer is not None else Pacer()
        self._log = logger if logger is not None else _LOG
        self._observer = observer
        self._auth_failure: int | None = None
        self._credentials_tried = False
        self._probe: anyio.Event | None = None
        self.counters = DeliveryCounters()

    @property
    def auth_failed(self) -> bool:
        """Whether mParticle refused the credentials; every later send fails at once."""
        return self._auth_failure is not None

    @property
    def pacer(self) -> Pacer:
        """The shared pacer."""
        return self._pacer

    def __repr__(self) -> str:
        state = " auth-failed" if self._auth_failure is not None else ""
        return f"<Deliverer url={self._url!r}{state}>"

    async def send(self, batches: Sequence[SealedBatch]) -> list[BatchResult]:
        """Deliver ``batches`` as one bulk request (split only to isolate rejections).

        Args:
            batches: At most 100 batches, in the order to send them.

        Returns:
            One :class:`BatchResult` per batch, in the same order.

        Raises:
            ValueError: More than 100 batches.
        """
        count = len(batches)
        if count > MAX_BATCHES_PER_REQUEST:
            raise ValueError(f"at most {MAX_BATCHES_PER_REQUEST} batches per request")
        if not count:
            return []
        group = batches if type(batches) is list else list(batches)
        result = await self._request(group, paid=self._scheduled)
        if result.kind == "reject" and count > 1 and result.status in _SPLIT_STATUSES:
            results: list[BatchResult | None] = [None] * count
            await self._isolate(batches, list(range(count)), result, results)
            done = [r for r in results if r is not None]
            assert len(done) == count
            return done
        return self._results(group, result)

    # -- splitting -------------------------------------------------------------------------

    async def _send_group(
        self,
        batches: Sequence[SealedBatch],
        group: list[int],
        out: list[BatchResult | None],
    ) -> None:
        result = await self._request([batches[i] for i in group])
        if result.kind == "reject" and len(group) > 1 and result.status in _SPLIT_STATUSES:
            await self._isolate(batches, group, result, out)
        else:
            self._settle(batches, group, result, out)

    async def _isolate(
        self,
        batches: Sequence[SealedBatch],
        group: list[int],
        rejection: _Attempt,
        out: list[BatchResult | None],
    ) -> None:
        """Find the rejected batches of ``group``, which was refused as a whole.

        Binary search: send the left half; if mParticle accepts it, a 400 must have
        come from the right half, which is then split without being resent whole.
        """
        if len(group) == 1:
            self._settle(batches, group, rejection, out)
            return
        middle = len(group) // 2
        left, right = group[:middle], group[middle:]
        left_result = await self._request([batches[i] for i in left])
        if left_result.kind == "reject" and len(left) > 1 and left_result.status in _SPLIT_STATUSES:
            await self._isolate(batches, left, left_result, out)
        else:
            self._settle(batches, left, left_result, out)
        if left_result.kind == "delivered" and rejection.status == 400:
            # A 400 judges content, batch by batch: the culprit is on the right. A 413
            # judges size, so each half may pass on its own and must be tried.
            await self._isolate(batches, right, rejection, out)
        else:
            await self._send_group(batches, right, out)

    def _settle(
        self,
        batches: Sequence[SealedBatch],
        group: list[int],
        result: _Attempt,
        out: list[BatchResult | None],
    ) -> None:
        settled = self._results([batches[i] for i in group], result)
        for i, one in zip(group, settled, strict=True):
            out[i] = one

    def _results(self, group: list[SealedBatch], result: _Attempt) -> list[BatchResult]:
        """One result per batch of ``group``, which ``result`` settled."""
        status = result.status
        kind = result.kind
        if kind == "delivered":
            return [BatchResult(batch, status, batch.attempts) for batch in group]
        if kind == "throttle":
            return [BatchResult(batch, status, batch.attempts, None, True) for batch in group]
        return [
            BatchResult(batch, status, batch.attempts, self._error(result, batch))
            for batch in group
        ]

    def _error(self, result: _Attempt, batch: SealedBatch) -> DeliveryError:
        status = result.status
        if result.kind == "auth":
            said = f" (the server said: {result.message})" if result.message else ""
            return AuthenticationError(
                f"mParticle refused the credentials (HTTP {status}): check apiKey and"
                f" apiSecret{said}",
                status=status,
            )
        if result.kind == "reject":
            self._log.warning(
                "mParticle rejected batch source_request_id=%s (HTTP %s): %s",
                batch.source_request_id,
                status,
                result.message,
            )
            return RejectedError(
                f"mParticle rejected the batch (HTTP {status}): {result.message}",
                status=status,
                server_message=result.message,
            )
        if result.kind == "retry":
            return RetryBudgetExhaustedError(
                f"retry budget spent ({result.message})",
                status=status,
            )
        return DeliveryError(f"delivery failed: {result.message}", status=status)

    # -- one request with retries ------------------------------------------------------------

    async def _request(self, group: list[SealedBatch], *, paid: bool = False) -> _Attempt:
        """POST ``group`` as one bulk body until it settles or the budget runs out.

        ``paid``: the caller already paced the first attempt.
        """
        if self._auth_failure is not None:
            return _Attempt("auth", self._auth_failure, "credentials refused earlier; not sent")
        body = encode_bulk([b.body for b in group])
        # Attempts of this request that reached the wire; starts at -1 when the first
        # attempt is already paced (see _post).
        sent: list[int] = [-1 if paid else 0]
        started = time.monotonic()
        # Straight to the post once the credentials were tried: one coroutine less to
        # resume at every await of the request.
        first = await (
            self._post(group, body, sent)
            if self._credentials_tried
            else self._attempt(group, body, sent)
        )
        if first.kind != "retry":
            # Most requests settle at once: no retrier is built for them (tenacity's
            # set-up costs more per request than the rest of this module).
            return first
        # A retriable failure: only now build this request's own retrier (one per
        # request: a shared one corrupts its state, tenacity #93). Its attempt 1 is the
        # one already made, and its time budget counts from that attempt's start.
        replay: list[_Attempt] = [first]

        async def attempt() -> _Attempt:
            if replay:
                return replay.pop()
            return await self._attempt(group, body, sent)

        retrying = AsyncRetrying(
            sleep=anyio.sleep,
            stop=self._retry.stop(started=started),
            wait=self._retry.wait(),
            retry=_RETRY_ON_RESULT,
            before_sleep=self._before_sleep,
            retry_error_callback=_last_result,
        )
        result: _Attempt = await retrying(attempt)
        if result.kind == "retry":
            attempts = retrying.statistics.get("attempt_number", 1)
            result = result._replace(message=f"{attempts} attempts, last: {result.message}")
            self._log.warning(
                "mParticle request of %d batches gave up (%s)", len(group), result.message
            )
        return result

    def _before_sleep(self, state: RetryCallState) -> None:
        outcome = state.outcome
        message = outcome.result().message if outcome is not None and not outcome.failed else ""
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        self._log.info(
            "mParticle request attempt %d failed (%s); retrying in %.2f s",
            state.attempt_number,
            message,
            wait,
        )

    async def _attempt(self, group: list[SealedBatch], body: bytes, sent: list[int]) -> _Attempt:
        probe = await self._claim_probe()
        settled = False
        try:
            result = await self._post(group, body, sent)
            settled = True
            return result
        finally:
            if probe:
                self._release_probe(settled)

    async def _claim_probe(self) -> bool:
        """Until the credentials were tried once, let one attempt at a time through.

        So wrong credentials cost exactly one request, however many senders start
        together. Returns whether this attempt is the probe.
        """
        while not self._credentials_tried:
            if self._probe is None:
                self._probe = anyio.Event()
                return True
            await self._probe.wait()
        return False

    def _release_probe(self, settled: bool) -> None:
        # A cancelled probe proved nothing: the next waiter becomes the probe.
        self._credentials_tried = settled
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.set()

    async def _post(self, group: list[SealedBatch], body: bytes, sent: list[int]) -> _Attempt:
        if self._auth_failure is not None:  # another sender learnt it while we waited
            return _Attempt("auth", self._auth_failure, "credentials refused earlier; not sent")
        if sent[0] < 0:
            sent[0] = 1  # the first attempt, paced by the caller
        else:
            await self._pacer.acquire(len(group))
            if sent[0]:
                self.counters.retries += 1
            sent[0] += 1
        counters = self.counters
        counters.requests += 1
        counters.bytes_sent += len(body)
        for batch in group:
            batch.attempts += 1
        debug = self._log.isEnabledFor(logging.DEBUG)
        started = time.monotonic() if debug else 0.0
        client = self._client
        transport = self._transport
        if transport is None or client.is_closed:  # (closed: send raises, as it should)
            transport = None
            request = client.build_request(
                "POST", self._url_parsed, content=body, headers=self._headers
            )
        else:
            request = httpx.Request(
                "POST",
                self._url_parsed,
                headers=[*self._wire_headers, (b"Content-Length", b"%d" % len(body))],
                stream=httpx.ByteStream(body),
                extensions=self._extensions,
            )
        response: httpx.Response | None = None
        content: list[bytes] = []
        watch = self._observer.start(group, len(body), sent[0] - 1)
        try:
            # One deadline for the whole attempt: the per-phase timeouts alone let a
            # server that drips its answer (a byte at a time) hold it open for ever.
            with anyio.CancelScope(deadline=anyio.current_time() + self._timeout) as deadline:
                if transport is None:
                    response = await client.send(request, stream=True, follow_redirects=False)
                else:
                    response = await transport.handle_async_request(request)
                    if _HTTPX_LOG.isEnabledFor(logging.INFO):
                        _HTTPX_LOG.info(
                            'HTTP Request: %s %s "%s %d %s"',
                            request.method,
                            request.url,
                            response.http_version,
                            response.status_code,
                            response.reason_phrase,
                        )
                try:
                    await _read_some(response, content)
                except (httpx.HTTPError, httpx.StreamError):
                    pass  # the status is in; a body cut short only shortens the message
                finally:
                    if not response.is_closed:  # (a body read to its end closed it)
                        with anyio.CancelScope(shield=True):
                            await response.aclose()  # closes the connection with the rest
        except _FATAL_ERRORS as exc:
            watch.end(None, error=exc)
            if debug:
                self._debug_request(group, len(body), started, self._describe(exc))
            return _Attempt("fail", None, self._describe(exc))
        except httpx.HTTPError as exc:  # timeouts, connection errors, dropped responses
            watch.end(None, error=exc)
            if debug:
                self._debug_request(group, len(body), started, self._describe(exc))
            ambiguous = not isinstance(exc, _UNSENT_ERRORS)
            if ambiguous:
                for batch in group:
                    batch.ambiguous_attempts += 1
            return _Attempt("retry", None, self._describe(exc), ambiguous=ambiguous)
        except BaseException as exc:  # cancelled (close timeout): the attempt still ends
            watch.end(None, error=exc)
            raise
        if debug:
            answer = "no answer" if response is None else f"HTTP {response.status_code}"
            self._debug_request(group, len(body), started, answer)
        if response is None:  # no status within the deadline: a timeout, maybe sent
            watch.end(None, error=TimeoutError())
            for batch in group:
                batch.ambiguous_attempts += 1
            return _Attempt(
                "retry",
                None,
                f"AttemptTimeout: no answer within {self._timeout:g} s (request_timeout)",
                ambiguous=True,
            )
        if deadline.cancelled_caught:
            self._log.info(
                "mParticle answer HTTP %d: body not complete within %g s; connection closed",
                response.status_code,
                self._timeout,
            )
        headers = _read_headers(response)
        watch.end(response.status_code, headers)
        return self._classify(response, headers, content, group)

    def _debug_request(
        self, group: list[SealedBatch], size: int, started: float, result: str
    ) -> None:
        """One DEBUG line per HTTP attempt: what went, what came back, how long it took.

        Only the path, counts and the status or error class: never a header, a body
        or the credentials (httpx's error texts carry none of them).
        """
        self._log.debug(
            "POST %s: %s (%d batches, %d events, %d bytes, %.3f s)",
            self._url_parsed.path,
            result,
            len(group),
            sum(batch.event_count for batch in group),
            size,
            time.monotonic() - started,
        )

    def _classify(
        self,
        response: httpx.Response,
        headers: dict[str, str],
        content: list[bytes],
        group: list[SealedBatch],
    ) -> _Attempt:
        """The attempt's outcome from its answer; ``headers``: :func:`_read_headers`,
        ``content``: the start of the body, in chunks."""
        status = response.status_code
        self._pacer.on_response(status, headers, len(group))
        if 200 <= status < 300:
            return _Attempt("delivered", status)
        if status in (401, 403):
            if self._auth_failure is None:
                self._auth_failure = status
                self._log.error(
                    "mParticle refused the credentials (HTTP %d): check apiKey and apiSecret;"
                    " no more requests will be sent by this destination",
                    status,
                )
            return _Attempt("auth", status, self._server_message(response, b"".join(content)))
        if status == 429 or status >= 500 or status in _RETRY_STATUSES:
            if status == 429:
                self.counters.throttled += 1
                if self._scheduled:  # "not yet": the engine puts the batches back in line
                    return _Attempt("throttle", status, "HTTP 429")
            ambiguous = status >= 500  # the server may have acted before failing
            if ambiguous:
                for batch in group:
                    batch.ambiguous_attempts += 1
            return _Attempt(
                "retry",
                status,
                f"HTTP {status}",
                retry_after=parse_retry_after(headers.get(RETRY_AFTER_HEADER)),
                ambiguous=ambiguous,
            )
        if 300 <= status < 400:
            return _Attempt("reject", status, f"HTTP {status} redirect not followed")
        return _Attempt("reject", status, self._server_message(response, b"".join(content)))

    def _server_message(self, response: httpx.Response, content: bytes) -> str:
        """The server's error text: ``code: message`` items of ``{"errors": [...]}``, else text.

        ``content`` is the start of the body (at most ``MAX_RESPONSE_BYTES``). The
        credentials are masked, should the server (or a proxy) echo them.
        """
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return f"HTTP {response.status_code} ({encoding} body not read)"
        text = content[:MAX_RESPONSE_BYTES].decode("utf-8", "replace")
        message = ""
        try:
            payload = json.loads(text)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
            parts = []
            for item in payload["errors"]:
                if isinstance(item, dict):
                    code, detail = item.get("code"), item.get("message")
                    parts.append(": ".join(str(p) for p in (code, detail) if p is not None))
            message = "; ".join(p for p in parts if p)
        if not message:
            message = " ".join(text.split()) or f"HTTP {response.status_code}"
        message = self._mask(message)
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        return message

    def _mask(self, text: str) -> str:
        """``text`` with every form of the credentials replaced by ``***``."""
        for secret in self._masks:
            if secret in text:
                text = text.replace(secret, _MASK)
        return text

    def _describe(self, exc: BaseException) -> str:
        """Name a transport error without the request (httpx messages carry no headers,
        but a protocol error may quote what the server sent: masked)."""
        text = self._mask(str(exc))
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _direct_transport(client: httpx.AsyncClient, url: httpx.URL) -> httpx.AsyncBaseTransport | None:
    """The transport ``client`` sends ``url`` through, for a deliverer that owns it.

    What ``client.send`` adds around the transport (auth flow, event hooks, cookie jar,
    redirect bookkeeping) is unused by a client nobody else sees and costs about a
    quarter of a request's CPU (its INFO record on the ``httpx`` logger is kept: the
    deliverer makes it). The transport is the one the client
    itself picks (a proxy's, when the environment names one), so nothing on the wire
    changes. ``None`` (the full path) when the URL carries credentials (the client
    would send them instead of ours) or httpx no longer says which transport it uses.
    """
    if url.userinfo:
        return None
    pick = getattr(client, "_transport_for_url", None)
    transport = pick(url) if callable(pick) else None
    return transport if isinstance(transport, httpx.AsyncBaseTransport) else None


def _read_headers(response: httpx.Response) -> dict[str, str]:
    """The headers pacing and telemetry read, by lower-case name: one pass over the raw
    list (each lookup in ``httpx.Headers`` decodes and scans them all); repeated ones
    joined with ``", "`` as ``httpx.Headers`` does."""
    found: dict[str, str] = {}
    for key, value in response.headers.raw:
        name = _READ_HEADERS.get(key.lower())
        if name is not None:
            text = value.decode("latin-1")
            found[name] = f"{found[name]}, {text}" if name in found else text
    return found


async def _read_some(response: httpx.Response, into: list[bytes]) -> None:
    """Append the start of the body to ``into``: up to ``MAX_RESPONSE_BYTES`` (plus the
    rest of the network read that crossed the bound); the remainder is never read.

    At the bound the response is closed (its connection with it) and the iteration
    goes on to end with the closed connection's error, which the caller expects:
    leaving the loop instead would leave httpx's nested stream generators suspended
    (trio warns when it collects them).
    """
    if response.is_stream_consumed:  # built in memory (a mock transport): nothing to bound
        into.append(response.content[:MAX_RESPONSE_BYTES])
        return
    size = 0
    async for chunk in response.aiter_raw():
        into.append(chunk)
        size += len(chunk)
        if size >= MAX_RESPONSE_BYTES:
            if response.is_closed:  # still yielding after the close: stop all the same
                return
            await response.aclose()


def _credential_forms(auth_header: str) -> tuple[str, ...]:
    """What must never appear in a message: the header token, ``key:secret``, the secret.

    Longest first, so a longer form is masked whole before a shorter one inside it.
    """
    token = auth_header.partition(" ")[2] or auth_header
    forms = {token}
    try:
        pair = base64.b64decode(token, validate=True).decode()
    except (binascii.Error, ValueError):
        pair = ""
    _key, colon, secret = pair.partition(":")
    if colon and secret:
        forms.update((pair, secret))
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def _last_result(state: RetryCallState) -> _Attempt | None:
    """What a retrier whose budget is spent returns: the last attempt's result."""
    return state.outcome.result() if state.outcome is not None else None
