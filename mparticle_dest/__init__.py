"""Deliver walkerOS-style events from async Python services to mParticle's Events API."""

from ._exceptions import (
    AuthenticationError,
    BufferFullError,
    ConfigError,
    DeliveryError,
    DestinationClosedError,
    InvalidEventError,
    LimitExceededError,
    MparticleDestError,
    RejectedError,
    RetryBudgetExhaustedError,
)
from ._version import __version__

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
    "__version__",
]

for _name in __all__:
    _obj = globals()[_name]
    if hasattr(_obj, "__module__"):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):  # pragma: no cover - builtins/immutable
            pass
del _name, _obj
