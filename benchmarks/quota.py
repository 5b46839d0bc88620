"""``python -m benchmarks quota``: delivery under mParticle's batches-per-second quota.

A metered sink (the fake server in its own process, ``serve --rate-limit``: a token
bucket of batches, 429 with ``Retry-After: 1`` above it) and one or more client
processes, each a :class:`~mparticle_dest.Destination` fed by a producer that offers
a steady event rate for a fixed time (:func:`benchmarks.traffic.produce`), then
closes. All processes start together (a shared start time on the monotonic clock).

Measured:

- events pushed / offered, and how long ``push`` held the producer;
- **quota used while a backlog exists**: batches the sink accepted per second ÷ the
  limit, over the time every client reported ``stats.quota_limited`` (its pacer held
  a request back within the last second: it had batches due that the quota did not
  let through), between ``--warmup`` seconds after the start and the first client's
  close end; and, for comparison, over that whole window (``quota used from the
  warm-up on``), which also counts the seconds when the clients had nothing due: at
  the start of a burst the library holds young batches back under a binding quota;
- the share of requests answered 429, events per delivered batch (over the run, and
  in the window, where the close's last partial batches do not count), batches per
  accepted request, failed events (by reason), the close duration;
- per process (``--processes N``): its delivered batches in the window, and the
  max/min ratio between processes (fairness).

The sink samples its counters (``GET /_fake/stats``) every 0.25 s;
each client samples its own ``dest.stats``. The clients' counts are cross-checked
with the sink's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import anyio

from . import procs, regime_cli
from .scenario import scenario_config
from .traffic import Traffic, produce

#: A start time this far ahead lets every child import and connect first.
_START_DELAY_S = 1.5


@dataclass(frozen=True)
class QuotaParams:
    """One quota run.

    Attributes:
        processes: Client processes sharing the limit.
        users: Distinct users of each process's traffic.
        rate: Events per second offered in all (split evenly between processes).
        duration: Seconds of offered traffic.
        limit: The sink's limit, batches per second.
        burst: The sink's bucket size in batches.
        usage: What the sink's ``X-mp-rate-limit-percentage-used`` reports:
            ``"bucket"`` (how full its bucket is) or ``"window"`` (batches accepted
            over the last second ÷ the limit).
        warmup: Seconds after the start excluded from the quota window.
        close_timeout: ``close_timeout`` of every Destination.
        batch_size: walkerOS ``batch.size``.
        batch_age: walkerOS ``batch.age`` in ms.
        options: Further ``Destination`` keyword options (JSON values).
        sample: Seconds between counter samples.
        keep_samples: Keep each client's samples in the report (time, delivered
            batches, buffered, delivered events, quota_limited, throttled, send_rate).
    """

    processes: int = 1
    users: int = 5_000
    rate: float = 20_000.0
    duration: float = 20.0
    limit: float = 270.0
    burst: float = 50.0
    usage: str = "bucket"
    warmup: float = 2.0
    close_timeout: float = 300.0
    batch_size: int = 100
    batch_age: int = 1_000
    options: dict[str, Any] = field(default_factory=dict)
    sample: float = 0.25
    keep_samples: bool = False


SMOKE = QuotaParams(users=200, rate=2_000, duration=1.0, limit=1_000, burst=200, warmup=0.3)


# -- the client (runs in a child process) ------------------------------------------------


async def client(spec: dict[str, Any]) -> dict[str, Any]:
    """One client process: wait for the common start, offer the traffic, close; report."""
    from mparticle_dest import Destination

    p = QuotaParams(**spec["params"])
    index: int = spec["index"]
    failures: Counter[str] = Counter()

    def on_error(failed: Any) -> None:
        failures[failed.reason] += failed.event_count

    dest = Destination(
        scenario_config(p.batch_size, p.batch_age),
        base_url=spec["url"],
        close_timeout=p.close_timeout,
        on_error=on_error,
        **p.options,
    )
    traffic = Traffic(p.users, seed=1000 + index, id_prefix=index)
    samples: list[tuple[float, int, int, int, bool, int, float | None]] = []

    async def sample() -> None:
        while True:
            s = dest.stats
            samples.append(
                (
                    time.monotonic(),
                    s.delivered_batches,
                    s.buffered,
                    s.delivered_events,
                    s.quota_limited,
                    s.throttled,
                    s.send_rate,
                )
            )
            await anyio.sleep(p.sample)

    await anyio.sleep(max(0.0, spec["start_at"] - time.monotonic()))
    cpu0 = time.process_time()
    async with anyio.create_task_group() as tg:
        async with dest:
            tg.start_soon(sample)
            produced = await produce(
                dest.push, traffic, rate=p.rate / p.processes, duration=p.duration
            )
            close_start = time.monotonic()
        close_end = time.monotonic()
        cpu_s = time.process_time() - cpu0
        tg.cancel_scope.cancel()
    s = dest.stats
    samples.append(
        (close_end, s.delivered_batches, s.buffered, s.delivered_events, True, s.throttled, None)
    )
    return {
        "index": index,
        **asdict(produced),
        "accepted": s.accepted,
        "delivered_events": s.delivered_events,
        "delivered_batches": s.delivered_batches,
        "failed_events": s.failed_events,
        "failed_by_reason": dict(failures),
        "requests": s.requests,
        "throttled": s.throttled,
        "retries": s.retries,
        "sealed_batches": s.batches,
        "close_start": close_start,
        "close_end": close_end,
        "close_s": close_end - close_start,
        "cpu_s": cpu_s,
        "samples": samples,
    }


# -- the parent ------------------------------------------------------------------------


def _at(samples: list[tuple[float, float]], t: float) -> float:
    """Linear interpolation of a non-decreasing counter sampled at increasing times."""
    times = [s[0] for s in samples]
    i = bisect_left(times, t)
    if i == 0:
        return samples[0][1]
    if i >= len(samples):
        return samples[-1][1]
    (t0, v0), (t1, v1) = samples[i - 1], samples[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1


def _limited_at(samples: list[list[Any]], t: float) -> bool:
    """A client's ``quota_limited`` at time ``t``: its last sample at or before ``t``."""
    times = [row[0] for row in samples]
    i = bisect_left(times, t)
    if i < len(samples) and times[i] == t:
        return bool(samples[i][4])
    return bool(samples[i - 1][4]) if i > 0 else False


