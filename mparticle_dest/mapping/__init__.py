"""The walkerOS mapping language, compiled once into plain closures.

Three entry points mirror walkerOS's ``getMappingValue``, ``getMappingEvent`` and
``processEventMapping``; they compile on every call, which is fine for tests and
one-off use. The delivery engine compiles once instead, with
:meth:`CompiledMapping.from_config` and :func:`compile_value_mapping`, and gets the
same results. See ``docs/mapping.md`` for the language reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._exceptions import ConfigError
from ._compile import ValueFn, compile_value, entry
from ._rules import CompiledMapping, MappingResult, SkipReason, compile_rules
from ._values import MappingContext, logger

__all__ = [
    "CompiledMapping",
    "MappingContext",
    "MappingResult",
    "SkipReason",
    "ValueFn",
    "compile_value_mapping",
    "get_mapping_event",
    "get_mapping_value",
    "process_event_mapping",
]


def compile_value_mapping(spec: Any, *, path: str = "") -> ValueFn:
    """Compile a value mapping into ``fn(value, context) -> result``.

    The result is ``None`` for "undefined"; an undefined (``None``) input gives
    ``None``. Build the context with :meth:`MappingContext.for_event`.

    Args:
        spec: A string path, a mapping dict, or a list of those (a fallback chain).
        path: The key path of ``spec`` in its config, used in error messages
            (e.g. ``"settings.userIdentities.customer_id"``).

    Returns:
        The compiled function.

    Raises:
        ConfigError: listing every problem with its key path (bad shapes, unknown
            keys, non-callables, async callables).
    """
    problems: list[str] = []
    fn = compile_value(spec, path, problems)
    if problems:
        raise ConfigError(problems)
    return entry(fn, path)


def get_mapping_value(
    value: Any,
    mapping: Any,
    *,
    event: Mapping[str, Any] | None = None,
    consent: Mapping[str, Any] | None = None,
) -> Any:
    """Resolve a value mapping against ``value``.

    The consent in effect is ``value``'s own ``consent`` dict when it has one, else
    ``consent``, else the ``consent`` of ``event`` (walkerOS precedence).

    No mapping (``None``) resolves to ``None``, as walkerOS's ``getMappingValue(value)``
    gives undefined: code that looks an optional mapping up and resolves it needs no
    check of its own. A ``None`` inside a mapping (a config value, a list item) is
    still a ``ConfigError``, since there it is most likely a typo.

    Args:
        value: The input (usually an event); ``None`` resolves to ``None``.
        mapping: The value mapping (string path, dict, or list); ``None`` resolves to
            ``None``.
        event: The event callables see as ``context.event``; defaults to ``value``
            when that is a dict.
        consent: The consent state to use when ``value`` carries none.

    Returns:
        The resolved value, or ``None`` for "undefined".

    Raises:
        ConfigError: the mapping is invalid.
    """
    if mapping is None:
        return None
    fn = compile_value_mapping(mapping)
    if event is None:
        event = value if isinstance(value, Mapping) else {}
    own = value.get("consent") if isinstance(value, Mapping) else None
    if isinstance(own, Mapping):
        consent = own
    elif consent is None:
        from_event = event.get("consent")
        consent = from_event if isinstance(from_event, Mapping) else None
    return fn(value, MappingContext(event, mapping, consent, logger))


def get_mapping_event(event: Mapping[str, Any], rules: Any) -> tuple[Any, str]:
    """Find the rule for an event in ``{entity: {action: rule | [rule, ...]}}``.

    Lookup: the exact entity, else ``"*"``; within it the exact action, else ``"*"``;
    if nothing matched, ``"*"``/``"*"``. Within a list the first rule whose
    ``condition(event, context)`` holds wins (a rule without one always holds).
    Entity and action are the first two words of the event's ``name``.

    Args:
        event: The event.
        rules: The rules tree (``config.mapping``).

    Returns:
        ``(rule, mapping_key)``: the rule exactly as given (or ``None``) and the
        matched keys as ``"entity action"`` (e.g. ``"product *"``; ``""`` without a
        match).

    Raises:
        ConfigError: the rules are invalid.
    """
    problems: list[str] = []
    compiled = CompiledMapping(compile_rules(rules, "mapping", problems))
    if problems:
        raise ConfigError(problems)
    return compiled.lookup(event, MappingContext.for_event(event))


def process_event_mapping(event: Mapping[str, Any], config: Any) -> MappingResult:
    """Map one event with a destination config, in walkerOS's resolve order.

    The order: config consent → config policy → rule lookup → rule consent → rule
    policy → config data → ignore → name override → rule data merged over config data
    → include → remove.

    Same as ``CompiledMapping.from_config(config).process(event)``.

    Args:
        event: The walkerOS event; it is never mutated.
        config: A dict or object with ``mapping``, ``data``, ``policy``, ``consent``
            and ``include`` (absent parts are fine).

    Returns:
        The :class:`MappingResult`.

    Raises:
        ConfigError: the config's mapping is invalid.
    """
    return CompiledMapping.from_config(config).process(event)


# Public classes show as ``mparticle_dest.mapping.X`` in reprs and the API reference.
for _public in (CompiledMapping, MappingContext, MappingResult):
    _public.__module__ = __name__
del _public
