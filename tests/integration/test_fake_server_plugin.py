"""The ``mparticle_server`` pytest fixtures, registered through the ``pytest11`` entry point."""

from __future__ import annotations

import httpx
import pytest

from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan


def test_fixture_yields_a_started_server(mparticle_server):
    assert isinstance(mparticle_server, FakeMparticle)
    with httpx.Client(base_url=mparticle_server.url, auth=("test-key", "test-secret")) as c:
        assert c.post("/v2/events", json={"environment": "production"}).status_code == 202
    assert len(mparticle_server.batches) == 1


@pytest.mark.mparticle_server(
    api_key="k", api_secret="s", faults=FaultPlan.script([Fault.server_error(500)])
)
def test_marker_customises_the_server(mparticle_server):
    assert mparticle_server.settings == {"apiKey": "k", "apiSecret": "s"}
    with httpx.Client(base_url=mparticle_server.url, auth=("k", "s")) as c:
        assert c.post("/v2/events", json={"environment": "production"}).status_code == 500
        assert c.post("/v2/events", json={"environment": "production"}).status_code == 202


def test_factory_starts_independent_servers(mparticle_server_factory):
    first = mparticle_server_factory()
    second = mparticle_server_factory(record=False)
    assert first.url != second.url
    with httpx.Client(auth=("test-key", "test-secret")) as c:
        c.post(f"{second.url}/v2/events", json={"environment": "production"})
    assert (first.stats.requests, second.stats.requests) == (0, 1)
