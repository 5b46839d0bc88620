"""``python -m benchmarks request``: client CPU per HTTP request, library vs bare httpx.

The same request bodies (by default one batch of one event each, the walkerOS shape,
where the per-request cost is everything; ``--batches 100``: 100 one-event batches of
distinct users each, the shape of requests at 200,000 users) are sent two ways, each
in a fresh process, against one sink without a limit, with the same concurrency
(``--concurrency``; by default the library's default ``max_in_flight``, 4):

- ``library``: a :class:`~mparticle_dest.Destination` with ``batch.size`` 1 and
  ``max_batches_per_request=batches``: one request per ``batches`` pushed events. Its
  CPU per request less the CPU of validating and building its events
  (``EventBuilder.build``, timed apart in the same process) is what the library
  spends on a request (with ``--batches`` above 1, its batches' bookkeeping too). A destination
  is entered and closed once before the clock starts: the first entering imports the
  library's HTTP side and telemetry, a one-time cost (the bare loop's imports are
  done before its clock too);
- ``bare``: ``httpx.AsyncClient.post`` of the very same bytes
  (:mod:`benchmarks.baseline_minimal` builds them; the happy-path smoke test proves
  they equal the library's) from as many tasks, checking each answer is a 202.

The two alternate for ``--rounds`` rounds; medians are reported.
"""

from __future__ import annotations

import base64
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from . import procs, regime_cli
from .baseline_minimal import encode_batch, event_body
from .scenario import API_KEY, API_SECRET, scenario_config
from .traffic import Traffic


@dataclass(frozen=True)
class RequestParams:
    """``requests`` requests of ``batches`` one-event batches per run, ``rounds``
    alternating rounds.

    ``concurrency``: requests in flight in both clients (the library's
    ``max_in_flight``; 4 is its default).
    """

    requests: int = 2_000
    rounds: int = 3
    users: int = 50
    concurrency: int = 4
    batches: int = 1


SMOKE = RequestParams(requests=100, rounds=1)


def _events(p: RequestParams) -> list[dict[str, Any]]:
    # A request's batches are of distinct users (one event each, as at many users).
    traffic = Traffic(max(p.users, p.batches), seed=3)
    return [traffic.event(k) for k in range(p.requests * p.batches)]


async def library(spec: dict[str, Any]) -> dict[str, Any]:
    """One request per ``batches`` pushed events through a Destination; CPU per request."""
    from mparticle_dest import Destination
    from mparticle_dest._config.model import DestinationConfig
    from mparticle_dest._payload.builder import EventBuilder

    p = RequestParams(**spec["params"])
    config = scenario_config(1, 1_000)
    events = _events(p)
    dest = Destination(
        config,
        base_url=spec["url"],
        max_batches_per_request=p.batches,
        max_in_flight=p.concurrency,
        max_buffered_events=len(events) + 1,
    )
    async with Destination(config, base_url=spec["url"]):  # the one-time imports
        pass
    cpu0 = time.process_time()
    async with dest:
        for event in events:
            await dest.push(event)
    cpu_s = time.process_time() - cpu0
    builder = EventBuilder.from_config(DestinationConfig.from_dict(config))
    b0 = time.process_time()
    for event in events:
        builder.build(event)  # validation included
    build_s = time.process_time() - b0
    s = dest.stats
    n = s.requests
    return {
        "client": "library",
        "requests": n,
        "delivered_events": s.delivered_events,
        "cpu_us_per_request": cpu_s / n * 1e6,
        "build_us_per_event": build_s / len(events) * 1e6,
        "net_us_per_request": (cpu_s - build_s) / n * 1e6,
    }


def request_bodies(p: RequestParams) -> list[bytes]:
    """The bulk bodies the library sends for ``p``'s events, built by hand."""
    batches = []
    for event in _events(p):
        user = event["user"]
        identities = {"customer_id": user["id"], "email": user["email"]}
        batches.append(encode_batch([event_body(event)], identities))
    n = p.batches
    return [b"[" + b",".join(batches[i : i + n]) + b"]" for i in range(0, len(batches), n)]


