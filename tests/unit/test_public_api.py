"""The curated top-level API: sorted, complete, and shown as ``mparticle_dest.X``."""

from __future__ import annotations

import importlib
import inspect

import mparticle_dest
import mparticle_dest.mapping
import mparticle_dest.testing

# Pinned on purpose: adding or removing a public name must be a deliberate change here.
EXPECTED = {
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
}


def test_all_is_sorted_and_pinned() -> None:
    assert mparticle_dest.__all__ == sorted(mparticle_dest.__all__)
    assert set(mparticle_dest.__all__) == EXPECTED


def test_public_classes_present_as_top_level_names() -> None:
    for name in mparticle_dest.__all__:
        obj = getattr(mparticle_dest, name)
        if inspect.isclass(obj):
            assert obj.__module__ == "mparticle_dest", name


def test_errors_share_one_root() -> None:
    for name in mparticle_dest.__all__:
        obj = getattr(mparticle_dest, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, mparticle_dest.MparticleDestError), name


def test_public_submodules_declare_complete_all() -> None:
    for module in (mparticle_dest.mapping, mparticle_dest.testing):
        assert len(set(module.__all__)) == len(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_version_is_the_single_source() -> None:
    version_module = importlib.import_module("mparticle_dest._version")
    assert mparticle_dest.__version__ == version_module.__version__


def test_destination_options_are_exactly_destinations_keyword_options() -> None:
    # SyncDestination(**options: Unpack[DestinationOptions]) forwards them to Destination:
    # a key missing here would be untyped there, an extra one a TypeError at run time.
    parameters = inspect.signature(mparticle_dest.Destination).parameters
    keywords = {n for n, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    assert set(mparticle_dest.DestinationOptions.__annotations__) == keywords
    assert mparticle_dest.DestinationOptions.__total__ is False
