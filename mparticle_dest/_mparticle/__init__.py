"""What mParticle's Events API accepts: its constants, batch and event models, and checks.

The leaf of the package: it imports nothing from the rest of ``mparticle_dest``, so the
fake server (``mparticle_dest.testing``) can judge the library's output with it without
sharing any of the code that produced that output.
"""

from typing import TYPE_CHECKING, Any

from .constants import (
    BULK_PATH,
    CUSTOM_EVENT_TYPES,
    ENVIRONMENTS,
    EVENT_TYPES,
    EVENTS_PATH,
    HISTORICAL_PATH,
    IDENTITY_TYPES,
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_BATCH_BYTES,
    MAX_BATCHES_PER_REQUEST,
    MAX_CUSTOM_ATTRIBUTES,
    MAX_EVENT_NAME_LENGTH,
    MAX_REQUEST_BYTES,
    MAX_USER_ATTRIBUTES,
    PODS,
)

if TYPE_CHECKING:
    from .models import (
        ApplicationInformation,
        ConsentState,
        DeviceInformation,
        check_data,
        check_model,
        required_fields,
    )

__all__ = [
    "BULK_PATH",
    "CUSTOM_EVENT_TYPES",
    "ENVIRONMENTS",
    "EVENTS_PATH",
    "EVENT_TYPES",
    "HISTORICAL_PATH",
    "IDENTITY_TYPES",
    "MAX_ATTRIBUTE_VALUE_LENGTH",
    "MAX_BATCHES_PER_REQUEST",
    "MAX_BATCH_BYTES",
    "MAX_CUSTOM_ATTRIBUTES",
    "MAX_EVENT_NAME_LENGTH",
    "MAX_REQUEST_BYTES",
    "MAX_USER_ATTRIBUTES",
    "PODS",
    "ApplicationInformation",
    "ConsentState",
    "DeviceInformation",
    "check_data",
    "check_model",
    "required_fields",
]

# The models (some forty attrs classes, a third of ``import mparticle_dest``) load on
# first use: a config or an event that needs checking, not the import.
_MODELS = frozenset(
    {
        "ApplicationInformation",
        "ConsentState",
        "DeviceInformation",
        "check_data",
        "check_model",
        "required_fields",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from . import models

        value = getattr(models, name)
        globals()[name] = value  # later look-ups are plain module attributes
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
