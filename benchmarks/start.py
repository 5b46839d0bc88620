"""``python -m benchmarks start``: what starting the library costs a host.

- **import**: ``import mparticle_dest`` and ``import httpx`` (which it builds on),
  each timed inside a fresh interpreter (``time.perf_counter`` around the import
  statement), alternating, ``--runs`` times each; medians and their ratio.
- **entering**: in a fresh process (so the first ``__aenter__`` of the process is
  measured, with nothing cached), a 1 ms ticker runs while a
  :class:`~mparticle_dest.Destination` is entered: the worst tick lateness from the
  start of ``__aenter__`` until 50 ms after it returned is how long entering held
  the loop (building the HTTP client, starting the background tasks); constructing
  the destination is timed the same way, 50 ms earlier, so that a tick it held is
  not charged to entering. Nothing is sent, so no server is needed. ``--runs``
  processes; median and worst. Two ways of building it, each in its own processes:
  **outside** the event loop, before it runs (module level, an app factory: the usual
  case), and **inside** the running loop, just before entering.
- ``--host-imports fastapi,uvicorn,pydantic``: each entering process first imports
  these modules, as a real host would have before its lifespan runs (a process with
  no heap yet runs its first full garbage collection when the destination's imports
  arrive; a service has run it long before). The modules must be installed.
"""

from __future__ import annotations

import importlib
import statistics
import subprocess
import sys
from time import perf_counter
from typing import Any

import anyio

from . import procs, regime_cli
from .scenario import scenario_config
from .ticker import Ticker

RUNS = 7

_IMPORT_PROBE = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)
_SETTLE_S = 0.05


def import_seconds(module: str) -> float:
    """Seconds ``import module`` takes in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def enter(spec: dict[str, Any]) -> dict[str, Any]:
    """Build a fresh Destination (outside or inside the loop), enter and leave it."""
    for module in spec.get("host_imports", ()):
        importlib.import_module(module)
    from mparticle_dest import Destination

    built: Destination | None = None
    construct_ms = 0.0
    if spec["built"] == "outside":
        t0 = perf_counter()
        built = Destination(scenario_config(100, 1_000))
        construct_ms = (perf_counter() - t0) * 1e3
    result: dict[str, Any] = anyio.run(_enter, built)
    if built is not None:
        result["construct_ms"] = construct_ms
    return result


async def _enter(built: Any) -> dict[str, Any]:
    from mparticle_dest import Destination

    with Ticker() as ticker:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker.run)
            await anyio.sleep(_SETTLE_S)
            ticker.mark("construct_start")
            dest = built if built is not None else Destination(scenario_config(100, 1_000))
            ticker.mark("construct_end")
            # A tick held by the construction wakes now, not inside the entering window.
            await anyio.sleep(_SETTLE_S)
            ticker.mark("enter_start")
            await dest.__aenter__()
            ticker.mark("enter_end")
            await anyio.sleep(_SETTLE_S)
            ticker.mark("exit_start")
            await dest.__aexit__(None, None, None)
            ticker.mark("exit_end")
            await anyio.sleep(_SETTLE_S)
            tg.cancel_scope.cancel()
    m = ticker.marks
    return {
        "construct_ms": (m["construct_end"] - m["construct_start"]) * 1e3,
        "construct_stall_ms": ticker.lateness("construct_start", "construct_end", grace=_SETTLE_S)[
            "worst_ms"
        ],
        "enter_wall_ms": (m["enter_end"] - m["enter_start"]) * 1e3,
        "enter_stall_ms": ticker.lateness("enter_start", "enter_end", grace=_SETTLE_S)["worst_ms"],
        "exit_stall_ms": ticker.lateness("exit_start", "exit_end", grace=_SETTLE_S)["worst_ms"],
        # Generation-2 collections anywhere in the run (the imports' objects make one due).
        "gen2_ms": [p * 1e3 for g, p, _ in ticker.gc_pauses if g == 2],
    }


def run_start(runs: int, host_imports: tuple[str, ...] = ()) -> dict[str, Any]:
    """Import probes (alternating) and entering probes, ``runs`` of each."""
    imports: dict[str, list[float]] = {"httpx": [], "mparticle_dest": []}
    entering: dict[str, list[dict[str, Any]]] = {"outside": [], "inside": []}
    for i in range(runs):
        for module in imports:
            imports[module].append(import_seconds(module))
        for built in entering:
            entering[built].append(
                procs.run(
                    {"kind": "enter", "built": built, "host_imports": list(host_imports)},
                    f"enter-{built}/{i}",
                )
            )
    med = {k: statistics.median(v) for k, v in imports.items()}
    return {
        "runs": runs,
        "host_imports": list(host_imports),
        "import_s": imports,
        "import_median_s": med,
        "import_ratio": med["mparticle_dest"] / med["httpx"],
        "entering": entering,
        "enter_stall_ms": {
            built: _spread([e["enter_stall_ms"] for e in runs_])
            for built, runs_ in entering.items()
        },
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def format_start(r: dict[str, Any]) -> str:
    """The report as text."""
    med = r["import_median_s"]
    lines = [
        f"start: {r['runs']} fresh processes per figure, medians (range)"
        + (
            f"; entering in a host that imported {', '.join(r['host_imports'])}"
            if r.get("host_imports")
            else ""
        ),
        "",
        f"import httpx                     {med['httpx'] * 1e3:7.1f} ms",
        f"import mparticle_dest            {med['mparticle_dest'] * 1e3:7.1f} ms "
        f"({r['import_ratio']:.2f}x httpx)",
    ]
    for built, e in r["entering"].items():
        st = r["enter_stall_ms"][built]
        construct_stall = (
            f" (stalled {statistics.median(x['construct_stall_ms'] for x in e):.1f} ms)"
            if built == "inside"
            else " (no loop yet)"
        )
        lines.append(
            f"built {built} the loop: entering stalled the loop {st['median']:.1f} ms "
            f"({st['min']:.1f}-{st['max']:.1f}); __aenter__ wall "
            f"{statistics.median(x['enter_wall_ms'] for x in e):.1f} ms; constructing "
            f"{statistics.median(x['construct_ms'] for x in e):.1f} ms{construct_stall}; "
            f"leaving stalled {statistics.median(x['exit_stall_ms'] for x in e):.1f} ms; "
            f"gen-2 collections in the loop: "
            f"{sum(len(x['gen2_ms']) for x in e)} in {len(e)} runs "
            f"(worst {max((p for x in e for p in x['gen2_ms']), default=0.0):.1f} ms)"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m benchmarks start [options]``."""
    ap = regime_cli.parser("start", __doc__, smoke_help="one run of each (figures not meaningful)")
    ap.add_argument("--runs", type=int, help=f"fresh processes per figure ({RUNS})")
    ap.add_argument(
        "--host-imports",
        type=lambda s: tuple(m for m in s.split(",") if m),
        default=(),
        metavar="MODULES",
        help="comma-separated modules each entering process imports first, as its host "
        "would (e.g. fastapi,uvicorn,pydantic; they must be installed)",
    )
    args = ap.parse_args(argv)
    runs = args.runs or (1 if args.smoke else RUNS)
    report = run_start(runs, args.host_imports)
    return regime_cli.emit(report, format_start, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
