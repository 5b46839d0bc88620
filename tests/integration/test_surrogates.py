"""A lone surrogate anywhere in an event, or in what the mapping makes of it (#16).

Such text has no UTF-8 encoding, so it can never reach mParticle. The rule is the
same everywhere: ``push`` raises ``InvalidEventError`` naming the field (the event's
dotted path, or the mParticle field for a mapping's output), the event is counted as
invalid, and the generated build path agrees with the general one.
"""

from __future__ import annotations

from typing import Any

import pytest

from mparticle_dest import Destination, InvalidEventError, Stats
from mparticle_dest._event import prepare_event
from mparticle_dest._payload import BuiltEvent, EventBuilder
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio

LONE = "\ud800"


def _event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "name": "product view",
        "id": "ev-1",
        "timestamp": 1_700_000_000_000,
        "data": {"id": "SKU-1", "price": 9.5},
        "user": {"id": "u1"},
    }
    event.update(fields)
    return event


def _config(server: FakeMparticle, mapping: Any = None, **settings: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "settings": {
            **server.settings,
            "userIdentities": {"customer_id": "user.id"},
            **settings,
        },
        "batch": {"age": 10},
    }
    if mapping is not None:
        config["mapping"] = mapping
    return config


def _counted_once(stats: Stats) -> bool:
    """The documented invariant: every pushed event in exactly one counter."""
    return stats.pushed == (
        stats.invalid
        + sum(stats.skipped.values())
        + stats.dropped
        + stats.refused
        + stats.delivered_events
        + stats.failed_events
        + stats.buffered
    )


EVENT_CASES = [
    ({"name": f"product {LONE}"}, "name"),
    ({"name": f"product view {LONE}"}, "name"),
    ({"user": {"id": f"u{LONE}1"}}, "user.id"),
    ({"data": {"id": "SKU-1", "note": f"x{LONE}"}}, "data.note"),
    ({"data": {f"k{LONE}": 1}}, "data.k\\ud800"),
    ({"data": {"list": [{"deep": ["ok", f"\udfff{LONE}"]}]}}, "data.list.0.deep.1"),
    ({"trigger": f"click{LONE}"}, "trigger"),
    ({"custom": {"nested": {"x": f"é{LONE}"}}}, "custom.nested.x"),
    ({f"extra{LONE}": 1}, "extra\\ud800"),
    ({"globals": {"tag": f"{LONE}"}}, "globals.tag"),
]


@pytest.mark.parametrize(("fields", "field"), EVENT_CASES)
async def test_a_lone_surrogate_in_the_event_is_an_invalid_event_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    async with FakeMparticle() as server:
        async with Destination(_config(server), base_url=server.url) as dest:
            with pytest.raises(InvalidEventError) as info:
                await dest.push(_event(**fields))
            good = await dest.push(_event(id="ev-2"))
        stats = dest.stats
    assert info.value.field == field
    assert "lone surrogate" in str(info.value)
    str(info.value).encode("utf-8")  # the message itself is printable (escaped)
    assert (await good).delivered
    assert (stats.pushed, stats.invalid, stats.delivered_events) == (2, 1, 1)
    assert _counted_once(stats)
    assert server.event_count == 1


MAPPED = {
    "product": {
        "view": {
            "data": {
                "map": {
                    "sku": "data.id",
                    "label": {"fn": lambda event: f"{event['data']['id']}{LONE}"},
                }
            }
        }
    }
}


@pytest.mark.parametrize(
    ("mapping", "settings", "field"),
    [
        (MAPPED, {}, "custom_attributes.label"),
        (None, {"userIdentities": {"customer_id": {"fn": lambda _: f"u{LONE}"}}}, None),
        (None, {"userIdentities": {"customer_id": {"value": f"u{LONE}"}}}, None),
        (None, {"userAttributes": {"map": {"tier": {"fn": lambda _: [f"g{LONE}"]}}}}, None),
        (None, {"ip": {"fn": lambda _: f"10.0.0.1{LONE}"}}, "ip"),
        (None, {"sourceRequestId": {"fn": lambda _: f"r{LONE}"}}, "source_request_id"),
        ({"product": {"view": {"name": f"viewed{LONE}"}}}, {}, "event_name"),
        (
            {"product": {"view": {"data": {"map": {"c": {"value": f"c{LONE}"}}}}}},
            {},
            "custom_attributes.c",
        ),
    ],
)
async def test_a_lone_surrogate_from_the_mapping_names_the_mparticle_field(
    mapping: Any, settings: dict[str, Any], field: str | None
) -> None:
    expected = (
        field
        or {
            "userIdentities": "user_identities.customer_id",
            "userAttributes": "user_attributes.tier.0",
        }[next(iter(settings))]
    )
    async with FakeMparticle() as server:
        async with Destination(_config(server, mapping, **settings), base_url=server.url) as dest:
            with pytest.raises(InvalidEventError) as info:
                await dest.push(_event())
        stats = dest.stats
    assert info.value.field == expected
    assert "the mapping produced" in str(info.value) and "lone surrogate" in str(info.value)
    str(info.value).encode("utf-8")
    assert (stats.pushed, stats.invalid, stats.mapped) == (1, 1, 0)
    assert _counted_once(stats)
    assert server.requests == []


@pytest.mark.parametrize(
    ("settings", "mapping", "field"),
    [
        ({"userIdentities": {"customer_id": {"value": f"u{LONE}"}}}, None, None),
        ({}, {"product": {"view": {"name": f"viewed{LONE}"}}}, "event_name"),
        ({}, {"product": {"view": {"data": {"map": {"c": {"value": f"{LONE}"}}}}}}, None),
    ],
)
def test_the_generated_path_leaves_such_constants_to_the_general_one(
    settings: dict[str, Any], mapping: Any, field: str | None
) -> None:
    config: dict[str, Any] = {"settings": {"apiKey": "k", "apiSecret": "s", **settings}}
    if mapping is not None:
        config["mapping"] = mapping
    builder = EventBuilder.from_config(config)
    assert builder._fast_for("product view") is None
    with pytest.raises(InvalidEventError, match="lone surrogate"):
        builder.build(_event())
    # The same config without the surrogate gets a generated function giving the
    # general path's result.
    clean = EventBuilder.from_config(
        {
            "settings": {"apiKey": "k", "apiSecret": "s", **_without(settings)},
            **({"mapping": _without(mapping)} if mapping is not None else {}),
        }
    )
    fast = clean._fast_for("product view")
    assert fast is not None
    ev = prepare_event(_event())
    built = fast(ev)
    assert isinstance(built, BuiltEvent) and built == clean._build(ev)


def _without(value: Any) -> Any:
    """``value`` with the lone surrogates removed from its strings."""
    if isinstance(value, str):
        return value.replace(LONE, "")
    if isinstance(value, dict):
        return {k: _without(v) for k, v in value.items()}
    return value


def test_a_consent_state_with_a_lone_surrogate_is_a_config_error() -> None:
    from mparticle_dest import ConfigError

    consent = {"gdpr": {f"p{LONE}": {"consented": True}}}
    with pytest.raises(ConfigError, match=r"settings.consent: gdpr.p\\ud800: holds a lone"):
        Destination({"settings": {"apiKey": "k", "apiSecret": "s", "consent": consent}})
