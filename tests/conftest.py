"""Shared fixtures: every async test runs under both asyncio and trio.

Every batch a fake server accepts during the run is also checked against the
official OpenAPI file (``support.oas_audit``), and connections to anything but
loopback are refused (``support.loopback_guard``); either violation fails the run.
"""

from __future__ import annotations

import pytest
from support.loopback_guard import loopback_only
from support.oas_audit import oas_audit, pytest_terminal_summary
from support.run_audit import run_audits_name_the_test

__all__ = [
    "anyio_backend",
    "loopback_only",
    "oas_audit",
    "pytest_terminal_summary",
    "run_audits_name_the_test",
]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Parametrize anyio tests over both backends."""
    return str(request.param)
