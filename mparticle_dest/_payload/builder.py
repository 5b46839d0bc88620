"""From a walkerOS event to mParticle event bytes and a batch key (SPEC §5, §6, §10).

:class:`EventBuilder` compiles the settings' value mappings once; ``build`` then runs
on the caller's task for every push: normalize → mapping → mParticle event dict (built
directly in wire key order) → limits → encode once. The result, :class:`BuiltEvent`,
holds the event's compact JSON and the :class:`BatchKey` that decides which batch it
joins; batches are later assembled from the stored bytes by ``_wire.encode_batch``.

Events whose rule (or lack of one) is plain first go through a build function
generated for that rule (``_payload_fast``); it hands anything unusual back to the
general build here, so both always give the same result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from .._config import BatchOptions, DestinationConfig
from .._event import prepare_event, surrogate_path, text_ok
from .._exceptions import ConfigError, InvalidEventError
from .._mparticle import (
    MAX_BATCH_BYTES,
    MAX_EVENT_NAME_LENGTH,
    ConsentState,
    check_data,
    check_model,
    required_fields,
)
from .._wire import (
    BatchKey,
    IdentityValue,
    batch_size,
    dumps_bytes,
    encode_json,
    user_attributes_fragment,
)
from ..mapping import MappingContext, compile_value_mapping
from ..mapping._plain import PlainValue, plain_value
from ..mapping._rules import PlainMatch
from .built import BuiltEvent, Skipped
from .coerce import identity_value, string_value
from .fast import FastBuild, FastSpec, compile_fast
from .limits import Limits, check_batch_bytes

__all__ = ["BatchKey", "BuiltEvent", "EventBuilder", "Skipped"]

logger = logging.getLogger("mparticle_dest.payload")

ValueFn = Callable[[Any, MappingContext], Any]
# userIdentities compiled: {identity_type: (compiled, plain value or None)}.
_Identities = dict[str, tuple[ValueFn, PlainValue | None]]

# Worst-case JSON growth of a string: a control character becomes "\u00XX" (6 bytes).
_JSON_GROWTH: Final = 6
# Builds a BatchKey in C (the named tuple's own __new__ is a Python function).
_new_tuple: Final = tuple.__new__
# Event names whose build function is remembered (as the mapping's rule lists).
_MAX_NAMES: Final = 4096
_UNKNOWN: Final[Any] = object()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _get(obj: Any, name: str, default: Any = None) -> Any:
    """Read a field from a typed config object or a plain dict."""
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


class _Plan:
    """What one rule (or the default, no rule) compiles to."""

    __slots__ = (
        "batch",
        "batch_level",
        "check",
        "commerce",
        "custom_event_type",
        "event_data",
        "event_type",
        "identities",
        "name",
        "plain_identities",
        "prefix",
        "user_attributes",
    )

    def __init__(
        self,
        *,
        event_type: str,
        custom_event_type: str,
        name: str | None,
        commerce: ValueFn | None,
        event_data: ValueFn | None,
        identities: tuple[tuple[str, ValueFn], ...],
        plain_identities: tuple[tuple[str, PlainValue], ...] | None,
        user_attributes: tuple[ValueFn, ...],
        batch: BatchOptions | None,
    ) -> None:
        self.event_type = event_type
        self.prefix = b'{"event_type":' + dumps_bytes(event_type) + b',"data":'
        self.custom_event_type = custom_event_type
        self.name = name or None
        self.commerce = commerce
        self.event_data = event_data
        self.identities = identities
        # The identities as plain values when every one is plain (else None).
        self.plain_identities = plain_identities
        self.user_attributes = user_attributes
        self.batch = batch
        # Whether anything besides the identities is batch-level (set by the builder).
        self.batch_level = True
        # The walkerOS types' own fields are built here; mapped fields are checked.
        self.check = event_data is not None or event_type not in ("custom_event", "screen_view")


class _Compiler:
    """Compiles value mappings, collecting every problem for one ConfigError."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def value(self, spec: Any, path: str) -> ValueFn | None:
        if spec is None:
            return None
        try:
            return compile_value_mapping(spec, path=path)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return None

    def identities(self, spec: Any, path: str) -> _Identities:
        """``{identity_type: (compiled, plain value or None)}`` of a userIdentities map."""
        out: _Identities = {}
        if spec is None:
            return out
        if not isinstance(spec, Mapping):
            self.problems.append(f"{path}: expected an object of identity type → mapping")
            return out
        for identity_type, value_spec in spec.items():
            fn = self.value(value_spec, f"{path}.{identity_type}")
            if fn is not None:
                out[identity_type] = (fn, plain_value(value_spec))
        return out


