"""Typed destination config (SPEC §2, §5, §6): frozen attrs classes that check themselves.

Every class validates its own fields when it is built, whether from Python
(``Settings(api_key=..., ...)``) or from a walkerOS dict through
:meth:`DestinationConfig.from_dict` (the cattrs boundary lives in
``_converter.py``). A check is declared on its field (``metadata[CHECK]``) and
yields ``(sub_path, message)`` pairs, so one failure never hides the others and
every message can be given the key path in the spelling the user wrote:
camelCase for dicts (``settings.apiKey``), Python names for objects
(``Settings.api_key``).

Value-mapping fields (``data``, ``userIdentities`` values, ``commerce``, ...) are
kept exactly as given, callables included; the mapping compiler checks them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from attrs import field, fields, frozen, resolve_types

from .._event import surrogate_path
from .._exceptions import ConfigError
from .._mparticle import CUSTOM_EVENT_TYPES, ENVIRONMENTS, EVENT_TYPES, IDENTITY_TYPES, PODS
from .._secret import Secret
from ..mapping import CompiledMapping

__all__ = [
    "BatchOptions",
    "DestinationConfig",
    "LimitPolicy",
    "Rule",
    "RuleSettings",
    "Secret",
    "Settings",
]

#: Field metadata key of a field's check: ``Callable[[Any], Iterator[Problem]]``.
CHECK = "mparticle_dest.check"
#: Field metadata key of the config class a field holds (structured by that class's hook).
NESTED = "mparticle_dest.nested"

PathPart = str | int
LimitAction = Literal["truncate", "reject"]


class Attr(str):
    """A field name inside a problem path (rendered camelCase for dict input)."""

    __slots__ = ()


Problem = tuple[tuple[PathPart, ...], str]
"""A path (relative to whoever reports it; ``Attr`` parts are field names) and a message."""


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


def _self_check(instance: Any) -> None:
    cls = type(instance)
    values = {a.name: getattr(instance, a.name) for a in fields(cls) if a.init}
    found = problems_of(cls, values)
    if found:
        raise InvalidConfigError(cls, found)


# -- field checks: each yields (sub_path, message) -------------------------------------------

Check = Callable[[Any], Iterator[Problem]]


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: Any) -> Iterator[Problem]:
        if value not in choices or not isinstance(value, str):
            yield (), f"expected one of {', '.join(choices)}, got {value!r}"

    return check


def _required_text(value: Any) -> Iterator[Problem]:
    if isinstance(value, Secret):
        value = value.get_secret_value()
    if not isinstance(value, str):
        yield (), f"expected a string, got {type_name(value)}"
    elif not value:
        yield (), "required (got an empty string)"


def _flag(value: Any) -> Iterator[Problem]:
    if not isinstance(value, bool):
        yield (), f"expected true or false, got {value!r}"


def _identities(value: Any) -> Iterator[Problem]:
    if not isinstance(value, Mapping):
        yield (), f"expected an object {{identity_type: value_mapping}}, got {type_name(value)}"
        return
    for key in value:
        if key not in IDENTITY_TYPES:
            yield (key,), f"unknown identity type; valid: {', '.join(IDENTITY_TYPES)}"


def _static_consent(value: Any) -> Iterator[Problem]:
    if value is None:
        return
    if not isinstance(value, Mapping):
        yield (), f"expected an object (the mParticle consent_state), got {type_name(value)}"
        return
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        yield (), f"must be JSON-serializable ({exc})"
        return
    where = surrogate_path(value, "")
    if where is not None:
        yield (), f"{where or 'a value'}: holds a lone surrogate, which is not valid Unicode"


def _count(minimum: int) -> Check:
    def check(value: Any) -> Iterator[Problem]:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int):
            yield (), f"expected an integer, got {type_name(value)}"
        elif value < minimum:
            yield (), f"must be >= {minimum}, got {value}"

    return check


def _nested(cls: type) -> Check:
    def check(value: Any) -> Iterator[Problem]:
        if isinstance(value, cls):
            return
        got = type_name(value)
        if isinstance(value, Mapping):
            got = "a dict (use DestinationConfig.from_dict for walkerOS dicts)"
        yield (), f"expected a {cls.__name__} object, got {got}"

    return check


_BATCH_EXPECTED = "expected a non-negative number of milliseconds or an object with size/age/wait"


def _batch_check(*, optional: bool) -> Check:
    def check(value: Any) -> Iterator[Problem]:
        if not (isinstance(value, BatchOptions) or (optional and value is None)):
            yield (), f"{_BATCH_EXPECTED}, got {value!r}"

    return check


def _rules(value: Any) -> Iterator[Problem]:
    if not isinstance(value, Mapping):
        yield (), f"expected an object {{entity: {{action: rule}}}}, got {type_name(value)}"
        return
    for entity, actions in value.items():
        if not isinstance(actions, Mapping):
            yield (entity,), f"expected an object {{action: rule}}, got {type_name(actions)}"
            continue
        for action, rule in actions.items():
            if isinstance(rule, Rule):
                continue
            if isinstance(rule, tuple):
                for index, item in enumerate(rule):
                    if not isinstance(item, Rule):
                        yield (entity, action, index), f"expected a Rule, got {type_name(item)}"
                continue
            yield (entity, action), f"expected a Rule or a tuple of Rules, got {type_name(rule)}"


# -- converters (lenient: a wrong type is left for the check to report) ----------------------


def _to_secret(value: Any) -> Any:
    return Secret(value) if isinstance(value, str) else value


def _to_batch(value: Any) -> Any:
    """walkerOS ``batch: number`` is the age in ms: ``500`` means ``BatchOptions(age=500)``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return BatchOptions(age=value)
    return value


