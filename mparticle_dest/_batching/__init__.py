"""Stage 4: pure, synchronous batching with exact byte accounting and an injected clock.

``accumulator`` groups built events into one open batch per batch key (one user ⇒ one
batch) and seals batches; ``packer`` packs sealed batches into bulk requests. Nothing
here does I/O or awaits, so the policy is tested by simulation.
"""

from .accumulator import Accumulator, BatchLimits, SealedBatch
from .packer import Packer

__all__ = ["Accumulator", "BatchLimits", "Packer", "SealedBatch"]
