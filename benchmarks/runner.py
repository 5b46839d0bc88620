"""Orchestration: one server process per run, one child process per measurement.

:func:`run_benchmark` returns the whole report as a JSON-able dict;
:func:`benchmarks.report.format_report` renders it as text.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, replace
from typing import Any

from .modes import MODES
from .scenario import ScenarioParams
from .server_proc import ServerProcess, fake_server_cmd

#: Parameters of ``--smoke``: the whole pipeline in a few seconds (figures not meaningful).
SMOKE = ScenarioParams(events=1_000, users=50)
SMOKE_MEMORY_EVENTS = 2_000
SMOKE_STAGE_EVENTS = 1_000

_CHILD_TIMEOUT = 600.0


def machine_info() -> dict[str, Any]:
    """Where the figures come from: CPU, cores, Python, library version, load."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor()
    from mparticle_dest import __version__

    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "mparticle_dest": __version__,
        "loadavg_at_start": list(os.getloadavg()),
    }


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=_CHILD_TIMEOUT,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"benchmark child {spec['kind']}/{spec.get('mode')} failed "
            f"(exit {proc.returncode}):\n{proc.stderr.strip()}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _run_here(spec: dict[str, Any]) -> dict[str, Any]:
    from .child import run

    return run(spec)


def _counter_delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in ("requests", "batches", "events", "bytes")}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def ratios(throughput: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Batched against each other mode: speed-up in events/s, saving in CPU and requests."""
    out: dict[str, dict[str, float | None]] = {}
    batched = throughput.get("batched")
    if batched is None:
        return out
    for other in ("per-event", "baseline"):
        o = throughput.get(other)
        if o is None:
            continue
        out[f"batched_vs_{other}"] = {
            "events_per_s": _ratio(batched["events_per_s"], o["events_per_s"]),
            "cpu_per_event": _ratio(o["cpu_us_per_event"], batched["cpu_us_per_event"]),
            "requests": _ratio(o["requests"], batched["requests"]),
        }
    return out


def run_benchmark(
    params: ScenarioParams,
    *,
    modes: tuple[str, ...] = MODES,
    memory_events: int | None = None,
    stage_events: int | None = None,
    profile_top: int = 15,
    validate: bool = False,
    in_process: bool = False,
    smoke: bool = False,
) -> dict[str, Any]:
    """Run every measurement and return the report.

    Args:
        params: the scenario (events, users, shape, batch settings).
        modes: which throughput modes to run (see :data:`benchmarks.modes.MODES`).
        memory_events: events of the stalled-server memory pass; ``0`` skips it,
            ``None`` uses ``params.events``.
        stage_events: events of the per-stage CPU pass; ``0`` skips it,
            ``None`` uses ``params.events``.
        profile_top: functions listed from the cProfile of the delivery run.
        validate: let the fake server check every batch against its schema (costs
            server CPU, which can then limit events/s; the client's CPU is unchanged).
        in_process: run every measurement in this process instead of a fresh child
            each (faster to start; peak RSS and memory figures then mix the runs).
        smoke: mark the report as a smoke run (its figures are not meaningful).

    Returns:
        The JSON-able report: ``params``, ``machine``, ``throughput`` (per mode,
        with the fake server's own counters under ``server``), ``memory``,
        ``stages``, ``ratios``.
    """
    report: dict[str, Any] = {
        "smoke": smoke,
        "server_validates": validate,
        "in_process": in_process,
        "params": asdict(params),
        "machine": machine_info(),
        "throughput": {},
        "memory": {},
        "stages": None,
    }
    measure = _run_here if in_process else run_child
    p = asdict(params)
    # One fake server for the whole invocation; each run is charged the difference
    # of the server's counters around it.
    with ServerProcess(fake_server_cmd(validate=validate)) as server:
        for mode in modes:
            before = server.fetch_stats()
            result = measure({"kind": "throughput", "mode": mode, "params": p, "url": server.url})
            result["server"] = _counter_delta(server.fetch_stats(), before)
            report["throughput"][mode] = result
        if stage_events != 0:
            sp = asdict(replace(params, events=stage_events or params.events))
            report["stages"] = measure(
                {"kind": "stages", "params": sp, "url": server.url, "top": profile_top}
            )
    if memory_events != 0:
        mp = asdict(replace(params, events=memory_events or params.events))
        for mode in [m for m in modes if m != "per-event"]:
            report["memory"][mode] = measure({"kind": "memory", "mode": mode, "params": mp})
    report["ratios"] = ratios(report["throughput"])
    report["machine"]["loadavg_at_end"] = list(os.getloadavg())
    return report
