"""The destination metrics, in OpenTelemetry semantic-convention style.

The counters of ``dest.stats`` are *observable* instruments: their callbacks read the
destination's figures when the application's metric reader collects, so the values
equal ``dest.stats`` by construction and ``push`` pays nothing for them. Only what
exists per HTTP attempt (its duration, status class, ``Retry-After``, events per
batch) is recorded as it happens, by :class:`~.observer.AttemptTelemetry`.

A meter keeps one instrument per name, so every destination reporting to the same
meter provider shares one :class:`MetricSet`; each observation carries the
destination's own attributes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from .._version import __version__
from .figures import Figures

__all__ = ["SCOPE", "MetricSet", "Reporter", "metric_set"]

SCOPE: Final = "mparticle_dest"
"""The instrumentation scope (meter and tracer name)."""

_LOG: Final = logging.getLogger("mparticle_dest.telemetry")

Attributes = Mapping[str, str | int]
_Reading = Iterable[tuple[int | float, Attributes]]

# http.client.request.duration's advisory buckets (OTel HTTP semantic conventions).
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1,
    2.5,
    5,
    7.5,
    10,
)
_WAIT_BUCKETS: Final = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
_BATCH_EVENTS_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
_NONE: Final[Attributes] = {}


class Reporter:
    """One destination as its metrics report it: figures, attributes, last quota use."""

    __slots__ = ("__weakref__", "attributes", "figures", "quota_usage")

    def __init__(self, figures: Figures, attributes: Attributes) -> None:
        self.figures = figures
        self.attributes = attributes
        self.quota_usage: float | None = None  # last X-mp-rate-limit-percentage-used


def _outcomes(r: Reporter) -> _Reading:
    s = r.figures.stats()
    yield s.delivered_events, {"mparticle.outcome": "delivered"}
    for reason, n in sorted(r.figures.failed_by_reason().items()):
        yield n, {"mparticle.outcome": "failed", "mparticle.reason": reason}
    yield s.dropped, {"mparticle.outcome": "dropped"}
    yield s.refused, {"mparticle.outcome": "refused"}
    yield s.invalid, {"mparticle.outcome": "invalid"}
    for reason, n in sorted(s.skipped.items()):
        yield n, {"mparticle.outcome": "skipped", "mparticle.reason": reason}


def _batch_outcomes(r: Reporter) -> _Reading:
    s = r.figures.stats()
    yield s.delivered_batches, {"mparticle.outcome": "delivered"}
    yield s.failed_batches, {"mparticle.outcome": "failed"}


def _one(read: Callable[[Reporter], int | float | None]) -> Callable[[Reporter], _Reading]:
    def reading(r: Reporter) -> _Reading:
        value = read(r)
        return () if value is None else ((value, _NONE),)

    return reading


# (name, unit, description, reading) of the observable instruments.
_COUNTERS: Final = (
    (
        "mparticle.events.pushed",
        "{event}",
        "Events passed to push.",
        _one(lambda r: r.figures.stats().pushed),
    ),
    (
        "mparticle.events.mapped",
        "{event}",
        "Events mapped into mParticle events.",
        _one(lambda r: r.figures.stats().mapped),
    ),
    (
        "mparticle.events.accepted",
        "{event}",
        "Events taken into the buffer.",
        _one(lambda r: r.figures.stats().accepted),
    ),
    (
        "mparticle.events.outcomes",
        "{event}",
        "Events by final outcome (mparticle.outcome) and reason (mparticle.reason).",
        _outcomes,
    ),
    (
        "mparticle.events.duplicates_suspected",
        "{event}",
        "Events delivered after an attempt whose result was unknown.",
        _one(lambda r: r.figures.stats().duplicates_suspected),
    ),
    (
        "mparticle.events.undelivered_at_close",
        "{event}",
        "Events failed because the close timeout ran out.",
        _one(lambda r: r.figures.stats().undelivered_at_close),
    ),
    (
        "mparticle.batches.sealed",
        "{batch}",
        "Batches sealed.",
        _one(lambda r: r.figures.stats().batches),
    ),
    (
        "mparticle.batches.outcomes",
        "{batch}",
        "Batches by final outcome (mparticle.outcome).",
        _batch_outcomes,
    ),
    (
        "mparticle.requests.sent",
        "{request}",
        "HTTP attempts made, retries and split halves included.",
        _one(lambda r: r.figures.stats().requests),
    ),
    (
        "mparticle.requests.retried",
        "{request}",
        "HTTP attempts that repeated a failed attempt.",
        _one(lambda r: r.figures.stats().retries),
    ),
    (
        "mparticle.requests.throttled",
        "{request}",
        "429 responses.",
        _one(lambda r: r.figures.stats().throttled),
    ),
    (
        "mparticle.requests.body.size",
        "By",
        "Request body bytes of all HTTP attempts.",
        _one(lambda r: r.figures.stats().bytes_sent),
    ),
)
_UP_DOWN: Final = (
    (
        "mparticle.buffer.events",
        "{event}",
        "Events accepted and not yet final.",
        _one(lambda r: r.figures.stats().buffered),
    ),
    (
        "mparticle.buffer.size",
        "By",
        "Bytes of batch JSON held for the buffered events.",
        _one(lambda r: r.figures.buffered_bytes()),
    ),
    (
        "mparticle.requests.in_flight",
        "{request}",
        "Requests being sent now.",
        _one(lambda r: r.figures.stats().in_flight_requests),
    ),
)
_GAUGES: Final = (
    (
        "mparticle.buffer.oldest_age",
        "s",
        "Age of the oldest buffered event.",
        _one(lambda r: r.figures.oldest_buffered_age()),
    ),
    (
        "mparticle.pacing.rate",
        "{batch}/s",
        "The pacer's allowed rate (none while unpaced).",
        _one(lambda r: r.figures.stats().send_rate),
    ),
    (
        "mparticle.quota.limited",
        "1",
        "1 when mParticle's quota, not the network, held a request back in the last second.",
        _one(lambda r: int(r.figures.stats().quota_limited)),
    ),
    (
        "mparticle.quota.usage",
        "%",
        "Last X-mp-rate-limit-percentage-used mParticle reported.",
        _one(lambda r: r.quota_usage),
    ),
)


class MetricSet:
    """The instruments of one meter provider and the destinations reporting to it."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter(SCOPE, __version__)
        self._reporters: weakref.WeakSet[Reporter] = weakref.WeakSet()
        for name, unit, description, reading in _COUNTERS:
            meter.create_observable_counter(name, [self._callback(reading)], unit, description)
        for name, unit, description, reading in _UP_DOWN:
            meter.create_observable_up_down_counter(
                name, [self._callback(reading)], unit, description
            )
        for name, unit, description, reading in _GAUGES:
            meter.create_observable_gauge(name, [self._callback(reading)], unit, description)
        self.duration = meter.create_histogram(
            "http.client.request.duration",
            "s",
            "Duration of each HTTP attempt to mParticle.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.completed = meter.create_counter(
            "mparticle.requests.completed",
            "{request}",
            "HTTP attempts ended, by status class (mparticle.status_class) or error.type.",
        )
        self.retry_after = meter.create_histogram(
            "mparticle.requests.retry_after",
            "s",
            "Retry-After waits mParticle asked for (429, 503).",
            explicit_bucket_boundaries_advisory=_WAIT_BUCKETS,
        )
        self.batch_events = meter.create_histogram(
            "mparticle.batch.events",
            "{event}",
            "Events per batch, recorded when the batch is first sent.",
            explicit_bucket_boundaries_advisory=_BATCH_EVENTS_BUCKETS,
        )

    def add(self, reporter: Reporter) -> None:
        """Report ``reporter`` from now on, for as long as it lives."""
        self._reporters.add(reporter)

    def _callback(
        self, reading: Callable[[Reporter], _Reading]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            for reporter in list(self._reporters):
                try:
                    observed = [
                        Observation(value, {**reporter.attributes, **extra})
                        for value, extra in reading(reporter)
                    ]
                except Exception:  # a bug here must not break the application's exporter
                    _LOG.exception("mparticle_dest: reading a metric failed")
                    continue
                yield from observed

        return callback


_SETS: weakref.WeakKeyDictionary[MeterProvider, MetricSet] = weakref.WeakKeyDictionary()
_GLOBAL: list[MetricSet] = []  # the global provider's, once made
_SETS_LOCK: Final = threading.Lock()


def metric_set(provider: MeterProvider | None) -> MetricSet:
    """The instruments of ``provider`` (``None``: the global one), made on first use.

    An SDK meter keeps the first instrument of a name and hands it out again, callbacks
    and all: so the global provider gets one set for the process, whether it was set
    before or after (through the API's proxy) its first destination opened. Locked:
    destinations may open on several threads' event loops at once.
    """
    with _SETS_LOCK:
        if provider is None or provider is metrics.get_meter_provider():
            if not _GLOBAL:
                _GLOBAL.append(MetricSet(metrics.get_meter_provider()))
            return _GLOBAL[0]
        found = _SETS.get(provider)
        if found is None:
            found = _SETS[provider] = MetricSet(provider)
        return found
