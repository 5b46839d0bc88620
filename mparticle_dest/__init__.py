"""Deliver walkerOS-style events from async Python services to mParticle's Events API.

The public surface is this package's ``__all__`` plus the submodules
:mod:`mparticle_dest.mapping` (the walkerOS mapping language) and
:mod:`mparticle_dest.testing` (a fake Events API on loopback).
"""

from ._config import BatchOptions, DestinationConfig, LimitPolicy, Rule, RuleSettings, Settings
from ._delivery import PacingPolicy, QuotaGate, RetryPolicy
from ._destination import (
    CloseReport,
    DeliveryOptions,
    Destination,
    DestinationOptions,
    FailedBatch,
    FullPolicy,
    Stats,
    SyncDestination,
    SyncReceipt,
)
from ._event import WalkerEvent
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
from ._receipt import Outcome, Receipt
from ._secret import Secret
from ._telemetry import Telemetry
from ._version import __version__

__all__ = [
    "AuthenticationError",
    "BatchOptions",
    "BufferFullError",
    "CloseReport",
    "ConfigError",
    "DeliveryError",
    "DeliveryOptions",
    "Destination",
    "DestinationClosedError",
    "DestinationConfig",
    "DestinationOptions",
    "FailedBatch",
    "FullPolicy",
    "InvalidEventError",
    "LimitExceededError",
    "LimitPolicy",
    "MparticleDestError",
    "Outcome",
    "PacingPolicy",
    "QuotaGate",
    "Receipt",
    "RejectedError",
    "RetryBudgetExhaustedError",
    "RetryPolicy",
    "Rule",
    "RuleSettings",
    "Secret",
    "Settings",
    "Stats",
    "SyncDestination",
    "SyncReceipt",
    "Telemetry",
    "WalkerEvent",
    "__version__",
]

# Show public classes as ``mparticle_dest.X`` in reprs and docs, as httpx does.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type):
        _obj.__module__ = __name__
del _name, _obj
