"""_wire: the one JSON encoder, exact batch/bulk sizing, endpoints and the auth header."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.schemas import check_batch, check_bulk

from mparticle_dest._mparticle.constants import BULK_PATH, EVENTS_PATH, HISTORICAL_PATH
from mparticle_dest._wire import (
    BatchKey,
    basic_auth_header,
    batch_size,
    bulk_size,
    compact_fragments,
    compact_key,
    decode_compact_key,
    dumps_bytes,
    encode_batch,
    encode_bulk,
    endpoint,
    envelope_length,
    key_fragments,
    user_attributes_fragment,
)


def test_dumps_bytes_is_compact_utf8_in_insertion_order() -> None:
    assert dumps_bytes({"b": 1, "a": ["x", 1.5, True, None]}) == b'{"b":1,"a":["x",1.5,true,null]}'
    assert dumps_bytes({"name": "Grüße 👋"}) == '{"name":"Grüße 👋"}'.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"x": float("-inf")}])
def test_dumps_bytes_refuses_non_json_numbers(bad: Any) -> None:
    with pytest.raises(ValueError, match="JSON"):
        dumps_bytes(bad)


def test_batch_key_equality_hash_and_immutability() -> None:
    a = BatchKey("production", (("customer_id", "u1"),), "1.2.3.4", '{"gdpr":{}}', None)
    b = BatchKey("production", (("customer_id", "u1"),), "1.2.3.4", '{"gdpr":{}}', None)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != BatchKey("production", (("customer_id", "u2"),), "1.2.3.4", '{"gdpr":{}}', None)
    assert a != BatchKey("development", (("customer_id", "u1"),), "1.2.3.4", '{"gdpr":{}}', None)
    assert a != BatchKey("production", (("customer_id", "u1"),), "1.2.3.4", '{"gdpr":{}}', "r")
    assert a != ("production",)
    with pytest.raises(AttributeError):
        a.ip = "x"  # type: ignore[misc]


def test_encode_batch_envelope_key_order_and_omissions() -> None:
    key = BatchKey(
        "development",
        (("customer_id", "u1"), ("email", "a@b.c")),
        "10.0.0.1",
        '{"gdpr":{"marketing":{"consented":true}}}',
        None,
    )
    body = encode_batch(key, [b'{"event_type":"custom_event","data":{}}'], {"tier": "gold"}, "r-1")
    assert list(json.loads(body)) == [
        "events",
        "environment",
        "user_identities",
        "user_attributes",
        "ip",
        "source_request_id",
        "consent_state",
    ]
    bare = encode_batch(BatchKey("production"), [b"{}", b"{}"], None, None)
    assert bare == b'{"events":[{},{}],"environment":"production"}'


def test_encode_batch_accepts_a_pre_encoded_user_attributes_fragment() -> None:
    key = BatchKey("production", (("customer_id", 7),))
    attrs = {"a": 1}
    assert encode_batch(key, [b"{}"], user_attributes_fragment(attrs), "x") == encode_batch(
        key, [b"{}"], attrs, "x"
    )


_text = st.text(max_size=12)
_identity = st.one_of(
    _text.filter(bool),
    st.integers(),
    st.integers(-(2**80), 2**80),  # beyond 64 bits too
    st.floats(allow_nan=False, allow_infinity=False),
)
_json_object = st.dictionaries(_text, st.booleans(), max_size=2).map(json.dumps)
_keys = st.builds(
    BatchKey,
    st.sampled_from(["production", "development"]),
    st.lists(
        st.tuples(st.sampled_from(["customer_id", "email", "other"]), _identity), max_size=3
    ).map(lambda pairs: tuple(dict(pairs).items())),
    st.one_of(st.none(), _text),
    st.one_of(st.none(), _json_object),
    st.one_of(st.none(), _text),
    mpid=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    device_info=st.one_of(st.none(), _json_object),
    application_info=st.one_of(st.none(), _json_object),
    batch_context=st.one_of(st.none(), _json_object),
)
_bodies = st.lists(
    st.dictionaries(_text, st.one_of(_text, st.integers())).map(
        lambda d: dumps_bytes({"event_type": "custom_event", "data": d})
    ),
    min_size=1,
    max_size=5,
)
_user_attributes = st.one_of(
    st.none(), st.dictionaries(_text, st.one_of(_text, st.integers(), st.booleans()), max_size=3)
)


@settings(deadline=None)
@given(key=_keys, bodies=_bodies, user_attributes=_user_attributes, sri=st.one_of(st.none(), _text))
def test_batch_size_is_exact_without_assembling(
    key: BatchKey, bodies: list[bytes], user_attributes: dict[str, Any] | None, sri: str | None
) -> None:
    encoded = encode_batch(key, bodies, user_attributes, sri)
    size = batch_size(
        key,
        sum(map(len, bodies)),
        len(bodies),
        len(user_attributes_fragment(user_attributes)),
        sri,
    )
    assert size == len(encoded)
    parsed = json.loads(encoded)
    assert [dumps_bytes(e) for e in parsed["events"]] == bodies
    assert parsed["environment"] == key.environment
    assert parsed.get("user_identities", {}) == dict(key.user_identities)
    assert parsed.get("user_attributes") == (user_attributes or None)
    assert parsed.get("ip") == (key.ip or None)
    assert parsed.get("source_request_id") == (sri or None)
    assert parsed.get("mpid") == key.mpid
    for field, attribute in (
        ("consent_state", "consent_state"),
        ("device_info", "device_info"),
        ("application_info", "application_info"),
        ("context", "batch_context"),
    ):
        text = getattr(key, attribute)
        assert parsed.get(field) == (None if text is None else json.loads(text))


@settings(deadline=None)
@given(key=_keys)
def test_compact_key_reads_back_as_the_key_and_its_envelope(key: BatchKey) -> None:
    """Batches are keyed and sealed by the compact bytes alone: they must give back the
    exact key (an integer identity beyond 64 bits stays that integer) and its envelope."""
    compact = compact_key(key)
    back = decode_compact_key(compact)
    assert back == key and type(back) is BatchKey
    assert [type(v) for _, v in back.user_identities] == [type(v) for _, v in key.user_identities]
    assert compact_fragments(compact) == key_fragments(key)
    assert compact_key(back) == compact


@settings(deadline=None)
@given(
    environment=st.one_of(
        st.sampled_from(["production", "development"]),
        st.sampled_from(['x",{', 'x\\",{"a":1}', "{}", ",{"]),
        st.text(max_size=6),
    ),
    identities=st.dictionaries(_text, _identity, max_size=3),
)
def test_the_usual_key_s_envelope_is_spliced_from_its_compact_bytes(
    environment: str, identities: dict[str, Any]
) -> None:
    """A key of only an environment and identities (the usual one) gives its envelope
    from its bytes without decoding them, whatever the environment's text."""
    key = BatchKey(environment, tuple(identities.items()))
    compact = compact_key(key)
    assert compact.endswith(b"}")
    expected = key_fragments(key)  # the environment is known from here on
    assert compact_fragments(compact) == expected
    assert decode_compact_key(compact) == key


