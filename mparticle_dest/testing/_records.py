"""What the fake server received: requests, batches, events, and counters.

Records are immutable once created; the server thread appends them under the
:class:`Recorder`'s lock and readers get fresh lists, so test code can read while
requests are still arriving.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from attrs import field, frozen

__all__ = [
    "RecordedBatch",
    "RecordedEvent",
    "RecordedHeaders",
    "RecordedRequest",
    "Recorder",
    "ServerStats",
]

_REDACTED = "<redacted>"


class RecordedHeaders(Mapping[str, str]):
    """Case-insensitive, read-only request headers.

    The ``Authorization`` value is readable (tests may check it) but never shown by
    ``repr``/``str``, so it cannot leak into assertion messages or logs.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = {name.lower(): value for name, value in items}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        shown = {k: (_REDACTED if k == "authorization" else v) for k, v in self._items.items()}
        return f"RecordedHeaders({shown!r})"


@frozen
class RecordedRequest:
    """One HTTP request the server received, whatever its outcome.

    Attributes:
        index: Recording order (0-based) among all recorded requests: when the answer
            was complete (a streamed ``huge_body``/``drip`` answer when its stream ended).
        method: The HTTP method.
        path: The request path (``/v2/bulkevents``, ...).
        headers: The request headers (``Authorization`` redacted in reprs).
        body: The raw request body.
        status: The status answered, or ``None`` when the connection was dropped or
            the response stalled.
        fault: The name of the injected fault (``"rate_limited"``, ``"drop"``, ...),
            ``"rate_limit"`` for the simulated limit, or ``None``.
        error: The error message answered with a 4xx, if any.
        response_bytes: Body bytes of the answer the server wrote (``None`` when no
            answer was sent); for ``huge_body`` and ``drip``, how far it got before
            the client closed the connection.
    """

    index: int
    method: str
    path: str
    headers: RecordedHeaders = field(repr=False)
    body: bytes = field(repr=False)
    status: int | None
    fault: str | None = None
    error: str | None = None
    response_bytes: int | None = None

    @property
    def accepted(self) -> bool:
        """Whether the request was answered with a 2xx."""
        return self.status is not None and 200 <= self.status < 300


@frozen
class RecordedEvent:
    """One event of an accepted batch.

    Attributes:
        event_type: The mParticle ``event_type``.
        data: The event's ``data`` object as received.
        batch: The batch holding the event.
        position: The event's position in its batch.
    """

    event_type: str
    data: Mapping[str, Any]
    batch: RecordedBatch = field(repr=False, eq=False)
    position: int

    @property
    def name(self) -> str | None:
        """``event_name`` (custom and commerce events) or ``screen_name`` (screen views)."""
        value = self.data.get("event_name", self.data.get("screen_name"))
        return value if isinstance(value, str) else None

    @property
    def custom_attributes(self) -> Mapping[str, Any]:
        """The event's ``custom_attributes`` (empty when absent)."""
        attrs = self.data.get("custom_attributes")
        return attrs if isinstance(attrs, Mapping) else {}

    @property
    def source_message_id(self) -> str | None:
        """The event's ``source_message_id`` (the walkerOS event id)."""
        value = self.data.get("source_message_id")
        return value if isinstance(value, str) else None

    @property
    def user_identities(self) -> Mapping[str, Any]:
        """The ``user_identities`` of the event's batch."""
        return self.batch.user_identities


@frozen
class RecordedBatch:
    """One accepted batch.

    Attributes:
        body: The batch object as received (parsed JSON).
        size: Its size in bytes as it appeared in the request body.
        request_index: The index of the request that carried it.
        position: Its position in that request (0 for ``/v2/events``).
        path: The path it was posted to.
    """

    body: Mapping[str, Any] = field(repr=False)
    size: int
    request_index: int
    position: int
    path: str

    @property
    def events(self) -> list[Mapping[str, Any]]:
        """The batch's raw event objects."""
        events = self.body.get("events")
        return list(events) if isinstance(events, list) else []

    @property
    def environment(self) -> str | None:
        """The batch ``environment``."""
        return self.body.get("environment")

    @property
    def user_identities(self) -> Mapping[str, Any]:
        """The batch ``user_identities`` (empty when absent)."""
        ids = self.body.get("user_identities")
        return ids if isinstance(ids, Mapping) else {}

    @property
    def user_attributes(self) -> Mapping[str, Any]:
        """The batch ``user_attributes`` (empty when absent)."""
        attrs = self.body.get("user_attributes")
        return attrs if isinstance(attrs, Mapping) else {}

    @property
    def source_request_id(self) -> str | None:
        """The batch ``source_request_id``."""
        return self.body.get("source_request_id")


@frozen
class ServerStats:
    """Counters kept in every mode, including ``record=False``.

    Attributes:
        requests: Requests received (all paths and outcomes).
        by_status: Requests per answered status (``0`` = no answer: dropped or stalled).
        faults: Injected faults per fault name.
        batches: Batches accepted and ingested.
        events: Events ingested.
        bytes: Body bytes of accepted requests.
        deduplicated_batches: Batches answered 202 but not ingested, because a batch
            with their ``source_request_id`` was ingested before (mParticle's
            de-duplication).
        deduplicated_events: Events of those batches.
        repeated_events: Events ingested whose ``source_message_id`` had been ingested
            before, in a batch with another ``source_request_id``: duplicates that
            de-duplication did not catch.
    """

    requests: int
    by_status: Mapping[int, int]
    faults: Mapping[str, int]
    batches: int
    events: int
    bytes: int
    deduplicated_batches: int = 0
    deduplicated_events: int = 0
    repeated_events: int = 0

    def to_json(self) -> dict[str, Any]:
        """Return the counters as a JSON-able dict (status keys as strings)."""
        return {
            "requests": self.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(sorted(self.faults.items())),
            "batches": self.batches,
            "events": self.events,
            "bytes": self.bytes,
            "deduplicated_batches": self.deduplicated_batches,
            "deduplicated_events": self.deduplicated_events,
            "repeated_events": self.repeated_events,
        }


