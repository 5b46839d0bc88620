"""Rule ``include`` sections, the walkerOS ``assign`` merge, and ``remove``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._values import to_property

__all__ = ["EVENT_KEYS", "SECTIONS", "assign", "flatten_sections"]

#: The keys the ``event`` section takes from the event itself.
EVENT_KEYS = ("entity", "action", "id", "timestamp", "name", "trigger", "timing")
_EVENT_PREFIXED = {key: f"event_{key}" for key in EVENT_KEYS}
#: Every include section, in the order ``all`` expands to.
SECTIONS = ("data", "globals", "context", "user", "source", "event")


def _flatten(out: dict[str, Any], prefix: str, value: Any) -> None:
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        out[prefix] = value
    elif value is None:
        return
    elif kind is dict or isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(out, f"{prefix}_{key}", item)
    else:
        copied = to_property(value)  # lists are kept whole, as a fresh copy
        if copied is not None:
            out[prefix] = copied


def flatten_sections(event: Mapping[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """Flatten event sections into ``{section_key: value}`` (a rule's ``include``).

    Nested dicts are joined with ``_``; lists are kept whole; ``None`` values are
    skipped; ``context`` values (``[value, order]`` pairs) give their value.
    """
    out: dict[str, Any] = {}
    for section in sections:
        if section == "event":
            for key in EVENT_KEYS:
                _flatten(out, _EVENT_PREFIXED[key], event.get(key))
            continue
        bag = event.get(section)
        if type(bag) is not dict and not isinstance(bag, Mapping):
            continue
        is_context = section == "context"
        for key, raw in bag.items():
            if is_context and type(raw) in (list, tuple):
                raw = raw[0] if raw else None
            _flatten(out, f"{section}_{key}", raw)
    return out


def _same(left: Any, right: Any) -> bool:
    # JavaScript SameValueZero on JSON values: containers by identity, booleans never
    # equal to numbers, numbers by value.
    if isinstance(left, (dict, list)) or isinstance(right, (dict, list)):
        return left is right
    if (type(left) is bool) != (type(right) is bool):
        return False
    return bool(left == right)


def assign(target: Mapping[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    """walkerOS ``assign``: a new dict of ``target`` overlaid by ``source``.

    When both sides hold a list under the same key the lists are concatenated, items
    already present (JavaScript ``includes``) left out; otherwise ``source`` wins.
    """
    out = dict(target)
    for key, value in source.items():
        current = target.get(key)
        if type(current) is list and type(value) is list:
            merged = list(current)
            for item in value:
                if not any(_same(existing, item) for existing in merged):
                    merged.append(item)
            out[key] = merged
        else:
            out[key] = value
    return out
