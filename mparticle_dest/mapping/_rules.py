"""Event rules: compiled once into O(1) lookups, then applied per event.

Resolve order of :meth:`CompiledMapping.process`: config consent → config policy →
rule lookup → rule consent → rule policy → config data → ignore check → name
override → rule data merged over config data → include → remove.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from attrs import define

from .._exceptions import ConfigError
from ._callables import Call, inspect_callable, prepare_call
from ._compile import ValueFn, compile_value, entry, join
from ._include import SECTIONS, assign, flatten_sections
from ._paths import Segment, delete_path, set_path, split_path
from ._plain import PlainMap, plain_map
from ._values import MappingContext, granted, logger, required_groups

__all__ = [
    "CompiledMapping",
    "CompiledRule",
    "MappingResult",
    "PlainMatch",
    "Resolved",
    "SkipReason",
    "compile_rules",
    "field_of",
]

SkipReason = Literal["consent", "ignore"]
"""Why the mapping skipped an event (``MappingResult.skipped``): ``"consent"`` (a
required consent group is not granted) or ``"ignore"`` (the rule says ``ignore``).
A ``silent`` rule is reported by ``MappingResult.silent``; the destination counts
and resolves such events as skipped with the reason ``"silent"``."""
_INCLUDE_NAMES = (*SECTIONS, "all")
_Policy = tuple[tuple[tuple[Segment, ...], ValueFn], ...]
# Builds a Resolved in C (the named tuple's own __new__ is a Python function).
_new_tuple = tuple.__new__


class Resolved(NamedTuple):
    """What :meth:`CompiledMapping.resolve` found for one event (the delivery engine's
    form of :class:`MappingResult`, plus the context the destination's own value
    mappings need).

    Attributes:
        event: the event after policies and the name override (read-only).
        data: the produced data, or ``None``.
        rule: the matched rule object as configured, or ``None``.
        mapping_key: ``"entity action"`` of the matched rule, ``""`` without one.
        skipped: ``"consent"``, ``"ignore"`` or ``None``.
        ignore: the matched rule says ``ignore``.
        silent: the matched rule says ``silent``.
        context: the :class:`MappingContext` of the mapped event.
    """

    event: Mapping[str, Any]
    data: Any
    rule: Any
    mapping_key: str
    skipped: SkipReason | None
    ignore: bool
    silent: bool
    context: MappingContext


@define(slots=True)
class MappingResult:
    """The outcome of mapping one event (built fresh for every event).

    Attributes:
        event: The event after policies and the name override. Treat it as read-only:
            untouched parts are shared with the caller's event (which is never
            mutated); written paths are fresh copies.
        data: The produced data (``None`` when nothing was produced). Always built
            fresh, so it is safe to mutate.
        rule: The matched rule object exactly as configured, or ``None``.
        mapping_key: ``"entity action"`` of the matched rule keys (e.g. ``"product *"``),
            ``""`` when no rule matched.
        ignore: The matched rule says ``ignore``.
        silent: The matched rule says ``silent``.
        skipped: ``"consent"`` (required consent missing), ``"ignore"``, or ``None``.
    """

    event: Mapping[str, Any]
    data: Any
    rule: Any
    mapping_key: str
    ignore: bool
    silent: bool
    skipped: SkipReason | None


def field_of(obj: Any, name: str) -> Any:
    """Read ``name`` from a dict-like or attribute-style config object (``None`` if absent)."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


class CompiledRule:
    """One rule of the tree, compiled; ``rule`` is the rule object as configured."""

    __slots__ = (
        "condition",
        "consent",
        "data",
        "ignore",
        "include",
        "name",
        "plain",
        "policy",
        "remove",
        "rule",
        "silent",
    )

    def __init__(self, rule: Any, path: str, problems: list[str]) -> None:
        self.rule = rule
        name = field_of(rule, "name")
        if name is not None and not isinstance(name, str):
            problems.append(f"{join(path, 'name')}: expected a string, got {type(name).__name__}")
            name = None
        self.name: str | None = name or None
        self.ignore = bool(field_of(rule, "ignore"))
        self.silent = bool(field_of(rule, "silent"))
        self.condition: Call | None = None
        condition = field_of(rule, "condition")
        if condition is not None:
            where = join(path, "condition")
            arity = inspect_callable(condition, where, problems)
            if arity is not None:
                self.condition = prepare_call(condition, arity, "rule condition", where, rule)
        self.consent = compile_consent(field_of(rule, "consent"), join(path, "consent"), problems)
        self.policy = compile_policy(field_of(rule, "policy"), join(path, "policy"), problems)
        self.data = compile_data(field_of(rule, "data"), join(path, "data"), problems)
        self.include = compile_include(field_of(rule, "include"), join(path, "include"), problems)
        self.remove = _compile_remove(field_of(rule, "remove"), join(path, "remove"), problems)
        # What a fast path needs to know: the rule's data as plain entries when nothing
        # but its consent, the name override and that data applies (see plain_match).
        self.plain: PlainMap | None = None
        if not (
            self.ignore
            or self.silent
            or self.policy is not None
            or self.include
            or self.remove is not None
        ):
            self.plain = () if self.data is None else plain_map(field_of(rule, "data"))


