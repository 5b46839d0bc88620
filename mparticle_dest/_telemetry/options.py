"""``Telemetry``: how a destination reports to OpenTelemetry (public, import-free)."""

from __future__ import annotations

from typing import Any

from attrs import field, frozen, validators

__all__ = ["Telemetry"]


@frozen(kw_only=True)
class Telemetry:
    """OpenTelemetry settings of a :class:`~mparticle_dest.Destination` (``telemetry=``).

    Needs the ``otel`` extra (``opentelemetry-api``); the application's SDK and
    exporters decide where the metrics and spans go. Without this object the
    destination uses the global providers whenever ``opentelemetry-api`` is
    installed (``telemetry=True``, the default), and ``telemetry=False`` turns both
    signals off.

    Attributes:
        name: Value of the ``mparticle.destination.name`` attribute on every metric
            and span; give each destination of a process its own (``None``: the
            attribute is left out).
        meter_provider: The ``MeterProvider`` to report metrics to (``None``: the
            global one, ``opentelemetry.metrics.get_meter_provider()``).
        tracer_provider: The ``TracerProvider`` for the request spans (``None``:
            the global one).
        metrics: Report metrics.
        traces: Record one span per HTTP attempt.
    """

    name: str | None = field(
        default=None, validator=validators.optional(validators.instance_of(str))
    )
    meter_provider: Any = None
    tracer_provider: Any = None
    metrics: bool = field(default=True, validator=validators.instance_of(bool))
    traces: bool = field(default=True, validator=validators.instance_of(bool))
