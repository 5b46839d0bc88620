"""Value mappings (SPEC §4): every form, resolved with get_mapping_value."""

from __future__ import annotations

import copy
import logging

import pytest

from mparticle_dest import ConfigError
from mparticle_dest.mapping import MappingContext, compile_value_mapping, get_mapping_value

EVENT = {
    "name": "order complete",
    "data": {"id": "ORD-1", "total": 0, "paid": False, "note": "", "tags": ["a", "b"]},
    "nested": [
        {"entity": "product", "data": {"id": "P1", "price": 10}},
        {"entity": "gift", "data": {"name": "Surprise"}},
        {"entity": "product", "data": {"id": "P2", "price": 0}},
    ],
    "user": {"id": "u-1"},
    "consent": {"functional": True, "marketing": False},
}


def resolve(mapping, value=EVENT, **kwargs):
    return get_mapping_value(value, mapping, **kwargs)


class TestStringPaths:
    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("name", "order complete"),
            ("data.id", "ORD-1"),
            ("nested.0.data.id", "P1"),
            ("nested.2.data.price", 0),
            ("data.total", 0),
            ("data.paid", False),
            ("data.note", ""),
            ("data.tags.1", "b"),
            ("nested.*.data.id", ["P1", None, "P2"]),
            ("nested.*.entity", ["product", "gift", "product"]),
        ],
    )
    def test_reads_the_value_at_the_path(self, path, expected):
        assert resolve(path) == expected

    @pytest.mark.parametrize(
        "path",
        ["missing", "data.missing", "data.id.deeper", "data.total.x", "nested.9.data", "nested.01"],
    )
    def test_a_missing_path_is_undefined(self, path):
        assert resolve(path) is None

    def test_only_canonical_list_indices_address_list_elements(self):
        assert resolve("items.-1", {"items": [1, 2]}) is None
        assert resolve("items.01", {"items": [1, 2]}) is None
        assert resolve("items.1", {"items": [1, 2]}) == 2

    def test_star_on_a_dict_is_the_plain_key(self):
        assert resolve("a.*.b", {"a": {"*": {"b": 1}}}) == 1

    def test_trailing_star_gives_the_elements(self):
        assert resolve("tags.*", {"tags": ["x", "y"]}) == ["x", "y"]

    def test_stars_nest(self):
        value = {"rows": [{"cells": [1, 2]}, {"cells": [3]}]}
        assert resolve("rows.*.cells.*", value) == [[1, 2], [3]]

    def test_empty_path_is_the_input_itself(self):
        assert resolve("", {"a": 1}) == {"a": 1}

    def test_undefined_input_is_undefined(self):
        assert resolve("a", None) is None
        assert resolve({"value": "static"}, None) is None

    def test_no_mapping_is_undefined(self):
        # walkerOS's getMappingValue(value) with no mapping gives undefined
        assert resolve(None) is None
        assert resolve(None, None) is None
        assert resolve(None, {"a": 1}, consent={"marketing": True}) is None

    def test_none_inside_a_mapping_is_still_a_config_error(self):
        with pytest.raises(ConfigError, match=r"1: .*got NoneType"):
            resolve(["data.id", None])
        with pytest.raises(ConfigError, match=r"map\.a: .*got NoneType"):
            resolve({"map": {"a": None}})


class TestStaticValueAndKey:
    @pytest.mark.parametrize("static", ["text", 0, False, "", 1.5, [1, None], {"a": {"b": 1}}])
    def test_static_value(self, static):
        assert resolve({"value": static}) == static

    def test_missing_path_falls_back_to_the_static_value(self):
        assert resolve({"key": "data.missing", "value": "default"}) == "default"
        assert resolve({"key": "data.id", "value": "default"}) == "ORD-1"

    def test_static_value_is_the_default_of_every_star_element(self):
        assert resolve({"key": "nested.*.data.id", "value": "?"}) == ["P1", "?", "P2"]

    def test_static_containers_are_fresh_copies(self):
        fn = compile_value_mapping({"value": {"list": [1]}})
        ctx = MappingContext.for_event(EVENT)
        first = fn(EVENT, ctx)
        first["list"].append(2)
        assert fn(EVENT, ctx) == {"list": [1]}

    def test_results_never_share_containers_with_the_input(self):
        event = copy.deepcopy(EVENT)
        tags = resolve("data.tags", event)
        tags.append("c")
        data = resolve("data", event)
        data["id"] = "changed"
        assert event == EVENT