def compile_consent(spec: Any, path: str, problems: list[str]) -> tuple[str, ...] | None:
    """Required consent groups of a rule or config (``None`` when nothing is required)."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        problems.append(f"{path}: expected a dict of consent groups, got {type(spec).__name__}")
        return None
    return required_groups(spec)


def compile_policy(spec: Any, path: str, problems: list[str]) -> _Policy | None:
    """Compile ``{dotted_path: value_mapping}``."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        problems.append(
            f"{path}: expected a dict of path: value_mapping, got {type(spec).__name__}"
        )
        return None
    entries = []
    for target, mapping in spec.items():
        where = join(path, target)
        if not isinstance(target, str) or not target:
            problems.append(f"{where}: a policy key must be a non-empty dotted path")
            continue
        entries.append((split_path(target), entry(compile_value(mapping, where, problems), where)))
    return tuple(entries) or None


def compile_data(spec: Any, path: str, problems: list[str]) -> ValueFn | None:
    """Compile a ``data`` value mapping (``None`` and ``""`` mean absent, as in walkerOS)."""
    if spec is None or spec == "":
        return None
    return entry(compile_value(spec, path, problems), path)


def compile_include(spec: Any, path: str, problems: list[str]) -> tuple[str, ...] | None:
    """Compile an ``include`` list of section names (``all`` expands to every section)."""
    if spec is None:
        return None
    if not isinstance(spec, (list, tuple)):
        problems.append(f"{path}: expected a list of section names, got {type(spec).__name__}")
        return None
    sections: list[str] = []
    for i, section in enumerate(spec):
        if section not in _INCLUDE_NAMES:
            problems.append(
                f"{join(path, i)}: unknown include section {section!r} "
                f"(known: {', '.join(_INCLUDE_NAMES)})"
            )
        elif section not in sections:
            sections.append(section)
    # As in walkerOS, "all" anywhere means every section, in the canonical order.
    return SECTIONS if "all" in sections else tuple(sections)


def _compile_remove(
    spec: Any, path: str, problems: list[str]
) -> tuple[tuple[Segment, ...], ...] | None:
    if spec is None:
        return None
    if not isinstance(spec, (list, tuple)):
        problems.append(f"{path}: expected a list of dotted paths, got {type(spec).__name__}")
        return None
    paths = []
    for i, target in enumerate(spec):
        if not isinstance(target, str) or not target:
            problems.append(f"{join(path, i)}: expected a non-empty dotted path")
        else:
            paths.append(split_path(target))
    return tuple(paths) or None


_Candidates = tuple[str, tuple[CompiledRule, ...]]
# Event names whose rule lists are remembered: a service sends few distinct names.
_MAX_NAMES = 4096
_Tree = dict[str, dict[str, _Candidates]]


def compile_rules(rules: Any, path: str, problems: list[str]) -> _Tree:
    """Compile ``{entity: {action: rule | [rule, ...]}}`` into nested dicts."""
    tree: _Tree = {}
    if rules is None:
        return tree
    if not isinstance(rules, Mapping):
        problems.append(
            f"{path}: expected a dict of entity: {{action: rule}}, got {type(rules).__name__}"
        )
        return tree
    for entity, actions in rules.items():
        entity_path = join(path, entity)
        if actions is None:
            continue
        if not isinstance(entity, str) or not isinstance(actions, Mapping):
            problems.append(f"{entity_path}: expected a dict of action: rule")
            continue
        compiled: dict[str, _Candidates] = {}
        for action, spec in actions.items():
            if spec is None:
                continue
            rule_path = join(entity_path, action)
            if not isinstance(action, str):
                problems.append(f"{rule_path}: action keys must be strings")
                continue
            listed = isinstance(spec, (list, tuple))
            items = spec if listed else (spec,)
            rules_here = []
            for i, rule in enumerate(items):
                where = join(rule_path, i) if listed else rule_path
                if isinstance(rule, (str, bytes, int, float, list, tuple)):
                    problems.append(f"{where}: expected a rule (a dict or a Rule object)")
                    continue
                rules_here.append(CompiledRule(rule, where, problems))
            compiled[action] = (f"{entity} {action}", tuple(rules_here))
        tree[entity] = compiled
    return tree


