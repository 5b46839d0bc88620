"""mParticle's per-event limits, enforced at push with a configurable policy.

| limit | mParticle | policy key (default) | ``LimitExceededError.limit`` |
|---|---|---|---|
| event / screen name length | 256 chars | ``event_name`` (truncate) | ``event_name_length`` |
| custom attributes per event | 100 | ``custom_attributes`` (reject) | ``custom_attributes_count`` |
| attribute value length | 4096 chars | ``attribute_value`` (reject) | ``attribute_value_length`` |
| user attributes per batch | 100 | ``user_attributes`` (reject) | ``user_attributes_count`` |
| one event's batch | 128 KB | always rejected | ``batch_bytes`` |

"truncate" keeps the first 256 characters of a name, the first 100 attributes in
their order, the first 4096 characters of a value; "reject" raises
:class:`~mparticle_dest.LimitExceededError` naming the event and the limit. Lengths
are counted in Unicode code points (Python ``len``).

Attribute values reach mParticle as scalars, so the value passes here also do that
conversion (one pass per dict): ``None`` is dropped; a dict or list becomes its
compact JSON string; strings, numbers and booleans are kept. User attribute lists
stay lists of strings (items converted the same way, ``None`` items dropped).
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

from .._exceptions import LimitExceededError
from .._mparticle import (
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_BATCH_BYTES,
    MAX_CUSTOM_ATTRIBUTES,
    MAX_EVENT_NAME_LENGTH,
    MAX_USER_ATTRIBUTES,
)
from .._wire import dumps_bytes

__all__ = ["LIMIT_POLICY_DEFAULTS", "LimitPolicyLike", "Limits", "check_batch_bytes"]

logger = logging.getLogger("mparticle_dest.limits")

#: Default action per limit when the config does not set ``settings.limits``.
LIMIT_POLICY_DEFAULTS: Final = {
    "event_name": "truncate",
    "custom_attributes": "reject",
    "attribute_value": "reject",
    "user_attributes": "reject",
}
_ACTIONS: Final = ("truncate", "reject")


class LimitPolicyLike(Protocol):
    """What :class:`Limits` reads from ``settings.limits`` (``_config.LimitPolicy``)."""

    @property
    def event_name(self) -> str: ...
    @property
    def custom_attributes(self) -> str: ...
    @property
    def attribute_value(self) -> str: ...
    @property
    def user_attributes(self) -> str: ...


def _text(value: Any) -> str:
    # bool first: it is an int subclass; JS-style spelling like the identities.
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is str:
        return value
    return dumps_bytes(value).decode()


class Limits:
    """The compiled limit policy of one destination; methods raise or cut in place."""

    __slots__ = ("_truncate_count", "_truncate_name", "_truncate_user_count", "_truncate_value")

    def __init__(self, policy: LimitPolicyLike | None = None) -> None:
        """Compile ``policy`` (``None`` = :data:`LIMIT_POLICY_DEFAULTS`).

        Raises:
            ValueError: for an action other than "truncate" or "reject".
        """
        actions = {
            key: getattr(policy, key) if policy is not None else default
            for key, default in LIMIT_POLICY_DEFAULTS.items()
        }
        for key, action in actions.items():
            if action not in _ACTIONS:
                raise ValueError(
                    f"settings.limits.{key}: expected truncate or reject, got {action!r}"
                )
        self._truncate_name = actions["event_name"] == "truncate"
        self._truncate_count = actions["custom_attributes"] == "truncate"
        self._truncate_value = actions["attribute_value"] == "truncate"
        self._truncate_user_count = actions["user_attributes"] == "truncate"

    def event_name(self, name: str, event_id: str, notes: list[str]) -> str:
        """Return ``name`` within 256 characters, or raise.

        Raises:
            LimitExceededError: ``event_name_length`` under the "reject" policy.
        """
        if len(name) <= MAX_EVENT_NAME_LENGTH:
            return name
        if self._truncate_name:
            notes.append("event_name_length")
            logger.debug("event %r: name truncated to %d chars", event_id, MAX_EVENT_NAME_LENGTH)
            return name[:MAX_EVENT_NAME_LENGTH]
        raise LimitExceededError(
            f"event {event_id!r} ({name[:60]!r}…): the name has {len(name)} characters; "
            f"mParticle allows at most {MAX_EVENT_NAME_LENGTH} "
            "(settings.limits.event_name = 'reject')",
            limit="event_name_length",
            field="name",
        )

    def custom_attributes(
        self, data: dict[str, Any], event_id: str, name: str, notes: list[str]
    ) -> dict[str, Any]:
        """Return the event's ``custom_attributes``: scalar values, within the limits.

        ``data`` itself is returned when it already complies (the mapping builds it fresh).

        Raises:
            LimitExceededError: ``attribute_value_length`` or ``custom_attributes_count``
                under the "reject" policy.
        """
        if len(data) <= MAX_CUSTOM_ATTRIBUTES:
            # The usual case, checked without building a new dict: scalars within limits.
            for value in data.values():
                cls = type(value)
                if cls is str:
                    if len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
                        break
                elif cls is not int and cls is not float and cls is not bool:
                    break
            else:
                return data
        out: dict[str, Any] = {}
        for key, value in data.items():
            if value is None:
                continue
            cls = type(value)
            if cls is dict or cls is list:
                value = dumps_bytes(value).decode()
                cls = str
            if cls is str and len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
                value = self._long_value(value, f"custom_attributes.{key}", event_id, name, notes)
            out[key] = value
        if len(out) > MAX_CUSTOM_ATTRIBUTES:
            out = self._too_many(
                out, self._truncate_count, "custom_attributes_count", "data", event_id, name, notes
            )
        return out

    def user_attributes(
        self, attributes: dict[str, Any], event_id: str, name: str, notes: list[str]
    ) -> dict[str, Any]:
        """Return the event's ``user_attributes``: scalars or lists of strings, within limits.

        Raises:
            LimitExceededError: ``attribute_value_length`` or ``user_attributes_count``
                under the "reject" policy.
        """
        out: dict[str, Any] = {}
        for key, value in attributes.items():
            if value is None:
                continue
            cls = type(value)
            if cls is list:
                value = [_text(item) for item in value if item is not None]
                for i, item in enumerate(value):
                    if len(item) > MAX_ATTRIBUTE_VALUE_LENGTH:
                        value[i] = self._long_value(
                            item, f"user_attributes.{key}[{i}]", event_id, name, notes
                        )
            else:
                if cls is dict:
                    value = dumps_bytes(value).decode()
                    cls = str
                if cls is str and len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
                    value = self._long_value(value, f"user_attributes.{key}", event_id, name, notes)
            out[key] = value
        if len(out) > MAX_USER_ATTRIBUTES:
            out = self._too_many(
                out,
                self._truncate_user_count,
                "user_attributes_count",
                "settings.userAttributes",
                event_id,
                name,
                notes,
            )
        return out

    def _long_value(
        self, value: str, where: str, event_id: str, name: str, notes: list[str]
    ) -> str:
        if self._truncate_value:
            if "attribute_value_length" not in notes:
                notes.append("attribute_value_length")
            logger.debug(
                "event %r: %s truncated to %d chars", event_id, where, MAX_ATTRIBUTE_VALUE_LENGTH
            )
            return value[:MAX_ATTRIBUTE_VALUE_LENGTH]
        raise LimitExceededError(
            f"event {event_id!r} ({name!r}): {where} has {len(value)} characters; mParticle "
            f"allows at most {MAX_ATTRIBUTE_VALUE_LENGTH} per attribute value "
            "(settings.limits.attribute_value = 'reject')",
            limit="attribute_value_length",
            field=where,
        )

    @staticmethod
    def _too_many(
        attributes: dict[str, Any],
        truncate: bool,
        limit: str,
        field: str,
        event_id: str,
        name: str,
        notes: list[str],
    ) -> dict[str, Any]:
        what = limit.removesuffix("_count")
        cap = MAX_CUSTOM_ATTRIBUTES if what == "custom_attributes" else MAX_USER_ATTRIBUTES
        if truncate:
            notes.append(limit)
            logger.debug("event %r: %s cut from %d to %d", event_id, what, len(attributes), cap)
            return dict(list(attributes.items())[:cap])
        raise LimitExceededError(
            f"event {event_id!r} ({name!r}): {len(attributes)} {what}; mParticle allows at "
            f"most {cap} (settings.limits.{what} = 'reject')",
            limit=limit,
            field=field,
        )


def check_batch_bytes(size: int, event_id: str, name: str) -> None:
    """Reject an event whose batch alone (this event, its identities and attributes) is too big.

    Raises:
        LimitExceededError: ``batch_bytes``, always (no truncation would be meaningful).
    """
    if size > MAX_BATCH_BYTES:
        raise LimitExceededError(
            f"event {event_id!r} ({name!r}): a batch holding only this event is {size} bytes; "
            f"mParticle accepts at most {MAX_BATCH_BYTES} bytes (128 KB) per batch",
            limit="batch_bytes",
        )
