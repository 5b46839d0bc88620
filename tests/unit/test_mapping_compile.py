"""Compiling mappings: ConfigError with every problem and its path, callables checked once."""

from __future__ import annotations

import functools
import logging

import pytest

from mparticle_dest import ConfigError
from mparticle_dest.mapping import (
    CompiledMapping,
    MappingContext,
    compile_value_mapping,
    get_mapping_value,
)


async def async_fn(value):
    return value


async def async_gen(value):
    yield value


class AsyncCallable:
    async def __call__(self, value):
        return value


class SyncCallable:
    def __call__(self, value, ctx):
        return [value["id"], ctx.mapping["fn"] is self]


def problems_of(spec, path=""):
    with pytest.raises(ConfigError) as info:
        compile_value_mapping(spec, path=path)
    return info.value.problems


class TestAsyncCallables:
    @pytest.mark.parametrize(
        "fn",
        [async_fn, async_gen, AsyncCallable(), functools.partial(async_fn)],
        ids=["coroutine function", "async generator", "async __call__", "partial"],
    )
    def test_rejected_at_compile_time_with_the_key_path(self, fn):
        config = {"mapping": {"product": {"view": {"data": {"map": {"price": {"fn": fn}}}}}}}
        with pytest.raises(ConfigError) as info:
            CompiledMapping.from_config(config)
        (problem,) = info.value.problems
        assert problem.startswith("mapping.product.view.data.map.price.fn: async callables")
        assert "not supported" in problem

    @pytest.mark.parametrize("key", ["condition", "validate"])
    def test_every_callable_key_is_checked(self, key):
        (problem,) = problems_of({key: async_fn}, path="settings.ip")
        assert problem.startswith(f"settings.ip.{key}: async callables are not supported")

    def test_rule_condition_and_policy(self):
        config = {
            "policy": {"data.x": {"fn": async_fn}},
            "mapping": {"order": {"complete": [{"condition": async_fn}]}},
        }
        with pytest.raises(ConfigError) as info:
            CompiledMapping.from_config(config)
        assert [p.split(":")[0] for p in info.value.problems] == [
            "mapping.order.complete.0.condition",
            "policy.data.x.fn",
        ]

    def test_sync_callable_returning_a_coroutine_is_undefined_and_closed(self, caplog):
        # filterwarnings=error: an un-awaited coroutine would fail this test.
        spec = {"fn": lambda v: async_fn(v), "value": "fallback"}
        assert get_mapping_value({"a": 1}, spec) == "fallback"
        assert "awaitable" in caplog.text


