"""Check payloads against every schema the run has.

The project's own schema (``mparticle_dest.testing``, the fake server's) is always
there and always checked. The official OpenAPI file (``support.oas``) is checked too
when it sits beside the checkout; without it these helpers check the own schema only
and the terminal summary says the OAS cross-checks are inactive (``support.oas_audit``).
The own schema is the stricter of the two by design, so it rejects whatever the
official file rejects (``tests/contract/test_fake_schema_vs_oas.py`` keeps them in step).

Use these where a payload check is one step of a test about something else; a test
that *is* an OAS cross-check uses ``support.oas`` directly and is skipped without it.
"""

from __future__ import annotations

from typing import Any

import pytest

from mparticle_dest import testing

from . import oas
from .references import OAS, available

__all__ = ["assert_rejected_event", "check_batch", "check_bulk", "check_event"]


def check_batch(batch: Any) -> None:
    """Assert ``batch`` fits the own schema, and the official file when present."""
    assert testing.validate_batch(batch) == []
    if available(OAS):
        oas.validate_batch(batch)


def check_bulk(batches: Any) -> None:
    """Assert a bulk body (a list of batches) fits the own schema, and the official file."""
    assert isinstance(batches, list)
    for batch in batches:
        assert testing.validate_batch(batch) == []
    if available(OAS):
        oas.validate_bulk(batches)


def check_event(event: Any) -> None:
    """Assert one event (``{"event_type": ..., "data": {...}}``) fits both schemas."""
    assert testing.validate_event(event) == []
    if available(OAS):
        oas.validate_event(event)


def assert_rejected_event(event: Any) -> None:
    """Assert the own schema rejects ``event``, and the official file too when present."""
    assert testing.validate_event(event) != []
    if available(OAS):
        with pytest.raises(oas.OASValidationError):
            oas.validate_event(event)
