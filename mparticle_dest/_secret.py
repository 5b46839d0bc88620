"""``Secret``: a string that never shows itself in reprs, logs, errors or stats."""

from __future__ import annotations

import hmac

__all__ = ["Secret"]

MASK = "***"


class Secret:
    """Wrap a credential (the mParticle API secret) so it is never printed by accident.

    ``repr()``, ``str()`` and f-strings show ``Secret('***')``; only
    :meth:`get_secret_value` returns the value. Two secrets are equal when their
    values are (compared in constant time).

    Args:
        value: the secret string.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            # Name the type only: the value itself may be the secret in the wrong shape.
            raise TypeError(f"Secret expects a string, got {type(value).__name__}")
        self._value = value

    def get_secret_value(self) -> str:
        """Return the wrapped secret; keep the result out of logs and messages."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{MASK}')"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return format(repr(self), format_spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        # Pickling (e.g. to a worker process) keeps the value; only text forms mask it.
        return (Secret, (self._value,))
