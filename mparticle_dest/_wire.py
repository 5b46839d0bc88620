"""JSON bytes on the wire: the one encoder, batch and bulk assembly, endpoints, auth.

Every byte the library sends goes through :func:`encode_json` (orjson: compact
separators, UTF-8, no ASCII escaping, the same text ``JSON.stringify`` produces for
the walkerOS destination) or its strict twin :func:`dumps_bytes`. Events are encoded
once, at push; a batch is then assembled by joining the stored event bytes with
envelope fragments, and :func:`batch_size` gives its exact length without assembling
it, so the accumulator can do O(1) byte accounting::

    {"events":[<body>,<body>],"environment":...,"user_identities":{...}   <- key head
     ,"user_attributes":{...}                                             <- per batch
     ,"ip":"..."                                                          <- key
     ,"source_request_id":"..."                                           <- per batch
     ,"context":{...},"device_info":{...},"application_info":{...}
     ,"mpid":...,"consent_state":{...}}                                   <- key tail

The order is the one walkerOS's destination writes; the fields it does not know
(``context`` to ``mpid``; ``context`` holds the data plan, as mParticle's SDKs send it) are
written when set, in the order of the official OpenAPI file (where they also come before
``consent_state``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from json import encoder as json_encoder
from typing import Any, Final, NamedTuple, Union
from urllib.parse import urlsplit

import orjson

from ._mparticle import EVENTS_PATH, PODS

__all__ = [
    "JSON_GROWTH",
    "BatchKey",
    "IdentityValue",
    "basic_auth_header",
    "batch_size",
    "bulk_size",
    "check_base_url",
    "compact_fragments",
    "compact_key",
    "decode_compact_key",
    "dumps_bytes",
    "encode_batch",
    "encode_bulk",
    "encode_joined_batch",
    "encode_joined_batch_id_bytes",
    "encode_json",
    "endpoint",
    "envelope_length",
    "key_fragments",
    "orjson_dumps",
    "source_request_id_fragment",
    "source_request_id_length",
    "user_attributes_fragment",
]


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


# The stdlib C encoder, built once (json.dumps would build one per call): the strict
# check for NaN/infinity and the fallback for what orjson refuses. No circular-reference
# markers: everything encoded here is a tree (mapped values are copied by the mapping).
_make_encoder: Any = getattr(json_encoder, "c_make_encoder", None)
_c_encoder: Final = (
    _make_encoder(
        None, _not_json, json_encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _make_encoder is not None
    else None
)
_py_encode: Final = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False
).encode

#: orjson's encoder (what :func:`encode_json` tries first); generated build code calls
#: it directly and hands what it refuses (``TypeError``) to the general build.
orjson_dumps: Final = orjson.dumps
_EVENTS_OPEN: Final = b'{"events":['
_EVENTS_OPEN_LEN: Final = len(_EVENTS_OPEN)

#: Worst-case growth of a string's length when JSON-encoded: a control character
#: becomes ``\u00XX`` (6 bytes); what size bounds multiply string lengths by.
JSON_GROWTH: Final = 6

IdentityValue = Union[str, int, float]  # noqa: UP007 - a runtime alias on Python 3.10


def _stdlib_bytes(obj: Any) -> bytes:
    if _c_encoder is not None:
        return "".join(_c_encoder(obj, 0)).encode()
    return _py_encode(obj).encode()  # pragma: no cover - interpreters without _json


def encode_json(obj: Any) -> bytes:
    """Encode a value that is JSON by construction (the hot path: no NaN or infinity).

    orjson writes compact UTF-8 in dict order, as ``JSON.stringify`` does; what it
    refuses (integers beyond 64 bits, non-string keys, nesting deeper than 254) goes
    through the stdlib encoder instead, which raises for values that are not JSON.
    A NaN or infinity must not reach this function: orjson would write ``null``.
    """
    try:
        return orjson_dumps(obj)
    except TypeError:  # orjson.JSONEncodeError
        return _stdlib_bytes(obj)


def dumps_bytes(obj: Any) -> bytes:
    """Encode ``obj`` as compact UTF-8 JSON (dict key order kept, no ASCII escaping).

    The same bytes as :func:`encode_json`, but strict about numbers.

    Raises:
        ValueError: for NaN or infinite floats (not JSON).
        TypeError: for values that are not JSON-able.
    """
    out = encode_json(obj)
    if b"null" in out:
        # orjson spells NaN and infinity "null": let the strict encoder judge.
        _stdlib_bytes(obj)
    return out


class _BatchKeyFields(NamedTuple):
    environment: str
    user_identities: tuple[tuple[str, IdentityValue], ...] = ()
    ip: str | None = None
    consent_state: str | None = None
    source_request_id: str | None = None
    mpid: int | None = None
    device_info: str | None = None
    application_info: str | None = None
    batch_context: str | None = None


class BatchKey(_BatchKeyFields):
    """Everything batch-level; events with equal keys share a batch.

    An immutable named tuple ``(environment, user_identities, ip, consent_state,
    source_request_id, mpid, device_info, application_info, batch_context)``: cheap to
    build and hash on every push. ``user_identities`` is the resolved identities as
    ``((type, value), ...)`` in wire order; ``consent_state``, ``device_info``,
    ``application_info`` and ``batch_context`` are JSON texts; ``source_request_id`` is
    the mapped value when ``settings.sourceRequestId`` is configured and resolved, else
    ``None``. Build it with all nine items (``tuple.__new__`` skips the defaults).

    The key also caches its envelope fragments (see :meth:`fragments`), so sizing and
    assembling a batch are joins; keep using the batch's first key object for both.
    """

    # Not a field: set on first use, in the instance dict (a tuple subclass has one).
    _fragments: tuple[bytes, bytes, bytes] | None = None

    def fragments(self) -> tuple[bytes, bytes, bytes]:
        """:func:`key_fragments` of this key, computed once per key object."""
        cached = self._fragments
        if cached is None:
            cached = self._fragments = key_fragments(self)
        return cached


# Envelope parts shared by many keys, kept for the next batch (bounded: a part that varies
# per user, such as an mpid, stops being cached once the table is full).
_HEADS: dict[str, bytes] = {}
# The same heads by the environment's JSON and a comma: how a compact key starts.
_ENV_PREFIXES: dict[bytes, bytes] = {}
_TAILS: dict[tuple[Any, ...], bytes] = {}
_PARTS_CACHED = 256


# The items after ``user_identities`` of a key that has only those two (the usual key).
_NOTHING_ELSE: Final = (None,) * 7
_NOTHING_ELSE_LIST: Final = [None] * 7


def compact_key(key: BatchKey) -> bytes:
    """The batch key as compact bytes: its nine items as JSON without the array's brackets
    and the trailing nulls (absent fields), the identities as one object (as the envelope
    writes them). Equal for equal keys, different for keys with a different envelope,
    small, and never tracked by the garbage collector, unlike a (named) tuple of tuples.
    :func:`compact_fragments` gives the envelope back, for the usual key by splicing.
    """
    identities = dict(key[1])
    try:
        # The usual key has nothing after its identities: encoding two items is faster.
        if key[2:] == _NOTHING_ELSE:
            text = orjson_dumps((key[0], identities))
        else:
            text = orjson_dumps([key[0], identities, *key[2:]])
    except TypeError:  # an integer beyond 64 bits
        text = _stdlib_bytes([key[0], identities, *key[2:]])
    # Slicing also copies: orjson's own bytes object keeps its larger buffer.
    return text[1:-1].rstrip(b",nul")


def _compact_items(compact: bytes) -> list[Any]:
    """The nine items of the key whose :func:`compact_key` is ``compact`` (identities as
    a dict)."""
    text = b"[" + compact + b"]"
    items: list[Any] = orjson.loads(text)
    identities = items[1] if len(items) > 1 else {}
    if any(type(value) is float for value in identities.values()):
        # orjson reads an integer beyond 64 bits as a float: read the exact one.
        items = json.loads(text)
    items += [None] * (len(BatchKey._fields) - len(items))
    return items


def compact_fragments(compact: bytes) -> tuple[bytes, bytes, bytes]:
    """:func:`key_fragments` of the key whose :func:`compact_key` is ``compact``.

    The usual key (an environment seen before and identities, nothing after them: the
    bytes end with the identities' ``}``, as no other item can) is spliced, not decoded:
    its identities' JSON is the envelope's ``user_identities`` object.
    """
    if compact[-1:] == b"}":
        split = compact.find(b",{") + 1
        # Only a whole JSON string and its comma can be a known prefix: a split inside
        # the environment's text never matches one.
        head = _ENV_PREFIXES.get(compact[:split])
        if head is not None:
            if len(compact) - split > 2:  # not "{}": no identities, no user_identities
                head += b',"user_identities":' + compact[split:]
            return head, b"", b"}"
    return key_fragments(_compact_items(compact))


def envelope_length(compact: bytes) -> int:
    """The length of :func:`compact_fragments` of ``compact`` (head, middle and tail
    together), for the usual key without making them.

    The usual key (environment and identities, nothing else: the bytes end with the
    identities' ``}``) is the envelope's own JSON texts with other punctuation:
    ``"env",{"t":"v",...}`` against ``],"environment":"env","user_identities":{"t":"v",...}``
    and ``}`` (``],"environment":"env"`` and ``}`` without identities).
    """
    if compact[-1:] == b"}":
        return len(compact) + (14 if compact.endswith(b",{}") else 35)
    head, middle, tail = compact_fragments(compact)
    return len(head) + len(middle) + len(tail)


def decode_compact_key(compact: bytes) -> BatchKey:
    """The :class:`BatchKey` whose :func:`compact_key` is ``compact`` (equal to the key
    it was made from)."""
    items = _compact_items(compact)
    items[1] = tuple(items[1].items())
    return tuple.__new__(BatchKey, items)


def _environment_head(environment: str) -> bytes:
    encoded = encode_json(environment)
    head = b'],"environment":' + encoded
    if len(_HEADS) < _PARTS_CACHED:
        _HEADS[environment] = head
        _ENV_PREFIXES[encoded + b","] = head
    return head


def key_fragments(key: Sequence[Any]) -> tuple[bytes, bytes, bytes]:
    """The envelope bytes around a batch's per-batch parts, for a :class:`BatchKey` (or
    its nine items as a sequence).

    Returns ``(head, middle, tail)``: ``head`` closes the events array and holds
    ``environment`` and ``user_identities``; ``middle`` holds ``ip``; ``tail`` holds
    ``batch_context`` to ``consent_state`` and closes the object. ``user_attributes``
    goes between head and middle, ``source_request_id`` between middle and tail.
    """
    environment, user_identities = key[0], key[1]
    head = _HEADS.get(environment)
    if head is None:
        head = _environment_head(environment)
    if user_identities:
        head += b',"user_identities":' + encode_json(dict(user_identities))
    rest = key[2:]
    if rest == _NOTHING_ELSE or rest == _NOTHING_ELSE_LIST:
        return head, b"", b"}"
    ip, consent_state, _source_request_id, mpid, device_info, application_info, batch_context = rest
    middle = b',"ip":' + encode_json(ip) if ip else b""
    parts = (batch_context, device_info, application_info, mpid, consent_state)
    tail = _TAILS.get(parts)
    if tail is None:
        tail = b""
        if batch_context is not None:
            tail += b',"context":' + batch_context.encode()
        if device_info is not None:
            tail += b',"device_info":' + device_info.encode()
        if application_info is not None:
            tail += b',"application_info":' + application_info.encode()
        if mpid is not None:
            tail += b',"mpid":' + encode_json(mpid)
        if consent_state is not None:
            tail += b',"consent_state":' + consent_state.encode()
        tail += b"}"
        if len(_TAILS) < _PARTS_CACHED:
            _TAILS[parts] = tail
    return head, middle, tail


def user_attributes_fragment(user_attributes: Mapping[str, Any] | None) -> bytes:
    """Return the envelope bytes for a batch's merged ``user_attributes`` (``b""`` if empty)."""
    if not user_attributes:
        return b""
    return b',"user_attributes":' + encode_json(user_attributes)