class TestConfigErrors:
    def test_collects_every_problem_with_its_path(self):
        spec = {
            "kye": "data.id",
            "fn": "not callable",
            "map": {"a": 5, "b": {"loop": ["only one"]}, "c": {"set": "x"}},
        }
        problems = problems_of(spec, path="settings.userAttributes")
        assert problems == (
            "settings.userAttributes.kye: unknown mapping key 'kye' (known: condition, consent, "
            "value, fn, key, loop, map, set, validate); did you mean 'key'?",
            "settings.userAttributes.fn: expected a callable, got str",
            "settings.userAttributes.map.a: a value mapping is a string path, a dict or a list, "
            "got int 5; for a constant write {'value': 5}",
            "settings.userAttributes.map.b.loop: expected a list of two: [source, item_mapping]",
            "settings.userAttributes.map.c.set: expected a list of value mappings, got str",
        )

    @pytest.mark.parametrize(
        ("spec", "where", "fragment"),
        [
            (None, "<mapping>", "got NoneType"),
            (["a", 3], "1", "got int 3"),
            (len, "<mapping>", "bare callable"),
            ({"map": ["a"]}, "map", "expected a dict"),
            ({"map": {1: "a"}}, "map.1", "map keys must be strings"),
            ({"key": 5}, "key", "expected a string path"),
            ({"consent": ["marketing"]}, "consent", "expected a dict of consent groups"),
            ({"value": {1, 2}}, "value", "must be JSON-like"),
            ({"value": float("nan")}, "value", "must be JSON-like"),
            ({"map": {}, "set": []}, "<mapping>", "use only one of loop, map, set"),
            ([["a", ["b"]]], "0.1", "nested inside a nested list"),
            ({"set": [["a", ["b"]]]}, "set.0.1", "nested inside a nested list"),
            ({"fn": lambda: 1}, "fn", "takes no positional argument"),
            ({"fn": lambda a, b, c: 1}, "fn", "requires 3 positional arguments"),
            ({"fn": lambda v, *, flag: 1}, "fn", "keyword-only parameter 'flag'"),
        ],
    )
    def test_bad_shapes(self, spec, where, fragment):
        (problem,) = problems_of(spec)
        assert problem.startswith(f"{where}: ")
        assert fragment in problem

    def test_plain_value_dicts_are_not_checked_for_mapping_keys(self):
        assert get_mapping_value({}, {"value": {"kye": 1, "fn": "x"}}) == {"kye": 1, "fn": "x"}

    @pytest.mark.parametrize(
        ("config", "problem"),
        [
            ({"mapping": ["x"]}, "mapping: expected a dict of entity"),
            ({"mapping": {"product": "x"}}, "mapping.product: expected a dict of action: rule"),
            ({"mapping": {"product": {"view": "x"}}}, "mapping.product.view: expected a rule"),
            ({"mapping": {"p": {"v": {"name": 3}}}}, "mapping.p.v.name: expected a string"),
            ({"mapping": {"p": {"v": {"include": ["dta"]}}}}, "mapping.p.v.include.0: unknown"),
            (
                {"mapping": {"p": {"v": {"include": "data"}}}},
                "mapping.p.v.include: expected a list",
            ),
            ({"mapping": {"p": {"v": {"remove": [""]}}}}, "mapping.p.v.remove.0: expected a non"),
            ({"mapping": {"p": {"v": [{"consent": True}]}}}, "mapping.p.v.0.consent: expected"),
            ({"policy": {"": "a"}}, "policy.: a policy key must be"),
            ({"policy": "a"}, "policy: expected a dict"),
            ({"data": {"mapp": {}}}, "data.mapp: unknown mapping key"),
            ({"consent": "marketing"}, "consent: expected a dict"),
        ],
    )
    def test_config_problems_have_paths_from_the_config_root(self, config, problem):
        with pytest.raises(ConfigError) as info:
            CompiledMapping.from_config(config)
        assert info.value.problems[0].startswith(problem)


class TestArity:
    def ctx(self):
        return MappingContext.for_event({"id": "x"})

    @pytest.mark.parametrize(
        ("fn", "expected"),
        [
            (str, "{'id': 'x'}"),
            (len, 1),
            (functools.partial(lambda prefix, v: prefix + v["id"], "p-"), "p-x"),
            (lambda v, ctx=None: ctx is None, True),
            (lambda v, ctx: isinstance(ctx, MappingContext), True),
            (lambda *args: len(args), 2),
            (SyncCallable(), ["x", True]),
        ],
        ids=["str", "len", "partial", "default", "two", "varargs", "callable object"],
    )
    def test_context_is_passed_only_to_two_argument_callables(self, fn, expected):
        compiled = compile_value_mapping({"fn": fn})
        assert compiled({"id": "x"}, self.ctx()) == expected

    def test_round_keeps_its_default_second_argument(self):
        compiled = compile_value_mapping({"fn": round})
        assert compiled(2.6, self.ctx()) == 3

    def test_logger_name(self, caplog):
        with caplog.at_level(logging.WARNING):
            get_mapping_value({}, {"fn": lambda v: v["missing"]}, event={"user": "secret-user"})
        assert [r.name for r in caplog.records] == ["mparticle_dest.mapping"]
        assert "secret-user" not in caplog.text
