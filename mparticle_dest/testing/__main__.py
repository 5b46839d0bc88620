"""Run the fake server in its own process: ``python -m mparticle_dest.testing serve``.

The first stdout line is the base URL; the process serves until SIGINT/SIGTERM, then
writes the final counters as one JSON line and exits. With ``--stall`` it holds every
request unanswered until the line ``release`` arrives on stdin (a memory-bound client
test), then answers the held requests and all later ones normally. ``GET /_fake/stats`` gives the
counters while it runs. Meant for benchmarks and demos, where the server must not
share a process (and a GIL) with the client.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._faults import Fault, FaultPlan
from ._server import FakeMparticle

_FAULTS = {
    "429": Fault.rate_limited(),
    "500": Fault.server_error(500),
    "503": Fault.server_error(503),
    "drop": Fault.drop(),
}


def _fault_rate(text: str) -> tuple[Fault, float]:
    kind, _, rate = text.partition("=")
    if kind not in _FAULTS:
        raise argparse.ArgumentTypeError(f"fault must be one of {', '.join(_FAULTS)}")
    try:
        return _FAULTS[kind], float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KIND=PROBABILITY, got {text!r}") from None


def _release_on_command(server: FakeMparticle) -> None:
    """Stop stalling when stdin says ``release``: held requests are then answered."""
    for line in sys.stdin:
        if line.strip() == "release":
            server.set_faults(None)
            server.release_stalled()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mparticle_dest.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fake Events API until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--port", type=int, default=0, help="port (default: an ephemeral one)")
    serve.add_argument("--api-key", default="test-key")
    serve.add_argument("--api-secret", default="test-secret")
    serve.add_argument(
        "--no-validate", action="store_true", help="skip schema checks (limits still apply)"
    )
    serve.add_argument(
        "--counters-only", action="store_true", help="keep counters, no per-event records"
    )
    serve.add_argument(
        "--no-deduplicate",
        action="store_true",
        help="ingest a batch again when its source_request_id was ingested before",
    )
    serve.add_argument(
        "--stall",
        action="store_true",
        help="hold every request unanswered until a 'release' line arrives on stdin",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        metavar="BATCHES_PER_S",
        help="simulated workspace limit in batches per second (token bucket; 429 above it)",
    )
    serve.add_argument(
        "--rate-limit-burst",
        type=float,
        metavar="BATCHES",
        help="bucket size of --rate-limit in batches (default: one second's worth)",
    )
    serve.add_argument(
        "--rate-limit-usage",
        choices=("bucket", "window"),
        default="bucket",
        help="X-mp-rate-limit-percentage-used: how full the bucket is (default) or the "
        "batches accepted over the last second as a percentage of the limit",
    )
    serve.add_argument(
        "--fault",
        type=_fault_rate,
        action="append",
        default=[],
        metavar="KIND=P",
        help="inject a fault (429, 500, 503, drop) with probability P; repeatable",
    )
    serve.add_argument("--seed", type=int, default=0, help="seed of the random fault plan")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m mparticle_dest.testing``."""
    args = _parser().parse_args(argv)
    if args.stall:
        faults: FaultPlan | None = FaultPlan.always(Fault.stall())
    elif args.fault:
        faults = FaultPlan.random(seed=args.seed, rates=dict(args.fault))
    else:
        faults = None
    server = FakeMparticle(
        api_key=args.api_key,
        api_secret=args.api_secret,
        faults=faults,
        rate_limit=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_usage=args.rate_limit_usage,
        validate=not args.no_validate,
        record=not args.counters_only,
        deduplicate=not args.no_deduplicate,
        host=args.host,
        port=args.port,
    )
    done = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with server:
        if args.stall:
            threading.Thread(target=_release_on_command, args=(server,), daemon=True).start()
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        while not done.wait(0.5):  # a bounded wait keeps signal delivery prompt everywhere
            pass
    sys.stdout.write(json.dumps(server.stats.to_json()) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
