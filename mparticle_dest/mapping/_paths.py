"""Dot paths of the mapping language: compiled getters, copy-on-write setters, deletion.

A path such as ``"nested.0.data.id"`` is split once into segments; each segment keeps
its text and, when it is a canonical list index (``"0"``, ``"12"``, never ``"01"`` or
``"-1"``, as JavaScript property keys behave), the index. A getter is a closure with
fast paths for one and two segments; a ``*`` segment is handled by a separate closure
that maps the rest of the path over every element of a list.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "Getter",
    "Segment",
    "compile_getter",
    "delete_path",
    "set_path",
    "split_path",
    "step",
]

logger = logging.getLogger("mparticle_dest.mapping")

#: One path segment: its text and, for a canonical decimal index, that index.
Segment = tuple[str, "int | None"]
#: ``getter(obj, default)``: the value at the path, or ``default`` when it is missing.
Getter = Callable[[Any, Any], Any]


def _index_of(text: str) -> int | None:
    if text.isdigit() and text.isascii() and (text == "0" or text[0] != "0"):
        return int(text)
    return None


def split_path(path: str) -> tuple[Segment, ...]:
    """Split a dot path into segments (``"a.0"`` → ``(("a", None), ("0", 0))``)."""
    return tuple((part, _index_of(part)) for part in path.split("."))


def step(obj: Any, key: str, index: int | None) -> Any:
    """Read one segment from ``obj``; ``None`` when it is missing or not a container."""
    if isinstance(obj, Mapping):
        return obj.get(key)
    if isinstance(obj, (list, tuple)):
        if index is not None and index < len(obj):
            return obj[index]
    return None


def _walk(obj: Any, segments: tuple[Segment, ...]) -> Any:
    for key, index in segments:
        if type(obj) is dict:
            obj = obj.get(key)
        else:
            obj = step(obj, key, index)
        if obj is None:
            return None
    return obj


def _getter_1(key: str, index: int | None) -> Getter:
    def get(obj: Any, default: Any) -> Any:
        value = obj.get(key) if type(obj) is dict else step(obj, key, index)
        return default if value is None else value

    return get


def _getter_2(first: Segment, second: Segment) -> Getter:
    key1, index1 = first
    key2, index2 = second

    def get(obj: Any, default: Any) -> Any:
        value = obj.get(key1) if type(obj) is dict else step(obj, key1, index1)
        if value is None:
            return default
        value = value.get(key2) if type(value) is dict else step(value, key2, index2)
        return default if value is None else value

    return get


def _getter_n(segments: tuple[Segment, ...]) -> Getter:
    def get(obj: Any, default: Any) -> Any:
        value = _walk(obj, segments)
        return default if value is None else value

    return get


def _getter_wildcard(prefix: tuple[Segment, ...], rest: tuple[Segment, ...]) -> Getter:
    # walkerOS only expands ``*`` over a list; on anything else the segment is the
    # plain key "*" and the walk goes on with the rest of the path.
    rest_getter: Getter | None = compile_getter(rest) if rest else None

    def get(obj: Any, default: Any) -> Any:
        base = _walk(obj, prefix) if prefix else obj
        if isinstance(base, (list, tuple)):
            if rest_getter is None:
                return [default if item is None else item for item in base]
            return [rest_getter(item, default) for item in base]
        value = step(base, "*", None)
        if value is None:
            return default
        if rest_getter is None:
            return value
        return rest_getter(value, default)

    return get


def compile_getter(segments: tuple[Segment, ...]) -> Getter:
    """Build the specialised getter for a split path."""
    for position, (key, _) in enumerate(segments):
        if key == "*":
            return _getter_wildcard(segments[:position], segments[position + 1 :])
    if len(segments) == 1:
        return _getter_1(*segments[0])
    if len(segments) == 2:
        return _getter_2(segments[0], segments[1])
    return _getter_n(segments)


def set_path(
    root: dict[str, Any], segments: tuple[Segment, ...], value: Any, owned: set[int]
) -> None:
    """Write ``value`` at the path inside ``root``, copying containers on the way.

    ``root`` must already be owned by the caller. Every container on the written path
    that is not in ``owned`` (ids of containers created or copied during this event)
    is shallow-copied first, so the caller's event and its nested dicts are never
    touched. ``None`` removes a dict key instead (a list element becomes ``None``), and
    creates nothing on a missing path.
    A segment that does not fit (a non-index on a list, or an index past its end) is
    skipped with a warning: the event goes on unchanged.
    """
    current: Any = root
    last = len(segments) - 1
    for position, (key, index) in enumerate(segments):
        if type(current) is dict:
            slot: Any = key
            child: Any = current.get(key)
        elif index is not None and index < len(current):
            slot = index
            child = current[index]
        else:
            logger.warning(
                "policy path %s: segment %r does not address the list; write skipped",
                ".".join(k for k, _ in segments),
                key,
            )
            return
        if position == last:
            if value is not None or type(current) is list:
                # An undefined list element stays in place as None (JSON null), so
                # the indices of its siblings do not move.
                current[slot] = value
            else:
                current.pop(key, None)
            return
        kind = type(child)
        if kind is dict or kind is list:
            if id(child) in owned:
                current = child
                continue
            child = dict(child) if kind is dict else list(child)
        elif isinstance(child, Mapping):
            child = dict(child)
        elif isinstance(child, (list, tuple)):
            child = list(child)
        elif value is None:
            return
        else:
            child = {}
        owned.add(id(child))
        current[slot] = child
        current = child


def delete_path(root: dict[str, Any], segments: tuple[Segment, ...]) -> None:
    """Remove the path from ``root`` in place (``root`` is fully owned by the caller).

    A list element addressed by index is removed, closing the gap; a missing path or a
    segment that does not fit is a no-op.
    """
    current: Any = root
    for key, index in segments[:-1]:
        current = step(current, key, index)
        if current is None:
            return
    key, index = segments[-1]
    if isinstance(current, dict):
        current.pop(key, None)
    elif isinstance(current, list) and index is not None and index < len(current):
        del current[index]
