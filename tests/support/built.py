"""A stand-in for ``_payload.BuiltEvent``: the fields the accumulator reads.

Accumulator and scheduler tests build events by hand (a key, the JSON bytes, the ids)
instead of running the builder, so one user's batch is exactly what the test says.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from mparticle_dest._payload.builder import BatchKey
from mparticle_dest._wire import compact_key


@frozen
class Hint:
    """A rule-level ``batch`` override (milliseconds), like ``_config.BatchOptions``."""

    size: int | None = None
    age: float | None = None
    wait: float | None = None


@frozen
class Built:
    """The fields of ``_payload.BuiltEvent`` the accumulator reads."""

    key: BatchKey
    body: bytes
    event_id: str
    source_request_id: str
    user_attributes: dict[str, Any] | None = None
    batch: Hint | None = None

    @property
    def compact_key(self) -> bytes:
        """What ``_payload.BuiltEvent`` carries: the key as the accumulator's tables hold it."""
        return compact_key(self.key)
