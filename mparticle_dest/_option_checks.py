"""attrs converters and validators shared by the numeric delivery options.

``bool`` is an ``int`` subclass, so ``instance_of(int)`` and ``float()`` would take
``True`` for 1: a flag passed where a number belongs is a mistake, and every numeric
option refuses it the same way (``TypeError`` naming the option).
"""

from __future__ import annotations

from typing import Any

__all__ = ["not_bool", "number"]


def number(value: Any) -> Any:
    """Converter: ``float(value)``, except that a bool is kept for :func:`not_bool` to refuse."""
    return value if isinstance(value, bool) else float(value)


def not_bool(_inst: object, attribute: Any, value: Any) -> None:
    """Validator: refuse ``True``/``False`` for a numeric option."""
    if isinstance(value, bool):
        name = getattr(attribute, "name", "value")
        raise TypeError(f"{name} must be a number, got bool ({value!r})")
