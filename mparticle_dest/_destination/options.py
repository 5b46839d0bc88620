"""Delivery options of a :class:`~mparticle_dest.Destination` and the dead-letter record."""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from attrs import field, frozen, validators

from .._batching import DEFAULT_LINGER, DEFAULT_MAX_DELAY, SealedBatch
from .._delivery import PacingPolicy, QuotaGate, RetryPolicy
from .._exceptions import DeliveryError
from .._mparticle import MAX_BATCHES_PER_REQUEST
from .._option_checks import not_bool, number
from .._telemetry import Telemetry

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BeforeSend",
    "DeliveryOptions",
    "DestinationOptions",
    "FailedBatch",
    "FullPolicy",
    "QuotaGate",
    "SendMode",
]

FullPolicy = Literal["wait", "drop", "raise"]
"""What ``push`` does when the buffer is full: wait for room, drop the event, or raise."""

SendMode = bool | Callable[[bytes], object]
"""``True`` posts batches to mParticle; ``False`` sends nothing (a dry run); a callable
receives each batch's JSON body in place of the request (a dry run that shows them)."""

BeforeSend = Callable[[Sequence[SealedBatch]], Awaitable[object]]
"""Awaited with the batches of a request that no attempt has carried yet, before the
first attempt (the relay records them in its Redis ledger); if it raises, the request is
not sent and its batches fail with reason ``"error"``."""

DEFAULT_MAX_BUFFERED_EVENTS = 20_000
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_MAX_IN_FLIGHT = 4


@frozen(kw_only=True)
class FailedBatch:
    """A batch that failed for good, as passed to the ``on_error`` hook.

    Attributes:
        source_request_id: The batch's ``source_request_id``.
        event_count: Number of events in the batch.
        reason: ``"rejected"`` (400), ``"authentication"`` (401/403),
            ``"retry_budget"`` (5xx/timeouts/network errors outlasted the budget; a
            429 never fails a batch while the destination is open),
            ``"error"`` (a transport error a retry cannot fix) or ``"closed"``
            (still buffered when the close timeout ran out).
        error: The error, also on each event's :class:`~mparticle_dest.Outcome`.
        attempts: HTTP attempts that carried the batch.
        body: The batch JSON exactly as it was (or would have been) sent, for a
            dead-letter store; resend it to ``/v2/events`` as is.
    """

    source_request_id: str
    event_count: int
    reason: str
    error: DeliveryError
    attempts: int
    body: bytes = field(repr=False)


def _finite_positive(_inst: object, attribute: object, value: float) -> None:
    not_bool(_inst, attribute, value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{getattr(attribute, 'name', 'value')} must be > 0, got {value!r}")


def _non_negative(_inst: object, attribute: object, value: float) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{getattr(attribute, 'name', 'value')} must be ≥ 0, got {value!r}")


def _quota_gate(_inst: object, attribute: object, value: Any) -> None:
    if value is not None and not inspect.iscoroutinefunction(getattr(value, "acquire", None)):
        raise TypeError("quota_gate must have an `async def acquire(self, batches: int)` method")


def _optional_timeout(_inst: object, attribute: object, value: float | None) -> None:
    if value is not None:
        _finite_positive(_inst, attribute, value)


def _sync_callable(_inst: object, attribute: object, value: Any) -> None:
    if value is None:
        return
    name = getattr(attribute, "name", "value")
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
        getattr(value, "__call__", None)  # noqa: B004 - an async __call__ method
    ):
        raise TypeError(
            f"{name} must be a plain (sync) callable; it runs on the sender task. To do"
            " I/O, hand what it receives to a queue or a task of your own."
        )


def _send_mode(inst: object, attribute: object, value: Any) -> None:
    # None must not slip through as "not True", which would silently mean a dry run.
    if value is None:
        raise TypeError("send must be True, False or a sync callable, got None")
    if not isinstance(value, bool):
        _sync_callable(inst, attribute, value)


