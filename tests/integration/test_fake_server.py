"""The fake mParticle server over real loopback HTTP: lifecycle, auth, parsing, recording."""

from __future__ import annotations

import itertools
import json
import socket
import threading

import httpx
import pytest

from mparticle_dest.testing import STATS_PATH, FakeMparticle

AUTH = ("test-key", "test-secret")
# Every batch its own source_request_id: the server ingests a repeated one only once.
_SRIDS = itertools.count()


def event(name: str = "product view", **data: object) -> dict[str, object]:
    return {
        "event_type": "custom_event",
        "data": {
            "event_name": name,
            "custom_event_type": "other",
            "timestamp_unixtime_ms": 1700000100000,
            **data,
        },
    }


def batch(*events: dict[str, object], user: str = "user-123") -> dict[str, object]:
    return {
        "events": list(events) or [event()],
        "environment": "production",
        "user_identities": {"customer_id": user},
        "source_request_id": f"req-{user}-{next(_SRIDS)}",
    }


def test_serves_on_loopback_ephemeral_port_and_stops_without_leaking_threads():
    before = set(threading.enumerate())
    with FakeMparticle() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.port > 0
        # An idle keep-alive connection must not make stop() hang.
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            assert c.post("/v2/events", json=batch()).status_code == 202
            server.stop()
            with pytest.raises(httpx.TransportError):
                c.post("/v2/events", json=batch())
    assert set(threading.enumerate()) <= before
    with socket.socket() as s, pytest.raises(OSError):
        s.connect(("127.0.0.1", server.port))


def test_url_before_start_and_second_start_are_errors():
    server = FakeMparticle()
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    with server:
        with pytest.raises(RuntimeError, match="only once"):
            server.start()
    server.stop()  # idempotent


@pytest.mark.anyio
async def test_async_context_manager_serves_an_async_client():
    async with FakeMparticle() as server:
        async with httpx.AsyncClient(base_url=server.url, auth=AUTH) as c:
            response = await c.post("/v2/bulkevents", json=[batch(), batch(user="u2")])
        assert response.status_code == 202
        assert server.event_count == 2


def test_accepts_the_three_paths(server, client):
    assert client.post("/v2/events", json=batch()).status_code == 202
    assert client.post("/v2/bulkevents", json=[batch(), batch(user="u2")]).status_code == 202
    assert client.post("/v2/bulkevents/historical", json=[batch()]).status_code == 202
    assert [b.path for b in server.batches] == [
        "/v2/events",
        "/v2/bulkevents",
        "/v2/bulkevents",
        "/v2/bulkevents/historical",
    ]
    assert [b.position for b in server.batches] == [0, 0, 1, 0]


def test_unknown_path_and_method(server, client):
    assert client.post("/v2/other", json=batch()).status_code == 404
    assert client.get("/v2/events").status_code == 405
    assert server.batches == []
    assert [r.status for r in server.requests] == [404, 405]


def test_missing_auth_is_401_and_wrong_auth_is_403(server):
    with httpx.Client(base_url=server.url) as c:
        missing = c.post("/v2/events", json=batch())
        wrong = c.post("/v2/events", json=batch(), auth=("test-key", "nope"))
        garbled = c.post("/v2/events", json=batch(), headers={"Authorization": "Basic !!"})
        no_secret = c.post("/v2/events", json=batch(), auth=("test-key", ""))
        bearer = c.post("/v2/events", json=batch(), headers={"Authorization": "Bearer x"})
    statuses = [r.status_code for r in (missing, wrong, garbled, no_secret, bearer)]
    assert statuses == [401, 403, 401, 401, 401]
    assert missing.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert wrong.json()["errors"][0]["code"] == "FORBIDDEN"
    assert server.events == []
    assert server.stats.by_status == {401: 4, 403: 1}


def test_custom_credentials():
    with FakeMparticle(api_key="k", api_secret="s") as other:
        with httpx.Client(base_url=other.url) as c:
            assert c.post("/v2/events", json=batch(), auth=("k", "s")).status_code == 202
            assert c.post("/v2/events", json=batch(), auth=AUTH).status_code == 403
        assert other.settings == {"apiKey": "k", "apiSecret": "s"}


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v2/events", b'{"events": [', "malformed JSON"),
        ("/v2/events", b"\xff\xfe", "malformed JSON"),
        ("/v2/bulkevents", b'[{"environment": "production"} {}]', "malformed JSON"),
        ("/v2/bulkevents", b'[{"environment": NaN}]', "malformed JSON"),
        ("/v2/bulkevents", b"[] []", "malformed JSON"),
        ("/v2/events", b"[]", "a JSON object"),
        ("/v2/bulkevents", b'{"environment": "production"}', "a JSON array"),
        ("/v2/bulkevents", b"[]", "no batches"),
    ],
)
def test_bad_bodies_get_400_with_mparticles_error_shape(server, client, path, body, fragment):
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors[0]["code"] == "BAD_REQUEST"
    assert fragment in errors[0]["message"]
    assert server.batches == []
    assert server.requests[0].status == 400
    assert fragment in (server.requests[0].error or "")


