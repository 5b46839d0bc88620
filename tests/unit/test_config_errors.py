"""Config errors: ONE ConfigError listing every problem, each with its key path (SPEC §2)."""

from __future__ import annotations

from typing import Any

import pytest

from mparticle_dest import Destination
from mparticle_dest._config.model import (
    BatchOptions,
    DestinationConfig,
    LimitPolicy,
    Rule,
    RuleSettings,
    Settings,
)
from mparticle_dest._exceptions import ConfigError
from mparticle_dest._mparticle.constants import IDENTITY_TYPES

BASE = {"apiKey": "key", "apiSecret": "secret"}
VALID_IDENTITIES = ", ".join(IDENTITY_TYPES)


def problems(raw: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        DestinationConfig.from_dict(raw)
    return info.value.problems


def with_settings(**settings: Any) -> dict[str, Any]:
    return {"settings": {**BASE, **settings}}


def with_rule(rule: Any) -> dict[str, Any]:
    return {"settings": BASE, "mapping": {"product": {"view": rule}}}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"settings": None}, "settings: expected an object, got null"),
        ({"settings": {"apiSecret": "secret"}}, "settings.apiKey: required"),
        ({"settings": {"apiKey": "key"}}, "settings.apiSecret: required"),
        (with_settings(apiKey=""), "settings.apiKey: required (got an empty string)"),
        (with_settings(apiKey=12), "settings.apiKey: expected a string, got int"),
        (with_settings(apiSecret=""), "settings.apiSecret: required (got an empty string)"),
        (with_settings(pod="us3"), "settings.pod: expected one of us1, us2, eu1, au1, got 'us3'"),
        (with_settings(pod=None), "settings.pod: expected one of us1, us2, eu1, au1, got None"),
        (
            with_settings(environment="staging"),
            "settings.environment: expected one of production, development, got 'staging'",
        ),
        (
            with_settings(userIdentities={"cust_id": "user.id"}),
            f"settings.userIdentities.cust_id: unknown identity type; valid: {VALID_IDENTITIES}",
        ),
        (
            with_settings(userIdentities=["customer_id"]),
            "settings.userIdentities: expected an object {identity_type: value_mapping}, got list",
        ),
        (
            with_settings(consent="granted"),
            "settings.consent: expected an object (the mParticle consent_state), got str",
        ),
        (
            with_settings(limits={"eventName": "cut"}),
            "settings.limits.eventName: expected one of truncate, reject, got 'cut'",
        ),
        (with_settings(limits="reject"), "settings.limits: expected an object, got str"),
        (with_settings(apiKye="k"), "settings.apiKye: unknown key (did you mean apiKey?)"),
        (with_settings(api_key="k"), "settings.api_key: unknown key (did you mean apiKey?)"),
        (
            with_settings(userIdentity={}),
            "settings.userIdentity: unknown key (did you mean userIdentities?)",
        ),
        (
            with_rule({"settings": {"eventType": "page_view"}}),
            "mapping.product.view.settings.eventType: expected one of custom_event, screen_view, "
            "commerce_event, session_start, session_end, user_attribute_change, "
            "user_identity_change, opt_out, application_state_transition, breadcrumb, "
            "crash_report, network_performance, profile, push_message, push_registration, "
            "got 'page_view'",
        ),
        (
            with_rule({"settings": {"customEventType": "shopping"}}),
            "mapping.product.view.settings.customEventType: expected one of navigation, "
            "location, search, transaction, user_content, user_preference, social, other, "
            "media, attribution, got 'shopping'",
        ),
        (
            with_rule({"settings": {"userIdentities": {"mail": "user.email"}}}),
            "mapping.product.view.settings.userIdentities.mail: unknown identity type; "
            f"valid: {VALID_IDENTITIES}",
        ),
        (
            with_rule({"ignore": "yes"}),
            "mapping.product.view.ignore: expected true or false, got 'yes'",
        ),
        (with_rule({"silent": 1}), "mapping.product.view.silent: expected true or false, got 1"),
        (with_rule({"nmae": "x"}), "mapping.product.view.nmae: unknown key (did you mean name?)"),
        (
            with_rule("product"),
            "mapping.product.view: expected a rule object or a list of them, got str",
        ),
        (with_rule([{}, 5]), "mapping.product.view.1: expected a rule object, got int"),
        (
            with_rule([{}, {"settings": {"eventType": "x"}}]),
            "mapping.product.view.1.settings.eventType: expected one of custom_event, "
            "screen_view, commerce_event, session_start, session_end, user_attribute_change, "
            "user_identity_change, opt_out, application_state_transition, breadcrumb, "
            "crash_report, network_performance, profile, push_message, push_registration, got 'x'",
        ),
        (
            {"settings": BASE, "mapping": {"product": "view"}},
            "mapping.product: expected an object {action: rule}, got str",
        ),
        (
            {"settings": BASE, "mapping": []},
            "mapping: expected an object {entity: {action: rule}}, got list",
        ),
        ({"settings": BASE, "batch": -1}, "batch: must be >= 0 (milliseconds), got -1"),
        (
            {"settings": BASE, "batch": True},
            "batch: expected a number of milliseconds or an object with size/age/wait, got bool",
        ),
        (
            {"settings": BASE, "batch": 1.5},
            "batch: expected a number of milliseconds or an object with size/age/wait, got float",
        ),
        ({"settings": BASE, "batch": {"size": 0}}, "batch.size: must be >= 1, got 0"),
        ({"settings": BASE, "batch": {"age": -5}}, "batch.age: must be >= 0, got -5"),
        ({"settings": BASE, "batch": {"wait": "1s"}}, "batch.wait: expected an integer, got str"),
        ({"settings": BASE, "batch": {"max": 1}}, "batch.max: unknown key; valid: size, age, wait"),
        (
            with_rule({"batch": -2}),
            "mapping.product.view.batch: must be >= 0 (milliseconds), got -2",
        ),
        (
            {"settings": BASE, "package": "@walkeros/server-destination-mparticle"},
            "package: unknown key (this looks like a whole flow.json destination entry; "
            'pass its "config" object)',
        ),
        (
            {"settings": BASE, "mappings": {}},
            "mappings: unknown key (did you mean mapping?)",
        ),
        (None, "config: expected a dict (a walkerOS destination config), got null"),
    ],
)
def test_each_problem_is_reported_with_its_camel_case_path(raw: Any, expected: str) -> None:
    assert problems(raw) == (expected,)


