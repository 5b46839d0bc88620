"""What one mapping rule (or no rule) compiles to for the payload builder: a :class:`Plan`.

The config was checked when it was built (every value mapping compiles), so compiling
here cannot fail; the key paths given to the compiler are the ones runtime warnings
name (``mapping at settings.ip failed with ...``).

A rule's plan combines the destination settings and the rule's own settings: its
identities override the destination's per type; its ``userAttributes``,
``deviceInfo`` and ``applicationInfo`` are merged over the destination's key by key
(the destination's function first); its ``mpid`` is tried before the destination's;
its ``dataPlan`` replaces the destination's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .._config import BatchOptions, DestinationConfig, Rule, RuleSettings, Settings
from .._wire import dumps_bytes
from ..mapping import MappingContext, compile_value_mapping
from ..mapping._plain import PlainValue, plain_value

__all__ = ["Plan", "ValueFn", "compile_plans"]

ValueFn = Callable[[Any, MappingContext], Any]
_Fns = tuple[ValueFn, ...]
# userIdentities compiled: {identity_type: (compiled, plain value or None)}.
_Identities = dict[str, tuple[ValueFn, "PlainValue | None"]]


class Plan:
    """Everything the builder needs for the events of one rule (or of no rule).

    Attributes:
        event_type, custom_event_type: what mParticle receives.
        prefix: the event body's bytes before its data object.
        name: the rule's ``name`` override, or ``None``.
        commerce, event_data: the compiled ``commerce`` (commerce events only) and
            ``eventData`` mappings, or ``None``.
        identities: ``((identity_type, fn), ...)`` in wire order.
        plain_identities: the same as plain values when every one is plain, else ``None``.
        ip, source_request_id: the destination's compiled mappings, or ``None``.
        user_attributes, device_info, application_info: the functions whose dict
            results are merged, in order.
        mpid: the functions tried in order; the first defined result wins.
        batch_context: the static ``batch_context`` JSON text (the data plan), or ``None``.
        batch: the rule's ``batch`` options, or ``None``.
        batch_level: anything besides the identities and the consent is batch-level.
        sdk_fields: ``mpid``, ``device_info``, ``application_info`` or
            ``batch_context`` may be written (the fields mParticle's SDKs send).
        check: the event's data must be checked against mParticle's model (mapped
            fields, or a type the library does not build itself).
    """

    __slots__ = (
        "application_info",
        "batch",
        "batch_context",
        "batch_level",
        "check",
        "commerce",
        "custom_event_type",
        "device_info",
        "event_data",
        "event_type",
        "identities",
        "ip",
        "mpid",
        "name",
        "plain_identities",
        "prefix",
        "sdk_fields",
        "source_request_id",
        "user_attributes",
    )

    def __init__(
        self,
        *,
        event_type: str,
        custom_event_type: str,
        name: str | None,
        commerce: ValueFn | None,
        event_data: ValueFn | None,
        identities: _Identities,
        ip: ValueFn | None,
        source_request_id: ValueFn | None,
        user_attributes: _Fns,
        mpid: _Fns,
        device_info: _Fns,
        application_info: _Fns,
        data_plan: Mapping[str, Any] | None,
        batch: BatchOptions | None,
    ) -> None:
        self.event_type = event_type
        self.prefix = b'{"event_type":' + dumps_bytes(event_type) + b',"data":'
        self.custom_event_type = custom_event_type
        self.name = name or None
        self.commerce = commerce
        self.event_data = event_data
        self.identities = tuple((t, fn) for t, (fn, _) in identities.items())
        plain = tuple((t, p) for t, (_, p) in identities.items() if p is not None)
        self.plain_identities = plain if len(plain) == len(self.identities) else None
        self.ip = ip
        self.source_request_id = source_request_id
        self.user_attributes = user_attributes
        self.mpid = mpid
        self.device_info = device_info
        self.application_info = application_info
        self.batch_context = _batch_context(data_plan)
        self.batch = batch
        self.sdk_fields = bool(mpid or device_info or application_info or self.batch_context)
        self.batch_level = bool(ip or source_request_id or user_attributes or self.sdk_fields)
        # The walkerOS types' own fields are built by the builder; mapped ones are checked.
        self.check = event_data is not None or event_type not in ("custom_event", "screen_view")


def _batch_context(data_plan: Mapping[str, Any] | None) -> str | None:
    """``{"planId", "planVersion"}`` → the ``batch_context`` JSON text."""
    if not data_plan:
        return None
    plan = {"plan_id": data_plan["planId"]}
    if data_plan.get("planVersion") is not None:
        plan["plan_version"] = data_plan["planVersion"]
    return dumps_bytes({"data_plan": plan}).decode()


def _value(spec: Any, path: str) -> ValueFn | None:
    return None if spec is None else compile_value_mapping(spec, path=path)


def _identities(spec: Mapping[str, Any], path: str) -> _Identities:
    return {
        identity_type: (
            compile_value_mapping(value, path=f"{path}.{identity_type}"),
            plain_value(value),
        )
        for identity_type, value in spec.items()
    }


def _fns(*fns: ValueFn | None) -> _Fns:
    return tuple(fn for fn in fns if fn is not None)


class _Base:
    """The destination settings' compiled value mappings, shared by every plan."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.identities = _identities(settings.user_identities, "settings.userIdentities")
        self.ip = _value(settings.ip, "settings.ip")
        self.source_request_id = _value(settings.source_request_id, "settings.sourceRequestId")
        self.user_attributes = _value(settings.user_attributes, "settings.userAttributes")
        self.mpid = _value(settings.mpid, "settings.mpid")
        self.device_info = _value(settings.device_info, "settings.deviceInfo")
        self.application_info = _value(settings.application_info, "settings.applicationInfo")

    def default(self) -> Plan:
        """The plan of events no rule matches."""
        return self._plan(None, RuleSettings(), "")

    def for_rule(self, rule: Rule, path: str) -> Plan:
        return self._plan(rule, rule.settings, f"{path}.settings")

    def _plan(self, rule: Rule | None, own: RuleSettings, path: str) -> Plan:
        identities = dict(self.identities)
        if own.user_identities:
            identities.update(_identities(own.user_identities, f"{path}.userIdentities"))
        event_type = own.event_type
        commerce = _value(own.commerce, f"{path}.commerce")
        return Plan(
            event_type=event_type,
            custom_event_type=own.custom_event_type,
            name=None if rule is None else rule.name,
            commerce=commerce if event_type == "commerce_event" else None,
            event_data=_value(own.event_data, f"{path}.eventData"),
            identities=identities,
            ip=self.ip,
            source_request_id=self.source_request_id,
            user_attributes=_fns(
                self.user_attributes, _value(own.user_attributes, f"{path}.userAttributes")
            ),
            mpid=_fns(_value(own.mpid, f"{path}.mpid"), self.mpid),
            device_info=_fns(self.device_info, _value(own.device_info, f"{path}.deviceInfo")),
            application_info=_fns(
                self.application_info, _value(own.application_info, f"{path}.applicationInfo")
            ),
            data_plan=own.data_plan if own.data_plan is not None else self.settings.data_plan,
            batch=None if rule is None else rule.batch,
        )


def compile_plans(config: DestinationConfig) -> tuple[Plan, dict[int, Plan], list[Rule]]:
    """The default plan, the plan of each rule by ``id(rule)``, and the rules themselves
    (keep them alive with the plans, so that their ``id()`` stays unique)."""
    base = _Base(config.settings)
    rules: list[Rule] = []
    plans: dict[int, Plan] = {}
    for path, rule in _iter_rules(config.mapping):
        rules.append(rule)
        plans[id(rule)] = base.for_rule(rule, path)
    return base.default(), plans, rules


def _iter_rules(
    mapping: Mapping[str, Mapping[str, Rule | tuple[Rule, ...]]],
) -> Iterator[tuple[str, Rule]]:
    """Yield ``(path, rule)`` for every rule of ``config.mapping`` (lists expanded)."""
    for entity, actions in mapping.items():
        for action, rules in actions.items():
            path = f"mapping.{entity}.{action}"
            if isinstance(rules, tuple):
                for i, rule in enumerate(rules):
                    yield f"{path}.{i}", rule
            else:
                yield path, rules
