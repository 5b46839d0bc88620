"""Event rules (SPEC §4): lookup, resolve order, policy, include, remove, consent."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest

from mparticle_dest.mapping import CompiledMapping, get_mapping_event, process_event_mapping


def make_event(name="product view", **extra):
    event = {
        "name": name,
        "entity": name.split(" ")[0],
        "action": name.split(" ")[1],
        "id": "ev-1",
        "timestamp": 1700000000000,
        "trigger": "load",
        "timing": 3.5,
        "data": {"id": "SKU-1", "price": 10, "dims": {"w": 1, "h": {"cm": 2}}, "tags": ["x"]},
        "globals": {"pagegroup": "shop"},
        "context": {"shopping": ["detail", 0], "empty": []},
        "user": {"id": "u-1", "device": "d-1"},
        "source": {"type": "server", "platform": "python"},
        "consent": {"functional": True},
        "custom": {"c": 1},
    }
    event.update(extra)
    return event


RULES = {
    "*": {"*": {"name": "any"}, "action": {"name": "star action"}},
    "foo": {"*": {"name": "foo star"}},
    "bar": {"baz": {"name": "irrelevant"}},
    "page": {"view": {"name": "page view"}},
}


class TestRuleLookup:
    @pytest.mark.parametrize(
        ("name", "expected_name", "key"),
        [
            ("page view", "page view", "page view"),
            ("foo something", "foo star", "foo *"),
            ("other action", "star action", "* action"),
            ("not existing", "any", "* *"),
            ("bar something", "any", "* *"),
            ("page view with more words", "page view", "page view"),
        ],
    )
    def test_exact_then_wildcard_then_star_star(self, name, expected_name, key):
        rule, mapping_key = get_mapping_event({"name": name}, RULES)
        assert rule["name"] == expected_name
        assert mapping_key == key

    @pytest.mark.parametrize("name", ["page", "page ", " view", "page  view", ""])
    def test_a_name_without_entity_and_action_matches_nothing(self, name):
        assert get_mapping_event({"name": name}, RULES) == (None, "")

    def test_nothing_matched(self):
        assert get_mapping_event({"name": "a b"}, {"page": {"view": {}}}) == (None, "")

    def test_returns_the_rule_object_as_given(self):
        rule = SimpleNamespace(name="typed", condition=None, data=None)
        found, key = get_mapping_event({"name": "page view"}, {"page": {"view": rule}})
        assert found is rule
        assert key == "page view"

    def test_first_rule_whose_condition_holds_wins(self):
        gated = {"condition": lambda e: e.get("globals", {}).get("env") == "prod", "ignore": True}
        fallback = {"name": "purchase"}
        rules = {"order": {"complete": [gated, fallback]}}
        assert get_mapping_event({"name": "order complete"}, rules)[0] is fallback
        prod = {"name": "order complete", "globals": {"env": "prod"}}
        assert get_mapping_event(prod, rules)[0] is gated

    def test_no_condition_in_the_list_holds_falls_back_to_star_star(self):
        rules = {"order": {"complete": [{"condition": lambda e: False}]}, "*": {"*": {"n": 1}}}
        assert get_mapping_event({"name": "order complete"}, rules) == ({"n": 1}, "* *")

    def test_condition_receives_event_and_context(self):
        seen = []
        rule = {"condition": lambda event, ctx: seen.append((event, ctx)) or True}
        event = {"name": "order complete", "consent": {"analytics": True}}
        get_mapping_event(event, {"order": {"complete": rule}})
        (got_event, ctx) = seen[0]
        assert got_event is event
        assert ctx.mapping is rule and ctx.event is event
        assert ctx.consent == {"analytics": True}

    def test_star_star_condition_runs_once(self):
        calls = []
        rules = {"*": {"*": {"condition": lambda e: calls.append(1) and False}}}
        assert get_mapping_event({"name": "order complete"}, rules) == (None, "")
        assert len(calls) == 1

    def test_condition_that_raises_is_logged_and_does_not_match(self, caplog):
        rules = {"order": {"complete": [{"condition": lambda e: 1 / 0}, {"name": "next"}]}}
        rule, _ = get_mapping_event({"name": "order complete"}, rules)
        assert rule == {"name": "next"}
        assert "mapping.order.complete.0.condition" in caplog.text


class TestProcessEventMapping:
    def test_no_mapping_at_all(self):
        result = process_event_mapping(make_event(), {})
        assert (result.rule, result.mapping_key, result.data, result.skipped) == (
            None,
            "",
            None,
            None,
        )
        assert result.ignore is False and result.silent is False

    def test_config_policy_runs_before_rule_lookup(self):
        config = {
            "policy": {"name": {"value": "order complete"}},
            "mapping": {"order": {"complete": {"data": {"map": {"n": "name"}}}}},
        }
        result = process_event_mapping(make_event(), config)
        assert result.mapping_key == "order complete"
        assert result.data == {"n": "order complete"}

    def test_rule_policy_runs_before_data_and_after_config_policy(self):
        config = {
            "policy": {"data.price": {"fn": lambda e: e["data"]["price"] * 2}},
            "mapping": {
                "product": {
                    "view": {
                        "policy": {"data.price": {"fn": lambda e: e["data"]["price"] + 1}},
                        "data": {"map": {"price": "data.price"}},
                    }
                }
            },
        }
        result = process_event_mapping(make_event(), config)
        assert result.data == {"price": 21}
        assert result.event["data"]["price"] == 21

    def test_policy_entries_see_the_event_before_the_policy(self):
        policy = {"data.a": {"value": 1}, "data.b": {"key": "data.a", "value": "unset"}}
        result = process_event_mapping(make_event(), {"policy": policy})
        assert result.event["data"]["a"] == 1
        assert result.event["data"]["b"] == "unset"

    def test_policy_creates_nested_dicts_and_removes_undefined(self):
        policy = {
            "new.deep.key": {"value": "x"},
            "user.device": {"key": "user.nope"},
            "missing.path": {"key": "user.nope"},
            "data.tags.0": {"value": "y"},
        }
        result = process_event_mapping(make_event(), {"policy": policy})
        assert result.event["new"] == {"deep": {"key": "x"}}
        assert "device" not in result.event["user"]
        assert "missing" not in result.event
        assert result.event["data"]["tags"] == ["y"]

    def test_policy_never_mutates_the_callers_event(self):
        event = make_event()
        snapshot = copy.deepcopy(event)
        data, user, tags = event["data"], event["user"], event["data"]["tags"]
        config = {
            "policy": {"data.dims.h.cm": {"value": 99}, "user.id": {"value": "x"}},
            "mapping": {
                "product": {"view": {"policy": {"data.tags.0": {"value": "z"}}, "name": "pv"}}
            },
        }
        result = process_event_mapping(event, config)
        assert event == snapshot
        assert event["data"] is data and event["user"] is user and data["tags"] is tags
        assert result.event["data"]["dims"]["h"]["cm"] == 99
        assert result.event["data"]["tags"] == ["z"]
        assert result.event["globals"] is event["globals"]  # untouched parts are shared

    def test_config_data_and_rule_data_merge_rule_wins(self):
        config = {
            "data": {"map": {"a": {"value": 1}, "b": {"value": 1}, "tags": {"value": ["x", "y"]}}},
            "mapping": {
                "product": {
                    "view": {"data": {"map": {"b": {"value": 2}, "tags": {"value": ["y", "z", 1]}}}}
                }
            },
        }
        result = process_event_mapping(make_event(), config)
        assert result.data == {"a": 1, "b": 2, "tags": ["x", "y", "z", 1]}

    def test_rule_data_that_is_not_a_dict_replaces_config_data(self):
        config = {
            "data": {"map": {"a": {"value": 1}}},
            "mapping": {"product": {"view": {"data": "data.id"}}},
        }
        assert process_event_mapping(make_event(), config).data == "SKU-1"
        config["mapping"]["product"]["view"]["data"] = "data.nope"
        assert process_event_mapping(make_event(), config).data is None

    def test_config_data_applies_without_a_rule(self):
        result = process_event_mapping(make_event("page view"), {"data": {"map": {"u": "user.id"}}})
        assert result.data == {"u": "u-1"}

    def test_ignore(self):
        config = {
            "data": {"map": {"u": "user.id"}},
            "mapping": {"product": {"view": {"ignore": True, "silent": True, "name": "x"}}},
        }
        result = process_event_mapping(make_event(), config)
        assert result.skipped == "ignore"
        assert result.ignore is True and result.silent is True
        assert result.mapping_key == "product view"
        assert result.event["name"] == "product view"  # ignored before the name override
        assert result.data == {"u": "u-1"}

    def test_silent_is_reported(self):
        result = process_event_mapping(
            make_event(), {"mapping": {"product": {"*": {"silent": True}}}}
        )
        assert result.silent is True and result.skipped is None

    def test_name_override_renames_only_the_name(self):
        event = make_event()
        config = {"mapping": {"product": {"view": {"name": "view_item", "include": ["event"]}}}}
        result = process_event_mapping(event, config)
        assert result.event["name"] == "view_item"
        assert (result.event["entity"], result.event["action"]) == ("product", "view")
        assert result.data["event_name"] == "view_item"
        assert event["name"] == "product view"

    def test_config_consent_skips_before_anything_runs(self):
        calls = []
        config = {"consent": {"marketing": True}, "policy": {"x": {"fn": calls.append}}}
        result = process_event_mapping(make_event(), config)
        assert result.skipped == "consent" and result.data is None and calls == []
        config["consent"] = {"marketing": True, "functional": True}
        assert process_event_mapping(make_event(), config).skipped is None

    def test_rule_consent(self):
        config = {
            "mapping": {"product": {"view": {"consent": {"marketing": True}, "data": "data.id"}}}
        }
        result = process_event_mapping(make_event(), config)
        assert result.skipped == "consent"
        assert result.mapping_key == "product view" and result.data is None
        granted = make_event(consent={"marketing": True})
        assert process_event_mapping(granted, config).data == "SKU-1"
        no_consent = make_event()
        del no_consent["consent"]
        assert process_event_mapping(no_consent, config).skipped == "consent"

    def test_typed_config_and_rule_objects(self):
        rule = SimpleNamespace(
            name="renamed", data={"map": {"id": "data.id"}}, policy=None, consent=None,
            condition=None, ignore=False, silent=False, include=None, remove=None,
            batch={"age": 0}, settings={"eventType": "screen_view"},
        )  # fmt: skip
        config = SimpleNamespace(
            mapping={"product": {"view": (rule,)}},
            data=None,
            policy=None,
            consent=None,
            include=None,
        )
        result = CompiledMapping.from_config(config).process(make_event())
        assert result.rule is rule
        assert result.data == {"id": "SKU-1"}
        assert result.event["name"] == "renamed"

    def test_data_is_fresh_and_safe_to_mutate(self):
        event = make_event()
        snapshot = copy.deepcopy(event)
        compiled = CompiledMapping.from_config(
            {
                "include": ["data"],
                "mapping": {"product": {"view": {"data": {"map": {"d": "data"}}}}},
            }
        )
        first = compiled.process(event)
        first.data["d"]["tags"].append("mutated")
        first.data["data_tags"].append("mutated")
        assert event == snapshot
        assert compiled.process(event).data == {
            "data_id": "SKU-1", "data_price": 10, "data_dims_w": 1, "data_dims_h_cm": 2,
            "data_tags": ["x"], "d": snapshot["data"],
        }  # fmt: skip

    def test_non_mapping_event_is_a_type_error(self):
        with pytest.raises(TypeError):
            CompiledMapping.from_config({}).process(["not", "an", "event"])  # type: ignore[arg-type]


class TestIncludeAndRemove:
    @pytest.mark.parametrize(
        ("section", "expected"),
        [
            ("data", {"data_id": "SKU-1", "data_price": 10, "data_dims_w": 1,
                      "data_dims_h_cm": 2, "data_tags": ["x"]}),
            ("globals", {"globals_pagegroup": "shop"}),
            ("context", {"context_shopping": "detail"}),
            ("user", {"user_id": "u-1", "user_device": "d-1"}),
            ("source", {"source_type": "server", "source_platform": "python"}),
            ("event", {"event_entity": "product", "event_action": "view", "event_id": "ev-1",
                       "event_timestamp": 1700000000000, "event_name": "product view",
                       "event_trigger": "load", "event_timing": 3.5}),
        ],
    )  # fmt: skip
    def test_each_section(self, section, expected):
        result = process_event_mapping(make_event(), {"include": [section]})
        assert result.data == expected

    def test_all_is_every_section(self):
        every = ["data", "globals", "context", "user", "source", "event"]
        assert (
            process_event_mapping(make_event(), {"include": ["all"]}).data
            == process_event_mapping(make_event(), {"include": every}).data
        )
        assert "custom_c" not in process_event_mapping(make_event(), {"include": ["all"]}).data

    def test_rule_include_replaces_config_include(self):
        config = {"include": ["data"], "mapping": {"product": {"view": {"include": ["globals"]}}}}
        assert process_event_mapping(make_event(), config).data == {"globals_pagegroup": "shop"}
        config["mapping"]["product"]["view"]["include"] = []
        assert process_event_mapping(make_event(), config).data is None

    def test_data_wins_on_conflict(self):
        config = {
            "include": ["globals"],
            "data": {"map": {"globals_pagegroup": {"value": "config"}}},
            "mapping": {"product": {"view": {"data": {"map": {"own": {"value": 1}}}}}},
        }
        data = process_event_mapping(make_event(), config).data
        assert data == {"globals_pagegroup": "config", "own": 1}

    def test_include_is_dropped_when_data_is_not_a_dict(self):
        config = {"include": ["globals"], "mapping": {"product": {"view": {"data": "data.id"}}}}
        assert process_event_mapping(make_event(), config).data == "SKU-1"

    def test_remove_runs_after_include(self):
        config = {
            "include": ["data", "user"],
            "mapping": {
                "product": {
                    "view": {
                        "data": {"map": {"keep": {"value": 1},
                                         "nested": {"value": {"a": 1, "b": 2}},
                                         "list": {"value": [1, 2, 3]}}},
                        "remove": ["data_dims_w", "user_device", "nested.a", "list.1", "no.such"],
                    }
                }
            },
        }  # fmt: skip
        data = process_event_mapping(make_event(), config).data
        assert "data_dims_w" not in data and "user_device" not in data
        assert data["nested"] == {"b": 2}
        assert data["list"] == [1, 3]
        assert data["user_id"] == "u-1" and data["keep"] == 1


def test_policy_write_that_does_not_fit_a_list_is_skipped(caplog):
    policy = {"data.tags.5": {"value": "x"}, "data.tags.name": {"value": "y"}}
    result = process_event_mapping(make_event(), {"policy": policy})
    assert result.event["data"]["tags"] == ["x"]
    assert caplog.text.count("write skipped") == 2


def test_resolve_names_what_it_found() -> None:
    # The engine's per-event result is read by name, not unpacked by position.
    compiled = CompiledMapping.from_config(
        {"mapping": {"product": {"view": {"name": "view", "data": {"map": {"id": "data.id"}}}}}}
    )
    found = compiled.resolve({"name": "product view", "data": {"id": "p1"}})
    assert (found.mapping_key, found.data, found.skipped, found.ignore, found.silent) == (
        "product view",
        {"id": "p1"},
        None,
        False,
        False,
    )
    assert found.event["name"] == "view"
    assert found.context.event is found.event
