"""Stage 5: one bulk request on the wire — the only place httpx and tenacity live.

``deliverer`` posts a request with retries and the status policy, ``retry`` holds the
retry budget and backoff, ``pacing`` paces requests in batches per second under
mParticle's quota.

``deliverer`` (httpx, tenacity: most of an import's cost) is imported on first use of
one of its names, so ``import mparticle_dest`` stays cheap; a destination needs it
only when it is built (URL check) and entered.
"""

from typing import TYPE_CHECKING, Any

from .pacing import Pacer, PacingPolicy, QuotaGate
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .deliverer import (
        DEFAULT_ATTEMPT_TIMEOUT,
        MAX_RESPONSE_BYTES,
        BatchResult,
        Deliverer,
        DeliveryCounters,
        Sender,
        make_client,
        parse_url,
    )

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "BatchResult",
    "Deliverer",
    "DeliveryCounters",
    "Pacer",
    "PacingPolicy",
    "QuotaGate",
    "RetryPolicy",
    "Sender",
    "make_client",
    "parse_url",
]

_LAZY = frozenset(
    {
        "DEFAULT_ATTEMPT_TIMEOUT",
        "MAX_RESPONSE_BYTES",
        "BatchResult",
        "Deliverer",
        "DeliveryCounters",
        "Sender",
        "make_client",
        "parse_url",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import deliverer

        return getattr(deliverer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
