"""mpid, deviceInfo, applicationInfo and dataPlan produce batches the official OAS accepts (#17).

Hypothesis draws configs that set these settings (at the destination and in rules,
as constants drawn from the models or as mappings over the event that may well
produce something mParticle refuses). A build either gives a batch valid against the
official OpenAPI file and the fake server's own schema, or refuses the event with
``InvalidEventError`` naming one of these fields: never an invalid batch.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from support.mp_strategies import json_values, model_strategy
from support.oas import validate_batch
from support.references import OAS, requires

from mparticle_dest import InvalidEventError
from mparticle_dest._mparticle import models as m
from mparticle_dest._payload.builder import BuiltEvent, EventBuilder
from mparticle_dest._wire import encode_batch
from mparticle_dest.testing._schema import validate_batch as fake_server_validate

# Skipped, with a reason naming the file, in a clone without ../shared beside it.
pytestmark = requires(OAS)

_REFUSABLE = ("mpid", "device_info", "application_info")
_paths = st.sampled_from(["user.mpid", "user.id", "data.a", "context.app.0", "globals.device"])


def _static(cls: type) -> st.SearchStrategy[dict[str, Any]]:
    return model_strategy(cls).map(lambda obj: {"value": obj.to_dict()})


def _object_mapping(cls: type) -> st.SearchStrategy[Any]:
    fields = list(cls.wire_order())  # type: ignore[attr-defined]
    return st.one_of(
        _static(cls),
        _paths,
        st.dictionaries(
            st.sampled_from([*fields[:6], "not_a_field"]),
            st.one_of(_paths, json_values.map(lambda v: {"value": v})),
            min_size=1,
            max_size=3,
        ).map(lambda d: {"map": d}),
    )


_mpid = st.one_of(
    _paths,
    st.integers(-(2**63), 2**63 - 1).map(lambda n: {"value": n}),
    st.integers(-(2**63), 2**63 - 1).map(lambda n: {"value": str(n)}),
)
_data_plan = st.fixed_dictionaries(
    {"planId": st.text("abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=10)},
    optional={"planVersion": st.integers(1, 100)},
)
_batch_settings = st.fixed_dictionaries(
    {},
    optional={
        "mpid": _mpid,
        "deviceInfo": _object_mapping(m.DeviceInformation),
        "applicationInfo": _object_mapping(m.ApplicationInformation),
        "dataPlan": _data_plan,
    },
)
_configs = st.fixed_dictionaries(
    {
        "settings": st.builds(
            lambda extra: {"apiKey": "key", "apiSecret": "secret", **extra}, _batch_settings
        ),
        "mapping": st.fixed_dictionaries(
            {
                "order": st.fixed_dictionaries(
                    {"complete": st.builds(dict, settings=_batch_settings)}
                )
            }
        ),
    }
)
_events = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["order complete", "page view"]),
        "id": st.text(min_size=1, max_size=8),
        "timestamp": st.integers(1, 2**45),
        "user": st.fixed_dictionaries(
            {}, optional={"id": json_values, "mpid": st.one_of(json_values, st.integers())}
        ),
        "data": st.fixed_dictionaries({}, optional={"a": json_values}),
        "globals": st.fixed_dictionaries({}, optional={"device": json_values}),
        "context": st.fixed_dictionaries(
            {}, optional={"app": st.tuples(json_values, st.integers(0, 3)).map(list)}
        ),
    }
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(config=_configs, events=st.lists(_events, min_size=1, max_size=3))
def test_batches_with_the_mparticle_sdk_fields_fit_the_official_oas(
    config: dict[str, Any], events: list[dict[str, Any]]
) -> None:
    builder = EventBuilder.from_config(config)
    for event in events:
        try:
            built = builder.build(event)
        except InvalidEventError as exc:
            assert (exc.field or "").split(".")[0] in _REFUSABLE, exc
            hypothesis_event(f"refused: {exc.field}")
            continue
        assert isinstance(built, BuiltEvent)
        batch = json.loads(
            encode_batch(built.key, [built.body], built.user_attributes, built.source_request_id)
        )
        validate_batch(batch)
        assert fake_server_validate(batch) == []
        for field in ("mpid", "device_info", "application_info", "context"):
            if field in batch:
                hypothesis_event(f"has {field}")


def test_the_documented_example_fits_the_official_oas() -> None:
    config = {
        "settings": {
            "apiKey": "key",
            "apiSecret": "secret",
            "userIdentities": {"customer_id": "user.id"},
            "mpid": "user.mpid",
            "deviceInfo": {
                "map": {"platform": {"value": "web"}, "http_header_user_agent": "globals.ua"}
            },
            "applicationInfo": {"value": {"application_name": "shop", "os": "MobileWeb"}},
            "dataPlan": {"planId": "web_plan", "planVersion": 2},
        }
    }
    built = EventBuilder.from_config(config).build(
        {
            "name": "page view",
            "id": "e1",
            "timestamp": 1700000000000,
            "user": {"id": "u1", "mpid": "8223372036854775807"},
            "globals": {"ua": "Mozilla/5.0"},
        }
    )
    assert isinstance(built, BuiltEvent)
    batch = json.loads(encode_batch(built.key, [built.body], None, built.source_request_id))
    validate_batch(batch)
    assert fake_server_validate(batch) == []
    assert batch["mpid"] == 8223372036854775807
    assert batch["context"] == {"data_plan": {"plan_id": "web_plan", "plan_version": 2}}
