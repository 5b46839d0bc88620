"""The walkerOS v4 event model and the per-push validation of events.

``prepare_event`` (``normalize_event`` without the copy when nothing needs filling)
runs on every ``push``, on the caller's task, so it is written for speed: one pass
over the top-level keys that also checks the items of top-level dicts (and of the
lists in them), then an iterative walk over any deeper containers; both test the
common JSON types by identity and track no path. Only when that fast pass finds
something does a slower recursive pass run to name the offending value's dotted path.

JSON-able here means what strict JSON can carry: ``dict`` (string keys), ``list``,
``str``, ``int``, finite ``float``, ``bool`` and ``None`` (subclasses such as
``StrEnum`` count as their base type). Tuples, sets, bytes, datetimes, NaN and
±infinity are rejected: ``JSON.stringify`` would silently turn NaN into ``null``,
which in Python almost always hides a bug upstream. So is a string or key holding a
lone surrogate (``"\\ud800"``, e.g. from ``surrogateescape`` decoding): it is not valid
Unicode and has no UTF-8 encoding. ASCII text is recognised in O(1)
(``str.isascii``); only other text is searched for surrogates.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from attrs import define, fields

from ._exceptions import InvalidEventError

__all__ = [
    "WalkerEvent",
    "escape_text",
    "new_event_id",
    "normalize_event",
    "prepare_decoded_event",
    "prepare_event",
    "surrogate_path",
    "surrogate_problem",
    "text_ok",
]

#: Deepest nesting accepted inside an event; deeper input is treated as circular.
MAX_DEPTH = 100
# Containers the fast pass visits before handing over to the depth-checking slow pass.
_MAX_CONTAINERS = 100_000
#: JSON shorter than this holds fewer containers than the fast pass visits (each takes
#: at least 2 bytes): what ``orjson.loads`` makes of it needs no walk for JSON-ness.
DECODED_WALK_FREE_BYTES = 2 * _MAX_CONTAINERS

_SURROGATE = re.compile("[\ud800-\udfff]")

_MISSING: Any = object()
_NUMBER = (int, float)
_TIMING = (float, int)  # same check as _NUMBER; float first, as timings usually are

# Expected type of every known walkerOS v4 field (``name`` is also checked on its own,
# before: it must read "entity action"); unknown top-level keys only have to be JSON-able.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "data": (dict,),
    "context": (dict,),
    "globals": (dict,),
    "custom": (dict,),
    "user": (dict,),
    "nested": (list,),
    "consent": (dict,),
    "id": (str,),
    "trigger": (str,),
    "entity": (str,),
    "action": (str,),
    "timestamp": _NUMBER,
    "timing": _TIMING,
    "group": (str,),
    "count": (int,),
    "version": (dict,),
    "source": (dict,),
}
# The exact type that passes the field check without a closer look (the common case).
_EXACT: dict[str, type] = {key: types[0] for key, types in _FIELD_TYPES.items()}
_isascii = str.isascii

_TYPE_WORDS = {
    dict: "an object (dict)",
    list: "a list",
    str: "a string",
    int: "an integer",
}


def new_event_id() -> str:
    """Return a fresh walkerOS-style event id: 16 lowercase hex characters.

    ``os.urandom`` is used (not ``random``) so ids stay unique across forked
    workers; it is measured to cost well under a microsecond.
    """
    return os.urandom(8).hex()


def text_ok(text: str) -> bool:
    """Whether ``text`` (not ASCII: test ``isascii()`` first) holds no lone surrogate."""
    return _SURROGATE.search(text) is None


def surrogate_problem(text: str) -> str:
    """Say where ``text``'s first lone surrogate is, without quoting the text."""
    found = _SURROGATE.search(text)
    assert found is not None
    return (
        f"contains a lone surrogate ({found.group()!r} at index {found.start()}),"
        " which is not valid Unicode and cannot be encoded as UTF-8"
    )


