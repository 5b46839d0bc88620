"""Property tests: the compiled mapping agrees with a naive interpreter of SPEC §4."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.mapping_reference import ref_get_path, ref_process, ref_value

from mparticle_dest.mapping import (
    CompiledMapping,
    MappingContext,
    compile_value_mapping,
    get_mapping_value,
)
from mparticle_dest.mapping._paths import compile_getter, split_path

# Common keys repeated so that generated paths often hit generated data.
KEYS = ["a", "a", "b", "b", "0", "0", "*", "*", "1", "01", "", "consent"]
GROUPS = ["g1", "g2"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, 1.5, float("nan"), float("inf")]),
    st.sampled_from(["", "x", "y"]),
)
json_data = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=16,
)
statics = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "s", 0.5])),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=4,
)
clean_data = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(["", "x", 0.0])),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)
paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4).map(".".join)
consent_state = st.none() | st.dictionaries(st.sampled_from(GROUPS), st.booleans(), max_size=2)


def same(left: Any, right: Any) -> bool:
    """Equal with types: 1, 1.0 and True differ; dict key order is ignored."""
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, float) and isinstance(right, float) and left != left:
        return right != right  # NaN
    return type(left) is type(right) and left == right


@settings(max_examples=300, deadline=None)
@given(data=json_data, path=paths, default=st.sampled_from([None, "D", 0]))
def test_path_lookup_matches_a_naive_walk(data: Any, path: str, default: Any) -> None:
    getter = compile_getter(split_path(path))
    assert same(getter(data, default), ref_get_path(data, path, default))


# -- generated value mappings ------------------------------------------------------------------


def identity(value):
    return value


def describe(value):
    return type(value).__name__


def boom(value):
    raise ValueError("boom")


def zero(value):
    return 0


def nothing(value):
    return None


def with_context(value, context):
    return ["ctx", isinstance(value, dict)]


def is_dict(value):
    return isinstance(value, dict)


def always(value):
    return True


def never(value):
    return False


def is_text(value):
    return isinstance(value, str)


functions = st.sampled_from([identity, describe, boom, zero, nothing, with_context])
conditions = st.sampled_from([is_dict, always, never, boom])
validators = st.sampled_from([is_text, always, never, boom, identity])
requirements = st.dictionaries(st.sampled_from(GROUPS), st.booleans(), max_size=2)


def _mapping_dicts(value_mappings: st.SearchStrategy[Any], items: st.SearchStrategy[Any]):
    base = st.fixed_dictionaries(
        {},
        optional={
            "condition": conditions,
            "consent": requirements,
            "value": statics,
            "fn": functions,
            "key": paths,
            "validate": validators,
        },
    )
    producers = st.one_of(
        st.just({}),
        st.builds(
            lambda source, each: {"loop": [source, each]},
            st.one_of(st.just("this"), paths, value_mappings),
            value_mappings,
        ),
        st.builds(
            lambda entries: {"map": entries},
            st.dictionaries(st.sampled_from(["p", "q", "r"]), value_mappings, max_size=3),
        ),
        st.builds(lambda entries: {"set": entries}, st.lists(items, max_size=3)),
    )
    return st.builds(lambda a, b: {**a, **b}, base, producers)


def _value_mappings() -> st.SearchStrategy[Any]:
    value_mapping = st.deferred(lambda: st.one_of(leaf, st.lists(item, max_size=3)))
    item = st.deferred(lambda: st.one_of(leaf, st.lists(leaf, max_size=3)))
    leaf = st.one_of(paths, _mapping_dicts(value_mapping, item))
    return value_mapping


value_mappings = _value_mappings()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_data, spec=value_mappings, consent=consent_state)
def test_compiled_value_mapping_matches_the_reference(data: Any, spec: Any, consent: Any) -> None:
    before = copy.deepcopy(data)
    compiled = compile_value_mapping(spec)
    got = compiled(data, MappingContext(event=data, mapping=None, consent=consent))
    expected = ref_value(data, spec, {"consent": consent})
    assert same(got, expected)
    assert same(data, before)  # the input is never mutated


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_data, spec=value_mappings, consent=consent_state)
def test_uncompiled_entry_point_matches_the_compiled_form(data, spec, consent) -> None:
    event = {"consent": consent} if consent is not None else {}
    own = data.get("consent") if isinstance(data, dict) else None
    in_effect = own if isinstance(own, dict) else consent
    compiled = compile_value_mapping(spec)
    ctx = MappingContext(event=event, mapping=None, consent=in_effect)
    assert same(get_mapping_value(data, spec, event=event), compiled(data, ctx))


# -- generated configs -----------------------------------------------------------------------

ENTITIES = ["a", "b", "*"]
ACTIONS = ["x", "y", "*"]
SECTIONS = ["data", "globals", "context", "user", "source", "event", "all"]
policy_paths = st.sampled_from(["data.a", "data.b", "globals.a", "user.id", "name", "consent"])
simple_mappings = st.one_of(
    paths.map(lambda p: f"data.{p}"),
    st.sampled_from(["user.id", "globals", "data", "name", "nested.*.a"]),
    st.builds(lambda v: {"value": v}, statics),
    _mapping_dicts(
        st.sampled_from(["data.a", "user.id", {"value": 1}]), st.sampled_from(["data.b"])
    ),
)


def _rule_condition(event):
    return isinstance(event.get("data"), dict) and bool(event["data"].get("a"))


rules = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["renamed", "a y", ""]),
        "data": simple_mappings,
        "policy": st.dictionaries(policy_paths, simple_mappings, max_size=2),
        "consent": requirements,
        "condition": st.sampled_from([_rule_condition, never, always]),
        "ignore": st.booleans(),
        "silent": st.booleans(),
        "include": st.lists(st.sampled_from(SECTIONS), max_size=3),
        "remove": st.lists(st.sampled_from(["a", "data_a", "p", "user_id", "0"]), max_size=2),
    },
)
rule_trees = st.dictionaries(
    st.sampled_from(ENTITIES),
    st.dictionaries(
        st.sampled_from(ACTIONS),
        st.one_of(rules, st.lists(rules, max_size=3)),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=3,
)


def _present(**parts: Any) -> dict[str, Any]:
    return {key: value for key, value in parts.items() if value is not None}


configs = st.builds(
    _present,
    mapping=rule_trees,
    data=st.none() | simple_mappings,
    policy=st.none() | st.dictionaries(policy_paths, simple_mappings, max_size=2),
    consent=st.sampled_from([None, None, None, {"g1": True}, {"g2": True, "g1": False}]),
    include=st.none() | st.lists(st.sampled_from(SECTIONS), max_size=2),
)
events = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a x", "a x", "a y", "b x", "c z", "a", "a  x", "a x more"]),
        "consent": st.sampled_from([{"g1": True}, {"g1": True, "g2": True}, {"g2": False}]),
    },
    optional={
        "data": st.dictionaries(st.sampled_from(KEYS), clean_data, max_size=3),
        "globals": st.dictionaries(st.sampled_from(["a", "b"]), clean_data, max_size=2),
        "context": st.dictionaries(
            st.sampled_from(["a", "b"]), st.tuples(clean_data, st.integers(0, 2)).map(list)
        ),
        "user": st.fixed_dictionaries({}, optional={"id": clean_data, "device": clean_data}),
        "nested": st.lists(st.dictionaries(st.sampled_from(["a", "b"]), clean_data), max_size=2),
        "id": st.just("ev-1"),
        "timestamp": st.just(1700000000000),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events, config=configs)
def test_compiled_event_mapping_matches_the_reference(event, config) -> None:
    before = copy.deepcopy(event)
    result = CompiledMapping.from_config(config).process(event)
    expected = ref_process(copy.deepcopy(event), config)
    assert result.rule is expected["rule"]
    assert result.mapping_key == expected["mapping_key"]
    assert result.skipped == expected["skipped"]
    assert result.ignore == (expected["skipped"] == "ignore")
    assert same(result.data, expected["data"])
    assert same(dict(result.event), expected["event"])
    assert same(event, before)  # the caller's event is never mutated