@frozen(kw_only=True)
class DeliveryOptions:
    """Keyword options of :class:`~mparticle_dest.Destination` (``dest.options``).

    Attributes:
        max_buffered_events: Cap on events accepted and not yet final (open,
            queued or in flight).
        full_policy: When the cap is reached, ``push`` waits for room (``"wait"``),
            drops the event (``"drop"``, counted, receipt resolved ``dropped``) or
            raises :class:`~mparticle_dest.BufferFullError` (``"raise"``).
        full_timeout: With ``"wait"``, raise ``BufferFullError`` after waiting this
            many seconds (``None``: wait as long as it takes).
        close_timeout: Seconds ``aclose()`` spends delivering what is buffered;
            what is left then fails with reason ``"closed"``.
        max_in_flight: Most requests in flight at once.
        max_batches_per_request: Most batches packed into one ``/v2/bulkevents``
            request (1 to 100, mParticle's limit; default 100). With ``batch.size``
            1 and this at 1, delivery is one request per event, walkerOS's strategy.
        request_timeout: Seconds one HTTP attempt may take in all (connecting,
            sending, receiving the answer); then it ends as a timeout, retried per
            ``retry``. Also each phase's limit for the destination's own client
            (``None``: 30 s, and 10 s to connect). A caller-owned ``http_client``
            keeps its own phase limits, but its attempts are bounded all the same.
        retry: The per-request retry budget and backoff.
        pacing: The adaptive pacing tuning.
        batches_per_second: The workspace's batch quota, if known: pacing starts at
            this rate and never exceeds it (``None``: learned from 429s and
            ``X-mp-rate-limit-percentage-used``). With several processes sharing the
            workspace, give each its share, or leave it to the pacer.
        quota_gate: A :class:`~mparticle_dest.QuotaGate` awaited before every request
            (a token bucket shared by processes, e.g. in Redis); ``None``: none.
        linger: Seconds a request that is not full waits for more eligible batches
            after its oldest one became eligible.
        max_delay: Latency bound under the quota: a batch eligible for this many
            seconds goes before fuller ones.
        on_error: Called with a :class:`FailedBatch` for every batch that failed for
            good. A plain sync callable; its exceptions are logged and contained.
        historical: Post to ``/v2/bulkevents/historical`` (backfills of data older
            than 30 days); every pushed event must then carry its ``timestamp``.
        send: ``False`` for a dry run: events are validated, mapped, batched and
            counted, receipts resolve ``skipped`` with reason ``"dry_run"``, and no
            request is made. A sync callable also makes a dry run, and receives each
            batch's JSON body as it would have been sent.
        before_send: A :data:`BeforeSend` hook awaited before a batch's first attempt.
    """

    max_buffered_events: int = field(
        default=DEFAULT_MAX_BUFFERED_EVENTS,
        validator=[not_bool, validators.instance_of(int), validators.ge(1)],
    )
    full_policy: FullPolicy = field(
        default="wait", validator=validators.in_(("wait", "drop", "raise"))
    )
    full_timeout: float | None = field(default=None, validator=_optional_timeout)
    close_timeout: float = field(
        default=DEFAULT_CLOSE_TIMEOUT, converter=number, validator=_finite_positive
    )
    max_in_flight: int = field(
        default=DEFAULT_MAX_IN_FLIGHT,
        validator=[not_bool, validators.instance_of(int), validators.ge(1)],
    )
    max_batches_per_request: int = field(
        default=MAX_BATCHES_PER_REQUEST,
        validator=[
            not_bool,
            validators.instance_of(int),
            validators.ge(1),
            validators.le(MAX_BATCHES_PER_REQUEST),
        ],
    )
    request_timeout: float | None = field(default=None, validator=_optional_timeout)
    retry: RetryPolicy = field(factory=RetryPolicy, validator=validators.instance_of(RetryPolicy))
    pacing: PacingPolicy = field(
        factory=PacingPolicy, validator=validators.instance_of(PacingPolicy)
    )
    batches_per_second: float | None = field(default=None, validator=_optional_timeout)
    quota_gate: QuotaGate | None = field(default=None, validator=_quota_gate)
    linger: float = field(default=DEFAULT_LINGER, converter=float, validator=_non_negative)
    max_delay: float = field(default=DEFAULT_MAX_DELAY, converter=float, validator=_non_negative)
    on_error: Callable[[FailedBatch], object] | None = field(default=None, validator=_sync_callable)
    historical: bool = field(default=False, validator=validators.instance_of(bool))
    before_send: BeforeSend | None = None
    send: SendMode = field(default=True, validator=_send_mode)


class DestinationOptions(TypedDict, total=False):
    """The keyword options of :class:`~mparticle_dest.Destination`, as one type.

    ``SyncDestination(config, **options)`` takes exactly these, so a type checker
    checks its options as it checks ``Destination``'s; a wrapper of your own can
    forward ``**options: Unpack[DestinationOptions]`` the same way. Each key is
    documented on ``Destination``.
    """

    base_url: str | None
    http_client: httpx.AsyncClient | None
    max_buffered_events: int
    full_policy: FullPolicy
    full_timeout: float | None
    close_timeout: float
    max_in_flight: int
    max_batches_per_request: int
    request_timeout: float | None
    retry: RetryPolicy | None
    pacing: PacingPolicy | None
    on_error: Callable[[FailedBatch], object] | None
    historical: bool
    send: SendMode
    batches_per_second: float | None
    quota_gate: QuotaGate | None
    linger: float
    max_delay: float
    before_send: BeforeSend | None
    telemetry: Telemetry | bool
