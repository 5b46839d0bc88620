"""walkerOS value coercions of the batch-level fields (identities, ``ip``, ``sourceRequestId``)."""

from __future__ import annotations

import math
from typing import Any

from .._wire import IdentityValue

__all__ = ["identity_value", "string_value"]


def identity_value(value: Any) -> IdentityValue | None:
    """walkerOS identity coercion: strings and numbers stay, booleans become text.

    Empty strings, ``None``, non-finite numbers and non-scalars are dropped. An
    integral float becomes an int: the same JSON text ``JSON.stringify`` writes, and
    one key for ``1`` and ``1.0``.
    """
    cls = type(value)
    if cls is str:
        return value or None
    if cls is int:
        return value  # type: ignore[no-any-return]
    if cls is bool:
        return "true" if value else "false"
    if cls is float:
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return str(value) or None
    return None


def string_value(value: Any) -> str | None:
    """walkerOS ``toStringValue``: strings stay, numbers and booleans become their text."""
    cls = type(value)
    if cls is str:
        return value or None
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return str(value)
    if cls is float:
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return str(value) or None
    return None
