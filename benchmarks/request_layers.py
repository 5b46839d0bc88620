"""``python -m benchmarks request-layers``: where the client CPU of one request goes.

The bodies of ``python -m benchmarks request`` (``--batches`` one-event batches per
request) are posted to one sink without a limit (its own process) through ever lower
layers of the same stack, alternating in one process for ``--rounds`` rounds, with
``--concurrency`` requests in flight; CPU per request, medians:

- ``client.post``: ``httpx.AsyncClient.post`` (the bare loop of ``request``);
- ``client.send``: ``client.build_request`` then ``client.send(stream=True)``, the body
  read and the response closed: how the deliverer sends through a caller's client;
- ``transport``: a prebuilt ``httpx.Request`` handed to the client's transport
  (``handle_async_request``): how it sends through the client it built;
- ``httpcore``: a prebuilt ``httpcore.Request`` handed to that transport's connection
  pool (private ``_pool``): the rest is httpx's glue around httpcore;
- ``httpcore-asyncio``: a pool of its own over an asyncio-native network stream
  (:class:`_AsyncioBackend`, just enough for this loopback sink): the rest of the
  ``httpcore`` figure is anyio's socket streams (asyncio only);
- ``asyncio-streams``: the same requests written and parsed by hand over
  ``asyncio.open_connection``: the event loop and the system calls, the floor.

The last two are measurements only, not ways the library sends.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import httpcore
import httpx

from . import procs, regime_cli
from .request import RequestParams, request_bodies
from .scenario import API_KEY, API_SECRET

LAYERS = (
    "client.post",
    "client.send",
    "transport",
    "httpcore",
    "httpcore-asyncio",
    "asyncio-streams",
)
_PATH = "/v2/bulkevents"


@dataclass(frozen=True)
class LayersParams:
    """``requests`` requests of ``batches`` one-event batches per layer and round."""

    requests: int = 2_000
    rounds: int = 3
    concurrency: int = 4
    batches: int = 1


SMOKE = LayersParams(requests=40, rounds=1)


class _Protocol(asyncio.Protocol):
    """Bytes received, and whoever waits for more (or for the socket to drain)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> None:
        self.closed = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()


class _AsyncioStream(httpcore.AsyncNetworkStream):
    """A plain-TCP stream on asyncio's transport, without anyio's per-call scopes
    (no timeouts, no TLS, no flow control: a measurement against a local sink)."""

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        p = self._protocol
        while not p.buffer and not p.closed:
            p.waiter = asyncio.get_running_loop().create_future()
            await p.waiter
        data = bytes(p.buffer[:max_bytes])
        del p.buffer[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._transport.write(buffer)

    async def aclose(self) -> None:
        self._transport.close()

    def get_extra_info(self, info: str) -> Any:
        return (
            bool(self._protocol.buffer) or self._protocol.closed if info == "is_readable" else None
        )


class _AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        transport, protocol = await asyncio.get_running_loop().create_connection(
            _Protocol, host, port
        )
        return _AsyncioStream(transport, protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _layer(layer: str, url: str, bodies: list[bytes], concurrency: int) -> float:
    """CPU seconds to post ``bodies`` through ``layer``, ``concurrency`` at a time."""
    token = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    headers = {
        "Authorization": f"Basic {token}",
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
    }
    target = httpx.URL(url + _PATH)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(limits=limits, follow_redirects=False)
    template = client.build_request("POST", target, content=b"", headers=headers)
    raw = [h for h in template.headers.raw if h[0].lower() != b"content-length"]
    transport = client._transport_for_url(target)
    assert isinstance(transport, httpx.AsyncHTTPTransport)
    pool: httpcore.AsyncConnectionPool = (
        httpcore.AsyncConnectionPool(max_connections=concurrency, network_backend=_AsyncioBackend())
        if layer == "httpcore-asyncio"
        else transport._pool
    )
    core_url = httpcore.URL(
        scheme=target.raw_scheme, host=target.raw_host, port=target.port, target=target.raw_path
    )

    async def one(body: bytes) -> int:
        length = (b"Content-Length", b"%d" % len(body))
        if layer == "client.post":
            return (await client.post(target, content=body, headers=headers)).status_code
        if layer == "client.send":
            request = client.build_request("POST", target, content=body, headers=headers)
            response = await client.send(request, stream=True)
        elif layer == "transport":
            request = httpx.Request(
                "POST",
                target,
                headers=[*raw, length],
                stream=httpx.ByteStream(body),
                extensions=template.extensions,
            )
            response = await transport.handle_async_request(request)
        else:
            core = httpcore.Request(
                b"POST",
                core_url,
                headers=[*raw, length],
                content=body,
                extensions=template.extensions,
            )
            answer = await pool.handle_async_request(core)
            async for _ in answer.aiter_stream():
                pass
            await answer.aclose()
            return answer.status
        async for _ in response.aiter_raw():
            pass
        await response.aclose()
        return response.status_code

    pending = iter(bodies)

    async def worker() -> None:
        for body in pending:
            status = await one(body)
            if status != 202:
                raise RuntimeError(f"the sink answered {status}")

    async def streams_worker() -> None:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        head = b"".join(b"%s: %s\r\n" % h for h in raw)
        for body in pending:
            writer.write(
                b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n"
                % (target.raw_path, head, len(body))
                + body
            )
            answer = await reader.readuntil(b"\r\n\r\n")
            if b" 202 " not in answer.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"the sink answered {answer[:40]!r}")
            for line in answer.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":", 1)[1]))
        writer.close()

    run: Callable[[], Awaitable[None]] = streams_worker if layer == "asyncio-streams" else worker
    async with client, pool:
        cpu0 = time.process_time()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(run)
        return time.process_time() - cpu0


