"""``python -m benchmarks loop``: how long the library holds the host's event loop.

A 1 ms ticker task (:class:`benchmarks.ticker.Ticker`) runs beside a producer that
offers many users' events at a steady rate for a fixed time, then the destination
closes; the ticker runs throughout, so the close is included. Two fresh processes,
one after the other, against one sink without a limit (the fake server in its own
process):

- ``plain``: the same producer and event generation, ``push`` a no-op: what the host
  loop suffers without the library (the baseline);
- ``library``: the producer pushes into a :class:`~mparticle_dest.Destination`.

The library process also enters the destination with the ticker running, so the
stall of the first ``__aenter__`` (building the HTTP client) is measured the same way.
By default the destination is built before the event loop runs, as the delivery docs
advise (``--built inside``: in the running loop, just before entering).
"""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import anyio

from . import procs, regime_cli
from .scenario import scenario_config
from .ticker import Ticker
from .traffic import Traffic, produce

MODES = ("plain", "library")

#: Quiet time around entering, so that its ticks are its own.
_SETTLE_S = 0.05


@dataclass(frozen=True)
class LoopParams:
    """One loop run: ``users`` users, ``rate`` events/s for ``duration`` s."""

    users: int = 20_000
    rate: float = 10_000.0
    duration: float = 10.0
    batch_size: int = 100
    batch_age: int = 1_000
    #: The host calls ``gc.freeze()`` once started (after entering the destination), so
    #: its start-up heap is left out of later collections (a host's decision).
    gc_freeze: bool = False
    #: Where the host builds its destination: ``"outside"`` the event loop, before it
    #: runs (module level, an app factory: what the delivery docs advise), or
    #: ``"inside"`` the running loop, just before entering it.
    built: str = "outside"


SMOKE = LoopParams(users=500, rate=2_000, duration=0.5)


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """One process: the destination built where ``built`` says, then :func:`client`."""
    p = LoopParams(**spec["params"])
    built = None
    if spec["mode"] == "library" and p.built == "outside":
        from mparticle_dest import Destination

        built = Destination(scenario_config(p.batch_size, p.batch_age), base_url=spec["url"])
    result: dict[str, Any] = anyio.run(client, spec, built)
    return result


async def client(spec: dict[str, Any], built: Any = None) -> dict[str, Any]:
    """One process: ticker + producer (+ destination); the ticks charged to each phase."""
    p = LoopParams(**spec["params"])
    mode = spec["mode"]
    traffic = Traffic(p.users, seed=7)
    out: dict[str, Any] = {"mode": mode}
    with Ticker() as ticker:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker.run)
            await anyio.sleep(_SETTLE_S)
            if mode == "plain":

                async def push(event: dict[str, Any]) -> None:
                    return None

                if p.gc_freeze:
                    gc.freeze()
                ticker.mark("push_start")
                cpu0 = time.process_time()
                produced = await produce(push, traffic, rate=p.rate, duration=p.duration)
                ticker.mark("close_start")
                ticker.mark("close_end")
                cpu_s = time.process_time() - cpu0
            else:
                from mparticle_dest import Destination

                dest = built or Destination(
                    scenario_config(p.batch_size, p.batch_age), base_url=spec["url"]
                )
                # A tick held by the import and the construction wakes now, not inside
                # the entering window.
                await anyio.sleep(_SETTLE_S)
                ticker.mark("enter_start")
                await dest.__aenter__()
                ticker.mark("enter_end")
                await anyio.sleep(_SETTLE_S)
                if p.gc_freeze:
                    gc.freeze()
                ticker.mark("push_start")
                cpu0 = time.process_time()
                try:
                    produced = await produce(dest.push, traffic, rate=p.rate, duration=p.duration)
                    ticker.mark("close_start")
                finally:
                    await dest.__aexit__(None, None, None)
                ticker.mark("close_end")
                cpu_s = time.process_time() - cpu0
                s = dest.stats
                out.update(
                    enter_wall_ms=(ticker.marks["enter_end"] - ticker.marks["enter_start"]) * 1e3,
                    enter=ticker.lateness("enter_start", "enter_end", grace=_SETTLE_S),
                    delivered_events=s.delivered_events,
                    delivered_batches=s.delivered_batches,
                    failed_events=s.failed_events,
                    requests=s.requests,
                )
            await anyio.sleep(_SETTLE_S)
            tg.cancel_scope.cancel()
    out.update(
        pushed=produced.pushed,
        offered=produced.offered,
        blocked_s=produced.blocked_s,
        cpu_s=cpu_s,
        cpu_us_per_event=cpu_s / max(1, produced.pushed) * 1e6,
        close_s=ticker.marks["close_end"] - ticker.marks["close_start"],
        overall=ticker.lateness("push_start", "close_end", grace=_SETTLE_S),
        pushing=ticker.lateness("push_start", "close_start"),
        closing=ticker.lateness("close_start", "close_end", grace=_SETTLE_S),
        gc=ticker.gc_summary(since="push_start"),
    )
    return out


