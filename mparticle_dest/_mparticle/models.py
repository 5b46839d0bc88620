"""Typed models of the mParticle Events API batch and its events (attrs).

These classes are for typed construction and parsing (users' code, tests, the fake
server); the push path never instantiates them: it builds plain dicts and checks the
mapped parts of an event (commerce fields, ``eventData``) with :func:`check_data`, whose
rules are derived once from these same classes.

Each event class carries its ``event_type`` and serializes as
``{"event_type": ..., "data": {...}}`` with the data keys in the wire order the library
uses: the type's own fields, then the common optional fields, then
``custom_attributes``, ``timestamp_unixtime_ms``, ``source_message_id``.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union, cast

import attrs

from .constants import CustomEventType, IdentityType
from .model_checks import check_object, value_check

__all__ = [
    "ApplicationStateTransition",
    "Batch",
    "Breadcrumb",
    "CCPAConsent",
    "CommerceEvent",
    "ConsentItem",
    "ConsentState",
    "CrashReport",
    "CustomEvent",
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
    "parse_batch",
    "parse_event",
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
class Batch(_Model):
    """One mParticle batch (the body of ``/v2/events``, an item of ``/v2/bulkevents``)."""

    closed = True
    events: list[Event]
    environment: Literal["production", "development"] = "production"
    user_identities: dict[IdentityType, str | int | float] | None = None
    user_attributes: dict[str, Scalar | list[str]] | None = None
    ip: str | None = None
    source_request_id: str | None = None
    consent_state: ConsentState | None = None


# --------------------------------------------------------------------------- parsing

if TYPE_CHECKING:
    import cattrs


@functools.cache
def _converter() -> cattrs.Converter:
    """The parsing converter, built on first use: cattrs costs ~25 ms to import, and only
    parsing (tests, the fake server) needs it, not ``import mparticle_dest``."""
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(Event, _structure_event)
    converter.register_structure_hook_func(_is_value_union, _structure_value_union)
    return converter


def _structure_event(obj: Any, _: Any) -> _Event:
    if not isinstance(obj, Mapping) or set(obj) - {"event_type", "data"}:
        raise ValueError(f"an event is {{'event_type', 'data'}}, got {obj!r}")
    cls = event_class(obj.get("event_type"))
    return _converter().structure(obj.get("data", {}), cls)


def _structure(obj: Any, cls: Any) -> Any:
    import cattrs

    try:
        return _converter().structure(obj, cls)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc, path="$"))) from None


def _is_plain(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return True
    if origin in (list, dict, Union, types.UnionType):
        return all(_is_plain(a) for a in typing.get_args(tp))
    return tp in (str, int, float, bool, type(None))


def _is_value_union(tp: Any) -> bool:
    # unions of plain JSON values (str | int | float, Scalar | list[str], ...): cattrs
    # has no hook for them, and the checker below already knows how to validate them.
    return typing.get_origin(tp) in (Union, types.UnionType) and _is_plain(tp)


def _structure_value_union(obj: Any, tp: Any) -> Any:
    problems: list[str] = []
    value_check(tp)(obj, "value", problems)
    if problems:
        raise ValueError("; ".join(problems))
    return obj


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


def parse_event(obj: Mapping[str, Any]) -> Event:
    """Parse ``{"event_type": ..., "data": {...}}`` into its typed event.

    Raises:
        ValueError: when the object does not fit the model (every problem listed).
    """
    return _structure(obj, Event)  # type: ignore[no-any-return]


def parse_batch(obj: Mapping[str, Any]) -> Batch:
    """Parse a batch dict (e.g. ``json.loads`` of a body) into a :class:`Batch`.

    Raises:
        ValueError: when the object does not fit the model (every problem listed).
    """
    return _structure(obj, Batch)  # type: ignore[no-any-return]


def check_data(event_type: str, data: Mapping[str, Any], *, path: str = "data") -> list[str]:
    """Check an event's ``data`` dict against its model; return the problems (empty if valid).

    ``None`` values count as missing. Keys unknown to the model pass (mParticle's
    event data is open), except inside closed objects such as ``product_action``.
    """
    return check_object(event_class(event_type), data, path=path)


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
