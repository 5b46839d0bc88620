"""mParticle Events API facts shared by the builder, the engine and the fake server.

Pods and hosts, paths, and the limits mParticle documents: 128 KB per batch, 256 KB
and 100 batches per request (KB = 1024 bytes), 256 characters per event name, 100
custom attributes per event, 4096 characters per attribute value, 100 user attributes.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

PODS: Final = ("us1", "us2", "eu1", "au1")
ENVIRONMENTS: Final = ("production", "development")

IdentityType = Literal[
    "customer_id",
    "email",
    "other",
    "other_id_2",
    "other_id_3",
    "other_id_4",
    "other_id_5",
    "other_id_6",
    "other_id_7",
    "other_id_8",
    "other_id_9",
    "other_id_10",
    "facebook",
    "twitter",
    "google",
    "microsoft",
    "yahoo",
    "mobile_number",
    "phone_number_2",
    "phone_number_3",
    "alias",
    "facebook_custom_audience_id",
]
"""An mParticle identity type (the keys of ``user_identities``)."""
IDENTITY_TYPES: Final = get_args(IdentityType)

EVENT_TYPES: Final = (
    "custom_event",
    "screen_view",
    "commerce_event",
    "session_start",
    "session_end",
    "user_attribute_change",
    "user_identity_change",
    "opt_out",
    "application_state_transition",
    "breadcrumb",
    "crash_report",
    "network_performance",
    "profile",
    "push_message",
    "push_registration",
)

CustomEventType = Literal[
    "navigation",
    "location",
    "search",
    "transaction",
    "user_content",
    "user_preference",
    "social",
    "other",
    "media",
    "attribution",
]
"""A ``custom_event_type`` (the official list plus ``media`` and ``attribution``)."""
CUSTOM_EVENT_TYPES: Final = get_args(CustomEventType)

KB: Final = 1024
MAX_BATCH_BYTES: Final = 128 * KB
MAX_REQUEST_BYTES: Final = 256 * KB
MAX_BATCHES_PER_REQUEST: Final = 100
MAX_EVENT_NAME_LENGTH: Final = 256
MAX_CUSTOM_ATTRIBUTES: Final = 100
MAX_ATTRIBUTE_VALUE_LENGTH: Final = 4096
MAX_USER_ATTRIBUTES: Final = 100

EVENTS_PATH: Final = "/v2/events"
BULK_PATH: Final = "/v2/bulkevents"
HISTORICAL_PATH: Final = "/v2/bulkevents/historical"
