"""Shared fixtures: every async test runs under both asyncio and trio."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Parametrize anyio tests over both backends."""
    return str(request.param)