@pytest.mark.parametrize(
    "raw",
    [{}, {"settings": {}}, {"mapping": {}}],
    ids=["no settings", "empty settings", "mapping only"],
)
def test_missing_settings_name_each_credential_by_its_key_path(raw: dict[str, Any]) -> None:
    assert problems(raw) == ("settings.apiKey: required", "settings.apiSecret: required")


def test_missing_settings_are_reported_with_the_other_problems() -> None:
    assert problems({"setings": {}, "batch": {"size": 0}}) == (
        "settings.apiKey: required",
        "settings.apiSecret: required",
        "batch.size: must be >= 1, got 0",
        "setings: unknown key (did you mean settings?)",
    )


def test_destination_without_settings_names_each_credential() -> None:
    with pytest.raises(ConfigError) as info:
        Destination({})
    assert info.value.problems == ("settings.apiKey: required", "settings.apiSecret: required")
    assert str(info.value) == (
        "invalid destination config (2 problems):\n"
        "  settings.apiKey: required\n"
        "  settings.apiSecret: required"
    )


def test_every_problem_is_collected_into_one_error() -> None:
    raw = {
        "settings": {
            "apiKye": "key",
            "apiSecret": "secret",
            "pod": "us3",
            "userIdentities": {"cust_id": "user.id"},
        },
        "mapping": {
            "product": {
                "view": {"settings": {"eventType": "bogus"}, "ignore": "yes"},
                "add": [{}, "x"],
            },
            "page": 3,
        },
        "batch": {"size": 0},
    }
    with pytest.raises(ConfigError) as info:
        DestinationConfig.from_dict(raw)
    error = info.value
    assert error.problems == (
        "settings.apiKey: required",
        "settings.apiKye: unknown key (did you mean apiKey?)",
        "settings.pod: expected one of us1, us2, eu1, au1, got 'us3'",
        f"settings.userIdentities.cust_id: unknown identity type; valid: {VALID_IDENTITIES}",
        "mapping.product.view.settings.eventType: expected one of custom_event, screen_view, "
        "commerce_event, session_start, session_end, user_attribute_change, "
        "user_identity_change, opt_out, application_state_transition, breadcrumb, "
        "crash_report, network_performance, profile, push_message, push_registration, "
        "got 'bogus'",
        "mapping.product.view.ignore: expected true or false, got 'yes'",
        "mapping.product.add.1: expected a rule object, got str",
        "mapping.page: expected an object {action: rule}, got int",
        "batch.size: must be >= 1, got 0",
    )
    assert str(error).startswith("invalid destination config (9 problems):\n  settings.apiKey")
    assert str(error).count("\n") == 9


