"""Plain values of the mapping language: JSON-like results, truthiness, consent, context.

walkerOS keeps only "properties" (booleans, strings, numbers and lists/objects of
those) as mapping results. :func:`to_property` is that filter, and it also copies
containers, so a result never shares a list or dict with the caller's event or the
config (the caller may mutate it freely).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from attrs import define, field

__all__ = [
    "MappingContext",
    "granted",
    "is_property",
    "js_truthy",
    "logger",
    "required_groups",
    "to_property",
]

logger = logging.getLogger("mparticle_dest.mapping")

#: Deeper containers are treated as circular and rejected.
MAX_DEPTH = 100

_BAD: Any = object()


@define(slots=True)
class MappingContext:
    """What a mapping callable receives as its second argument.

    Attributes:
        event: The event being mapped (after the policies that ran so far).
        mapping: The mapping being resolved: the value-mapping dict holding the
            callable, or the rule for a rule ``condition``.
        consent: The consent state in effect (``{group: bool}``), or ``None``.
        logger: The ``mparticle_dest.mapping`` logger.
    """

    event: Any = None
    mapping: Any = None
    consent: Mapping[str, Any] | None = None
    logger: logging.Logger = field(default=logger, repr=False)

    @classmethod
    def for_event(
        cls,
        event: Any,
        *,
        mapping: Any = None,
        consent: Mapping[str, Any] | None = None,
    ) -> MappingContext:
        """Build the context for resolving mappings against ``event``.

        The consent in effect is ``consent`` when given, else the event's own
        ``consent`` (walkerOS precedence, with the event as the input).
        """
        if consent is None and (type(event) is dict or isinstance(event, Mapping)):
            own = event.get("consent")
            if type(own) is dict or isinstance(own, Mapping):
                consent = own
        return cls(event, mapping, consent, logger)


def _copy(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        # NaN and the infinities are no JSON numbers (walkerOS drops NaN too).
        return value if value - value == 0 else _BAD
    if depth > MAX_DEPTH:
        return _BAD
    if kind is dict or isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if type(key) is not str:
                if not isinstance(key, str):
                    return _BAD
                key = str.__str__(key)
            copied = _copy(item, depth + 1)
            if copied is _BAD:
                return _BAD
            out[key] = copied
        return out
    if kind is list or kind is tuple:
        items: list[Any] = []
        for item in value:
            copied = _copy(item, depth + 1)
            if copied is _BAD:
                return _BAD
            items.append(copied)
        return items
    # Subclasses (str/int enums and the like) reach the wire as their plain value.
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _copy(float(value), depth)
    return _BAD


def to_property(value: Any) -> Any:
    """Return a fresh JSON-like copy of ``value``, or ``None`` when it is not JSON-like.

    Inside lists and dicts ``None`` is kept (walkerOS keeps ``undefined`` there); a
    top-level ``None`` means undefined.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if value is None:
        return None
    copied = _copy(value, 0)
    return None if copied is _BAD else copied


def is_property(value: Any) -> bool:
    """Whether ``value`` is JSON-like (``None`` counts, as inside a container)."""
    return _copy(value, 0) is not _BAD


def js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON-like value (an empty list or dict is truthy)."""
    if value is None or value is False:
        return False
    kind = type(value)
    if kind is str:
        return bool(value != "")
    if kind is int or kind is float:
        return bool(value != 0)
    return True


def required_groups(consent: Mapping[str, Any]) -> tuple[str, ...]:
    """The consent groups a ``consent: {group: flag}`` requirement asks for."""
    return tuple(group for group, wanted in consent.items() if js_truthy(wanted))


def granted(groups: tuple[str, ...], state: Mapping[str, Any] | None) -> bool:
    """Whether at least one required group is granted by ``state`` (walkerOS rule).

    With no required group (``{}`` or only ``False`` flags) nothing can be granted.
    """
    if not state:
        return False
    for group in groups:
        if js_truthy(state.get(group)):
            return True
    return False