def _copy_mapping(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


def _copy_rules(value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    return {
        entity: {
            action: tuple(rule) if isinstance(rule, list) else rule
            for action, rule in actions.items()
        }
        if isinstance(actions, Mapping)
        else actions
        for entity, actions in value.items()
    }


def checked(check: Check, *, nested: type | None = None) -> dict[str, Any]:
    """Field metadata: the field's check, and the config class it holds if any."""
    return {CHECK: check} if nested is None else {CHECK: check, NESTED: nested}


_LIMIT_ACTION = _one_of(("truncate", "reject"))


# -- the config classes ----------------------------------------------------------------------


@frozen(kw_only=True)
class BatchOptions:
    """When a batch is flushed (SPEC §6); times in milliseconds.

    Attributes:
        size: flush when the batch holds this many events (``None``: only the
            byte and time limits apply).
        age: flush when the oldest event is this old; ``0`` means send now.
        wait: debounce: flush when no event was added for this long.
    """

    size: int | None = field(default=None, metadata=checked(_count(1)))
    age: int | None = field(default=None, metadata=checked(_count(0)))
    wait: int | None = field(default=None, metadata=checked(_count(0)))

    def __attrs_post_init__(self) -> None:
        _self_check(self)


@frozen(kw_only=True)
class LimitPolicy:
    """What to do when an event breaks an mParticle limit (SPEC §10): truncate or reject."""

    event_name: LimitAction = field(default="truncate", metadata=checked(_LIMIT_ACTION))
    custom_attributes: LimitAction = field(default="reject", metadata=checked(_LIMIT_ACTION))
    attribute_value: LimitAction = field(default="reject", metadata=checked(_LIMIT_ACTION))
    user_attributes: LimitAction = field(default="reject", metadata=checked(_LIMIT_ACTION))

    def __attrs_post_init__(self) -> None:
        _self_check(self)


@frozen(kw_only=True)
class Settings:
    """Destination settings (``config.settings``, SPEC §5).

    ``api_secret`` accepts a plain ``str`` and is stored as a :class:`Secret`.
    ``user_identities`` values, ``user_attributes``, ``ip`` and
    ``source_request_id`` are walkerOS value mappings, kept as given.
    """

    api_key: str = field(metadata=checked(_required_text))
    api_secret: Secret = field(converter=_to_secret, metadata=checked(_required_text))
    pod: str = field(default="us1", metadata=checked(_one_of(PODS)))
    environment: str = field(default="production", metadata=checked(_one_of(ENVIRONMENTS)))
    user_identities: Mapping[str, Any] = field(
        factory=dict, converter=_copy_mapping, metadata=checked(_identities)
    )
    user_attributes: Any = None
    consent: Mapping[str, Any] | None = field(default=None, metadata=checked(_static_consent))
    ip: Any = None
    source_request_id: Any = None
    limits: LimitPolicy = field(
        factory=LimitPolicy, metadata=checked(_nested(LimitPolicy), nested=LimitPolicy)
    )

    def __attrs_post_init__(self) -> None:
        _self_check(self)


@frozen(kw_only=True)
class RuleSettings:
    """mParticle settings of one mapping rule (``rule.settings``, SPEC §5)."""

    event_type: str = field(default="custom_event", metadata=checked(_one_of(EVENT_TYPES)))
    custom_event_type: str = field(default="other", metadata=checked(_one_of(CUSTOM_EVENT_TYPES)))
    commerce: Any = None
    event_data: Any = None
    user_identities: Mapping[str, Any] = field(
        factory=dict, converter=_copy_mapping, metadata=checked(_identities)
    )
    user_attributes: Any = None

    def __attrs_post_init__(self) -> None:
        _self_check(self)


@frozen(kw_only=True)
class Rule:
    """One mapping rule at ``mapping[entity][action]`` (SPEC §4).

    ``name``, ``data``, ``policy``, ``consent``, ``condition``, ``include`` and
    ``remove`` are checked by the mapping compiler when the destination config
    is built; ``batch`` also accepts a bare number (the age in ms).
    """

    name: str | None = None
    data: Any = None
    policy: Any = None
    consent: Any = None
    condition: Any = None
    ignore: bool = field(default=False, metadata=checked(_flag))
    silent: bool = field(default=False, metadata=checked(_flag))
    include: Any = None
    remove: Any = None
    batch: BatchOptions | None = field(
        default=None,
        converter=_to_batch,
        metadata=checked(_batch_check(optional=True), nested=BatchOptions),
    )
    settings: RuleSettings = field(
        factory=RuleSettings, metadata=checked(_nested(RuleSettings), nested=RuleSettings)
    )

    def __attrs_post_init__(self) -> None:
        _self_check(self)


RuleEntry = Rule | tuple[Rule, ...]


@frozen(kw_only=True)
class DestinationConfig:
    """The whole destination config (the ``config`` of a walkerOS flow.json destination).

    Build it from a walkerOS dict with :meth:`from_dict` (or :meth:`coerce`), or
    from the typed classes directly. Either way it is validated and its mapping
    compiled once, at construction; the compiled form is ``compiled_mapping``.

    Raises:
        ConfigError: listing every problem, each with its key path.
    """

    settings: Settings = field(metadata=checked(_nested(Settings), nested=Settings))
    mapping: Mapping[str, Mapping[str, RuleEntry]] = field(
        factory=dict, converter=_copy_rules, metadata=checked(_rules, nested=Rule)
    )
    data: Any = None
    policy: Any = None
    consent: Any = None
    include: Any = None
    batch: BatchOptions = field(
        factory=BatchOptions,
        converter=_to_batch,
        metadata=checked(_batch_check(optional=False), nested=BatchOptions),
    )
    compiled_mapping: CompiledMapping = field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _self_check(self)
        object.__setattr__(self, "compiled_mapping", CompiledMapping.from_config(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DestinationConfig:
        """Build from a walkerOS destination config dict (camelCase keys).

        Args:
            data: e.g. ``{"settings": {"apiKey": ..., "apiSecret": ...}, "mapping": {...}}``.
                walkerOS runtime keys (``id``, ``init``, ``loadScript``, ...) are ignored.

        Returns:
            The validated config, with its mapping compiled.

        Raises:
            ConfigError: listing every problem, one per line, each with its camelCase
                key path (``settings.pod: expected one of us1, us2, eu1, au1, got 'us3'``).
        """
        from .converter import structure_config

        return structure_config(data)

    @classmethod
    def coerce(cls, config: DestinationConfig | Mapping[str, Any]) -> DestinationConfig:
        """Return ``config`` if it is a ``DestinationConfig``, else build one from the dict.

        Args:
            config: a ``DestinationConfig``, or a walkerOS destination config dict.

        Returns:
            A validated ``DestinationConfig``.

        Raises:
            ConfigError: the dict is invalid, or ``config`` is neither.
        """
        if isinstance(config, DestinationConfig):
            return config
        return cls.from_dict(config)

    def to_dict(self) -> dict[str, Any]:
        """The walkerOS dict form (camelCase, defaults omitted, the API secret as ``"***"``)."""
        from .converter import unstructure_config

        return unstructure_config(self)


# Resolve the string annotations now, against this module: the package re-exports these
# classes with ``__module__`` rewritten to ``mparticle_dest``, where the names in the
# annotations do not exist, and cattrs resolves them lazily on first use.
for _cls in (BatchOptions, LimitPolicy, Settings, RuleSettings, Rule, DestinationConfig):
    resolve_types(_cls)
del _cls