def test_chunked_bodies_are_read(server, client):
    payload = json.dumps([batch()]).encode()
    response = client.post("/v2/bulkevents", content=iter([payload[:10], payload[10:]]))
    assert response.status_code == 202
    assert server.event_count == 1


def test_records_requests_batches_and_events_in_order(server, client):
    first_batch = batch(event("a"), event("b"), user="u1")
    client.post("/v2/bulkevents", json=[first_batch, batch(event("c"), user="u2")])
    client.post("/v2/events", json=batch(event("d", custom_attributes={"k": 1}), user="u1"))
    assert [e.name for e in server.events] == ["a", "b", "c", "d"]
    assert [b.user_identities["customer_id"] for b in server.batches] == ["u1", "u2", "u1"]
    assert [e.name for e in server.events_for("customer_id", "u1")] == ["a", "b", "d"]
    assert [e.batch.request_index for e in server.events_named("d")] == [1]
    assert server.event_count == 4
    request = server.requests[0]
    assert request.accepted and request.path == "/v2/bulkevents"
    assert json.loads(request.body)[1]["user_identities"] == {"customer_id": "u2"}
    assert request.headers["content-type"] == "application/json"
    first = json.dumps(first_batch, separators=(",", ":"))
    assert request.body.startswith(b"[" + first.encode() + b",")  # httpx sends compact JSON
    assert server.batches[0].size == len(first)


def test_batch_size_is_measured_on_the_bytes_received(server, client):
    first = b'{"events":[],"environment":"production","user_attributes":{"n":"\xc3\xa9"}}'
    second = b'{"environment":"development"}'
    body = b"[ " + first + b" ,\n" + second + b" ]"
    assert client.post("/v2/bulkevents", content=body).status_code == 202
    assert [b.size for b in server.batches] == [len(first), len(second)]
    assert server.batches[0].user_attributes == {"n": "é"}


def test_authorization_is_redacted_in_reprs(server, client):
    client.post("/v2/events", json=batch())
    request = server.requests[0]
    assert request.headers["Authorization"].startswith("Basic ")
    for text in (repr(request), repr(request.headers), repr(server), repr(server.stats)):
        assert "dGVzdC1rZXk6dGVzdC1zZWNyZXQ=" not in text
        assert "test-secret" not in text
    assert "<redacted>" in repr(request.headers)


def test_assert_received(server, client):
    client.post(
        "/v2/bulkevents",
        json=[
            batch(event("product view", custom_attributes={"id": "SKU"}), user="u1"),
            batch(event("product view"), event("order complete"), user="u2"),
        ],
    )
    assert len(server.assert_received("product view", count=2)) == 2
    [match] = server.assert_received(
        "product view", identities={"customer_id": "u1"}, custom_attributes={"id": "SKU"}
    )
    assert match.batch.user_identities == {"customer_id": "u1"}
    server.assert_received(event_type="custom_event", count=3)
    with pytest.raises(AssertionError, match=r"exactly 1 event.*found 2.*received 3"):
        server.assert_received("product view", count=1)
    with pytest.raises(AssertionError, match="at least one"):
        server.assert_received("page view")


def test_clear_forgets_records_and_counters(server, client):
    client.post("/v2/events", json=batch())
    server.clear()
    assert (server.requests, server.batches, server.events, server.event_count) == ([], [], [], 0)
    assert server.stats.requests == 0
    client.post("/v2/events", json=batch())
    assert server.requests[0].index == 0


def test_counters_only_mode_keeps_no_records():
    with FakeMparticle(record=False) as server, httpx.Client(base_url=server.url) as c:
        for _ in range(3):
            c.post("/v2/bulkevents", json=[batch(), batch(user="u2")], auth=AUTH)
        c.post("/v2/events", json={"environment": "nope"}, auth=AUTH)
        assert server.requests == [] and server.batches == [] and server.events == []
        stats = server.stats
        assert (stats.requests, stats.batches, stats.events) == (4, 6, 6)
        assert stats.by_status == {202: 3, 400: 1}
        assert c.get(STATS_PATH).json() == stats.to_json()


def test_concurrent_clients_are_all_recorded(server):
    def send(user: str) -> None:
        with httpx.Client(base_url=server.url, auth=AUTH) as c:
            for i in range(20):
                assert c.post("/v2/events", json=batch(event(str(i)), user=user)).status_code == 202

    threads = [threading.Thread(target=send, args=(f"u{n}",)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.event_count == 100
    for n in range(5):
        assert [e.name for e in server.events_for("customer_id", f"u{n}")] == [
            str(i) for i in range(20)
        ]
