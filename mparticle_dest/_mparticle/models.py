"""Typed models of the mParticle Events API batch and its events (attrs).

These classes describe what mParticle accepts (field names and types as in the
official Events API OpenAPI file); the push path never instantiates them: it builds
plain dicts and checks the mapped parts (commerce fields, ``eventData``,
``deviceInfo``, ``applicationInfo``) with :func:`check_data` and :func:`check_model`,
whose rules are derived once from these same classes.

Each event class carries its ``event_type`` and serializes as
``{"event_type": ..., "data": {...}}`` with the data keys in the wire order the library
uses: the type's own fields, then the common optional fields, then
``custom_attributes``, ``timestamp_unixtime_ms``, ``source_message_id``.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Final, Literal, Union, cast

import attrs

from .constants import CustomEventType, IdentityType
from .model_checks import check_object

__all__ = [
    "ApplicationInformation",
    "ApplicationStateTransition",
    "Batch",
    "BatchContext",
    "Breadcrumb",
    "CCPAConsent",
    "CommerceEvent",
    "ConsentItem",
    "ConsentState",
    "CrashReport",
    "CustomEvent",
    "DataPlanContext",
    "DeviceInformation",
    "Event",
    "GeoLocation",
    "NetworkPerformance",
    "OptOut",
    "Product",
    "ProductAction",
    "ProductImpression",
    "Profile",
    "Promotion",
    "PromotionAction",
    "PushMessage",
    "PushRegistration",
    "ScreenView",
    "SessionEnd",
    "SessionStart",
    "ShoppingCart",
    "UserAttributeChange",
    "UserIdentity",
    "UserIdentityChange",
    "check_data",
    "check_model",
    "event_class",
    "required_fields",
]

Scalar = Union[str, int, float, bool]  # noqa: UP007 - resolved at runtime on 3.10 too
_TAIL = ("custom_attributes", "timestamp_unixtime_ms", "source_message_id")
_WIRE_ORDER: dict[type, tuple[str, ...]] = {}


class _Model:
    """Shared serialization: ``to_dict`` drops ``None`` fields, in wire order."""

    #: ``additionalProperties: false`` in the official schema: unknown keys are rejected.
    closed: ClassVar[bool] = False

    @classmethod
    def wire_order(cls) -> tuple[str, ...]:
        """Field names in the order they are serialized."""
        return tuple(f.name for f in _fields(cls))

    def to_dict(self) -> dict[str, Any]:
        """Return the plain JSON-able dict (``None`` fields omitted)."""
        out: dict[str, Any] = {}
        for name in self.wire_order():
            value = getattr(self, name)
            if value is not None:
                out[name] = _plain(value)
        return out


def _fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(attrs.fields(cast(Any, cls)))


def _plain(value: Any) -> Any:
    if isinstance(value, _Model):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_model = attrs.define(kw_only=True)

# --------------------------------------------------------------------------- commerce


@_model
class Product(_Model):
    """A product (every field optional)."""

    id: str | None = None
    name: str | None = None
    brand: str | None = None
    category: str | None = None
    variant: str | None = None
    position: int | None = None
    price: float | None = None
    quantity: float | None = None
    coupon_code: str | None = None
    added_to_cart_time_ms: int | None = None
    total_product_amount: float | None = None
    custom_attributes: dict[str, Scalar] | None = None


@_model
class ProductAction(_Model):
    """What happened to the products; only ``action`` is required."""

    closed = True
    action: Literal[
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
    ]
    checkout_step: int | None = None
    checkout_options: str | None = None
    product_action_list: str | None = None
    product_list_source: str | None = None
    transaction_id: str | None = None
    affiliation: str | None = None
    total_amount: float | None = None
    tax_amount: float | None = None
    shipping_amount: float | None = None
    coupon_code: str | None = None
    products: list[Product] | None = None


@_model
class Promotion(_Model):
    """An internal promotion."""

    closed = True
    id: str | None = None
    name: str | None = None
    creative: str | None = None
    position: str | None = None


@_model
class PromotionAction(_Model):
    """A promotion view or click."""

    closed = True
    action: Literal["view", "click"]
    promotions: list[Promotion] | None = None


@_model
class ProductImpression(_Model):
    """Products seen in a list."""

    closed = True
    product_impression_list: str | None = None
    products: list[Product] | None = None


@_model
class ShoppingCart(_Model):
    """The products in the cart."""

    closed = True
    products: list[Product] | None = None


@_model
class GeoLocation(_Model):
    """Where the event happened."""

    closed = True
    latitude: float
    longitude: float
    accuracy: float | None = None


@_model
class UserIdentity(_Model):
    """One side of a ``user_identity_change``."""

    closed = True
    identity_type: IdentityType
    identity: str
    timestamp_unixtime_ms: int
    created_this_batch: bool


# --------------------------------------------------------------------------- events


@_model
class _Event(_Model):
    """Fields every event type may carry (``CommonEventData``)."""

    event_type: ClassVar[str]
    session_uuid: str | None = None
    session_start_unixtime_ms: int | None = None
    event_start_unixtime_ms: int | None = None
    location: GeoLocation | None = None
    custom_attributes: dict[str, Scalar] | None = None
    timestamp_unixtime_ms: int | None = None
    source_message_id: str | None = None

    @classmethod
    def wire_order(cls) -> tuple[str, ...]:
        """Own fields, then the common ones, then ``custom_attributes``, timestamp, id."""
        order = _WIRE_ORDER.get(cls)
        if order is None:
            common = [f.name for f in _fields(_Event)]
            own = [f.name for f in _fields(cls) if f.name not in common]
            order = _WIRE_ORDER[cls] = (*own, *(n for n in common if n not in _TAIL), *_TAIL)
        return order

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"event_type": ..., "data": {...}}``."""
        return {"event_type": self.event_type, "data": super().to_dict()}


