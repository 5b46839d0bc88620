"""``mparticle-dest demo``: a real destination against the embedded fake Events API.

No credentials and no network: the fake server listens on loopback, the events are
generated here, and the summary shows what mParticle would have received.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio

from .._destination import Destination
from .._receipt import Outcome
from ..testing import FakeMparticle

__all__ = ["DEMO_CONFIG", "demo_events", "run_demo"]

Echo = Callable[[str], None]

#: A typical destination config: identities and attributes from the walkerOS user,
#: a screen view, a navigation event and a purchase mapped to mParticle's event types.
DEMO_CONFIG: dict[str, Any] = {
    "settings": {
        "environment": "development",
        "userIdentities": {"customer_id": "user.id", "email": "user.email"},
        "userAttributes": {"map": {"plan": "globals.plan", "country": "user.country"}},
    },
    "mapping": {
        "page": {
            "view": {
                "name": "Page View",
                "data": {"map": {"path": "data.path", "title": "data.title"}},
                "settings": {"customEventType": "navigation"},
            }
        },
        "screen": {"view": {"name": "Account", "settings": {"eventType": "screen_view"}}},
        "product": {
            "add": {
                "name": "Add To Cart",
                "data": {"map": {"sku": "data.id", "price": "data.price"}},
                "settings": {"customEventType": "transaction"},
            }
        },
        "order": {
            "complete": {
                "settings": {
                    "eventType": "commerce_event",
                    "commerce": {
                        "map": {
                            "currency_code": "data.currency",
                            "product_action": {
                                "map": {
                                    "action": {"value": "purchase"},
                                    "transaction_id": "data.id",
                                    "total_amount": "data.total",
                                    "products": {
                                        "loop": [
                                            "nested",
                                            {
                                                "map": {
                                                    "id": "data.id",
                                                    "name": "data.name",
                                                    "price": "data.price",
                                                    "quantity": {
                                                        "key": "data.quantity",
                                                        "value": 1,
                                                    },
                                                }
                                            },
                                        ]
                                    },
                                }
                            },
                        }
                    },
                }
            }
        },
    },
    # Small batches, so that the demo shows several batches per user and per request.
    "batch": {"size": 10},
}

_PAGES = (("/", "Home"), ("/shoes", "Shoes"), ("/shoes/runner", "Runner"), ("/cart", "Cart"))
_PRODUCTS = (("SKU-RUN-42", "Runner", 129.0), ("SKU-CAP-01", "Cap", 19.5))
_COUNTRIES = ("DE", "US", "FR", "JP", "BR")


def demo_events(
    users: int, count: int, *, start_ms: int = 1_700_000_000_000
) -> Iterator[dict[str, Any]]:
    """Generate a realistic stream of walkerOS events, interleaved across ``users``.

    Each user browses pages, opens the app's screens, adds products and every eighth
    of their events completes an order.

    Args:
        users: Number of distinct users.
        count: Total number of events.
        start_ms: Timestamp of the first event; each next one is 1.5 s later.
    """
    for i in range(count):
        u, step = i % users, i // users
        user = {
            "id": f"user-{u + 1}",
            "email": f"user{u + 1}@example.com",
            "country": _COUNTRIES[u % len(_COUNTRIES)],
        }
        event: dict[str, Any] = {
            "id": f"demo-{i + 1:06d}",
            "timestamp": start_ms + i * 1500,
            "user": user,
            "globals": {"plan": "pro" if u % 2 else "free"},
            "consent": {"functional": True},
            "source": {"type": "server", "platform": "server"},
        }
        kind = step % 8
        if kind == 7:
            sku, name, price = _PRODUCTS[u % len(_PRODUCTS)]
            quantity = 1 + u % 3
            event |= {
                "name": "order complete",
                "data": {"id": f"ORD-{i + 1}", "total": price * quantity, "currency": "EUR"},
                "nested": [
                    {
                        "entity": "product",
                        "data": {"id": sku, "name": name, "price": price, "quantity": quantity},
                    },
                ],
            }
        elif kind in (2, 5):
            sku, _name, price = _PRODUCTS[(u + step) % len(_PRODUCTS)]
            event |= {"name": "product add", "data": {"id": sku, "price": price}}
        elif kind == 4:
            event |= {"name": "screen view", "data": {"section": "orders"}}
        else:
            path, title = _PAGES[(step + u) % len(_PAGES)]
            event |= {"name": "page view", "data": {"path": path, "title": title}}
        yield event


async def run_demo(echo: Echo, *, users: int = 4, events: int = 80, waves: int = 3) -> bool:
    """Push the demo stream through a real destination and print what the fake received.

    Args:
        echo: Prints one line.
        users: Number of users.
        events: Number of events.
        waves: The stream is pushed in this many bursts, each followed by a flush, as
            traffic arriving over time would leave in several requests.

    Returns:
        Whether every event was delivered.
    """
    stream = list(demo_events(users, events))
    async with FakeMparticle() as server:
        config = {**DEMO_CONFIG, "settings": {**DEMO_CONFIG["settings"], **server.settings}}
        echo(
            f"Fake mParticle Events API listening on {server.url} (loopback only; no"
            " credentials, no network)."
        )
        echo(f"Pushing {len(stream)} walkerOS events from {users} users in {waves} bursts…")
        echo("")
        async with Destination(config, base_url=server.url) as dest:
            receipts = []
            per_wave = -(-len(stream) // max(waves, 1))
            for start in range(0, len(stream), per_wave):
                receipts += [await dest.push(e) for e in stream[start : start + per_wave]]
                await dest.flush()
            outcomes: list[Outcome] = [await r for r in receipts]
            await dest.aclose()
        _summarize(echo, server, stream, outcomes)
    return all(o.delivered for o in outcomes)


def _summarize(
    echo: Echo, server: FakeMparticle, stream: list[dict[str, Any]], outcomes: list[Outcome]
) -> None:
    # The sample comes first and the counts last, so a terminal ends on the summary.
    _show_sample(echo, server)
    kinds = Counter(e["name"] for e in stream)
    echo("Pushed")
    echo(f"  {len(stream)} events: " + ", ".join(f"{n} × {k!r}" for k, n in kinds.items()))
    echo("")
    requests = [r for r in server.requests if r.accepted]
    echo("Received by mParticle (the fake)")
    echo(f"  {len(requests)} requests, {len(server.batches)} batches, {server.event_count} events")
    for request in requests:
        batches = [b for b in server.batches if b.request_index == request.index]
        sizes = ", ".join(str(len(b.events)) for b in batches)
        echo(
            f"  POST {request.path}: {len(batches)} batches,"
            f" {sum(len(b.events) for b in batches)} events, {len(request.body):,} bytes"
            f" (events per batch: {sizes})"
        )
    types = Counter(e.event_type for e in server.events)
    echo("  event types: " + ", ".join(f"{n} {t}" for t, n in sorted(types.items())))
    echo(
        f"  One batch per user, many users' batches per request: {len(requests)} requests"
        f" for {server.event_count} events"
    )
    echo("  (walkerOS's destination sends one request per event).")
    echo("")
    statuses = Counter(o.status for o in outcomes)
    echo("Receipts (the final outcome of every pushed event)")
    echo("  " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
    echo("")
    echo(next_step())


def next_step() -> str:
    """The "Next:" hint: a dry run of the repository's example events, ready to paste.

    Written for where the README leaves the user: the repository's root, the command
    run by its path (``.venv/bin/mparticle-dest``) or as ``python -m mparticle_dest``.
    The example flow.json reads the credentials from the environment (any value does
    for a dry run), so the command sets them.
    """
    program = Path(sys.argv[0])
    command = (
        shlex.quote(str(program))
        if program.name == "mparticle-dest"
        else f"{shlex.quote(sys.executable)} -m mparticle_dest"
    )
    examples = Path("examples")
    if not (examples / "flow.json").is_file():
        examples = Path("<repository>/examples")
    return (
        "Next: map and batch the example events without sending them"
        " (mparticle-dest send --help):\n"
        f"  MPARTICLE_API_KEY=k MPARTICLE_API_SECRET=s {command} send"
        f" {examples / 'events.jsonl'} --config {examples / 'flow.json'} --dry-run"
    )


def _show_sample(echo: Echo, server: FakeMparticle) -> None:
    if not server.batches:
        return
    sample = max(server.batches, key=lambda b: len({e["event_type"] for e in b.events}))
    shown: dict[str, Any] = {}
    for sample_event in sample.events:
        shown.setdefault(sample_event["event_type"], sample_event)
    customer = sample.user_identities.get("customer_id")
    echo(
        f"A batch as mParticle received it (customer_id {customer}, {len(sample.events)}"
        " events; the first event of each type shown):"
    )
    body = dict(sample.body)
    body["events"] = list(shown.values())
    echo(json.dumps(body, indent=2, ensure_ascii=False))
    echo("")


def demo_main(echo: Echo, *, users: int, events: int, waves: int) -> bool:
    """Run :func:`run_demo` on a fresh event loop."""
    return anyio.run(lambda: run_demo(echo, users=users, events=events, waves=waves))
