"""Validate mParticle payloads against the official Events API OpenAPI file.

The file lives outside the repository (``<repo>/../shared/mparticle.events.oas.yaml``,
see ``support.references``) and is loaded as is, then patched for exactly the gaps
listed below (the known gaps of the file) and nothing else:

- ``user_attributes`` values are strings, numbers, booleans or lists of strings;
- ``custom_event_type`` also allows ``media`` and ``attribution``;
- ``custom_attributes`` values (events and products) are strings, numbers or booleans;
- identity values are strings or numbers;
- every event is validated by its ``event_type`` against that type's schema (the file
  types every item as the loose ``BaseEvent``); types without a schema of their own
  (``first_run``, ``uninstall``, ...) stay on ``BaseEvent``;
- ``ProductAction``/``PromotionAction`` require only ``action``; ``Product``,
  ``Promotion``, ``ProductImpression`` and ``ShoppingCart`` require nothing;
- ``ConsentState.gdpr`` maps a purpose to ``{consented, document,
  timestamp_unixtime_ms, location, hardware_id}`` (``consented`` required) and
  ``ccpa`` holds ``data_sale_opt_out`` of the same shape; neither is required;
- the batch's data plan is ``context`` (as mParticle's JSON reference and SDKs send
  it), not the file's ``batch_context``.

Usage::

    from support.oas import validate_batch, validate_bulk
    validate_batch(json.loads(body))   # raises OASValidationError listing every problem

Where the file is missing, every function here skips the calling test (the skip names
the file); ``support.schemas`` checks against the project's own schema always and adds
this one when it is present.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from .references import OAS, require

__all__ = [
    "EVENT_SCHEMAS",
    "OASValidationError",
    "load_oas",
    "patched_components",
    "validate_batch",
    "validate_bulk",
    "validate_event",
]

#: event_type -> the component schema that describes it in the official file.
EVENT_SCHEMAS: Mapping[str, str] = {
    "custom_event": "CustomEvent",
    "screen_view": "ScreenViewEvent",
    "commerce_event": "CommerceEvent",
    "session_start": "SessionStartEvent",
    "session_end": "SessionEndEvent",
    "user_attribute_change": "UserAttributeChangeEvent",
    "user_identity_change": "UserIdentityChangeEvent",
    "opt_out": "OptOutEvent",
    "application_state_transition": "ApplicationStateTransitionEvent",
    "breadcrumb": "BreadcrumbEvent",
    "crash_report": "CrashReportEvent",
    "network_performance": "NetworkPerformanceEvent",
    "profile": "ProfileEvent",
    "push_message": "PushMessageEvent",
    "push_registration": "PushRegistrationEvent",
}

_SCALAR = {"type": ["string", "number", "boolean"]}
_CONSENT_ITEM = {
    "type": "object",
    "properties": {
        "consented": {"type": "boolean"},
        "document": {"type": "string"},
        "timestamp_unixtime_ms": {"type": "integer"},
        "location": {"type": "string"},
        "hardware_id": {"type": "string"},
    },
    "required": ["consented"],
    "additionalProperties": False,
}


class OASValidationError(AssertionError):
    """A payload does not conform to the (patched) official schema.

    ``problems`` holds one ``$.json.path: message`` line per violation.
    """

    def __init__(self, what: str, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(f"{what} violates the mParticle OAS:\n  " + "\n  ".join(self.problems))


@functools.cache
def load_oas() -> dict[str, Any]:
    """Return the official OpenAPI document, unpatched (cached; do not mutate).

    Skips the calling test when the file is not beside the checkout.
    """
    with require(OAS).open(encoding="utf-8") as f:
        doc: dict[str, Any] = yaml.safe_load(f)
    return doc


@functools.cache
def patched_components() -> dict[str, Any]:
    """Return ``components.schemas`` with the known gaps patched (cached)."""
    schemas: dict[str, Any] = copy.deepcopy(load_oas()["components"]["schemas"])
    batch = schemas["Batch"]["properties"]

    # user_attributes values: strings, numbers, booleans or lists of strings.
    batch["user_attributes"]["additionalProperties"] = {
        "anyOf": [_SCALAR, {"type": "array", "items": {"type": "string"}}]
    }
    # identity values: strings or numbers.
    for prop in batch["user_identities"]["properties"].values():
        prop["type"] = ["string", "number"]

    # custom_event_type also allows media and attribution.
    custom_type = schemas["CustomEventData"]["allOf"][1]["properties"]["custom_event_type"]
    custom_type["enum"] = [*custom_type["enum"], "media", "attribution"]

    # custom_attributes values: strings, numbers or booleans (events and products).
    schemas["CommonEventData"]["properties"]["custom_attributes"]["additionalProperties"] = _SCALAR
    schemas["Product"]["properties"]["custom_attributes"]["additionalProperties"] = _SCALAR

    # Validate each event by its event_type (the file types every item as BaseEvent).
    batch["events"]["items"] = {
        "allOf": [
            {"$ref": "#/components/schemas/BaseEvent"},
            *(
                {
                    "if": {
                        "properties": {"event_type": {"const": event_type}},
                        "required": ["event_type"],
                    },
                    "then": {"$ref": f"#/components/schemas/{name}"},
                }
                for event_type, name in EVENT_SCHEMAS.items()
            ),
        ]
    }

    # Only `action` is required on actions; products & co. require nothing.
    schemas["ProductAction"]["required"] = ["action"]
    schemas["PromotionAction"]["required"] = ["action"]
    for name in ("Product", "Promotion", "ProductImpression", "ShoppingCart"):
        schemas[name].pop("required", None)

    # The batch's data plan: mParticle's JSON reference and SDKs send it as `context`;
    # the file names the property `batch_context`.
    batch["context"] = batch.pop("batch_context")

    # Consent: gdpr is purpose -> consent item; ccpa holds data_sale_opt_out.
    schemas["ConsentState"] = {
        "type": "object",
        "properties": {
            "gdpr": {"type": "object", "additionalProperties": _CONSENT_ITEM},
            "ccpa": {
                "type": "object",
                "properties": {"data_sale_opt_out": _CONSENT_ITEM},
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
    }
    return schemas


@functools.cache
def _validator(component: str) -> Draft7Validator:
    schema = {"$ref": f"#/components/schemas/{component}"}
    root = {**schema, "components": {"schemas": patched_components()}}
    return Draft7Validator(root)


@functools.cache
def _bulk_validator() -> Draft7Validator:
    root = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Batch"},
        "components": {"schemas": patched_components()},
    }
    return Draft7Validator(root)


def _path(error: ValidationError) -> str:
    out = "$"
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _leaves(errors: Iterable[ValidationError]) -> Iterable[ValidationError]:
    # if/then and allOf wrap the useful error; report the innermost ones.
    for error in errors:
        if error.context:
            yield from _leaves(error.context)
        else:
            yield error


def _check(validator: Draft7Validator, obj: Any, what: str) -> None:
    errors = sorted(_leaves(validator.iter_errors(obj)), key=lambda e: list(map(str, e.path)))
    if errors:
        raise OASValidationError(what, (f"{_path(e)}: {e.message}" for e in errors))


def validate_batch(obj: Any) -> None:
    """Validate one batch (the parsed JSON of a ``/v2/events`` body).

    Raises:
        OASValidationError: listing every violation with its JSON path.
    """
    _check(_validator("Batch"), obj, "batch")


def validate_bulk(batches: Any) -> None:
    """Validate a ``/v2/bulkevents`` body (a list of batches).

    Raises:
        OASValidationError: listing every violation with its JSON path.
    """
    _check(_bulk_validator(), batches, "bulk request")


def validate_event(event: Any) -> None:
    """Validate one event object (``{"event_type": ..., "data": {...}}``) by its type.

    Raises:
        OASValidationError: listing every violation with its JSON path.
    """
    _check(_validator("Batch"), {"events": [event], "environment": "production"}, "event")
