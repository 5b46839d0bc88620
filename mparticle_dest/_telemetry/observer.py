"""``AttemptTelemetry``: the attempt observer that records metrics and spans."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry.trace import Span

from .._batching import SealedBatch
from .._delivery import AttemptWatch, parse_retry_after
from .metrics import Attributes, MetricSet, Reporter
from .traces import AttemptSpans, error_type

__all__ = ["AttemptTelemetry"]

_LOG: Final = logging.getLogger("mparticle_dest.telemetry")
_USAGE_HEADER: Final = "x-mp-rate-limit-percentage-used"
_RETRY_AFTER_HEADER: Final = "retry-after"


class AttemptTelemetry:
    """Records each HTTP attempt of one destination: per-attempt metrics and a span.

    Args:
        metrics: The meter's instruments (``None``: metrics off).
        reporter: The destination's reporter (holds the last quota use).
        spans: The span maker (``None``: traces off).
        attributes: What every per-attempt metric carries (destination and server).
    """

    __slots__ = ("_attributes", "_metrics", "_reporter", "_spans")

    def __init__(
        self,
        metrics: MetricSet | None,
        reporter: Reporter | None,
        spans: AttemptSpans | None,
        attributes: Attributes,
    ) -> None:
        self._metrics = metrics
        self._reporter = reporter
        self._spans = spans
        self._attributes = attributes

    def start(
        self, batches: Sequence[SealedBatch], body_size: int, resend_count: int
    ) -> AttemptWatch:
        span = None
        try:
            if self._metrics is not None and self._reporter is not None:
                record = self._metrics.batch_events.record
                own = self._reporter.attributes
                for batch in batches:
                    if batch.attempts == 1:  # its first attempt: each batch counted once
                        record(batch.event_count, own)
            if self._spans is not None:
                events = sum(b.event_count for b in batches)
                span = self._spans.start(len(batches), events, body_size, resend_count)
        except Exception:  # telemetry must never break a delivery
            _LOG.exception("mparticle_dest: recording an HTTP attempt failed")
        return _Watch(self, span)

    def finish(
        self,
        span: Span | None,
        seconds: float,
        status: int | None,
        headers: Mapping[str, str] | None,
        error: BaseException | None,
    ) -> None:
        """Record one ended attempt (called by its watch)."""
        try:
            extra: dict[str, str | int] = {}
            if status is not None:
                extra["http.response.status_code"] = status
                if status >= 400:
                    extra["error.type"] = str(status)
            elif error is not None:
                extra["error.type"] = error_type(error)
            metrics = self._metrics
            if metrics is not None:
                attributes = {**self._attributes, **extra}
                metrics.duration.record(seconds, attributes)
                if status is not None:
                    kind = {**self._attributes, "mparticle.status_class": f"{status // 100}xx"}
                else:
                    kind = {**self._attributes, "error.type": extra["error.type"]}
                metrics.completed.add(1, kind)
                if headers is not None:
                    self._read_headers(metrics, status, headers)
            if span is not None:
                AttemptSpans.end(span, status, error, extra)
        except Exception:
            _LOG.exception("mparticle_dest: recording an HTTP attempt failed")

    def _read_headers(
        self, metrics: MetricSet, status: int | None, headers: Mapping[str, str]
    ) -> None:
        wait = parse_retry_after(headers.get(_RETRY_AFTER_HEADER))
        if wait is not None:
            metrics.retry_after.record(
                wait, {**self._attributes, "http.response.status_code": status or 0}
            )
        usage = _parse_usage(headers.get(_USAGE_HEADER))
        if usage is not None and self._reporter is not None:
            self._reporter.quota_usage = usage


class _Watch:
    __slots__ = ("_owner", "_span", "_started")

    def __init__(self, owner: AttemptTelemetry, span: Span | None) -> None:
        self._owner = owner
        self._span = span
        self._started = time.perf_counter()

    def end(
        self,
        status: int | None,
        headers: Mapping[str, str] | None = None,
        error: BaseException | None = None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        self._owner.finish(self._span, seconds, status, headers, error)


def _parse_usage(value: str | None) -> float | None:
    """``X-mp-rate-limit-percentage-used``: a percentage, possibly with ``%``."""
    if value is None:
        return None
    try:
        usage = float(value.strip().rstrip("%"))
    except ValueError:
        return None
    return usage if math.isfinite(usage) else None
