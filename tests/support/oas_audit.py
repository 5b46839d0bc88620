"""Suite-wide audit: every batch a fake server accepts is also valid in the official file.

Issue 5 asks that every payload the fake server accepts in the test suite is also
valid against ``../shared/mparticle.events.oas.yaml`` with the SPEC §9 gaps patched.
``OASAudit`` observes every :class:`FakeMparticle` of the run (through
``FakeMparticle.observing``), validates the first ``per_server`` batches each server
with schema validation on accepted (servers made with ``validate=False`` accept
non-conforming batches on purpose), and fails the run at the end if any was
rejected. ``tests/conftest.py`` imports the fixture and the summary hook below.

Where the official file is not beside the checkout the audit is inactive, and the
terminal summary says so: the fake servers still refuse any batch outside the
project's own schema, which is stricter than the official file.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from mparticle_dest.testing import FakeMparticle

from .oas import OASValidationError, validate_batch
from .references import OAS, available, missing_reason
from .run_audit import RunAudit

__all__ = ["OASAudit", "oas_audit", "pytest_terminal_summary"]

_AUDIT = pytest.StashKey["OASAudit | None"]()


class OASAudit(RunAudit):
    """A thread-safe ``FakeMparticle`` batch observer collecting OAS violations."""

    title = (
        "batch(es) accepted by the fake server are invalid in the official OpenAPI file"
        " (SPEC §9 gaps patched)"
    )

    def __init__(self, per_server: int = 50) -> None:
        super().__init__()
        self.per_server = per_server
        self.checked = 0
        self._seen: weakref.WeakKeyDictionary[FakeMparticle, int] = weakref.WeakKeyDictionary()

    def __call__(self, server: FakeMparticle, path: str, batch: Mapping[str, Any]) -> None:
        """Validate ``batch`` unless its server does not validate or reached the cap."""
        if not server.validate:
            return
        with self._lock:
            seen = self._seen.get(server, 0)
            if seen >= self.per_server:
                return
            self._seen[server] = seen + 1
            self.checked += 1
        try:
            validate_batch(batch)
        except OASValidationError as exc:
            self.record(f" ({path}): {exc}")


@pytest.fixture(scope="session", autouse=True)
def oas_audit(pytestconfig: pytest.Config) -> Iterator[OASAudit | None]:
    """Observe every fake server of the run; fail at the end on any OAS violation.

    Yields ``None`` (the audit is inactive) when the official file is missing.
    """
    if not available(OAS):
        pytestconfig.stash[_AUDIT] = None
        yield None
        return
    audit = OASAudit()
    pytestconfig.stash[_AUDIT] = audit
    with audit, FakeMparticle.observing(audit):
        yield audit
    audit.check()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say how many accepted batches the audit checked, or that it was inactive."""
    if _AUDIT not in config.stash:
        return  # no test ran
    audit = config.stash[_AUDIT]
    if audit is None:
        terminalreporter.write_line(
            f"OAS audit inactive: {missing_reason(OAS)}; payloads were checked against "
            "the project's own schema (mparticle_dest.testing) only"
        )
    else:
        terminalreporter.write_line(
            f"OAS audit: {audit.checked} batch(es) accepted by fake servers checked against "
            f"the official file, {len(audit.violations)} violation(s)"
        )
