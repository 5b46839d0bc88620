"""What the builder returns for one event: :class:`BuiltEvent` or :class:`Skipped`."""

from __future__ import annotations

from typing import Any, NamedTuple

from .._config import BatchOptions
from .._wire import BatchKey, decode_compact_key

__all__ = ["BuiltEvent", "Skipped"]


class _BuiltFields(NamedTuple):
    compact_key: bytes
    body: bytes
    event_id: str
    event_name: str
    event_type: str
    source_request_id: str
    user_attributes: dict[str, Any] | None
    batch: BatchOptions | None
    timestamp_ms: int
    mapping_key: str | None = None
    truncated: tuple[str, ...] = ()


class BuiltEvent(_BuiltFields):
    """One mapped event, encoded once, ready for the accumulator.

    An immutable named tuple (built in C on every push, read by attribute).

    Attributes:
        compact_key: the batch key as :func:`~mparticle_dest._wire.compact_key` bytes
            (events with equal keys share a batch; the accumulator's tables are keyed by
            them). Only these bytes are kept: the generated build writes them around the
            identities' JSON, without making a :class:`BatchKey` per event.
        body: the event's compact JSON ``{"event_type":...,"data":{...}}``.
        event_id: the walkerOS event id (also the event's ``source_message_id``).
        event_name: the name mParticle receives (rule name or event name).
        event_type: the mParticle event type.
        source_request_id: the batch id this event brings when it opens a batch: the
            mapped ``sourceRequestId`` (then also in ``key``), else the event id.
        user_attributes: this event's resolved user attributes, or ``None``; a batch
            merges them last-write-wins.
        batch: the matched rule's ``batch`` override, or ``None``.
        timestamp_ms: ``timestamp_unixtime_ms`` of the event.
        mapping_key: the ``"entity action"`` key of the matched rule, if any.
        truncated: the limits that were applied by truncation (names as in
            ``LimitExceededError.limit``); empty when nothing was cut.
    """

    __slots__ = ()

    @property
    def key(self) -> BatchKey:
        """The batch key, read back from :attr:`compact_key` (a new object per call)."""
        return decode_compact_key(self.compact_key)

    def __repr__(self) -> str:
        return (
            f"<BuiltEvent {self.event_type} {self.event_name!r} id={self.event_id!r}"
            f" bytes={len(self.body)}>"
        )


class Skipped:
    """An event the mapping decided not to send.

    ``reason`` is ``"consent"`` (a required consent group is not granted),
    ``"ignore"`` (the rule says ``ignore``) or ``"silent"`` (the rule is ``silent``:
    mapped, then not sent, as walkerOS does).
    """

    __slots__ = ("event_id", "event_name", "mapping_key", "reason")

    def __init__(
        self, reason: str, event_id: str, event_name: str, mapping_key: str | None = None
    ) -> None:
        self.reason = reason
        self.event_id = event_id
        self.event_name = event_name
        self.mapping_key = mapping_key

    def __repr__(self) -> str:
        return f"<Skipped {self.reason} {self.event_name!r} id={self.event_id!r}>"
