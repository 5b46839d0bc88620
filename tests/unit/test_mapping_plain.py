"""Plain value mappings (_mapping_plain) and the rule a name alone decides (plain_match)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mparticle_dest.mapping import CompiledMapping, get_mapping_value
from mparticle_dest.mapping._plain import PlainValue, plain_map, plain_value

# ------------------------------------------------------------------ plain_value


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("user.id", (("user", "id"), None)),
        ("id", (("id",), None)),
        ("nested.0.id", (("nested", "0", "id"), None)),
        ({"key": "data.id"}, (("data", "id"), None)),
        ({"key": "data.id", "value": "none"}, (("data", "id"), "none")),
        ({"key": "data.id", "value": None}, (("data", "id"), None)),
        ({"value": 0}, (None, 0)),
        ({"value": False}, (None, False)),
        ({"value": 1.5}, (None, 1.5)),
    ],
)
def test_plain_forms(spec: Any, expected: PlainValue) -> None:
    assert plain_value(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "nested.*.id",
        "*",
        {},
        {"key": ""},
        {"key": 5},
        {"key": "a.*"},
        {"value": [1]},
        {"value": {"a": 1}},
        {"value": float("nan")},
        {"key": "a", "fn": str},
        {"key": "a", "consent": {"x": True}},
        {"map": {"a": "b"}},
        ["a", "b"],
        5,
        None,
    ],
    ids=repr,
)
def test_other_forms_are_not_plain(spec: Any) -> None:
    assert plain_value(spec) is None


def test_plain_map_needs_every_entry_plain() -> None:
    assert plain_map({"map": {"a": "data.a", "b": {"value": 1}}}) == (
        ("a", (("data", "a"), None)),
        ("b", (None, 1)),
    )
    assert plain_map({"map": {}}) == ()
    assert plain_map({"map": {"a": "data.a", "b": {"fn": str}}}) is None
    assert plain_map({"map": {"a": "data.a"}, "value": {}}) is None
    assert plain_map({"map": ["a"]}) is None
    assert plain_map("data") is None


_MISSING = object()


def _read(plain: PlainValue, event: dict[str, Any]) -> Any:
    """What a fast path does with a plain value (``_MISSING``: it declines)."""
    keys, default = plain
    value: Any = None
    if keys is not None:
        value = event
        for key in keys:
            if value is None:
                break
            if type(value) is not dict:
                return _MISSING
            value = value.get(key)
    if value is None:
        value = default
    if value is None or type(value) in (str, int, bool):
        return value
    if type(value) is float and value - value == 0.0:
        return value
    return _MISSING


_keys = st.sampled_from(["a", "b", "0"])
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
)
_trees = st.recursive(
    _leaves | st.sampled_from([float("inf"), float("nan")]),
    lambda children: st.dictionaries(_keys, children, max_size=3) | st.lists(children, max_size=2),
    max_leaves=8,
)
_paths = st.lists(_keys, min_size=1, max_size=3).map(".".join)
_specs = st.one_of(
    _paths,
    st.builds(lambda p: {"key": p}, _paths),
    st.builds(lambda p, v: {"key": p, "value": v}, _paths, _leaves),
    st.builds(lambda v: {"value": v}, _leaves),
)


@given(spec=_specs, tree=st.dictionaries(_keys, _trees, max_size=3))
def test_a_plain_reading_equals_the_compiled_mapping(spec: Any, tree: dict[str, Any]) -> None:
    plain = plain_value(spec)
    assert plain is not None
    read = _read(plain, tree)
    if read is not _MISSING:
        assert get_mapping_value(tree, spec) == read
        assert type(get_mapping_value(tree, spec)) is type(read)


# ------------------------------------------------------------------ plain_match


def _compiled(mapping: dict[str, Any], **config: Any) -> CompiledMapping:
    return CompiledMapping.from_config({"mapping": mapping, **config})


def test_plain_match_gives_the_rule_and_key_the_lookup_gives() -> None:
    view = {"name": "viewed", "data": {"map": {"id": "data.id"}}}
    compiled = _compiled({"product": {"view": view, "*": {"name": "other"}}, "*": {"*": {}}})
    rule, key, consent = compiled.plain_match("product view") or (None, "", ())
    assert rule is not None and rule.rule is view and key == "product view" and consent == ()
    assert rule.plain == (("id", (("data", "id"), None)),)
    rule, key, _ = compiled.plain_match("product click") or (None, "", ())
    assert rule is not None and key == "product *" and rule.plain == ()
    rule, key, _ = compiled.plain_match("page view") or (None, "", ())
    assert rule is not None and key == "* *"


def test_plain_match_without_a_rule() -> None:
    assert _compiled({"product": {"view": {}}}).plain_match("page view") == (None, "", ())
    assert _compiled({}).plain_match("x") == (None, "", ())


def test_plain_match_skips_an_empty_rule_list_then_falls_back() -> None:
    compiled = _compiled({"product": {"view": []}, "*": {"*": {"name": "any"}}})
    rule, key, _ = compiled.plain_match("product view") or (None, "", ())
    assert rule is not None and key == "* *" and rule.name == "any"


@pytest.mark.parametrize(
    "config",
    [
        {"policy": {"data.id": "user.id"}},
        {"data": {"map": {"a": "data.a"}}},
        {"include": ["globals"]},
    ],
    ids=lambda c: next(iter(c)),
)
def test_no_plain_match_with_config_level_parts(config: dict[str, Any]) -> None:
    assert _compiled({"product": {"view": {}}}, **config).plain_match("product view") is None


def test_no_plain_match_when_a_condition_comes_first() -> None:
    rules = [{"condition": lambda e: True, "name": "a"}, {"name": "b"}]
    compiled = _compiled({"product": {"view": rules}})
    assert compiled.plain_match("product view") is None
    first = _compiled({"product": {"view": [{"name": "a"}, {"condition": lambda e: True}]}})
    rule, _, _ = first.plain_match("product view") or (None, "", ())
    assert rule is not None and rule.name == "a"


@pytest.mark.parametrize(
    "rule",
    [
        {"ignore": True},
        {"silent": True},
        {"policy": {"data.id": "user.id"}},
        {"include": ["globals"]},
        {"remove": ["a"]},
        {"data": "data"},
        {"data": {"map": {"a": {"fn": str}}}},
    ],
    ids=lambda r: next(iter(r)),
)
def test_rules_with_more_than_plain_parts_are_not_plain(rule: dict[str, Any]) -> None:
    match = _compiled({"product": {"view": rule}}).plain_match("product view")
    assert match is not None and match[0] is not None
    assert match[0].plain is None


def test_plain_match_lists_the_consent_requirements_config_first() -> None:
    rules = {"product": {"view": {"consent": {"marketing": True, "ads": True, "x": False}}}}
    compiled = _compiled(rules, consent={"functional": True})
    match = compiled.plain_match("product view")
    assert match is not None and match.rule is not None and match.rule.plain == ()
    assert match.consent == (("functional",), ("marketing", "ads"))
    assert compiled.plain_match("page view") == (None, "", (("functional",),))


def test_empty_include_and_empty_data_string_keep_a_rule_plain() -> None:
    match = _compiled({"product": {"view": {"include": [], "data": ""}}}).plain_match(
        "product view"
    )
    assert match is not None and match[0] is not None and match[0].plain == ()