class Recorder:
    """Thread-safe store of what the server received.

    With ``record=False`` only the counters are kept (and the ids that de-duplication
    and the repeat count need), so a long benchmark run does not grow memory much.
    """

    def __init__(self, *, record: bool = True, deduplicate: bool = True) -> None:
        self.record = record
        self.deduplicate = deduplicate
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._batches: list[RecordedBatch] = []
        self._events: list[RecordedEvent] = []
        self._request_count = 0
        self._by_status: Counter[int] = Counter()
        self._faults: Counter[str] = Counter()
        self._batch_count = 0
        self._event_count = 0
        self._bytes = 0
        self._ingested_srids: set[str] = set()
        self._ingested_message_ids: set[str] = set()
        self._dedup_batches = 0
        self._dedup_events = 0
        self._repeated_events = 0

    def _deduplicate(
        self, batches: Sequence[tuple[Mapping[str, Any], int]]
    ) -> list[tuple[Mapping[str, Any], int]]:
        """The batches to ingest: those whose ``source_request_id`` is new (lock held)."""
        ingested: list[tuple[Mapping[str, Any], int]] = []
        srids, message_ids = self._ingested_srids, self._ingested_message_ids
        for item in batches:
            batch = item[0]
            events = batch.get("events")
            events = events if isinstance(events, list) else []
            srid = batch.get("source_request_id")
            if isinstance(srid, str) and self.deduplicate:
                if srid in srids:
                    self._dedup_batches += 1
                    self._dedup_events += len(events)
                    continue
                srids.add(srid)
            for event in events:
                data = event.get("data") if isinstance(event, dict) else None
                mid = data.get("source_message_id") if isinstance(data, dict) else None
                if isinstance(mid, str):
                    if mid in message_ids:
                        self._repeated_events += 1
                    else:
                        message_ids.add(mid)
            ingested.append(item)
        return ingested

    def add_request(
        self,
        *,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        status: int | None,
        fault: str | None = None,
        error: str | None = None,
        batches: Sequence[tuple[Mapping[str, Any], int]] | None = None,
        response_bytes: int | None = None,
    ) -> list[tuple[Mapping[str, Any], int]]:
        """Record one request and, when it was accepted, its ``(batch, size)`` pairs.

        Returns:
            The accepted batches that were ingested (not de-duplicated).
        """
        with self._lock:
            index = self._request_count
            self._request_count += 1
            self._by_status[status or 0] += 1
            if fault is not None:
                self._faults[fault] += 1
            if batches is not None:
                batches = self._deduplicate(batches)
                self._bytes += len(body)
                self._batch_count += len(batches)
                for batch, _ in batches:
                    events = batch.get("events")
                    self._event_count += len(events) if isinstance(events, list) else 0
            if not self.record:
                return list(batches or ())
            self._requests.append(
                RecordedRequest(
                    index=index,
                    method=method,
                    path=path,
                    headers=RecordedHeaders(headers),
                    body=body,
                    status=status,
                    fault=fault,
                    error=error,
                    response_bytes=response_bytes,
                )
            )
            for position, (batch, size) in enumerate(batches or ()):
                recorded = RecordedBatch(
                    body=batch, size=size, request_index=index, position=position, path=path
                )
                self._batches.append(recorded)
                self._events.extend(
                    RecordedEvent(
                        event_type=str(event.get("event_type")),
                        data=event.get("data") or {},
                        batch=recorded,
                        position=i,
                    )
                    for i, event in enumerate(recorded.events)
                )
            return list(batches or ())

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every recorded request, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def batches(self) -> list[RecordedBatch]:
        """Every accepted batch, in arrival order (a copy)."""
        with self._lock:
            return list(self._batches)

    @property
    def events(self) -> list[RecordedEvent]:
        """Every accepted event, in arrival order (a copy)."""
        with self._lock:
            return list(self._events)

    @property
    def event_count(self) -> int:
        """Events accepted so far (counted in every mode)."""
        with self._lock:
            return self._event_count

    def stats(self) -> ServerStats:
        """Return a snapshot of the counters."""
        with self._lock:
            return ServerStats(
                requests=self._request_count,
                by_status=dict(self._by_status),
                faults=dict(self._faults),
                batches=self._batch_count,
                events=self._event_count,
                bytes=self._bytes,
                deduplicated_batches=self._dedup_batches,
                deduplicated_events=self._dedup_events,
                repeated_events=self._repeated_events,
            )

    def clear(self) -> None:
        """Forget every record and reset the counters."""
        with self._lock:
            self._requests.clear()
            self._batches.clear()
            self._events.clear()
            self._request_count = self._batch_count = self._event_count = self._bytes = 0
            self._by_status.clear()
            self._faults.clear()
            self._ingested_srids.clear()
            self._ingested_message_ids.clear()
            self._dedup_batches = self._dedup_events = self._repeated_events = 0
