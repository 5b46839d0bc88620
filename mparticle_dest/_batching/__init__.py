"""Stage 4: pure, synchronous batching with exact byte accounting and an injected clock.

``accumulator`` groups built events into one open batch per batch key (one user ⇒ one
batch) and marks batches eligible; ``scheduler`` decides which eligible batches leave
in each bulk request and seals them then. Nothing here does I/O or awaits, so the
policy is tested by simulation.
"""

from .accumulator import Accumulator, BatchLimits, SealedBatch
from .scheduler import DEFAULT_LINGER, DEFAULT_MAX_DELAY, Scheduler

__all__ = [
    "DEFAULT_LINGER",
    "DEFAULT_MAX_DELAY",
    "Accumulator",
    "BatchLimits",
    "Scheduler",
    "SealedBatch",
]