def _backlogged(
    p: QuotaParams,
    clients: list[dict[str, Any]],
    batch_samples: list[tuple[float, float]],
    start: float,
    end: float,
) -> tuple[float, float]:
    """Seconds in ``[start, end)`` every client was held back by the quota, and the
    batches the sink accepted in them (steps of ``p.sample``)."""
    seconds = batches = 0.0
    t = start
    while t < end:
        t1 = min(t + p.sample, end)
        if all(_limited_at(c["samples"], t) and _limited_at(c["samples"], t1) for c in clients):
            seconds += t1 - t
            batches += _at(batch_samples, t1) - _at(batch_samples, t)
        t = t1
    return seconds, batches


def run_quota(p: QuotaParams) -> dict[str, Any]:
    """Start the sink and ``p.processes`` clients; return the report."""
    with procs.metered_sink(p.limit, p.burst, p.usage) as sink:
        start_at = time.monotonic() + _START_DELAY_S + 0.3 * p.processes
        children = [
            procs.Child(
                {
                    "kind": "quota",
                    "index": i,
                    "url": sink.url,
                    "start_at": start_at,
                    "params": asdict(p),
                },
                f"quota/{i}",
            )
            for i in range(p.processes)
        ]
        server: list[tuple[float, dict[str, Any]]] = []
        while any(c.running() for c in children):
            server.append((time.monotonic(), sink.fetch_stats()))
            time.sleep(p.sample)
        server.append((time.monotonic(), sink.fetch_stats()))
        clients = [c.result() for c in children]
    return summarize(p, clients, server)


