"""The OAS validator helper applies exactly the SPEC §9 patches and still rejects bad shapes.

Every test here needs the official file beside the checkout; without it the module is
skipped with a reason naming the file.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.oas import EVENT_SCHEMAS, OASValidationError, load_oas, validate_batch, validate_bulk
from support.references import OAS, requires
from support.walkeros_steps import Step, load_steps, step_ids

pytestmark = requires(OAS)


def _batch(*events: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"events": list(events), "environment": "production", **extra}


def _custom(**data: Any) -> dict[str, Any]:
    return {
        "event_type": "custom_event",
        "data": {"event_name": "a b", "custom_event_type": "other", **data},
    }


@pytest.mark.parametrize("step", load_steps(), ids=step_ids)
def test_walkeros_reference_bodies_are_valid(step: Step) -> None:
    validate_batch(json.loads(step.body))


def test_every_event_type_with_a_schema_in_the_file_is_mapped() -> None:
    schemas = load_oas()["components"]["schemas"]
    for event_type, name in EVENT_SCHEMAS.items():
        assert schemas[name]["properties"]["event_type"]["enum"] == [event_type]


def test_patched_scalar_values_are_accepted() -> None:
    validate_batch(
        _batch(
            _custom(
                custom_event_type="media",
                custom_attributes={"s": "x", "n": 1.5, "b": True},
            ),
            _custom(custom_event_type="attribution"),
            user_identities={"customer_id": 42, "email": "a@b.c"},
            user_attributes={"s": "x", "n": 1, "b": False, "l": ["a", "b"]},
        )
    )


@pytest.mark.parametrize(
    ("batch", "where"),
    [
        (_batch(_custom(custom_event_type="bogus")), "$.events[0].data.custom_event_type"),
        (
            _batch(_custom(custom_attributes={"d": {"x": 1}})),
            "$.events[0].data.custom_attributes.d",
        ),
        (_batch(_custom(), user_attributes={"l": [1, 2]}), "$.user_attributes.l[0]"),
        (_batch(_custom(), user_identities={"customer_id": True}), "$.user_identities.customer_id"),
        (_batch(_custom(), user_identities={"nope": "x"}), "$.user_identities"),
        (_batch(_custom(), extra_key=1), "$"),
        (_batch({"event_type": "custom_event", "data": {}}), "$.events[0].data"),
        (_batch({"event_type": "session_start", "data": {}}), "$.events[0].data"),
        (_batch({"event_type": "nonsense", "data": {}}), "$.events[0].event_type"),
    ],
)
def test_bad_shapes_are_rejected_with_their_path(batch: dict[str, Any], where: str) -> None:
    with pytest.raises(OASValidationError) as info:
        validate_batch(batch)
    assert any(p.startswith(where + ":") for p in info.value.problems), info.value.problems


def test_commerce_objects_require_only_action() -> None:
    commerce = {
        "event_type": "commerce_event",
        "data": {
            "product_action": {"action": "purchase", "products": [{"id": "p"}]},
            "promotion_action": {"action": "view", "promotions": [{"id": "x"}]},
            "product_impressions": [{"products": [{"name": "n"}]}],
            "shopping_cart": {},
        },
    }
    validate_batch(_batch(commerce))
    del commerce["data"]["product_action"]["action"]
    with pytest.raises(OASValidationError, match=r"product_action: 'action' is a required"):
        validate_batch(_batch(commerce))


def test_consent_state_shapes() -> None:
    item = {"consented": True, "document": "v1", "timestamp_unixtime_ms": 1, "location": "x"}
    validate_batch(_batch(_custom(), consent_state={"gdpr": {"marketing": item}}))
    validate_batch(_batch(_custom(), consent_state={"ccpa": {"data_sale_opt_out": item}}))
    with pytest.raises(OASValidationError, match="consented"):
        validate_batch(_batch(_custom(), consent_state={"gdpr": {"marketing": {}}}))


def test_bulk_paths_name_the_batch() -> None:
    validate_bulk([_batch(_custom()), _batch(_custom())])
    with pytest.raises(OASValidationError, match=r"\$\[1\]: 'environment' is a required"):
        validate_bulk([_batch(_custom()), {"events": []}])
