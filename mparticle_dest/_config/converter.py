"""The cattrs boundary: walkerOS camelCase dicts ⇄ typed config objects (SPEC §2).

One ``Converter(forbid_extra_keys=True)`` with detailed validation, camelCase
renames generated from the attrs field names, and hooks that keep value
mappings exactly as given (they may hold Python callables). Structuring errors
from every level (cattrs' own, the classes' checks, the mapping compiler) are
gathered into ONE :class:`ConfigError`, one line per problem, each with its key
path in the user's camelCase spelling.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import fields, fields_dict
from cattrs import Converter
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._exceptions import ConfigError
from .._secret import MASK, Secret
from .model import (
    NESTED,
    Attr,
    BatchOptions,
    DestinationConfig,
    InvalidConfigError,
    LimitPolicy,
    PathPart,
    Problem,
    Rule,
    RuleEntry,
    RuleSettings,
    Settings,
    camel,
    problems_of,
    render,
    type_name,
)

if TYPE_CHECKING:
    from attrs import AttrsInstance

__all__ = ["IGNORED_WALKEROS_KEYS", "structure_config", "unstructure_config"]

logger = logging.getLogger("mparticle_dest.config")

T = TypeVar("T")

#: walkerOS ``Destination.Config`` keys that mean nothing to this library (runtime
#: state, browser script loading, the collector's logging hooks). Accepted and ignored.
IGNORED_WALKEROS_KEYS = frozenset(
    {"id", "env", "init", "loadScript", "queue", "verbose", "logger", "before", "onError", "onLog"}
)
# Ignoring these silently would drop behaviour the user asked for, so they are logged louder.
_HANDLER_KEYS = frozenset({"onError", "onLog"})
# Keys of a whole flow.json destination entry, passed where its ``config`` belongs.
_ENTRY_KEYS = frozenset({"package", "config", "code"})

_CLASSES: tuple[type, ...] = (
    BatchOptions,
    LimitPolicy,
    Settings,
    RuleSettings,
    Rule,
    DestinationConfig,
)

converter = Converter(forbid_extra_keys=True, detailed_validation=True)
_structure_fns: dict[type, Callable[[Mapping[str, Any], Any], Any]] = {}


# -- error translation -----------------------------------------------------------------------


def _unknown_key(cls: type, key: Any) -> str:
    known = [camel(a.name) for a in fields(cls) if a.init]
    if cls is DestinationConfig and key in _ENTRY_KEYS:
        return (
            "unknown key (this looks like a whole flow.json destination entry; "
            'pass its "config" object)'
        )
    if isinstance(key, str):
        squashed = key.replace("_", "").lower()
        same = [k for k in known if k.lower() == squashed]
        close = same or difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            return f"unknown key (did you mean {close[0]}?)"
    return f"unknown key; valid: {', '.join(known)}"


def translate(exc: BaseException, prefix: tuple[PathPart, ...] = ()) -> list[Problem]:
    """Flatten a (cattrs) exception tree into problems, with paths relative to ``prefix``."""
    if isinstance(exc, InvalidConfigError):
        return [((*prefix, *path), message) for path, message in exc.items]
    if isinstance(exc, ConfigError):
        # the mapping compiler's lines already carry their full path
        return [(prefix, line) for line in exc.problems]
    out: list[Problem] = []
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            path = (*prefix, Attr(note.name))
            if isinstance(sub, KeyError):  # the generated code's o['key'] on a missing key
                out.extend(_missing(exc.cl, note.name, path))
            else:
                out.extend(translate(sub, path))
        for sub in without:
            if isinstance(sub, ForbiddenExtraKeysError):
                keys = sorted(sub.extra_fields, key=str)
                out.extend(((*prefix, key), _unknown_key(sub.cl, key)) for key in keys)
            else:
                out.extend(translate(sub, prefix))
        return out
    if isinstance(exc, IterableValidationError):
        item_notes, rest = exc.group_exceptions()
        for sub, item_note in item_notes:
            out.extend(translate(sub, (*prefix, item_note.index)))
        for sub in rest:
            out.extend(translate(sub, prefix))
        return out
    return [(prefix, str(exc) or type(exc).__name__)]


def _missing(cls: type, name: str, path: tuple[PathPart, ...]) -> list[Problem]:
    """A missing required field; a missing config object is reported as its own required keys.

    ``{}`` then says ``settings.apiKey: required`` and ``settings.apiSecret: required``,
    naming what to write, as every other problem does, rather than ``settings: required``.
    """
    nested = fields_dict(cast("type[AttrsInstance]", cls))[name].metadata.get(NESTED)
    if nested is not None:
        try:
            structure_obj(nested, {})
        except InvalidConfigError as exc:
            return translate(exc, path)
    return [(path, "required")]


# -- structuring -----------------------------------------------------------------------------


def _invalid(cls: type, message: str) -> InvalidConfigError:
    return InvalidConfigError(cls, [((), message)])


def structure_obj(cls: type[T], value: Any) -> T:
    """Structure one config object from a camelCase dict, reporting every problem.

    A typed object found in a dict is kept as is (it validated itself when built).
    """
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise _invalid(cls, f"expected an object, got {type_name(value)}")
    try:
        return _structure_fns[cls](value, cls)  # type: ignore[no-any-return]
    except ClassValidationError as exc:
        found = translate(exc)
        with_notes, without = exc.group_exceptions()
        failed = {note.name for _, note in with_notes}
        if all(isinstance(sub, ForbiddenExtraKeysError) for sub in without):
            # Field errors or unknown keys kept the object from being built, so its own
            # checks did not run: run them on the raw values of the fields that did
            # structure, so that no problem stays hidden behind another.
            raw = {
                a.name: value[camel(a.name)]
                for a in fields(cast("type[AttrsInstance]", cls))
                if a.init and not a.metadata.get(NESTED) and a.name not in failed
                if camel(a.name) in value
            }
            found.extend(problems_of(cls, raw))
        raise InvalidConfigError(cls, found) from None


def _structure_batch(optional: bool) -> Callable[[Any, Any], Any]:
    def hook(value: Any, _: Any) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise _invalid(BatchOptions, f"must be >= 0 (milliseconds), got {value}")
            return BatchOptions(age=value)
        if isinstance(value, (Mapping, BatchOptions)):
            return structure_obj(BatchOptions, value)
        raise _invalid(
            BatchOptions,
            "expected a number of milliseconds or an object with size/age/wait, "
            f"got {type_name(value)}",
        )

    return hook


def _structure_one_rule(value: Any, what: str) -> Rule:
    if not isinstance(value, (Mapping, Rule)):
        raise _invalid(Rule, f"expected {what}, got {type_name(value)}")
    return structure_obj(Rule, value)


def _structure_rule(value: Any) -> RuleEntry:
    """A rule, or a list of rules (the first whose condition holds wins) → a tuple."""
    if not isinstance(value, (list, tuple)):
        return _structure_one_rule(value, "a rule object or a list of them")
    rules: list[Rule] = []
    problems: list[Problem] = []
    for index, item in enumerate(value):
        try:
            rules.append(_structure_one_rule(item, "a rule object"))
        except InvalidConfigError as exc:  # noqa: PERF203 - every rule's problems are reported
            problems.extend(translate(exc, (index,)))
    if problems:
        raise InvalidConfigError(Rule, problems)
    return tuple(rules)


def _structure_rules(value: Any, _: Any) -> dict[str, dict[str, RuleEntry]]:
    if not isinstance(value, Mapping):
        raise _invalid(
            Rule, f"expected an object {{entity: {{action: rule}}}}, got {type_name(value)}"
        )
    out: dict[str, dict[str, RuleEntry]] = {}
    problems: list[Problem] = []
    for entity, actions in value.items():
        if not isinstance(actions, Mapping):
            problems.append(
                ((entity,), f"expected an object {{action: rule}}, got {type_name(actions)}")
            )
            continue
        rules: dict[str, RuleEntry] = {}
        for action, rule in actions.items():
            try:
                rules[action] = _structure_rule(rule)
            except InvalidConfigError as exc:  # noqa: PERF203 - every rule's problems are reported
                problems.extend(translate(exc, (entity, action)))
        out[entity] = rules
    if problems:
        raise InvalidConfigError(Rule, problems)
    return out


def _passthrough(value: Any, _: Any) -> Any:
    return value


def _field_hook(owner: type, name: str, target: type) -> Callable[[Any, Any], Any]:
    if target is BatchOptions:
        return _structure_batch(optional=owner is Rule)
    if target is Rule:
        return _structure_rules
    return lambda value, _: structure_obj(target, value)


def _register(cls: type) -> None:
    structure_overrides: dict[str, Any] = {}
    unstructure_overrides: dict[str, Any] = {}
    for a in fields(cls):
        if not a.init:
            continue
        target = a.metadata.get(NESTED)
        hook = _passthrough if target is None else _field_hook(cls, a.name, target)
        structure_overrides[a.name] = override(rename=camel(a.name), struct_hook=hook)
        unstructure_overrides[a.name] = override(rename=camel(a.name))
    if cls is Settings:
        unstructure_overrides["api_secret"] = override(
            rename="apiSecret", unstruct_hook=lambda _secret: MASK
        )
    if cls is DestinationConfig:
        unstructure_overrides["mapping"] = override(
            rename="mapping", omit_if_default=True, unstruct_hook=_unstructure_rules
        )
    _structure_fns[cls] = make_dict_structure_fn(cls, converter, **structure_overrides)
    converter.register_structure_hook(cls, lambda value, _: structure_obj(cls, value))
    converter.register_unstructure_hook(
        cls,
        make_dict_unstructure_fn(
            cls, converter, _cattrs_omit_if_default=True, **unstructure_overrides
        ),
    )


def _unstructure_rules(mapping: Mapping[str, Mapping[str, RuleEntry]]) -> dict[str, Any]:
    return {
        entity: {
            action: [converter.unstructure(r, Rule) for r in rule]
            if isinstance(rule, tuple)
            else converter.unstructure(rule, Rule)
            for action, rule in actions.items()
        }
        for entity, actions in mapping.items()
    }


for _cls in _CLASSES:
    _register(_cls)
converter.register_unstructure_hook(Secret, lambda _secret: MASK)


# -- the public entry points -----------------------------------------------------------------


def _path_of(line: str) -> str:
    return line.split(": ", 1)[0]


def _compile_problems(data: Mapping[str, Any]) -> list[str]:
    """The mapping compiler's problems for a raw config dict that failed structuring."""
    from ..mapping import CompiledMapping

    try:
        CompiledMapping.from_config(data)
    except ConfigError as exc:
        return list(exc.problems)
    except Exception:  # the raw input is already known to be broken; its own errors suffice
        logger.debug("mapping compile of an invalid config failed", exc_info=True)
    return []


