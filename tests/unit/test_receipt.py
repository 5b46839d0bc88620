"""Batch outcomes: resolved once, waking whoever waits, whichever way they are resolved."""

from __future__ import annotations

import anyio
import pytest

from mparticle_dest._exceptions import DeliveryError
from mparticle_dest._receipt import (
    Receipt,
    fail_outcome,
    new_outcome,
    outcome_for,
    resolve_delivered,
    resolve_outcome,
)


def test_a_delivered_outcome_reads_as_the_general_resolution_does() -> None:
    for attempts, status in ((1, 202), (3, 200), (0, None)):
        fast, general = new_outcome(), new_outcome()
        assert resolve_delivered(fast, attempts, status)
        resolve_outcome(general, "delivered", attempts, status)
        assert fast == general
        assert outcome_for(fast, "e1") == outcome_for(general, "e1")


def test_a_final_outcome_is_never_resolved_again() -> None:
    outcome = new_outcome()
    fail_outcome(outcome, DeliveryError("gone"), "closed", attempts=2)
    before = dict(outcome)
    assert not resolve_delivered(outcome, 1, 202)
    assert outcome == before


@pytest.mark.anyio
async def test_resolving_a_delivered_outcome_wakes_its_waiters() -> None:
    outcome = new_outcome()
    receipt = Receipt(outcome, "e1")
    seen = []

    async def wait() -> None:
        seen.append(await receipt)

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert resolve_delivered(outcome, 1, 202)
    assert [(o.status, o.attempts, o.http_status) for o in seen] == [("delivered", 1, 202)]
    other = new_outcome()  # the fields are shared between outcomes, not the dict itself
    resolve_delivered(other, 1, 202)
    other["status"] = "x"
    assert receipt.outcome is not None and receipt.outcome.status == "delivered"
