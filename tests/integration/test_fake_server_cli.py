"""``python -m mparticle_dest.testing serve``: the fake server in its own process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses SIGTERM")


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "mparticle_dest.testing", "serve", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out


def test_serve_prints_the_url_first_and_final_counters_on_sigterm():
    batch = {"events": [], "environment": "production", "user_identities": {"email": "a@b.c"}}
    with serve("--api-key", "k", "--api-secret", "s", "--counters-only") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, auth=("k", "s")) as c:
            assert c.post("/v2/bulkevents", json=[batch, batch]).status_code == 202
            assert c.post("/v2/events", json=batch, auth=("k", "x")).status_code == 403
            stats = c.get("/_fake/stats").json()
        assert stats["batches"] == 2
        assert stats["by_status"] == {"202": 1, "403": 1}
        final = json.loads(stop(proc))
    assert final == stats


def test_stall_mode_holds_requests_until_released_and_still_stops_promptly():
    with serve("--stall", "--no-validate") as proc:
        assert proc.stdout is not None and proc.stdin is not None
        url = proc.stdout.readline().strip()
        with httpx.Client(base_url=url, auth=("test-key", "test-secret")) as c:
            with pytest.raises(httpx.ReadTimeout):
                c.post("/v2/events", json={"environment": "production"}, timeout=0.3)
            proc.stdin.write("release\n")
            proc.stdin.flush()
            # The release line is read by another thread: wait until the held request was
            # let through, or the next request could still find the server stalling.
            deadline = time.monotonic() + 10
            while c.get("/_fake/stats").json()["batches"] < 1:
                assert time.monotonic() < deadline, "release was not applied"
                time.sleep(0.01)
            assert c.post("/v2/events", json={"environment": "production"}).status_code == 202
        final = json.loads(stop(proc))
    # The timed-out request was released (and accepted) too.
    assert final["batches"] == 2
    assert final["faults"] == {"stall": 1}


def test_stalled_requests_are_dropped_when_the_server_stops():
    with serve("--stall") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with httpx.Client(base_url=url, auth=("test-key", "test-secret")) as c:
            with pytest.raises(httpx.ReadTimeout):
                c.post("/v2/events", json={"environment": "production"}, timeout=0.3)
        final = json.loads(stop(proc))
    assert (final["batches"], final["faults"]) == (0, {"stall": 1})


def test_random_faults_from_the_command_line():
    with serve("--fault", "503=1") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with httpx.Client(base_url=url, auth=("test-key", "test-secret")) as c:
            assert c.post("/v2/events", json={"environment": "production"}).status_code == 503
        stop(proc)


def test_bad_fault_argument_is_a_usage_error():
    proc = subprocess.run(
        [sys.executable, "-m", "mparticle_dest.testing", "serve", "--fault", "404=0.5"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert proc.returncode == 2
    assert "fault must be one of" in proc.stderr


def test_rate_limit_meters_batches_with_the_given_burst():
    batch = {"events": [], "environment": "production", "user_identities": {"email": "a@b.c"}}
    # 50 batches/s with a bucket of 20: a second request of 20 batches right after the
    # first finds too few tokens (one second's worth, 50, would have admitted it).
    with serve("--no-validate", "--rate-limit", "50", "--rate-limit-burst", "20") as proc:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with httpx.Client(base_url=url, auth=("test-key", "test-secret")) as c:
            ok = c.post("/v2/bulkevents", json=[batch] * 20)
            limited = c.post("/v2/bulkevents", json=[batch] * 20)
            stats = c.get("/_fake/stats").json()
        stop(proc)
    assert ok.status_code == 202
    assert 90 <= int(ok.headers["X-mp-rate-limit-percentage-used"]) <= 100
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-mp-rate-limit-exceeded"] == "true"
    assert (stats["batches"], stats["by_status"]) == (20, {"202": 1, "429": 1})
    assert stats["faults"] == {"simulated_rate_limit": 1}