def source_request_id_fragment(source_request_id: str | None) -> bytes:
    """Return the envelope bytes for ``source_request_id`` (``b""`` when empty or None)."""
    if not source_request_id:
        return b""
    return b',"source_request_id":' + encode_json(source_request_id)


_SRID_FIELD_LEN: Final = len(b',"source_request_id":""')


def source_request_id_length(source_request_id: str | None) -> int:
    """``len(source_request_id_fragment(source_request_id))``, mostly without encoding."""
    if not source_request_id:
        return 0
    if (
        source_request_id.isascii()
        and source_request_id.isprintable()
        and '"' not in source_request_id
        and "\\" not in source_request_id
    ):
        return _SRID_FIELD_LEN + len(source_request_id)  # nothing to escape
    return len(source_request_id_fragment(source_request_id))


def encode_batch(
    key: BatchKey,
    bodies: Sequence[bytes],
    user_attributes: Mapping[str, Any] | bytes | None,
    source_request_id: str | None,
) -> bytes:
    """Assemble one batch (a ``/v2/events`` body) from already-encoded event bodies.

    Args:
        key: the batch's key (use the same key object for sizing and encoding: it
            caches its envelope fragments).
        bodies: the events' compact JSON, in order.
        user_attributes: the batch's merged user attributes, or their pre-encoded
            fragment from :func:`user_attributes_fragment`.
        source_request_id: the batch's id (the mapped value, else the first event id).

    Returns:
        The compact JSON bytes, key order ``events, environment, user_identities,
        user_attributes, ip, source_request_id, batch_context, device_info,
        application_info, mpid, consent_state`` (absent parts left out).
    """
    head, middle, tail = key.fragments()
    ua = (
        user_attributes
        if isinstance(user_attributes, bytes)
        else user_attributes_fragment(user_attributes)
    )
    envelope = b"".join((head, ua, middle, source_request_id_fragment(source_request_id), tail))
    if not bodies:
        return _EVENTS_OPEN + envelope
    # One join, so the batch is copied once: the envelope rides on the first and last
    # event (small copies) instead of wrapping the joined events (a second full copy).
    parts = list(bodies)
    parts[0] = _EVENTS_OPEN + parts[0]
    parts[-1] += envelope
    return b",".join(parts)


