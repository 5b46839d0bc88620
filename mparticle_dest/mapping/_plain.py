"""Plain value mappings: the simple forms a fast path can read without the compiled closures.

Most configs map values with plain dot paths (``"user.id"``) and constants
(``{"value": "web"}``). :func:`plain_value` recognises these forms in a spec and
describes each as a :data:`PlainValue`; :func:`plain_map` does the same for a
``{"map": {out_key: value_mapping}}`` whose every entry is plain. Anything else
(callables, consent, fallback lists, ``loop``/``set``, ``*`` paths, the empty path,
non-scalar constants) is not plain: ``None``.

A plain value resolves exactly like its compiled closure whenever every container on
its path is a plain ``dict`` (``None`` = missing) and the value found is a plain
scalar: the value, else the default when the value is missing. A fast path that
meets anything else falls back to the compiled mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._paths import split_path

__all__ = ["PlainMap", "PlainValue", "plain_map", "plain_value"]

PlainValue = tuple["tuple[str, ...] | None", Any]
"""``(keys, default)``: the dict keys of the path (``None``: no path, the default alone)
and the static default (a str, int, bool or finite float; ``None`` for none)."""

PlainMap = tuple[tuple[str, PlainValue], ...]
"""The entries of a plain ``map``: ``((out_key, plain_value), ...)`` in config order."""


def _plain_keys(path: Any) -> tuple[str, ...] | None:
    """The keys of a non-empty dot path without ``*`` segments, else ``None``."""
    if type(path) is not str or not path:
        return None
    keys = tuple(key for key, _ in split_path(path))
    return None if "*" in keys else keys


def _plain_static(value: Any) -> bool:
    # Exact types: subclasses (enums) are converted by the general path.
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    return kind is float and value - value == 0.0


def plain_value(spec: Any) -> PlainValue | None:
    """Describe a plain value mapping, or return ``None`` when ``spec`` is not plain.

    Plain forms: a dot path ``"a.b"``, ``{"key": "a.b"}``, ``{"value": scalar}`` and
    ``{"key": "a.b", "value": scalar}`` (no ``*`` segment, a non-empty path).
    """
    if type(spec) is str:
        keys = _plain_keys(spec)
        return None if keys is None else (keys, None)
    if not isinstance(spec, Mapping) or not spec or not set(spec) <= {"key", "value"}:
        return None
    static = spec.get("value")
    if not _plain_static(static):
        return None
    if "key" not in spec:
        return None if "value" not in spec else (None, static)
    keys = _plain_keys(spec["key"])
    return None if keys is None else (keys, static)


def plain_map(spec: Any) -> PlainMap | None:
    """Describe ``{"map": {out_key: plain value mapping, ...}}``, else ``None``."""
    if not isinstance(spec, Mapping) or set(spec) != {"map"}:
        return None
    body = spec["map"]
    if not isinstance(body, Mapping):
        return None
    entries = []
    for out_key, sub in body.items():
        value = plain_value(sub)
        if type(out_key) is not str or value is None:
            return None
        entries.append((out_key, value))
    return tuple(entries)