@pytest.mark.parametrize("value", [2**70 + 1, -(2**64), 2**64 - 1, -0.0, 2.5, 1e300, 'u"\\'])
def test_an_identity_of_any_size_is_sealed_as_it_was_built(value: Any) -> None:
    key = BatchKey("production", (("customer_id", value),))
    head, _, _ = compact_fragments(compact_key(key))
    assert head == key_fragments(key)[0]
    identities = json.loads(encode_batch(key, [b"{}"], None, None))["user_identities"]
    assert head.endswith(b'"user_identities":' + dumps_bytes({"customer_id": value}))
    assert identities == {"customer_id": value}


@settings(deadline=None)
@given(st.lists(st.binary(min_size=2, max_size=20), max_size=6))
def test_bulk_size_is_exact(batches: list[bytes]) -> None:
    assert bulk_size(sum(map(len, batches)), len(batches)) == len(encode_bulk(batches))


def test_encoded_batches_and_bulk_fit_the_schema() -> None:
    key = BatchKey("production", (("customer_id", "u1"),), "1.2.3.4", None, None)
    event = b'{"event_type":"custom_event","data":{"event_name":"a b","custom_event_type":"other"}}'
    one = encode_batch(key, [event, event], {"plan": "pro", "tags": ["a"]}, "ev-1")
    check_batch(json.loads(one))
    check_bulk(json.loads(encode_bulk([one, one])))


