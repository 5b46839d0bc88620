"""Scale-out benchmarks on Redis Streams (#14): ``python -m benchmarks.scale_out WHAT``.

Everything runs in real processes on loopback: a ``redis-server`` in a temporary
directory, the fake mParticle server (``python -m mparticle_dest.testing serve``),
``mparticle-dest relay`` processes and producer processes.

- ``kill``: 100,000 events from 2 producers, 3 relays, ``kill -9`` of a relay holding
  entries at a random moment, twice: events ingested once, de-duplicated resends, dead
  letters.
- ``quota``: 4 relays sharing a Redis token bucket against a fake limited to 200
  batches/s: accepted batches/s while the backlog lasts, share of requests answered 429.
- ``cpu``: CPU per event of one relay process vs an in-process ``Destination`` pushing
  the same events (both to the fake in its own process), in one run; the relay's is
  measured over its delivery window (see ``bench_cpu``).
- ``push``: ``EventStream.push`` latency percentiles on the local Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PY = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    from mirakuru import TCPExecutor

    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    with tempfile.TemporaryDirectory() as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory]
        command += ["--save", "", "--appendonly", "no"]
        executor = TCPExecutor(command, host="127.0.0.1", port=port, timeout=20)
        executor.start()
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            executor.stop()


class Child:
    def __init__(self, args: list[str], **popen: Any) -> None:
        self.popen = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, **popen)

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.communicate(timeout=30)

    def stop(self) -> str:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        out, _ = self.popen.communicate(timeout=120)
        return out


@contextmanager
def fake_server(*args: str) -> Iterator[tuple[str, Child]]:
    child = Child([PY, "-m", "mparticle_dest.testing", "serve", "--counters-only", *args])
    assert child.popen.stdout is not None
    url = child.popen.stdout.readline().strip()
    try:
        yield url, child
    finally:
        child.stop()


def fake_stats(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/_fake/stats", timeout=10).json())


def write_config(directory: Path, *, age_ms: int, size: int | None = None) -> Path:
    batch: dict[str, Any] = {"age": age_ms}
    if size:
        batch["size"] = size
    config = {
        "settings": {
            "apiKey": "test-key",
            "apiSecret": "test-secret",
            "userIdentities": {"customer_id": "user.id"},
        },
        "batch": batch,
    }
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def relay(config: Path, redis_url: str, base_url: str, name: str, *extra: str) -> Child:
    command = [PY, "-m", "mparticle_dest", "relay", "--config", str(config), "--redis", redis_url]
    command += ["--stream", "s", "--base-url", base_url, "--consumer", name, *extra]
    env = {**os.environ, "MPARTICLE_DEST_LOG_LEVEL": "WARNING"}
    return Child(command, env=env)


PRODUCER = """
import asyncio, json, sys, time
from mparticle_dest.streams import EventStream
async def main(url, prefix, count, users, rate):
    t0 = time.monotonic()
    async with EventStream(url, stream="s") as s:
        for n in range(count):
            await s.push({"name": "page view", "id": f"{prefix}-{n}",
                          "user": {"id": f"u{n % users}"}, "data": {"n": n}})
            if rate and n / rate - (time.monotonic() - t0) > 0.005:
                await asyncio.sleep(n / rate - (time.monotonic() - t0))
    print(json.dumps({"added": s.stats.added}))
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])))
"""


def producer(redis_url: str, prefix: str, count: int, users: int, rate: float) -> Child:
    return Child([PY, "-c", PRODUCER, redis_url, prefix, str(count), str(users), str(rate)])


async def _status(redis_url: str) -> Any:
    from mparticle_dest.streams import Keys, connect, stream_status

    client = connect(redis_url)
    try:
        return await stream_status(client, Keys.of("s"), "mparticle-relays")
    finally:
        await client.aclose()


def status(redis_url: str) -> Any:
    return asyncio.run(_status(redis_url))


def bench_kill(events: int, seed: int | None) -> dict[str, Any]:
    rng = random.Random(seed)
    with (
        redis_server() as redis_url,
        fake_server() as (url, _fake),
        tempfile.TemporaryDirectory() as d,
    ):
        config = write_config(Path(d), age_ms=500, size=100)
        claim = ("--claim-idle", "5", "--close-timeout", "20")
        relays = {f"r{i}": relay(config, redis_url, url, f"r{i}", *claim) for i in (1, 2, 3)}
        started = time.monotonic()
        producers = [producer(redis_url, p, events // 2, 5000, 4000) for p in ("p1", "p2")]
        killed = []
        for round_ in range(2):
            time.sleep(rng.uniform(2.0, 6.0))
            holding = [
                c.name for c in status(redis_url).consumers if c.pending and c.name in relays
            ]
            victim = rng.choice(sorted(holding or relays))
            held = {c.name: c.pending for c in status(redis_url).consumers}.get(victim, 0)
            relays.pop(victim).kill()
            killed.append({"relay": victim, "pending_at_kill": held})
            name = f"{victim}-restarted-{round_}"
            relays[name] = relay(config, redis_url, url, name, *claim)
        for p in producers:
            p.popen.communicate(timeout=600)
        while True:
            s = status(redis_url)
            if s.length == 0 and fake_stats(url)["events"] >= events:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        outputs = [json.loads(r.stop() or "{}") for r in relays.values()]
        fake = fake_stats(url)
        return {
            "events": events,
            "killed": killed,
            "elapsed_s": round(elapsed, 1),
            "ingested_events": fake["events"],
            "ingested_twice": fake["repeated_events"],
            "deduplicated_resent_events": fake["deduplicated_events"],
            "deduplicated_resent_batches": fake["deduplicated_batches"],
            "dead_letters": status(redis_url).dead_letters,
            "reclaimed_entries": sum(o.get("reclaimed", 0) for o in outputs),
            "resent_batches": sum(o.get("resent_batches", 0) for o in outputs),
            "leases_lost": sum(o.get("leases_lost", 0) for o in outputs),
        }


def bench_quota(events: int, users: int, limit: float, share: float) -> dict[str, Any]:
    with redis_server() as redis_url, fake_server("--rate-limit", str(limit)) as (url, _f):
        with tempfile.TemporaryDirectory() as d:
            config = write_config(Path(d), age_ms=200)
            # The backlog first: every relay has work from its first read on.
            producer(redis_url, "p", events, users, 0).popen.communicate(timeout=600)
            rate = str(limit * share)
            relays = [
                relay(config, redis_url, url, f"q{i}", "--batches-per-second", rate)
                for i in range(4)
            ]
            first = last = None
            samples = []
            while True:
                st = fake_stats(url)
                now = time.monotonic()
                if first is None and st["batches"] > 0:
                    first = (now, st)
                samples.append((now, st))
                if st["events"] >= events:
                    last = (now, st)
                    break
                time.sleep(0.1)
            outputs = [json.loads(r.stop() or "{}") for r in relays]
    assert first is not None and last is not None
    span = last[0] - first[0]
    batches = last[1]["batches"] - first[1]["batches"]
    requests = last[1]["requests"]
    throttled = last[1]["by_status"].get("429", 0)
    return {
        "events": events,
        "users": users,
        "limit_batches_per_s": limit,
        "bucket_batches_per_s": limit * share,
        "accepted_batches_per_s": round(batches / span, 1) if span else None,
        "share_of_limit": round(batches / span / limit, 3) if span else None,
        "requests": requests,
        "requests_429": throttled,
        "share_429": round(throttled / requests, 4) if requests else None,
        "per_relay_batches": [
            (o.get("destination") or {}).get("delivered_batches") for o in outputs
        ],
        "events_per_batch": round(last[1]["events"] / last[1]["batches"], 1),
    }


IN_PROCESS = """
import json, resource, sys, time, anyio
from mparticle_dest import Destination
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
async def main(config, url, events, users):
    evs = [{"name": "page view", "id": f"e-{n}", "user": {"id": f"u{n % users}"},
            "data": {"n": n}, "entity": "page", "action": "view",
            "timestamp": 1700000000000 + n} for n in range(events)]
    c0 = cpu()
    async with Destination(json.load(open(config)), base_url=url, close_timeout=300) as d:
        for e in evs:
            await d.push(e)
    print(json.dumps({"cpu_s": cpu() - c0, "delivered": d.stats.delivered_events}))
anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
"""


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _append(redis_url: str, prefix: str, events: int, users: int) -> None:
    """What ``producer`` appends (the same events, encoded as ``EventStream.push``
    encodes them), pipelined: seconds instead of a producer's minutes of round trips."""
    from mparticle_dest.streams import connect
    from mparticle_dest.streams.producer import Counters, encode_event

    client = connect(redis_url)
    counters = Counters()
    try:
        for start in range(0, events, 1000):
            pipe = client.pipeline(transaction=False)
            for n in range(start, min(start + 1000, events)):
                event = {"name": "page view", "id": f"{prefix}-{n}"}
                event |= {"user": {"id": f"u{n % users}"}, "data": {"n": n}}
                pipe.execute_command("XADD", "s", "*", "e", encode_event(event, None, counters))
            await pipe.execute()
    finally:
        await client.aclose()


def _drained(redis_url: str) -> None:
    while status(redis_url).length > 0:
        time.sleep(0.05)


def bench_cpu(events: int, users: int) -> dict[str, Any]:
    """Relay CPU per event two ways, in one run beside the in-process figure.

    *window*: the relay process's own CPU (``/proc``) from the moment the whole backlog
    is in the stream to the moment every entry is delivered and acknowledged; the relay
    is started (imports, connections) on an empty stream and stopped (``SIGSTOP``)
    while the backlog is appended, so the window holds delivery only, like the
    in-process figure. *minus idle*: the whole relay process minus a relay process that
    ran as long on an empty stream (the start-up noise of two processes included).
    """
    with redis_server() as redis_url, fake_server("--no-deduplicate") as (url, _f):
        with tempfile.TemporaryDirectory() as d:
            config = write_config(Path(d), age_ms=1000, size=100)
            inproc = Child([PY, "-c", IN_PROCESS, str(config), url, str(events), str(users)])
            base = json.loads(inproc.popen.communicate(timeout=600)[0])
            fake_after_in_process = fake_stats(url)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            idle_relay = relay(config, redis_url, url, "idle")
            time.sleep(2.0)
            idle_relay.stop()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            idle = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            busy = relay(config, redis_url, url, "cpu")
            launched = time.monotonic()
            time.sleep(2.0)  # started, connected, blocked on the empty stream
            # Stopped for about a second: a stall past redis-py's 5 s read timeout would
            # lose the reply of the read in flight (its entries wait for the reclaim).
            busy.popen.send_signal(signal.SIGSTOP)
            asyncio.run(_append(redis_url, "e", events, users))
            started = _process_cpu(busy.popen.pid)
            busy.popen.send_signal(signal.SIGCONT)
            opened = time.monotonic()
            _drained(redis_url)
            window = _process_cpu(busy.popen.pid) - started
            closed = time.monotonic()
            fake_after_relay = fake_stats(url)
            relay_stats = json.loads(busy.stop() or "{}")
            after_busy = resource.getrusage(resource.RUSAGE_CHILDREN)
            whole = (after_busy.ru_utime + after_busy.ru_stime) - (after.ru_utime + after.ru_stime)
    return {
        "events": events,
        "users": users,
        "in_process_destination_us_per_event": round(base["cpu_s"] / events * 1e6, 1),
        "relay_us_per_event": round(window / events * 1e6, 1),
        "ratio": round(window / base["cpu_s"], 2),
        "relay_minus_idle_us_per_event": round((whole - idle) / events * 1e6, 1),
        "ratio_minus_idle": round((whole - idle) / base["cpu_s"], 2),
        "relay_startup_cpu_s": round(idle, 2),
        # Seconds from the relay's launch to its window's start and end (its lease
        # renewal and reclaim run 20 s after its start, with the default claim_idle).
        "window_s": [round(opened - launched, 1), round(closed - launched, 1)],
        # The same work on both sides: requests and batches the fake accepted.
        "in_process_requests_batches": [
            fake_after_in_process["requests"],
            fake_after_in_process["batches"],
        ],
        "relay_requests_batches": [
            fake_after_relay["requests"] - fake_after_in_process["requests"],
            fake_after_relay["batches"] - fake_after_in_process["batches"],
        ],
        "relay_stats": {k: v for k, v in relay_stats.items() if k != "destination"},
        "note": "relay: CPU from a full stream to the last acknowledgement (Redis included)",
    }


