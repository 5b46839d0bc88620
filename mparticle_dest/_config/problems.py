"""Config problems: a key path and a message, rendered in the spelling the user wrote.

The bottom of ``_config``: the model declares a check on each field
(``metadata[CHECK]``) that yields ``(sub_path, message)`` pairs, so one failure never
hides the others; the converter gathers them from every level. A path renders as
camelCase for dicts (``settings.apiKey``) and with Python names for objects
(``Settings.api_key``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from attrs import fields

from .._exceptions import ConfigError

__all__ = [
    "CHECK",
    "NESTED",
    "RULE_TREE",
    "Attr",
    "Check",
    "InvalidConfigError",
    "PathPart",
    "Problem",
    "camel",
    "checked",
    "problems_of",
    "render",
    "self_check",
    "type_name",
]

#: Field metadata key of a field's check: ``Callable[[Any], Iterator[Problem]]``.
CHECK = "mparticle_dest.check"
#: Field metadata key of the config class a field holds (structured by that class's hook).
NESTED = "mparticle_dest.nested"
#: Field metadata flag: the field is a rule tree ``{entity: {action: rule | [rule, ...]}}``
#: of the ``NESTED`` class.
RULE_TREE = "mparticle_dest.rule_tree"

PathPart = str | int


class Attr(str):
    """A field name inside a problem path (rendered camelCase for dict input)."""

    __slots__ = ()


Problem = tuple[tuple[PathPart, ...], str]
"""A path (relative to whoever reports it; ``Attr`` parts are field names) and a message."""

Check = Callable[[Any], Iterator[Problem]]


def camel(name: str) -> str:
    """``source_request_id`` → ``sourceRequestId`` (the walkerOS spelling of a field)."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def render(path: tuple[PathPart, ...], message: str, *, typed_owner: str | None = None) -> str:
    """One problem line: ``dotted.path: message``.

    ``typed_owner`` switches to the Python spelling (``Settings.api_key``); otherwise
    field names are camelCased as in a walkerOS dict. An empty path returns the
    message as is (it is then already a complete line).
    """
    if typed_owner is not None:
        parts = [typed_owner, *(str(p) for p in path)]
    else:
        parts = [camel(p) if isinstance(p, Attr) else str(p) for p in path]
    return f"{'.'.join(parts)}: {message}" if parts else message


class InvalidConfigError(ConfigError):
    """A ``ConfigError`` that keeps its problems structured, for re-rendering with a prefix.

    Raised by the config classes themselves; ``problems`` (the strings) use the
    Python spelling of the owner class, e.g. ``Settings.pod: expected one of ...``.
    """

    def __init__(self, owner: type, items: list[Problem]) -> None:
        self.owner = owner
        self.items = items
        super().__init__(render(p, m, typed_owner=owner.__name__) for p, m in items)


def type_name(value: Any) -> str:
    """A short type name for messages (never the value: it may be a secret)."""
    return "null" if value is None else type(value).__name__


def checked(check: Check, *, nested: type | None = None, tree: bool = False) -> dict[str, Any]:
    """Field metadata: the field's check, the config class it holds, whether as a rule tree."""
    metadata: dict[str, Any] = {CHECK: check}
    if nested is not None:
        metadata[NESTED] = nested
    if tree:
        metadata[RULE_TREE] = True
    return metadata


def problems_of(cls: type, values: Mapping[str, Any]) -> list[Problem]:
    """Run the field checks of ``cls`` over ``{field_name: value}`` (absent fields skipped)."""
    found: list[Problem] = []
    for attribute in fields(cls):
        check = attribute.metadata.get(CHECK)
        if check is None or attribute.name not in values:
            continue
        for sub, message in check(values[attribute.name]):
            found.append(((Attr(attribute.name), *sub), message))
    return found


def self_check(instance: Any, extra: Iterable[Problem] = ()) -> None:
    """Run the field checks of a config object (and ``extra`` problems); raise on any."""
    cls = type(instance)
    values = {a.name: getattr(instance, a.name) for a in fields(cls) if a.init}
    found = [*problems_of(cls, values), *extra]
    if found:
        raise InvalidConfigError(cls, found)
