"""Telemetry costs push nothing, records nothing without a provider, and needs no extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeter, NoOpMeterProvider
from opentelemetry.trace import NoOpTracer, NoOpTracerProvider
from support.engine import event, make_config

from mparticle_dest import Telemetry
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle

ROOT = Path(__file__).resolve().parents[2]


class _SpyInstrument:
    def __init__(self, name: str, calls: list[str]) -> None:
        self._name = name
        self._calls = calls

    def add(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._calls.append(self._name)

    record = add


class _SpyMeter(NoOpMeter):
    """Records every synchronous measurement and every callback registered."""

    def __init__(self, calls: list[str], callbacks: list[Callable[..., Any]]) -> None:
        super().__init__("spy")
        self.calls = calls
        self.callbacks = callbacks

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Any:
        return _SpyInstrument(name, self.calls)

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> Any:
        return _SpyInstrument(name, self.calls)

    def _observable(
        self, name: str, callbacks: Sequence[Callable[..., Any]] | None = None, *_: Any
    ) -> Any:
        self.callbacks.extend(callbacks or ())
        return _SpyInstrument(name, self.calls)

    create_observable_counter = _observable
    create_observable_gauge = _observable
    create_observable_up_down_counter = _observable


class _SpyMeterProvider(NoOpMeterProvider):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.callbacks: list[Callable[..., Any]] = []

    def get_meter(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return _SpyMeter(self.calls, self.callbacks)


class _SpyTracerProvider(NoOpTracerProvider):
    def __init__(self) -> None:
        self.spans = 0

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        provider = self

        class _Tracer(NoOpTracer):
            def start_span(self, *a: Any, **k: Any) -> Any:
                provider.spans += 1
                return super().start_span(*a, **k)

        return _Tracer()


@pytest.mark.anyio
async def test_push_touches_no_instrument_and_requests_a_fixed_few() -> None:
    meters, tracers = _SpyMeterProvider(), _SpyTracerProvider()
    async with FakeMparticle() as server:
        async with Destination(
            make_config(server, size=1000, age=60_000),
            base_url=server.url,
            telemetry=Telemetry(meter_provider=meters, tracer_provider=tracers),
        ) as dest:
            assert meters.callbacks  # the observable instruments are registered
            for n in range(300):
                await dest.push(event(f"u{n % 2}", n))
            assert meters.calls == [] and tracers.spans == 0  # push pays nothing
            await dest.flush()
    # One request of two batches: one record per batch, two per attempt, one span.
    assert dest.stats.requests == 1
    assert sorted(meters.calls) == [
        "http.client.request.duration",
        "mparticle.batch.events",
        "mparticle.batch.events",
        "mparticle.requests.completed",
    ]
    assert tracers.spans == 1


def _run(code: str, *, block_otel: bool = False) -> None:
    """Run ``code`` in a fresh interpreter (global providers can be set once per process)."""
    prelude = "import sys\nsys.modules['opentelemetry'] = None\n" if block_otel else ""
    script = prelude + textwrap.dedent(code)
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT / "tests"), "PATH": ""},
    )
    assert result.returncode == 0, result.stdout + result.stderr


_DELIVER = """
    import anyio
    from mparticle_dest import Destination
    from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan
    from support.engine import FAST_RETRY, event, make_config

    async def deliver(**options):
        plan = FaultPlan.script([Fault.server_error(500)])
        async with FakeMparticle(faults=plan) as server:
            config = make_config(server, size=2)
            async with Destination(
                config, base_url=server.url, retry=FAST_RETRY, **options
            ) as dest:
                for n in range(4):
                    await dest.push(event("u", n))
        assert dest.stats.delivered_events == 4 and dest.stats.retries == 1
        return dest
"""


def test_without_a_provider_no_span_or_measurement_is_recorded() -> None:
    _run(
        _DELIVER
        + """
    dest = anyio.run(deliver)  # telemetry on (the default), no provider set yet

    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)

    def collected():
        return {
            m.name: m.data.data_points
            for rm in reader.get_metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }

    found = collected()
    assert exporter.get_finished_spans() == ()
    assert "http.client.request.duration" not in found  # attempts before the SDK: unrecorded
    # The observable counters are read at collection: the SDK now sees the totals.
    assert [p.value for p in found["mparticle.events.pushed"]] == [4]

    off = anyio.run(lambda: deliver(telemetry=False))  # off: nothing, even with an SDK
    from mparticle_dest import Telemetry

    # On, to the global providers; a name tells the two destinations' series apart.
    dest2 = anyio.run(lambda: deliver(telemetry=Telemetry(name="second")))
    assert len(exporter.get_finished_spans()) == 3  # 500, its retry, the other batch
    found = collected()
    pushed = {
        p.attributes.get("mparticle.destination.name"): p.value
        for p in found["mparticle.events.pushed"]
    }
    assert pushed == {None: 4, "second": 4}
    assert sum(p.count for p in found["http.client.request.duration"]) == 3
    """
    )


def test_without_opentelemetry_installed_the_destination_works() -> None:
    _run(
        _DELIVER
        + """
    import pytest
    from mparticle_dest import Telemetry

    anyio.run(deliver)  # the default: silently off
    with pytest.raises(ImportError, match=r"mparticle-dest\\[otel\\]"):
        Destination({"settings": {"apiKey": "k", "apiSecret": "s"}}, telemetry=Telemetry())
    assert not any(name.startswith("opentelemetry.") for name in sys.modules)
    """,
        block_otel=True,
    )


def test_telemetry_must_be_a_bool_or_a_telemetry() -> None:
    with pytest.raises(TypeError, match="telemetry must be a bool or a Telemetry"):
        Destination({"settings": {"apiKey": "k", "apiSecret": "s"}}, telemetry="yes")  # type: ignore[arg-type]