class TestCallables:
    def test_fn_replaces_the_result(self):
        assert resolve({"fn": lambda event: event["user"]["id"].upper()}) == "U-1"

    def test_fn_with_context_sees_event_mapping_consent_and_logger(self):
        seen = []

        def fn(value, ctx):
            seen.append(ctx)
            return "ok"

        spec = {"fn": fn}
        assert resolve(spec) == "ok"
        (ctx,) = seen
        assert ctx.event is EVENT
        assert ctx.mapping is spec
        assert ctx.consent == {"functional": True, "marketing": False}
        assert ctx.logger.name == "mparticle_dest.mapping"

    def test_key_after_fn_wins_but_fn_still_runs(self):
        calls = []
        spec = {"fn": lambda v: calls.append(v) or "fn", "key": "data.id"}
        assert resolve(spec) == "ORD-1"
        assert len(calls) == 1

    def test_fn_that_raises_is_undefined_and_logged(self, caplog):
        def broken(value):
            raise KeyError("nope")

        with caplog.at_level(logging.WARNING, logger="mparticle_dest.mapping"):
            assert resolve({"fn": broken}) is None
            assert resolve({"fn": broken, "value": "fallback"}) == "fallback"
        (record, _) = caplog.records
        assert record.name == "mparticle_dest.mapping"
        assert record.levelno == logging.WARNING
        assert "fn" in record.getMessage() and "KeyError" in record.getMessage()
        assert "u-1" not in caplog.text  # the event is not logged

    def test_condition_false_is_undefined_even_with_a_static_value(self):
        spec = {"condition": lambda e: e["name"] == "page view", "value": "x", "key": "name"}
        assert resolve(spec) is None
        spec["condition"] = lambda e: e["name"] == "order complete"
        assert resolve(spec) == "order complete"

    def test_condition_that_raises_is_undefined(self, caplog):
        assert resolve({"condition": lambda e: 1 / 0, "value": "x"}) is None
        assert "ZeroDivisionError" in caplog.text

    def test_validate_receives_the_result_and_rejects(self):
        spec = {"key": "data.id", "validate": lambda v: v.startswith("ORD")}
        assert resolve(spec) == "ORD-1"
        spec["validate"] = lambda v: isinstance(v, int)
        assert resolve(spec) is None
        spec["value"] = "fallback"
        assert resolve(spec) == "fallback"

    def test_validate_that_raises_counts_as_failed(self):
        assert resolve({"key": "data.id", "validate": lambda v: v.nope}) is None

    def test_python_truthiness_for_callable_results(self):
        assert resolve({"key": "data.id", "condition": lambda e: []}) is None
        assert resolve({"key": "data.id", "validate": lambda v: "yes"}) == "ORD-1"


class TestConsent:
    def test_granted_when_one_required_group_is_granted(self):
        spec = {"key": "user.id", "consent": {"marketing": True, "functional": True}}
        assert resolve(spec) == "u-1"

    def test_denied_gives_the_static_value_or_undefined(self):
        assert resolve({"key": "user.id", "consent": {"marketing": True}}) is None
        spec = {"key": "user.id", "consent": {"marketing": True}, "value": "anonymous"}
        assert resolve(spec) == "anonymous"

    def test_an_empty_requirement_is_never_granted(self):
        assert resolve({"key": "user.id", "consent": {}}) is None
        assert resolve({"key": "user.id", "consent": {"functional": False}}) is None

    def test_precedence_input_then_argument_then_event(self):
        spec = {"key": "id", "consent": {"analytics": True}}
        granted = {"analytics": True}
        denied = {"analytics": False}
        assert resolve(spec, {"id": 1, "consent": granted}, consent=denied) == 1
        assert resolve(spec, {"id": 1, "consent": denied}, consent=granted) is None
        assert resolve(spec, {"id": 1}, consent=granted) == 1
        assert resolve(spec, {"id": 1}, consent=denied, event={"consent": granted}) is None
        assert resolve(spec, {"id": 1}, event={"consent": granted}) == 1
        assert resolve(spec, {"id": 1}) is None

    def test_loop_items_never_supply_their_own_consent(self):
        value = {
            "consent": {"marketing": False},
            "items": [{"id": "a", "consent": {"marketing": True}}],
        }
        spec = {"loop": ["items", {"key": "id", "consent": {"marketing": True}}]}
        assert resolve(spec, value) == []
        value["consent"] = {"marketing": True}
        value["items"][0]["consent"] = {"marketing": False}
        assert resolve(spec, value) == ["a"]


