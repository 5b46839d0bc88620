"""``SyncEventStream``: the producer for threaded code."""

from __future__ import annotations

import threading

import orjson
import pytest

from mparticle_dest import BufferFullError, InvalidEventError
from mparticle_dest.streams import SyncEventStream


def test_threads_push_validated_completed_events(sync_redis):
    url, r = sync_redis
    with SyncEventStream(url, stream="s") as stream:

        def work(t: int) -> None:
            for n in range(50):
                stream.push({"name": "page view", "id": f"t{t}-{n}", "user": {"id": f"u{t}"}})

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with pytest.raises(InvalidEventError, match="name"):
            stream.push({"name": "nospace"})
        entry = stream.push({"name": "page view"})
    events = [orjson.loads(f[b"e"]) for _, f in r.xrange("s")]
    assert len(events) == 201 and stream.stats.added == 201 and stream.stats.invalid == 1
    assert {e["id"] for e in events[:200]} == {f"t{t}-{n}" for t in range(4) for n in range(50)}
    assert entry == r.xrange("s")[-1][0].decode()
    assert len(events[-1]["id"]) == 16 and events[-1]["action"] == "view"


def test_the_bound_drops_raises_and_waits_as_the_async_producer_does(sync_redis):
    url, r = sync_redis
    with SyncEventStream(url, stream="s", max_len=2, full_policy="drop") as stream:
        for n in range(3):
            stream.push({"name": "page view", "id": f"e{n}"})
    assert stream.stats.dropped == 1 and r.xlen("s") == 2
    with SyncEventStream(url, stream="s", max_len=2, full_policy="raise") as stream:
        with pytest.raises(BufferFullError):
            stream.push({"name": "page view"})
    with SyncEventStream(url, stream="s", max_len=2, full_timeout=0.05) as stream:
        with pytest.raises(BufferFullError, match="after waiting"):
            stream.push({"name": "page view"})
        first = r.xrange("s")[0][0]
        timer = threading.Timer(0.05, r.xdel, args=("s", first))  # a relay deletes one
        timer.start()
        stream.full_timeout = 5.0
        assert stream.push({"name": "page view", "id": "late"}) is not None
        timer.join()
    assert [orjson.loads(f[b"e"])["id"] for _, f in r.xrange("s")] == ["e1", "late"]
