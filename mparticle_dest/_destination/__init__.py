"""The runtime that drives the stages: ``Destination``, its engine, options and stats.

``destination`` is the lifecycle and the ``push`` hot path, ``engine`` the background
flusher and senders, ``shelter`` runs the close to its end whatever interrupts its
caller, ``sync`` the threaded facade for WSGI and scripts.
"""

from .destination import CloseReport, Destination, take_decoded_events
from .options import (
    BeforeSend,
    DeliveryOptions,
    DestinationOptions,
    FailedBatch,
    FullPolicy,
    QuotaGate,
)
from .stats import Stats
from .sync import SyncDestination, SyncReceipt

__all__ = [
    "BeforeSend",
    "CloseReport",
    "DeliveryOptions",
    "Destination",
    "DestinationOptions",
    "FailedBatch",
    "FullPolicy",
    "QuotaGate",
    "Stats",
    "SyncDestination",
    "SyncReceipt",
    "take_decoded_events",
]