class PlainMatch(NamedTuple):
    """What :meth:`CompiledMapping.plain_match` found for an event name.

    Attributes:
        rule: the compiled rule, or ``None`` when no rule matches.
        mapping_key: ``"entity action"`` of the rule (``""`` without one).
        consent: the consent requirements (config-level first, then the rule's), each
            a tuple of groups of which the event's ``consent`` must grant one.
    """

    rule: CompiledRule | None
    mapping_key: str
    consent: tuple[tuple[str, ...], ...]


class CompiledMapping:
    """A destination's mapping (rules and config-level parts), compiled once.

    Build it with :meth:`from_config`; :meth:`process` is the per-event hot path.
    """

    __slots__ = (
        "_chains",
        "_consent",
        "_data",
        "_include",
        "_plain",
        "_policy",
        "_tree",
        "_wildcard",
    )

    def __init__(
        self,
        tree: _Tree,
        *,
        policy: _Policy | None = None,
        data: ValueFn | None = None,
        consent: tuple[str, ...] | None = None,
        include: tuple[str, ...] | None = None,
    ) -> None:
        self._tree = tree
        self._policy = policy
        self._data = data
        self._consent = consent
        self._include = include
        self._wildcard = tree.get("*", {}).get("*")
        self._chains: dict[str, tuple[_Candidates, ...]] = {}  # event name -> rule lists
        # No config-level part but consent reads or rewrites the event.
        self._plain = policy is None and data is None and not include

    @classmethod
    def from_config(cls, config: Any) -> CompiledMapping:
        """Compile a config's ``mapping``, ``policy``, ``data``, ``consent`` and ``include``.

        Args:
            config: A dict with those keys, or any object with those attributes
                (such as the typed ``DestinationConfig``); absent parts are ``None``.

        Returns:
            The compiled mapping.

        Raises:
            ConfigError: listing every problem with its key path, e.g.
                ``mapping.product.view.data.map.price.fn: async callables are not supported``.
        """
        problems: list[str] = []
        tree = compile_rules(field_of(config, "mapping"), "mapping", problems)
        compiled = cls(
            tree,
            policy=compile_policy(field_of(config, "policy"), "policy", problems),
            data=compile_data(field_of(config, "data"), "data", problems),
            consent=compile_consent(field_of(config, "consent"), "consent", problems),
            include=compile_include(field_of(config, "include"), "include", problems),
        )
        if problems:
            raise ConfigError(problems)
        return compiled

    def lookup(self, event: Mapping[str, Any], ctx: MappingContext) -> tuple[Any, str]:
        """Find the rule for ``event``: ``(rule as configured or None, mapping_key)``."""
        found = self._match(event, ctx)
        return (None, "") if found is None else (found[0].rule, found[1])

    def plain_match(self, name: str) -> PlainMatch | None:
        """The rule every event called ``name`` matches, when the name alone decides.

        Returns a :class:`PlainMatch` when no config-level ``policy``, ``data`` or
        ``include`` applies and no rule ``condition`` is met before the matching rule.
        Then, for every event with this name whose ``consent`` grants each of the
        match's ``consent`` requirements, :meth:`resolve` gives the result the rule's
        ``plain`` entries describe (an event that does not is skipped for consent).
        ``None`` otherwise (the outcome depends on more than the name).
        """
        if not self._plain:
            return None
        required = () if self._consent is None else (self._consent,)
        for key, rules in self._chains_of(name):
            for rule in rules:
                if rule.condition is not None:
                    return None
                if rule.consent is not None:
                    required = (*required, rule.consent)
                return PlainMatch(rule, key, required)
        return PlainMatch(None, "", required)

    def _chains_of(self, name: str) -> tuple[_Candidates, ...]:
        chains = self._chains.get(name)
        if chains is None:
            chains = self._chains_for(name)
            if len(self._chains) < _MAX_NAMES:
                self._chains[name] = chains
        return chains

    def _match(
        self, event: Mapping[str, Any], ctx: MappingContext
    ) -> tuple[CompiledRule, str] | None:
        name = event.get("name")
        if type(name) is not str:
            return None
        for key, rules in self._chains_of(name):
            for rule in rules:
                if rule.condition is None or rule.condition(event, ctx):
                    return rule, key
        return None

    def _chains_for(self, name: str) -> tuple[_Candidates, ...]:
        """The rule lists an event called ``name`` tries, in order (they depend on the
        name alone; the rules' conditions are then evaluated per event)."""
        entity, _, rest = name.partition(" ")
        action = rest.partition(" ")[0]
        if not entity or not action:
            return ()
        tree = self._tree
        actions = tree.get(entity)
        if actions is None:
            actions = tree.get("*")
        candidates = None
        if actions is not None:
            candidates = actions.get(action)
            if candidates is None:
                candidates = actions.get("*")
        fallback = self._wildcard
        # The "* *" fallback, unless that is exactly what is tried first.
        if fallback is not None and fallback is not candidates:
            return (candidates, fallback) if candidates is not None else (fallback,)
        return (candidates,) if candidates is not None else ()

    def process(self, event: Mapping[str, Any]) -> MappingResult:
        """Map one event (the caller's event is never mutated).

        Args:
            event: A walkerOS event (a dict; normally already normalized).

        Returns:
            The :class:`MappingResult`.
        """
        if type(event) is not dict and not isinstance(event, Mapping):
            raise TypeError(f"an event must be a mapping, got {type(event).__name__}")
        r = self.resolve(event)
        return MappingResult(r.event, r.data, r.rule, r.mapping_key, r.ignore, r.silent, r.skipped)

    def resolve(self, event: Mapping[str, Any]) -> Resolved:
        """:meth:`process` for the delivery engine's hot path: a :class:`Resolved`, no checks."""
        consent = _consent_of(event)
        ctx = MappingContext(event, None, consent, logger)
        if self._consent is not None and not granted(self._consent, consent):
            return _new_tuple(Resolved, (event, None, None, "", "consent", False, False, ctx))
        owned: set[int] | None = None
        if self._policy is not None:
            event, owned = _apply_policy(event, self._policy, ctx, owned)
            ctx = MappingContext(event, None, _consent_of(event), logger)

        found = self._match(event, ctx)
        rule = key = None
        if found is not None:
            rule, key = found
            if rule.consent is not None and not granted(rule.consent, ctx.consent):
                return _new_tuple(
                    Resolved, (event, None, rule.rule, key, "consent", False, rule.silent, ctx)
                )
            if rule.policy is not None:
                event, owned = _apply_policy(event, rule.policy, ctx, owned)
                ctx = MappingContext(event, None, _consent_of(event), logger)

        data = None if self._data is None else self._data(event, ctx)
        include = self._include
        if rule is not None:
            if rule.ignore:
                return _new_tuple(
                    Resolved, (event, data, rule.rule, key or "", "ignore", True, rule.silent, ctx)
                )
            if rule.name is not None:
                if owned is None:
                    event = dict(event)
                    owned = {id(event)}
                event["name"] = rule.name  # type: ignore[index]
                ctx = MappingContext(event, None, ctx.consent, logger)
            if rule.data is not None:
                produced = rule.data(event, ctx)
                data = (
                    assign(data, produced)
                    if type(data) is dict and type(produced) is dict
                    else produced
                )
            if rule.include is not None:
                include = rule.include
        if include:
            included = flatten_sections(event, include)
            if included:
                if type(data) is dict:
                    data = assign(included, data)
                elif data is None:
                    data = included
        if rule is None:
            return _new_tuple(Resolved, (event, data, None, "", None, False, False, ctx))
        if rule.remove is not None and type(data) is dict:
            for segments in rule.remove:
                delete_path(data, segments)
        return _new_tuple(
            Resolved, (event, data, rule.rule, key or "", None, False, rule.silent, ctx)
        )


def _consent_of(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    consent = event.get("consent")
    if type(consent) is dict or isinstance(consent, Mapping):
        return consent
    return None


def _apply_policy(
    event: Mapping[str, Any], policy: _Policy, ctx: MappingContext, owned: set[int] | None
) -> tuple[dict[str, Any], set[int]]:
    # Every entry is resolved against the event as it was before this policy, then
    # written in order (walkerOS resolves them concurrently).
    values = [(segments, fn(event, ctx)) for segments, fn in policy]
    if owned is None:
        root = dict(event)
        owned = {id(root)}
    else:
        root = event  # type: ignore[assignment]
    for segments, value in values:
        set_path(root, segments, value, owned)
    return root, owned
