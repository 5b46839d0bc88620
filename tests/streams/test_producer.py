"""``EventStream``: validated, completed events appended to a Redis stream."""

from __future__ import annotations

import anyio
import orjson
import pytest
from support.engine import make_config

from mparticle_dest import BufferFullError, Destination, InvalidEventError
from mparticle_dest.streams import EventStream, connect

pytestmark = pytest.mark.anyio


async def entries(url: str, stream: str = "s") -> list[tuple[str, dict[str, object]]]:
    client = connect(url)
    try:
        reply = await client.execute_command("XRANGE", stream, "-", "+")
    finally:
        await client.aclose()
    return [(i.decode(), orjson.loads(f[b"e"])) for i, f in reply]


async def test_push_fills_id_and_timestamp_once_and_appends_the_event(redis_url):
    async with EventStream(redis_url, stream="s") as stream:
        entry = await stream.push({"name": "page view", "user": {"id": "u1"}})
        kept = await stream.push({"name": "order complete", "id": "e-2", "timestamp": 5})
    (first_id, first), (_, second) = await entries(redis_url)
    assert entry == first_id
    assert first["entity"] == "page" and first["action"] == "view"
    assert len(first["id"]) == 16 and isinstance(first["timestamp"], int)
    assert (second["id"], second["timestamp"]) == ("e-2", 5)
    assert kept is not None
    assert stream.stats.added == 2


@pytest.mark.parametrize(
    "bad",
    [{"name": "nospace"}, {"name": "page view", "data": {"x": float("nan")}}, ["not", "a", "map"]],
)
async def test_push_refuses_what_destination_push_refuses_with_the_same_error(redis_url, bad):
    async with Destination(make_config()) as dest:
        with pytest.raises(InvalidEventError) as expected:
            await dest.push(bad)
    async with EventStream(redis_url, stream="s") as stream:
        with pytest.raises(InvalidEventError) as got:
            await stream.push(bad)
    assert str(got.value) == str(expected.value)
    assert got.value.field == expected.value.field
    assert stream.stats.invalid == 1
    assert await entries(redis_url) == []


async def test_with_a_config_skipped_events_are_not_appended(redis_url):
    config = make_config(mapping={"page": {"view": {"ignore": True}}})
    async with EventStream(redis_url, stream="s", config=config) as stream:
        assert await stream.push({"name": "page view"}) is None
        assert await stream.push({"name": "order complete"}) is not None
    assert [e["name"] for _, e in await entries(redis_url)] == ["order complete"]
    assert stream.stats.skipped == 1


async def test_at_the_bound_drop_and_raise_are_counted_and_nothing_is_trimmed(redis_url):
    async with EventStream(redis_url, stream="s", max_len=2, full_policy="drop") as stream:
        for n in range(4):
            await stream.push({"name": "page view", "id": f"e{n}"})
    assert stream.stats.dropped == 2
    assert [e["id"] for _, e in await entries(redis_url)] == ["e0", "e1"]
    async with EventStream(redis_url, stream="s", max_len=2, full_policy="raise") as stream:
        with pytest.raises(BufferFullError):
            await stream.push({"name": "page view", "id": "e9"})
    assert stream.stats.refused == 1
    assert [e["id"] for _, e in await entries(redis_url)] == ["e0", "e1"]


async def test_wait_resumes_when_a_relay_deletes_delivered_entries(redis_url):
    async with EventStream(redis_url, stream="s", max_len=1) as stream:
        await stream.push({"name": "page view", "id": "e0"})
        pushed = anyio.Event()

        async def second() -> None:
            await stream.push({"name": "page view", "id": "e1"})
            pushed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(second)
            await anyio.sleep(0.05)
            assert not pushed.is_set()  # waiting: the stream is at its bound
            ((first_id, _),) = await entries(redis_url)
            client = connect(redis_url)
            await client.execute_command("XDEL", "s", first_id)  # what a relay does
            await client.aclose()
            with anyio.fail_after(5):
                await pushed.wait()
    assert [e["id"] for _, e in await entries(redis_url)] == ["e1"]
    assert stream.stats.waits == 1


async def test_wait_gives_up_after_full_timeout(redis_url):
    async with EventStream(redis_url, stream="s", max_len=1, full_timeout=0.05) as stream:
        await stream.push({"name": "page view"})
        with pytest.raises(BufferFullError, match="after waiting"):
            await stream.push({"name": "page view"})
    assert stream.stats.refused == 1


async def test_push_needs_the_stream_open(redis_url):
    stream = EventStream(redis_url, stream="s")
    with pytest.raises(Exception, match="not open"):
        await stream.push({"name": "page view"})