@_model
class CustomEvent(_Event):
    """``custom_event``: a named event with a category."""

    event_type = "custom_event"
    event_name: str
    custom_event_type: CustomEventType = "other"
    custom_flags: dict[str, str] | None = None


@_model
class ScreenView(_Event):
    """``screen_view``."""

    event_type = "screen_view"
    screen_name: str
    activity_type: str | None = None
    custom_flags: dict[str, str] | None = None


@_model
class CommerceEvent(_Event):
    """``commerce_event``: product, promotion or impression activity."""

    event_type = "commerce_event"
    product_action: ProductAction | None = None
    promotion_action: PromotionAction | None = None
    product_impressions: list[ProductImpression] | None = None
    shopping_cart: ShoppingCart | None = None
    currency_code: str | None = None
    screen_name: str | None = None
    is_non_interactive: bool | None = None
    event_name: str | None = None
    custom_flags: dict[str, str] | None = None


@_model
class SessionStart(_Event):
    """``session_start``."""

    event_type = "session_start"
    session_id: int


@_model
class SessionEnd(_Event):
    """``session_end``."""

    event_type = "session_end"
    session_duration_ms: int


@_model
class UserAttributeChange(_Event):
    """``user_attribute_change``."""

    event_type = "user_attribute_change"
    user_attribute_name: str
    new: dict[str, Any]
    old: dict[str, Any]
    deleted: bool
    is_new_attribute: bool


@_model
class UserIdentityChange(_Event):
    """``user_identity_change``."""

    event_type = "user_identity_change"
    new: UserIdentity
    old: UserIdentity


@_model
class OptOut(_Event):
    """``opt_out``."""

    event_type = "opt_out"
    is_opted_out: bool


@_model
class ApplicationStateTransition(_Event):
    """``application_state_transition``."""

    event_type = "application_state_transition"
    application_transition_type: Literal[
        "application_initialized",
        "application_exit",
        "application_background",
        "application_foreground",
    ]
    is_first_run: bool
    is_upgrade: bool
    successfully_closed: bool | None = None
    push_notification_payload: str | None = None
    launch_referral: str | None = None