def _merge(own: list[str], compiled: list[str]) -> list[str]:
    """Own problems first, then the compiler's that add something (not at/below our paths)."""
    lines = list(dict.fromkeys(own))
    paths = [_path_of(line) for line in lines]
    for line in compiled:
        path = _path_of(line)
        if line in lines or any(path == p or path.startswith(p + ".") for p in paths):
            continue
        lines.append(line)
    return lines


def _scrub(lines: list[str], data: Mapping[str, Any]) -> list[str]:
    """Defence in depth: no message may carry the API secret, even one we did not write."""
    settings = data.get("settings")
    secret = settings.get("apiSecret") if isinstance(settings, Mapping) else None
    if isinstance(secret, Secret):
        secret = secret.get_secret_value()
    # A very short secret would garble ordinary words; nothing echoes it anyway.
    if not isinstance(secret, str) or len(secret) < 6:
        return lines
    return [line.replace(secret, MASK) for line in lines]


def structure_config(data: Mapping[str, Any]) -> DestinationConfig:
    """``DestinationConfig.from_dict``: see there."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"config: expected a dict (a walkerOS destination config), got {type_name(data)}"]
        )
    ignored = [key for key in data if key in IGNORED_WALKEROS_KEYS]
    for key in ignored:
        log = logger.warning if key in _HANDLER_KEYS else logger.debug
        log("config.%s: walkerOS key ignored by mparticle_dest", key)
    clean = {key: value for key, value in data.items() if key not in IGNORED_WALKEROS_KEYS}
    try:
        return structure_obj(DestinationConfig, clean)
    except InvalidConfigError as exc:
        own = [render(path, message) for path, message in exc.items]
        lines = _merge(own, _compile_problems(clean))
        raise ConfigError(_scrub(lines, clean)) from None


def unstructure_config(config: DestinationConfig) -> dict[str, Any]:
    """``DestinationConfig.to_dict``: see there."""
    return converter.unstructure(config, DestinationConfig)  # type: ignore[no-any-return]
