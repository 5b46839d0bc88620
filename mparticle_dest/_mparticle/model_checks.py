"""Check plain JSON objects against the attrs models of ``models`` (no instances built).

The push path checks the user-mapped parts of an event (commerce fields,
``eventData``) with rules compiled once per model class from its annotations:
``str``, ``int``, ``float`` (int accepted), ``bool``, ``Literal`` (allowed values),
``list[...]``, ``dict[str, ...]``, nested models, unions and ``Any``. A field without a
default is required; a model class with ``closed = True`` refuses unknown keys (the
official schema's ``additionalProperties: false``). ``None`` counts as missing.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, Union, cast

import attrs

__all__ = ["Check", "check_object", "value_check"]

Check = typing.Callable[[Any, str, list[str]], None]
_MODEL_CHECKS: dict[type, Check] = {}
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "list"}


def _fields(cls: type) -> tuple[attrs.Attribute[Any], ...]:
    return tuple(attrs.fields(cast(Any, cls)))


def value_check(tp: Any) -> Check:
    """Compile the check of one annotation: ``check(value, path, problems)``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return value_check(inner[0])
        checks = [value_check(a) for a in inner]

        def any_of(v: Any, path: str, out: list[str]) -> None:
            for c in checks:
                probe: list[str] = []
                c(v, path, probe)
                if not probe:
                    return
            out.append(f"{path}: {v!r} is not {_describe(tp)}")

        return any_of
    if origin is Literal:
        allowed = args

        def enum(v: Any, path: str, out: list[str]) -> None:
            if v not in allowed or isinstance(v, bool):
                out.append(f"{path}: {v!r} is not one of {', '.join(map(str, allowed))}")

        return enum
    if origin is list:
        item = value_check(args[0])

        def list_of(v: Any, path: str, out: list[str]) -> None:
            if not isinstance(v, list):
                out.append(f"{path}: expected a list, got {type(v).__name__}")
                return
            for i, x in enumerate(v):
                item(x, f"{path}[{i}]", out)

        return list_of
    if origin is dict:
        value = value_check(args[1])

        def dict_of(v: Any, path: str, out: list[str]) -> None:
            if not isinstance(v, dict):
                out.append(f"{path}: expected an object, got {type(v).__name__}")
                return
            for k, x in v.items():
                value(x, f"{path}.{k}", out)

        return dict_of
    if isinstance(tp, type) and attrs.has(tp):
        return _model_check(tp)
    if tp is Any:
        return lambda v, path, out: None
    return _scalar_check(tp)


def _scalar_check(tp: Any) -> Check:
    accepted: tuple[type, ...] = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}[tp]
    name = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}[tp]

    def scalar(v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, accepted) or (tp is not bool and isinstance(v, bool)):
            out.append(f"{path}: expected {name}, got {v!r}")

    return scalar


def _describe(tp: Any) -> str:
    names = [
        _TYPE_NAMES.get(typing.get_origin(a) or a, str(a))
        for a in typing.get_args(tp)
        if a is not type(None)
    ]
    return "a " + " or ".join(names)


def _model_check(cls: type) -> Check:
    cached = _MODEL_CHECKS.get(cls)
    if cached is None:
        cached = _MODEL_CHECKS[cls] = _compile_model_check(cls)
    return cached


def _compile_model_check(cls: type) -> Check:
    hints = typing.get_type_hints(cls)
    fields = [
        (f.name, value_check(hints[f.name]), f.default is attrs.NOTHING) for f in _fields(cls)
    ]
    known = {f.name for f in _fields(cls)}
    closed = bool(getattr(cls, "closed", False))

    def check(v: Any, path: str, out: list[str]) -> None:
        if not isinstance(v, dict):
            out.append(f"{path}: expected an object, got {type(v).__name__}")
            return
        for name, field_check, required in fields:
            x = v.get(name)
            if x is None:
                if required:
                    out.append(f"{path}.{name}: required by mParticle but missing")
            else:
                field_check(x, f"{path}.{name}", out)
        if closed:
            out.extend(f"{path}.{k}: not a field of {cls.__name__}" for k in v if k not in known)

    return check


def check_object(cls: type, value: Any, *, path: str) -> list[str]:
    """Check a plain object against the attrs class ``cls``; return the problems."""
    out: list[str] = []
    _model_check(cls)(value, path, out)
    return out
