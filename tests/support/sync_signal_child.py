"""A threaded service that a test interrupts: ``python sync_signal_child.py URL MODE TIMEOUT``.

It pushes events through a ``SyncDestination`` to ``URL`` (a stalled fake server),
prints ``closing``, then closes: ``MODE`` ``close`` calls ``close()`` from the main
thread, ``atexit`` just returns and leaves it to the library's ``atexit`` hook. The
test sends SIGINT or SIGTERM during that close. SIGTERM is turned into ``SystemExit``
the way threaded services do it, so ``finally`` blocks and ``atexit`` hooks run. The
last stdout line is a JSON summary of the receipts, printed by an ``atexit`` hook that
runs after the library's.
"""

from __future__ import annotations

import atexit
import json
import signal
import sys
from collections import Counter
from typing import Any

receipts: list[Any] = []
failed: list[Any] = []


def summary() -> None:
    statuses = Counter(
        f"{r.outcome.status}:{r.outcome.reason}" if r.outcome else "pending" for r in receipts
    )
    print(  # noqa: T201 - the test reads it
        json.dumps(
            {
                "receipts": len(receipts),
                "outcomes": dict(statuses),
                "on_error_events": sum(f.event_count for f in failed),
            }
        ),
        flush=True,
    )


# Registered before mparticle_dest is imported: atexit hooks run last-in first-out, so
# this one runs after the library's hook has closed the destination.
atexit.register(summary)

from mparticle_dest import SyncDestination  # noqa: E402 - after the atexit hook above


def main() -> None:
    url, mode, close_timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    config = {
        "settings": {
            "apiKey": "test-key",
            "apiSecret": "test-secret",
            "userIdentities": {"customer_id": "user.id"},
        },
        "batch": {"age": 60_000},
    }
    dest = SyncDestination(
        config,
        base_url=url,
        close_timeout=close_timeout,
        request_timeout=600,
        on_error=failed.append,
    )
    for n in range(30):
        receipts.append(dest.push({"name": "page view", "user": {"id": f"user-{n % 3}"}}))
    print("closing", flush=True)  # noqa: T201 - the test waits for this line
    if mode == "close":
        dest.close()


if __name__ == "__main__":
    main()
