"""The fake server enforces mParticle's size limits and its schema, over HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from mparticle_dest.testing import FakeMparticle

AUTH = ("test-key", "test-secret")
KB = 1024


def compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def batch_of_size(size: int, user: str = "u") -> dict[str, object]:
    """A valid batch whose compact JSON is exactly ``size`` bytes."""
    base: dict[str, object] = {
        "events": [],
        "environment": "production",
        "user_identities": {"customer_id": user},
        "user_attributes": {"pad": ""},
    }
    padding = size - len(compact(base))
    assert padding >= 0
    base["user_attributes"] = {"pad": "x" * padding}
    assert len(compact(base)) == size
    return base


def event(**data: object) -> dict[str, object]:
    return {"event_type": "custom_event", "data": data}


def test_a_batch_of_exactly_128_kb_is_accepted_one_byte_more_is_400(server, client):
    assert client.post("/v2/events", content=compact(batch_of_size(128 * KB))).status_code == 202
    response = client.post("/v2/events", content=compact(batch_of_size(128 * KB + 1)))
    assert response.status_code == 400
    assert "131073 bytes, over 131072" in response.json()["errors"][0]["message"]


def test_an_oversized_batch_inside_a_bulk_request_is_named_by_index(server, client):
    body = [batch_of_size(1000, "a"), batch_of_size(128 * KB + 1, "b"), batch_of_size(1000, "c")]
    response = client.post("/v2/bulkevents", content=compact(body))
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"].startswith("batch 1: batch is 131073 bytes")
    assert server.batches == []


def test_a_request_of_exactly_256_kb_is_accepted_one_byte_more_is_413(server, client):
    # Two batches plus "[", "," and "]" make up the request.
    half = (256 * KB - 3) // 2
    body = compact([batch_of_size(half, "a"), batch_of_size(256 * KB - 3 - half, "b")])
    assert len(body) == 256 * KB
    assert client.post("/v2/bulkevents", content=body).status_code == 202
    too_big = compact([batch_of_size(half, "a"), batch_of_size(256 * KB - 2 - half, "b")])
    response = client.post("/v2/bulkevents", content=too_big)
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "REQUEST_TOO_LARGE"
    assert len(server.batches) == 2


def test_100_batches_per_request_are_accepted_101_are_400(server, client):
    small = {"events": [], "environment": "production"}
    assert client.post("/v2/bulkevents", json=[small] * 100).status_code == 202
    response = client.post("/v2/bulkevents", json=[small] * 101)
    assert response.status_code == 400
    assert "101 batches, over 100" in response.json()["errors"][0]["message"]
    assert len(server.batches) == 100


def test_historical_requires_a_timestamp_on_every_event(server, client):
    good = {
        "events": [event(event_name="a", custom_event_type="other", timestamp_unixtime_ms=1)],
        "environment": "production",
    }
    bad = {
        "events": [event(event_name="a", custom_event_type="other")],
        "environment": "production",
    }
    assert client.post("/v2/bulkevents", json=[bad]).status_code == 202
    assert client.post("/v2/bulkevents/historical", json=[good]).status_code == 202
    response = client.post("/v2/bulkevents/historical", json=[good, bad])
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == (
        "batch 1: $.events[0].data.timestamp_unixtime_ms: required for historical data"
    )


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ({"events": []}, "$.environment: required field is missing"),
        (
            {"environment": "production", "events": [{"event_type": "bogus", "data": {}}]},
            "$.events[0].event_type: expected one of",
        ),
        (
            {"environment": "production", "events": [event(custom_event_type="other")]},
            "$.events[0].data.event_name: required field is missing",
        ),
        (
            {"environment": "staging", "events": []},
            "$.environment: expected one of production, development, got 'staging'",
        ),
        (
            {"environment": "production", "user_identities": {"customer_id": True}},
            "$.user_identities.customer_id: expected a string or a number, got a boolean",
        ),
    ],
)
def test_schema_violations_are_400_with_the_json_path(server, client, batch, message):
    response = client.post("/v2/bulkevents", json=[{"environment": "production"}, batch])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["message"].startswith("batch 1: ")
    assert message in error["message"]
    assert server.batches == []


def test_every_bad_batch_of_a_bulk_request_is_reported(server, client):
    bad = {"events": []}
    response = client.post("/v2/bulkevents", json=[bad, {"environment": "production"}, bad])
    messages = [e["message"] for e in response.json()["errors"]]
    assert messages == [
        "batch 0: $.environment: required field is missing",
        "batch 2: $.environment: required field is missing",
    ]


def test_no_validate_skips_the_schema_but_keeps_the_limits():
    with FakeMparticle(validate=False) as server, httpx.Client(base_url=server.url) as c:
        assert c.post("/v2/bulkevents", json=[{"anything": 1}], auth=AUTH).status_code == 202
        assert c.post("/v2/bulkevents", json=[[1]], auth=AUTH).status_code == 400
        too_many = [{"environment": "production"}] * 101
        assert c.post("/v2/bulkevents", json=too_many, auth=AUTH).status_code == 400
        response = c.post(
            "/v2/bulkevents/historical", json=[{"events": [event(event_name="x")]}], auth=AUTH
        )
        assert response.status_code == 400
        assert server.batches[0].body == {"anything": 1}
