"""From a walkerOS event to mParticle event bytes and a batch key.

:class:`EventBuilder` takes the value mappings compiled into plans (``plan``)
once; ``build`` then runs on the caller's task for every push: normalize → mapping →
the batch-level values (``envelope``) → the mParticle event dict (built directly in
wire key order) → mParticle's per-event limits → encode once. The result,
:class:`BuiltEvent`, holds the event's compact JSON and the :class:`BatchKey` that
decides which batch it joins; batches are later assembled from the stored bytes by
``_wire.encode_batch``.

Events whose rule (or lack of one) is plain first go through a build function
generated for that rule (``fast``; the contract is ``fast.fast_spec``); it hands
anything unusual back to the general build here, so both always give the same result.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from .._config import DestinationConfig
from .._event import prepare_decoded_event, prepare_event
from .._exceptions import InvalidEventError
from .._mparticle import MAX_BATCH_BYTES, MAX_EVENT_NAME_LENGTH
from .._wire import (
    JSON_GROWTH,
    BatchKey,
    batch_size,
    compact_key,
    dumps_bytes,
    encode_json,
)
from ..mapping._rules import Resolved
from .built import BuiltEvent, Skipped
from .envelope import Envelope, not_unicode, resolve_envelope
from .fast import FastBuild, compile_fast, fast_spec
from .limits import Limits, check_batch_bytes
from .plan import Plan, compile_plans

__all__ = ["BatchKey", "BuiltEvent", "EventBuilder", "Skipped"]

# Builds a BatchKey in C (the named tuple's own __new__ is a Python function).
_new_tuple: Final = tuple.__new__
# Event names whose build function is remembered (as the mapping's rule lists).
_MAX_NAMES: Final = 4096
_UNKNOWN: Final[Any] = object()
# Envelope bytes besides the batch-level strings: keys, punctuation, environment, and
# identity type names (at most 22 of them).
_ENVELOPE_BYTES: Final = 1024


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EventBuilder:
    """Turns walkerOS events into mParticle event bytes and batch keys.

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
        "_limits",
        "_mapping",
        "_plans",
        "_prepare",
        "_resolve",
        "_rules",
        "config",
    )

    def __init__(self, config: DestinationConfig, *, decoded: bool = False) -> None:
        """Compile ``config``'s value mappings; prefer :meth:`from_config`, which also
        accepts a dict. (The config checked them when it was built.)

        ``decoded``: every event comes straight from ``orjson.loads`` (the Redis
        relay's entries), validated by ``prepare_decoded_event``.
        """
        self.config = config
        self._prepare = prepare_decoded_event if decoded else prepare_event
        settings = config.settings
        self._environment: str = settings.environment
        consent = settings.consent
        self._consent: str | None = dumps_bytes(consent).decode() if consent else None
        self._envelope_bound = _ENVELOPE_BYTES + (
            len(self._consent.encode()) if self._consent else 0
        )
        self._limits = Limits(settings.limits)
        self._mapping = config.compiled_mapping
        self._resolve = self._mapping.resolve
        self._default, self._plans, self._rules = compile_plans(config)
        # Generated build functions (fast) per event name and per compiled rule.
        self._fast: dict[str, FastBuild | None] = {}
        self._fast_rules: dict[int, FastBuild | None] = {}

    @classmethod
    def from_config(
        cls, config: DestinationConfig | Mapping[str, Any], *, decoded: bool = False
    ) -> EventBuilder:
        """Build from a :class:`DestinationConfig` or a walkerOS-shaped config dict.

        Raises:
            ConfigError: the config is invalid (every problem listed with its key path).
        """
        return cls(DestinationConfig.coerce(config), decoded=decoded)

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
        ev = self._prepare(event)
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

        There is one when :func:`~.fast.fast_spec` says so (the fast path's contract).
        """
        fast = None
        match = self._mapping.plain_match(name) if type(name) is str else None
        if match is not None:
            cache_key = id(match.rule)  # the compiled rules live as long as the mapping
            if cache_key in self._fast_rules:
                fast = self._fast_rules[cache_key]
            else:
                rule = match.rule
                plan = self._default if rule is None else self._plan_of(rule.rule)
                spec = fast_spec(
                    match,
                    plan,
                    environment=self._environment,
                    consent=self._consent,
                    envelope_bound=self._envelope_bound,
                )
                fast = None if spec is None else compile_fast(spec)
                self._fast_rules[cache_key] = fast
        if len(self._fast) < _MAX_NAMES:
            self._fast[name] = fast
        return fast

    def _plan_of(self, rule: Any) -> Plan:
        return self._default if rule is None else self._plans.get(id(rule), self._default)

    def _build(self, ev: dict[str, Any]) -> BuiltEvent | Skipped:
        """The general build of a prepared event (every setting, limit and check)."""
        resolved = self._resolve(ev)
        mev = resolved.event
        event_id: str = mev.get("id") or ev["id"]
        rule = resolved.rule
        plan = self._default if rule is None else self._plans.get(id(rule), self._default)
        name = plan.name or mev.get("name")
        if type(name) is not str:
            raise InvalidEventError(
                f"event {event_id!r}: name {name!r} is not a string", field="name"
            )
        if resolved.skipped or resolved.ignore or resolved.silent:
            reason = resolved.skipped or ("ignore" if resolved.ignore else "silent")
            return Skipped(reason, event_id, name, resolved.mapping_key or None)
        notes: list[str] = []
        envelope = resolve_envelope(
            plan, mev, resolved.context, self._limits, (event_id, name), notes
        )
        data: dict[str, Any] = {}
        try:
            data = self._event_data(plan, resolved, event_id, name, notes)
            # Mapped values are JSON by construction (the mapping drops anything else),
            # but a callable or constant may hold a lone surrogate.
            body = plan.prefix + encode_json(data) + b"}"
        except UnicodeEncodeError:
            found = (("", data), ("custom_attributes", resolved.data))
            raise not_unicode((event_id, name), *found) from None
        return self._built(plan, envelope, body, data, event_id, name, resolved, notes)

    def _event_data(
        self, plan: Plan, resolved: Resolved, event_id: str, name: str, notes: list[str]
    ) -> dict[str, Any]:
        """The event's ``data`` in wire key order, mParticle's per-event limits applied."""
        mev, ctx, limits = resolved.event, resolved.context, self._limits
        event_type = plan.event_type
        if event_type == "custom_event":
            data: dict[str, Any] = {
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
        raw = resolved.data
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
            self._check(plan, data, event_id, name, notes, resolved.mapping_key)
        return data

    def _built(
        self,
        plan: Plan,
        envelope: Envelope,
        body: bytes,
        data: dict[str, Any],
        event_id: str,
        name: str,
        resolved: Resolved,
        notes: list[str],
    ) -> BuiltEvent:
        """The batch key and the :class:`BuiltEvent`, refusing an event over 128 KB alone."""
        key = _new_tuple(
            BatchKey,
            (
                self._environment,
                envelope.identities,
                envelope.ip,
                self._consent,
                envelope.source_request_id,
                envelope.mpid,
                envelope.device_info,
                envelope.application_info,
                plan.batch_context,
            ),
        )
        source_request_id = envelope.source_request_id or event_id
        # A cheap upper bound of this event's lone batch; the exact size (which needs
        # the key's envelope encoded) only when the bound comes near 128 KB.
        ip = envelope.ip
        bound = (
            len(body)
            + self._envelope_bound
            + JSON_GROWTH * (envelope.text + len(source_request_id) + (len(ip) if ip else 0))
        )
        if plan.sdk_fields:
            bound += _encoded_length(envelope, plan)
        ua_size = len(envelope.user_attributes_fragment)
        bound += ua_size
        if bound > MAX_BATCH_BYTES:
            size = batch_size(key, len(body), 1, ua_size, source_request_id)
            check_batch_bytes(size, event_id, name)
        return _new_tuple(
            BuiltEvent,
            (
                compact_key(key),
                body,
                event_id,
                name,
                plan.event_type,
                source_request_id,
                envelope.user_attributes,
                plan.batch,
                data["timestamp_unixtime_ms"],
                resolved.mapping_key or None,
                tuple(notes) if notes else (),
            ),
        )

    def _check(
        self,
        plan: Plan,
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
        from .._mparticle import check_data  # the models load on first use

        problems = check_data(plan.event_type, data)
        if problems:
            where = f"mapping {mapping_key!r}" if mapping_key else "the mapping"
            raise InvalidEventError(
                f"event {event_id!r} ({name!r}): {where} produced a {plan.event_type} "
                "that mParticle would reject: " + "; ".join(problems),
                field=problems[0].split(":", 1)[0],
            )


def _encoded_length(envelope: Envelope, plan: Plan) -> int:
    """Bytes of the batch-level objects already encoded as JSON text (and their keys)."""
    size = 64 if envelope.mpid is not None else 0  # ,"mpid": and 20 digits
    for text in (envelope.device_info, envelope.application_info, plan.batch_context):
        if text is not None:
            size += 24 + len(text.encode())
    return size
