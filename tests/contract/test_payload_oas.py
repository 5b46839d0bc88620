"""Every payload the builder produces fits the official OAS (patched only for SPEC §9 gaps).

Hypothesis draws walkerOS events and destination configs (identities, user attributes,
ip, source_request_id, consent, every event type, data and commerce mappings). A build
either produces bytes whose batch validates against the OAS, or refuses the event with
``InvalidEventError`` because a mapping produced something mParticle would reject;
it never produces an invalid payload.

The builder follows the official file, which is looser than the fake server's own
schema (a commerce event whose mapped fields all resolve to nothing, for one), so
this needs the file beside the checkout and is skipped without it.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from support.mp_strategies import json_values, model_strategy
from support.oas import validate_batch, validate_bulk
from support.references import OAS, requires

from mparticle_dest import InvalidEventError
from mparticle_dest._event import normalize_event
from mparticle_dest._mparticle import models as m
from mparticle_dest._mparticle.constants import IDENTITY_TYPES
from mparticle_dest._payload.builder import BuiltEvent, EventBuilder, Skipped
from mparticle_dest._wire import encode_batch, encode_bulk

_word = st.text("abcdefghij", min_size=1, max_size=6)
_paths = st.sampled_from(
    ["user.id", "user.email", "data.a", "data.b", "data", "custom", "globals.g", "id", "timestamp"]
)
_value_mappings = st.one_of(_paths, json_values.map(lambda v: {"value": v}))

_events = st.fixed_dictionaries(
    {
        "name": st.tuples(
            st.sampled_from(["product", "order", "page", "app"]),
            st.sampled_from(["view", "complete", "start"]),
        ).map(" ".join),
        "id": st.text(min_size=1, max_size=12),
        "timestamp": st.integers(1, 2**45),
        "data": st.dictionaries(st.sampled_from(["a", "b", "c", "é"]), json_values, max_size=4),
        "user": st.fixed_dictionaries({}, optional={"id": json_values, "email": json_values}),
        "custom": st.dictionaries(_word, json_values, max_size=2),
        "globals": st.fixed_dictionaries({}, optional={"g": json_values}),
        "consent": st.just({"functional": True}),
    }
)

# Event types and their rule settings: the walkerOS three, then eventData drawn
# from the models (valid by construction) for every other type.
_WALKEROS_TYPES = ("custom_event", "screen_view", "commerce_event")
_TAIL = ("custom_attributes", "timestamp_unixtime_ms", "source_message_id")
_OTHER_TYPES = [c for c in typing.get_args(m.Event) if c.event_type not in _WALKEROS_TYPES]


def _event_data(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    own = set(cls.wire_order()) - set(_TAIL)
    return model_strategy(cls).map(
        lambda e: {"value": {k: v for k, v in e.to_dict()["data"].items() if k in own}}
    )


_commerce = st.one_of(
    # valid commerce data from the models, as a static value
    model_strategy(m.CommerceEvent).map(
        lambda e: {"value": {k: v for k, v in e.to_dict()["data"].items() if k not in _TAIL}}
    ),
    # mappings over the event: may well produce something mParticle rejects
    st.dictionaries(
        st.sampled_from(["currency_code", "product_action", "is_non_interactive", "screen_name"]),
        _value_mappings,
        min_size=1,
        max_size=3,
    ).map(lambda d: {"map": d}),
)

_rule_settings_choices = (
    st.fixed_dictionaries(
        {},
        optional={
            "eventType": st.sampled_from(["custom_event", "screen_view"]),
            "customEventType": st.sampled_from(list(typing.get_args(m.CustomEventType))),
            "userIdentities": st.dictionaries(
                st.sampled_from(IDENTITY_TYPES), _value_mappings, max_size=2
            ),
            "userAttributes": st.one_of(_paths, _value_mappings),
        },
    ),
    st.fixed_dictionaries({"eventType": st.just("commerce_event"), "commerce": _commerce}),
    st.sampled_from(_OTHER_TYPES).flatmap(
        lambda cls: st.fixed_dictionaries(
            {"eventType": st.just(cls.event_type), "eventData": _event_data(cls)}
        )
    ),
)
_rule_settings = st.sampled_from(_rule_settings_choices).flatmap(lambda s: s)

_rules = st.fixed_dictionaries(
    {"settings": _rule_settings},
    optional={
        "name": _word,
        "data": st.one_of(
            _paths, st.dictionaries(_word, _value_mappings, max_size=4).map(lambda d: {"map": d})
        ),
    },
)

_configs = st.fixed_dictionaries(
    {
        "settings": st.fixed_dictionaries(
            {"apiKey": st.just("key"), "apiSecret": st.just("secret")},
            optional={
                "environment": st.sampled_from(["production", "development"]),
                "userIdentities": st.dictionaries(
                    st.sampled_from(IDENTITY_TYPES), _value_mappings, max_size=3
                ),
                "userAttributes": st.one_of(
                    _paths,
                    st.dictionaries(_word, _value_mappings, max_size=4).map(lambda d: {"map": d}),
                ),
                "ip": _value_mappings,
                "sourceRequestId": _value_mappings,
                "consent": model_strategy(m.ConsentState).map(lambda c: c.to_dict()),
            },
        ),
        "mapping": st.dictionaries(
            st.sampled_from(["product", "order", "page", "app", "*"]),
            st.dictionaries(
                st.sampled_from(["view", "complete", "*"]), _rules, min_size=1, max_size=2
            ),
            min_size=1,
            max_size=3,
        ),
    }
)


def _commerce_is_mapped(builder: EventBuilder, event: dict[str, Any]) -> bool:
    """Whether the rule matching ``event`` makes a commerce event (refused at push when
    its mapped fields are malformed or name none of the commerce actions)."""
    rule = builder.config.compiled_mapping.process(normalize_event(event)).rule
    settings = rule.settings if rule is not None else None
    return settings is not None and settings.event_type == "commerce_event"


@requires(OAS)
@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(config=_configs, events=st.lists(_events, min_size=1, max_size=4))
def test_built_payloads_always_fit_the_oas(
    config: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    builder = EventBuilder.from_config(config)
    built: list[BuiltEvent] = []
    for event in events:
        try:
            result = builder.build(event)
        except InvalidEventError as exc:
            assert _commerce_is_mapped(builder, event), exc
            hypothesis_event("refused: mapped commerce")
            continue
        if isinstance(result, Skipped):
            hypothesis_event(f"skipped: {result.reason}")
            continue
        hypothesis_event(f"built: {result.event_type}")
        batch = json.loads(
            encode_batch(
                result.key, [result.body], result.user_attributes, result.source_request_id
            )
        )
        validate_batch(batch)
        built.append(result)
    # events sharing a key share a batch: the multi-event batches fit too
    by_key: dict[Any, list[BuiltEvent]] = {}
    for b in built:
        by_key.setdefault(b.key, []).append(b)
    bodies = []
    for key, group in by_key.items():
        merged: dict[str, Any] = {}
        for b in group:
            merged.update(b.user_attributes or {})
        bodies.append(
            encode_batch(key, [b.body for b in group], merged, group[0].source_request_id)
        )
    if bodies:
        validate_bulk(json.loads(encode_bulk(bodies)))
