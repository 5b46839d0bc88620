"""Compile walkerOS value mappings into plain closures, once.

Three levels mirror walkerOS's resolution:

- a *value* (``getMappingValue``): a list is a fallback chain, the first defined
  (not ``None``) result wins;
- an *item* (``processMappingValue``): an item of a fallback chain or of ``set``; a
  list here picks the first truthy result, else the last one (the walkerOS quirk);
- a *leaf*: a string path or a mapping dict.

Each compiled function takes ``(value, ctx)`` and assumes ``value`` is not ``None``;
:func:`entry` adds the "undefined input → undefined" rule and the last-resort
exception guard of a public entry point.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from ._callables import Call, inspect_callable, prepare_call
from ._paths import Segment, compile_getter, split_path, step
from ._values import (
    MappingContext,
    granted,
    is_property,
    js_truthy,
    logger,
    required_groups,
    to_property,
)

__all__ = ["KNOWN_KEYS", "ValueFn", "compile_value", "entry", "join"]

ValueFn = Callable[[Any, MappingContext], Any]
"""A compiled value mapping: ``fn(value, ctx)`` returns the result, ``None`` for undefined."""

KNOWN_KEYS = ("condition", "consent", "value", "fn", "key", "loop", "map", "set", "validate")
_KNOWN = frozenset(KNOWN_KEYS)
_PRODUCERS = ("loop", "map", "set")


def join(path: str, key: object) -> str:
    """Append one key to a dotted key path."""
    return f"{path}.{key}" if path else str(key)


def _undefined(value: Any, ctx: MappingContext) -> Any:
    return None


def entry(fn: ValueFn, path: str) -> ValueFn:
    """Wrap a compiled value for a public entry point.

    An undefined input resolves to undefined (walkerOS ``getMappingValue``), and an
    unexpected error anywhere inside becomes undefined plus a warning instead of
    aborting the event (callables are already guarded one by one).
    """

    def run(value: Any, ctx: MappingContext) -> Any:
        if value is None:
            return None
        try:
            return fn(value, ctx)
        except Exception as exc:
            logger.warning(
                "mapping at %s failed with %s: %s; treated as undefined",
                path or "<mapping>",
                type(exc).__name__,
                exc,
            )
            return None

    return run


class _Compiler:
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or '<mapping>'}: {message}")

    # -- the three levels -------------------------------------------------------------

    def value(self, spec: Any, path: str) -> ValueFn:
        if isinstance(spec, (list, tuple)):
            chain = tuple(self.item(item, join(path, i)) for i, item in enumerate(spec))
            return _first_defined(chain)
        return self.item(spec, path)

    def item(self, spec: Any, path: str) -> ValueFn:
        if isinstance(spec, (list, tuple)):
            chain = []
            for i, item in enumerate(spec):
                if isinstance(item, (list, tuple)):
                    self.problem(
                        join(path, i),
                        "a list nested inside a nested list is not a value mapping "
                        "(lists nest two levels deep at most)",
                    )
                else:
                    chain.append(self.leaf(item, join(path, i)))
            return _first_truthy(tuple(chain))
        return self.leaf(spec, path)

    def leaf(self, spec: Any, path: str) -> ValueFn:
        if isinstance(spec, str):
            return _path_fn(spec, None)
        if isinstance(spec, Mapping):
            return self.mapping(spec, path)
        if callable(spec):
            self.problem(path, "a bare callable is not a value mapping; write {'fn': callable}")
        else:
            self.problem(
                path,
                "a value mapping is a string path, a dict or a list, got "
                f"{type(spec).__name__} {spec!r}; for a constant write {{'value': {spec!r}}}",
            )
        return _undefined

    # -- mapping dicts ------------------------------------------------------------------

    def mapping(self, spec: Mapping[str, Any], path: str) -> ValueFn:
        if not spec:
            return _undefined
        for key in spec:
            if key not in _KNOWN:
                self._unknown_key(key, path)
        has_value = "value" in spec
        static = spec.get("value")
        if has_value and not is_property(static):
            self.problem(
                join(path, "value"),
                f"a static value must be JSON-like (str, number, bool, None, list, dict), "
                f"got {type(static).__name__}",
            )
        condition = self._call(spec, "condition", path)
        fn = self._call(spec, "fn", path)
        validate = self._call(spec, "validate", path)
        groups = self._consent(spec.get("consent"), join(path, "consent"))
        key_path = spec.get("key")
        getter = None
        if key_path is not None:
            if isinstance(key_path, str):
                getter = compile_getter(split_path(key_path)) if key_path else None
            else:
                self.problem(
                    join(path, "key"), f"expected a string path, got {type(key_path).__name__}"
                )
        producers = [name for name in _PRODUCERS if spec.get(name) is not None]
        if len(producers) > 1:
            self.problem(path, f"use only one of loop, map, set (got {', '.join(producers)})")
        # Every producer is compiled so that all their problems are reported.
        compiled = [self._producer(spec, name, path) for name in producers]
        producer = compiled[0] if compiled else None

        if (
            condition is None
            and fn is None
            and validate is None
            and groups is None
            and producer is None
        ):
            if getter is not None:
                return _path_getter_fn(getter, static)
            if has_value:
                return _static_fn(static)
        return _general(condition, groups, has_value, static, fn, getter, producer, validate)

    def _unknown_key(self, key: object, path: str) -> None:
        hint = difflib.get_close_matches(str(key), KNOWN_KEYS, n=1)
        suffix = f"; did you mean {hint[0]!r}?" if hint else ""
        self.problem(
            join(path, key),
            f"unknown mapping key {key!r} (known: {', '.join(KNOWN_KEYS)}){suffix}",
        )

    def _call(self, spec: Mapping[str, Any], name: str, path: str) -> Call | None:
        fn = spec.get(name)
        if fn is None:
            return None
        where = join(path, name)
        arity = inspect_callable(fn, where, self.problems)
        if arity is None:
            return None
        return prepare_call(fn, arity, name, where, spec)

    def _consent(self, consent: Any, path: str) -> tuple[str, ...] | None:
        if consent is None:
            return None
        if not isinstance(consent, Mapping):
            self.problem(path, f"expected a dict of consent groups, got {type(consent).__name__}")
            return None
        return required_groups(consent)

    def _producer(self, spec: Mapping[str, Any], name: str, path: str) -> ValueFn:
        where = join(path, name)
        body = spec[name]
        if name == "loop":
            if not isinstance(body, (list, tuple)) or len(body) != 2:
                self.problem(where, "expected a list of two: [source, item_mapping]")
                return _undefined
            source, item = body
            item_fn = self.value(item, join(where, 1))
            if source == "this":
                return _loop(None, item_fn)
            return _loop(self.value(source, join(where, 0)), item_fn)
        if name == "map":
            if not isinstance(body, Mapping):
                self.problem(
                    where, f"expected a dict of out_key: value_mapping, got {type(body).__name__}"
                )
                return _undefined
            entries = []
            paths = []
            for out_key, sub in body.items():
                if not isinstance(out_key, str):
                    self.problem(join(where, out_key), "map keys must be strings")
                    continue
                entries.append((out_key, self.value(sub, join(where, out_key))))
                segments = split_path(sub) if isinstance(sub, str) and sub else ()
                if len(segments) == 2 and "*" not in (segments[0][0], segments[1][0]):
                    paths.append((out_key, segments))
            if paths and len(paths) == len(entries):
                return _map_two_segment_paths(tuple(paths))
            return _map(tuple(entries))
        if not isinstance(body, (list, tuple)):
            self.problem(where, f"expected a list of value mappings, got {type(body).__name__}")
            return _undefined
        return _set(tuple(self.item(sub, join(where, i)) for i, sub in enumerate(body)))


def compile_value(spec: Any, path: str, problems: list[str]) -> ValueFn:
    """Compile a value mapping (fallback-chain level), appending problems with paths."""
    return _Compiler(problems).value(spec, path)


# -- closures -----------------------------------------------------------------------------


def _first_defined(chain: tuple[ValueFn, ...]) -> ValueFn:
    if not chain:
        return _undefined
    if len(chain) == 1:
        return chain[0]

    def run(value: Any, ctx: MappingContext) -> Any:
        for fn in chain:
            result = fn(value, ctx)
            if result is not None:
                return result
        return None

    return run


def _first_truthy(chain: tuple[ValueFn, ...]) -> ValueFn:
    if not chain:
        return _undefined
    if len(chain) == 1:
        return chain[0]

    def run(value: Any, ctx: MappingContext) -> Any:
        result = None
        for fn in chain:
            result = fn(value, ctx)
            if js_truthy(result):
                return result
        return result

    return run


def _path_fn(path: str, static: Any) -> ValueFn:
    if not path:
        # walkerOS skips an empty key: the result is the input itself.
        return lambda value, ctx: to_property(value)
    segments = split_path(path)
    if static is None and len(segments) == 2 and "*" not in (segments[0][0], segments[1][0]):
        return _two_segment_fn(segments)
    return _path_getter_fn(compile_getter(segments), static)


def _two_segment_fn(segments: tuple[Segment, ...]) -> ValueFn:
    # The hot path of most configs ("data.id", "user.id"): lookup and the JSON-like
    # check fused into one closure, scalars returned without another call.
    (key1, index1), (key2, index2) = segments

    def get(value: Any, ctx: MappingContext) -> Any:
        found = value.get(key1) if type(value) is dict else step(value, key1, index1)
        if found is None:
            return None
        found = found.get(key2) if type(found) is dict else step(found, key2, index2)
        kind = type(found)
        if kind is str or kind is int or kind is bool:
            return found
        return to_property(found)

    return get


def _path_getter_fn(getter: Callable[[Any, Any], Any], static: Any) -> ValueFn:
    if static is None:

        def get(value: Any, ctx: MappingContext) -> Any:
            return to_property(getter(value, None))

        return get

    def get_or_static(value: Any, ctx: MappingContext) -> Any:
        result = to_property(getter(value, static))
        return to_property(static) if result is None else result

    return get_or_static


def _static_fn(static: Any) -> ValueFn:
    return lambda value, ctx: to_property(static)


def _general(
    condition: Call | None,
    groups: tuple[str, ...] | None,
    has_value: bool,
    static: Any,
    fn: Call | None,
    getter: Callable[[Any, Any], Any] | None,
    producer: ValueFn | None,
    validate: Call | None,
) -> ValueFn:
    # A producer (loop/map/set) builds a fresh JSON-like value from results that were
    # already filtered, so only the other sources need the JSON-like filter.
    filtered = producer is not None

    def run(value: Any, ctx: MappingContext) -> Any:
        if condition is not None and not condition(value, ctx):
            return None
        if groups is not None and not granted(groups, ctx.consent):
            return to_property(static)
        result = static if has_value else value
        if fn is not None:
            result = fn(value, ctx)
        if getter is not None:
            result = getter(value, static)
        if producer is not None:
            result = producer(value, ctx)
        if validate is not None and not validate(result, ctx):
            result = None
        elif not filtered:
            result = to_property(result)
        return to_property(static) if result is None else result

    return run


def _loop(source: ValueFn | None, item: ValueFn) -> ValueFn:
    def run(value: Any, ctx: MappingContext) -> Any:
        items = [value] if source is None else source(value, ctx)
        if type(items) is not list:
            return None
        out = []
        for element in items:
            if element is not None:
                result = item(element, ctx)
                if result is not None:
                    out.append(result)
        return out

    return run


def _map(entries: tuple[tuple[str, ValueFn], ...]) -> ValueFn:
    def run(value: Any, ctx: MappingContext) -> Any:
        out = {}
        for key, fn in entries:
            result = fn(value, ctx)
            if result is not None:
                out[key] = result
        return out

    return run


def _map_two_segment_paths(entries: tuple[tuple[str, tuple[Segment, ...]], ...]) -> ValueFn:
    # The most common ``map`` ({"id": "data.id", "name": "data.name", ...}): the same
    # results as ``_map`` over ``_two_segment_fn`` entries, in one closure, reading a
    # first segment shared by consecutive entries once.
    groups: list[tuple[str, int | None, list[tuple[str, str, int | None]]]] = []
    for out_key, ((key1, index1), (key2, index2)) in entries:
        if not groups or groups[-1][0] != key1:
            groups.append((key1, index1, []))
        groups[-1][2].append((out_key, key2, index2))
    plan = tuple((key1, index1, tuple(items)) for key1, index1, items in groups)

    def run(value: Any, ctx: MappingContext) -> Any:
        out = {}
        is_dict = type(value) is dict
        for key1, index1, items in plan:
            parent = value.get(key1) if is_dict else step(value, key1, index1)
            if parent is None:
                continue
            parent_is_dict = type(parent) is dict
            for out_key, key2, index2 in items:
                found = parent.get(key2) if parent_is_dict else step(parent, key2, index2)
                kind = type(found)
                if not (kind is str or kind is int or kind is bool):
                    if kind is float and found - found == 0.0:
                        pass
                    else:
                        found = to_property(found)
                        if found is None:
                            continue
                out[out_key] = found
        return out

    return run


def _set(items: tuple[ValueFn, ...]) -> ValueFn:
    return lambda value, ctx: [fn(value, ctx) for fn in items]