def test_mapping_compiler_problems_are_merged_with_the_structural_ones() -> None:
    raw = {
        "settings": {**BASE, "pod": "us9"},
        "mapping": {"product": {"view": {"include": ["everything"], "data": {"fn": "upper"}}}},
    }
    assert problems(raw) == (
        "settings.pod: expected one of us1, us2, eu1, au1, got 'us9'",
        "mapping.product.view.data.fn: expected a callable, got str",
        "mapping.product.view.include.0: unknown include section 'everything' "
        "(known: data, globals, context, user, source, event, all)",
    )


def test_mapping_compiler_problems_alone_are_reported_with_their_paths() -> None:
    async def lookup(value: Any) -> Any:
        return value

    found = sorted(problems({"settings": BASE, "data": {"fn": lookup}, "policy": "user.id"}))
    assert len(found) == 2
    assert found[0].startswith("data.fn: ")
    assert "async" in found[0]
    assert found[1].startswith("policy: ")


def test_a_compiler_problem_under_a_reported_path_is_not_repeated() -> None:
    found = problems({"settings": BASE, "mapping": {"product": ["view"]}})
    assert found == ("mapping.product: expected an object {action: rule}, got list",)


# -- typed objects are checked the same way, in their Python spelling ---------------------------


def typed_problems(build: Any) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        build()
    return info.value.problems


def test_typed_settings_report_every_problem_with_python_names() -> None:
    assert typed_problems(
        lambda: Settings(api_key="", api_secret=5, pod="x", user_identities={"bad": "user.id"})
    ) == (
        "Settings.api_key: required (got an empty string)",
        "Settings.api_secret: expected a string, got int",
        "Settings.pod: expected one of us1, us2, eu1, au1, got 'x'",
        f"Settings.user_identities.bad: unknown identity type; valid: {VALID_IDENTITIES}",
    )


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda: BatchOptions(size=0), "BatchOptions.size: must be >= 1, got 0"),
        (lambda: BatchOptions(age=1.5), "BatchOptions.age: expected an integer, got float"),
        (
            lambda: LimitPolicy(user_attributes="drop"),
            "LimitPolicy.user_attributes: expected one of truncate, reject, got 'drop'",
        ),
        (
            lambda: RuleSettings(custom_event_type="misc"),
            "RuleSettings.custom_event_type: expected one of navigation, location, search, "
            "transaction, user_content, user_preference, social, other, media, attribution, "
            "got 'misc'",
        ),
        (
            lambda: Rule(batch=-1),
            "Rule.batch: must be >= 0 (milliseconds), got -1",
        ),
        (
            lambda: Rule(settings={"eventType": "screen_view"}),
            "Rule.settings: expected a RuleSettings object, got a dict "
            "(use DestinationConfig.from_dict for walkerOS dicts)",
        ),
        (
            lambda: DestinationConfig(
                settings=Settings(api_key="k", api_secret="s"), mapping={"page": {"view": {}}}
            ),
            "DestinationConfig.mapping.page.view: expected a Rule or a tuple of Rules, got dict",
        ),
        (
            lambda: DestinationConfig(
                settings=Settings(api_key="k", api_secret="s"),
                mapping={"page": {"view": (Rule(), "x")}},
            ),
            "DestinationConfig.mapping.page.view.1: expected a Rule, got str",
        ),
        (
            lambda: DestinationConfig(settings=Settings(api_key="k", api_secret="s"), batch="1s"),
            "DestinationConfig.batch: expected a number of milliseconds or an object with "
            "size/age/wait, got str",
        ),
        (
            lambda: DestinationConfig(
                settings=Settings(api_key="k", api_secret="s"),
                mapping={"page": {"view": Rule(include=["nothing"])}},
            ),
            "mapping.page.view.include.0: unknown include section 'nothing' "
            "(known: data, globals, context, user, source, event, all)",
        ),
    ],
)
def test_typed_objects_are_validated_on_construction(build: Any, expected: str) -> None:
    assert typed_problems(build) == (expected,)


