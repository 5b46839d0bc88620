"""Stage 5: one bulk request on the wire — the only place httpx and tenacity live.

``deliverer`` posts a request with retries and the status policy, ``retry`` holds the
retry budget and backoff, ``pacing`` paces requests in batches per second under
mParticle's quota, ``observe`` is the hook telemetry watches each HTTP attempt through.

``deliverer`` (httpx, tenacity: most of an import's cost) is imported on first use of
one of its names, so ``import mparticle_dest`` stays cheap; a destination needs it
only when it is built (URL check) and entered.
"""

from typing import TYPE_CHECKING, Any

from .observe import NO_OBSERVER, AttemptObserver, AttemptWatch
from .pacing import Pacer, PacingPolicy, QuotaGate
from .results import BatchResult, DeliveryCounters, Sender
from .retry import RetryPolicy, parse_retry_after

if TYPE_CHECKING:
    from .deliverer import (
        DEFAULT_ATTEMPT_TIMEOUT,
        MAX_RESPONSE_BYTES,
        Deliverer,
        load_client_modules,
        make_client,
        parse_url,
        tls_context,
    )

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
    "QuotaGate",
    "RetryPolicy",
    "Sender",
    "load_client_modules",
    "make_client",
    "parse_retry_after",
    "parse_url",
    "tls_context",
]

_LAZY = frozenset(
    {
        "DEFAULT_ATTEMPT_TIMEOUT",
        "MAX_RESPONSE_BYTES",
        "Deliverer",
        "load_client_modules",
        "make_client",
        "parse_url",
        "tls_context",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import deliverer

        return getattr(deliverer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
