"""User callables in mappings (``fn``, ``condition``, ``validate``, rule ``condition``).

Each callable is inspected once, when the mapping is compiled: async callables are
rejected, and the number of arguments it takes is fixed then, so the hot path only
calls a prepared closure. A callable that raises (or returns an awaitable after all)
yields "undefined" and a warning naming its key path; the event goes on.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from ._values import MappingContext, logger

__all__ = ["Call", "inspect_callable", "prepare_call"]

#: A prepared callable: ``call(value, ctx)`` → its result, or ``None`` when it failed.
Call = Callable[[Any, MappingContext], Any]

_PLAIN = frozenset({str, int, float, bool, dict, list, tuple, type(None)})
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _is_async(fn: Any) -> bool:
    target = fn
    while isinstance(target, functools.partial):
        target = target.func
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        return True
    if inspect.isfunction(target) or inspect.ismethod(target) or inspect.isbuiltin(target):
        return False
    # A callable object: what matters is its class's __call__.
    call = type(target).__call__
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def inspect_callable(fn: Any, path: str, problems: list[str]) -> int | None:
    """Check a mapping callable and return how many arguments to pass it (1 or 2).

    The context is passed when the callable declares a second positional parameter
    *without* a default, or ``*args``; parameters with defaults are left alone, so
    callables such as ``round`` keep working. Builtins without a signature (``str``,
    ``int``) get the value only. Problems are appended to ``problems``.
    """
    if not callable(fn):
        problems.append(f"{path}: expected a callable, got {type(fn).__name__}")
        return None
    if _is_async(fn):
        problems.append(
            f"{path}: async callables are not supported; mapping callables must be "
            "plain synchronous functions taking (value) or (value, context)"
        )
        return None
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    positional = required = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            if required > 2:
                return _too_many(path, required, problems)
            return 2
        if parameter.kind in _POSITIONAL:
            positional += 1
            if parameter.default is inspect.Parameter.empty:
                required += 1
        elif (
            parameter.kind is inspect.Parameter.KEYWORD_ONLY
            and parameter.default is inspect.Parameter.empty
        ):
            problems.append(
                f"{path}: keyword-only parameter {parameter.name!r} has no default; "
                "mapping callables take (value) or (value, context)"
            )
            return None
    if positional == 0:
        problems.append(
            f"{path}: the callable takes no positional argument; mapping callables "
            "take (value) or (value, context)"
        )
        return None
    if required > 2:
        return _too_many(path, required, problems)
    return 2 if required == 2 else 1


def _too_many(path: str, required: int, problems: list[str]) -> int | None:
    problems.append(
        f"{path}: the callable requires {required} positional arguments; mapping "
        "callables take (value) or (value, context)"
    )
    return None


def _failed(what: str, path: str, exc: BaseException) -> None:
    # The event itself is never logged: it may hold personal data.
    logger.warning(
        "mapping %s at %s raised %s: %s; treated as undefined",
        what,
        path or "<mapping>",
        type(exc).__name__,
        exc,
    )


def _awaitable(result: Any, what: str, path: str) -> bool:
    if type(result) in _PLAIN or not inspect.isawaitable(result):
        return False
    if isinstance(result, Coroutine):
        result.close()  # never awaited: close it so no "never awaited" warning follows
    logger.warning(
        "mapping %s at %s returned an awaitable; async callables are not supported, "
        "treated as undefined",
        what,
        path or "<mapping>",
    )
    return True


def prepare_call(fn: Callable[..., Any], arity: int, what: str, path: str, mapping: Any) -> Call:
    """Wrap a checked callable: fixed arity, exceptions and awaitables → ``None``.

    ``mapping`` is what the callable sees as ``context.mapping``.
    """
    if arity == 1:

        def call_value(value: Any, ctx: MappingContext) -> Any:
            try:
                result = fn(value)
            except Exception as exc:
                _failed(what, path, exc)
                return None
            if type(result) in _PLAIN:
                return result
            return None if _awaitable(result, what, path) else result

        return call_value

    def call_with_context(value: Any, ctx: MappingContext) -> Any:
        try:
            result = fn(value, MappingContext(ctx.event, mapping, ctx.consent, ctx.logger))
        except Exception as exc:
            _failed(what, path, exc)
            return None
        if type(result) in _PLAIN:
            return result
        return None if _awaitable(result, what, path) else result

    return call_with_context
