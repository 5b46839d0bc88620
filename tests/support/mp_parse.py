"""Parse mParticle JSON into the typed models of ``mparticle_dest._mparticle.models``.

Only the tests parse batches back into objects (to compare them field by field), so
this lives here rather than in the package.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

import cattrs

from mparticle_dest._mparticle import models
from mparticle_dest._mparticle.model_checks import value_check

__all__ = ["parse_batch", "parse_event"]

_converter = cattrs.Converter(forbid_extra_keys=True)


def _structure_event(obj: Any, _: Any) -> Any:
    if not isinstance(obj, Mapping) or set(obj) - {"event_type", "data"}:
        raise ValueError(f"an event is {{'event_type', 'data'}}, got {obj!r}")
    cls = models.event_class(obj.get("event_type"))
    return _converter.structure(obj.get("data", {}), cls)


def _structure(obj: Any, cls: Any) -> Any:
    try:
        return _converter.structure(obj, cls)
    except cattrs.BaseValidationError as exc:
        raise ValueError("; ".join(cattrs.transform_error(exc, path="$"))) from None


def _is_plain(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return True
    if origin in (list, dict, Union, types.UnionType):
        return all(_is_plain(a) for a in typing.get_args(tp))
    return tp in (str, int, float, bool, type(None))


def _is_value_union(tp: Any) -> bool:
    # unions of plain JSON values (str | int | float, Scalar | list[str], ...): cattrs
    # has no hook for them, and the checker below already knows how to validate them.
    return typing.get_origin(tp) in (Union, types.UnionType) and _is_plain(tp)


def _structure_value_union(obj: Any, tp: Any) -> Any:
    problems: list[str] = []
    value_check(tp)(obj, "value", problems)
    if problems:
        raise ValueError("; ".join(problems))
    return obj


_converter.register_structure_hook(models.Event, _structure_event)
_converter.register_structure_hook_func(_is_value_union, _structure_value_union)


def parse_event(obj: Mapping[str, Any]) -> models.Event:
    """Parse ``{"event_type": ..., "data": {...}}`` into its typed event.

    Raises:
        ValueError: when the object does not fit the model (every problem listed).
    """
    return _structure(obj, models.Event)


def parse_batch(obj: Mapping[str, Any]) -> models.Batch:
    """Parse a batch dict (e.g. ``json.loads`` of a body) into a :class:`Batch`.

    Raises:
        ValueError: when the object does not fit the model (every problem listed).
    """
    return _structure(obj, models.Batch)
