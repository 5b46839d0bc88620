"""EventBuilder: every setting and rule setting of SPEC §5, skips, coercions and limits."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.schemas import check_batch

from mparticle_dest import ConfigError, InvalidEventError, LimitExceededError
from mparticle_dest._payload.builder import BatchKey, BuiltEvent, EventBuilder, Skipped
from mparticle_dest._wire import batch_size, encode_batch, user_attributes_fragment

CREDENTIALS = {"apiKey": "key", "apiSecret": "secret"}


def _config(settings: dict[str, Any] | None = None, **rest: Any) -> dict[str, Any]:
    return {"settings": {**CREDENTIALS, **(settings or {})}, **rest}


def _event(name: str = "product view", **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": name,
        "id": "ev-1",
        "timestamp": 1700000100000,
        "data": {"id": "SKU-1", "price": 9.5},
        "user": {"id": "u1", "email": "u1@example.com"},
        "consent": {"functional": True},
    }
    event.update(fields)
    return event


def _build(config: dict[str, Any], event: dict[str, Any]) -> BuiltEvent:
    built = EventBuilder.from_config(config).build(event)
    assert isinstance(built, BuiltEvent), built
    return built


def _batch(built: BuiltEvent) -> dict[str, Any]:
    body = encode_batch(built.key, [built.body], built.user_attributes, built.source_request_id)
    parsed: dict[str, Any] = json.loads(body)
    check_batch(parsed)
    return parsed


def _data(built: BuiltEvent) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(built.body)["data"]
    return parsed


# ------------------------------------------------------------------ batch-level settings


def test_environment_and_static_consent_are_forwarded_verbatim() -> None:
    consent = {
        "gdpr": {"marketing": {"consented": True, "document": "v2", "timestamp_unixtime_ms": 1}},
        "ccpa": {"data_sale_opt_out": {"consented": False}},
    }
    built = _build(_config({"environment": "development", "consent": consent}), _event())
    batch = _batch(built)
    assert batch["environment"] == "development"
    assert batch["consent_state"] == consent
    assert built.key.consent_state == json.dumps(consent, separators=(",", ":"))


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("abc", "abc"),
        (42, 42),
        (42.0, 42),
        (4.5, 4.5),
        (True, "true"),
        (False, "false"),
        ("", None),
        (None, None),
        ({"a": 1}, None),
        ([1], None),
    ],
)
def test_identity_value_coercion(value: Any, sent: Any) -> None:
    built = _build(
        _config({"userIdentities": {"customer_id": "user.id"}}), _event(user={"id": value})
    )
    assert _batch(built).get("user_identities") == (None if sent is None else {"customer_id": sent})


def test_rule_identities_merge_over_settings_per_key() -> None:
    config = _config(
        {"userIdentities": {"customer_id": "user.id", "email": "user.email"}},
        mapping={
            "product": {
                "view": {
                    "settings": {
                        "userIdentities": {"email": {"value": "rule@example.com"}, "other": "id"}
                    }
                }
            }
        },
    )
    built = _build(config, _event())
    assert list(built.key.user_identities) == [
        ("customer_id", "u1"),
        ("email", "rule@example.com"),
        ("other", "ev-1"),
    ]
    other = _build(config, _event("page view"))
    assert other.key.user_identities == (("customer_id", "u1"), ("email", "u1@example.com"))


def test_rule_user_attributes_merge_over_settings_result() -> None:
    config = _config(
        {"userAttributes": {"map": {"tier": {"value": "free"}, "email": "user.email"}}},
        mapping={
            "product": {"view": {"settings": {"userAttributes": {"map": {"tier": "data.id"}}}}}
        },
    )
    assert _build(config, _event()).user_attributes == {"tier": "SKU-1", "email": "u1@example.com"}
    page = _build(config, _event("page view"))
    assert page.user_attributes == {"tier": "free", "email": "u1@example.com"}
    assert _batch(page)["user_attributes"] == {"tier": "free", "email": "u1@example.com"}


def test_user_attributes_that_do_not_resolve_to_an_object_are_ignored() -> None:
    built = _build(_config({"userAttributes": "user.id"}), _event())
    assert built.user_attributes is None
    assert "user_attributes" not in _batch(built)


def test_ip_is_mapped_and_coerced_to_text() -> None:
    built = _build(_config({"ip": "user.ip"}), _event(user={"id": "u1", "ip": "10.1.2.3"}))
    assert _batch(built)["ip"] == "10.1.2.3" == built.key.ip
    assert _build(_config({"ip": {"value": 7}}), _event()).key.ip == "7"
    assert _build(_config({"ip": "user.missing"}), _event()).key.ip is None


def test_mapped_source_request_id_is_batch_level() -> None:
    config = _config({"sourceRequestId": "custom.request"})
    built = _build(config, _event(custom={"request": "req-9"}))
    assert built.key.source_request_id == "req-9" == built.source_request_id
    assert _batch(built)["source_request_id"] == "req-9"
    unresolved = _build(config, _event(id="ev-7"))
    assert unresolved.key.source_request_id is None
    assert unresolved.source_request_id == "ev-7"


def test_equal_batch_level_values_give_equal_keys() -> None:
    builder = EventBuilder.from_config(_config({"userIdentities": {"customer_id": "user.id"}}))
    a = builder.build(_event(id="a"))
    b = builder.build(_event("page view", id="b"))
    c = builder.build(_event(id="c", user={"id": "u2"}))
    assert isinstance(a, BuiltEvent) and isinstance(b, BuiltEvent) and isinstance(c, BuiltEvent)
    assert a.key == b.key and hash(a.key) == hash(b.key)
    assert a.key != c.key
    assert a.key == BatchKey("production", (("customer_id", "u1"),))


# ------------------------------------------------------------------ the event's data


def test_custom_attributes_are_scalars_and_none_is_dropped() -> None:
    config = _config(
        mapping={
            "product": {
                "view": {
                    "data": {
                        "map": {
                            "id": "data.id",
                            "nested": {"value": {"a": [1, "é"]}},
                            "list": {"value": [1, 2]},
                            "flag": {"value": False},
                            "nothing": "data.missing",
                        }
                    }
                }
            }
        }
    )
    data = _data(_build(config, _event()))
    assert data["custom_attributes"] == {
        "id": "SKU-1",
        "nested": '{"a":[1,"é"]}',
        "list": "[1,2]",
        "flag": False,
    }
    assert list(data) == [
        "event_name",
        "custom_event_type",
        "custom_attributes",
        "timestamp_unixtime_ms",
        "source_message_id",
    ]


def test_no_custom_attributes_key_when_data_is_empty_or_not_an_object() -> None:
    assert "custom_attributes" not in _data(_build(_config(), _event()))
    config = _config(mapping={"product": {"view": {"data": "data.id"}}})
    assert "custom_attributes" not in _data(_build(config, _event()))


def test_timestamp_is_an_integer() -> None:
    assert _data(_build(_config(), _event(timestamp=1700000100000.7)))["timestamp_unixtime_ms"] == (
        1700000100000
    )
    del_ts = _event()
    del del_ts["timestamp"]
    assert _data(_build(_config(), del_ts))["timestamp_unixtime_ms"] > 1700000000000


def test_commerce_keys_come_first_in_mapping_order() -> None:
    config = _config(
        mapping={
            "order": {
                "complete": {
                    "data": {"map": {"coupon": {"value": "SPRING"}}},
                    "settings": {
                        "eventType": "commerce_event",
                        "commerce": {
                            "map": {
                                "product_action": {
                                    "map": {
                                        "action": {"value": "purchase"},
                                        "products": {
                                            "loop": [
                                                "nested",
                                                {"map": {"id": "data.id", "price": "data.price"}},
                                            ]
                                        },
                                    }
                                },
                                "currency_code": {"value": "EUR"},
                            }
                        },
                    },
                }
            }
        }
    )
    event = _event(
        "order complete", nested=[{"entity": "product", "data": {"id": "p", "price": 3}}]
    )
    built = _build(config, event)
    data = _data(built)
    assert built.event_type == "commerce_event"
    assert list(data) == [
        "product_action",
        "currency_code",
        "custom_attributes",
        "timestamp_unixtime_ms",
        "source_message_id",
    ]
    assert data["product_action"] == {"action": "purchase", "products": [{"id": "p", "price": 3}]}
    _batch(built)


def test_commerce_that_mparticle_would_reject_is_refused_at_push() -> None:
    config = _config(
        mapping={
            "order": {
                "complete": {
                    "settings": {
                        "eventType": "commerce_event",
                        "commerce": {"map": {"product_action": {"map": {"action": "data.kind"}}}},
                    }
                }
            }
        }
    )
    with pytest.raises(InvalidEventError) as info:
        EventBuilder.from_config(config).build(_event("order complete", data={"kind": "buy"}))
    assert info.value.field == "data.product_action.action"
    assert "'ev-1'" in str(info.value) and "order complete" in str(info.value)
    with pytest.raises(InvalidEventError, match=r"product_action\.action: required"):
        EventBuilder.from_config(config).build(_event("order complete", data={}))


def test_commerce_without_any_action_is_refused_at_push() -> None:
    # mParticle (and the fake server) answer 400 for a commerce event with no action,
    # which would sink the other events of its request: refuse it at push instead.
    config = _config(
        mapping={
            "order": {
                "complete": {
                    "settings": {
                        "eventType": "commerce_event",
                        "commerce": {"map": {"product_action": "data.action"}},
                    }
                }
            }
        }
    )
    with pytest.raises(InvalidEventError, match="a commerce event needs one of product_action"):
        EventBuilder.from_config(config).build(_event("order complete", data={}))
    built = EventBuilder.from_config(config).build(
        _event("order complete", data={"action": {"action": "purchase"}})
    )
    assert isinstance(built, BuiltEvent)


@pytest.mark.parametrize(
    ("event_type", "event_data", "expected"),
    [
        ("session_start", {"map": {"session_id": "custom.sid"}}, {"session_id": 77}),
        ("session_end", {"map": {"session_duration_ms": {"value": 1000}}}, None),
        ("opt_out", {"map": {"is_opted_out": {"value": True}}}, None),
        (
            "application_state_transition",
            {
                "map": {
                    "application_transition_type": {"value": "application_foreground"},
                    "is_first_run": {"value": False},
                    "is_upgrade": {"value": False},
                }
            },
            None,
        ),
        (
            "user_attribute_change",
            {
                "map": {
                    "user_attribute_name": {"value": "tier"},
                    "new": {"value": {"value": "gold"}},
                    "old": {"value": {"value": "free"}},
                    "deleted": {"value": False},
                    "is_new_attribute": {"value": False},
                }
            },
            None,
        ),
        (
            "user_identity_change",
            {
                "map": {
                    "new": {
                        "map": {
                            "identity_type": {"value": "email"},
                            "identity": "user.email",
                            "timestamp_unixtime_ms": "timestamp",
                            "created_this_batch": {"value": True},
                        }
                    },
                    "old": {
                        "value": {
                            "identity_type": "email",
                            "identity": "old@example.com",
                            "timestamp_unixtime_ms": 1,
                            "created_this_batch": False,
                        }
                    },
                }
            },
            None,
        ),
        ("crash_report", {"map": {"message": {"value": "boom"}}}, None),
    ],
)
def test_other_event_types_map_event_data_to_their_fields(
    event_type: str, event_data: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    config = _config(
        mapping={
            "app": {"signal": {"settings": {"eventType": event_type, "eventData": event_data}}}
        }
    )
    built = _build(config, _event("app signal", custom={"sid": 77}))
    data = _data(built)
    assert built.event_type == event_type
    assert list(data)[-2:] == ["timestamp_unixtime_ms", "source_message_id"]
    if expected is not None:
        assert {k: data[k] for k in expected} == expected
    _batch(built)


def test_event_data_with_a_missing_required_field_is_refused() -> None:
    config = _config(
        mapping={
            "app": {
                "start": {
                    "settings": {
                        "eventType": "session_start",
                        "eventData": {"map": {"session_id": "custom.sid"}},
                    }
                }
            }
        }
    )
    with pytest.raises(InvalidEventError) as info:
        EventBuilder.from_config(config).build(_event("app start"))
    assert info.value.field == "data.session_id"
    with pytest.raises(InvalidEventError, match="expected an integer"):
        EventBuilder.from_config(config).build(_event("app start", custom={"sid": "x"}))


def test_types_with_required_fields_need_event_data_at_config_time() -> None:
    config = _config(mapping={"app": {"start": {"settings": {"eventType": "session_start"}}}})
    with pytest.raises(ConfigError) as info:
        EventBuilder.from_config(config)
    assert info.value.problems == (
        "mapping.app.start.settings.eventData: eventType 'session_start' needs the fields "
        "session_id; map them with eventData",
    )


def test_event_data_on_a_custom_event_adds_fields_but_cannot_replace_the_owned_ones() -> None:
    config = _config(
        mapping={
            "product": {
                "view": {
                    "settings": {
                        "eventData": {
                            "map": {
                                "session_uuid": {"value": "s-1"},
                                "event_name": {"value": "hijack"},
                                "source_message_id": {"value": "hijack"},
                            }
                        }
                    }
                }
            }
        }
    )
    data = _data(_build(config, _event()))
    assert data["session_uuid"] == "s-1"
    assert data["event_name"] == "product view"
    assert data["source_message_id"] == "ev-1"
    assert list(data)[:3] == ["event_name", "custom_event_type", "session_uuid"]


def test_every_bad_value_mapping_is_reported_once_with_its_path() -> None:
    async def fetch(value: Any) -> Any:  # pragma: no cover - never called
        return value

    config = _config(
        {"ip": {"fn": fetch}, "userIdentities": {"customer_id": {"loop": "nope"}}},
        mapping={"order": {"complete": {"settings": {"commerce": {"map": "x"}}}}},
    )
    with pytest.raises(ConfigError) as info:
        EventBuilder.from_config(config)
    paths = [p.split(":")[0].split(" ")[0] for p in info.value.problems]
    assert any(p.startswith("settings.ip") for p in paths), info.value.problems
    assert any(p.startswith("settings.userIdentities.customer_id") for p in paths)
    assert any(p.startswith("mapping.order.complete.settings.commerce") for p in paths)


# ------------------------------------------------------------------ skips and rule options


@pytest.mark.parametrize(
    ("rule", "event", "reason"),
    [
        ({"ignore": True}, {}, "ignore"),
        ({"silent": True}, {}, "silent"),
        ({"consent": {"marketing": True}}, {"consent": {"functional": True}}, "consent"),
    ],
)
def test_skips(rule: dict[str, Any], event: dict[str, Any], reason: str) -> None:
    builder = EventBuilder.from_config(_config(mapping={"product": {"view": rule}}))
    skipped = builder.build(_event(**event))
    assert isinstance(skipped, Skipped)
    assert (skipped.reason, skipped.event_id, skipped.mapping_key) == (
        reason,
        "ev-1",
        "product view",
    )


def test_destination_level_consent_skips_too() -> None:
    builder = EventBuilder.from_config(_config(consent={"marketing": True}))
    skipped = builder.build(_event())
    assert isinstance(skipped, Skipped) and skipped.reason == "consent"


def test_rule_batch_override_travels_with_the_event() -> None:
    config = _config(mapping={"order": {"complete": {"batch": {"age": 0}}}})
    builder = EventBuilder.from_config(config)
    urgent = builder.build(_event("order complete"))
    normal = builder.build(_event())
    assert isinstance(urgent, BuiltEvent) and isinstance(normal, BuiltEvent)
    assert urgent.batch is not None and urgent.batch.age == 0
    assert normal.batch is None
    assert urgent.mapping_key == "order complete" and normal.mapping_key is None


def test_invalid_events_are_refused() -> None:
    builder = EventBuilder.from_config(_config())
    with pytest.raises(InvalidEventError):
        builder.build({"name": "nospace"})


def test_malformed_static_consent_is_a_config_error() -> None:
    consent = {"gdpr": {"marketing": {"document": "v1"}}, "ccpa": {"opt_out": True}}
    with pytest.raises(ConfigError) as info:
        EventBuilder.from_config(_config({"consent": consent}))
    assert info.value.problems == (
        "settings.consent.gdpr.marketing.consented: required by mParticle but missing",
        "settings.consent.ccpa.opt_out: not a field of CCPAConsent",
    )


def test_builder_accepts_a_typed_config() -> None:
    from mparticle_dest._config.model import DestinationConfig

    typed = DestinationConfig.from_dict(_config())
    assert EventBuilder.from_config(typed).config is typed


# ------------------------------------------------------------------ limits through the builder


def test_long_names_are_truncated_by_default_and_noted() -> None:
    built = _build(_config(), _event("product " + "v" * 300))
    assert len(_data(built)["event_name"]) == 256
    assert built.truncated == ("event_name_length",)


def test_limits_policy_from_settings() -> None:
    config = _config(
        {"limits": {"eventName": "reject", "customAttributes": "truncate"}},
        mapping={"product": {"view": {"data": "data"}}},
    )
    builder = EventBuilder.from_config(config)
    with pytest.raises(LimitExceededError) as info:
        builder.build(_event("product " + "v" * 300))
    assert info.value.limit == "event_name_length"
    many = {f"k{i}": i for i in range(150)}
    built = builder.build(_event(data=many))
    assert isinstance(built, BuiltEvent)
    assert len(_data(built)["custom_attributes"]) == 100
    assert built.truncated == ("custom_attributes_count",)


def _padded(pad: int) -> dict[str, Any]:
    # 40 attributes of 3200 chars (~128 KB) plus one padding attribute of `pad` chars
    data = {f"a{i:02}": "x" * 3200 for i in range(40)}
    data["pad"] = "y" * pad
    return _event(data=data)


def _single_size(builder: EventBuilder, event: dict[str, Any]) -> int:
    built = builder.build(event)
    assert isinstance(built, BuiltEvent)
    ua = len(user_attributes_fragment(built.user_attributes))
    return batch_size(built.key, len(built.body), 1, ua, built.source_request_id)


def test_an_event_whose_batch_is_exactly_128_kb_passes_and_one_byte_more_is_rejected() -> None:
    config = _config(
        {"userIdentities": {"customer_id": "user.id"}},
        mapping={"product": {"view": {"data": "data"}}},
    )
    builder = EventBuilder.from_config(config)
    base = _single_size(builder, _padded(0))
    at_limit = _padded(128 * 1024 - base)
    assert _single_size(builder, at_limit) == 128 * 1024
    with pytest.raises(LimitExceededError) as info:
        builder.build(_padded(128 * 1024 - base + 1))
    assert info.value.limit == "batch_bytes"
    assert "'ev-1'" in str(info.value) and "'product view'" in str(info.value)
