"""An OpenTelemetry SDK for one test: in-memory metric reader and span exporter.

Providers are passed to the destination explicitly (``Telemetry(meter_provider=...)``):
the global ones can be set only once per process, so tests of the global providers
run in a subprocess.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mparticle_dest import Telemetry


class Otel:
    """An SDK meter and tracer provider with in-memory exporters."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def telemetry(self, **kwargs: Any) -> Telemetry:
        return Telemetry(
            meter_provider=self.meter_provider, tracer_provider=self.tracer_provider, **kwargs
        )

    def collect(self) -> MetricsData:
        data = self.reader.get_metrics_data()
        assert data is not None
        return data

    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


def points(data: MetricsData, name: str) -> list[Any]:
    """The data points of metric ``name`` (all scopes)."""
    return [
        point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def matching(data: MetricsData, name: str, attributes: Mapping[str, Any]) -> list[Any]:
    """The points of ``name`` whose attributes include ``attributes``."""
    return [
        p
        for p in points(data, name)
        if all(p.attributes.get(k) == v for k, v in attributes.items())
    ]


def total(data: MetricsData, name: str, attributes: Mapping[str, Any] | None = None) -> Any:
    """The sum of the values of the points of ``name`` matching ``attributes``
    (``None`` when there is no such point)."""
    found = matching(data, name, attributes or {})
    return sum(p.value for p in found) if found else None
