"""Typed destination config: frozen attrs classes that check themselves.

Every class validates its own fields when it is built, whether from Python
(``Settings(api_key=..., ...)``) or from a walkerOS dict through
:meth:`DestinationConfig.from_dict` (the cattrs boundary, ``converter``). A check is
declared on its field (``metadata[CHECK]``, see ``problems``) and yields
``(sub_path, message)`` pairs, so one failure never hides the others.

Value mappings (``data``, ``settings.ip``, ``userIdentities`` values,
``rule.settings.commerce``, ...) are kept exactly as given, callables included, and
compiled once here to check them: a config that builds is a config the destination
accepts. The payload builder compiles them again for its own use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from attrs import field, frozen, resolve_types

from .._event import surrogate_path
from .._exceptions import ConfigError
from .._mparticle import (
    CUSTOM_EVENT_TYPES,
    ENVIRONMENTS,
    EVENT_TYPES,
    IDENTITY_TYPES,
    PODS,
)
from .._secret import Secret
from ..mapping import CompiledMapping, compile_value_mapping
from .problems import Attr, Check, Problem, checked, self_check, type_name

__all__ = [
    "BatchOptions",
    "DestinationConfig",
    "LimitPolicy",
    "Rule",
    "RuleSettings",
    "Secret",
    "Settings",
]

LimitAction = Literal["truncate", "reject"]

# Where a nested checker's own paths start: its lines are made relative to the field.
_HERE = "\x00"


def _relative(lines: list[str]) -> Iterator[Problem]:
    """Problems from lines a checker wrote with the path ``_HERE`` (``"\x00.fn: ..."``)."""
    for line in lines:
        if not line.startswith(_HERE):
            yield (), line
            continue
        where, _, message = line[len(_HERE) :].partition(": ")
        where = where.lstrip(".")
        yield ((where,) if where else ()), message


# -- field checks: each yields (sub_path, message) -------------------------------------------


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


def _value_mapping(value: Any) -> Iterator[Problem]:
    """Compile a value mapping (``None``: not configured) and report its problems."""
    if value is None:
        return
    try:
        compile_value_mapping(value, path=_HERE)
    except ConfigError as exc:
        yield from _relative(list(exc.problems))


def _identities(value: Any) -> Iterator[Problem]:
    if not isinstance(value, Mapping):
        yield (), f"expected an object {{identity_type: value_mapping}}, got {type_name(value)}"
        return
    for key, spec in value.items():
        if key not in IDENTITY_TYPES:
            yield (key,), f"unknown identity type; valid: {', '.join(IDENTITY_TYPES)}"
        for sub, message in _value_mapping(spec):
            yield (key, *sub), message


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
        return
    # Forwarded verbatim, but a malformed consent_state would get every batch rejected
    # (400): its shape is checked once, here.
    from .._mparticle import ConsentState, check_model  # the models load on first use

    yield from _relative(check_model(ConsentState, dict(value), path=_HERE))


_DATA_PLAN_KEYS = ("planId", "planVersion")


def _data_plan(value: Any) -> Iterator[Problem]:
    """``{planId, planVersion}``: mParticle's ``plan_id`` (a string, required) and
    ``plan_version`` (an integer; without it mParticle uses the plan's active version)."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        yield (), f"expected an object {{planId, planVersion}}, got {type_name(value)}"
        return
    for key in value:
        if key not in _DATA_PLAN_KEYS:
            yield (key,), f"unknown key; valid: {', '.join(_DATA_PLAN_KEYS)}"
    plan_id = value.get("planId")
    if not isinstance(plan_id, str) or not plan_id:
        got = "an empty string" if plan_id == "" else type_name(plan_id)
        yield ("planId",), f"required: a non-empty string, got {got}"
    version = value.get("planVersion")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        yield ("planVersion",), f"expected an integer >= 1, got {version!r}"


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


def _batch_check(*, optional: bool) -> Check:
    def check(value: Any) -> Iterator[Problem]:
        if isinstance(value, BatchOptions) or (optional and value is None):
            return
        if isinstance(value, int) and not isinstance(value, bool):
            yield (), f"must be >= 0 (milliseconds), got {value}"
        else:
            yield (
                (),
                (
                    "expected a number of milliseconds or an object with size/age/wait, "
                    f"got {type_name(value)}"
                ),
            )

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
    """walkerOS ``batch: number`` is the age in ms: ``500`` means ``BatchOptions(age=500)``.

    The one place of this rule: the converter applies it to dicts through this field
    converter too.
    """
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


_LIMIT_ACTION = _one_of(("truncate", "reject"))


# -- the config classes ----------------------------------------------------------------------


@frozen(kw_only=True)
class BatchOptions:
    """When a batch is flushed; times in milliseconds.

    A batch is also flushed before it would pass mParticle's 128 KB per batch.

    Attributes:
        size: flush when the batch holds this many events (``None``: only the
            128 KB and the times apply).
        age: flush when the oldest event is this old; ``0`` means send now.
        wait: debounce: flush when no event was added for this long.
    """

    size: int | None = field(default=None, metadata=checked(_count(1)))
    age: int | None = field(default=None, metadata=checked(_count(0)))
    wait: int | None = field(default=None, metadata=checked(_count(0)))

    def __attrs_post_init__(self) -> None:
        self_check(self)


@frozen(kw_only=True)
class LimitPolicy:
    """What to do when an event breaks one of mParticle's per-event limits: truncate or reject.

    The limits: 256 characters per event or screen name, 100 custom attributes per
    event, 4096 characters per attribute value, 100 user attributes per batch (see
    ``docs/settings.md``).
    """

    event_name: LimitAction = field(default="truncate", metadata=checked(_LIMIT_ACTION))
    custom_attributes: LimitAction = field(default="reject", metadata=checked(_LIMIT_ACTION))
    attribute_value: LimitAction = field(default="reject", metadata=checked(_LIMIT_ACTION))
    user_attributes: LimitAction = field(default="reject", metadata=checked(_LIMIT_ACTION))

    def __attrs_post_init__(self) -> None:
        self_check(self)


@frozen(kw_only=True)
class Settings:
    """Destination settings (``config.settings``; reference: ``docs/settings.md``).

    ``api_secret`` accepts a plain ``str`` and is stored as a :class:`Secret`.
    ``user_identities`` values, ``user_attributes``, ``ip``, ``source_request_id``,
    ``mpid``, ``device_info`` and ``application_info`` are walkerOS value mappings,
    kept as given and resolved per event; ``consent`` and ``data_plan``
    (``{"planId": ..., "planVersion": ...}``) are static. All of them are batch-level:
    events with different values go to different batches.
    """

    api_key: str = field(metadata=checked(_required_text))
    api_secret: Secret = field(converter=_to_secret, metadata=checked(_required_text))
    pod: str = field(default="us1", metadata=checked(_one_of(PODS)))
    environment: str = field(default="production", metadata=checked(_one_of(ENVIRONMENTS)))
    user_identities: Mapping[str, Any] = field(
        factory=dict, converter=_copy_mapping, metadata=checked(_identities)
    )
    user_attributes: Any = field(default=None, metadata=checked(_value_mapping))
    consent: Mapping[str, Any] | None = field(default=None, metadata=checked(_static_consent))
    ip: Any = field(default=None, metadata=checked(_value_mapping))
    source_request_id: Any = field(default=None, metadata=checked(_value_mapping))
    mpid: Any = field(default=None, metadata=checked(_value_mapping))
    device_info: Any = field(default=None, metadata=checked(_value_mapping))
    application_info: Any = field(default=None, metadata=checked(_value_mapping))
    data_plan: Mapping[str, Any] | None = field(default=None, metadata=checked(_data_plan))
    limits: LimitPolicy = field(
        factory=LimitPolicy, metadata=checked(_nested(LimitPolicy), nested=LimitPolicy)
    )

    def __attrs_post_init__(self) -> None:
        self_check(self)


@frozen(kw_only=True)
class RuleSettings:
    """mParticle settings of one mapping rule (``rule.settings``).

    ``event_type`` and ``custom_event_type`` say what mParticle receives;
    ``commerce`` and ``event_data`` map the event's fields (a type other than
    ``custom_event``, ``screen_view`` and ``commerce_event`` needs its required
    fields from ``event_data``). The batch-level settings override or extend the
    destination's: ``user_identities`` per type, ``user_attributes``, ``device_info``
    and ``application_info`` merged over them key by key; ``mpid`` tried first, the
    destination's when it resolves to nothing; ``data_plan`` replaces the
    destination's.
    """

    event_type: str = field(default="custom_event", metadata=checked(_one_of(EVENT_TYPES)))
    custom_event_type: str = field(default="other", metadata=checked(_one_of(CUSTOM_EVENT_TYPES)))
    commerce: Any = field(default=None, metadata=checked(_value_mapping))
    event_data: Any = field(default=None, metadata=checked(_value_mapping))
    user_identities: Mapping[str, Any] = field(
        factory=dict, converter=_copy_mapping, metadata=checked(_identities)
    )
    user_attributes: Any = field(default=None, metadata=checked(_value_mapping))
    mpid: Any = field(default=None, metadata=checked(_value_mapping))
    device_info: Any = field(default=None, metadata=checked(_value_mapping))
    application_info: Any = field(default=None, metadata=checked(_value_mapping))
    data_plan: Mapping[str, Any] | None = field(default=None, metadata=checked(_data_plan))

    def __attrs_post_init__(self) -> None:
        self_check(self, self._missing_event_data())

    def _missing_event_data(self) -> Iterator[Problem]:
        if self.event_data is not None or self.event_type not in EVENT_TYPES:
            return
        if self.event_type in ("custom_event", "screen_view", "commerce_event"):
            return
        from .._mparticle import required_fields  # the models load on first use

        missing = required_fields(self.event_type)
        if missing:
            yield (
                (Attr("event_data"),),
                (
                    f"eventType {self.event_type!r} needs the fields {', '.join(missing)}; "
                    "map them with eventData"
                ),
            )


@frozen(kw_only=True)
class Rule:
    """One mapping rule at ``mapping[entity][action]`` (the walkerOS mapping language,
    ``docs/mapping.md``).

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
        self_check(self)


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
        factory=dict, converter=_copy_rules, metadata=checked(_rules, nested=Rule, tree=True)
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
        self_check(self)
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
        from .converter import structure_root  # cattrs: imported when a config is read

        return structure_root(cls, data, raw_problems=_raw_mapping_problems)

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
        from .converter import unstructure

        return unstructure(self)


def _raw_mapping_problems(data: Mapping[str, Any]) -> list[str]:
    """The mapping compiler's problems of a raw config dict that failed structuring."""
    try:
        CompiledMapping.from_config(data)
    except ConfigError as exc:
        return list(exc.problems)
    return []


# Resolve the string annotations now, against this module: the package re-exports these
# classes with ``__module__`` rewritten to ``mparticle_dest``, where the names in the
# annotations do not exist, and cattrs resolves them lazily on first use.
for _cls in (BatchOptions, LimitPolicy, Settings, RuleSettings, Rule, DestinationConfig):
    resolve_types(_cls)
del _cls
