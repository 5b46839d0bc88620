"""The library's exceptions.

Every error raised by mparticle_dest derives from :class:`MparticleDestError`::

    MparticleDestError
    ├── ConfigError (ValueError)        bad config; every problem with its key path
    ├── InvalidEventError (ValueError)  bad walkerOS event, raised by push(); names the field
    │   └── LimitExceededError          an mParticle limit (name length, 128 KB batch, ...)
    ├── BufferFullError                 push() under the "raise" policy with no room
    ├── DestinationClosedError          push()/flush() on a destination that is not open
    └── DeliveryError                   final outcome of a delivery that did not succeed
        ├── AuthenticationError         401/403: bad or missing credentials (never retried)
        ├── RejectedError               400: mParticle rejected the batch (its message kept)
        └── RetryBudgetExhaustedError   5xx/network errors outlasted the retry budget

``push`` raises only for the caller's mistakes (bad event, closed destination, full
buffer under the ``raise`` policy). Delivery failures are reported as values on the
event's receipt and to the ``on_error`` hook, never raised into the request path.
No exception message ever contains the API secret or the Authorization header.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AuthenticationError",
    "BufferFullError",
    "ConfigError",
    "DeliveryError",
    "DestinationClosedError",
    "InvalidEventError",
    "LimitExceededError",
    "MparticleDestError",
    "RejectedError",
    "RetryBudgetExhaustedError",
]


class MparticleDestError(Exception):
    """Base class of every error raised by mparticle_dest."""


class ConfigError(MparticleDestError, ValueError):
    """The destination config is invalid.

    ``problems`` holds one line per problem, each starting with the key path,
    e.g. ``settings.pod: expected one of us1, us2, eu1, au1, got 'us3'``.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        head = "invalid destination config" + (f" ({count} problems)" if count > 1 else "")
        super().__init__(head + ":\n  " + "\n  ".join(self.problems))


class InvalidEventError(MparticleDestError, ValueError):
    """An event was rejected by ``push`` before it was buffered.

    ``field`` names the offending field (dotted path) when there is one.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class LimitExceededError(InvalidEventError):
    """An event breaks an mParticle limit that the configured policy rejects.

    ``limit`` names the limit (``event_name_length``, ``custom_attributes_count``,
    ``attribute_value_length``, ``user_attributes_count``, ``batch_bytes``).
    """

    def __init__(self, message: str, *, limit: str, field: str | None = None) -> None:
        self.limit = limit
        super().__init__(message, field=field)


class BufferFullError(MparticleDestError):
    """The buffered-event cap is reached and the full-buffer policy is ``raise``."""


class DestinationClosedError(MparticleDestError):
    """The destination is not open (not entered yet, closing, or closed)."""


class DeliveryError(MparticleDestError):
    """A delivery did not succeed; the final outcome of the affected events.

    ``retriable`` tells whether the cause is one that a later attempt could fix.
    ``status`` is the last HTTP status seen, if any.
    """

    retriable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AuthenticationError(DeliveryError):
    """mParticle answered 401 or 403: the API key or secret is missing or wrong."""


class RejectedError(DeliveryError):
    """mParticle answered 400 for a batch; ``server_message`` is its error text."""

    def __init__(self, message: str, *, status: int | None = 400, server_message: str = "") -> None:
        self.server_message = server_message
        super().__init__(message, status=status)


class RetryBudgetExhaustedError(DeliveryError):
    """Retriable errors (5xx, timeouts, connection errors) outlasted the budget.

    A 429 is throttling, not an error: a destination puts throttled batches back in line
    and never fails them for it while open (a ``Deliverer`` used on its own retries them).
    """

    retriable = True
