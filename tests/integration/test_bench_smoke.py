"""The benchmark suite runs end to end and its report adds up (speed is never asserted).

``python -m benchmarks --smoke`` is what CI runs; these tests check that every mode
delivers every event, that the client's counts agree with the fake server's, and
that the hand-written baseline sends exactly the bytes the library sends, so the
benchmark compares equal work.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.baseline_minimal import MinimalClient
from benchmarks.runner import SMOKE, SMOKE_MEMORY_EVENTS, SMOKE_STAGE_EVENTS
from benchmarks.scenario import API_KEY, API_SECRET, generate_events, scenario_config
from benchmarks.stages import STAGES
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """Run ``python -m benchmarks --smoke --json PATH`` once; return (stdout, report)."""
    path = tmp_path_factory.mktemp("bench") / "report.json"
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads(path.read_text(encoding="utf-8"))


def test_every_mode_delivers_every_event_and_counts_agree_with_the_server(
    smoke_run: tuple[str, dict[str, Any]],
) -> None:
    _, report = smoke_run
    assert report["smoke"] is True
    assert set(report["throughput"]) == {"batched", "per-event", "baseline"}
    for mode, r in report["throughput"].items():
        server = r["server"]
        assert r["events"] == SMOKE.events, mode
        assert r["delivered"] == SMOKE.events, mode
        assert server["events"] == SMOKE.events, mode
        assert server["requests"] == r["requests"] > 0, mode
        assert server["bytes"] == r["body_bytes"], mode
        assert r["bytes_per_event"] == pytest.approx(r["body_bytes"] / r["events"])
        assert r["requests_per_event"] == pytest.approx(r["requests"] / r["events"])
        assert r["cpu_s"] > 0 and r["wall_s"] > 0 and r["events_per_s"] > 0
        assert r["cpu_us_per_event"] == pytest.approx(r["cpu_s"] / r["events"] * 1e6)
        push = r["push_us"]
        assert 0 < push["p50"] <= push["p99"] <= push["max"], mode
        assert r["peak_rss"] > 0


def test_per_event_mode_sends_one_request_per_event_and_batching_packs_many(
    smoke_run: tuple[str, dict[str, Any]],
) -> None:
    _, report = smoke_run
    t = report["throughput"]
    # walkerOS's strategy: batches of one event, one request each.
    assert t["per-event"]["server"]["batches"] == SMOKE.events
    assert t["per-event"]["requests"] == t["per-event"]["server"]["requests"] == SMOKE.events
    # 1,000 events of 50 users in batches of ≤ 100: at least 50 batches, few requests.
    assert t["batched"]["server"]["batches"] >= SMOKE.users
    assert t["batched"]["requests"] < SMOKE.events / 10
    ratios = report["ratios"]
    assert ratios["batched_vs_per-event"]["requests"] == pytest.approx(
        t["per-event"]["requests"] / t["batched"]["requests"]
    )


def test_memory_and_stage_passes_are_complete(smoke_run: tuple[str, dict[str, Any]]) -> None:
    stdout, report = smoke_run
    for mode in ("batched", "baseline"):
        mem = report["memory"][mode]
        assert mem["events"] == SMOKE_MEMORY_EVENTS
        # Everything held by the stalled server is delivered once it is released.
        assert mem["delivered"] == SMOKE_MEMORY_EVENTS
        assert mem["bytes_per_buffered_event"] == pytest.approx(
            (mem["rss_after"] - mem["rss_before"]) / mem["events"]
        )
    stages = report["stages"]
    assert stages["events"] == SMOKE_STAGE_EVENTS
    assert list(stages["us_per_event"]) == list(STAGES)
    assert all(v >= 0 for v in stages["us_per_event"].values())
    assert stages["requests"] > 0
    assert stages["profile"] and all(row["calls"] > 0 for row in stages["profile"])
    for heading in ("events/s", "CPU µs/ev", "bytes/event", "CPU by stage", "Ratios"):
        assert heading in stdout
    machine = report["machine"]
    assert machine["nproc"] and machine["python"] and machine["mparticle_dest"]


@pytest.mark.anyio
async def test_baseline_sends_the_same_batches_as_the_library() -> None:
    """Equal work: for the same events, identical batch JSON from both clients."""
    events = generate_events(300, 12, seed=11)
    batch_size = 7  # several batches per user, one partial batch each at close
    received: dict[str, list[tuple[Any, int]]] = {}
    for client_name in ("library", "baseline"):
        with FakeMparticle(api_key=API_KEY, api_secret=API_SECRET) as server:
            if client_name == "library":
                config = scenario_config(batch_size, 3_600_000)
                async with Destination(config, base_url=server.url) as dest:
                    for event in events:
                        await dest.push(event)
            else:
                async with httpx.AsyncClient() as http:
                    client = MinimalClient(server.url, http, batch_size=batch_size)
                    for event in events:
                        await client.push(event)
                    await client.aclose()
            received[client_name] = sorted(
                ((dict(b.body), b.size) for b in server.batches),
                key=lambda item: item[0]["source_request_id"],
            )
    assert len(received["library"]) == sum(
        -(-n // batch_size) for n in _events_per_user(events).values()
    )
    assert received["baseline"] == received["library"]


def _events_per_user(events: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        counts[event["user"]["id"]] = counts.get(event["user"]["id"], 0) + 1
    return counts


# -- the regime benchmarks (python -m benchmarks quota|loop|users|request|request-layers|start)

REGIME_SMOKES: dict[str, tuple[str, ...]] = {
    "quota": ("quota", "--smoke", "--processes", "2"),
    "loop": ("loop", "--smoke"),
    "users": ("users", "--smoke"),
    "request": ("request", "--smoke"),
    "request-layers": ("request-layers", "--smoke"),
    "start": ("start", "--smoke"),
}


@pytest.fixture(scope="module")
def regime_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every regime benchmark's smoke run, all started at once; name -> (stdout, report)."""
    tmp = tmp_path_factory.mktemp("regimes")
    running = {}
    for name, args in REGIME_SMOKES.items():
        path = tmp / f"{name}.json"
        running[name] = (
            path,
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "benchmarks", *args, "--json", str(path)],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
    out = {}
    for name, (path, proc) in running.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name}: {stderr}"
        out[name] = (stdout, json.loads(path.read_text(encoding="utf-8")))
    return out


