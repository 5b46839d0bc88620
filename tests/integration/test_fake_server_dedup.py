"""The fake server models mParticle's de-duplication by ``source_request_id``."""

from __future__ import annotations

import httpx

from mparticle_dest.testing import FakeMparticle

AUTH = ("test-key", "test-secret")


def batch(srid: str, *message_ids: str, user: str = "u1") -> dict[str, object]:
    return {
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "page view",
                    "custom_event_type": "navigation",
                    "source_message_id": mid,
                    "timestamp_unixtime_ms": 1_700_000_000_000,
                },
            }
            for mid in message_ids
        ],
        "environment": "production",
        "user_identities": {"customer_id": user},
        "source_request_id": srid,
    }


def test_a_repeated_source_request_id_is_answered_202_and_not_ingested_again():
    with FakeMparticle() as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        assert c.post("/v2/bulkevents", json=[batch("r1", "a", "b")]).status_code == 202
        # The identical batch again (a resend after a crash), beside a new one.
        again = c.post("/v2/bulkevents", json=[batch("r1", "a", "b"), batch("r2", "c")])
        assert again.status_code == 202
        assert [e.source_message_id for e in server.events] == ["a", "b", "c"]
        stats = server.stats
        assert (stats.batches, stats.events) == (2, 3)
        assert (stats.deduplicated_batches, stats.deduplicated_events) == (1, 2)
        assert stats.repeated_events == 0
        assert stats.to_json()["deduplicated_events"] == 2


def test_an_event_ingested_twice_under_two_source_request_ids_is_counted_as_repeated():
    with FakeMparticle(record=False) as server, httpx.Client(base_url=server.url, auth=AUTH) as c:
        c.post("/v2/bulkevents", json=[batch("r1", "a")])
        c.post("/v2/bulkevents", json=[batch("r2", "a", "b")])
        stats = server.stats
        assert (stats.events, stats.repeated_events, stats.deduplicated_batches) == (3, 1, 0)


def test_deduplication_can_be_turned_off():
    with (
        FakeMparticle(deduplicate=False) as server,
        httpx.Client(base_url=server.url, auth=AUTH) as c,
    ):
        c.post("/v2/bulkevents", json=[batch("r1", "a")])
        c.post("/v2/bulkevents", json=[batch("r1", "a")])
        assert server.stats.events == 2
        assert server.stats.deduplicated_batches == 0
