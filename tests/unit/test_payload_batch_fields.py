"""settings mpid, deviceInfo, applicationInfo and dataPlan: batch-level, per rule, checked (#17)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mparticle_dest import ConfigError, InvalidEventError
from mparticle_dest._config.model import DestinationConfig
from mparticle_dest._payload.builder import BuiltEvent, EventBuilder
from mparticle_dest._payload.coerce import mpid_value
from mparticle_dest._wire import encode_batch

BASE = {"apiKey": "key", "apiSecret": "secret", "userIdentities": {"customer_id": "user.id"}}


def build(config: dict[str, Any], **event: Any) -> BuiltEvent:
    ev = {
        "name": "page view",
        "id": "e1",
        "timestamp": 1_700_000_000_000,
        "user": {"id": "u1"},
        **event,
    }
    built = EventBuilder.from_config(config).build(ev)
    assert isinstance(built, BuiltEvent)
    return built


def batch_of(built: BuiltEvent) -> dict[str, Any]:
    body = encode_batch(built.key, [built.body], built.user_attributes, built.source_request_id)
    return json.loads(body)  # type: ignore[no-any-return]


def test_the_fields_are_written_in_the_envelope_in_the_oas_order() -> None:
    config = {
        "settings": {
            **BASE,
            "mpid": "user.mpid",
            "deviceInfo": {
                "map": {"http_header_user_agent": "globals.ua", "platform": {"value": "web"}}
            },
            "applicationInfo": {"value": {"os": "MobileWeb", "application_name": "shop"}},
            "dataPlan": {"planId": "web_plan", "planVersion": 3},
            "consent": {"gdpr": {"analytics": {"consented": True}}},
        }
    }
    built = build(config, user={"id": "u1", "mpid": "42"}, globals={"ua": "Mozilla/5.0"})
    batch = batch_of(built)
    assert list(batch) == [
        "events",
        "environment",
        "user_identities",
        "source_request_id",
        "context",
        "device_info",
        "application_info",
        "mpid",
        "consent_state",
    ]
    assert batch["mpid"] == 42
    assert batch["context"] == {"data_plan": {"plan_id": "web_plan", "plan_version": 3}}
    # in the official schema's field order, whatever order the mapping produced
    assert list(batch["device_info"]) == ["platform", "http_header_user_agent"]
    assert list(batch["application_info"]) == ["application_name", "os"]


def test_equal_values_share_a_batch_and_different_values_do_not() -> None:
    builder = EventBuilder.from_config(
        {
            "settings": {
                **BASE,
                "mpid": "user.mpid",
                "deviceInfo": {"map": {"platform": "globals.p"}},
            }
        }
    )

    def key(n: int, mpid: Any, platform: str) -> Any:
        built = builder.build(
            {
                "name": "page view",
                "id": f"e{n}",
                "timestamp": 1,
                "user": {"id": "u1", "mpid": mpid},
                "globals": {"p": platform},
            }
        )
        assert isinstance(built, BuiltEvent)
        return built.key

    assert key(1, 7, "web") == key(2, "7", "web")  # the same mpid, as a number or as text
    assert key(1, 7, "web") != key(3, 8, "web")
    assert key(1, 7, "web") != key(4, 7, "iOS")


def test_rule_settings_override_and_extend_the_destination_settings() -> None:
    config = {
        "settings": {
            **BASE,
            "mpid": "user.mpid",
            "deviceInfo": {"value": {"platform": "web", "brand": "acme"}},
            "applicationInfo": {"value": {"application_name": "shop"}},
            "dataPlan": {"planId": "web_plan"},
        },
        "mapping": {
            "order": {
                "complete": {
                    "settings": {
                        "mpid": "data.mpid",
                        "deviceInfo": {"value": {"brand": "other"}},
                        "applicationInfo": {"value": {"application_version": "2.0"}},
                        "dataPlan": {"planId": "orders", "planVersion": 1},
                    }
                }
            }
        },
    }
    order = batch_of(
        build(config, name="order complete", user={"id": "u1", "mpid": 1}, data={"mpid": 2})
    )
    assert order["mpid"] == 2
    assert order["device_info"] == {"brand": "other", "platform": "web"}
    assert order["application_info"] == {"application_name": "shop", "application_version": "2.0"}
    assert order["context"] == {"data_plan": {"plan_id": "orders", "plan_version": 1}}
    # the rule's mpid resolves to nothing: the destination's applies
    fallback = batch_of(build(config, name="order complete", user={"id": "u1", "mpid": 1}))
    assert fallback["mpid"] == 1
    page = batch_of(build(config, user={"id": "u1", "mpid": 1}, data={"mpid": 2}))
    assert page["mpid"] == 1
    assert page["context"] == {"data_plan": {"plan_id": "web_plan"}}


def test_fields_that_resolve_to_nothing_are_left_out() -> None:
    config = {"settings": {**BASE, "mpid": "user.mpid", "deviceInfo": "globals.device"}}
    batch = batch_of(build(config, globals={"device": {"platform": None}}))
    assert "mpid" not in batch and "device_info" not in batch


@pytest.mark.parametrize(
    ("settings", "event", "field", "detail"),
    [
        ({"mpid": "user.mpid"}, {"user": {"id": "u1", "mpid": "abc"}}, "mpid", "got 'abc'"),
        ({"mpid": "user.mpid"}, {"user": {"id": "u1", "mpid": 2**63}}, "mpid", "64-bit range"),
        ({"mpid": "user.mpid"}, {"user": {"id": "u1", "mpid": 1.5}}, "mpid", "got 1.5"),
        (
            {"deviceInfo": {"map": {"platform": {"value": "linux"}}}},
            {},
            "device_info.platform",
            "'linux' is not one of iOS",
        ),
        (
            {"deviceInfo": {"map": {"screen_width": {"value": "wide"}}}},
            {},
            "device_info.screen_width",
            "expected an integer",
        ),
        (
            {"applicationInfo": {"map": {"version": {"value": "1"}}}},
            {},
            "application_info.version",
            "not a field of ApplicationInformation",
        ),
        (
            {"applicationInfo": "globals.app"},
            {"globals": {"app": "shop"}},
            "application_info",
            "expected an object, got str",
        ),
    ],
)
def test_a_mapped_value_mparticle_would_refuse_refuses_the_event(
    settings: dict[str, Any], event: dict[str, Any], field: str, detail: str
) -> None:
    # mParticle answers 400 for the whole batch: the event is refused at push instead.
    with pytest.raises(InvalidEventError, match=detail) as info:
        build({"settings": {**BASE, **settings}}, **event)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), (7, 7), ("-9223372036854775808", -(2**63)), (3.0, 3)],
)
def test_mpid_coercion(value: Any, expected: int | None) -> None:
    assert mpid_value(value) == expected


@pytest.mark.parametrize(
    ("data_plan", "problem"),
    [
        ({"planVersion": 1}, "settings.dataPlan.planId: required: a non-empty string, got null"),
        (
            {"planId": "p", "planVersion": "2"},
            "settings.dataPlan.planVersion: expected an integer >= 1, got '2'",
        ),
        (
            {"planId": "p", "plan_id": "q"},
            "settings.dataPlan.plan_id: unknown key; valid: planId, planVersion",
        ),
        ("web_plan", "settings.dataPlan: expected an object {planId, planVersion}, got str"),
    ],
)
def test_a_bad_data_plan_is_a_config_error(data_plan: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        DestinationConfig.from_dict({"settings": {**BASE, "dataPlan": data_plan}})
    assert info.value.problems == (problem,)


def test_the_generated_fast_path_declines_configs_with_these_fields() -> None:
    # The general build handles them; the generated one only knows identities and consent.
    plain = EventBuilder.from_config({"settings": BASE})
    with_plan = EventBuilder.from_config({"settings": {**BASE, "dataPlan": {"planId": "p"}}})
    event = {"name": "page view", "id": "e1", "timestamp": 1, "user": {"id": "u1"}}
    plain.build(event)
    with_plan.build(event)
    assert plain._fast["page view"] is not None
    assert with_plan._fast["page view"] is None


def test_a_mapped_object_holding_a_lone_surrogate_refuses_the_event() -> None:
    # It cannot be encoded as UTF-8; the error names the field, as for the other fields.
    config = {"settings": {**BASE, "deviceInfo": {"map": {"brand": {"fn": lambda e: "a\udc80"}}}}}
    with pytest.raises(InvalidEventError, match="lone surrogate") as info:
        build(config)
    assert info.value.field == "device_info.brand"