def encode_joined_batch(
    fragments: tuple[bytes, bytes, bytes],
    events: bytes | bytearray,
    ua_fragment: bytes,
    source_request_id: str | None,
) -> bytes:
    """:func:`encode_batch` of events already joined by commas (``events``, non-empty), with
    the key's :func:`key_fragments` and the ``user_attributes`` fragment pre-encoded; the
    events are copied once."""
    head, middle, tail = fragments
    srid = source_request_id_fragment(source_request_id)
    return b"".join((_EVENTS_OPEN, events, head, ua_fragment, middle, srid, tail))


_SRID_OPEN: Final = b',"source_request_id":"'
_QUOTE: Final = b'"'


def encode_joined_batch_id_bytes(
    fragments: tuple[bytes, bytes, bytes],
    events: bytes | bytearray,
    ua_fragment: bytes,
    source_request_id: bytes,
) -> bytes:
    """:func:`encode_joined_batch` with a non-empty ``source_request_id`` given as the
    bytes of its JSON string between the quotes (already escaped: copied from an
    event's JSON, so it is not decoded and encoded again)."""
    head, middle, tail = fragments
    srid = source_request_id
    parts = (_EVENTS_OPEN, events, head, ua_fragment, middle, _SRID_OPEN, srid, _QUOTE, tail)
    return b"".join(parts)


