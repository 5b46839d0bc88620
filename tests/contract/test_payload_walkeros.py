"""A batch of one event is byte-for-byte the body the walkerOS mParticle destination posts.

The four step examples are the project's own record of walkerOS's output
(``tests/data/walkeros_steps.json``); the other cases mirror the walkerOS
destination's push tests (pod endpoints, rule ``name``, ``customEventType``,
``source_request_id`` defaulting to the event id, missing credentials).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from support.schemas import check_batch
from support.walkeros_steps import Step, load_steps, step_ids

from mparticle_dest import ConfigError
from mparticle_dest._config.model import DestinationConfig
from mparticle_dest._mparticle.constants import EVENTS_PATH
from mparticle_dest._payload.builder import BuiltEvent, EventBuilder
from mparticle_dest._wire import basic_auth_header, encode_batch, endpoint

CREDENTIALS = {"apiKey": "key", "apiSecret": "secret"}


def _event(name: str = "product view", **fields: Any) -> dict[str, Any]:
    return {"name": name, "id": "ev-1", "timestamp": 1700000100000, "user": {"id": "u1"}, **fields}


def _single_batch(config: dict[str, Any], event: dict[str, Any]) -> bytes:
    built = EventBuilder.from_config(config).build(event)
    assert isinstance(built, BuiltEvent)
    return encode_batch(built.key, [built.body], built.user_attributes, built.source_request_id)


@pytest.mark.parametrize("step", load_steps(), ids=step_ids)
def test_step_example_body_is_byte_identical(step: Step) -> None:
    body = _single_batch(copy.deepcopy(step.config), copy.deepcopy(step.event))
    assert body.decode("utf-8") == step.body
    check_batch(json.loads(body))


@pytest.mark.parametrize("step", load_steps(), ids=step_ids)
def test_step_example_headers(step: Step) -> None:
    settings = DestinationConfig.from_dict(step.config).settings
    assert step.path == EVENTS_PATH
    assert (
        basic_auth_header(settings.api_key, settings.api_secret) == (step.headers["Authorization"])
    )


@pytest.mark.parametrize(
    ("pod", "url"),
    [
        ("us1", "https://s2s.mparticle.com/v2/events"),
        ("eu1", "https://s2s.eu1.mparticle.com/v2/events"),
    ],
)
def test_pod_endpoints(pod: str, url: str) -> None:
    config = DestinationConfig.from_dict({"settings": {**CREDENTIALS, "pod": pod}})
    assert endpoint(config.settings.pod, None, EVENTS_PATH) == url


def test_default_push_is_a_custom_event_of_type_other() -> None:
    config = {"settings": {**CREDENTIALS, "userIdentities": {"customer_id": "user.id"}}}
    batch = json.loads(_single_batch(config, _event()))
    assert batch["events"][0]["event_type"] == "custom_event"
    assert batch["events"][0]["data"]["custom_event_type"] == "other"
    assert batch["user_identities"] == {"customer_id": "u1"}
    assert batch["environment"] == "production"


def test_rule_name_overrides_the_event_name() -> None:
    config = {"settings": CREDENTIALS, "mapping": {"product": {"view": {"name": "ProductViewed"}}}}
    batch = json.loads(_single_batch(config, _event()))
    assert batch["events"][0]["data"]["event_name"] == "ProductViewed"


def test_rule_name_overrides_the_screen_name() -> None:
    config = {
        "settings": CREDENTIALS,
        "mapping": {"page": {"view": {"name": "Home", "settings": {"eventType": "screen_view"}}}},
    }
    batch = json.loads(_single_batch(config, _event("page view")))
    assert batch["events"][0]["data"]["screen_name"] == "Home"


def test_custom_event_type_override() -> None:
    config = {
        "settings": CREDENTIALS,
        "mapping": {"product": {"view": {"settings": {"customEventType": "navigation"}}}},
    }
    batch = json.loads(_single_batch(config, _event()))
    assert batch["events"][0]["data"]["custom_event_type"] == "navigation"


def test_source_request_id_defaults_to_the_event_id() -> None:
    batch = json.loads(_single_batch({"settings": CREDENTIALS}, _event(id="ev-42")))
    assert batch["source_request_id"] == "ev-42"
    assert batch["events"][0]["data"]["source_message_id"] == "ev-42"


def test_without_identities_the_batch_has_no_user_identities_key() -> None:
    body = _single_batch({"settings": CREDENTIALS}, _event())
    assert body == (
        b'{"events":[{"event_type":"custom_event","data":{"event_name":"product view",'
        b'"custom_event_type":"other","timestamp_unixtime_ms":1700000100000,'
        b'"source_message_id":"ev-1"}}],"environment":"production","source_request_id":"ev-1"}'
    )


@pytest.mark.parametrize(
    ("settings", "missing"),
    [
        ({"apiSecret": "secret"}, "settings.apiKey"),
        ({"apiKey": "key"}, "settings.apiSecret"),
        ({"apiKey": "", "apiSecret": "secret"}, "settings.apiKey"),
    ],
)
def test_missing_credentials_are_rejected_with_a_clear_error(
    settings: dict[str, Any], missing: str
) -> None:
    with pytest.raises(ConfigError) as info:
        EventBuilder.from_config({"settings": settings})
    assert any(p.startswith(missing) for p in info.value.problems), info.value.problems
    assert "secret" not in str(info.value).replace("apiSecret", "")