def _plan_identities(
    identities: _Identities,
) -> tuple[tuple[tuple[str, ValueFn], ...], tuple[tuple[str, PlainValue], ...] | None]:
    """The compiled identities, and the plain ones when every identity is plain."""
    compiled = tuple((t, fn) for t, (fn, _) in identities.items())
    plain = tuple((t, p) for t, (_, p) in identities.items() if p is not None)
    return compiled, plain if len(plain) == len(compiled) else None


class EventBuilder:
    """Turns walkerOS events into mParticle event bytes and batch keys (SPEC §5).

    Build one per destination with :meth:`from_config`; :meth:`build` is then called
    for every pushed event, on the caller's task.
    """

    __slots__ = (
        "_consent",
        "_default",
        "_envelope_bound",
        "_environment",
        "_fast",
        "_fast_rules",
        "_ip",
        "_limits",
        "_mapping",
        "_plans",
        "_resolve",
        "_rules",
        "_source_request_id",
        "config",
    )

    def __init__(self, config: DestinationConfig) -> None:
        """Compile ``config``; prefer :meth:`from_config`, which also accepts a dict.

        Raises:
            ConfigError: listing every value mapping that does not compile, with its path.
        """
        self.config = config
        settings = config.settings
        compiler = _Compiler()
        self._environment: str = settings.environment
        self._ip = compiler.value(settings.ip, "settings.ip")
        self._source_request_id = compiler.value(
            settings.source_request_id, "settings.sourceRequestId"
        )
        consent = settings.consent
        if consent is not None and hasattr(consent, "to_dict"):
            consent = consent.to_dict()
        if consent:
            # Forwarded verbatim, but a malformed consent_state would get every batch
            # rejected (400): check its shape once, here.
            compiler.problems.extend(check_model(ConsentState, consent, path="settings.consent"))
        self._consent: str | None = dumps_bytes(consent).decode() if consent else None
        # Envelope bytes besides the batch-level strings: keys, punctuation, environment,
        # identity type names (at most 22 of them), and the consent.
        self._envelope_bound = 1024 + (len(self._consent.encode()) if self._consent else 0)
        try:
            self._limits = Limits(settings.limits)
        except ValueError as exc:
            compiler.problems.append(str(exc))
            self._limits = Limits()
        self._mapping = config.compiled_mapping
        self._resolve = self._mapping.resolve
        # Generated build functions (_payload_fast) per event name and per compiled rule.
        self._fast: dict[str, FastBuild | None] = {}
        self._fast_rules: dict[int, FastBuild | None] = {}

        base_identities = compiler.identities(settings.user_identities, "settings.userIdentities")
        base_attributes = compiler.value(settings.user_attributes, "settings.userAttributes")
        identities, plain_identities = _plan_identities(base_identities)
        self._default = _Plan(
            event_type="custom_event",
            custom_event_type="other",
            name=None,
            commerce=None,
            event_data=None,
            identities=identities,
            plain_identities=plain_identities,
            user_attributes=(base_attributes,) if base_attributes else (),
            batch=None,
        )
        self._plans: dict[int, _Plan] = {}
        self._rules: list[Any] = []  # keeps the rules alive, so their id()s stay unique
        for path, rule in _iter_rules(config.mapping):
            self._rules.append(rule)
            self._plans[id(rule)] = self._compile_rule(
                rule, path, compiler, base_identities, base_attributes
            )
        if compiler.problems:
            raise ConfigError(compiler.problems)
        batch_level = self._ip is not None or self._source_request_id is not None
        for plan in (self._default, *self._plans.values()):
            plan.batch_level = batch_level or bool(plan.user_attributes)

    @classmethod
    def from_config(cls, config: DestinationConfig | Mapping[str, Any]) -> EventBuilder:
        """Build from a :class:`DestinationConfig` or a walkerOS-shaped config dict.

        Raises:
            ConfigError: the config is invalid (every problem listed with its key path).
        """
        return cls(DestinationConfig.coerce(config))

    def _compile_rule(
        self,
        rule: Any,
        path: str,
        compiler: _Compiler,
        base_identities: _Identities,
        base_attributes: ValueFn | None,
    ) -> _Plan:
        settings = _get(rule, "settings")
        spath = f"{path}.settings"
        event_type = _get(settings, "event_type") or "custom_event"
        identities = dict(base_identities)
        identities.update(
            compiler.identities(_get(settings, "user_identities"), f"{spath}.userIdentities")
        )
        rule_attributes = compiler.value(
            _get(settings, "user_attributes"), f"{spath}.userAttributes"
        )
        commerce = compiler.value(_get(settings, "commerce"), f"{spath}.commerce")
        event_data = compiler.value(_get(settings, "event_data"), f"{spath}.eventData")
        if (
            event_type not in ("custom_event", "screen_view", "commerce_event")
            and event_data is None
        ):
            missing = required_fields(event_type)
            if missing:
                compiler.problems.append(
                    f"{spath}.eventData: eventType {event_type!r} needs the fields "
                    f"{', '.join(missing)}; map them with eventData"
                )
        compiled_identities, plain_identities = _plan_identities(identities)
        return _Plan(
            event_type=event_type,
            custom_event_type=_get(settings, "custom_event_type") or "other",
            name=_get(rule, "name"),
            commerce=commerce if event_type == "commerce_event" else None,
            event_data=event_data,
            identities=compiled_identities,
            plain_identities=plain_identities,
            user_attributes=tuple(f for f in (base_attributes, rule_attributes) if f is not None),
            batch=_get(rule, "batch"),
        )

    def build(self, event: Any) -> BuiltEvent | Skipped:
        """Map one walkerOS event to its mParticle event bytes and batch key.

        Args:
            event: a walkerOS event (dict or ``WalkerEvent``).

        Returns:
            The :class:`BuiltEvent`, or :class:`Skipped` when the mapping drops it
            (consent not granted, ``ignore`` or ``silent`` rule).

        Raises:
            InvalidEventError: the event is invalid, or a mapped field has a shape
                mParticle would reject (``field`` names it).
            LimitExceededError: an mParticle limit is broken under the "reject"
                policy, or the event alone exceeds a 128 KB batch.
        """
        ev = prepare_event(event)
        fast = self._fast.get(ev["name"], _UNKNOWN)
        if fast is _UNKNOWN:
            fast = self._fast_for(ev["name"])
        if fast is not None:
            built: BuiltEvent | None = fast(ev)
            if built is not None:
                return built
        return self._build(ev)

    def _fast_for(self, name: str) -> FastBuild | None:
        """The generated build function for events called ``name``, if there is one.

        There is one when the name alone decides the rule (``plain_match``), that
        rule's data and every identity are plain, and nothing else batch-level
        (``ip``, ``sourceRequestId``, ``userAttributes``) is configured. Consent
        requirements are checked by the generated function.
        """
        fast = None
        match = self._mapping.plain_match(name) if type(name) is str else None
        if match is not None:
            cache_key = id(match.rule)  # the compiled rules live as long as the mapping
            if cache_key in self._fast_rules:
                fast = self._fast_rules[cache_key]
            else:
                fast = self._compile_fast(match)
                self._fast_rules[cache_key] = fast
        if len(self._fast) < _MAX_NAMES:
            self._fast[name] = fast
        return fast

    def _compile_fast(self, match: PlainMatch) -> FastBuild | None:
        rule = match.rule
        plan = self._default if rule is None else self._plans.get(id(rule.rule), self._default)
        attributes = None if rule is None else rule.plain
        if (
            (rule is not None and attributes is None)
            or plan.batch_level
            or plan.plain_identities is None
            or plan.event_data is not None
        ):
            return None
        spec = FastSpec(
            event_type=plan.event_type,
            custom_event_type=plan.custom_event_type,
            prefix=plan.prefix,
            rule_name=plan.name,
            identities=plan.plain_identities,
            # A rule without data produces none: no custom_attributes at all.
            attributes=attributes or None,
            environment=self._environment,
            consent=self._consent,
            envelope_bound=self._envelope_bound,
            batch=plan.batch,
            mapping_key=match.mapping_key or None,
            consent_required=match.consent,
        )
        return compile_fast(spec, BuiltEvent)

    def _build(self, ev: dict[str, Any]) -> BuiltEvent | Skipped:
        """The general build of a prepared event (every setting, limit and check)."""
        mev, raw, rule, mapping_key, skipped, ignore, silent, ctx = self._resolve(ev)
        event_id: str = mev.get("id") or ev["id"]
        plan = self._default if rule is None else self._plans.get(id(rule), self._default)
        name = plan.name or mev.get("name")
        if type(name) is not str:
            raise InvalidEventError(
                f"event {event_id!r}: name {name!r} is not a string", field="name"
            )
        if skipped or ignore or silent:
            reason = skipped or ("ignore" if ignore else "silent")
            return Skipped(reason, event_id, name, mapping_key or None)

        notes: list[str] = []
        limits = self._limits

        # batch level: identities, ip, source_request_id, user attributes
        pairs: list[tuple[str, IdentityValue]] = []
        text = 0  # characters of the batch-level strings, for the size bound below
        # The event's own text was checked; what the mapping made of it (a callable's
        # result, a constant) is checked here, before it is encoded.
        for identity_type, fn in plan.identities:
            value = fn(mev, ctx)
            if type(value) is not str:
                value = identity_value(value)
            if type(value) is str:
                if value:
                    if not (value.isascii() or text_ok(value)):
                        where = f"user_identities.{identity_type}"
                        raise _not_unicode(event_id, name, (where, value))
                    pairs.append((identity_type, value))
                    text += len(value)
            elif value is not None:
                pairs.append((identity_type, value))
                text += 24
        ip = mapped_sri = user_attributes = None
        ua_fragment = b""
        if plan.batch_level:
            if self._ip is not None:
                ip = string_value(self._ip(mev, ctx))
                if ip is not None and not (ip.isascii() or text_ok(ip)):
                    raise _not_unicode(event_id, name, ("ip", ip))
            if self._source_request_id is not None:
                mapped_sri = string_value(self._source_request_id(mev, ctx))
                if mapped_sri is not None and not (mapped_sri.isascii() or text_ok(mapped_sri)):
                    raise _not_unicode(event_id, name, ("source_request_id", mapped_sri))
            if plan.user_attributes:
                merged: dict[str, Any] = {}
                for fn in plan.user_attributes:
                    value = fn(mev, ctx)
                    if isinstance(value, dict):
                        merged.update(value)
                if merged:
                    try:
                        user_attributes = (
                            limits.user_attributes(merged, event_id, name, notes) or None
                        )
                        ua_fragment = user_attributes_fragment(user_attributes)
                    except UnicodeEncodeError:
                        raise _not_unicode(event_id, name, ("user_attributes", merged)) from None

        # the event's data, in wire key order
        event_type = plan.event_type
        data: dict[str, Any] = {}
        try:
            if event_type == "custom_event":
                data = {
                    "event_name": name
                    if len(name) <= MAX_EVENT_NAME_LENGTH
                    else limits.event_name(name, event_id, notes),
                    "custom_event_type": plan.custom_event_type,
                }
            elif event_type == "screen_view":
                data = {"screen_name": limits.event_name(name, event_id, notes)}
            elif plan.commerce is not None:
                commerce = plan.commerce(mev, ctx)
                data = dict(commerce) if isinstance(commerce, dict) else {}
            else:
                data = {}
            if plan.event_data is not None:
                extra = plan.event_data(mev, ctx)
                if isinstance(extra, dict):
                    for k, v in extra.items():
                        if k not in data:
                            data[k] = v
            if raw and isinstance(raw, dict):
                custom = limits.custom_attributes(raw, event_id, name, notes)
                if custom:
                    data["custom_attributes"] = custom
            timestamp = mev.get("timestamp") or _now_ms()
            if type(timestamp) is not int:
                timestamp = int(timestamp)
            data["timestamp_unixtime_ms"] = timestamp
            if event_id:
                data["source_message_id"] = event_id
            if plan.check:
                self._check(plan, data, event_id, name, notes, mapping_key)

            # Mapped values are JSON by construction (the mapping drops anything
            # else), but a callable or constant may hold a lone surrogate.
            body = plan.prefix + encode_json(data) + b"}"
        except UnicodeEncodeError:
            raise _not_unicode(event_id, name, ("", data), ("custom_attributes", raw)) from None

        key = _new_tuple(BatchKey, (self._environment, tuple(pairs), ip, self._consent, mapped_sri))
        source_request_id = mapped_sri or event_id
        # A cheap upper bound of this event's lone batch; the exact size (which needs
        # the key's envelope encoded) only when the bound comes near 128 KB.
        bound = (
            len(body)
            + self._envelope_bound
            + _JSON_GROWTH * (text + len(source_request_id) + (len(ip) if ip else 0))
        )
        ua_size = len(ua_fragment)
        bound += ua_size
        if bound > MAX_BATCH_BYTES:
            size = batch_size(key, len(body), 1, ua_size, source_request_id)
            check_batch_bytes(size, event_id, name)
        return _new_tuple(
            BuiltEvent,
            (
                key,
                body,
                event_id,
                name,
                event_type,
                source_request_id,
                user_attributes,
                plan.batch,
                timestamp,
                mapping_key or None,
                tuple(notes) if notes else (),
            ),
        )

    def _check(
        self,
        plan: _Plan,
        data: dict[str, Any],
        event_id: str,
        name: str,
        notes: list[str],
        mapping_key: str | None,
    ) -> None:
        # mParticle answers 400 for the whole batch when one event is malformed, which
        # would sink the user's other events with it: refuse the event at push instead.
        for field in ("event_name", "screen_name"):
            if type(data.get(field)) is str:
                data[field] = self._limits.event_name(data[field], event_id, notes)
        problems = check_data(plan.event_type, data)
        if problems:
            where = f"mapping {mapping_key!r}" if mapping_key else "the mapping"
            raise InvalidEventError(
                f"event {event_id!r} ({name!r}): {where} produced a {plan.event_type} "
                "that mParticle would reject: " + "; ".join(problems),
                field=problems[0].split(":", 1)[0],
            )


def _not_unicode(event_id: str, name: str, *where: tuple[str, Any]) -> InvalidEventError:
    """The error for mapped output holding a lone surrogate, naming its mParticle field.

    ``where`` lists ``(path prefix, value)`` pairs to search, in order.
    """
    field = next((p for prefix, v in where if (p := surrogate_path(v, prefix))), None)
    return InvalidEventError(
        f"event {event_id!r} ({name!r}): the mapping produced {field or 'a value'} with a lone"
        " surrogate, which is not valid Unicode and cannot be encoded as UTF-8",
        field=field,
    )


def _iter_rules(mapping: Any) -> Any:
    """Yield ``(path, rule)`` for every rule of ``config.mapping`` (lists expanded)."""
    if not mapping:
        return
    for entity, actions in mapping.items():
        if not actions:
            continue
        for action, rules in actions.items():
            path = f"mapping.{entity}.{action}"
            if isinstance(rules, (list, tuple)):
                for i, rule in enumerate(rules):
                    yield f"{path}[{i}]", rule
            elif rules is not None:
                yield path, rules
