"""Value coercions of the batch-level fields (identities, ``ip``, ``sourceRequestId``, ``mpid``)."""

from __future__ import annotations

import math
import re
from typing import Any, Final

from .._wire import IdentityValue

__all__ = ["identity_value", "mpid_value", "string_value"]

_INT64: Final = 2**63
_INTEGER_TEXT: Final = re.compile(r"-?[0-9]{1,19}")
# A float beyond this may already have lost digits of the id it carried.
_EXACT_FLOAT: Final = 2**53


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


def mpid_value(value: Any) -> int | None:
    """An ``mpid`` as mParticle takes it: a 64-bit integer (``None``: not set).

    Integers, integral floats below 2**53 and decimal strings (the form JavaScript
    keeps MPIDs in) are accepted; ``None`` and ``""`` mean not set.

    Raises:
        ValueError: for anything else (a bool, a fraction, a non-numeric string, an
            integer outside the signed 64-bit range).
    """
    cls = type(value)
    number: Any = value
    if value is None or value == "":
        return None
    if cls is str and _INTEGER_TEXT.fullmatch(value):
        number = int(value)
    elif cls is float and value.is_integer() and abs(value) < _EXACT_FLOAT:
        number = int(value)
    if type(number) is not int or not -_INT64 <= number < _INT64:
        kind = "an integer outside the signed 64-bit range" if type(number) is int else repr(value)
        raise ValueError(f"expected a 64-bit integer, got {kind}")
    return number