def test_an_unknown_key_does_not_hide_the_other_problems_of_its_object() -> None:
    assert problems({"settings": {**BASE, "environment": "prod", "apiKye": "k"}}) == (
        "settings.apiKye: unknown key (did you mean apiKey?)",
        "settings.environment: expected one of production, development, got 'prod'",
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (with_settings(ip={"fn": 42}), "settings.ip.fn: expected a callable, got int"),
        (
            with_settings(sourceRequestId={"nope": 1}),
            "settings.sourceRequestId.nope: unknown mapping key 'nope' "
            "(known: condition, consent, value, fn, key, loop, map, set, validate)",
        ),
        (
            with_settings(userAttributes={"map": 3}),
            "settings.userAttributes.map: expected a dict of out_key: value_mapping, got int",
        ),
        (
            with_settings(userIdentities={"email": {"fn": 1}}),
            "settings.userIdentities.email.fn: expected a callable, got int",
        ),
        (
            with_settings(consent={"gdpr": {"marketing": {"consented": "yes"}}}),
            "settings.consent.gdpr.marketing.consented: expected a boolean, got 'yes'",
        ),
        (
            with_rule({"settings": {"eventType": "commerce_event", "commerce": 3}}),
            "mapping.product.view.settings.commerce: a value mapping is a string path, a dict "
            "or a list, got int 3; for a constant write {'value': 3}",
        ),
        (
            with_rule({"settings": {"eventData": {"fn": "x"}}}),
            "mapping.product.view.settings.eventData.fn: expected a callable, got str",
        ),
        (
            with_rule({"settings": {"eventType": "profile"}}),
            "mapping.product.view.settings.eventData: eventType 'profile' needs the fields "
            "previous_mpid, current_mpid, profile_event_type; map them with eventData",
        ),
        (
            with_rule({"settings": {"userIdentities": {"other": {"fn": 1}}}}),
            "mapping.product.view.settings.userIdentities.other.fn: expected a callable, got int",
        ),
    ],
)
def test_value_mappings_of_the_settings_are_checked_when_the_config_is_built(
    raw: Any, expected: str
) -> None:
    # Once only Destination(...) compiled these: a config could validate and still fail.
    assert problems(raw) == (expected,)


def test_value_mapping_problems_are_listed_with_the_other_problems() -> None:
    raw = {
        "settings": {**BASE, "pod": "x", "ip": {"fn": 1}},
        "mapping": {"a": {"b": {"data": {"fn": 2}, "settings": {"userAttributes": 5}}}},
    }
    assert problems(raw) == (
        "settings.pod: expected one of us1, us2, eu1, au1, got 'x'",
        "settings.ip.fn: expected a callable, got int",
        "mapping.a.b.settings.userAttributes: a value mapping is a string path, a dict or a "
        "list, got int 5; for a constant write {'value': 5}",
        "mapping.a.b.data.fn: expected a callable, got int",
    )


def test_typed_settings_check_their_value_mappings() -> None:
    assert typed_problems(lambda: Settings(api_key="k", api_secret="s", ip={"fn": 42})) == (
        "Settings.ip.fn: expected a callable, got int",
    )
