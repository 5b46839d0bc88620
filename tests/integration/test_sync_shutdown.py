"""Shutdown of real processes using ``SyncDestination``: SIGTERM and interpreter exit.

SIGTERM (what ``docker stop`` sends) goes to a real threaded WSGI app.

The app runs in its own process and pushes one event per HTTP request to the fake
mParticle of this (the test's) process. Its batches wait 60 s before they are due,
so at the SIGTERM every accepted event is still buffered: only a drain delivers them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mparticle_dest import SyncDestination
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

REPO = Path(__file__).resolve().parents[2]
EVENTS = 120

APP = textwrap.dedent(
    """
    import json
    import logging
    import signal
    import sys
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from mparticle_dest import SyncDestination

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    url, key, secret, mode = sys.argv[1:5]
    if mode == "chained":  # the app's own graceful shutdown, installed first

        def graceful(signum, frame):
            print("app handler ran", file=sys.stderr, flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, graceful)
    options = {"default": {}}.get(mode, {"handle_sigterm": True})
    analytics = SyncDestination(
        {
            "settings": {
                "apiKey": key,
                "apiSecret": secret,
                "userIdentities": {"customer_id": "user.id"},
            },
            "batch": {"age": 60_000, "wait": 60_000},
        },
        base_url=url,
        **options,
    )


    def app(environ, start_response):
        n = environ["PATH_INFO"].rsplit("/", 1)[-1]
        analytics.push({"name": "page view", "id": f"sig-{n}", "user": {"id": f"u{n[-1]}"}})
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"buffered": analytics.stats.buffered}).encode()]


    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass


    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True


    with make_server("127.0.0.1", 0, app, server_class=Server, handler_class=Quiet) as httpd:
        print(httpd.server_port, flush=True)
        httpd.serve_forever()
    """
)


@pytest.fixture
def server() -> Iterator[FakeMparticle]:
    with FakeMparticle() as fake:
        yield fake


def run_app_until_sigterm(server: FakeMparticle, tmp_path: Path, mode: str) -> tuple[int, str]:
    script = tmp_path / "app.py"
    script.write_text(APP, encoding="utf-8")
    proc = subprocess.Popen(  # noqa: S603 - this interpreter, our own script
        [
            sys.executable,
            str(script),
            server.url,
            server.settings["apiKey"],
            server.settings["apiSecret"],
            mode,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            last = {}
            for i in range(EVENTS):
                last = client.get(f"/track/{i:04d}").json()
        assert last["buffered"] == EVENTS  # all accepted, none due yet
        assert server.event_count == 0
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, err


def test_with_handle_sigterm_every_accepted_event_arrives(
    server: FakeMparticle, tmp_path: Path
) -> None:
    returncode, err = run_app_until_sigterm(server, tmp_path, "drain")

    assert returncode == -signal.SIGTERM, err  # still ends as SIGTERM ends it
    assert sorted(e.source_message_id or "" for e in server.events) == [
        f"sig-{i:04d}" for i in range(EVENTS)
    ]
    assert "abandoned" not in err


def test_without_it_the_abandoned_events_are_logged(server: FakeMparticle, tmp_path: Path) -> None:
    returncode, err = run_app_until_sigterm(server, tmp_path, "default")

    assert returncode == -signal.SIGTERM
    assert server.event_count == 0
    assert f"SIGTERM ends the process: {EVENTS} accepted events not yet delivered" in err
    assert "handle_sigterm=True" in err


def test_handle_sigterm_drains_then_runs_the_apps_own_handler(
    server: FakeMparticle, tmp_path: Path
) -> None:
    returncode, err = run_app_until_sigterm(server, tmp_path, "chained")

    assert returncode == 3, err  # the app's handler decided how the process ends
    assert "app handler ran" in err
    assert server.event_count == EVENTS


def test_events_abandoned_at_interpreter_exit_are_counted_in_a_warning(
    server: FakeMparticle,
) -> None:
    server.set_faults(FaultPlan.always(Fault.stall()))  # nothing can be delivered
    script = textwrap.dedent(
        f"""
        import logging
        from mparticle_dest import SyncDestination

        logging.basicConfig(level=logging.WARNING)
        dest = SyncDestination(
            {{"settings": {{"apiKey": {server.settings["apiKey"]!r},
                           "apiSecret": {server.settings["apiSecret"]!r},
                           "userIdentities": {{"customer_id": "user.id"}}}}}},
            base_url={server.url!r},
            close_timeout=0.5,
        )
        for i in range(30):
            dest.push({{"name": "item view", "user": {{"id": "u1"}}}})
        """
    )
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, our own script
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            check=False,
        )
    finally:
        server.release_stalled()

    assert done.returncode == 0, done.stderr
    assert "30 events abandoned at interpreter exit" in done.stderr


def test_handlers_need_the_main_thread_and_leave_an_apps_own_handler_alone(
    server: FakeMparticle,
) -> None:
    config = {"settings": {**server.settings, "userIdentities": {"customer_id": "user.id"}}}
    errors: list[BaseException] = []

    def in_a_thread() -> None:
        try:
            SyncDestination(config, base_url=server.url, handle_sigterm=True)
        except ValueError as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert "main thread" in str(errors[0])

    def apps_own(signum: int, frame: object) -> None:  # pragma: no cover - never signalled
        pass

    previous = signal.signal(signal.SIGTERM, apps_own)
    try:
        with SyncDestination(config, base_url=server.url):  # default: warn only over SIG_DFL
            assert signal.getsignal(signal.SIGTERM) is apps_own
        with SyncDestination(config, base_url=server.url, handle_sigterm=True):
            assert signal.getsignal(signal.SIGTERM) is not apps_own  # chains to it
        assert signal.getsignal(signal.SIGTERM) is apps_own  # put back at close()
    finally:
        signal.signal(signal.SIGTERM, previous)
