"""The benchmark scenario: deterministic walkerOS `product view` events and their config.

The same events and the same mapping feed every mode (the library batched, the
library one-request-per-event, the hand-written baseline), so their figures are
comparable. Events are seeded: one seed gives byte-identical events on every run.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# The fake server's default credentials (mparticle_dest.testing.FakeMparticle).
API_KEY = "test-key"
API_SECRET = "test-secret"  # noqa: S105 - a fake credential for the loopback server

#: Event time base (2023-11-14); event ``k`` is stamped ``BASE_TIMESTAMP + k * 7`` ms.
BASE_TIMESTAMP = 1_700_000_000_000

#: ``custom_attributes`` key → path in the walkerOS event (the rule's ``data.map``).
ATTRIBUTE_MAP: dict[str, str] = {
    "product_id": "data.id",
    "product_name": "data.name",
    "category": "data.category",
    "price": "data.price",
}

#: ``user_identities`` type → path in the walkerOS event, in body order.
IDENTITY_MAP: dict[str, str] = {"customer_id": "user.id", "email": "user.email"}

_CATEGORIES = ("shoes", "bags", "caps", "shirts", "socks", "jackets", "belts", "gloves")
_COLORS = ("black", "white", "red", "blue", "green", "grey")
_CATALOGUE_SIZE = 200


@dataclass(frozen=True)
class ScenarioParams:
    """What one benchmark run does.

    Attributes:
        events: number of events pushed.
        users: number of distinct users the events are spread over (uniformly at random).
        seed: random seed of the event generator.
        extra_data_fields: unmapped fields added to every event's ``data`` (event shape knob).
        batch_size: events per per-user batch (walkerOS ``batch.size``); ``0`` sets no
            size, so batches seal on bytes (128 KB) and age only (library modes only).
        batch_age: milliseconds before a non-full batch is flushed (walkerOS ``batch.age``).
    """

    events: int = 20_000
    users: int = 500
    seed: int = 6
    extra_data_fields: int = 0
    batch_size: int = 100
    batch_age: int = 1_000


def scenario_config(batch_size: int, batch_age: int) -> dict[str, Any]:
    """The walkerOS destination config of the scenario (camelCase, as in a ``flow.json``).

    `product view` maps to a custom_event whose ``custom_attributes`` come from
    ``data`` (:data:`ATTRIBUTE_MAP`), with the identities of :data:`IDENTITY_MAP`.
    """
    return {
        "settings": {
            "apiKey": API_KEY,
            "apiSecret": API_SECRET,
            "userIdentities": dict(IDENTITY_MAP),
        },
        "mapping": {"product": {"view": {"data": {"map": dict(ATTRIBUTE_MAP)}}}},
        "batch": {"size": batch_size, "age": batch_age} if batch_size > 0 else {"age": batch_age},
    }


def _catalogue(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "id": f"SKU-{i:05d}",
            "name": f"Product {i}",
            "category": rng.choice(_CATEGORIES),
            "price": round(rng.uniform(5, 400), 2),
            "color": rng.choice(_COLORS),
            "quantity": 1,
        }
        for i in range(_CATALOGUE_SIZE)
    ]


def generate_events(
    events: int, users: int, *, seed: int = 6, extra_data_fields: int = 0
) -> list[dict[str, Any]]:
    """Build ``events`` walkerOS v4 `product view` events spread over ``users`` users.

    Every event carries its own ``id`` (16 hex characters) and ``timestamp`` so the
    bodies are reproducible; about ten top-level fields, as a walkerOS web source sends.
    """
    return list(iter_events(events, users, seed=seed, extra_data_fields=extra_data_fields))


def iter_events(
    events: int, users: int, *, seed: int = 6, extra_data_fields: int = 0
) -> Iterator[dict[str, Any]]:
    """The events of :func:`generate_events`, built one at a time (nothing retained)."""
    rng = random.Random(seed)
    catalogue = _catalogue(rng)
    for k in range(events):
        user = rng.randrange(users)
        product = dict(rng.choice(catalogue))
        for f in range(extra_data_fields):
            product[f"extra_{f}"] = f"value-{k % 97}-{f}"
        yield (
            {
                "name": "product view",
                "data": product,
                "context": {"shopping": ["detail", 0]},
                "globals": {"pagegroup": "shop"},
                "user": {
                    "id": f"user-{user:05d}",
                    "email": f"user{user}@example.com",
                    "session": f"s-{user:05d}-{k // 1000}",
                },
                "consent": {"functional": True, "marketing": user % 3 != 0},
                "id": f"{seed & 0xFFFF:04x}{k:012x}",
                "trigger": "load",
                "entity": "product",
                "action": "view",
                "timestamp": BASE_TIMESTAMP + k * 7,
                "timing": round(rng.uniform(0.1, 9.9), 2),
                "source": {"type": "express", "platform": "server", "count": k + 1},
            }
        )
