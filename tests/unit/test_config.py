"""Typed config: walkerOS dicts and typed objects build the same config (SPEC §2, §5, §6)."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import attrs
import pytest
from support.walkeros_steps import load_steps

from mparticle_dest._config.model import (
    BatchOptions,
    DestinationConfig,
    LimitPolicy,
    Rule,
    RuleSettings,
    Secret,
    Settings,
)
from mparticle_dest._exceptions import ConfigError
from mparticle_dest.mapping import CompiledMapping

BASE = {"apiKey": "key", "apiSecret": "secret"}


def reference_configs() -> list[dict[str, Any]]:
    return [step.config for step in load_steps()]


def masked(config: dict[str, Any]) -> dict[str, Any]:
    return {**config, "settings": {**config["settings"], "apiSecret": "***"}}


@pytest.mark.parametrize("raw", reference_configs(), ids=lambda c: str(sorted(c)))
def test_reference_configs_build_and_dump_back(raw: dict[str, Any]) -> None:
    config = DestinationConfig.from_dict(raw)
    assert config.settings.api_key == "key"
    assert config.settings.api_secret.get_secret_value() == "secret"
    assert config.to_dict() == masked(raw)


def test_defaults() -> None:
    config = DestinationConfig.from_dict({"settings": BASE})
    assert config.settings == Settings(api_key="key", api_secret="secret")
    settings = config.settings
    assert (settings.pod, settings.environment) == ("us1", "production")
    assert settings.user_identities == {}
    assert (settings.user_attributes, settings.consent, settings.ip) == (None, None, None)
    assert settings.source_request_id is None
    assert settings.limits == LimitPolicy(
        event_name="truncate",
        custom_attributes="reject",
        attribute_value="reject",
        user_attributes="reject",
    )
    assert config.mapping == {}
    assert config.batch == BatchOptions(size=None, age=None, wait=None)
    assert (config.data, config.policy, config.consent, config.include) == (None,) * 4
    assert Rule() == Rule(
        settings=RuleSettings(event_type="custom_event", custom_event_type="other")
    )


def fn(value: Any) -> Any:
    return value


def test_every_camel_case_key_maps_to_its_field() -> None:
    raw = {
        "settings": {
            **BASE,
            "pod": "eu1",
            "environment": "development",
            "userIdentities": {"customer_id": "user.id", "email": {"fn": fn}},
            "userAttributes": {"map": {"tier": "user.tier"}},
            "consent": {"gdpr": {"analytics": {"consented": True}}},
            "ip": "user.ip",
            "sourceRequestId": "source.trace",
            "limits": {
                "eventName": "reject",
                "customAttributes": "truncate",
                "attributeValue": "truncate",
                "userAttributes": "truncate",
            },
        },
        "mapping": {
            "order": {
                "complete": {
                    "name": "purchase",
                    "data": "data",
                    "policy": {"data.total": "data.sum"},
                    "consent": {"marketing": True},
                    "condition": fn,
                    "silent": True,
                    "include": ["globals"],
                    "remove": ["data.secret"],
                    "batch": {"size": 10, "age": 0, "wait": 5},
                    "settings": {
                        "eventType": "commerce_event",
                        "customEventType": "transaction",
                        "commerce": {"map": {"currency_code": "data.currency"}},
                        "eventData": {"value": 1},
                        "userIdentities": {"other": "user.device"},
                        "userAttributes": "user",
                    },
                }
            }
        },
        "data": {"map": {"page": "globals.pagegroup"}},
        "policy": {"user.id": "user.hash"},
        "consent": {"functional": True},
        "include": ["context"],
        "batch": {"size": 50, "age": 1000, "wait": 100},
    }
    typed = DestinationConfig(
        settings=Settings(
            api_key="key",
            api_secret=Secret("secret"),
            pod="eu1",
            environment="development",
            user_identities={"customer_id": "user.id", "email": {"fn": fn}},
            user_attributes={"map": {"tier": "user.tier"}},
            consent={"gdpr": {"analytics": {"consented": True}}},
            ip="user.ip",
            source_request_id="source.trace",
            limits=LimitPolicy(
                event_name="reject",
                custom_attributes="truncate",
                attribute_value="truncate",
                user_attributes="truncate",
            ),
        ),
        mapping={
            "order": {
                "complete": Rule(
                    name="purchase",
                    data="data",
                    policy={"data.total": "data.sum"},
                    consent={"marketing": True},
                    condition=fn,
                    silent=True,
                    include=["globals"],
                    remove=["data.secret"],
                    batch=BatchOptions(size=10, age=0, wait=5),
                    settings=RuleSettings(
                        event_type="commerce_event",
                        custom_event_type="transaction",
                        commerce={"map": {"currency_code": "data.currency"}},
                        event_data={"value": 1},
                        user_identities={"other": "user.device"},
                        user_attributes="user",
                    ),
                )
            }
        },
        data={"map": {"page": "globals.pagegroup"}},
        policy={"user.id": "user.hash"},
        consent={"functional": True},
        include=["context"],
        batch=BatchOptions(size=50, age=1000, wait=100),
    )
    assert DestinationConfig.from_dict(raw) == typed
    assert typed.to_dict() == masked(raw)


def test_value_mappings_are_kept_as_given_including_callables() -> None:
    mapping = {"fn": fn, "key": "user.id"}
    config = DestinationConfig.from_dict(
        {"settings": {**BASE, "userIdentities": {"customer_id": mapping}}}
    )
    assert config.settings.user_identities["customer_id"] is mapping
    assert config.to_dict()["settings"]["userIdentities"]["customer_id"]["fn"] is fn


def test_a_rule_list_becomes_a_tuple_of_rules() -> None:
    config = DestinationConfig.from_dict(
        {"settings": BASE, "mapping": {"page": {"view": [{"condition": fn}, {"name": "seen"}]}}}
    )
    rules = config.mapping["page"]["view"]
    assert rules == (Rule(condition=fn), Rule(name="seen"))
    typed = DestinationConfig(
        settings=Settings(api_key="key", api_secret="secret"),
        mapping={"page": {"view": [Rule(condition=fn), Rule(name="seen")]}},
    )
    assert typed == config
    assert config.to_dict()["mapping"]["page"]["view"] == [{"condition": fn}, {"name": "seen"}]


def test_typed_objects_inside_a_dict_are_kept() -> None:
    settings = Settings(api_key="key", api_secret="secret")
    rule = Rule(name="seen")
    config = DestinationConfig.from_dict(
        {"settings": settings, "mapping": {"page": {"view": rule}}}
    )
    assert config.settings is settings
    assert config.mapping["page"]["view"] is rule


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, BatchOptions(age=0)),
        (2500, BatchOptions(age=2500)),
        ({"size": 1}, BatchOptions(size=1)),
        ({"age": 0, "wait": 0}, BatchOptions(age=0, wait=0)),
    ],
)
def test_batch_accepts_walkeros_bare_number_as_age_in_ms(raw: Any, expected: BatchOptions) -> None:
    config = DestinationConfig.from_dict(
        {"settings": BASE, "batch": raw, "mapping": {"a": {"b": {"batch": raw}}}}
    )
    assert config.batch == expected
    rule = config.mapping["a"]["b"]
    assert isinstance(rule, Rule)
    assert rule.batch == expected
    assert Rule(batch=raw if isinstance(raw, int) else expected).batch == expected


def test_the_mapping_is_compiled_once_and_kept_out_of_eq_and_repr() -> None:
    raw = {"settings": BASE, "mapping": {"page": {"view": {"name": "screen"}}}}
    config = DestinationConfig.from_dict(raw)
    assert isinstance(config.compiled_mapping, CompiledMapping)
    result = config.compiled_mapping.process({"name": "page view", "id": "e", "timestamp": 1})
    assert result.rule is config.mapping["page"]["view"]
    assert result.event["name"] == "screen"
    assert "compiled_mapping" not in repr(config)
    assert config == DestinationConfig.from_dict(raw)
    assert attrs.evolve(config, data="data").compiled_mapping is not config.compiled_mapping


def test_configs_are_frozen_and_copy_their_input_mappings() -> None:
    identities = {"customer_id": "user.id"}
    raw = {"settings": {**BASE, "userIdentities": identities}, "mapping": {"page": {}}}
    config = DestinationConfig.from_dict(raw)
    identities["email"] = "user.email"
    raw["mapping"]["page"]["view"] = {}
    assert config.settings.user_identities == {"customer_id": "user.id"}
    assert config.mapping == {"page": {}}
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        config.settings.pod = "eu1"  # type: ignore[misc]


def test_coerce_passes_a_config_through_and_builds_one_from_a_dict() -> None:
    config = DestinationConfig.from_dict({"settings": BASE})
    assert DestinationConfig.coerce(config) is config
    assert DestinationConfig.coerce({"settings": BASE}) == config
    with pytest.raises(ConfigError, match=r"config: expected a dict .*, got list"):
        DestinationConfig.coerce([("settings", BASE)])  # type: ignore[arg-type]


def test_to_dict_round_trips_once_the_secret_is_supplied_again() -> None:
    config = DestinationConfig.from_dict(
        {
            "settings": {**BASE, "pod": "au1", "limits": {"eventName": "reject"}},
            "mapping": {"*": {"*": {"settings": {"eventType": "screen_view"}}}},
            "batch": 100,
        }
    )
    dumped = config.to_dict()
    assert dumped["settings"]["limits"] == {"eventName": "reject"}
    assert dumped["batch"] == {"age": 100}
    dumped["settings"]["apiSecret"] = "secret"
    assert DestinationConfig.from_dict(dumped) == config


@pytest.mark.parametrize(
    "key", ["id", "env", "init", "loadScript", "queue", "verbose", "logger", "before"]
)
def test_walkeros_runtime_keys_are_accepted_and_ignored(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mparticle_dest"):
        config = DestinationConfig.from_dict({"settings": BASE, key: True})
    assert config == DestinationConfig.from_dict({"settings": BASE})
    [record] = [r for r in caplog.records if key in r.getMessage()]
    assert record.levelno == logging.DEBUG


@pytest.mark.parametrize("key", ["onError", "onLog"])
def test_walkeros_handlers_are_ignored_with_a_warning(
    key: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="mparticle_dest"):
        DestinationConfig.from_dict({"settings": BASE, key: fn})
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"config.{key}: walkerOS key ignored by mparticle_dest"
    ]


def test_works_when_the_package_re_exports_the_classes_under_its_own_name() -> None:
    # mparticle_dest/__init__.py rewrites __module__ of its exports (as httpx does);
    # cattrs must still resolve the annotations. A fresh interpreter, so nothing is cached.
    code = (
        "import mparticle_dest._config.model as c\n"
        "for cls in (c.BatchOptions, c.LimitPolicy, c.Settings, c.RuleSettings, c.Rule,\n"
        "            c.DestinationConfig):\n"
        "    cls.__module__ = 'mparticle_dest'\n"
        "cfg = c.DestinationConfig.from_dict({'settings': {'apiKey': 'k', 'apiSecret': 's'},\n"
        "                                      'mapping': {'a': {'b': [{'batch': 1}]}}})\n"
        "assert cfg.to_dict()['mapping'] == {'a': {'b': [{'batch': {'age': 1}}]}}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own code
