"""Fixtures shared by the fake server's self-tests (modules may shadow them locally)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from mparticle_dest.testing import FakeMparticle


@pytest.fixture
def server() -> Iterator[FakeMparticle]:
    """A fresh fake Events API with its default credentials."""
    with FakeMparticle() as fake:
        yield fake


@pytest.fixture
def client(server: FakeMparticle) -> Iterator[httpx.Client]:
    """A plain httpx client authenticated with the fake's credentials."""
    auth = (server.settings["apiKey"], server.settings["apiSecret"])
    with httpx.Client(base_url=server.url, auth=auth) as c:
        yield c