class TestFallbackLists:
    def test_first_defined_result_wins_and_falsy_values_are_kept(self):
        assert resolve(["missing", "data.total", "data.id"]) == 0
        assert resolve(["missing", "data.paid"]) is False
        assert resolve(["missing", "data.note", "data.id"]) == ""

    def test_missing_everywhere_is_undefined(self):
        assert resolve(["missing", {"key": "also.missing"}]) is None

    def test_nested_list_picks_the_first_truthy_result_else_the_last(self):
        assert resolve([["data.total", "data.note", "data.id"]]) == "ORD-1"
        assert resolve([["data.total", "data.note"]]) == ""
        assert resolve([["data.note", "data.total"]]) == 0

    def test_nested_list_treats_empty_containers_as_truthy(self):
        assert resolve([[{"map": {}}, "data.id"]]) == {}

    def test_set_items_that_are_lists_pick_the_first_truthy(self):
        spec = {"set": [["data.total", "data.id"], ["data.note", "data.paid"]]}
        assert resolve(spec) == ["ORD-1", False]

    def test_empty_mappings_are_undefined(self):
        assert resolve({}) is None
        assert resolve([]) is None
        assert resolve([[]]) is None


class TestProducers:
    def test_loop_over_a_path(self):
        spec = {
            "loop": ["nested", {"condition": lambda n: n["entity"] == "product", "key": "data.id"}]
        }
        assert resolve(spec) == ["P1", "P2"]

    def test_loop_over_this(self):
        assert resolve({"loop": ["this", {"key": "user.id"}]}) == ["u-1"]

    def test_loop_drops_undefined_items_and_results(self):
        value = {"items": [None, {"id": "a"}, {"x": 1}, {"id": 0}]}
        assert resolve({"loop": ["items", "id"]}, value) == ["a", 0]
        assert resolve({"loop": ["items", {"key": "id", "value": "?"}]}, value) == ["a", "?", 0]

    def test_loop_over_a_non_list_gives_the_static_value(self):
        assert resolve({"loop": ["data.id", "x"]}) is None
        assert resolve({"loop": ["data.id", "x"], "value": "fallback"}) == "fallback"

    def test_loop_over_an_empty_list_is_an_empty_list(self):
        assert resolve({"loop": ["items", "id"]}, {"items": []}) == []

    def test_map_omits_undefined_entries(self):
        spec = {"map": {"id": "data.id", "missing": "data.nope", "zero": "data.total"}}
        assert resolve(spec) == {"id": "ORD-1", "zero": 0}

    def test_map_nests_and_keeps_entry_order(self):
        spec = {"map": {"b": {"value": 1}, "a": {"map": {"deep": {"value": True}}}}}
        result = resolve(spec)
        assert result == {"b": 1, "a": {"deep": True}}
        assert list(result) == ["b", "a"]

    def test_empty_map_and_set(self):
        assert resolve({"map": {}}) == {}
        assert resolve({"set": []}) == []

    def test_set_keeps_every_result_in_order(self):
        spec = {"set": ["name", "data.nope", {"value": "static"}, {"fn": lambda e: "fn"}]}
        assert resolve(spec) == ["order complete", None, "static", "fn"]

    def test_the_producer_replaces_key_and_fn(self):
        assert resolve({"key": "data.id", "map": {"id": "data.id"}}) == {"id": "ORD-1"}


class TestJsonFilter:
    @pytest.mark.parametrize("bad", [object(), {1, 2}, float("nan"), float("inf"), b"bytes"])
    def test_non_json_results_fall_back_to_the_static_value(self, bad):
        assert resolve({"fn": lambda e: bad}) is None
        assert resolve({"fn": lambda e: bad, "value": "fallback"}) == "fallback"

    def test_a_container_with_a_non_json_item_is_rejected_whole(self):
        assert resolve({"fn": lambda e: [1, object()]}) is None
        assert resolve({"fn": lambda e: {1: "int key"}}) is None

    def test_tuples_become_lists_and_none_is_kept_inside(self):
        assert resolve({"fn": lambda e: (1, None, {"a": None})}) == [1, None, {"a": None}]

    def test_circular_values_are_rejected(self):
        loop: list = []
        loop.append(loop)
        assert resolve({"fn": lambda e: loop}) is None
