"""Generated build functions: the push path of a plain rule, in one straight-line function.

Most rules only rename the event and map plain paths into ``custom_attributes``, and
most settings map identities from plain paths (``_mapping_plain``). For such a rule
(and a destination without ``ip``, ``sourceRequestId`` or ``userAttributes``),
``EventBuilder`` generates, once, a Python function that does what its general build
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
                    ids.append(('customer_id', v))
                    text += len(v)
            ...
        return new_tuple(BuiltEvent, (key, body, eid, name, 'custom_event', eid, ...))

The function returns the :class:`~mparticle_dest._payload.BuiltEvent` the general
path would return, or ``None`` to hand the event to the general path, which then
builds it from scratch: whenever a required consent is not granted by a ``True``
flag (the general path skips the event), a container on a path is not a plain ``dict``, a
value is not a plain scalar (a list, a dict, NaN, an enum, a bool or float identity,
a custom attribute string over 4,096 characters), the name is over 256 characters,
the timestamp is not a non-zero int, the id not a non-empty string, or the event may
come near the 128 KB batch limit. So every limit, error, truncation note and
coercion stays in one place, the general path. :func:`fast_source` shows the source.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, NamedTuple

from .._config import BatchOptions
from .._event import text_ok
from .._mparticle import (
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_BATCH_BYTES,
    MAX_CUSTOM_ATTRIBUTES,
    MAX_EVENT_NAME_LENGTH,
)
from .._wire import BatchKey, encode_json
from ..mapping._plain import PlainMap, PlainValue

__all__ = ["FastBuild", "FastSpec", "compile_fast", "fast_source"]

#: ``build(prepared_event) -> BuiltEvent | None`` (``None``: use the general path).
FastBuild = Callable[[dict[str, Any]], Any]

# Worst-case JSON growth of a string (as _payload): a control character becomes "\u00XX".
_JSON_GROWTH: Final = 6


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


def _eligible(spec: FastSpec) -> bool:
    """Whether a generated function can reproduce the general path for this spec."""
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
    return all(type(t) is str for t, _ in spec.identities)


def _valid_text(value: object) -> bool:
    """Whether ``value`` is no string or a string without a lone surrogate."""
    return type(value) is not str or value.isascii() or text_ok(value)


class _Writer:
    """Builds the source of one function, line by line."""

    def __init__(self) -> None:
        self.lines = ["def build(ev):"]
        self.parents: dict[tuple[str, ...], str] = {}

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

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
            self.emit(f"if {local} is not None and type({local}) is not dict:")
            self.emit("return None", 2)
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
            self.emit("if v is None:")
            self.emit(f"v = {default!r}", 2)


def fast_source(spec: FastSpec) -> str | None:
    """The source of the build function for ``spec``, or ``None`` when not eligible."""
    if not _eligible(spec):
        return None
    w = _Writer()
    w.emit("if type(ev) is not dict:")
    w.emit("return None", 2)
    if spec.consent_required:
        # Granted when a required group is exactly True; other events (skipped, or
        # with truthy non-boolean flags) are the general path's.
        w.emit("c = ev.get('consent')")
        w.emit("if type(c) is not dict:")
        w.emit("return None", 2)
        for groups in spec.consent_required:
            test = " or ".join(f"c.get({group!r}) is True" for group in groups)
            w.emit(f"if not ({test}):")
            w.emit("return None", 2)
    # Parents first, so every later line is a lookup in a local dict.
    values = [value for _, value in spec.identities]
    values.extend(value for _, value in spec.attributes or ())
    for keys, _ in values:
        if keys is not None:
            w.parent(keys[:-1])

    # Identities: strings (non-empty) and ints; "" and missing values are dropped.
    w.emit("ids = []")
    w.emit("text = 0")
    for identity_type, plain in spec.identities:
        w.value(plain)
        w.emit("if v is not None:")
        w.emit("if type(v) is str:", 2)
        w.emit("if v:", 3)
        w.emit(f"ids.append(({identity_type!r}, v))", 4)
        w.emit("text += len(v)", 4)
        w.emit("elif type(v) is int:", 2)
        w.emit(f"ids.append(({identity_type!r}, v))", 3)
        w.emit("text += 24", 3)
        w.emit("else:", 2)
        w.emit("return None", 3)

    # Custom attributes: plain scalars within the value length; missing ones omitted.
    if spec.attributes is not None:
        w.emit("ca = {}")
        for out_key, plain in spec.attributes:
            w.value(plain)
            w.emit("if v is not None:")
            w.emit("c = type(v)", 2)
            w.emit("if c is str:", 2)
            w.emit(f"if len(v) > {MAX_ATTRIBUTE_VALUE_LENGTH}:", 3)
            w.emit("return None", 4)
            w.emit("elif c is not int and c is not bool and (c is not float or v - v != 0.0):", 2)
            w.emit("return None", 3)
            w.emit(f"ca[{out_key!r}] = v", 2)

    if spec.rule_name is not None:
        w.emit(f"name = {spec.rule_name!r}")
    else:
        w.emit("name = ev.get('name')")
        w.emit(f"if type(name) is not str or len(name) > {MAX_EVENT_NAME_LENGTH}:")
        w.emit("return None", 2)
    w.emit("ts = ev.get('timestamp')")
    w.emit("if type(ts) is not int or not ts:")
    w.emit("return None", 2)
    w.emit("eid = ev.get('id')")
    w.emit("if type(eid) is not str or not eid:")
    w.emit("return None", 2)
    if spec.event_type == "custom_event":
        w.emit(f"data = {{'event_name': name, 'custom_event_type': {spec.custom_event_type!r}}}")
    else:
        w.emit("data = {'screen_name': name}")
    if spec.attributes is not None:
        w.emit("if ca:")
        w.emit("data['custom_attributes'] = ca", 2)
    w.emit("data['timestamp_unixtime_ms'] = ts")
    w.emit("data['source_message_id'] = eid")
    w.emit(f"body = {spec.prefix!r} + encode_json(data) + b'}}'")
    # Near 128 KB the general path computes the exact size (and may refuse the event).
    bound = spec.envelope_bound
    w.emit(f"if len(body) + {_JSON_GROWTH} * (text + len(eid)) > {MAX_BATCH_BYTES - bound}:")
    w.emit("return None", 2)
    w.emit(
        f"key = new_tuple(BatchKey, ({spec.environment!r}, tuple(ids), None, "
        f"{spec.consent!r}, None))"
    )
    w.emit(
        f"return new_tuple(BuiltEvent, (key, body, eid, name, {spec.event_type!r}, eid, "
        f"None, batch, ts, {spec.mapping_key!r}, ()))"
    )
    return "\n".join(w.lines) + "\n"


def compile_fast(spec: FastSpec, built_type: type) -> FastBuild | None:
    """Generate and compile the build function for ``spec`` (``None``: not eligible).

    Args:
        spec: what the function depends on.
        built_type: the ``BuiltEvent`` class it returns.
    """
    source = fast_source(spec)
    if source is None:
        return None
    namespace: dict[str, Any] = {
        "BatchKey": BatchKey,
        "BuiltEvent": built_type,
        "batch": spec.batch,
        "encode_json": encode_json,
        # Builds the named tuples in C (their own __new__ is a Python function).
        "new_tuple": tuple.__new__,
    }
    where = f"<mparticle_dest fast build {spec.mapping_key or 'default'}>"
    exec(compile(source, where, "exec"), namespace)  # noqa: S102 - our own generated source
    build: FastBuild = namespace["build"]
    return build
