"""The ``otel`` fixture: a fresh OpenTelemetry SDK per test (``support.otel.Otel``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.otel import Otel


@pytest.fixture
def otel() -> Iterator[Otel]:
    sdk = Otel()
    yield sdk
    sdk.shutdown()
