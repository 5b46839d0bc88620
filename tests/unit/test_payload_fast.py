"""The generated build functions (_payload_fast) give exactly what the general build gives.

``EventBuilder.build`` runs a rule's generated function first and the general path
when the function declines (returns ``None``). These tests pin which configs get a
generated function, which events it declines, and (with hypothesis) that whatever it
returns equals the general path's result: body bytes, batch key and every field.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mparticle_dest import InvalidEventError, LimitExceededError, MparticleDestError
from mparticle_dest._event import prepare_event
from mparticle_dest._mparticle.constants import IDENTITY_TYPES
from mparticle_dest._payload.builder import BuiltEvent, EventBuilder, Skipped
from mparticle_dest._payload.fast import FastSpec, fast_source
from mparticle_dest._wire import compact_fragments, compact_key, key_fragments

CREDENTIALS = {"apiKey": "key", "apiSecret": "secret"}
ATTRIBUTES = {"sku": "data.id", "label": "data.name", "price": "data.price"}
SCENARIO = {
    "settings": {
        **CREDENTIALS,
        "userIdentities": {"customer_id": "user.id", "email": "user.email"},
    },
    "mapping": {"product": {"view": {"data": {"map": ATTRIBUTES}}}},
}


def _event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": "product view",
        "entity": "product",
        "action": "view",
        "id": "ev-1",
        "timestamp": 1700000100000,
        "data": {"id": "SKU-1", "name": "Shoe", "price": 9.5},
        "user": {"id": "u1", "email": "u1@example.com"},
    }
    event.update(fields)
    return event


def _paths(builder: EventBuilder, event: dict[str, Any]) -> tuple[Any, Any]:
    """``(generated result or None, general result or the exception it raised)``."""
    ev = prepare_event(event)
    try:
        general: Any = builder._build(ev)
    except MparticleDestError as exc:
        general = exc
    fast = builder._fast_for(ev["name"])
    return (None if fast is None else fast(ev)), general


# ------------------------------------------------------------------ the fast path itself


def test_scenario_event_takes_the_generated_path_with_the_general_bytes() -> None:
    builder = EventBuilder.from_config(SCENARIO)
    fast, general = _paths(builder, _event())
    assert isinstance(fast, BuiltEvent)
    assert fast == general
    assert json.loads(fast.body) == {
        "event_type": "custom_event",
        "data": {
            "event_name": "product view",
            "custom_event_type": "other",
            "custom_attributes": {"sku": "SKU-1", "label": "Shoe", "price": 9.5},
            "timestamp_unixtime_ms": 1700000100000,
            "source_message_id": "ev-1",
        },
    }
    assert fast.key.user_identities == (("customer_id", "u1"), ("email", "u1@example.com"))
    assert (fast.mapping_key, fast.source_request_id, fast.truncated) == (
        "product view",
        "ev-1",
        (),
    )
    assert builder.build(_event()) == general


def test_renamed_screen_view_with_static_consent_batch_options_and_plain_forms() -> None:
    config = {
        "settings": {
            **CREDENTIALS,
            "environment": "development",
            "consent": {"ccpa": {"data_sale_opt_out": {"consented": False}}},
            "userIdentities": {"customer_id": {"key": "user.id"}, "other": {"value": 7}},
        },
        "mapping": {
            "page": {
                "*": {
                    "name": "Page 'quoted' \"name\"",
                    "data": {
                        "map": {
                            "path": {"key": "data.path", "value": "/"},
                            "source": {"value": "web"},
                            "deep": "globals.a.b.c",
                        }
                    },
                    "batch": {"size": 5},
                    "settings": {"eventType": "screen_view"},
                }
            }
        },
    }
    builder = EventBuilder.from_config(config)
    event = _event(name="page view", data={}, globals={"a": {"b": {"c": True}}})
    fast, general = _paths(builder, event)
    assert isinstance(fast, BuiltEvent) and fast == general
    assert json.loads(fast.body)["data"] == {
        "screen_name": "Page 'quoted' \"name\"",
        "custom_attributes": {"path": "/", "source": "web", "deep": True},
        "timestamp_unixtime_ms": 1700000100000,
        "source_message_id": "ev-1",
    }
    assert fast.key.user_identities == (("customer_id", "u1"), ("other", 7))
    assert fast.batch is not None and fast.batch.size == 5
    assert fast.mapping_key == "page *"


def test_event_without_a_rule_uses_the_default_generated_function() -> None:
    builder = EventBuilder.from_config(SCENARIO)
    fast, general = _paths(builder, _event(name="page view"))
    assert isinstance(fast, BuiltEvent) and fast == general
    assert fast.mapping_key is None
    assert "custom_attributes" not in json.loads(fast.body)["data"]


def test_missing_and_empty_values_are_dropped_on_the_generated_path() -> None:
    builder = EventBuilder.from_config(SCENARIO)
    event = _event(user={"id": None, "email": ""}, data={"id": "", "price": 0})
    fast, general = _paths(builder, event)
    assert isinstance(fast, BuiltEvent) and fast == general
    assert fast.key.user_identities == ()
    assert json.loads(fast.body)["data"]["custom_attributes"] == {"sku": "", "price": 0}
    fast, general = _paths(builder, _event(data={}, user={"id": 42}))
    assert isinstance(fast, BuiltEvent) and fast == general
    assert fast.key.user_identities == (("customer_id", 42),)
    assert "custom_attributes" not in json.loads(fast.body)["data"]


@pytest.mark.parametrize(
    ("consent", "granted"),
    [
        ({"functional": True, "marketing": True}, True),
        ({"functional": False, "marketing": True, "ads": True}, True),
        ({"functional": True, "marketing": False}, False),
        ({"functional": True}, False),
        ({"marketing": True}, False),
        ({}, False),
        (None, False),
    ],
)
def test_consent_requirements_are_checked_by_the_generated_function(
    consent: dict[str, bool] | None, granted: bool
) -> None:
    config = {
        **SCENARIO,
        "consent": {"functional": True, "ads": True},
        "mapping": {"product": {"view": {"consent": {"marketing": True}}}},
    }
    builder = EventBuilder.from_config(config)
    event = _event(consent=consent) if consent is not None else _event()
    fast, general = _paths(builder, event)
    if granted:
        assert isinstance(fast, BuiltEvent) and fast == general
    else:
        assert fast is None
        assert isinstance(general, Skipped) and general.reason == "consent"
        built = builder.build(event)
        assert isinstance(built, Skipped) and built.reason == "consent"


def test_a_consent_requirement_without_groups_has_no_generated_function() -> None:
    builder = EventBuilder.from_config({**SCENARIO, "consent": {"functional": False}})
    assert builder._fast_for("product view") is None
    built = builder.build(_event(consent={"functional": True}))
    assert isinstance(built, Skipped) and built.reason == "consent"


def test_generated_functions_are_shared_per_rule_and_remembered_per_name() -> None:
    config = {
        "settings": CREDENTIALS,
        "mapping": {"product": {"*": {"data": {"map": {"id": "data.id"}}}}},
    }
    builder = EventBuilder.from_config(config)
    view, click = builder._fast_for("product view"), builder._fast_for("product click")
    assert view is not None and view is click
    assert builder._fast["product view"] is view


# ------------------------------------------------------------------ declined events


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"data": {"id": "x" * 4097}}, LimitExceededError),
        ({"data": {"id": {"a": 1}}}, '{"a":1}'),
        ({"data": {"id": [1, "b"]}}, '[1,"b"]'),
        ({"user": {"id": True}}, "true"),
        ({"user": {"id": 2.0}}, 2),
        ({"user": {"id": 2.5}}, 2.5),
        ({"user": {"id": ["u"]}}, None),
        ({"name": "product view " + "x" * 300}, "truncated"),
        ({"timestamp": 1700000100000.5}, 1700000100000),
        ({"timestamp": 0}, "now"),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_unusual_values_are_left_to_the_general_path(fields: dict[str, Any], expected: Any) -> None:
    builder = EventBuilder.from_config(SCENARIO)
    event = _event(**fields)
    fast, general = _paths(builder, event)
    assert fast is None
    if isinstance(general, Exception):
        with pytest.raises(type(general)):
            builder.build(event)
        assert expected is type(general)
        return
    built = builder.build(event)
    assert isinstance(built, BuiltEvent)
    assert built.key == general.key
    if expected != "now":
        assert built.body == general.body
    data = json.loads(built.body)["data"]
    if "user" in fields:
        identities = dict(built.key.user_identities)
        assert identities.get("customer_id") == expected
    elif "data" in fields:
        assert data.get("custom_attributes", {}).get("sku") == expected
    elif "name" in fields:
        assert built.truncated == ("event_name_length",)
        assert len(data["event_name"]) == 256
    elif fields.get("timestamp") == 0:
        assert data["timestamp_unixtime_ms"] > 1700000100000
    else:
        assert data["timestamp_unixtime_ms"] == expected


def test_a_parent_that_is_not_a_dict_is_left_to_the_general_path() -> None:
    config = {
        "settings": {**CREDENTIALS, "userIdentities": {"customer_id": "globals.a.id"}},
        "mapping": {"product": {"view": {"data": {"map": {"b": "globals.a.b"}}}}},
    }
    builder = EventBuilder.from_config(config)
    for a in ([{"id": "x"}], "text", {"id": "u", "b": "B"}):
        fast, general = _paths(builder, _event(globals={"a": a}))
        assert isinstance(general, BuiltEvent)
        if isinstance(a, dict):
            assert fast == general
            assert general.key.user_identities == (("customer_id", "u"),)
        else:
            assert fast is None
            assert general.key.user_identities == ()
            assert "custom_attributes" not in json.loads(general.body)["data"]


def test_event_near_the_batch_limit_is_left_to_the_general_path() -> None:
    builder = EventBuilder.from_config(SCENARIO)
    big = {"data": {"id": "x" * 4000, "name": "y" * 4000}, "user": {"id": "u" * 60000}}
    fast, general = _paths(builder, _event(**big))
    assert fast is None and isinstance(general, BuiltEvent)
    fast, general = _paths(builder, _event(user={"id": "u" * 140000}))
    assert fast is None
    assert isinstance(general, LimitExceededError) and general.limit == "batch_bytes"


# ------------------------------------------------------------------ configs without one


@pytest.mark.parametrize(
    "config",
    [
        {"settings": {**CREDENTIALS, "ip": "user.ip"}},
        {"settings": {**CREDENTIALS, "sourceRequestId": "id"}},
        {"settings": {**CREDENTIALS, "userAttributes": {"map": {"plan": "user.plan"}}}},
        {"settings": {**CREDENTIALS, "userIdentities": {"customer_id": {"fn": str}}}},
        {"settings": {**CREDENTIALS, "userIdentities": {"customer_id": "nested.*.id"}}},
        {"settings": {**CREDENTIALS, "userIdentities": {"other": {"value": True}}}},
        {"settings": {**CREDENTIALS, "userIdentities": {"other": {"key": "a", "value": 1.5}}}},
        {"settings": CREDENTIALS, "policy": {"data.id": "user.id"}},
        {"settings": CREDENTIALS, "data": {"map": {"id": "data.id"}}},
        {"settings": CREDENTIALS, "include": ["globals"]},
    ],
    ids=lambda c: next(iter(c["settings"].keys() - CREDENTIALS.keys()), None) or list(c)[1],
)
def test_configs_with_more_than_plain_parts_have_no_generated_function(
    config: dict[str, Any],
) -> None:
    builder = EventBuilder.from_config(config)
    assert builder._fast_for("product view") is None
    event = _event(user={"id": "u1", "ip": "1.2.3.4"}, consent={"functional": True})
    assert isinstance(builder.build(event), BuiltEvent)


@pytest.mark.parametrize(
    "rule",
    [
        {"condition": lambda event: True},
        {"consent": {"marketing": False}},
        {"policy": {"data.id": "user.id"}},
        {"ignore": True},
        {"silent": True},
        {"include": ["globals"]},
        {"remove": ["id"]},
        {"data": "data"},
        {"data": {"map": {"id": ["data.id", "user.id"]}}},
        {"data": {"map": {"id": "data.id"}, "value": {}}},
        {"data": {"map": {f"a{i}": "data.id" for i in range(101)}}},
        {"name": "n" * 257},
        {"data": {"map": {"long": {"value": "v" * 4097}}}},
        {"name": "renamed", "data": {"map": {"name": "name"}}},
        {"settings": {"eventType": "commerce_event", "commerce": {"map": {"currency_code": "id"}}}},
        {"settings": {"eventType": "screen_view", "eventData": {"map": {"x": "id"}}}},
        {"settings": {"eventType": "session_start", "eventData": {"map": {"session_id": "id"}}}},
        {"settings": {"userIdentities": {"email": {"fn": str}}}},
    ],
    ids=lambda r: ",".join(r),
)
def test_rules_with_more_than_plain_parts_have_no_generated_function(rule: dict[str, Any]) -> None:
    builder = EventBuilder.from_config(
        {"settings": CREDENTIALS, "mapping": {"product": {"view": rule}}}
    )
    assert builder._fast_for("product view") is None
    try:
        builder.build(_event())
    except MparticleDestError:
        pass  # the general path decides (e.g. an empty commerce event is refused)


def test_a_conditional_rule_before_the_match_leaves_the_name_to_the_general_path() -> None:
    config = {
        "settings": CREDENTIALS,
        "mapping": {
            "product": {"view": [{"condition": lambda e: False, "name": "never"}, {"name": "b"}]}
        },
    }
    builder = EventBuilder.from_config(config)
    assert builder._fast_for("product view") is None
    built = builder.build(_event())
    assert isinstance(built, BuiltEvent) and built.event_name == "b"


def test_generated_source_is_plain_python_with_literal_constants() -> None:
    spec = FastSpec(
        event_type="custom_event",
        custom_event_type="navigation",
        prefix=b'{"event_type":"custom_event","data":',
        rule_name=None,
        identities=(("customer_id", (("user", "id"), None)),),
        attributes=(("it's", (("data", 'x"\n'), 1.5)),),
        environment="production",
        consent=None,
        envelope_bound=1024,
        batch=None,
        mapping_key="product view",
    )
    source = fast_source(spec)
    assert source is not None and source.startswith("def build(ev):\n")
    assert "v = p1.get('x\"\\n') if p1 is not None else None" in source
    assert 'ca["it\'s"] = v' in source
    assert "ck = b'\"production\",' + dumps(ids)\n" in source
    compile(source, "<test>", "exec")
    assert fast_source(spec._replace(event_type="commerce_event")) is None


# ------------------------------------------------------------------ differential property

# Paths into the generated events (those under data and user are the likeliest).
_PATHS = [
    *["user.id", "user.email", "user.n", "data.id", "data.v", "data.w"] * 3,
    "id",
    "name",
    "entity",
    "globals.a.b",
    "nested.0.id",
    "nested.*.id",
    "missing.x",
    "",
]
_statics = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.just("z" * 4097),
    st.just({"a": 1}),
)
_value_specs = st.one_of(
    st.sampled_from(_PATHS),
    st.builds(lambda p: {"key": p}, st.sampled_from(_PATHS)),
    st.builds(lambda p, v: {"key": p, "value": v}, st.sampled_from(_PATHS), _statics),
    st.builds(lambda v: {"value": v}, _statics),
    st.just(["data.v", "user.id"]),
)
_maps = st.builds(
    lambda m: {"map": m},
    st.dictionaries(st.text(max_size=4), _value_specs, min_size=1, max_size=4),
)
_rules = st.fixed_dictionaries(
    {"data": st.one_of(_maps, _maps, _maps, st.sampled_from(_PATHS), st.just(""))},
    optional={
        "name": st.sampled_from(["renamed", "Ünïcode \"q\" 'x'\n", "r" * 257, ""]),
        "settings": st.fixed_dictionaries(
            {},
            optional={
                "eventType": st.sampled_from(["custom_event", "screen_view"]),
                "customEventType": st.sampled_from(["other", "navigation"]),
                "userIdentities": st.dictionaries(
                    st.sampled_from(IDENTITY_TYPES), _value_specs, max_size=2
                ),
            },
        ),
        "batch": st.builds(lambda n: {"size": n}, st.integers(1, 9)),
    },
)
# Mostly plain rules; now and then one the general path handles alone.
_rules = st.builds(
    lambda rule, extra: {**rule, **extra},
    _rules,
    st.sampled_from(
        [{}] * 5 + [{"ignore": True}, {"consent": {"marketing": True}}, {"consent": {}}]
    ),
)
_configs = st.builds(
    lambda identities, limits, extra, rules, consent: {
        "settings": {**CREDENTIALS, "userIdentities": identities, "limits": limits, **extra},
        "mapping": rules,
        **consent,
    },
    st.dictionaries(st.sampled_from(IDENTITY_TYPES), _value_specs, max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            key: st.sampled_from(["truncate", "reject"])
            for key in ("eventName", "customAttributes", "attributeValue")
        },
    ),
    st.sampled_from(
        [
            {},
            {},
            {"environment": "development"},
            {"consent": {"ccpa": {"data_sale_opt_out": {"consented": True}}}},
            {"ip": "user.ip"},
        ]
    ),
    st.dictionaries(
        st.sampled_from(["product", "page", "*"]),
        st.dictionaries(st.sampled_from(["view", "*"]), _rules, min_size=1, max_size=2),
        min_size=1,
        max_size=2,
    ),
    st.sampled_from(
        [{}] * 3 + [{"consent": {"functional": True}}, {"consent": {"ads": True, "x": True}}]
    ),
)
# The edges: empty, at and over the value length, escapes, past 64 bits, -0.0.
_edges = st.sampled_from(["", "x" * 4096, "x" * 4097, '"\\\n\x00é😀', 2**64, -0.0, 1.0])
_scalars = st.one_of(
    _edges,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
_values = st.one_of(
    _edges,
    _scalars,
    _scalars,
    st.lists(_scalars, max_size=2),
    st.dictionaries(st.text(max_size=3), _scalars, max_size=2),
)
_sections = st.dictionaries(
    st.sampled_from(["id", "email", "n", "v", "w", "ip"]), _values, max_size=5
)
_events = st.fixed_dictionaries(
    {
        "name": st.sampled_from(
            ["product view", "product click", "page view", "order complete", "product view x"]
        )
        | st.just("product " + "v" * 300),
        "timestamp": st.sampled_from([1700000100000, 0, 1700000100000.25, 2**70]),
        "consent": st.sampled_from(
            [{"functional": True}, {"marketing": True}, {}, {"x": True, "marketing": False}]
        ),
    },
    optional={
        "id": st.sampled_from(["ev-1", "0123456789abcdef"]),
        "data": _sections,
        "user": _sections,
        "globals": st.sampled_from([{"a": {"b": "deep"}}, {"a": [1]}, {"a": {"b": {"c": 1}}}]),
        "nested": st.just([{"id": "n1"}]),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=_configs, event=_events)
def test_generated_path_equals_the_general_path(
    config: dict[str, Any], event: dict[str, Any]
) -> None:
    try:
        builder = EventBuilder.from_config(config)
        ev = prepare_event(event)
    except (MparticleDestError, ValueError):
        return  # configs and events both paths refuse alike (not what this test is about)
    fast_fn = builder._fast_for(ev["name"])
    try:
        general: Any = builder._build(ev)
    except MparticleDestError as exc:
        if fast_fn is not None:
            assert fast_fn(ev) is None
        with pytest.raises(type(exc)) as raised:
            builder.build(ev)
        assert getattr(raised.value, "field", None) == getattr(exc, "field", None)
        assert getattr(raised.value, "limit", None) == getattr(exc, "limit", None)
        return
    if fast_fn is not None:
        fast = fast_fn(ev)
        if fast is not None:
            assert type(fast) is BuiltEvent
            assert fast == general
            assert fast.body == general.body
            assert fast.key == general.key and type(fast.key) is type(general.key)
    built = builder.build(ev)
    if isinstance(general, Skipped):
        assert isinstance(built, Skipped)
        assert (built.reason, built.event_id, built.event_name, built.mapping_key) == (
            general.reason,
            general.event_id,
            general.event_name,
            general.mapping_key,
        )
    elif general.event_id == ev.get("id") and general.timestamp_ms == ev.get("timestamp"):
        assert built == general


@settings(max_examples=300, deadline=None)
@given(
    limits=st.fixed_dictionaries(
        {}, optional={"attributeValue": st.sampled_from(["truncate", "reject"])}
    ),
    user=st.dictionaries(st.sampled_from(["id", "email"]), _values),
    data=st.dictionaries(st.sampled_from(["id", "name", "price"]), _values),
)
def test_generated_path_equals_the_general_path_for_any_mapped_value(
    limits: dict[str, str], user: dict[str, Any], data: dict[str, Any]
) -> None:
    config = {**SCENARIO, "settings": {**SCENARIO["settings"], "limits": limits}}
    builder = EventBuilder.from_config(config)
    fast_fn = builder._fast_for("product view")
    assert fast_fn is not None
    ev = prepare_event(_event(user=user, data=data))
    fast = fast_fn(ev)
    try:
        general = builder._build(ev)
    except LimitExceededError:
        assert fast is None
        return
    assert fast is None or fast == general
    assert builder.build(ev) == general


# ------------------------------------------------------------------ the key's compact bytes

# Text of every kind (quotes, backslashes, control characters, non-ASCII; lone
# surrogates are refused before any build), ints inside and beyond orjson's 64 bits.
_identity_values = st.one_of(
    st.text(max_size=8),
    st.sampled_from(['"\\\n\x00\x7f\u2028é😀', "</script>", "ü" * 3]),
    st.integers(-(2**65), 2**65),
    st.none(),
)
_consent_items = st.fixed_dictionaries(
    {"consented": st.booleans()},
    optional={"document": st.text(max_size=6), "timestamp_unixtime_ms": st.integers(0, 2**40)},
)
_consents = st.one_of(
    st.none(),
    st.builds(
        lambda purposes: {"gdpr": purposes},
        st.dictionaries(st.text(min_size=1, max_size=4), _consent_items, min_size=1, max_size=2),
    ),
    st.builds(lambda item: {"ccpa": {"data_sale_opt_out": item}}, _consent_items),
)


@settings(max_examples=400, deadline=None)
@given(
    types=st.lists(st.sampled_from(IDENTITY_TYPES), unique=True, max_size=4),
    values=st.lists(_identity_values, min_size=4, max_size=4),
    environment=st.sampled_from(["production", "development"]),
    consent=_consents,
    renamed=st.booleans(),
)
def test_generated_key_bytes_are_the_general_keys_compact_bytes(
    types: list[str],
    values: list[Any],
    environment: str,
    consent: dict[str, Any] | None,
    renamed: bool,
) -> None:
    """The generated build writes the key's compact bytes itself (the accumulator's
    tables are keyed by them): byte for byte what ``compact_key`` gives for the general
    path's key, so one user's events share one batch whichever path built them."""
    settings_: dict[str, Any] = {
        **CREDENTIALS,
        "environment": environment,
        "userIdentities": {t: f"user.i{n}" for n, t in enumerate(types)},
    }
    if consent is not None:
        settings_["consent"] = consent
    rule = {"name": "renamed"} if renamed else {}
    builder = EventBuilder.from_config({"settings": settings_, "mapping": {"page": {"view": rule}}})
    fast_fn = builder._fast_for("page view")
    assert fast_fn is not None
    user = {f"i{n}": v for n, v in enumerate(values[: len(types)]) if v is not None}
    ev = prepare_event(_event(name="page view", user=user))
    general = builder._build(ev)
    assert isinstance(general, BuiltEvent)
    assert general.compact_key == compact_key(general.key)
    fast = fast_fn(ev)
    if fast is None:
        # Only what orjson refuses goes to the general path: an int beyond 64 bits.
        assert any(type(v) is int and not -(2**63) <= v < 2**64 for v in user.values())
        assert builder.build(ev) == general
        return
    assert fast.compact_key == general.compact_key
    assert fast.key == general.key
    # The envelope read back from the bytes is the key's own.
    assert compact_fragments(fast.compact_key) == key_fragments(general.key)


def test_the_generated_key_bytes_are_compact_json_around_the_identities() -> None:
    config = {
        "settings": {
            **CREDENTIALS,
            "environment": "development",
            "consent": {"ccpa": {"data_sale_opt_out": {"consented": False}}},
            "userIdentities": {"customer_id": "user.id", "other": "user.n"},
        }
    }
    builder = EventBuilder.from_config(config)
    fast_fn = builder._fast_for("page view")
    assert fast_fn is not None
    fast = fast_fn(prepare_event(_event(name="page view", user={"id": 'u"1', "n": 7})))
    assert isinstance(fast, BuiltEvent)
    assert fast.compact_key == (
        b'"development",{"customer_id":"u\\"1","other":7},null,'
        b'"{\\"ccpa\\":{\\"data_sale_opt_out\\":{\\"consented\\":false}}}"'
    )


def test_invalid_event_is_refused_by_build_before_any_path() -> None:
    builder = EventBuilder.from_config(SCENARIO)
    with pytest.raises(InvalidEventError):
        builder.build({"name": "nospace"})
