"""The run-wide loopback guard (``support.loopback_guard``) refuses and records.

``tests/conftest.py`` keeps a guard active for the whole run; these tests use a
guard of their own (stacked over the session's) so that their deliberate
violations are recorded here, not in the run's guard.
"""

from __future__ import annotations

import socket

import httpx
import pytest
from support.loopback_guard import LoopbackGuard, NonLoopbackConnectError, is_loopback

from mparticle_dest.testing import FakeMparticle

# TEST-NET-1 (RFC 5737): never routed, so nothing is contacted even without the guard.
UNROUTABLE = ("192.0.2.1", 9)


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        (("127.0.0.1", 80), True),
        (("127.8.9.10", 80), True),
        (("::1", 80, 0, 0), True),
        (("::ffff:127.0.0.1", 80, 0, 0), True),
        (("localhost", 80), True),
        ("some.sock", True),
        (UNROUTABLE, False),
        (("10.0.0.1", 80), False),
        (("s2s.mparticle.com", 443), False),
        (("2001:db8::1", 443, 0, 0), False),
    ],
)
def test_only_loopback_addresses_are_allowed(address: object, allowed: bool) -> None:
    assert is_loopback(address) is allowed


def test_a_non_loopback_connect_is_refused_recorded_and_fails_the_check() -> None:
    with LoopbackGuard() as guard:
        guard.current_test = "tests/x.py::test_y"
        with socket.socket() as sock, pytest.raises(NonLoopbackConnectError):
            sock.connect(UNROUTABLE)
        with socket.socket() as sock, pytest.raises(NonLoopbackConnectError):
            sock.connect_ex(UNROUTABLE)

    assert guard.violations == [
        "tests/x.py::test_y: connect to ('192.0.2.1', 9)",
        "tests/x.py::test_y: connect to ('192.0.2.1', 9)",
    ]
    with pytest.raises(AssertionError, match="2 connection"):
        guard.check()


def test_an_http_client_is_refused_even_when_it_would_swallow_the_error() -> None:
    with LoopbackGuard() as guard:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{UNROUTABLE[0]}:{UNROUTABLE[1]}/", timeout=2)
    assert len(guard.violations) == 1  # recorded, so the run fails even if it was caught


def test_loopback_traffic_goes_through() -> None:
    with LoopbackGuard() as guard, FakeMparticle() as server:
        response = httpx.get(f"{server.url}/_fake/stats")
    assert response.status_code == 200
    assert guard.violations == []