def batch_size(
    key: BatchKey,
    total_body_bytes: int,
    n_events: int,
    user_attributes_bytes: int,
    source_request_id: str | None,
) -> int:
    """Exact ``len(encode_batch(...))`` computed without assembling the batch.

    Args:
        key: the batch's key.
        total_body_bytes: ``sum(len(body))`` over the batch's events.
        n_events: number of events.
        user_attributes_bytes: ``len(user_attributes_fragment(merged_attributes))``.
        source_request_id: the batch's id.
    """
    head, middle, tail = key.fragments()
    sri = len(source_request_id_fragment(source_request_id)) if source_request_id else 0
    commas = n_events - 1 if n_events > 1 else 0
    return (
        _EVENTS_OPEN_LEN
        + total_body_bytes
        + commas
        + len(head)
        + user_attributes_bytes
        + len(middle)
        + sri
        + len(tail)
    )


def encode_bulk(batch_bodies: Sequence[bytes]) -> bytes:
    """Join encoded batches into one ``/v2/bulkevents`` body (a JSON array)."""
    if len(batch_bodies) < 2:
        return b"[" + b"".join(batch_bodies) + b"]"
    # One join (one copy of the request body): the brackets ride on the first and last
    # batch instead of wrapping the joined body, which would copy it twice more.
    parts = list(batch_bodies)
    parts[0] = b"[" + parts[0]
    parts[-1] += b"]"
    return b",".join(parts)