async def bare(spec: dict[str, Any]) -> dict[str, Any]:
    """The same bodies posted with a bare ``httpx.AsyncClient``; CPU per request."""
    import httpx

    p = RequestParams(**spec["params"])
    bodies = request_bodies(p)
    token = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    url = spec["url"] + "/v2/bulkevents"
    pending = iter(bodies)
    ok = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        for body in pending:
            response = await client.post(url, content=body, headers=headers)
            if response.status_code != 202:
                raise RuntimeError(f"the sink answered {response.status_code}")
            ok += 1

    # Built before the clock starts (its TLS context takes 20-40 ms), as the library's is.
    client = httpx.AsyncClient(limits=httpx.Limits(max_connections=p.concurrency))
    async with client:
        cpu0 = time.process_time()
        async with anyio.create_task_group() as tg:
            for _ in range(p.concurrency):
                tg.start_soon(worker, client)
        cpu_s = time.process_time() - cpu0
    return {"client": "bare", "requests": ok, "cpu_us_per_request": cpu_s / ok * 1e6}


def run_request(p: RequestParams) -> dict[str, Any]:
    """Alternate library and bare runs; medians per request."""
    runs: dict[str, list[dict[str, Any]]] = {"library": [], "bare": []}
    with procs.metered_sink(None) as sink:
        for r in range(p.rounds):
            for client in ("library", "bare"):
                spec = {"kind": f"request-{client}", "url": sink.url, "params": asdict(p)}
                runs[client].append(procs.run(spec, f"request-{client}/{r}"))
        sink_stats = sink.fetch_stats()
    lib_net = statistics.median(x["net_us_per_request"] for x in runs["library"])
    lib_all = statistics.median(x["cpu_us_per_request"] for x in runs["library"])
    bare_all = statistics.median(x["cpu_us_per_request"] for x in runs["bare"])
    return {
        "params": asdict(p),
        "runs": runs,
        "sink": sink_stats,
        "library_us_per_request": lib_all,
        "library_net_us_per_request": lib_net,
        "build_us_per_event": statistics.median(x["build_us_per_event"] for x in runs["library"]),
        "build_us_per_request": p.batches
        * statistics.median(x["build_us_per_event"] for x in runs["library"]),
        "bare_us_per_request": bare_all,
        "ratio": lib_net / bare_all,
    }


def format_request(r: dict[str, Any]) -> str:
    """The report as text."""
    p = r["params"]
    return "\n".join(
        [
            f"request: {p['requests']:,} requests of {p['batches']} one-event batch(es) per run, "
            f"{p['concurrency']} in flight, {p['rounds']} alternating round(s), medians",
            "",
            f"library CPU per request          {r['library_us_per_request']:8.0f} us "
            f"(of which validate + build of its events {r['build_us_per_request']:.0f} us)",
            f"library, net of the event build  {r['library_net_us_per_request']:8.0f} us",
            f"bare httpx.AsyncClient.post      {r['bare_us_per_request']:8.0f} us",
            f"ratio (net library / bare)       {r['ratio']:8.2f}x",
        ]
    )


def main(argv: list[str]) -> int:
    """``python -m benchmarks request [options]``."""
    d = RequestParams()
    ap = regime_cli.parser("request", __doc__)
    ap.add_argument("--requests", type=int, help=f"requests per run ({d.requests:,})")
    ap.add_argument("--rounds", type=int, help=f"alternating rounds ({d.rounds})")
    ap.add_argument(
        "--concurrency", type=int, help=f"requests in flight, both clients ({d.concurrency})"
    )
    ap.add_argument(
        "--batches", type=int, help=f"one-event batches per request, at most 100 ({d.batches})"
    )
    args = ap.parse_args(argv)
    names = ("requests", "rounds", "concurrency", "batches")
    report = run_request(regime_cli.params(args, d, SMOKE, names))
    return regime_cli.emit(report, format_request, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