def summarize(
    p: QuotaParams, clients: list[dict[str, Any]], server: list[tuple[float, dict[str, Any]]]
) -> dict[str, Any]:
    """The report of a run from the clients' results and the sink's counter samples."""
    final = server[-1][1]
    by_status = final["by_status"]
    window_start = max(c["started"] for c in clients) + p.warmup
    window_end = min(c["close_end"] for c in clients)
    if window_end <= window_start:  # a run too short for its warm-up (smoke sizes)
        window_start = min(c["started"] for c in clients)
        window_end = max(c["close_end"] for c in clients)
    window = window_end - window_start
    batch_samples = [(t, float(s["batches"])) for t, s in server]
    window_batches = _at(batch_samples, window_end) - _at(batch_samples, window_start)
    per_process = []
    window_events = 0.0
    for c in clients:
        delivered = [(t, float(b)) for t, b, *_ in c["samples"]]
        per_process.append(_at(delivered, window_end) - _at(delivered, window_start))
        events = [(row[0], float(row[3])) for row in c["samples"]]
        window_events += _at(events, window_end) - _at(events, window_start)
    backlog_s, backlog_batches = _backlogged(p, clients, batch_samples, window_start, window_end)
    accepted_requests = by_status.get("202", 0)
    offered = sum(c["offered"] for c in clients)
    delivered_events = sum(c["delivered_events"] for c in clients)
    delivered_batches = sum(c["delivered_batches"] for c in clients)
    failed: Counter[str] = Counter()
    for c in clients:
        failed.update(c["failed_by_reason"])
    if not p.keep_samples:
        for c in clients:
            del c["samples"]  # a few thousand rows per client
    return {
        "params": asdict(p),
        "offered": offered,
        "pushed": sum(c["pushed"] for c in clients),
        "accepted": sum(c["accepted"] for c in clients),
        "blocked_s": max(c["blocked_s"] for c in clients),
        "window_s": window,
        "window_batches": window_batches,
        "window_quota_used": window_batches / window / p.limit if window > 0 else 0.0,
        "backlog_s": backlog_s,
        "backlog_batches": backlog_batches,
        "quota_used": backlog_batches / backlog_s / p.limit if backlog_s > 0 else 0.0,
        "requests": final["requests"],
        "throttled": by_status.get("429", 0),
        "throttled_share": by_status.get("429", 0) / final["requests"] if final["requests"] else 0,
        "accepted_requests": accepted_requests,
        "server_batches": final["batches"],
        "server_events": final["events"],
        "delivered_events": delivered_events,
        "delivered_batches": delivered_batches,
        "events_per_batch": delivered_events / delivered_batches if delivered_batches else 0.0,
        "window_events_per_batch": window_events / sum(per_process) if sum(per_process) else 0.0,
        "batches_per_request": final["batches"] / accepted_requests if accepted_requests else 0.0,
        "failed_events": sum(c["failed_events"] for c in clients),
        "failed_by_reason": dict(failed),
        "close_s": max(c["close_s"] for c in clients),
        "per_process_window_batches": per_process,
        "fairness": max(per_process) / min(per_process) if min(per_process) > 0 else None,
        "clients": clients,
    }


