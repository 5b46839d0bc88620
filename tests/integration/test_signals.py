"""Ctrl-C and SIGTERM during the close, in real processes.

Each case starts a child process (a service using ``Destination`` on asyncio, uvloop
or trio, a threaded one using ``SyncDestination``, or ``mparticle-dest send``) against
a fake server that holds every request, waits until the child's close has a request
held (the drain is under way), then signals it. The child must exit within
``close_timeout`` plus a generous margin, with the expected status, after resolving
every receipt (failed, reason ``"closed"``) and passing them all to ``on_error``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

SUPPORT = Path(__file__).resolve().parents[1] / "support"
CLOSE_TIMEOUT = 1.0
# Python start-up and a busy machine, not the library, take most of this.
MARGIN = 25.0
EVENTS = 30  # what signal_child.py and sync_signal_child.py push
ALL_CLOSED = {"failed:closed": EVENTS}
SIGINT_EXIT = 128 + signal.SIGINT
SIGTERM_EXIT = 128 + signal.SIGTERM
needs_uvloop = pytest.mark.skipif(
    find_spec("uvloop") is None,
    reason="uvloop is not installed (the test extra has it on CPython, not Windows)",
)


@pytest.fixture
def server() -> Iterator[FakeMparticle]:
    with FakeMparticle(faults=FaultPlan.always(Fault.stall())) as fake:
        yield fake


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own scripts, fixed arguments
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_the_drain(server: FakeMparticle, child: subprocess.Popen[str]) -> None:
    """Until the child's close has a request held by the server."""
    deadline = time.monotonic() + MARGIN
    while server.held == 0:
        assert child.poll() is None, f"the child ended early: {child.communicate()}"
        assert time.monotonic() < deadline, "the child's close never sent a request"
        time.sleep(0.02)


def interrupt(
    server: FakeMparticle, child: subprocess.Popen[str], signum: int, times: int = 1
) -> tuple[int, str, str]:
    """Signal the draining child ``times`` times; return its status, stdout and stderr."""
    wait_for_the_drain(server, child)
    for n in range(times):
        if n:
            time.sleep(0.2)  # the next signal lands while the close is still draining
        child.send_signal(signum)
    try:
        out, err = child.communicate(timeout=CLOSE_TIMEOUT + MARGIN)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        pytest.fail(f"still running {CLOSE_TIMEOUT + MARGIN:g} s after the signal:\n{err}")
    return child.returncode, out, err


def summary_of(out: str) -> dict[str, Any]:
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def run_service(backend: str, *options: str) -> subprocess.Popen[str]:
    return spawn(str(SUPPORT / "signal_child.py"), backend, *options)


BACKENDS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param("uvloop", id="uvloop", marks=needs_uvloop),
    pytest.param("trio", id="trio"),
]
# How each backend's run ends: the child maps it to 128 + the signal number. On Ctrl-C,
# asyncio's runner cancels the main task, then turns the CancelledError into a
# KeyboardInterrupt; before Python 3.11 (no Task.uncancel) anyio's runner cannot.
ASYNCIO_CTRL_C = "KeyboardInterrupt" if sys.version_info >= (3, 11) else "CancelledError"
ENDED_BY = {
    ("asyncio", signal.SIGINT): ASYNCIO_CTRL_C,
    ("uvloop", signal.SIGINT): ASYNCIO_CTRL_C,
    ("trio", signal.SIGINT): "KeyboardInterrupt",
    ("asyncio", signal.SIGTERM): "CancelledError",  # the handler's task.cancel()
    ("uvloop", signal.SIGTERM): "CancelledError",
    ("trio", signal.SIGTERM): "SystemExit",  # the scope cancelled, then sys.exit(143)
}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_signal_during_the_close_ends_the_service_after_resolving_every_receipt(
    server: FakeMparticle, backend: str, signum: int
) -> None:
    child = run_service(backend, server.url, "--close-timeout", str(CLOSE_TIMEOUT))
    assert child.stdout is not None and child.stdout.readline() == "closing\n"

    status, out, err = interrupt(server, child, signum)

    summary = summary_of(out)
    assert status == 128 + signum, err
    assert summary["ended_by"] == ENDED_BY[backend, signum]
    assert summary["outcomes"] == ALL_CLOSED
    assert summary["on_error_events"] == EVENTS
    assert summary["undelivered"] == EVENTS and summary["closed"]


