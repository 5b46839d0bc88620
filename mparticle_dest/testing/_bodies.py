"""Request bodies and error bodies of the fake server: JSON parsing with exact batch sizes."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["error_body", "parse_array", "parse_compact_array", "parse_json"]

_MAX_ERRORS = 20  # error entries per 400 body; a poisoned bulk request can have 100
_REASONS = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


def error_body(status: int, messages: list[str]) -> bytes:
    """mParticle's error body: ``{"errors": [{"code": ..., "message": ...}, ...]}``."""
    code = _REASONS.get(status, "ERROR")
    errors = [{"code": code, "message": m} for m in messages[:_MAX_ERRORS]]
    return json.dumps({"errors": errors}, separators=(",", ":")).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Parse strict JSON (``NaN``/``Infinity`` are errors, as for any JSON parser but Python's).

    Raises:
        ValueError: The text is not valid JSON.
    """
    return json.loads(text, parse_constant=_reject_constant)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_WS = " \t\n\r"


def parse_compact_array(body: bytes) -> list[tuple[Any, int]] | None:
    """:func:`parse_array` for the common body, at C speed; ``None`` when it does not apply.

    It applies when ``body`` is exactly the compact JSON orjson writes for the array
    it holds (what this library sends): then each item's size is the length of its
    own compact form. Anything else (whitespace, escapes written differently, invalid
    or non-array JSON) returns ``None``, and :func:`parse_array` gives the verdict.
    """
    try:
        items = orjson.loads(body)
        if type(items) is not list:
            return None
        parts = [orjson.dumps(item) for item in items]
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    if b"[" + b",".join(parts) + b"]" != body:
        return None
    return [(item, len(part)) for item, part in zip(items, parts, strict=True)]


def parse_array(text: str, ascii_only: bool) -> list[tuple[Any, int]] | None:
    """Parse a JSON array into ``(item, byte size)`` pairs; ``None`` when it is not an array.

    Each item is decoded in place, so its size is exactly the bytes it took in the body.

    Raises:
        ValueError: The text is not valid JSON.
    """
    i = len(text) - len(text.lstrip(_WS))
    if not text.startswith("[", i):
        parse_json(text)  # raises for malformed JSON; otherwise it is valid but no array
        return None
    items: list[tuple[Any, int]] = []
    i += 1
    while True:
        while i < len(text) and text[i] in _WS:
            i += 1
        if text.startswith("]", i) and not items:
            i += 1
            break
        item, end = _decoder.raw_decode(text, i)
        size = end - i if ascii_only else len(text[i:end].encode())
        items.append((item, size))
        while end < len(text) and text[end] in _WS:
            end += 1
        if text.startswith(",", end):
            i = end + 1
            continue
        if text.startswith("]", end):
            i = end + 1
            break
        raise ValueError(f"expected ',' or ']' at char {end}")
    if text[i:].strip(_WS):
        raise ValueError(f"extra data at char {i}")
    return items