def format_quota(r: dict[str, Any]) -> str:
    """The report as a short text table."""
    p = r["params"]
    lines = [
        f"quota: {p['processes']} process(es), {p['users']:,} users each, "
        f"{p['rate']:,.0f} events/s offered for {p['duration']:g} s, "
        f"limit {p['limit']:g} batches/s (burst {p['burst']:g}, usage header: {p['usage']}), "
        f"options {p['options'] or '{}'}",
        "",
        f"events pushed / offered        {r['pushed']:,} / {r['offered']:,} "
        f"(producer blocked {r['blocked_s']:.1f} s of {p['duration']:g} s)",
        f"quota used while backlogged    {r['quota_used']:.1%} "
        f"({r['backlog_batches']:,.0f} batches in {r['backlog_s']:.1f} s)",
        f"quota used from the warm-up on {r['window_quota_used']:.1%} "
        f"({r['window_batches']:,.0f} batches in {r['window_s']:.1f} s)",
        f"requests answered 429          {r['throttled_share']:.1%} "
        f"({r['throttled']:,} of {r['requests']:,})",
        f"events per delivered batch     {r['events_per_batch']:.1f} "
        f"({r['window_events_per_batch']:.1f} in the window)",
        f"batches per accepted request   {r['batches_per_request']:.1f}",
        f"delivered events / batches     {r['delivered_events']:,} / {r['delivered_batches']:,} "
        f"(sink saw {r['server_events']:,} / {r['server_batches']:,})",
        f"failed events                  {r['failed_events']:,} {r['failed_by_reason'] or ''}",
        f"close duration                 {r['close_s']:.1f} s",
    ]
    if p["processes"] > 1:
        shares = ", ".join(f"{b:,.0f}" for b in r["per_process_window_batches"])
        fair = f"{r['fairness']:.2f}" if r["fairness"] is not None else "n/a"
        lines.append(f"batches per process (window)   {shares}  (max/min {fair})")
        for c in r["clients"]:
            share = c["throttled"] / c["requests"] if c["requests"] else 0.0
            lines.append(
                f"  process {c['index']}: pushed {c['pushed']:,}, delivered "
                f"{c['delivered_events']:,} events in {c['delivered_batches']:,} batches, "
                f"429 {share:.1%}, failed {c['failed_events']:,}, close {c['close_s']:.1f} s"
            )
    return "\n".join(lines)


def _option(text: str) -> tuple[str, Any]:
    key, eq, value = text.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(f"expected KEY=JSON, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def main(argv: list[str]) -> int:
    """``python -m benchmarks quota [options]``."""
    d = QuotaParams()
    ap = regime_cli.parser("quota", __doc__)
    ap.add_argument("--processes", type=int, help=f"client processes ({d.processes})")
    ap.add_argument("--users", type=int, help=f"users per process ({d.users:,})")
    ap.add_argument("--rate", type=float, help=f"events/s offered in all ({d.rate:,.0f})")
    ap.add_argument("--duration", type=float, help=f"seconds of traffic ({d.duration:g})")
    ap.add_argument("--limit", type=float, help=f"sink limit, batches/s ({d.limit:g})")
    ap.add_argument("--burst", type=float, help=f"sink bucket, batches ({d.burst:g})")
    ap.add_argument(
        "--usage",
        choices=("bucket", "window"),
        help=f"what the sink's usage header reports ({d.usage}; see serve --rate-limit-usage)",
    )
    ap.add_argument("--warmup", type=float, help=f"seconds left out of the window ({d.warmup:g})")
    ap.add_argument("--close-timeout", type=float, help=f"close_timeout ({d.close_timeout:g})")
    ap.add_argument("--batch-size", type=int, help=f"batch.size ({d.batch_size})")
    ap.add_argument("--batch-age", type=int, help=f"batch.age ms ({d.batch_age})")
    ap.add_argument(
        "--max-buffered-events", type=int, help="max_buffered_events (the library's default)"
    )
    ap.add_argument(
        "--option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="another Destination keyword option, e.g. max_in_flight=8; repeatable",
    )
    ap.add_argument(
        "--samples", action="store_true", help="keep each client's 0.25 s samples in the JSON"
    )
    args = ap.parse_args(argv)
    names = (
        "processes",
        "users",
        "rate",
        "duration",
        "limit",
        "burst",
        "usage",
        "warmup",
        "close_timeout",
        "batch_size",
        "batch_age",
    )
    options = dict(args.option)
    if args.max_buffered_events is not None:
        options["max_buffered_events"] = args.max_buffered_events
    params = replace(
        regime_cli.params(args, d, SMOKE, names), options=options, keep_samples=args.samples
    )
    report = run_quota(params)
    return regime_cli.emit(report, format_quota, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
