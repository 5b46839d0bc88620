"""The cattrs boundary: walkerOS camelCase dicts ⇄ typed config objects.

One ``Converter(forbid_extra_keys=True)`` with detailed validation, camelCase
renames generated from the attrs field names, and hooks that keep value
mappings exactly as given (they may hold Python callables). Structuring errors
from every level (cattrs' own, the classes' checks, the mapping compiler) are
gathered into ONE :class:`ConfigError`, one line per problem, each with its key
path in the user's camelCase spelling.

Generic over the config classes, so that it sits below the model (which calls it from
``from_dict``/``to_dict``) and never imports it: what it needs to know about a class is
in the field metadata (``problems.NESTED``, ``problems.RULE_TREE``, ``problems.CHECK``)
and the fields' attrs converters, which hold each shorthand rule once (``batch: 500``).
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import Attribute, fields, fields_dict
from cattrs import Converter
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._exceptions import ConfigError
from .._secret import MASK, Secret
from .problems import (
    CHECK,
    NESTED,
    RULE_TREE,
    Attr,
    InvalidConfigError,
    PathPart,
    Problem,
    camel,
    problems_of,
    render,
    type_name,
)

if TYPE_CHECKING:
    from attrs import AttrsInstance

__all__ = ["IGNORED_WALKEROS_KEYS", "structure_root", "unstructure"]

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

converter = Converter(forbid_extra_keys=True, detailed_validation=True)
_structure_fns: dict[type, Callable[[Mapping[str, Any], Any], Any]] = {}
# The classes passed to structure_root: a whole flow.json entry there gets a hint.
_roots: set[type] = set()


# -- error translation -----------------------------------------------------------------------


def _unknown_key(cls: type, key: Any) -> str:
    known = [camel(a.name) for a in fields(cls) if a.init]
    if cls in _roots and key in _ENTRY_KEYS:
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
        return _structure_fn(cls)(value, cls)  # type: ignore[no-any-return]
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


def _nested_hook(owner: type, attribute: Attribute[Any], target: type) -> Callable[[Any, Any], Any]:
    """Structure a field holding a config object (a dict, or a shorthand the field's
    attrs converter expands, such as ``batch: 500``)."""
    convert = attribute.converter
    if convert is None:
        return lambda value, _: structure_obj(target, value)
    check = attribute.metadata[CHECK]

    def hook(value: Any, _: Any) -> Any:
        value = convert(value)  # type: ignore[operator]
        if isinstance(value, Mapping):
            return structure_obj(target, value)
        found = list(check(value))
        if found:
            raise InvalidConfigError(owner, found)
        return value

    return hook


def _rule_tree_hook(target: type) -> Callable[[Any, Any], Any]:
    """Structure ``{entity: {action: rule | [rule, ...]}}``; a list becomes a tuple (the
    first rule whose condition holds wins)."""

    def one(value: Any, what: str) -> Any:
        if not isinstance(value, (Mapping, target)):
            raise _invalid(target, f"expected {what}, got {type_name(value)}")
        return structure_obj(target, value)

    def entry(value: Any) -> Any:
        if not isinstance(value, (list, tuple)):
            return one(value, "a rule object or a list of them")
        rules: list[Any] = []
        problems: list[Problem] = []
        for index, item in enumerate(value):
            try:
                rules.append(one(item, "a rule object"))
            except InvalidConfigError as exc:  # noqa: PERF203 - every rule's problems are reported
                problems.extend(translate(exc, (index,)))
        if problems:
            raise InvalidConfigError(target, problems)
        return tuple(rules)

    def hook(value: Any, _: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(value, Mapping):
            raise _invalid(
                target, f"expected an object {{entity: {{action: rule}}}}, got {type_name(value)}"
            )
        out: dict[str, dict[str, Any]] = {}
        problems: list[Problem] = []
        for entity, actions in value.items():
            if not isinstance(actions, Mapping):
                problems.append(
                    ((entity,), f"expected an object {{action: rule}}, got {type_name(actions)}")
                )
                continue
            rules: dict[str, Any] = {}
            for action, rule in actions.items():
                try:
                    rules[action] = entry(rule)
                except InvalidConfigError as exc:  # noqa: PERF203 - every rule's problems are reported
                    problems.extend(translate(exc, (entity, action)))
            out[entity] = rules
        if problems:
            raise InvalidConfigError(target, problems)
        return out

    return hook


def _unstructure_rule_tree(target: type) -> Callable[[Any], Any]:
    def unstructure_tree(tree: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        return {
            entity: {
                action: [converter.unstructure(r, target) for r in rule]
                if isinstance(rule, tuple)
                else converter.unstructure(rule, target)
                for action, rule in actions.items()
            }
            for entity, actions in tree.items()
        }

    return unstructure_tree


def _passthrough(value: Any, _: Any) -> Any:
    return value


def _structure_fn(cls: type) -> Callable[[Mapping[str, Any], Any], Any]:
    """The generated structure function of ``cls``, its hooks registered on first use."""
    fn = _structure_fns.get(cls)
    if fn is None:
        _register(cls)
        fn = _structure_fns[cls]
    return fn


def _register(cls: type) -> None:
    structure_overrides: dict[str, Any] = {}
    unstructure_overrides: dict[str, Any] = {}
    for a in fields(cls):
        if not a.init:
            continue
        target = a.metadata.get(NESTED)
        name = camel(a.name)
        if target is None:
            hook: Callable[[Any, Any], Any] = _passthrough
        elif a.metadata.get(RULE_TREE):
            hook = _rule_tree_hook(target)
            unstructure_overrides[a.name] = override(
                rename=name, omit_if_default=True, unstruct_hook=_unstructure_rule_tree(target)
            )
        else:
            hook = _nested_hook(cls, a, target)
        if target is not None and target not in _structure_fns:
            _register(target)
        structure_overrides[a.name] = override(rename=name, struct_hook=hook)
        unstructure_overrides.setdefault(a.name, override(rename=name))
    _structure_fns[cls] = make_dict_structure_fn(cls, converter, **structure_overrides)
    converter.register_structure_hook(cls, lambda value, _: structure_obj(cls, value))
    converter.register_unstructure_hook(
        cls,
        make_dict_unstructure_fn(
            cls, converter, _cattrs_omit_if_default=True, **unstructure_overrides
        ),
    )


converter.register_unstructure_hook(Secret, lambda _secret: MASK)


# -- the public entry points -----------------------------------------------------------------


def _path_of(line: str) -> str:
    return line.split(": ", 1)[0]


def _merge(own: list[str], more: Iterable[str]) -> list[str]:
    """Own problems first, then the others that add something (not at/below our paths)."""
    lines = list(dict.fromkeys(own))
    paths = [_path_of(line) for line in lines]
    for line in more:
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


def _raw_problems(
    check: Callable[[Mapping[str, Any]], list[str]], data: Mapping[str, Any]
) -> list[str]:
    try:
        return check(data)
    except Exception:  # the raw input is already known to be broken; its own errors suffice
        logger.debug("a whole-config check of an invalid config failed", exc_info=True)
        return []


def structure_root(
    cls: type[T],
    data: Mapping[str, Any],
    *,
    raw_problems: Callable[[Mapping[str, Any]], list[str]] | None = None,
) -> T:
    """Build the root config object from a walkerOS dict (``DestinationConfig.from_dict``).

    Args:
        cls: the root class.
        data: the walkerOS dict; keys in ``IGNORED_WALKEROS_KEYS`` are dropped (logged).
        raw_problems: when structuring fails, the checks that run on the whole raw dict
            (such as the mapping compiler), so that their problems are listed too.

    Raises:
        ConfigError: listing every problem with its camelCase key path.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            [f"config: expected a dict (a walkerOS destination config), got {type_name(data)}"]
        )
    _roots.add(cls)
    ignored = [key for key in data if key in IGNORED_WALKEROS_KEYS]
    for key in ignored:
        log = logger.warning if key in _HANDLER_KEYS else logger.debug
        log("config.%s: walkerOS key ignored by mparticle_dest", key)
    clean = {key: value for key, value in data.items() if key not in IGNORED_WALKEROS_KEYS}
    try:
        return structure_obj(cls, clean)
    except InvalidConfigError as exc:
        own = [render(path, message) for path, message in exc.items]
        more = _raw_problems(raw_problems, clean) if raw_problems is not None else []
        raise ConfigError(_scrub(_merge(own, more), clean)) from None


def unstructure(obj: Any) -> dict[str, Any]:
    """The walkerOS dict of a config object (``DestinationConfig.to_dict``)."""
    cls = type(obj)
    _structure_fn(cls)
    return converter.unstructure(obj, cls)  # type: ignore[no-any-return]
