"""Numeric options refuse booleans, the same way everywhere (#16)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from mparticle_dest import Destination, PacingPolicy, RetryPolicy

CONFIG = {"settings": {"apiKey": "key", "apiSecret": "secret"}}
DESTINATION_NUMBERS = (
    "max_buffered_events",
    "full_timeout",
    "close_timeout",
    "max_in_flight",
    "max_batches_per_request",
    "request_timeout",
)


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("option", DESTINATION_NUMBERS)
def test_destination_numeric_options_refuse_booleans(option: str, flag: bool) -> None:
    with pytest.raises(TypeError, match=rf"^{option} must be a number, got bool"):
        Destination(CONFIG, **{option: flag})


@pytest.mark.parametrize(
    ("policy", "name"),
    [(cls, f.name) for cls in (RetryPolicy, PacingPolicy) for f in attrs.fields(cls)],
)
def test_policy_numeric_fields_refuse_booleans(policy: Any, name: str) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be a number, got bool"):
        policy(**{name: True})


def test_numbers_are_still_accepted_and_converted() -> None:
    dest = Destination(CONFIG, max_buffered_events=1, close_timeout=2, request_timeout=3)
    assert dest.options.max_buffered_events == 1
    assert dest.options.close_timeout == 2.0 and type(dest.options.close_timeout) is float
    assert RetryPolicy(max_elapsed=5).max_elapsed == 5.0
    assert PacingPolicy(min_rate=1).min_rate == 1.0
