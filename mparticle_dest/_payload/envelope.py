"""The batch-level part of one event: what goes into its :class:`~mparticle_dest._wire.BatchKey`.

Identities, ``ip``, ``source_request_id``, ``user_attributes``, ``mpid``,
``device_info`` and ``application_info`` are resolved per event; events whose values
are equal share a batch. A mapped ``device_info`` or ``application_info`` must be an
object with the fields and types of mParticle's schema (``None`` fields dropped), and
an ``mpid`` a 64-bit integer: mParticle refuses a whole batch (400) for one bad value,
so the event is refused at push instead. The event's own text was checked before;
what the mapping made of it (a callable's result, a constant) is checked here for
lone surrogates, which cannot be encoded.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .._event import surrogate_path, text_ok
from .._exceptions import InvalidEventError
from .._wire import IdentityValue, encode_json, user_attributes_fragment
from ..mapping import MappingContext
from .coerce import identity_value, mpid_value, string_value
from .limits import Limits
from .plan import Plan, ValueFn

__all__ = ["Envelope", "not_unicode", "resolve_envelope"]

# Builds an Envelope in C (the named tuple's own __new__ is a Python function).
_new_tuple = tuple.__new__


class Envelope(NamedTuple):
    """One event's resolved batch-level values.

    Attributes:
        identities: ``((identity_type, value), ...)`` in wire order.
        text: characters of the batch-level strings (for the builder's size bound).
        ip, source_request_id: the mapped values, or ``None``.
        user_attributes: the merged user attributes (limits applied), or ``None``.
        user_attributes_fragment: their envelope bytes (``b""`` without them).
        mpid: the mapped mParticle id, or ``None``.
        device_info, application_info: their JSON texts, or ``None``.
    """

    identities: tuple[tuple[str, IdentityValue], ...]
    text: int
    ip: str | None = None
    source_request_id: str | None = None
    user_attributes: dict[str, Any] | None = None
    user_attributes_fragment: bytes = b""
    mpid: int | None = None
    device_info: str | None = None
    application_info: str | None = None


def resolve_envelope(
    plan: Plan,
    event: Any,
    ctx: MappingContext,
    limits: Limits,
    where: tuple[str, str],
    notes: list[str],
) -> Envelope:
    """Resolve the batch-level values of the mapped ``event`` (``where``: its id and name).

    Raises:
        InvalidEventError: a mapped ``mpid``, ``deviceInfo`` or ``applicationInfo``
            that mParticle would refuse.
        LimitExceededError: too many user attributes under the "reject" policy.
    """
    pairs: list[tuple[str, IdentityValue]] = []
    text = 0
    for identity_type, fn in plan.identities:
        value = fn(event, ctx)
        if type(value) is not str:
            value = identity_value(value)
        if type(value) is str:
            if value:
                if not (value.isascii() or text_ok(value)):
                    raise not_unicode(where, (f"user_identities.{identity_type}", value))
                pairs.append((identity_type, value))
                text += len(value)
        elif value is not None:
            pairs.append((identity_type, value))
            text += 24
    if not plan.batch_level:
        return _new_tuple(Envelope, (tuple(pairs), text, None, None, None, b"", None, None, None))
    ip = sri = None
    if plan.ip is not None:
        ip = string_value(plan.ip(event, ctx))
        if ip is not None and not (ip.isascii() or text_ok(ip)):
            raise not_unicode(where, ("ip", ip))
    if plan.source_request_id is not None:
        sri = string_value(plan.source_request_id(event, ctx))
        if sri is not None and not (sri.isascii() or text_ok(sri)):
            raise not_unicode(where, ("source_request_id", sri))
    user_attributes = None
    fragment = b""
    if plan.user_attributes:
        merged: dict[str, Any] = {}
        for fn in plan.user_attributes:
            value = fn(event, ctx)
            if isinstance(value, dict):
                merged.update(value)
        if merged:
            try:
                user_attributes = limits.user_attributes(merged, where[0], where[1], notes) or None
                fragment = user_attributes_fragment(user_attributes)
            except UnicodeEncodeError:
                raise not_unicode(where, ("user_attributes", merged)) from None
    mpid = device = application = None
    if plan.sdk_fields:
        if plan.mpid:
            mpid = _mpid(plan.mpid, event, ctx, where)
        if plan.device_info:
            device = _object(plan.device_info, event, ctx, "device_info", where)
        if plan.application_info:
            application = _object(plan.application_info, event, ctx, "application_info", where)
    return _new_tuple(
        Envelope,
        (tuple(pairs), text, ip, sri, user_attributes, fragment, mpid, device, application),
    )


def _refuse(where: tuple[str, str], what: str, detail: str, field: str) -> InvalidEventError:
    event_id, name = where
    return InvalidEventError(
        f"event {event_id!r} ({name!r}): mParticle would reject the mapped {what}: {detail}",
        field=field,
    )


def _mpid(
    fns: tuple[ValueFn, ...], event: Any, ctx: MappingContext, where: tuple[str, str]
) -> int | None:
    for fn in fns:
        value = fn(event, ctx)
        if value is not None:
            try:
                return mpid_value(value)
            except ValueError as exc:
                raise _refuse(where, "mpid", str(exc), "mpid") from None
    return None


def _object(
    fns: tuple[ValueFn, ...],
    event: Any,
    ctx: MappingContext,
    field: str,
    where: tuple[str, str],
) -> str | None:
    """The merged ``device_info``/``application_info``, checked, as JSON text in the
    official schema's field order (so that equal objects give equal batch keys)."""
    merged: dict[str, Any] = {}
    for fn in fns:
        value = fn(event, ctx)
        if value is None:
            continue
        if type(value) is not dict:
            raise _refuse(where, field, f"expected an object, got {type(value).__name__}", field)
        merged.update(value)
    found = {key: value for key, value in merged.items() if value is not None}
    if not found:
        return None
    from .._mparticle import ApplicationInformation, DeviceInformation, check_model

    model = DeviceInformation if field == "device_info" else ApplicationInformation
    order = model.wire_order()
    problems = check_model(model, found, path=field)
    if problems:
        raise _refuse(where, field, "; ".join(problems), problems[0].split(":", 1)[0])
    try:
        return encode_json({key: found[key] for key in order if key in found}).decode()
    except UnicodeEncodeError:
        raise not_unicode(where, (field, found)) from None


def not_unicode(where: tuple[str, str], *found: tuple[str, Any]) -> InvalidEventError:
    """The error for mapped output holding a lone surrogate, naming its mParticle field.

    ``found`` lists ``(path prefix, value)`` pairs to search, in order.
    """
    event_id, name = where
    field = next((p for prefix, v in found if (p := surrogate_path(v, prefix))), None)
    return InvalidEventError(
        f"event {event_id!r} ({name!r}): the mapping produced {field or 'a value'} with a lone"
        " surrogate, which is not valid Unicode and cannot be encoded as UTF-8",
        field=field,
    )
