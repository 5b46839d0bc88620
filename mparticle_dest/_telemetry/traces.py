"""One CLIENT span per HTTP attempt, in the OpenTelemetry HTTP client conventions.

Spans are roots: an attempt serves events pushed by many callers, so no caller's
trace owns it (and ``push`` starts no span at all). A retry is its own span with
``http.request.resend_count``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer, TracerProvider

from .._version import __version__
from .metrics import SCOPE, Attributes

__all__ = ["AttemptSpans", "error_type"]

_ROOT: Final = Context()  # an empty context: no parent


def error_type(error: BaseException) -> str:
    """``error.type`` of an exception: its fully qualified class name."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


class AttemptSpans:
    """Starts and ends the spans of one destination's HTTP attempts.

    Args:
        provider: The tracer provider.
        attributes: The request attributes every span carries (method, URL, server,
            and the destination's own).
    """

    __slots__ = ("_attributes", "_tracer")

    def __init__(self, provider: TracerProvider, attributes: Attributes) -> None:
        self._tracer: Tracer = provider.get_tracer(SCOPE, __version__)
        self._attributes = attributes

    def start(self, batches: int, events: int, body_size: int, resend_count: int) -> Span:
        attributes: dict[str, str | int] = {
            **self._attributes,
            "mparticle.batches": batches,
            "mparticle.events": events,
            "http.request.body.size": body_size,
        }
        if resend_count:
            attributes["http.request.resend_count"] = resend_count
        return self._tracer.start_span(
            "POST", context=_ROOT, kind=SpanKind.CLIENT, attributes=attributes
        )

    @staticmethod
    def end(
        span: Span,
        status: int | None,
        error: BaseException | None,
        extra: Mapping[str, str | int],
    ) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if "error.type" in extra:
            span.set_attribute("error.type", extra["error.type"])
            description = f"HTTP {status}" if error is None else str(error) or None
            span.set_status(Status(StatusCode.ERROR, description))
        span.end()
