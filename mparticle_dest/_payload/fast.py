"""Generated build functions: the push path of a plain rule, in one straight-line function.

Most rules only rename the event and map plain paths into ``custom_attributes``, and
most settings map identities from plain paths (``mapping._plain``). For such a rule
(the whole contract is :func:`fast_spec`), ``EventBuilder`` generates, once, a Python
function that does what its general build
does for the usual event, with every config-dependent decision taken at generation
time: the paths are unrolled dict lookups (a parent dict read once for all its
keys), the constants are literals, and no ``MappingContext``, closure call or
intermediate result is made. For the scenario rule it reads::

    def build(ev):
        if type(ev) is not dict:
            return None
        p0 = ev.get('user')
        if p0 is not None and type(p0) is not dict:
            return None
        ...
        v = p0.get('id') if p0 is not None else None
        if v is not None:
            if type(v) is str:
                if v:
                    ids['customer_id'] = v
                    text += len(v)
            ...
        return new_tuple(BuiltEvent, (ck, body, eid, name, 'custom_event', eid, ...))

The function returns the :class:`~mparticle_dest._payload.built.BuiltEvent` the general
path would return, or ``None`` to hand the event to the general path, which then
builds it from scratch: whenever a required consent is not granted by a ``True``
flag (the general path skips the event), a container on a path is not a plain ``dict``, a
value is not a plain scalar (a list, a dict, NaN, an enum, a bool or float identity,
a custom attribute string over 4,096 characters), the name is over 256 characters,
the timestamp is not a non-zero int, the id not a non-empty string, orjson refuses
its data or identities (an int beyond 64 bits) or the event may come near the 128 KB batch limit. So
every limit, error, truncation note and coercion stays in one place, the general path.
:func:`fast_source` shows the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from .._config import BatchOptions
from .._event import text_ok
from .._mparticle import (
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_BATCH_BYTES,
    MAX_CUSTOM_ATTRIBUTES,
    MAX_EVENT_NAME_LENGTH,
)
from .._wire import JSON_GROWTH, BatchKey, compact_key, orjson_dumps
from ..mapping._plain import PlainMap, PlainValue
from ..mapping._rules import PlainMatch
from .built import BuiltEvent
from .plan import Plan

__all__ = ["FastBuild", "FastSpec", "compile_fast", "fast_source", "fast_spec"]

#: ``build(prepared_event) -> BuiltEvent | None`` (``None``: use the general path).
FastBuild = Callable[[dict[str, Any]], Any]


class FastSpec(NamedTuple):
    """Everything a generated build function depends on (all fixed by the config).

    Attributes:
        event_type: ``"custom_event"`` or ``"screen_view"``.
        custom_event_type: the custom event's ``custom_event_type``.
        prefix: the body bytes before the event's data object.
        rule_name: the rule's ``name`` override, or ``None``.
        identities: ``((identity_type, plain_value), ...)`` in wire order.
        attributes: the rule's plain ``data.map`` entries, or ``None`` without data.
        environment: ``settings.environment``.
        consent: the static ``consent_state`` JSON text, or ``None``.
        envelope_bound: the builder's bound of the envelope bytes besides the strings.
        batch: the rule's ``batch`` options, or ``None``.
        mapping_key: ``"entity action"`` of the rule, or ``None`` without a rule.
        consent_required: the consent requirements of the config and the rule: the
            event's ``consent`` must grant one group of each (else it is skipped).
    """

    event_type: str
    custom_event_type: str
    prefix: bytes
    rule_name: str | None
    identities: tuple[tuple[str, PlainValue], ...]
    attributes: PlainMap | None
    environment: str
    consent: str | None
    envelope_bound: int
    batch: BatchOptions | None
    mapping_key: str | None
    consent_required: tuple[tuple[str, ...], ...] = ()


def fast_spec(
    match: PlainMatch, plan: Plan, *, environment: str, consent: str | None, envelope_bound: int
) -> FastSpec | None:
    """The fast path's contract: the spec of the events ``match`` describes, or ``None``.

    Events of one name take a generated build function when all of these hold:

    1. the name alone decides their rule (``match``, from
       ``CompiledMapping.plain_match``: no config-level ``policy``, ``data`` or
       ``include``, no rule ``condition`` tried before the rule);
    2. that rule is plain (``CompiledRule.plain``: no ``ignore``, ``silent``,
       ``policy``, ``include`` or ``remove``; its ``data`` absent or a plain ``map`` of
       at most 100 entries);
    3. its plan has nothing batch-level besides the identities and the static consent
       (no ``ip``, ``sourceRequestId``, ``userAttributes``, ``mpid``, ``deviceInfo``,
       ``applicationInfo`` or ``dataPlan``), every identity is plain, and no
       ``eventData``;
    4. the event type is ``custom_event`` or ``screen_view``, the name override is within
       256 characters and no value is read from the event's ``name``, every consent
       requirement names groups, and no constant is one the function would decline on
       every event or holds a lone surrogate.

    Then every event is still handed back to the general build when it is unusual (see
    the module docstring), so both paths always give the same result.
    """
    rule = match.rule
    attributes = None if rule is None else rule.plain
    if (rule is not None and attributes is None) or plan.batch_level:
        return None
    if plan.plain_identities is None or plan.event_data is not None:
        return None
    spec = FastSpec(
        event_type=plan.event_type,
        custom_event_type=plan.custom_event_type,
        prefix=plan.prefix,
        rule_name=plan.name,
        identities=plan.plain_identities,
        # A rule without data produces none: no custom_attributes at all.
        attributes=attributes or None,
        environment=environment,
        consent=consent,
        envelope_bound=envelope_bound,
        batch=plan.batch,
        mapping_key=match.mapping_key or None,
        consent_required=match.consent,
    )
    return spec if _generated_code_applies(spec) else None


def _generated_code_applies(spec: FastSpec) -> bool:
    """Point 4 of :func:`fast_spec`: what the generated code itself assumes."""
    if spec.event_type not in ("custom_event", "screen_view"):
        return False
    # No group required (``consent: {}``) is never granted: every event is skipped.
    for groups in spec.consent_required:
        if not groups or not all(type(group) is str for group in groups):
            return False
    values = [value for _, value in spec.identities]
    if spec.attributes is not None:
        # More entries could exceed mParticle's 100 attributes: the limits decide.
        if len(spec.attributes) > MAX_CUSTOM_ATTRIBUTES:
            return False
        values.extend(value for _, value in spec.attributes)
    if spec.rule_name is not None:
        # The general path reads the renamed event; keep the generated code simple.
        if len(spec.rule_name) > MAX_EVENT_NAME_LENGTH:
            return False
        if any(keys is not None and keys[0] == "name" for keys, _ in values):
            return False
    # A constant the generated code would decline on every event is left out at once:
    # an identity default other than a string or int, an over-long attribute string.
    # So is text holding a lone surrogate (the event's own text is checked before):
    # the general path refuses the event, naming the field.
    for _, (_, default) in spec.identities:
        if default is not None and type(default) is not str and type(default) is not int:
            return False
    for _, (_, default) in spec.attributes or ():
        if type(default) is str and len(default) > MAX_ATTRIBUTE_VALUE_LENGTH:
            return False
    constants = [default for _, default in values]
    if not all(_valid_text(text) for text in (spec.rule_name, *constants)):
        return False
    return all(type(t) is str for t, _ in spec.identities) and _key_parts(spec) is not None


def _key_parts(spec: FastSpec) -> tuple[bytes, bytes] | None:
    """The :func:`~mparticle_dest._wire.compact_key` bytes of the spec's keys before and
    after the identities' JSON object (``None``: not two constant parts, never for valid
    settings).

    Taken from ``compact_key`` itself, of the key without identities: every other item
    of the key is the same for all the spec's events.
    """
    unset = (None,) * (len(BatchKey._fields) - 4)
    key = tuple.__new__(BatchKey, (spec.environment, (), None, spec.consent, *unset))
    try:
        empty = compact_key(key)
        head = orjson_dumps(spec.environment) + b","
    except (TypeError, UnicodeEncodeError):
        return None
    if not empty.startswith(head + b"{}"):
        return None
    return head, empty[len(head) + 2 :]


def _valid_text(value: object) -> bool:
    """Whether ``value`` is no string or a string without a lone surrogate."""
    return type(value) is not str or value.isascii() or text_ok(value)


class _Writer:
    """Builds the source of one function, line by line; ``block`` indents its body."""

    def __init__(self) -> None:
        self.lines = ["def build(ev):"]
        self.depth = 1
        self.parents: dict[tuple[str, ...], str] = {}

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        """``header`` (an ``if``/``elif``/``else`` line) with the lines emitted inside."""
        self.emit(header)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def decline_if(self, test: str) -> None:
        """Hand the event to the general path when ``test`` holds."""
        with self.block(f"if {test}:"):
            self.emit("return None")

    def parent(self, keys: tuple[str, ...]) -> str:
        """The local holding the dict at ``keys`` (``None`` when missing), read once."""
        if not keys:
            return "ev"
        local = self.parents.get(keys)
        if local is None:
            base = self.parent(keys[:-1])
            local = f"p{len(self.parents)}"
            if base == "ev":
                self.emit(f"{local} = ev.get({keys[-1]!r})")
            else:
                self.emit(f"{local} = {base}.get({keys[-1]!r}) if {base} is not None else None")
            self.decline_if(f"{local} is not None and type({local}) is not dict")
            self.parents[keys] = local
        return local

    def value(self, plain: PlainValue) -> None:
        """Emit ``v = <the plain value>`` (``None`` when missing)."""
        keys, default = plain
        if keys is None:
            self.emit(f"v = {default!r}")
            return
        base = self.parent(keys[:-1])
        if base == "ev":
            self.emit(f"v = ev.get({keys[-1]!r})")
        else:
            self.emit(f"v = {base}.get({keys[-1]!r}) if {base} is not None else None")
        if default is not None:
            with self.block("if v is None:"):
                self.emit(f"v = {default!r}")


def fast_source(spec: FastSpec) -> str | None:
    """The source of the build function for ``spec``, or ``None`` when the generated code
    cannot reproduce the general build for it (point 4 of :func:`fast_spec`)."""
    parts = _key_parts(spec)
    if parts is None or not _generated_code_applies(spec):
        return None
    w = _Writer()
    w.decline_if("type(ev) is not dict")
    if spec.consent_required:
        # Granted when a required group is exactly True; other events (skipped, or
        # with truthy non-boolean flags) are the general path's.
        w.emit("c = ev.get('consent')")
        w.decline_if("type(c) is not dict")
        for groups in spec.consent_required:
            test = " or ".join(f"c.get({group!r}) is True" for group in groups)
            w.decline_if(f"not ({test})")
    # Parents first, so every later line is a lookup in a local dict.
    values = [value for _, value in spec.identities]
    values.extend(value for _, value in spec.attributes or ())
    for keys, _ in values:
        if keys is not None:
            w.parent(keys[:-1])

    # Identities: strings (non-empty) and ints; "" and missing values are dropped.
    w.emit("ids = {}")
    w.emit("text = 0")
    for identity_type, plain in spec.identities:
        w.value(plain)
        with w.block("if v is not None:"):
            with w.block("if type(v) is str:"), w.block("if v:"):
                w.emit(f"ids[{identity_type!r}] = v")
                w.emit("text += len(v)")
            with w.block("elif type(v) is int:"):
                w.emit(f"ids[{identity_type!r}] = v")
                w.emit("text += 24")
            with w.block("else:"):
                w.emit("return None")

    # Custom attributes: plain scalars within the value length; missing ones omitted.
    if spec.attributes is not None:
        w.emit("ca = {}")
        for out_key, plain in spec.attributes:
            w.value(plain)
            with w.block("if v is not None:"):
                w.emit("c = type(v)")
                with w.block("if c is str:"):
                    w.decline_if(f"len(v) > {MAX_ATTRIBUTE_VALUE_LENGTH}")
                with w.block(
                    "elif c is not int and c is not bool and (c is not float or v - v != 0.0):"
                ):
                    w.emit("return None")
                w.emit(f"ca[{out_key!r}] = v")

    if spec.rule_name is not None:
        w.emit(f"name = {spec.rule_name!r}")
    else:
        w.emit("name = ev.get('name')")
        w.decline_if(f"type(name) is not str or len(name) > {MAX_EVENT_NAME_LENGTH}")
    w.emit("ts = ev.get('timestamp')")
    w.decline_if("type(ts) is not int or not ts")
    w.emit("eid = ev.get('id')")
    w.decline_if("type(eid) is not str or not eid")
    if spec.event_type == "custom_event":
        w.emit(f"data = {{'event_name': name, 'custom_event_type': {spec.custom_event_type!r}}}")
    else:
        w.emit("data = {'screen_name': name}")
    if spec.attributes is not None:
        with w.block("if ca:"):
            w.emit("data['custom_attributes'] = ca")
    w.emit("data['timestamp_unixtime_ms'] = ts")
    w.emit("data['source_message_id'] = eid")
    # The key's compact bytes: its constant parts around the identities, which orjson
    # encodes as compact_key does (so the accumulator does not encode the key again).
    head, tail = parts
    # orjson itself (not encode_json's wrapper): what it refuses (an int beyond 64 bits,
    # in the data or an identity) goes to the general path, whose encoders take it.
    with w.block("try:"):
        w.emit("enc = dumps(data)")
        w.emit(f"ck = {head!r} + dumps(ids)" + (f" + {tail!r}" if tail else ""))
    with w.block("except TypeError:"):
        w.emit("return None")
    w.emit(f"body = {spec.prefix!r} + enc + b'}}'")
    # Near 128 KB the general path computes the exact size (and may refuse the event).
    bound = spec.envelope_bound
    w.decline_if(f"len(body) + {JSON_GROWTH} * (text + len(eid)) > {MAX_BATCH_BYTES - bound}")
    w.emit(
        f"return new_tuple(BuiltEvent, (ck, body, eid, name, {spec.event_type!r}, eid, "
        f"None, batch, ts, {spec.mapping_key!r}, ()))"
    )
    return "\n".join(w.lines) + "\n"


def compile_fast(spec: FastSpec) -> FastBuild | None:
    """Generate and compile the build function for ``spec`` (``None``: see :func:`fast_source`)."""
    source = fast_source(spec)
    if source is None:
        return None
    namespace: dict[str, Any] = {
        "BuiltEvent": BuiltEvent,
        "batch": spec.batch,
        "dumps": orjson_dumps,
        # Builds the named tuple in C (its own __new__ is a Python function).
        "new_tuple": tuple.__new__,
    }
    where = f"<mparticle_dest fast build {spec.mapping_key or 'default'}>"
    exec(compile(source, where, "exec"), namespace)  # noqa: S102 - our own generated source
    build: FastBuild = namespace["build"]
    return build
