"""_models: typed models round-trip and fit the schemas (support.schemas), as does the checker."""

from __future__ import annotations

import json
import typing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.mp_parse import parse_batch, parse_event
from support.mp_strategies import model_strategy as _model_strategy
from support.oas import EVENT_SCHEMAS, validate_batch, validate_event
from support.references import OAS, requires
from support.schemas import assert_rejected_event, check_batch
from support.walkeros_steps import Step, load_steps, step_ids

from mparticle_dest._mparticle import models as m
from mparticle_dest._mparticle.constants import EVENT_TYPES

EVENT_CLASSES = typing.get_args(m.Event)


@pytest.mark.parametrize("step", load_steps(), ids=step_ids)
def test_walkeros_bodies_parse_and_serialize_back(step: Step) -> None:
    body = json.loads(step.body)
    batch = parse_batch(body)
    assert batch.to_dict() == body
    assert isinstance(batch.events[0], m.CustomEvent | m.ScreenView | m.CommerceEvent)


def test_every_constant_event_type_has_a_model_and_a_schema() -> None:
    assert {c.event_type for c in EVENT_CLASSES} == set(EVENT_TYPES) == set(EVENT_SCHEMAS)


def test_event_wire_order_puts_own_fields_first_and_the_tail_last() -> None:
    event = m.CustomEvent(
        event_name="a b",
        custom_attributes={"x": 1},
        timestamp_unixtime_ms=5,
        source_message_id="e",
        session_uuid="s",
    )
    assert list(event.to_dict()["data"]) == [
        "event_name",
        "custom_event_type",
        "session_uuid",
        "custom_attributes",
        "timestamp_unixtime_ms",
        "source_message_id",
    ]


# The models follow the official file, which is looser than the fake server's own
# schema (empty event names, for one): their instances are checked by the models'
# checker, and against the official file when it is beside the checkout.


@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.event_type)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_model_instance_fits_the_checker_and_round_trips(
    cls: type, data: st.DataObject
) -> None:
    event = data.draw(_model_strategy(cls))
    wire = event.to_dict()
    actions = ("product_action", "promotion_action", "product_impressions")
    if cls.event_type == "commerce_event" and not any(k in wire["data"] for k in actions):
        # The model (like the official file) allows it; mParticle refuses it.
        expected = ["data: a commerce event needs one of " + ", ".join(actions)]
    else:
        expected = []
    assert m.check_data(cls.event_type, wire["data"]) == expected
    assert parse_event(wire) == event


@requires(OAS)
@pytest.mark.parametrize("cls", EVENT_CLASSES, ids=lambda c: c.event_type)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_every_model_instance_fits_the_oas(cls: type, data: st.DataObject) -> None:
    validate_event(data.draw(_model_strategy(cls)).to_dict())


@settings(max_examples=25, deadline=None)
@given(batch=_model_strategy(m.Batch))
def test_batches_round_trip(batch: m.Batch) -> None:
    wire = batch.to_dict()
    assert parse_batch(json.loads(json.dumps(wire))).to_dict() == wire


@requires(OAS)
@settings(max_examples=25, deadline=None)
@given(batch=_model_strategy(m.Batch))
def test_batches_fit_the_oas(batch: m.Batch) -> None:
    validate_batch(batch.to_dict())


@pytest.mark.parametrize(
    "cls", [c for c in EVENT_CLASSES if m.required_fields(c.event_type)], ids=lambda c: c.event_type
)
def test_missing_required_fields_fail_both_the_oas_and_the_checker(cls: type) -> None:
    required = m.required_fields(cls.event_type)
    problems = m.check_data(cls.event_type, {})
    assert [p.split(":")[0] for p in problems] == [f"data.{f}" for f in required]
    assert_rejected_event({"event_type": cls.event_type, "data": {}})


@pytest.mark.parametrize(
    ("event_type", "data", "problem"),
    [
        ("commerce_event", {"product_action": {}}, "data.product_action.action: required"),
        (
            "commerce_event",
            {"product_action": {"action": "buy"}},
            "data.product_action.action: 'buy' is not one of",
        ),
        (
            "commerce_event",
            {"product_action": {"action": "purchase", "sku": "x"}},
            "data.product_action.sku: not a field of ProductAction",
        ),
        (
            "commerce_event",
            {"product_impressions": [{"products": [{"price": "12"}]}]},
            "data.product_impressions[0].products[0].price: expected a number, got '12'",
        ),
        ("commerce_event", {"currency_code": 978}, "data.currency_code: expected a string"),
        (
            "commerce_event",
            {"is_non_interactive": 1},
            "data.is_non_interactive: expected a boolean",
        ),
        ("session_start", {"session_id": True}, "data.session_id: expected an integer, got True"),
        (
            "session_end",
            {"session_duration_ms": 1.5},
            "data.session_duration_ms: expected an integer",
        ),
        ("opt_out", {"is_opted_out": "yes"}, "data.is_opted_out: expected a boolean"),
        (
            "custom_event",
            {"event_name": "a", "custom_attributes": {"d": {}}},
            "data.custom_attributes.d: {} is not a string or integer or number or boolean",
        ),
    ],
)
def test_checker_names_the_bad_field(event_type: str, data: dict[str, Any], problem: str) -> None:
    problems = m.check_data(event_type, data)
    assert any(p.startswith(problem) for p in problems), problems
    assert_rejected_event({"event_type": event_type, "data": data})


def test_checker_accepts_unknown_keys_where_mparticle_does() -> None:
    assert m.check_data("commerce_event", {"product_action": {"action": "purchase"}, "x": 1}) == []
    assert (
        m.check_data(
            "commerce_event", {"product_action": {"action": "click", "products": [{"sku": 1}]}}
        )
        == []
    )


def test_parse_is_strict() -> None:
    with pytest.raises(ValueError, match="unknown event_type"):
        parse_event({"event_type": "nonsense", "data": {}})
    with pytest.raises(ValueError, match=r"extra fields found \(nope\) @ \$"):
        parse_batch({"events": [], "environment": "production", "nope": 1})
    with pytest.raises(ValueError, match=r"@ \$\.user_identities"):
        parse_batch({"events": [], "user_identities": {"customer_id": True}})
    with pytest.raises(ValueError, match=r"expected int @ \$\.events\[0\]\.session_id"):
        parse_batch({"events": [{"event_type": "session_start", "data": {"session_id": "x"}}]})


def test_typed_construction_serializes_to_plain_json() -> None:
    batch = m.Batch(
        events=[
            m.CommerceEvent(
                product_action=m.ProductAction(
                    action="purchase", products=[m.Product(id="p", price=9.5, quantity=2)]
                ),
                currency_code="EUR",
                timestamp_unixtime_ms=1,
            )
        ],
        user_identities={"customer_id": "u"},
        consent_state=m.ConsentState(gdpr={"marketing": m.ConsentItem(consented=True)}),
    )
    assert batch.to_dict() == {
        "events": [
            {
                "event_type": "commerce_event",
                "data": {
                    "product_action": {
                        "action": "purchase",
                        "products": [{"id": "p", "price": 9.5, "quantity": 2}],
                    },
                    "currency_code": "EUR",
                    "timestamp_unixtime_ms": 1,
                },
            }
        ],
        "environment": "production",
        "user_identities": {"customer_id": "u"},
        "consent_state": {"gdpr": {"marketing": {"consented": True}}},
    }
    check_batch(batch.to_dict())
