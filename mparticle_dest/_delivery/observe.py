"""The attempt observer: the deliverer's one hook for per-request telemetry.

The deliverer calls :meth:`AttemptObserver.start` right before each HTTP attempt
(after pacing, so the time measured is the request's) and ends what it returns once
the attempt has an answer or an error. Metrics and spans (``_telemetry``) implement
it; :data:`NO_OBSERVER` is the default, so telemetry that is off costs two empty
calls per HTTP attempt and nothing per event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol

from .._batching import SealedBatch

__all__ = ["NO_OBSERVER", "AttemptObserver", "AttemptWatch"]


class AttemptWatch(Protocol):
    """One HTTP attempt being observed."""

    def end(
        self,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        error: BaseException | None = None,
    ) -> None:
        """The attempt is over: an HTTP ``status`` and its ``headers``, or the ``error``
        raised instead (a transport error, or a cancellation)."""


class AttemptObserver(Protocol):
    """Told about every HTTP attempt of a deliverer."""

    def start(
        self, batches: Sequence[SealedBatch], body_size: int, resend_count: int
    ) -> AttemptWatch:
        """An attempt carrying ``batches`` in a ``body_size``-byte body starts;
        ``resend_count`` is 0 for a request's first attempt, n for its n-th retry."""
        ...


class _NoWatch:
    __slots__ = ()

    def end(
        self,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        error: BaseException | None = None,
    ) -> None:
        return None


class _NoObserver:
    __slots__ = ()

    def start(
        self, batches: Sequence[SealedBatch], body_size: int, resend_count: int
    ) -> AttemptWatch:
        return _NO_WATCH


_NO_WATCH: Final = _NoWatch()
NO_OBSERVER: Final[AttemptObserver] = _NoObserver()
"""The observer of a deliverer without telemetry: does nothing."""
