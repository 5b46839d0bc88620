"""Renders a benchmark report (the dict of :func:`benchmarks.runner.run_benchmark`) as text."""

from __future__ import annotations

from typing import Any

#: Targets of the optimisation pass (issue 6); shown for orientation, never asserted.
TARGETS = {
    "cpu_us_per_event": 15.0,
    "events_per_s": 50_000.0,
    "batched_vs_per_event": 25.0,
    "push_p99_us": 50.0,
    "bytes_per_buffered_event": 1024.0,
}


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def row(cells: list[str]) -> str:
        # First column left-aligned (names), the rest right-aligned (figures).
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    line = row(headers)
    return [line, "-" * len(line), *(row(r) for r in rows)]


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable report: throughput, memory, stages, ratios, targets."""
    p, m = report["params"], report["machine"]
    lines = [
        "mparticle_dest benchmark"
        + ("  (SMOKE: figures not meaningful)" if report["smoke"] else ""),
        f"  {p['events']:,} `product view` events, {p['users']:,} users, seed {p['seed']}, "
        f"+{p['extra_data_fields']} data fields, batch size {p['batch_size']}, "
        f"age {p['batch_age']} ms",
        f"  {m['cpu_model']}, {m['nproc']} cores, {m['implementation']} {m['python']}, "
        f"mparticle_dest {m['mparticle_dest']}, load {m['loadavg_at_start'][0]:.2f} → "
        f"{m.get('loadavg_at_end', [0.0])[0]:.2f}",
        "  fake server in its own process"
        + (", validating every batch" if report["server_validates"] else ", schema checks off")
        + ("; measurements in one process" if report["in_process"] else "; one process per run"),
        "",
    ]
    rows = []
    for mode, r in report["throughput"].items():
        server = r.get("server") or {}
        rows.append(
            [
                mode,
                f"{r['events_per_s']:,.0f}",
                f"{r['cpu_us_per_event']:.1f}",
                f"{r['requests']:,}",
                f"{r['bytes_per_event']:.0f}",
                f"{r['push_us']['p50']:.1f}/{r['push_us']['p99']:.1f}/{r['push_us']['max']:,.0f}",
                _mib(r["peak_rss"]),
                f"{r['delivered']:,}",
                f"{server.get('events', '-'):,}" if server else "-",
            ]
        )
    lines += _table(
        [
            "mode",
            "events/s",
            "CPU µs/ev",
            "requests",
            "bytes/ev",
            "push µs p50/p99/max",
            "peak RSS MiB",
            "delivered",
            "server saw",
        ],
        rows,
    )
    if report["memory"]:
        lines += ["", "Resident memory per buffered event (server stalled):"]
        lines += _table(
            ["mode", "events", "RSS growth MiB", "bytes/event"],
            [
                [
                    mode,
                    f"{r['events']:,}",
                    _mib(r["rss_after"] - r["rss_before"]),
                    f"{r['bytes_per_buffered_event']:,.0f}",
                ]
                for mode, r in report["memory"].items()
            ],
        )
    stages = report.get("stages")
    if stages:
        lines += ["", f"CPU by stage (library, {stages['events']:,} events, one stage at a time):"]
        total = sum(stages["us_per_event"].values())
        lines += _table(
            ["stage", "µs/event", "share"],
            [
                [name, f"{us:.2f}", f"{us / total:.0%}" if total else "-"]
                for name, us in stages["us_per_event"].items()
            ]
            + [["total", f"{total:.2f}", ""]],
        )
        if stages.get("profile"):
            lines += ["", "cProfile of the batched delivery run (top by own time):"]
            lines += _table(
                ["function", "calls", "own s", "cum s"],
                [
                    [f["function"], f"{f['calls']:,}", f"{f['tottime']:.3f}", f"{f['cumtime']:.3f}"]
                    for f in stages["profile"]
                ],
            )
    if report.get("ratios"):
        lines += ["", "Ratios (batched library vs ...):"]
        lines += _table(
            ["vs", "events/s ×", "CPU/event saved ×", "requests saved ×"],
            [
                [
                    name.removeprefix("batched_vs_"),
                    _x(r["events_per_s"]),
                    _x(r["cpu_per_event"]),
                    _x(r["requests"]),
                ]
                for name, r in report["ratios"].items()
            ],
        )
    lines += ["", *format_targets(report)]
    return "\n".join(lines)


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def format_targets(report: dict[str, Any]) -> list[str]:
    """Issue-6 targets against the batched figures (informational)."""
    b = report["throughput"].get("batched")
    if b is None:
        return []
    checks = [
        ("client CPU µs/event ≤ 15", b["cpu_us_per_event"] <= TARGETS["cpu_us_per_event"]),
        ("events/s ≥ 50,000", b["events_per_s"] >= TARGETS["events_per_s"]),
        ("push p99 ≤ 50 µs", b["push_us"]["p99"] <= TARGETS["push_p99_us"]),
        ("requests ≤ events/100", b["requests"] <= b["events"] / 100),
    ]
    vs = report.get("ratios", {}).get("batched_vs_per-event")
    if vs and vs["events_per_s"] is not None:
        checks.append(("batched ≥ 25× per-event (events/s)", vs["events_per_s"] >= 25))
    mem = report["memory"].get("batched")
    if mem:
        checks.append(
            (
                "≤ 1 KB resident per buffered event",
                mem["bytes_per_buffered_event"] <= TARGETS["bytes_per_buffered_event"],
            )
        )
    return ["Targets (issue 6, informational):"] + [
        f"  [{'x' if ok else ' '}] {name}" for name, ok in checks
    ]
