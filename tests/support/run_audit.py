"""Run-wide audits: collect violations from anywhere during the run, fail at its end.

A ``RunAudit`` is activated by a session fixture (``with audit: yield``) and checked
when the session ends; while active, the autouse fixture ``run_audits_name_the_test``
keeps its ``current_test`` up to date so each violation names the test behind it.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import pytest

__all__ = ["RunAudit", "run_audits_name_the_test"]


class RunAudit:
    """Thread-safe violation collector; ``title`` describes what a violation is."""

    title: ClassVar[str] = "violation(s)"
    active: ClassVar[list[RunAudit]] = []

    def __init__(self) -> None:
        self.current_test = ""
        self.violations: list[str] = []
        self._lock = threading.Lock()

    def record(self, what: str) -> None:
        """Record a violation of the running test."""
        with self._lock:
            self.violations.append(f"{self.current_test}{what}")

    def check(self) -> None:
        """Raise ``AssertionError`` listing the violations, if any."""
        if self.violations:
            listed = "\n".join(self.violations[:20])
            raise AssertionError(f"{len(self.violations)} {self.title}:\n{listed}")

    def __enter__(self) -> RunAudit:
        RunAudit.active.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        RunAudit.active.remove(self)


@pytest.fixture(autouse=True)
def run_audits_name_the_test(request: pytest.FixtureRequest) -> None:
    """Tell every active audit which test is running."""
    for audit in RunAudit.active:
        audit.current_test = request.node.nodeid
