"""The fake server's request-body parsing: the compact fast path agrees with the exact parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mparticle_dest._wire import encode_bulk, encode_json
from mparticle_dest.testing._bodies import parse_array, parse_compact_array

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _exact(body: bytes) -> list[tuple[Any, int]] | None:
    return parse_array(body.decode("utf-8"), body.isascii())


@given(st.lists(st.dictionaries(st.text(), _json, max_size=5), max_size=6))
def test_bodies_the_library_sends_take_the_fast_path_with_exact_sizes(batches):
    body = encode_bulk([encode_json(b) for b in batches])
    fast = parse_compact_array(body)
    assert fast is not None
    assert fast == _exact(body)
    assert sum(size for _, size in fast) + max(len(fast) - 1, 0) + 2 == len(body)


@given(st.lists(st.dictionaries(st.text(), _json, max_size=5), max_size=6))
def test_whatever_the_fast_path_accepts_the_exact_parser_reads_the_same(batches):
    # Python's own formatting: spaces, \\u escapes, 1e+16 floats... the fast path must
    # either give exactly the exact parser's answer or step aside.
    body = json.dumps(batches).encode()
    fast = parse_compact_array(body)
    if fast is not None:
        assert fast == _exact(body)


@pytest.mark.parametrize(
    "body",
    [
        b'[{"a":1}, {"b":2}]',  # whitespace
        b'[{"a":1,"a":2}]',  # duplicate key: orjson keeps the last, the bytes differ
        b'[{"a":"\\u00e9"}]',  # an escape orjson would not write
        b'[{"a":1e2}]',  # a float spelled differently
        b'{"a":1}',  # not an array
        b"[NaN]",  # not JSON
        b'[{"a":1}',  # truncated
        b"\xff[]",  # not UTF-8
    ],
)
def test_anything_else_is_left_to_the_exact_parser(body):
    assert parse_compact_array(body) is None


def test_an_empty_array_is_read_as_no_batches():
    assert parse_compact_array(b"[]") == []