async def _push_latency(redis_url: str, events: int) -> dict[str, Any]:
    from mparticle_dest.streams import EventStream

    samples = []
    async with EventStream(redis_url, stream="s", max_len=10_000_000) as stream:
        for n in range(events):
            event = {"name": "page view", "user": {"id": f"u{n % 500}"}, "data": {"n": n}}
            t0 = time.perf_counter()
            await stream.push(event)
            samples.append(time.perf_counter() - t0)
    samples.sort()

    def pct(p: float) -> float:
        return round(samples[min(int(p * len(samples)), len(samples) - 1)] * 1e6, 1)

    return {"pushes": events, "p50_us": pct(0.5), "p99_us": pct(0.99), "max_us": pct(1.0)}


def bench_push(events: int) -> dict[str, Any]:
    with redis_server() as redis_url:
        return asyncio.run(_push_latency(redis_url, events))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_out")
    sub = p.add_subparsers(dest="what", required=True)
    k = sub.add_parser("kill")
    k.add_argument("--events", type=int, default=100_000)
    k.add_argument("--seed", type=int)
    q = sub.add_parser("quota")
    q.add_argument("--events", type=int, default=60_000)
    q.add_argument("--users", type=int, default=20_000)
    q.add_argument("--limit", type=float, default=200.0)
    q.add_argument("--share", type=float, default=0.97, help="bucket rate / limit")
    c = sub.add_parser("cpu")
    c.add_argument("--events", type=int, default=50_000)
    c.add_argument("--users", type=int, default=500)
    u = sub.add_parser("push")
    u.add_argument("--events", type=int, default=20_000)
    args = p.parse_args(argv)
    if args.what == "kill":
        report = bench_kill(args.events, args.seed)
    elif args.what == "quota":
        report = bench_quota(args.events, args.users, args.limit, args.share)
    elif args.what == "cpu":
        report = bench_cpu(args.events, args.users)
    else:
        report = bench_push(args.events)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
