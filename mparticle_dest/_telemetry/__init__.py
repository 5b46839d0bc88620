"""OpenTelemetry metrics and traces of a destination (the ``otel`` extra).

Nothing here imports ``opentelemetry`` until :func:`start` finds telemetry enabled:
without the extra, or with ``telemetry=False``, the deliverer keeps the no-op
observer and the destination registers nothing. ``metrics`` holds the instruments,
``traces`` the request spans, ``observer`` the per-attempt hook, ``figures`` what
they read from the destination.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._delivery import NO_OBSERVER, AttemptObserver
from .figures import Figures, StatsView
from .options import Telemetry

if TYPE_CHECKING:
    from .metrics import Reporter

__all__ = ["Figures", "StatsView", "Telemetry", "check", "prepare", "start"]

_HINT = "telemetry needs opentelemetry-api: pip install 'mparticle-dest[otel]'"


def _installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.metrics") is not None
    except ImportError:  # no ``opentelemetry`` package at all
        return False


def check(setting: Telemetry | bool) -> None:
    """Fail at construction when telemetry is asked for explicitly but cannot run.

    Raises:
        ImportError: A :class:`Telemetry` was given and ``opentelemetry-api`` is missing.
        TypeError: ``setting`` is neither a bool nor a :class:`Telemetry`.
    """
    if isinstance(setting, Telemetry):
        if not _installed():
            raise ImportError(_HINT)
    elif not isinstance(setting, bool):
        raise TypeError(f"telemetry must be a bool or a Telemetry, got {type(setting).__name__}")


def prepare(setting: Telemetry | bool) -> None:
    """Import what :func:`start` needs (``opentelemetry``, the instruments' modules).

    :func:`start` runs on the caller's event loop, where an import of
    ``opentelemetry`` would hold the loop for about 10 ms: the destination calls this
    first where an import is free (when built outside an event loop, or in the worker
    thread that builds its HTTP client). Idempotent; nothing when telemetry is off.
    """
    if setting is False or (setting is True and not _installed()):
        return
    from . import observer  # noqa: F401  (metrics, traces and opentelemetry with it)


def start(
    setting: Telemetry | bool,
    figures: Figures,
    *,
    url: str,
    attributes: Mapping[str, str],
) -> tuple[AttemptObserver, Reporter | None]:
    """Register a destination's metrics and make the observer of its HTTP attempts.

    Args:
        setting: The destination's ``telemetry`` option (``True``: the global
            providers, if ``opentelemetry-api`` is installed).
        figures: What the metrics read.
        url: The request URL (no credentials in it: they travel in a header).
        attributes: The destination's attributes (pod, environment, name).

    Returns:
        The observer for the deliverer and the reporter the destination must keep
        alive (its metrics are reported as long as it lives); ``NO_OBSERVER, None``
        when telemetry is off.
    """
    if setting is False:
        return NO_OBSERVER, None
    if setting is True:
        if not _installed():
            return NO_OBSERVER, None
        setting = Telemetry()
    assert isinstance(setting, Telemetry)
    from opentelemetry import trace

    from .metrics import Reporter, metric_set
    from .observer import AttemptTelemetry
    from .traces import AttemptSpans

    own = dict(attributes)
    if setting.name is not None:
        own["mparticle.destination.name"] = setting.name
    parsed = urlsplit(url)
    server: dict[str, str | int] = {
        "server.address": parsed.hostname or "",
        "server.port": parsed.port or (443 if parsed.scheme == "https" else 80),
    }
    attempt_attributes = {**own, "http.request.method": "POST", **server}
    instruments = reporter = None
    if setting.metrics:
        instruments = metric_set(setting.meter_provider)
        reporter = Reporter(figures, own)
        instruments.add(reporter)
    spans = None
    if setting.traces:
        tracer_provider = setting.tracer_provider or trace.get_tracer_provider()
        # url.full without user info or query (the key travels in a header, not here).
        netloc = parsed.netloc.rpartition("@")[2]
        full = f"{parsed.scheme}://{netloc}{parsed.path}"
        spans = AttemptSpans(tracer_provider, {**attempt_attributes, "url.full": full})
    return AttemptTelemetry(instruments, reporter, spans, attempt_attributes), reporter
