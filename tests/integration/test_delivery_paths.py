"""The two ways a request leaves: a caller's ``httpx.AsyncClient`` gets the full
``client.send`` (its hooks, auth and cookies apply); the client a destination builds
sends straight through its transport, with the same bytes on the wire."""

from __future__ import annotations

import json
import logging

import anyio
import anyio.abc
import httpx
import pytest
from support.engine import event, make_config

from mparticle_dest._batching.accumulator import SealedBatch
from mparticle_dest._delivery import Deliverer, make_client
from mparticle_dest._destination.destination import Destination
from mparticle_dest._mparticle.constants import BULK_PATH
from mparticle_dest._wire import basic_auth_header, endpoint
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio

AUTH = basic_auth_header("key", "secret")


def batch(i: int) -> SealedBatch:
    body = json.dumps({"events": [{"n": i}], "source_request_id": f"r{i}"}).encode()
    return SealedBatch(key=i, body=body, event_count=1, source_request_id=f"r{i}", seq=i)


async def test_the_own_clients_requests_equal_what_client_send_makes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    async with FakeMparticle(validate=False) as server:
        url = endpoint(base_url=server.url, path=BULK_PATH)
        auth = basic_auth_header(server.settings["apiKey"], server.settings["apiSecret"])
        for own in (False, True):
            async with make_client() as client:
                deliverer = Deliverer(client, url=url, auth_header=auth, own_client=own)
                results = await deliverer.send([batch(1), batch(2)])
                assert [r.delivered for r in results] == [True, True]
        full, direct = server.requests
    assert (direct.method, direct.path, direct.body) == (full.method, full.path, full.body)
    assert dict(direct.headers) == dict(full.headers)
    assert direct.headers["user-agent"].startswith("mparticle-dest/")
    assert direct.headers["accept-encoding"] == "identity"
    # httpx's INFO record of each request, made by the deliverer on the direct way.
    logged = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert logged == [f'HTTP Request: POST {url} "HTTP/1.1 202 Accepted"'] * 2


class _CallerAuth(httpx.Auth):
    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["X-Caller-Auth"] = "signed"
        yield request


async def test_a_caller_clients_hooks_auth_and_cookies_apply() -> None:
    seen: list[int] = []

    async def on_response(response: httpx.Response) -> None:
        seen.append(response.status_code)

    async with FakeMparticle() as server:
        async with httpx.AsyncClient(
            auth=_CallerAuth(),
            cookies={"route": "blue"},
            event_hooks={"response": [on_response]},
        ) as client:
            async with Destination(
                make_config(server), base_url=server.url, http_client=client
            ) as dest:
                assert (await (await dest.push(event("u1", 1)))).delivered
        (request,) = server.requests
    assert seen == [202]
    assert request.headers["x-caller-auth"] == "signed"
    assert request.headers["cookie"] == "route=blue"


async def test_the_own_client_goes_through_a_proxy_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[bytes] = []

    async def proxy(stream: anyio.abc.SocketStream) -> None:
        """A forward proxy that answers 202 itself: records the request line."""
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive()
            head, _, body = data.partition(b"\r\n\r\n")
            lines.append(head.split(b"\r\n", 1)[0])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += await stream.receive()
            await stream.send(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - not Django
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, proxy)
        async with make_client() as client:  # reads the environment, as httpx does
            url = "http://mparticle.invalid/v2/bulkevents"
            deliverer = Deliverer(client, url=url, auth_header=AUTH, own_client=True)
            (result,) = await deliverer.send([batch(1)])
        tg.cancel_scope.cancel()
    assert result.delivered
    assert lines == [b"POST http://mparticle.invalid/v2/bulkevents HTTP/1.1"]


async def test_the_own_client_once_closed_refuses_to_send_as_client_send_does() -> None:
    async with FakeMparticle(validate=False) as server:
        client = make_client()
        url = endpoint(base_url=server.url, path=BULK_PATH)
        auth = basic_auth_header(server.settings["apiKey"], server.settings["apiSecret"])
        deliverer = Deliverer(client, url=url, auth_header=auth, own_client=True)
        assert (await deliverer.send([batch(1)]))[0].delivered
        await client.aclose()
        with pytest.raises(RuntimeError, match="client has been closed"):
            await deliverer.send([batch(2)])
        assert len(server.requests) == 1
