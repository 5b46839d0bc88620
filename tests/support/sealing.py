"""Sealing an accumulator's batches directly, as a scheduler would (unit tests only)."""

from __future__ import annotations

from mparticle_dest._batching import Accumulator, SealedBatch


def seal_eligible(acc: Accumulator) -> list[SealedBatch]:
    """Seal every eligible open batch, in the order they became eligible."""
    out = []
    for key in list(acc.eligible):
        del acc.eligible[key]
        if acc.batch_opened(key) is not None:
            out.append(acc.seal(key))
    return out


def seal_all(acc: Accumulator) -> list[SealedBatch]:
    """Seal every open batch, in the order they were opened."""
    return [acc.seal(key) for key in list(acc.open_keys())]
