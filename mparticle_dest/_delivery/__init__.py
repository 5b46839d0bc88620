"""Stage 5: one bulk request on the wire — the only place httpx and tenacity live.

``deliverer`` posts a request with retries and the status policy, ``retry`` holds the
retry budget and backoff, ``pacing`` adapts the send rate to mParticle's rate limit,
``observe`` is the hook telemetry watches each HTTP attempt through.
"""

from .deliverer import (
    DEFAULT_ATTEMPT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    BatchResult,
    Deliverer,
    DeliveryCounters,
    make_client,
    parse_url,
)
from .observe import NO_OBSERVER, AttemptObserver, AttemptWatch
from .pacing import Pacer, PacingPolicy
from .retry import RetryPolicy, parse_retry_after

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "NO_OBSERVER",
    "AttemptObserver",
    "AttemptWatch",
    "BatchResult",
    "Deliverer",
    "DeliveryCounters",
    "Pacer",
    "PacingPolicy",
    "RetryPolicy",
    "make_client",
    "parse_retry_after",
    "parse_url",
]
