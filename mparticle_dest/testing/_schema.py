"""The fake server's own schema of an Events API batch, as plain validation code.

Written from mParticle's Events API documentation. Where the official OpenAPI
file is known to be wrong this follows the documented behaviour: events are checked
by their ``event_type``; custom attribute values are strings, numbers or booleans;
user attribute values are those or lists of strings; identity values are strings or
numbers; ``custom_event_type`` also allows ``media``
and ``attribution``; product/promotion actions require only ``action``; consent is
``gdpr`` (purpose → consent) plus ``ccpa.data_sale_opt_out``.

It is deliberately a little *stricter* than the official file, so a payload that
passes here also passes there (a test keeps the two in agreement):

- unknown fields are rejected everywhere (typos are bugs), including inside event
  ``data`` and products;
- ``data`` is required on every event, ``event_name``/``screen_name`` must be non-empty;
- a ``commerce_event`` carries a ``product_action``, ``promotion_action`` or
  ``product_impressions``;
- ``environment`` is ``production`` or ``development``;
- mParticle's documented limits are errors here (mParticle itself truncates or drops
  silently): event name ≤ 256 characters, ≤ 100 custom attributes per event,
  attribute values ≤ 4096 characters, ≤ 100 user attributes per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._mparticle import (
    CUSTOM_EVENT_TYPES,
    IDENTITY_TYPES,
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_CUSTOM_ATTRIBUTES,
    MAX_EVENT_NAME_LENGTH,
    MAX_USER_ATTRIBUTES,
)

__all__ = ["check_historical", "validate_batch", "validate_event"]

#: ``check(value, path, problems)`` appends ``"<path>: <message>"`` lines to ``problems``.
Check = Callable[[Any, str, list[str]], None]

# -- combinators --------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float))  # bool is an int


def _is_str_or_num(v: Any) -> bool:
    return isinstance(v, str) or _is_num(v)


def _typed(test: Callable[[Any], bool], expected: str) -> Check:
    def check(value: Any, path: str, problems: list[str]) -> None:
        if not test(value):
            problems.append(f"{path}: expected {expected}, got {_kind(value)}")

    return check


STR = _typed(_is_str, "a string")
INT = _typed(_is_int, "an integer")
NUM = _typed(_is_num, "a number")
BOOL = _typed(_is_bool, "a boolean")
STR_OR_NUM = _typed(_is_str_or_num, "a string or a number")


def _name(value: Any, path: str, problems: list[str]) -> None:
    """An event or screen name: a non-empty string within mParticle's length limit."""
    if not isinstance(value, str) or not value:
        problems.append(f"{path}: expected a non-empty string, got {_kind(value)}")
    elif len(value) > MAX_EVENT_NAME_LENGTH:
        problems.append(f"{path}: {len(value)} characters, over {MAX_EVENT_NAME_LENGTH}")


def enum(*allowed: str) -> Check:
    """A string among ``allowed``."""
    choices = frozenset(allowed)
    listed = ", ".join(allowed)

    def check(value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, str) or value not in choices:
            problems.append(f"{path}: expected one of {listed}, got {value!r}")

    return check


def array(item: Check) -> Check:
    """A JSON array whose every element passes ``item``."""

    def check(value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, list):
            problems.append(f"{path}: expected an array, got {_kind(value)}")
            return
        for i, element in enumerate(value):
            item(element, f"{path}[{i}]", problems)

    return check