def run_layers(p: LayersParams) -> dict[str, Any]:
    """Every layer, alternating, ``rounds`` times; medians per request."""
    bodies = request_bodies(RequestParams(requests=p.requests, batches=p.batches))
    per_request: dict[str, list[float]] = {layer: [] for layer in LAYERS}
    with procs.metered_sink(None) as sink:
        for layer in LAYERS:  # warm: connections, imports, code paths
            asyncio.run(_layer(layer, sink.url, bodies[: 4 * p.concurrency], p.concurrency))
        for _ in range(p.rounds):
            for layer in LAYERS:
                cpu_s = asyncio.run(_layer(layer, sink.url, bodies, p.concurrency))
                per_request[layer].append(cpu_s / len(bodies) * 1e6)
        sink_stats = sink.fetch_stats()
    return {
        "params": asdict(p),
        "body_bytes": sum(map(len, bodies)) // len(bodies),
        "us_per_request": per_request,
        "median_us_per_request": {k: statistics.median(v) for k, v in per_request.items()},
        "sink": sink_stats,
    }


def format_layers(r: dict[str, Any]) -> str:
    """The report as text: each layer, and what it costs beyond the one below."""
    p = r["params"]
    med = r["median_us_per_request"]
    lines = [
        f"request-layers: {p['requests']:,} requests of {p['batches']} one-event batch(es) "
        f"({r['body_bytes']:,} bytes), {p['concurrency']} in flight, "
        f"{p['rounds']} alternating round(s), medians",
        "",
        f"{'layer':18s} {'CPU us/request':>15s} {'beyond the next':>16s}  (rounds)",
    ]
    for i, layer in enumerate(LAYERS):
        beyond = med[layer] - med[LAYERS[i + 1]] if i + 1 < len(LAYERS) else med[layer]
        rounds = ", ".join(f"{x:.0f}" for x in r["us_per_request"][layer])
        lines.append(f"{layer:18s} {med[layer]:15.0f} {beyond:16.0f}  ({rounds})")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m benchmarks request-layers [options]``."""
    d = LayersParams()
    ap = regime_cli.parser("request-layers", __doc__)
    ap.add_argument("--requests", type=int, help=f"requests per layer and round ({d.requests:,})")
    ap.add_argument("--rounds", type=int, help=f"alternating rounds ({d.rounds})")
    ap.add_argument("--concurrency", type=int, help=f"requests in flight ({d.concurrency})")
    ap.add_argument("--batches", type=int, help=f"one-event batches per request ({d.batches})")
    args = ap.parse_args(argv)
    names = ("requests", "rounds", "concurrency", "batches")
    report = run_layers(regime_cli.params(args, d, SMOKE, names))
    return regime_cli.emit(report, format_layers, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
