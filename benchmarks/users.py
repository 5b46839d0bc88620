"""``python -m benchmarks users``: how CPU and memory per event grow with distinct users.

For each user count, two fresh processes:

- ``cpu``: push ``--events`` events of that many users as fast as the client goes
  (yielding to the loop every 100 pushes, so batches age out and leave while it
  pushes, as in a service), then close, against a sink without a limit; client CPU
  from the first push until closed, less the CPU of making the events (timed apart),
  ÷ events, and the share of it spent in garbage collection (process CPU between
  the collector's ``gc.callbacks``);
- ``memory``: push the same events to a sink that holds every request unanswered
  (``serve --stall``), with a buffer cap above the event count; the growth of the
  resident set after ``gc.collect()``, ÷ events. The sink is then released and every
  event must be delivered.
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio
import anyio.lowlevel

from . import procs, regime_cli
from .measure import peak_rss_bytes, rss_bytes
from .scenario import scenario_config
from .server_proc import StalledServer
from .traffic import Traffic

USERS = (500, 5_000, 50_000, 200_000)

#: Pushes between two yields to the event loop.
_YIELD_EVERY = 100

#: Close timeout: everything must be delivered, however long the tail.
_CLOSE_TIMEOUT = 600.0


@dataclass(frozen=True)
class UsersParams:
    """The sweep: ``events`` events for each user count of ``users``."""

    users: tuple[int, ...] = USERS
    events: int = 200_000
    batch_size: int = 100
    batch_age: int = 1_000


SMOKE = UsersParams(users=(20, 1_000), events=2_000)


class _GcCpu:
    """Process CPU spent in garbage collection while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.collections = [0, 0, 0]
        self._start = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            self.cpu_s += time.process_time() - self._start
            self.collections[info["generation"]] += 1

    def __enter__(self) -> _GcCpu:
        gc.callbacks.append(self._on_gc)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._on_gc)


def _destination(p: UsersParams, url: str) -> Any:
    from mparticle_dest import Destination

    return Destination(
        scenario_config(p.batch_size, p.batch_age),
        base_url=url,
        max_buffered_events=p.events + 1_000,
        close_timeout=_CLOSE_TIMEOUT,
    )


async def cpu(spec: dict[str, Any]) -> dict[str, Any]:
    """Client CPU per event for one user count (see the module docstring)."""
    p = UsersParams(**{**spec["params"], "users": tuple(spec["params"]["users"])})
    # Events are made one at a time, as a service receives them (holding them all
    # would hand the collector work no service has); making them is timed apart.
    gen0 = time.process_time()
    spare = Traffic(spec["users"], seed=5)
    for k in range(p.events):
        spare.event(k)
    gen_s = time.process_time() - gen0
    traffic = Traffic(spec["users"], seed=5)
    dest = _destination(p, spec["url"])
    with _GcCpu() as gc_cpu:
        cpu0 = time.process_time()
        wall0 = time.perf_counter()
        async with dest:
            push = dest.push
            event = traffic.event
            for k in range(p.events):
                await push(event(k))
                if k % _YIELD_EVERY == 0:
                    await anyio.lowlevel.checkpoint()
        cpu_s = time.process_time() - cpu0 - gen_s
        wall_s = time.perf_counter() - wall0
    s = dest.stats
    return {
        "users": spec["users"],
        "events": p.events,
        "cpu_s": cpu_s,
        "generation_s": gen_s,
        "generation_us_per_event": gen_s / p.events * 1e6,
        "wall_s": wall_s,
        "cpu_us_per_event": cpu_s / p.events * 1e6,
        "gc_s": gc_cpu.cpu_s,
        "gc_share": gc_cpu.cpu_s / cpu_s if cpu_s else 0.0,
        "gc_collections": gc_cpu.collections,
        "delivered_events": s.delivered_events,
        "delivered_batches": s.delivered_batches,
        "requests": s.requests,
        "failed_events": s.failed_events,
        "peak_rss": peak_rss_bytes(),
    }


async def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Resident bytes per buffered event for one user count (see the module docstring)."""
    p = UsersParams(**{**spec["params"], "users": tuple(spec["params"]["users"])})
    traffic = Traffic(spec["users"], seed=5)
    warm = Traffic(spec["users"], seed=6, id_prefix=1)
    with StalledServer() as server:
        dest = _destination(p, server.url)
        async with dest:
            for k in range(64):  # imports, caches and the connection pool first
                await dest.push(warm.event(k))
            await anyio.sleep(0.05)
            gc.collect()
            before = rss_bytes()
            for k in range(p.events):
                await dest.push(traffic.event(k))  # generated one at a time: nothing retained
                if k % _YIELD_EVERY == 0:
                    await anyio.lowlevel.checkpoint()
            await anyio.sleep(0.2)  # let the engine seal, pack and hand requests over
            gc.collect()
            after = rss_bytes()
            server.release()
    s = dest.stats
    return {
        "users": spec["users"],
        "events": p.events,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_buffered_event": (after - before) / p.events,
        "delivered_events": s.delivered_events - 64,
        "failed_events": s.failed_events,
    }


def run_users(p: UsersParams) -> dict[str, Any]:
    """Every user count: the CPU run, then the memory run, each in a fresh process."""
    report: dict[str, Any] = {"params": asdict(p), "cpu": [], "memory": []}
    with procs.metered_sink(None) as sink:
        for users in p.users:
            spec = {"kind": "users-cpu", "users": users, "url": sink.url, "params": asdict(p)}
            report["cpu"].append(procs.run(spec, f"users-cpu/{users}"))
    for users in p.users:
        spec = {"kind": "users-memory", "users": users, "params": asdict(p)}
        report["memory"].append(procs.run(spec, f"users-memory/{users}"))
    first = report["cpu"][0]["cpu_us_per_event"]
    report["cpu_ratio_last_vs_first"] = report["cpu"][-1]["cpu_us_per_event"] / first
    return report


def format_users(r: dict[str, Any]) -> str:
    """The report as a text table."""
    p = r["params"]
    rows = [
        f"users: {p['events']:,} events per run, pushed as fast as the client goes, "
        "then closed (sink without a limit); memory with the sink stalled",
        "",
        "users     CPU us/ev  GC share  events/batch  batches/request  bytes/buffered event",
    ]
    rows.append("-" * len(rows[-1]))
    for c, m in zip(r["cpu"], r["memory"], strict=True):
        rows.append(
            f"{c['users']:<9,} {c['cpu_us_per_event']:9.1f} {c['gc_share']:9.0%} "
            f"{c['delivered_events'] / max(1, c['delivered_batches']):13.1f} "
            f"{c['delivered_batches'] / max(1, c['requests']):16.1f} "
            f"{m['bytes_per_buffered_event']:21,.0f}"
        )
    rows.append("")
    rows.append(
        f"CPU per event, {r['cpu'][-1]['users']:,} vs {r['cpu'][0]['users']:,} users: "
        f"{r['cpu_ratio_last_vs_first']:.2f}x"
    )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    """``python -m benchmarks users [options]``."""
    d = UsersParams()
    ap = regime_cli.parser("users", __doc__)
    ap.add_argument(
        "--users",
        type=lambda s: tuple(int(x) for x in s.split(",")),
        help=f"comma-separated user counts ({','.join(map(str, d.users))})",
    )
    ap.add_argument("--events", type=int, help=f"events per run ({d.events:,})")
    args = ap.parse_args(argv)
    report = run_users(regime_cli.params(args, d, SMOKE, ("users", "events")))
    return regime_cli.emit(report, format_users, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
