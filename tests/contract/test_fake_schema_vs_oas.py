"""The fake server's own schema agrees with the official OpenAPI file (SPEC §9).

Three promises are checked against ``support.oas`` (the official file with the
SPEC §9 gaps patched):

- every payload the fake server accepts is valid there too (a curated corpus, the
  walkerOS reference bodies, and random mutations of them);
- the documented violations are rejected by both;
- where the fake server is stricter on purpose (docs/testing.md), the difference is
  exactly the documented one.

Every test here needs the official file beside the checkout; without it the module
is skipped with a reason naming the file.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.oas import OASValidationError
from support.oas import validate_batch as oas_validate_batch
from support.oas import validate_bulk as oas_validate_bulk
from support.references import OAS, requires
from support.walkeros_steps import load_steps

from mparticle_dest.testing import validate_batch

pytestmark = requires(OAS)


def oas_accepts(batch: Any) -> bool:
    try:
        oas_validate_batch(batch)
    except OASValidationError:
        return False
    return True


def custom(name: str = "product view", **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "custom_event",
        "data": {"event_name": name, "custom_event_type": "other", **extra},
    }


def envelope(*events: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"events": list(events), "environment": "production", **fields}


PRODUCT = {
    "id": "SKU-A1",
    "name": "Shoe",
    "brand": "Acme",
    "category": "shoes",
    "variant": "red",
    "position": 1,
    "price": 129.99,
    "quantity": 2,
    "coupon_code": "X",
    "added_to_cart_time_ms": 1700000000000,
    "total_product_amount": 259.98,
    "custom_attributes": {"color": "red", "size": 42, "sale": True},
}

WALKEROS_BODIES = [json.loads(step.body) for step in load_steps()]

# Payloads the fake server accepts, covering every event type and batch field.
ACCEPTED: dict[str, dict[str, Any]] = {
    **{f"walkeros-{i}": body for i, body in enumerate(WALKEROS_BODIES)},
    "empty batch": {"environment": "development"},
    "custom event, all common fields": envelope(
        custom(
            "full",
            custom_attributes={"s": "x", "n": 1.5, "i": 3, "b": False},
            custom_flags={"flag": "on"},
            timestamp_unixtime_ms=1700000000000,
            source_message_id="ev-1",
            session_id=42,
            session_uuid="abc",
            session_start_unixtime_ms=1,
            event_start_unixtime_ms=2,
            location={"latitude": 52.5, "longitude": 13.4, "accuracy": 10},
            device_current_state={"battery_level": 0.5, "device_orientation": "portrait"},
            is_goal_defined=False,
            lifetime_value_change=False,
            lifetime_value_attribute_name="ltv",
            data_connection_type="wifi",
            event_num=7,
            view_controller="Main",
            is_main_thread=True,
            canonical_name="full",
        )
    ),
    "custom_event_type media and attribution": envelope(
        {
            "event_type": "custom_event",
            "data": {"event_name": "play", "custom_event_type": "media"},
        },
        {
            "event_type": "custom_event",
            "data": {"event_name": "install", "custom_event_type": "attribution"},
        },
    ),
    "screen view": envelope(
        {"event_type": "screen_view", "data": {"screen_name": "home", "activity_type": "x"}}
    ),
    "commerce, purchase with products": envelope(
        {
            "event_type": "commerce_event",
            "data": {
                "product_action": {
                    "action": "purchase",
                    "transaction_id": "ORD-1",
                    "total_amount": 10,
                    "tax_amount": 1.5,
                    "shipping_amount": 0,
                    "checkout_step": 2,
                    "products": [PRODUCT, {"id": "only-id"}, {}],
                },
                "currency_code": "EUR",
                "screen_name": "checkout",
                "is_non_interactive": False,
                "event_name": "purchase",
                "custom_event_type": "purchase",
                "custom_attributes": {"k": "v"},
            },
        }
    ),
    "commerce, promotion, impressions and cart": envelope(
        {
            "event_type": "commerce_event",
            "data": {
                "promotion_action": {
                    "action": "click",
                    "promotions": [{"id": "P1", "name": "Sale"}, {}],
                },
                "product_impressions": [{"product_impression_list": "home", "products": [{}]}, {}],
                "shopping_cart": {"products": [{"id": "x"}]},
            },
        },
        {"event_type": "commerce_event", "data": {"promotion_action": {"action": "view"}}},
    ),
    "session, opt-out and other event types": envelope(
        {"event_type": "session_start", "data": {"session_id": 1}},
        {"event_type": "session_end", "data": {"session_duration_ms": 1000}},
        {"event_type": "opt_out", "data": {"is_opted_out": True}},
        {"event_type": "breadcrumb", "data": {"label": "tap", "session_number": 1}},
        {"event_type": "crash_report", "data": {"message": "boom", "breadcrumbs": ["a"]}},
        {"event_type": "network_performance", "data": {"url": "https://x", "response_code": 200}},
        {
            "event_type": "profile",
            "data": {"previous_mpid": 1, "current_mpid": 2, "profile_event_type": "login"},
        },
        {
            "event_type": "push_message",
            "data": {
                "push_message_token": "t",
                "push_message_type": "received",
                "push_notification_payload": "{}",
                "application_state": "background",
                "push_message_behavior": "DirectOpen",
            },
        },
        {"event_type": "push_registration", "data": {"register": True, "registration_token": "t"}},
        {
            "event_type": "application_state_transition",
            "data": {
                "is_first_run": False,
                "is_upgrade": False,
                "application_transition_type": "application_foreground",
            },
        },
        {
            "event_type": "user_attribute_change",
            "data": {
                "user_attribute_name": "tier",
                "new": {},
                "old": {},
                "deleted": False,
                "is_new_attribute": True,
            },
        },
        {
            "event_type": "user_identity_change",
            "data": {
                "new": {
                    "identity_type": "email",
                    "identity": "a@b.c",
                    "timestamp_unixtime_ms": 1,
                    "created_this_batch": True,
                },
                "old": {
                    "identity_type": "email",
                    "identity": "old@b.c",
                    "timestamp_unixtime_ms": 1,
                    "created_this_batch": False,
                },
            },
        },
        {"event_type": "uninstall", "data": {}},
        {"event_type": "first_run", "data": {"timestamp_unixtime_ms": 1}},
    ),
    "every batch-level field": envelope(
        custom(),
        source_request_id="req-1",
        user_identities={
            "customer_id": "u1",
            "email": "a@b.c",
            "other": 42,
            "other_id_10": "x",
            "mobile_number": "+49",
            "phone_number_3": 1.5,
        },
        user_attributes={
            "$FirstName": "Ada",
            "age": 36,
            "score": 1.5,
            "vip": True,
            "tags": ["a", "b"],
            "none": [],
        },
        deleted_user_attributes=["old"],
        ip="203.0.113.9",
        consent_state={
            "gdpr": {
                "marketing": {
                    "consented": True,
                    "document": "v2",
                    "timestamp_unixtime_ms": 1,
                    "location": "web",
                    "hardware_id": "h",
                },
                "analytics": {"consented": False},
            },
            "ccpa": {"data_sale_opt_out": {"consented": False, "document": "d"}},
        },
        context={"data_plan": {"plan_id": "plan", "plan_version": 2}},
        device_info={"platform": "web", "http_header_user_agent": "ua", "is_tablet": False},
        application_info={"application_name": "shop", "os": "Desktop"},
        source_info={"channel": "server_to_server", "is_historical": False},
        attribution_info={"service_provider": "s", "publisher": "p", "campaign": "c"},
        integration_attributes={"123": {"k": "v"}},
        partner_identity="p",
        mp_deviceid="d",
        mpid=123,
        timestamp_unixtime_ms=1,
        sdk_version="1",
        job_id="j",
    ),
    "consent with gdpr only and ccpa only": envelope(
        consent_state={"gdpr": {}}, user_identities={"customer_id": "x"}
    ),
}

# Documented violations: the fake server and the official file both reject them.
REJECTED_BY_BOTH: dict[str, dict[str, Any]] = {
    "missing environment": {"events": [custom()]},
    "unknown environment": {"environment": "staging"},
    "unknown batch field": envelope(custom(), user_id="u1"),
    "events not an array": {"environment": "production", "events": custom()},
    "unknown event_type": envelope({"event_type": "page_view", "data": {}}),
    "event key besides event_type and data": envelope({**custom(), "name": "x"}),
    "custom event without event_name": envelope(
        {"event_type": "custom_event", "data": {"custom_event_type": "other"}}
    ),
    "custom event without custom_event_type": envelope(
        {"event_type": "custom_event", "data": {"event_name": "x"}}
    ),
    "unknown custom_event_type": envelope(
        {"event_type": "custom_event", "data": {"event_name": "x", "custom_event_type": "page"}}
    ),
    "screen view without screen_name": envelope({"event_type": "screen_view", "data": {}}),
    "event name not a string": envelope(
        {"event_type": "custom_event", "data": {"event_name": 1, "custom_event_type": "other"}}
    ),
    "timestamp as a string": envelope(custom(timestamp_unixtime_ms="1700000000000")),
    "custom attribute value an object": envelope(custom(custom_attributes={"a": {"b": 1}})),
    "custom attribute value a list": envelope(custom(custom_attributes={"a": ["b"]})),
    "custom attribute value null": envelope(custom(custom_attributes={"a": None})),
    "product custom attribute value a list": envelope(
        {
            "event_type": "commerce_event",
            "data": {
                "product_action": {
                    "action": "purchase",
                    "products": [{"custom_attributes": {"a": [1]}}],
                }
            },
        }
    ),
    "unknown identity type": envelope(user_identities={"user_id": "u1"}),
    "identity value a boolean": envelope(user_identities={"customer_id": True}),
    "identity value an object": envelope(user_identities={"customer_id": {"id": 1}}),
    "user attribute value an object": envelope(user_attributes={"a": {"b": 1}}),
    "user attribute list of numbers": envelope(user_attributes={"a": [1, 2]}),
    "user attribute value null": envelope(user_attributes={"a": None}),
    "product action without action": envelope(
        {"event_type": "commerce_event", "data": {"product_action": {"transaction_id": "x"}}}
    ),
    "unknown product action": envelope(
        {"event_type": "commerce_event", "data": {"product_action": {"action": "buy"}}}
    ),
    "unknown promotion action": envelope(
        {"event_type": "commerce_event", "data": {"promotion_action": {"action": "show"}}}
    ),
    "product price a string": envelope(
        {
            "event_type": "commerce_event",
            "data": {"product_action": {"action": "purchase", "products": [{"price": "9.99"}]}},
        }
    ),
    "gdpr consent without consented": envelope(consent_state={"gdpr": {"m": {"document": "d"}}}),
    "gdpr consent with regulation": envelope(
        consent_state={"gdpr": {"m": {"consented": True, "regulation": "gdpr"}}}
    ),
    "unknown ccpa purpose": envelope(consent_state={"ccpa": {"marketing": {"consented": True}}}),
    "unknown consent regulation": envelope(consent_state={"lgpd": {}}),
    "location without latitude": envelope(custom(location={"longitude": 1})),
    "session start without session_id": envelope({"event_type": "session_start", "data": {}}),
    "opt out flag a string": envelope({"event_type": "opt_out", "data": {"is_opted_out": "yes"}}),
    "unknown device_info field": envelope(device_info={"os": "linux"}),
    "unknown platform": envelope(device_info={"platform": "linux"}),
    "attribution without campaign": envelope(
        attribution_info={"service_provider": "s", "publisher": "p"}
    ),
    "data plan without plan_id": envelope(context={"data_plan": {"plan_version": 1}}),
}

# Where the fake server is stricter than the official file, on purpose (docs/testing.md).
STRICTER_BY_DESIGN: dict[str, dict[str, Any]] = {
    "environment unknown": {"environment": "unknown"},
    "event without data": envelope({"event_type": "custom_event"}),
    "unknown field in event data": envelope(custom(event_nam="typo")),
    "unknown field in a product": envelope(
        {
            "event_type": "commerce_event",
            "data": {"product_action": {"action": "purchase", "products": [{"sku": "x"}]}},
        }
    ),
    "empty event name": envelope(custom("")),
    "commerce event without an action or impressions": envelope(
        {"event_type": "commerce_event", "data": {"currency_code": "EUR"}}
    ),
    "event name over 256 characters": envelope(custom("x" * 257)),
    "over 100 custom attributes": envelope(
        custom(custom_attributes={f"k{i}": i for i in range(101)})
    ),
    "attribute value over 4096 characters": envelope(custom(custom_attributes={"k": "x" * 4097})),
    "over 100 user attributes": envelope(user_attributes={f"k{i}": i for i in range(101)}),
    "integer field as a float": envelope(custom(timestamp_unixtime_ms=1.0)),
    # The official Batch schema omits `type: object`, so any non-object passes there.
    "batch not an object": [envelope()],  # type: ignore[dict-item]
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_accepted_payloads_are_valid_in_the_official_file(name):
    batch = ACCEPTED[name]
    assert validate_batch(batch) == []
    oas_validate_batch(batch)


def test_accepted_payloads_are_valid_as_one_bulk_request():
    oas_validate_bulk(list(ACCEPTED.values()))


@pytest.mark.parametrize("name", list(REJECTED_BY_BOTH))
def test_documented_violations_are_rejected_by_both(name):
    batch = REJECTED_BY_BOTH[name]
    assert validate_batch(batch) != []
    with pytest.raises(OASValidationError):
        oas_validate_batch(batch)


@pytest.mark.parametrize("name", list(STRICTER_BY_DESIGN))
def test_deliberate_strictness_is_exactly_the_documented_one(name):
    batch = STRICTER_BY_DESIGN[name]
    assert validate_batch(batch) != []
    assert oas_accepts(batch)


# -- random mutations: whatever the fake server accepts, the official file accepts ------

_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "other", "purchase", "production", "custom_event", "click"]),
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from("abc"), inner, max_size=3)
    ),
    max_leaves=6,
)


def _containers(obj: Any) -> list[Any]:
    found = []
    if isinstance(obj, (dict, list)):
        found.append(obj)
        for value in obj.values() if isinstance(obj, dict) else obj:
            found.extend(_containers(value))
    return found


@st.composite
def mutated_batches(draw: st.DrawFn) -> Any:
    batch = copy.deepcopy(draw(st.sampled_from(list(ACCEPTED.values()))))
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(_containers(batch)))
        if isinstance(target, dict):
            keys = sorted(target)
            action = draw(st.sampled_from(["drop", "replace", "add"] if keys else ["add"]))
            if action == "drop":
                del target[draw(st.sampled_from(keys))]
            elif action == "replace":
                target[draw(st.sampled_from(keys))] = draw(_JSON)
            else:
                target[draw(st.sampled_from(["x", "name", "action", "consented"]))] = draw(_JSON)
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = draw(_JSON)
        else:
            target.append(draw(_JSON))
    return batch


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_batches())
def test_whatever_the_fake_accepts_the_official_file_accepts(batch):
    if validate_batch(batch) == []:
        oas_validate_batch(batch)