@_model
class Breadcrumb(_Event):
    """``breadcrumb``."""

    event_type = "breadcrumb"
    label: str
    session_number: int | None = None


@_model
class CrashReport(_Event):
    """``crash_report``."""

    event_type = "crash_report"
    breadcrumbs: list[str] | None = None
    class_name: str | None = None
    severity: str | None = None
    message: str | None = None
    stack_trace: str | None = None
    exception_handled: bool | None = None
    topmost_context: str | None = None
    session_number: int | None = None


@_model
class NetworkPerformance(_Event):
    """``network_performance``."""

    event_type = "network_performance"
    url: str
    response_code: int
    http_verb: str | None = None
    time_elapsed: int | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    data: str | None = None


@_model
class Profile(_Event):
    """``profile``."""

    event_type = "profile"
    previous_mpid: int
    current_mpid: int
    profile_event_type: Literal["signup", "login", "logout", "update", "delete"]


@_model
class PushMessage(_Event):
    """``push_message``."""

    event_type = "push_message"
    push_message_token: str
    push_message_type: Literal["sent", "received", "action"]
    push_notification_payload: str
    message: str | None = None
    network: str | None = None
    application_state: Literal["not_running", "background", "foreground"] | None = None
    action_identifier: str | None = None


@_model
class PushRegistration(_Event):
    """``push_registration``."""

    event_type = "push_registration"
    register: bool
    registration_token: str


Event = Union[  # noqa: UP007 - a runtime alias, usable in isinstance-free annotations
    CustomEvent,
    ScreenView,
    CommerceEvent,
    SessionStart,
    SessionEnd,
    UserAttributeChange,
    UserIdentityChange,
    OptOut,
    ApplicationStateTransition,
    Breadcrumb,
    CrashReport,
    NetworkPerformance,
    Profile,
    PushMessage,
    PushRegistration,
]
_EVENT_CLASSES: dict[str, type[_Event]] = {c.event_type: c for c in typing.get_args(Event)}

# --------------------------------------------------------------------------- batch


@_model
class ConsentItem(_Model):
    """One consent decision (a GDPR purpose or CCPA data-sale opt-out)."""

    closed = True
    consented: bool
    document: str | None = None
    timestamp_unixtime_ms: int | None = None
    location: str | None = None
    hardware_id: str | None = None


@_model
class CCPAConsent(_Model):
    """CCPA consent: the data-sale opt-out."""

    closed = True
    data_sale_opt_out: ConsentItem | None = None


@_model
class ConsentState(_Model):
    """A batch's ``consent_state``: GDPR purposes and/or CCPA."""

    closed = True
    gdpr: dict[str, ConsentItem] | None = None
    ccpa: CCPAConsent | None = None


@_model
class DeviceInformation(_Model):
    """A batch's ``device_info``: the device the events come from (every field optional)."""

    closed = True
    brand: str | None = None
    product: str | None = None
    device: str | None = None
    android_uuid: str | None = None
    device_manufacturer: str | None = None
    platform: (
        Literal[
            "iOS", "Android", "web", "desktop", "tvOS", "roku", "out_of_band", "smart_tv", "xbox"
        ]
        | None
    ) = None
    os_version: str | None = None
    device_model: str | None = None
    screen_height: int | None = None
    screen_width: int | None = None
    screen_dpi: int | None = None
    device_country: str | None = None
    locale_language: str | None = None
    locale_country: str | None = None
    network_country: str | None = None
    network_carrier: str | None = None
    network_code: str | None = None
    network_mobile_country_code: str | None = None
    timezone_offset: int | None = None
    build_identifier: str | None = None
    http_header_user_agent: str | None = None
    ios_advertising_id: str | None = None
    att_authorization_status: (
        Literal["authorized", "denied", "not_determined", "restricted"] | None
    ) = None
    att_timestamp_unixtime_ms: float | None = None
    push_token: str | None = None
    cpu_architecture: str | None = None
    is_tablet: bool | None = None
    push_notification_sound_enabled: bool | None = None
    push_notification_vibrate_enabled: bool | None = None
    radio_access_technology: str | None = None
    supports_telephony: bool | None = None
    has_nfc: bool | None = None
    bluetooth_enabled: bool | None = None
    bluetooth_version: str | None = None
    ios_idfv: str | None = None
    android_advertising_id: str | None = None
    build_version_release: str | None = None
    limit_ad_tracking: bool | None = None
    amp_id: str | None = None
    is_dst: bool | None = None
    roku_advertising_id: str | None = None
    roku_publisher_id: str | None = None
    microsoft_advertising_id: str | None = None
    microsoft_publisher_id: str | None = None
    fire_advertising_id: str | None = None