def bulk_size(total_batch_bytes: int, n_batches: int) -> int:
    """Exact ``len(encode_bulk(...))`` from the sum of the batch sizes and their count."""
    return 2 + total_batch_bytes + (n_batches - 1 if n_batches > 1 else 0)


# Whitespace and control characters (C0, DEL, C1): never part of a URL we send to.
_URL_FORBIDDEN: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def check_base_url(base_url: object) -> str:
    """Return ``base_url`` if it can replace the pod host, else say what is wrong.

    It must be an ``http://`` or ``https://`` URL with a host, and may add a port and
    a path prefix. The errors never quote the URL: it may hold a password.

    Raises:
        TypeError: ``base_url`` is not a string.
        ValueError: whitespace or a control character; another scheme; credentials
            (``user:password@``, which httpx would send instead of the apiKey and
            apiSecret); no host; a bad port; a query or fragment.
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a string, got {type(base_url).__name__}")
    bad = _URL_FORBIDDEN.search(base_url)
    if bad is not None:
        raise ValueError(
            f"base_url must not contain whitespace or control characters"
            f" (found {bad.group()!r} at position {bad.start()})"
        )
    try:
        parts = urlsplit(base_url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise ValueError("base_url is not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https") or not base_url[
        len(parts.scheme) :
    ].startswith("://"):
        raise ValueError("base_url must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValueError(
            "base_url must not contain credentials (user:password@); put the apiKey and"
            " apiSecret in the config's settings"
        )
    if not parts.hostname:
        raise ValueError("base_url has no host (expected e.g. https://proxy.example/mp)")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError("base_url has an invalid port (expected 1-65535)") from None
    if parts.query or parts.fragment or "?" in base_url or "#" in base_url:
        raise ValueError("base_url must not have a query (?...) or a fragment (#...)")
    return base_url


def endpoint(pod: str = "us1", base_url: str | None = None, path: str = EVENTS_PATH) -> str:
    """Return the URL of an Events API path.

    Args:
        pod: ``us1`` (host ``s2s.mparticle.com``), ``us2``, ``eu1`` or ``au1``
            (host ``s2s.{pod}.mparticle.com``).
        base_url: scheme + host (+ optional path prefix) that replaces the pod host,
            e.g. ``http://127.0.0.1:8080`` or ``https://proxy.example/mp``.
        path: ``/v2/events``, ``/v2/bulkevents`` or ``/v2/bulkevents/historical``.

    Raises:
        ValueError: for an unknown pod (when no ``base_url`` is given).
    """
    if base_url is not None:
        return base_url.rstrip("/") + path
    if pod == "us1":
        return "https://s2s.mparticle.com" + path
    if pod not in PODS:
        raise ValueError(f"unknown mParticle pod {pod!r}; expected one of {', '.join(PODS)}")
    return f"https://s2s.{pod}.mparticle.com{path}"


def basic_auth_header(api_key: str, api_secret: str | Any) -> str:
    """Return the ``Authorization`` header value ``Basic base64(key:secret)`` (UTF-8).

    Args:
        api_key: the input feed's API key.
        api_secret: its secret, as a string or a ``Secret`` (``get_secret_value()``).

    The result contains the secret: never log it or put it in an error message.
    """
    if not isinstance(api_secret, str):
        api_secret = api_secret.get_secret_value()
    token = base64.b64encode(f"{api_key}:{api_secret}".encode()).decode("ascii")
    return "Basic " + token
