"""A fake mParticle Events API on loopback, for testing code that sends to mParticle.

``FakeMparticle`` is a real HTTP server (standard library, one thread per
connection) bound to ``127.0.0.1`` on an ephemeral port. It checks Basic auth,
validates batches against its own schema of the Events API, enforces mParticle's
size limits, records what it accepted and injects faults on request. The pytest
fixture ``mparticle_server`` (registered through the ``pytest11`` entry point)
yields a started one. See ``docs/testing.md``.
"""

from ._faults import Fault, FaultKind, FaultPlan
from ._records import (
    RecordedBatch,
    RecordedEvent,
    RecordedHeaders,
    RecordedRequest,
    ServerStats,
)
from ._schema import validate_batch, validate_event
from ._server import STATS_PATH, BatchObserver, BatchPredicate, FakeMparticle

__all__ = [
    "STATS_PATH",
    "BatchObserver",
    "BatchPredicate",
    "FakeMparticle",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "RecordedBatch",
    "RecordedEvent",
    "RecordedHeaders",
    "RecordedRequest",
    "ServerStats",
    "validate_batch",
    "validate_event",
]