def test_quota_run_accounts_for_every_event_and_agrees_with_the_sink(
    regime_runs: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    stdout, r = regime_runs["quota"]
    clients = r["clients"]
    assert len(clients) == r["params"]["processes"] == 2
    assert 0 < r["pushed"] <= r["offered"]
    for c in clients:
        # Everything accepted ended delivered or failed (the close waited long enough).
        assert c["accepted"] == c["delivered_events"] + c["failed_events"] > 0
        assert sum(c["failed_by_reason"].values()) == c["failed_events"]
    # The clients' own counts agree with the metered sink's.
    assert (
        r["server_events"] == r["delivered_events"] == sum(c["delivered_events"] for c in clients)
    )
    assert r["server_batches"] == r["delivered_batches"]
    assert r["requests"] == sum(c["requests"] for c in clients)
    assert r["throttled"] == sum(c["throttled"] for c in clients)
    assert r["throttled_share"] == pytest.approx(r["throttled"] / r["requests"])
    assert r["events_per_batch"] == pytest.approx(r["delivered_events"] / r["delivered_batches"])
    assert r["window_events_per_batch"] > 0
    assert r["window_s"] > 0 and 0 < r["window_quota_used"]
    assert r["window_quota_used"] == pytest.approx(
        r["window_batches"] / r["window_s"] / r["params"]["limit"]
    )
    # The backlog is the part of the window in which every client was held back.
    assert 0 <= r["backlog_s"] <= r["window_s"] + 1e-9
    assert 0 <= r["backlog_batches"] <= r["window_batches"] + 1e-9
    if r["backlog_s"] > 0:
        assert r["quota_used"] == pytest.approx(
            r["backlog_batches"] / r["backlog_s"] / r["params"]["limit"]
        )
    assert len(r["per_process_window_batches"]) == len(clients)
    assert "quota used while backlogged" in stdout and "max/min" in stdout


def test_loop_run_measures_both_loops_through_the_close(
    regime_runs: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    stdout, r = regime_runs["loop"]
    assert set(r["modes"]) == {"plain", "library"}
    for mode, m in r["modes"].items():
        assert m["pushed"] > 0, mode
        assert m["overall"]["ticks"] >= m["pushing"]["ticks"] > 0, mode
        assert m["overall"]["worst_ms"] >= m["overall"]["p99_ms"] >= 0, mode
    lib = r["modes"]["library"]
    assert lib["delivered_events"] == lib["pushed"] == r["sink"]["events"]
    assert lib["failed_events"] == 0
    assert lib["closing"]["ticks"] > 0 and lib["enter"]["ticks"] > 0
    assert "entering stalled the loop" in stdout
    assert r["params"]["built"] == "outside"  # as the delivery docs advise


def test_users_sweep_delivers_everything_at_every_user_count(
    regime_runs: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    _, r = regime_runs["users"]
    events = r["params"]["events"]
    assert (
        [c["users"] for c in r["cpu"]] == [m["users"] for m in r["memory"]] == r["params"]["users"]
    )
    for c in r["cpu"]:
        assert c["delivered_events"] == events and c["failed_events"] == 0
        assert c["cpu_us_per_event"] > 0
        # The collector's CPU is part of the run's CPU (events made apart are not).
        assert 0 <= c["gc_s"] <= c["cpu_s"] + c["generation_s"]
    for m in r["memory"]:
        # Everything held by the stalled sink is delivered once it is released.
        assert m["delivered_events"] == events
        assert m["bytes_per_buffered_event"] == pytest.approx(
            (m["rss_after"] - m["rss_before"]) / events
        )
    # More users than events per batch: fewer events per batch.
    first, last = r["cpu"][0], r["cpu"][-1]
    assert first["delivered_batches"] < last["delivered_batches"]


def test_request_run_sends_the_same_requests_both_ways(
    regime_runs: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    _, r = regime_runs["request"]
    n = r["params"]["requests"]
    [lib], [bare] = r["runs"]["library"], r["runs"]["bare"]
    assert lib["requests"] == bare["requests"] == lib["delivered_events"] == n
    # One batch of one event per request, both ways, all accepted by the sink.
    assert r["sink"]["requests"] == r["sink"]["batches"] == r["sink"]["events"] == 2 * n
    assert r["ratio"] == pytest.approx(r["library_net_us_per_request"] / r["bare_us_per_request"])


def test_request_layers_run_sends_every_layers_requests_to_the_sink(
    regime_runs: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    stdout, r = regime_runs["request-layers"]
    p = r["params"]
    layers = r["us_per_request"]
    assert list(layers) == list(r["median_us_per_request"])
    assert all(len(rounds) == p["rounds"] for rounds in layers.values())
    # Each layer: a warm-up of 4 requests per connection, then every round's requests.
    sent = len(layers) * (4 * p["concurrency"] + p["rounds"] * p["requests"])
    assert r["sink"]["requests"] == r["sink"]["by_status"]["202"] == sent
    assert all(layer in stdout for layer in layers)


def test_start_run_times_imports_and_entering(
    regime_runs: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    stdout, r = regime_runs["start"]
    assert all(len(v) == r["runs"] for v in r["import_s"].values())
    assert r["import_ratio"] == pytest.approx(
        r["import_median_s"]["mparticle_dest"] / r["import_median_s"]["httpx"]
    )
    # Built before the loop runs and inside it, each in its own processes.
    assert set(r["entering"]) == {"outside", "inside"}
    for built, runs in r["entering"].items():
        assert len(runs) == r["runs"]
        assert all(e["enter_stall_ms"] > 0 for e in runs)
        assert r["enter_stall_ms"][built]["max"] == max(e["enter_stall_ms"] for e in runs)
        assert f"built {built} the loop" in stdout
    assert "import mparticle_dest" in stdout
