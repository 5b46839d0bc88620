"""``python -m benchmarks [--smoke] [--json PATH] ...``: run the benchmark suite.

``python -m benchmarks SUBCOMMAND ...`` runs one of the regime benchmarks instead
(:data:`SUBCOMMANDS`; ``--help`` on each). Without a subcommand: the happy path.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from . import regime_cli
from .modes import MODES
from .report import format_report
from .runner import SMOKE, SMOKE_MEMORY_EVENTS, SMOKE_STAGE_EVENTS, run_benchmark
from .scenario import ScenarioParams


def _parser() -> argparse.ArgumentParser:
    d = ScenarioParams()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark mparticle_dest against one-request-per-event delivery "
        "and a hand-written minimal client, on a loopback fake server in its own process. "
        f"Regime benchmarks: python -m benchmarks {{{','.join(SUBCOMMANDS)}}} --help.",
    )
    p.add_argument("--smoke", action="store_true", help="tiny run for CI (figures not meaningful)")
    p.add_argument("--events", type=int, help=f"events pushed (default {d.events:,})")
    p.add_argument("--users", type=int, help=f"distinct users (default {d.users})")
    p.add_argument("--seed", type=int, help=f"event generator seed (default {d.seed})")
    p.add_argument(
        "--extra-data-fields",
        type=int,
        help="unmapped fields added to each event's data (default 0)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        help=f"events per batch, 0 for none (library modes only; default {d.batch_size})",
    )
    p.add_argument("--batch-age", type=int, help=f"batch age in ms (default {d.batch_age})")
    p.add_argument(
        "--modes",
        default=",".join(MODES),
        help=f"comma-separated throughput modes (default {','.join(MODES)})",
    )
    p.add_argument("--memory-events", type=int, help="events of the memory pass (0 skips it)")
    p.add_argument("--stage-events", type=int, help="events of the stage pass (0 skips it)")
    p.add_argument("--profile-top", type=int, default=15, help="cProfile rows to show")
    p.add_argument(
        "--validate",
        action="store_true",
        help="fake server validates every batch against its schema (slower server)",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process, not a fresh child per run (default with --smoke)",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")
    return p


#: Regime benchmarks: subcommand -> module (each has ``main(argv) -> int``).
SUBCOMMANDS = {
    "quota": "quota",
    "loop": "loop",
    "users": "users",
    "request": "request",
    "request-layers": "request_layers",
    "start": "start",
}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the table and write the JSON report."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(f"benchmarks.{SUBCOMMANDS[argv[0]]}")
        code: int = module.main(argv[1:])
        return code
    args = _parser().parse_args(argv)
    names = ("events", "users", "seed", "extra_data_fields", "batch_size", "batch_age")
    params = regime_cli.params(args, ScenarioParams(), SMOKE, names)
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    unknown = set(modes) - set(MODES)
    if unknown:
        print(f"unknown mode(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    memory_events = args.memory_events
    stage_events = args.stage_events
    if args.smoke:
        memory_events = SMOKE_MEMORY_EVENTS if memory_events is None else memory_events
        stage_events = SMOKE_STAGE_EVENTS if stage_events is None else stage_events
    report = run_benchmark(
        params,
        modes=modes,
        memory_events=memory_events,
        stage_events=stage_events,
        profile_top=args.profile_top,
        validate=args.validate,
        in_process=args.in_process or args.smoke,
        smoke=args.smoke,
    )
    print(format_report(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nJSON report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
