"""Stage 5: one bulk request on the wire — the only place httpx and tenacity live.

``deliverer`` posts a request with retries and the status policy, ``retry`` holds the
retry budget and backoff, ``pacing`` paces requests in batches per second under mParticle's quota.
"""

from .deliverer import BatchResult, Deliverer, DeliveryCounters, Sender, make_client
from .pacing import Pacer, PacingPolicy, QuotaGate
from .retry import RetryPolicy

__all__ = [
    "BatchResult",
    "Deliverer",
    "DeliveryCounters",
    "Pacer",
    "PacingPolicy",
    "QuotaGate",
    "RetryPolicy",
    "Sender",
    "make_client",
]
