"""The suite-wide OAS audit: the server hook it relies on, the collector, and the run failing.

``tests/conftest.py`` makes ``support.oas_audit`` observe every fake server of the
run; these tests prove each link: ``FakeMparticle.observing`` reports exactly the
accepted batches, the collector records violations (and honours ``validate=False``
and its per-server cap), and a violation turns a passing run into a failing one.
The collector's tests need the official file beside the checkout (skipped without
it); ``tests/integration/test_portable_clone.py`` covers the audit being inactive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.oas_audit import OASAudit
from support.references import OAS, requires

import mparticle_dest
from mparticle_dest.testing import FakeMparticle

TESTS = Path(__file__).resolve().parents[1]
#: The subprocess imports the package this run imported (not whatever its cwd finds).
PACKAGE_ROOT = Path(mparticle_dest.__file__).resolve().parents[1]
AUTH = ("test-key", "test-secret")


def _batch(user: str = "u1") -> dict[str, Any]:
    return {
        "events": [
            {
                "event_type": "custom_event",
                "data": {"event_name": "Page View", "custom_event_type": "navigation"},
            }
        ],
        "environment": "development",
        "user_identities": {"customer_id": user},
    }


#: Accepted by the fake server when it does not validate; the official file needs
#: ``environment``.
NOT_IN_THE_OAS: dict[str, Any] = {"events": []}


def test_observing_reports_each_accepted_batch_of_every_server_and_stops_after() -> None:
    seen: list[tuple[int, str, Any]] = []

    def observer(server: FakeMparticle, path: str, batch: Mapping[str, Any]) -> None:
        seen.append((server.port, path, batch["user_identities"]["customer_id"]))

    with FakeMparticle() as one, FakeMparticle() as two:
        with FakeMparticle.observing(observer):
            with httpx.Client(auth=AUTH) as client:
                client.post(f"{one.url}/v2/bulkevents", json=[_batch("a"), _batch("b")])
                client.post(f"{two.url}/v2/events", json=_batch("c"))
                # Refused requests are not reported: bad auth, schema violation.
                client.post(f"{one.url}/v2/events", json=_batch(), auth=("test-key", "no"))
                client.post(f"{one.url}/v2/events", json={"events": []})
        with httpx.Client(auth=AUTH) as client:
            client.post(f"{one.url}/v2/events", json=_batch("after"))

    assert seen == [
        (one.port, "/v2/bulkevents", "a"),
        (one.port, "/v2/bulkevents", "b"),
        (two.port, "/v2/events", "c"),
    ]


def test_a_failing_observer_is_logged_and_the_batch_still_accepted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(server: FakeMparticle, path: str, batch: Mapping[str, Any]) -> None:
        raise RuntimeError("observer bug")

    with FakeMparticle() as server, FakeMparticle.observing(broken):
        response = httpx.post(f"{server.url}/v2/events", json=_batch(), auth=AUTH)

    assert response.status_code == 202
    assert server.event_count == 1
    assert "batch observer" in caplog.text
    assert "observer bug" in caplog.text


@requires(OAS)
def test_the_audit_collects_violations_names_the_test_and_fails_on_check() -> None:
    audit = OASAudit(per_server=10)
    server = FakeMparticle()
    audit.current_test = "tests/x.py::test_y"

    audit(server, "/v2/events", _batch())
    audit.check()  # nothing wrong yet
    audit(server, "/v2/bulkevents", NOT_IN_THE_OAS)

    assert audit.checked == 2
    with pytest.raises(AssertionError) as info:
        audit.check()
    message = str(info.value)
    assert "1 batch(es)" in message
    assert "tests/x.py::test_y (/v2/bulkevents)" in message
    assert "environment" in message


@requires(OAS)
def test_the_audit_skips_non_validating_servers_and_caps_each_server() -> None:
    audit = OASAudit(per_server=2)
    lenient, strict = FakeMparticle(validate=False), FakeMparticle()

    audit(lenient, "/v2/events", NOT_IN_THE_OAS)
    for _ in range(3):
        audit(strict, "/v2/events", _batch())
    audit(strict, "/v2/events", NOT_IN_THE_OAS)  # past the cap: not checked

    assert audit.checked == 2
    audit.check()


@requires(OAS)
def test_a_violation_fails_a_run_whose_tests_all_pass(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from support.oas_audit import oas_audit\n"
        "from support.run_audit import run_audits_name_the_test\n"
    )
    (tmp_path / "test_violation.py").write_text(
        textwrap.dedent(
            """
            import httpx
            from mparticle_dest.testing import FakeMparticle

            def test_a_conforming_batch():
                with FakeMparticle() as server:
                    response = httpx.post(
                        server.url + "/v2/events",
                        json={"events": [], "environment": "production"},
                        auth=("test-key", "test-secret"),
                    )
                assert response.status_code == 202
            """
        )
    )
    done = _run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout  # a conforming batch: the run passes

    (tmp_path / "test_violation.py").write_text(
        textwrap.dedent(
            """
            from mparticle_dest.testing import FakeMparticle

            def test_passes_but_feeds_the_audit_a_bad_batch(oas_audit):
                # Stands in for a fake-schema regression: a batch the fake accepted
                # that the official file rejects.
                oas_audit(FakeMparticle(), "/v2/events", {"events": []})
            """
        )
    )
    done = _run_pytest(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "1 passed, 1 error" in done.stdout
    assert "invalid in the official OpenAPI file" in done.stdout
    assert "test_passes_but_feeds_the_audit_a_bad_batch (/v2/events)" in done.stdout


def _run_pytest(where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(where)],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE_ROOT), str(TESTS)])},
    )