@pytest.mark.parametrize(
    ("backend", "signum"),
    [
        pytest.param("asyncio", signal.SIGTERM, id="asyncio-SIGTERM"),
        # A second Ctrl-C makes asyncio.run stop the loop at once, tearing down the close.
        pytest.param("asyncio", signal.SIGINT, id="asyncio-SIGINT"),
        pytest.param("trio", signal.SIGINT, id="trio-SIGINT"),
    ],
)
def test_a_second_signal_during_the_close_does_not_hang_it_or_lose_receipts(
    server: FakeMparticle, backend: str, signum: int
) -> None:
    child = run_service(backend, server.url, "--close-timeout", str(CLOSE_TIMEOUT))
    assert child.stdout is not None and child.stdout.readline() == "closing\n"

    status, out, err = interrupt(server, child, signum, times=2)

    summary = summary_of(out)
    assert status == 128 + signum, err
    assert summary["outcomes"] == ALL_CLOSED
    assert summary["on_error_events"] == EVENTS


def test_sigterm_while_a_started_destination_closes_from_another_task(
    server: FakeMparticle,
) -> None:
    # start() in one task, aclose() in another: the shutdown-hook form.
    child = run_service(
        "asyncio", server.url, "--close-timeout", str(CLOSE_TIMEOUT), "--form", "start"
    )
    assert child.stdout is not None and child.stdout.readline() == "closing\n"

    status, out, err = interrupt(server, child, signal.SIGTERM)

    summary = summary_of(out)
    assert status == SIGTERM_EXIT, err
    assert summary["outcomes"] == ALL_CLOSED
    assert summary["on_error_events"] == EVENTS and summary["closed"]


@pytest.mark.parametrize(
    ("mode", "signum", "expected_status"),
    [
        # Python ends an uncaught KeyboardInterrupt by killing itself with SIGINT.
        pytest.param("close", signal.SIGINT, -signal.SIGINT, id="close-SIGINT"),
        pytest.param("close", signal.SIGTERM, SIGTERM_EXIT, id="close-SIGTERM"),
        # Already exiting with 0: an exception in an atexit hook does not change that.
        pytest.param("atexit", signal.SIGTERM, 0, id="atexit-SIGTERM"),
    ],
)
def test_a_signal_while_a_sync_destination_closes_waits_for_the_close(
    server: FakeMparticle, mode: str, signum: int, expected_status: int
) -> None:
    child = spawn(str(SUPPORT / "sync_signal_child.py"), server.url, mode, str(CLOSE_TIMEOUT))
    assert child.stdout is not None and child.stdout.readline() == "closing\n"

    status, out, err = interrupt(server, child, signum)

    summary = summary_of(out)
    assert status == expected_status, err
    assert summary["outcomes"] == ALL_CLOSED
    assert summary["on_error_events"] == EVENTS


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_cli_send_drains_prints_the_report_and_rejects_the_rest(
    server: FakeMparticle, tmp_path: Path, signum: int
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "settings": {**server.settings, "userIdentities": {"customer_id": "user.id"}},
                "batch": {"age": 60_000},
            }
        )
    )
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(
            json.dumps({"name": "page view", "user": {"id": f"user-{n % 3}"}}) + "\n"
            for n in range(EVENTS)
        )
    )
    child = spawn(
        "-m",
        "mparticle_dest",
        "send",
        str(events),
        "--config",
        str(config),
        "--base-url",
        server.url,
        "--close-timeout",
        str(CLOSE_TIMEOUT),
    )

    status, out, err = interrupt(server, child, signum)

    name = signal.Signals(signum).name
    assert status == 128 + signum, err
    assert f"{EVENTS} lines read" in out
    assert f"{EVENTS} rejected ({EVENTS} delivery)" in out
    assert f"{name} received after the last line was read" in out
    assert f"{name}: stopping" in err
    text = (tmp_path / "events.jsonl.rejects.jsonl").read_text()
    rejects = [json.loads(line) for line in text.splitlines()]
    assert sorted(r["line"] for r in rejects) == list(range(1, EVENTS + 1))
    assert all("close timeout" in r["error"] for r in rejects)
