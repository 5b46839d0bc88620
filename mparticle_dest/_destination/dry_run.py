"""The dry-run sender: what ``Destination(send=False)`` puts where the HTTP deliverer goes.

Everything before the wire runs as in a real run — validation, mapping, per-user
batching, packing into requests, backpressure, the counters — so a staging service or
a test sees the same receipts and stats shape it would in production. Each batch then
settles as ``skipped`` with reason ``"dry_run"`` instead of being posted: no client is
opened and no request is made (``stats.requests`` stays 0).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from .._batching import SealedBatch
from .._delivery import BatchResult, DeliveryCounters
from .._receipt import resolve_outcome
from .stats import Counters

__all__ = ["DRY_RUN", "DryRunSender"]

logger = logging.getLogger("mparticle_dest")

DRY_RUN = "dry_run"
"""The ``skipped`` reason of every event of a dry run."""


class DryRunSender:
    """Settles every batch as skipped (``dry_run``) and, if asked, shows its body.

    Counted under ``stats.skipped["dry_run"]``, so ``stats`` keeps its invariant:
    every pushed event is counted once, and a dry-run event is neither delivered
    nor failed.

    Args:
        counters: The destination's counters.
        on_batch: Receives each batch's JSON body (the bytes a real run would post
            inside the bulk request); its exceptions are logged and contained.
    """

    __slots__ = ("_on_batch", "_totals", "counters")

    def __init__(
        self, counters: Counters, on_batch: Callable[[bytes], object] | None = None
    ) -> None:
        self._totals = counters
        self._on_batch = on_batch
        self.counters = DeliveryCounters()  # no request is ever made: all zero

    async def send(self, batches: Sequence[SealedBatch]) -> list[BatchResult]:
        """Resolve ``batches`` as skipped; the engine then only frees their room."""
        skipped = self._totals.skipped
        for batch in batches:
            if resolve_outcome(batch.outcome, "skipped", reason=DRY_RUN):
                skipped[DRY_RUN] = skipped.get(DRY_RUN, 0) + batch.event_count
            if self._on_batch is not None:
                try:
                    self._on_batch(batch.body)
                except Exception:
                    logger.exception("mparticle_dest: the dry-run batch callback raised (ignored)")
        return [BatchResult(batch, None, 0) for batch in batches]