def escape_text(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` (safe to print or log)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def surrogate_path(value: Any, path: str) -> str | None:
    """The dotted path (from ``path``) of the first string or key in ``value`` holding a
    lone surrogate, or ``None``. For error messages: it walks the whole value."""
    if isinstance(value, str):
        return path if not (value.isascii() or text_ok(value)) else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                where = f"{path}.{escape_text(key)}" if path else escape_text(key)
                if not (key.isascii() or text_ok(key)):
                    return where
                found = surrogate_path(item, where)
                if found is not None:
                    return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = surrogate_path(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


class _NotJSON(Exception):
    """Internal: a value that JSON cannot carry; ``path`` is built while unwinding."""

    def __init__(self, message: str, key: str | int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str | int] = [] if key is None else [key]


def _leaf_problem(value: Any) -> str | None:
    """Classify a value that is not one of the exact JSON types (the slow path)."""
    if isinstance(value, str):  # subclasses such as StrEnum serialize as values
        return None if value.isascii() or text_ok(value) else surrogate_problem(value)
    if isinstance(value, int):  # IntEnum and the like too
        return None
    if isinstance(value, float):
        if value - value != 0.0:  # NaN or ±inf: strict JSON has no spelling for them
            return f"{value!r} is not JSON-serializable (NaN and infinity are rejected)"
        return None
    if isinstance(value, tuple):
        return "tuple is not JSON-serializable (use a list)"
    return f"{type(value).__name__} is not JSON-serializable"


def _check_dict(value: dict[Any, Any], depth: int) -> None:
    """Raise ``_NotJSON`` if the dict holds anything JSON cannot carry."""
    if depth > MAX_DEPTH:
        raise _NotJSON(f"nested deeper than {MAX_DEPTH} levels (circular reference?)")
    for key, item in value.items():
        if type(key) is not str and not isinstance(key, str):
            raise _NotJSON(f"key {key!r} is not a string", key)
        if not (key.isascii() or text_ok(key)):
            raise _NotJSON(f"the key {surrogate_problem(key)}", escape_text(key))
        t = type(item)
        if t is str:
            if item.isascii() or text_ok(item):
                continue
            raise _NotJSON(surrogate_problem(item), key)
        if t is int or t is bool or item is None:
            continue
        try:
            if t is dict:
                _check_dict(item, depth + 1)
            elif t is list:
                _check_list(item, depth + 1)
            elif not (t is float and item - item == 0.0):
                _check_other(item, depth)
        except _NotJSON as exc:
            exc.path.append(key)
            raise


def _check_list(value: list[Any], depth: int) -> None:
    """Raise ``_NotJSON`` if the list holds anything JSON cannot carry."""
    if depth > MAX_DEPTH:
        raise _NotJSON(f"nested deeper than {MAX_DEPTH} levels (circular reference?)")
    for index, item in enumerate(value):
        t = type(item)
        if t is str:
            if item.isascii() or text_ok(item):
                continue
            raise _NotJSON(surrogate_problem(item), index)
        if t is int or t is bool or item is None:
            continue
        try:
            if t is dict:
                _check_dict(item, depth + 1)
            elif t is list:
                _check_list(item, depth + 1)
            elif not (t is float and item - item == 0.0):
                _check_other(item, depth)
        except _NotJSON as exc:
            exc.path.append(index)
            raise


def _check_other(value: Any, depth: int) -> None:
    """Dict/list subclasses, number/str subclasses, non-finite floats and the rest."""
    if isinstance(value, dict):
        _check_dict(value, depth + 1)
    elif isinstance(value, list):
        _check_list(value, depth + 1)
    else:
        problem = _leaf_problem(value)
        if problem is not None:
            raise _NotJSON(problem)


def _check_field(key: str, value: Any) -> None:
    """The closer look at a known field whose type is not the exact expected one."""
    expected = _FIELD_TYPES[key]
    # bool is an int subclass, but no known field is boolean: True as a timestamp is a mistake
    if value.__class__ is bool or not isinstance(value, expected):
        want = _TYPE_WORDS[expected[0]] if len(expected) == 1 else "a number"
        raise InvalidEventError(f"{key}: expected {want}, got {type(value).__name__}", field=key)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEventError(f"{key}: {value!r} is not a finite number", field=key)


def _check_extras(event: Mapping[str, Any]) -> None:
    """Field rules beyond the type: a non-empty id, boolean consent, entity dicts in nested."""
    if event.get("id", True) == "":
        raise InvalidEventError("id: must be a non-empty string", field="id")
    consent = event.get("consent")
    if consent:
        for group, granted in consent.items():
            if granted.__class__ is not bool:
                path = f"consent.{group}"
                raise InvalidEventError(
                    f"{path}: expected true or false, got {type(granted).__name__}", field=path
                )
    nested = event.get("nested")
    if nested:
        for index, entity in enumerate(nested):
            if not isinstance(entity, dict):
                path = f"nested.{index}"
                raise InvalidEventError(
                    f"{path}: expected an object (dict), got {type(entity).__name__}", field=path
                )


def _split_name(name: Any) -> tuple[str, str]:
    if not isinstance(name, str):
        raise InvalidEventError(
            f"name: expected a string like 'entity action', got {type(name).__name__}",
            field="name",
        )
    parts = name.split(" ", 2)
    if len(parts) < 2:
        raise InvalidEventError(
            f"name: expected 'entity action' (two words separated by a space), got {name!r}",
            field="name",
        )
    entity, action = parts[0], parts[1]
    if not entity:
        raise InvalidEventError(f"name: empty entity in {name!r}", field="name")
    if not action:
        raise InvalidEventError(f"name: empty action in {name!r}", field="name")
    return entity, action


def _is_json(roots: list[Any]) -> bool:
    """Fast pass: True when every container in ``roots`` holds only JSON values.

    Iterative, and it tracks no path: the slow recursive pass (``_check_dict``)
    runs only when this one says no, to find and name the offending value.
    """
    stack = roots
    pop = stack.pop
    push = stack.append
    budget = _MAX_CONTAINERS
    while stack:
        container = pop()
        budget -= 1
        if budget < 0:  # very large or circular: let the slow pass decide and explain
            return False
        if type(container) is dict:
            for key, item in container.items():
                if key.__class__ is not str or not (key.isascii() or text_ok(key)):
                    return False
                t = type(item)
                if t is str:
                    if item.isascii() or text_ok(item):
                        continue
                    return False
                if t is int or t is bool or item is None:
                    continue
                if t is dict or t is list:
                    push(item)
                elif not (t is float and item - item == 0.0):
                    return False
        else:
            for item in container:
                t = type(item)
                if t is str:
                    if item.isascii() or text_ok(item):
                        continue
                    return False
                if t is int or t is bool or item is None:
                    continue
                if t is dict or t is list:
                    push(item)
                elif not (t is float and item - item == 0.0):
                    return False
    return True


def _explain(event: Mapping[str, Any]) -> None:
    """Slow pass: raise ``InvalidEventError`` naming the first non-JSON value, if any."""
    for key, value in event.items():
        if not isinstance(key, str):
            raise InvalidEventError(f"event key {key!r} is not a string", field=None)
        if not (key.isascii() or text_ok(key)):
            where = escape_text(key)
            raise InvalidEventError(f"{where}: the key {surrogate_problem(key)}", field=where)
        if value is None:  # null is JSON (_check_other judges container items and leaves)
            continue
        try:
            _check_other(value, 0)
        except _NotJSON as exc:
            path = ".".join([key, *(str(p) for p in reversed(exc.path))])
            raise InvalidEventError(f"{path}: {exc.message}", field=path) from None


def _validate(event: Mapping[str, Any]) -> None:
    """Validate every key of ``event`` (raises ``InvalidEventError`` naming the field).

    The top-level dicts' items, and the items of lists inside them, are checked in the
    same loop (most events nest no deeper); deeper containers go to :func:`_is_json`,
    and the slow pass explains. A known field of its expected type needs no key check
    (its key is a known ASCII name).
    """
    name = event.get("name", _MISSING)
    if name is _MISSING:
        raise InvalidEventError("name: required", field="name")
    if type(name) is str:
        entity, _, rest = name.partition(" ")
        if not (entity and rest and rest[0] != " "):
            _split_name(name)  # raises, saying what is wrong
    else:
        _split_name(name)
    exact = _EXACT
    is_ascii = _isascii
    deeper: list[Any] = []
    ok = True
    try:
        for key, value in event.items():
            t = type(value)
            want = exact.get(key)
            if t is not want:
                if want is not None:
                    _check_field(key, value)
                if key.__class__ is not str or not (want or key.isascii() or text_ok(key)):
                    ok = False
                    continue
            if t is dict:
                for inner, item in value.items():
                    # str.isascii itself: a key that is no str raises TypeError (below).
                    if not is_ascii(inner) and not text_ok(inner):
                        ok = False
                    t = type(item)
                    if t is str:
                        if not item.isascii() and not text_ok(item):
                            ok = False
                    elif t is int or t is bool or item is None:
                        pass
                    elif t is float:
                        if item - item != 0.0:  # NaN or ±inf
                            ok = False
                    elif t is list:
                        for element in item:
                            t = type(element)
                            if t is str:
                                if not element.isascii() and not text_ok(element):
                                    ok = False
                            elif t is int or t is bool or element is None:
                                pass
                            elif t is float:
                                if element - element != 0.0:
                                    ok = False
                            elif t is dict or t is list:
                                deeper.append(element)
                            else:
                                ok = False
                    elif t is dict:
                        deeper.append(item)
                    else:
                        ok = False
            elif t is str:
                if not value.isascii() and not text_ok(value):
                    ok = False
            elif t is list:
                deeper.append(value)
            elif not (
                t is int or t is bool or value is None or (t is float and value - value == 0.0)
            ):
                ok = False
    except TypeError:  # a key that is not a string: the known fields' types still come first
        for key, value in event.items():
            want = exact.get(key)
            if want is not None and type(value) is not want:
                _check_field(key, value)
        ok = False
    if not (ok and (not deeper or _is_json(deeper))):
        _explain(event)
    # _check_extras, with its common case inline.
    if event.get("id", True) == "" or "nested" in event:
        _check_extras(event)
    consent = event.get("consent")
    if consent:
        for granted in consent.values():
            if type(granted) is not bool:
                _check_extras(event)  # raises, naming the group


def normalize_event(event: Mapping[str, Any] | WalkerEvent) -> dict[str, Any]:
    """Validate a walkerOS event and return a new dict with the derived fields filled.

    ``entity`` and ``action`` come from the first two words of ``name`` when absent
    (a longer name is kept whole); ``id`` (16 lowercase hex characters) and
    ``timestamp`` (ms since the epoch) are filled when absent. The copy is
    shallow: nested containers are shared with the caller, who is never mutated.

    Args:
        event: a mapping in the walkerOS v4 shape, or a :class:`WalkerEvent`.

    Returns:
        A new ``dict`` holding the validated, completed event.

    Raises:
        InvalidEventError: the event is not a mapping, its ``name`` is missing or
            not ``"entity action"``, a known field has the wrong type, or a value
            anywhere is not JSON-serializable (``field`` names the dotted path).
    """
    out = prepare_event(event)
    return out.copy() if out is event else out


def prepare_event(event: Mapping[str, Any] | WalkerEvent) -> dict[str, Any]:
    """:func:`normalize_event` for the push path: no copy when nothing needs filling.

    Returns the caller's own dict when it already has ``entity``, ``action``, ``id``
    and ``timestamp`` (the usual walkerOS event); the caller must treat the result
    as read-only (the mapping does: it copies what it writes).

    Raises:
        InvalidEventError: as :func:`normalize_event`.
    """
    if type(event) is dict:  # the common case, before the slower ABC check
        out = event
    elif isinstance(event, WalkerEvent):
        out = event.to_dict()
    elif isinstance(event, Mapping):
        out = dict(event)
    else:
        raise InvalidEventError(
            f"event: expected a mapping or WalkerEvent, got {type(event).__name__}", field=None
        )
    _validate(out)
    if "entity" in out and "action" in out and "id" in out and "timestamp" in out:
        return out
    if out is event:
        out = out.copy()
    if "entity" not in out or "action" not in out:
        entity, action = _split_name(out["name"])
        out.setdefault("entity", entity)
        out.setdefault("action", action)
    if "id" not in out:
        out["id"] = os.urandom(8).hex()  # new_event_id(), inlined: this is the hot path
    if "timestamp" not in out:
        out["timestamp"] = time.time_ns() // 1_000_000
    return out


def prepare_decoded_event(event: Any) -> dict[str, Any]:
    """:func:`prepare_event` for an event as ``orjson.loads`` returned it from fewer than
    ``DECODED_WALK_FREE_BYTES`` of JSON (the Redis relay's stream entries).

    Decoding guarantees what :func:`prepare_event` walks the whole event for: string
    keys, no lone surrogates, finite floats, dicts and lists only, and (under that
    size) fewer containers than its fast pass visits. The rest is checked as there,
    in the same order, with the same errors: ``name``, the known fields' types, then
    ``id``, ``consent`` and ``nested``. Anything else (not a plain dict, or lacking
    ``entity``, ``action``, ``id`` or ``timestamp``) goes through
    :func:`prepare_event` itself.

    Raises:
        InvalidEventError: as :func:`normalize_event`.
    """
    if type(event) is not dict or not (
        "entity" in event and "action" in event and "id" in event and "timestamp" in event
    ):
        return prepare_event(event)
    name = event.get("name", _MISSING)
    if name is _MISSING:
        raise InvalidEventError("name: required", field="name")
    if type(name) is str:
        entity, _, rest = name.partition(" ")
        if not (entity and rest and rest[0] != " "):
            _split_name(name)  # raises, saying what is wrong
    else:
        _split_name(name)
    exact = _EXACT
    for key, value in event.items():
        want = exact.get(key)
        if want is not None and type(value) is not want:
            _check_field(key, value)
    # _check_extras, with its common case inline (as in _validate).
    if event.get("id", True) == "" or "nested" in event:
        _check_extras(event)
    consent = event.get("consent")
    if consent:
        for granted in consent.values():
            if type(granted) is not bool:
                _check_extras(event)  # raises, naming the group
    return event


@define(slots=True, kw_only=True)
class WalkerEvent:
    """A walkerOS v4 event as a typed object; ``None`` means "not set".

    Only ``name`` is required. ``normalize_event`` accepts this class and plain
    dicts alike; :meth:`to_dict` gives the dict form holding the set fields only.
    """

    name: str
    data: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    globals: dict[str, Any] | None = None
    custom: dict[str, Any] | None = None
    user: dict[str, Any] | None = None
    nested: list[dict[str, Any]] | None = None
    consent: dict[str, bool] | None = None
    id: str | None = None
    trigger: str | None = None
    entity: str | None = None
    action: str | None = None
    timestamp: int | float | None = None
    timing: int | float | None = None
    source: dict[str, Any] | None = None
    version: dict[str, Any] | None = None
    group: str | None = None
    count: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WalkerEvent:
        """Build a ``WalkerEvent`` from a walkerOS event dict, validating it.

        Args:
            data: the event in its walkerOS v4 dict shape.

        Returns:
            The typed event (no id or timestamp is filled; ``normalize_event`` does that).

        Raises:
            InvalidEventError: the dict is not a valid event, or has a key this
                class does not model.
        """
        if not isinstance(data, Mapping):
            raise InvalidEventError(
                f"event: expected a mapping, got {type(data).__name__}", field=None
            )
        for key in data:
            if key not in _FIELD_NAMES:
                raise InvalidEventError(f"{key}: unknown walkerOS event field", field=str(key))
        _validate(data)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Return the set fields (those not ``None``) as a walkerOS event dict."""
        return {name: value for name in _FIELD_NAMES if (value := getattr(self, name)) is not None}


_FIELD_NAMES: tuple[str, ...] = tuple(a.name for a in fields(WalkerEvent))
