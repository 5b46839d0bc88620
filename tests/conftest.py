"""Shared fixtures: every async test runs under both asyncio and trio.

Every batch a fake server accepts during the run is also checked against the
official OpenAPI file (``support.oas_audit``), and connections to anything but
loopback are refused (``support.loopback_guard``); either violation fails the run.
Tests marked ``requires(...)`` (``support.references``) are skipped, with a reason
naming the file, when a reference file is not beside the checkout; the OAS audit is
then inactive and says so in the terminal summary.
"""

from __future__ import annotations

import pytest
from support.loopback_guard import loopback_only
from support.oas_audit import oas_audit, pytest_terminal_summary
from support.references import pytest_configure, pytest_runtest_setup
from support.run_audit import run_audits_name_the_test

__all__ = [
    "anyio_backend",
    "loopback_only",
    "oas_audit",
    "pytest_configure",
    "pytest_runtest_setup",
    "pytest_terminal_summary",
    "run_audits_name_the_test",
]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Parametrize anyio tests over both backends."""
    return str(request.param)