def map_of(item: Check, *, max_keys: int | None = None) -> Check:
    """A JSON object with free keys whose every value passes ``item``."""

    def check(value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {_kind(value)}")
            return
        if max_keys is not None and len(value) > max_keys:
            problems.append(f"{path}: {len(value)} entries, over {max_keys}")
        for key, element in value.items():
            item(element, f"{path}.{key}", problems)

    return check


def obj(props: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A JSON object with exactly the known ``props`` (unknown keys are errors)."""
    missing_required = tuple(required)

    def check(value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected an object, got {_kind(value)}")
            return
        problems.extend(
            f"{path}.{key}: required field is missing"
            for key in missing_required
            if key not in value
        )
        for key, element in value.items():
            prop = props.get(key)
            if prop is None:
                problems.append(f"{path}.{key}: unknown field")
            else:
                prop(element, f"{path}.{key}", problems)

    return check


# -- shared pieces --------------------------------------------------------------------


def _attribute_value(value: Any, path: str, problems: list[str]) -> None:
    if not _is_scalar(value):
        problems.append(f"{path}: expected a string, number or boolean, got {_kind(value)}")
    elif isinstance(value, str) and len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
        problems.append(f"{path}: {len(value)} characters, over {MAX_ATTRIBUTE_VALUE_LENGTH}")


def _user_attribute_value(value: Any, path: str, problems: list[str]) -> None:
    if isinstance(value, list):
        for i, element in enumerate(value):
            if not isinstance(element, str):
                problems.append(f"{path}[{i}]: expected a string, got {_kind(element)}")
    elif not _is_scalar(value):
        problems.append(
            f"{path}: expected a string, number, boolean or list of strings, got {_kind(value)}"
        )


CUSTOM_ATTRIBUTES = map_of(_attribute_value, max_keys=MAX_CUSTOM_ATTRIBUTES)
CUSTOM_FLAGS = map_of(STR)

PRODUCT = obj(
    {
        "id": STR,
        "name": STR,
        "brand": STR,
        "category": STR,
        "variant": STR,
        "position": INT,
        "price": NUM,
        "quantity": NUM,
        "coupon_code": STR,
        "added_to_cart_time_ms": INT,
        "total_product_amount": NUM,
        "custom_attributes": CUSTOM_ATTRIBUTES,
    }
)
PRODUCT_ACTIONS = (
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "checkout_option",
    "click",
    "view_detail",
    "purchase",
    "refund",
    "add_to_wishlist",
    "remove_from_wish_list",
)
PRODUCT_ACTION = obj(
    {
        "action": enum(*PRODUCT_ACTIONS),
        "checkout_step": INT,
        "checkout_options": STR,
        "product_action_list": STR,
        "product_list_source": STR,
        "transaction_id": STR,
        "affiliation": STR,
        "total_amount": NUM,
        "tax_amount": NUM,
        "shipping_amount": NUM,
        "coupon_code": STR,
        "products": array(PRODUCT),
    },
    required=("action",),
)
PROMOTION = obj({"id": STR, "name": STR, "creative": STR, "position": STR})
PROMOTION_ACTION = obj(
    {"action": enum("view", "click"), "promotions": array(PROMOTION)}, required=("action",)
)
PRODUCT_IMPRESSION = obj({"product_impression_list": STR, "products": array(PRODUCT)})
SHOPPING_CART = obj({"products": array(PRODUCT)})
COMMERCE_EVENT_TYPES = (
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "checkout_option",
    "click",
    "view_detail",
    "purchase",
    "refund",
    "promotion_view",
    "promotion_click",
    "add_to_wishlist",
    "remove_from_wishlist",
    "impression",
)

ORIENTATION = enum(
    "portrait",
    "portrait_upside_down",
    "landscape",
    "LandscapeLeft",
    "LandscapeRight",
    "FaceUp",
    "FaceDown",
    "Square",
)
DEVICE_CURRENT_STATE = obj(
    {
        "time_since_start_ms": INT,
        "battery_level": NUM,
        "data_connection_type": STR,
        "data_connection_type_detail": STR,
        "gps_state": BOOL,
        "total_system_memory_usage_bytes": INT,
        "disk_space_free_bytes": INT,
        "external_disk_space_free_bytes": INT,
        "cpu": STR,
        "system_memory_available_bytes": NUM,
        "system_memory_low": BOOL,
        "system_memory_threshold_bytes": NUM,
        "application_memory_available_bytes": NUM,
        "application_memory_max_bytes": NUM,
        "application_memory_total_bytes": NUM,
        "device_orientation": ORIENTATION,
        "status_bar_orientation": ORIENTATION,
    }
)
GEO_LOCATION = obj(
    {"latitude": NUM, "longitude": NUM, "accuracy": NUM}, required=("latitude", "longitude")
)

#: Fields every event's ``data`` may carry.
COMMON_DATA: dict[str, Check] = {
    "timestamp_unixtime_ms": INT,
    "event_id": INT,
    "source_message_id": STR,
    "session_id": INT,
    "session_uuid": STR,
    "session_start_unixtime_ms": INT,
    "event_start_unixtime_ms": INT,
    "custom_attributes": CUSTOM_ATTRIBUTES,
    "location": GEO_LOCATION,
    "device_current_state": DEVICE_CURRENT_STATE,
    "is_goal_defined": BOOL,
    "lifetime_value_change": BOOL,
    "lifetime_value_attribute_name": STR,
    "data_connection_type": STR,
    "event_num": INT,
    "view_controller": STR,
    "is_main_thread": BOOL,
    "canonical_name": STR,
    "event_system_notification_info": obj({"type": enum("gdpr_change")}, required=("type",)),
}


def _data(props: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    return obj({**COMMON_DATA, **props}, required)


USER_IDENTITY = obj(
    {
        "identity_type": enum(*IDENTITY_TYPES),
        "identity": STR,
        "timestamp_unixtime_ms": INT,
        "created_this_batch": BOOL,
    },
    required=("identity_type", "identity", "timestamp_unixtime_ms", "created_this_batch"),
)
ANY_OBJECT = map_of(lambda value, path, problems: None)

_commerce_data = _data(
    {
        "product_action": PRODUCT_ACTION,
        "promotion_action": PROMOTION_ACTION,
        "product_impressions": array(PRODUCT_IMPRESSION),
        "shopping_cart": SHOPPING_CART,
        "currency_code": STR,
        "screen_name": STR,
        "is_non_interactive": BOOL,
        "event_name": STR,
        "custom_event_type": enum(*COMMERCE_EVENT_TYPES),
        "custom_flags": CUSTOM_FLAGS,
    }
)


def _commerce(value: Any, path: str, problems: list[str]) -> None:
    _commerce_data(value, path, problems)
    if isinstance(value, dict) and not (
        "product_action" in value or "promotion_action" in value or "product_impressions" in value
    ):
        problems.append(
            f"{path}: a commerce event needs product_action, promotion_action "
            "or product_impressions"
        )


#: ``event_type`` → the check of the event's ``data``.
EVENT_DATA: dict[str, Check] = {
    "custom_event": _data(
        {
            "event_name": _name,
            "custom_event_type": enum(*CUSTOM_EVENT_TYPES),
            "custom_flags": CUSTOM_FLAGS,
        },
        required=("event_name", "custom_event_type"),
    ),
    "screen_view": _data(
        {"screen_name": _name, "activity_type": STR, "custom_flags": CUSTOM_FLAGS},
        required=("screen_name",),
    ),
    "commerce_event": _commerce,
    "session_start": _data({"session_id": INT}, required=("session_id",)),
    "session_end": _data({"session_duration_ms": INT}, required=("session_duration_ms",)),
    "user_attribute_change": _data(
        {
            "user_attribute_name": STR,
            "new": ANY_OBJECT,
            "old": ANY_OBJECT,
            "deleted": BOOL,
            "is_new_attribute": BOOL,
        },
        required=("user_attribute_name", "new", "old", "deleted", "is_new_attribute"),
    ),
    "user_identity_change": _data(
        {"new": USER_IDENTITY, "old": USER_IDENTITY}, required=("new", "old")
    ),
    "opt_out": _data({"is_opted_out": BOOL}, required=("is_opted_out",)),
    "application_state_transition": _data(
        {
            "successfully_closed": BOOL,
            "is_first_run": BOOL,
            "is_upgrade": BOOL,
            "push_notification_payload": STR,
            "launch_referral": STR,
            "application_transition_type": enum(
                "application_initialized",
                "application_exit",
                "application_background",
                "application_foreground",
            ),
        },
        required=("is_first_run", "is_upgrade", "application_transition_type"),
    ),
    "breadcrumb": _data({"session_number": INT, "label": STR}, required=("label",)),
    "crash_report": _data(
        {
            "breadcrumbs": array(STR),
            "class_name": STR,
            "severity": STR,
            "message": STR,
            "stack_trace": STR,
            "exception_handled": BOOL,
            "topmost_context": STR,
            "pl_crash_report_file_base64": STR,
            "ios_image_base_address": INT,
            "ios_image_size": INT,
            "session_number": INT,
        }
    ),
    "network_performance": _data(
        {
            "http_verb": STR,
            "url": STR,
            "time_elapsed": INT,
            "bytes_in": INT,
            "bytes_out": INT,
            "response_code": INT,
            "data": STR,
        },
        required=("url", "response_code"),
    ),
    "profile": _data(
        {
            "previous_mpid": INT,
            "current_mpid": INT,
            "profile_event_type": enum("signup", "login", "logout", "update", "delete"),
        },
        required=("previous_mpid", "current_mpid", "profile_event_type"),
    ),
    "push_message": _data(
        {
            "push_message_token": STR,
            "push_message_type": enum("sent", "received", "action"),
            "message": STR,
            "network": STR,
            "push_notification_payload": STR,
            "application_state": enum("not_running", "background", "foreground"),
            "action_identifier": STR,
            "push_message_behavior": enum(
                "Received", "DirectOpen", "Read", "InfluencedOpen", "Displayed"
            ),
        },
        required=("push_message_token", "push_message_type", "push_notification_payload"),
    ),
    "push_registration": _data(
        {"register": BOOL, "registration_token": STR},
        required=("register", "registration_token"),
    ),
    # Documented types with no fields of their own.
    "first_run": _data({}),
    "pre_attribution": _data({}),
    "push_reaction": _data({}),
    "uninstall": _data({}),
}
_EVENT_TYPE = enum(*EVENT_DATA)


def validate_event(event: Any, path: str = "$", problems: list[str] | None = None) -> list[str]:
    """Check one event object (``{"event_type": ..., "data": {...}}``) by its type.

    Returns:
        The problems found (``"<json path>: <message>"``), empty when valid.
    """
    found: list[str] = [] if problems is None else problems
    if not isinstance(event, dict):
        found.append(f"{path}: expected an object, got {_kind(event)}")
        return found
    event_type = event.get("event_type")
    check = EVENT_DATA.get(event_type) if isinstance(event_type, str) else None
    found.extend(
        f"{path}.{key}: unknown field" for key in event if key not in ("event_type", "data")
    )
    if event_type is None:
        found.append(f'{path}.event_type: required event field "event_type" is missing')
    elif check is None:
        _EVENT_TYPE(event_type, f"{path}.event_type", found)
    if "data" not in event:
        found.append(f"{path}.data: required field is missing")
    elif check is not None:
        check(event["data"], f"{path}.data", found)
    return found


def _events(value: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, list):
        problems.append(f"{path}: expected an array, got {_kind(value)}")
        return
    for i, event in enumerate(value):
        validate_event(event, f"{path}[{i}]", problems)


CONSENT = obj(
    {
        "consented": BOOL,
        "document": STR,
        "timestamp_unixtime_ms": INT,
        "location": STR,
        "hardware_id": STR,
    },
    required=("consented",),
)
CONSENT_STATE = obj({"gdpr": map_of(CONSENT), "ccpa": obj({"data_sale_opt_out": CONSENT})})

DEVICE_INFO_STRINGS = (
    "brand",
    "product",
    "device",
    "android_uuid",
    "device_manufacturer",
    "os_version",
    "device_model",
    "device_country",
    "locale_language",
    "locale_country",
    "network_country",
    "network_carrier",
    "network_code",
    "network_mobile_country_code",
    "build_identifier",
    "http_header_user_agent",
    "ios_advertising_id",
    "push_token",
    "cpu_architecture",
    "radio_access_technology",
    "bluetooth_version",
    "ios_idfv",
    "android_advertising_id",
    "build_version_release",
    "amp_id",
    "roku_advertising_id",
    "roku_publisher_id",
    "microsoft_advertising_id",
    "microsoft_publisher_id",
    "fire_advertising_id",
)
DEVICE_INFO_BOOLEANS = (
    "is_tablet",
    "push_notification_sound_enabled",
    "push_notification_vibrate_enabled",
    "supports_telephony",
    "has_nfc",
    "bluetooth_enabled",
    "limit_ad_tracking",
    "is_dst",
)
DEVICE_INFO = obj(
    {
        **dict.fromkeys(DEVICE_INFO_STRINGS, STR),
        **dict.fromkeys(DEVICE_INFO_BOOLEANS, BOOL),
        **dict.fromkeys(("screen_height", "screen_width", "screen_dpi", "timezone_offset"), INT),
        "platform": enum(
            "iOS", "Android", "web", "desktop", "tvOS", "roku", "out_of_band", "smart_tv", "xbox"
        ),
        "att_authorization_status": enum("authorized", "denied", "not_determined", "restricted"),
        "att_timestamp_unixtime_ms": NUM,
    }
)
APPLICATION_INFO = obj(
    {
        "application_name": STR,
        "application_version": STR,
        "application_build_number": STR,
        "install_referrer": STR,
        "package": STR,
        "os": enum(
            "Unknown",
            "IOS",
            "Android",
            "WindowsPhone",
            "MobileWeb",
            "UnityIOS",
            "UnityAndroid",
            "Desktop",
            "TVOS",
            "Roku",
            "OutOfBand",
            "Alexa",
            "SmartTV",
            "FireTV",
            "Xbox",
        ),
        "apple_search_ads_attributes": map_of(map_of(STR)),
    }
)
SOURCE_INFO = obj(
    {
        "channel": enum("native", "javascript", "pixel", "desktop", "partner", "server_to_server"),
        "partner": STR,
        "replay_request_id": STR,
        "replay_job_id": STR,
        "is_historical": BOOL,
    }
)
ATTRIBUTION_INFO = obj(
    {"service_provider": STR, "publisher": STR, "campaign": STR},
    required=("service_provider", "publisher", "campaign"),
)

BATCH = obj(
    {
        "events": _events,
        "environment": enum("production", "development"),
        "user_identities": obj(dict.fromkeys(IDENTITY_TYPES, STR_OR_NUM)),
        "user_attributes": map_of(_user_attribute_value, max_keys=MAX_USER_ATTRIBUTES),
        "deleted_user_attributes": array(STR),
        "ip": STR,
        "source_request_id": STR,
        "consent_state": CONSENT_STATE,
        "context": obj(
            {"data_plan": obj({"plan_id": STR, "plan_version": INT}, required=("plan_id",))}
        ),
        "device_info": DEVICE_INFO,
        "application_info": APPLICATION_INFO,
        "source_info": SOURCE_INFO,
        "attribution_info": ATTRIBUTION_INFO,
        "integration_attributes": map_of(map_of(STR)),
        "partner_identity": STR,
        "mp_deviceid": STR,
        "mpid": INT,
        "batch_id": INT,
        "timestamp_unixtime_ms": INT,
        "sdk_version": STR,
        "job_id": STR,
        "api_key": STR,
        "api_keys": array(STR),
    },
    required=("environment",),
)


def check_historical(batch: Any) -> list[str]:
    """Check the ``/v2/bulkevents/historical`` rule: every event has a timestamp.

    Returns:
        The problems found, empty when every event has ``timestamp_unixtime_ms``.
    """
    if not isinstance(batch, dict) or not isinstance(batch.get("events"), list):
        return []
    problems = []
    for i, event in enumerate(batch["events"]):
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict) or "timestamp_unixtime_ms" not in data:
            problems.append(
                f"$.events[{i}].data.timestamp_unixtime_ms: required for historical data"
            )
    return problems


def validate_batch(batch: Any, *, historical: bool = False) -> list[str]:
    """Check one batch against the fake server's schema.

    Args:
        batch: The parsed JSON of one batch.
        historical: Also apply the historical-endpoint rule (:func:`check_historical`).

    Returns:
        The problems found (``"<json path>: <message>"``), empty when valid.
    """
    problems: list[str] = []
    BATCH(batch, "$", problems)
    if historical:
        problems.extend(check_historical(batch))
    return problems
