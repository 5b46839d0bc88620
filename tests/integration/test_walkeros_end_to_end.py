"""walkerOS parity end to end: what ``Destination`` posts to the (fake) Events API.

The contract tests compare the encoder's bytes with walkerOS's reference bodies;
these push the same events and configs through a real ``Destination`` to the
loopback fake server, one batch per request (walkerOS's one request per event), and
compare the bytes and headers the server received. Also: a ``silent`` rule maps the
event but sends nothing, counted as skipped with reason ``"silent"``.
"""

from __future__ import annotations

import copy

import pytest
from support.walkeros_steps import Step, load_steps, step_ids

from mparticle_dest import Destination
from mparticle_dest.testing import FakeMparticle

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("step", load_steps(), ids=step_ids)
async def test_step_example_arrives_byte_for_byte_with_walkeros_headers(step: Step) -> None:
    settings = step.config["settings"]
    async with FakeMparticle(api_key=settings["apiKey"], api_secret=settings["apiSecret"]) as fake:
        config = copy.deepcopy(step.config)
        async with Destination(config, base_url=fake.url, max_batches_per_request=1) as dest:
            receipt = await dest.push(copy.deepcopy(step.event))
        assert (await receipt).delivered

    [request] = fake.requests
    assert request.status == 202
    assert request.body.decode("utf-8") == "[" + step.body + "]"
    for name, value in step.headers.items():
        assert request.headers[name] == value


async def test_a_silent_rule_maps_but_sends_nothing_and_counts_skipped_silent() -> None:
    async with FakeMparticle() as fake:
        config = {
            "settings": {**fake.settings, "userIdentities": {"customer_id": "user.id"}},
            "mapping": {"debug": {"*": {"silent": True}}},
        }
        async with Destination(config, base_url=fake.url) as dest:
            silent = await dest.push({"name": "debug trace", "user": {"id": "u1"}})
            sent = await dest.push({"name": "page view", "user": {"id": "u1"}})
        outcome = await silent
        assert (outcome.status, outcome.reason) == ("skipped", "silent")
        assert (await sent).delivered

    assert dict(dest.stats.skipped) == {"silent": 1}
    assert [e.name for e in fake.events] == ["page view"]