def run_loop(p: LoopParams) -> dict[str, Any]:
    """Both modes, one after the other, against one unlimited sink."""
    report: dict[str, Any] = {"params": asdict(p), "modes": {}}
    with procs.metered_sink(None) as sink:
        for mode in MODES:
            spec = {"kind": "loop", "mode": mode, "url": sink.url, "params": asdict(p)}
            report["modes"][mode] = procs.run(spec, f"loop/{mode}")
        report["sink"] = sink.fetch_stats()
    return report


def format_loop(r: dict[str, Any]) -> str:
    """The report as a text table."""
    p = r["params"]
    head = (
        f"loop: 1 ms ticker beside {p['users']:,} users at {p['rate']:,.0f} events/s "
        f"for {p['duration']:g} s, then close (sink without a limit); destination built "
        f"{p.get('built', 'outside')} the event loop"
        + ("; the host froze its start-up heap (gc.freeze())" if p.get("gc_freeze") else "")
    )
    rows = [
        head,
        "",
        "mode     worst ms  p99 ms  >10ms  pushing worst  closing worst  close s  "
        "CPU us/ev  gen2 GCs (worst ms)",
    ]
    rows.append("-" * len(rows[-1]))
    for mode, m in r["modes"].items():
        gc = m["gc"]
        rows.append(
            f"{mode:<8} {m['overall']['worst_ms']:8.1f} {m['overall']['p99_ms']:7.2f} "
            f"{m['overall']['over_10ms']:6d} {m['pushing']['worst_ms']:14.1f} "
            f"{m['closing']['worst_ms']:14.1f} {m['close_s']:8.2f} "
            f"{m['cpu_us_per_event']:10.1f}  {gc['collections'][2]} ({gc['worst_pause_ms'][2]:.1f})"
        )
    lib = r["modes"].get("library")
    if lib is not None:
        per_request = lib["delivered_batches"] / lib["requests"] if lib["requests"] else 0.0
        rows += [
            "",
            f"library: entering stalled the loop {lib['enter']['worst_ms']:.1f} ms "
            f"(__aenter__ wall {lib['enter_wall_ms']:.1f} ms); pushed {lib['pushed']:,} of "
            f"{lib['offered']:,}; {lib['requests']:,} requests of {per_request:.1f} batches, "
            f"{lib['delivered_events'] / max(1, lib['delivered_batches']):.1f} events per batch; "
            f"failed {lib['failed_events']:,}",
        ]
    for mode, m in r["modes"].items():
        full = m["gc"].get("full_at_s")
        if full:
            at = ", ".join(f"{t:.2f}" for t in full)
            rows.append(f"{mode}: full collections at {at} s after the first push")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    """``python -m benchmarks loop [options]``."""
    d = LoopParams()
    ap = regime_cli.parser("loop", __doc__)
    ap.add_argument("--users", type=int, help=f"distinct users ({d.users:,})")
    ap.add_argument("--rate", type=float, help=f"events/s offered ({d.rate:,.0f})")
    ap.add_argument("--duration", type=float, help=f"seconds of traffic ({d.duration:g})")
    ap.add_argument(
        "--gc-freeze",
        action="store_true",
        help="the host calls gc.freeze() once started, before the traffic (both modes)",
    )
    ap.add_argument(
        "--built",
        choices=("outside", "inside"),
        help="build the destination before the event loop runs (default, as the docs "
        "advise) or inside it, just before entering",
    )
    args = ap.parse_args(argv)
    names = ("users", "rate", "duration", "gc_freeze", "built")
    report = run_loop(regime_cli.params(args, d, SMOKE, names))
    return regime_cli.emit(report, format_loop, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
