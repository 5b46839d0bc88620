"""One measurement in a fresh process: ``python -m benchmarks.child '<json spec>'``.

The spec names the measurement (``throughput``, ``memory``, ``stages`` or one of
:data:`REGIME_KINDS`), the mode,
the scenario parameters and the server URL. The result is printed as JSON on the
last stdout line. A fresh process per measurement keeps peak RSS, allocator state
and imports of one mode from leaking into another's figures.
"""

from __future__ import annotations

import importlib
import json
import sys
from functools import partial
from typing import Any

import anyio

from .modes import buffered_memory, throughput
from .scenario import ScenarioParams

#: Measurements of the regime benchmarks: kind -> (module, async function of the spec).
REGIME_KINDS = {
    "quota": ("quota", "client"),
    "users-cpu": ("users", "cpu"),
    "users-memory": ("users", "memory"),
    "request-library": ("request", "library"),
    "request-bare": ("request", "bare"),
}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Execute the measurement described by ``spec`` and return its result."""
    kind = spec["kind"]
    if kind == "enter":  # builds the destination before its event loop runs, if asked
        from .start import enter

        return enter(spec)
    if kind == "loop":  # likewise
        from .loop import run_client

        return run_client(spec)
    if kind in REGIME_KINDS:
        module, name = REGIME_KINDS[kind]
        fn = getattr(importlib.import_module(f"benchmarks.{module}"), name)
        result: dict[str, Any] = anyio.run(fn, spec)
        return result
    params = ScenarioParams(**spec["params"])
    if kind == "throughput":
        return anyio.run(throughput, spec["mode"], params, spec["url"])
    if kind == "memory":
        return anyio.run(buffered_memory, spec["mode"], params)
    if kind == "stages":
        from .stages import stage_breakdown

        return anyio.run(partial(stage_breakdown, params, spec["url"], profile_top=spec["top"]))
    raise ValueError(f"unknown measurement {kind!r}")


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
