"""The ``source_request_id``s recorded last, so that no two batches share one.

mParticle de-duplicates batches on their ``source_request_id``: a batch whose id it has
seen is dropped. A batch takes its first event's id (or the mapped one) as a *base*,
suffixed ``-2``, ``-3``... when a recent batch used it already. The memory is bounded: an
id is remembered until ``capacity`` later ids were recorded, so a long-lived process
stays small.

The ids are kept as their hashes in an open-addressing table (an ``array`` of 8-byte
integers, linear probing, at most half full) and a ring in recording order, both
allocated at their full size at once (24 bytes per id remembered: 1.5 MB for 65,536):
no object per id, where a ``dict`` of hashes grew to about 80 bytes per id (the entry,
the table's slack after its churn, the ``int``). Two ids with one hash only make a
batch take a suffix it did not need.
"""

from __future__ import annotations

from array import array

__all__ = ["RecentIds"]


class RecentIds:
    """The last ``capacity`` ids recorded, and the next suffix to try for reused bases."""

    def __init__(self, capacity: int) -> None:
        size = 1 << (2 * capacity - 1).bit_length()  # a power of two, at least 2× capacity
        self._table = array("q", bytes(8 * size))  # hashes; 0: a free cell
        self._mask = size - 1
        self._ring = array("q", bytes(8 * capacity))  # the same, in recording order; 0: none
        self._recorded = 0
        self._next = 0  # the ring's next entry: the oldest once the ring is full
        # hash of a base that was taken with a suffix -> the next suffix to try (rare: a
        # reused event id or a mapped id shared by events); forgotten with the base.
        self._suffixes: dict[int, int] = {}

    def __len__(self) -> int:
        """Ids remembered."""
        return min(self._recorded, len(self._ring))

    def __contains__(self, srid: str) -> bool:
        return self._find(hash(srid) or 1) >= 0

    def choose(self, base: str) -> str:
        """``base``, or the first of ``base-2``, ``base-3``... not recorded (nothing is
        recorded: :meth:`record` does, once the batch is opened)."""
        h = hash(base) or 1
        if self._find(h) < 0:
            return base
        suffix = self._suffixes.get(h, 2)
        while True:
            candidate = f"{base}-{suffix}"
            if self._find(hash(candidate) or 1) < 0:
                return candidate
            suffix += 1

    def record(self, base: str, srid: str) -> None:
        """Record ``srid`` (what :meth:`choose` gave for ``base``); forget the oldest id
        when ``capacity`` ids are remembered."""
        if srid != base:  # a suffixed id: the base's next suffix
            self._suffixes[hash(base) or 1] = int(srid.rpartition("-")[2]) + 1
        ring, at = self._ring, self._next
        old = ring[at]
        if old:  # the ring is full: its oldest id is forgotten first
            self._remove(old)
            if self._suffixes:
                self._suffixes.pop(old, None)
        new = ring[at] = hash(srid) or 1
        self._next = at + 1 if at + 1 < len(ring) else 0
        self._recorded += 1
        table, mask = self._table, self._mask
        i = new & mask
        while table[i]:
            i = (i + 1) & mask
        table[i] = new

    def _find(self, h: int) -> int:
        """The cell holding ``h`` (``-1``: not recorded)."""
        table, mask = self._table, self._mask
        i = h & mask
        while True:
            v = table[i]
            if v == h:
                return i
            if not v:
                return -1
            i = (i + 1) & mask

    def _remove(self, h: int) -> None:
        """Free the cell of ``h``, moving back the entries after it that it kept from
        their place (backward-shift deletion: no tombstones, so lookups stay short)."""
        table, mask = self._table, self._mask
        i = self._find(h)
        j = i
        while True:
            j = (j + 1) & mask
            v = table[j]
            if not v:
                break
            home = v & mask
            # v stays unless its home is cyclically outside (i, j]: then the free cell
            # at i is on its probe path and it moves there.
            if (home <= i < j) or (i < j < home) or (j < home <= i):
                table[i] = v
                i = j
        table[i] = 0