@_model
class ApplicationInformation(_Model):
    """A batch's ``application_info``: the app that sent the events (every field optional)."""

    closed = True
    application_name: str | None = None
    application_version: str | None = None
    application_build_number: str | None = None
    install_referrer: str | None = None
    package: str | None = None
    os: (
        Literal[
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
        ]
        | None
    ) = None
    apple_search_ads_attributes: dict[str, dict[str, str]] | None = None


@_model
class DataPlanContext(_Model):
    """The data plan mParticle validates a batch against (mParticle data planning)."""

    plan_id: str
    plan_version: int | None = None


@_model
class BatchContext(_Model):
    """A batch's ``context``: its data plan (the key mParticle's SDKs send)."""

    data_plan: DataPlanContext | None = None


@_model
class Batch(_Model):
    """One mParticle batch (the body of ``/v2/events``, an item of ``/v2/bulkevents``)."""

    closed = True
    events: list[Event]
    environment: Literal["production", "development"] = "production"
    user_identities: dict[IdentityType, str | int | float] | None = None
    user_attributes: dict[str, Scalar | list[str]] | None = None
    ip: str | None = None
    source_request_id: str | None = None
    context: BatchContext | None = None
    device_info: DeviceInformation | None = None
    application_info: ApplicationInformation | None = None
    mpid: int | None = None
    consent_state: ConsentState | None = None


def event_class(event_type: Any) -> type[_Event]:
    """Return the model class of an ``event_type``.

    Raises:
        ValueError: for an event type without a model.
    """
    try:
        return _EVENT_CLASSES[event_type]
    except (KeyError, TypeError):
        known = ", ".join(_EVENT_CLASSES)
        raise ValueError(f"unknown event_type {event_type!r}; expected one of {known}") from None


def check_data(event_type: str, data: Mapping[str, Any], *, path: str = "data") -> list[str]:
    """Check an event's ``data`` dict against its model; return the problems (empty if valid).

    ``None`` values count as missing. Keys unknown to the model pass (mParticle's
    event data is open), except inside closed objects such as ``product_action``. A
    ``commerce_event`` must also carry one of its actions: mParticle refuses one with
    none of ``product_action``, ``promotion_action`` or ``product_impressions``.
    """
    problems = check_object(event_class(event_type), data, path=path)
    if event_type == "commerce_event" and all(data.get(k) is None for k in _COMMERCE_ACTIONS):
        problems.append(f"{path}: a commerce event needs one of " + ", ".join(_COMMERCE_ACTIONS))
    return problems


_COMMERCE_ACTIONS: Final = ("product_action", "promotion_action", "product_impressions")


def check_model(cls: type[_Model], value: Any, *, path: str) -> list[str]:
    """Check a plain object against a model class; return the problems (empty if valid)."""
    return check_object(cls, value, path=path)


def required_fields(event_type: str) -> tuple[str, ...]:
    """The data fields mParticle requires for an ``event_type`` (beyond the common ones).

    Raises:
        ValueError: for an event type without a model.
    """
    cls = event_class(event_type)
    return tuple(f.name for f in _fields(cls) if f.default is attrs.NOTHING)