@pytest.mark.parametrize(
    ("pod", "host"),
    [
        ("us1", "https://s2s.mparticle.com"),
        ("us2", "https://s2s.us2.mparticle.com"),
        ("eu1", "https://s2s.eu1.mparticle.com"),
        ("au1", "https://s2s.au1.mparticle.com"),
    ],
)
@pytest.mark.parametrize("path", [EVENTS_PATH, BULK_PATH, HISTORICAL_PATH])
def test_endpoint_per_pod(pod: str, host: str, path: str) -> None:
    assert endpoint(pod, None, path) == host + path


def test_endpoint_base_url_replaces_scheme_host_and_prefix() -> None:
    assert (
        endpoint("eu1", "http://127.0.0.1:8080", BULK_PATH) == "http://127.0.0.1:8080/v2/bulkevents"
    )
    assert endpoint("us1", "https://proxy.example/mp/", EVENTS_PATH) == (
        "https://proxy.example/mp/v2/events"
    )
    assert endpoint() == "https://s2s.mparticle.com/v2/events"


def test_endpoint_rejects_unknown_pod() -> None:
    with pytest.raises(ValueError, match="us3"):
        endpoint("us3")


def test_basic_auth_header_matches_walkeros() -> None:
    assert basic_auth_header("key", "secret") == "Basic a2V5OnNlY3JldA=="
    token = basic_auth_header("ké", "s:é").removeprefix("Basic ")
    assert base64.b64decode(token).decode() == "ké:s:é"


@settings(deadline=None)
@given(
    key=_keys,
    bodies=st.lists(st.binary(min_size=1, max_size=30), max_size=6),
    user_attributes=_user_attributes,
    sri=st.one_of(st.none(), _text),
)
def test_encode_batch_is_the_plain_concatenation(
    key: BatchKey, bodies: list[bytes], user_attributes: dict[str, Any] | None, sri: str | None
) -> None:
    # encode_batch joins once (the envelope rides on the first and last event); the bytes
    # are those of the straightforward assembly, for any number of events.
    head, middle, tail = key.fragments()
    sri_part = b',"source_request_id":' + dumps_bytes(sri) if sri else b""
    expected = (
        b'{"events":['
        + b",".join(bodies)
        + head
        + user_attributes_fragment(user_attributes)
        + middle
        + sri_part
        + tail
    )
    assert encode_batch(key, bodies, user_attributes, sri) == expected
    assert encode_batch(key, tuple(bodies), user_attributes, sri) == expected


@settings(deadline=None)
@given(st.lists(st.binary(max_size=20), max_size=6))
def test_encode_bulk_is_a_json_array_of_the_batches(batches: list[bytes]) -> None:
    assert encode_bulk(batches) == b"[" + b",".join(batches) + b"]"
    assert encode_bulk(tuple(batches)) == b"[" + b",".join(batches) + b"]"


_usual_keys = st.builds(
    lambda environment, pairs: BatchKey(environment, tuple(pairs)),
    st.sampled_from(["production", "development", 'é"\\']),
    st.lists(
        st.tuples(st.sampled_from(["customer_id", "email", "other"]), _identity),
        max_size=3,
        unique_by=lambda pair: pair[0],
    ),
)


@settings(deadline=None)
@given(key=st.one_of(_keys, _usual_keys))
def test_a_compact_key_gives_back_its_envelope(key: BatchKey) -> None:
    # A batch's envelope is made from its compact key when it is sealed, and its length
    # counted from it when it is opened: both must be the key's own, integers beyond
    # 64 bits included (orjson would read them back as floats).
    compact = compact_key(key)
    fragments = key_fragments(key)
    assert compact_fragments(compact) == fragments
    assert envelope_length(compact) == sum(map(len, fragments))


def test_an_identity_integer_beyond_64_bits_keeps_its_digits() -> None:
    key = BatchKey("production", (("customer_id", 10**20 + 1), ("email", 2.5)))
    head = compact_fragments(compact_key(key))[0]
    envelope = json.loads(b"{" + head[2:] + b"}")
    assert envelope["user_identities"] == {"customer_id": 10**20 + 1, "email": 2.5}
