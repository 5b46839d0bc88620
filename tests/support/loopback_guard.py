"""Issue 5: no test in the project relies on a network address other than loopback.

``LoopbackGuard`` patches ``socket.socket.connect``/``connect_ex`` (which asyncio,
trio, httpx and the standard library all end up calling) so that a connection to a
non-loopback address raises at once and is recorded; ``tests/conftest.py`` turns it
on for the whole run and fails the run if anything was recorded, even when the
code under test swallowed the error (a retry loop would). Unix sockets and
``localhost`` are allowed. Tests that start a subprocess are not covered by it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from .run_audit import RunAudit

__all__ = ["LoopbackGuard", "NonLoopbackConnectError", "loopback_only"]


class NonLoopbackConnectError(ConnectionRefusedError):
    """A test tried to connect to an address other than loopback."""


def is_loopback(address: Any) -> bool:
    """Whether ``address`` (a ``connect()`` argument) stays on this machine."""
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = str(address[0]).split("%", 1)[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # any other host name
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


class LoopbackGuard(RunAudit):
    """While active, refuses and records every connection to a non-loopback address."""

    title = "connection(s) to non-loopback addresses tried"

    def _check(self, address: Any) -> None:
        if not is_loopback(address):
            self.record(f": connect to {address!r}")
            raise NonLoopbackConnectError(f"tests may only connect to loopback, not {address!r}")

    def __enter__(self) -> LoopbackGuard:
        self._saved = (socket.socket.connect, socket.socket.connect_ex)
        real_connect, real_connect_ex = self._saved
        check = self._check

        def connect(sock: socket.socket, address: Any) -> None:
            check(address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            check(address)
            return real_connect_ex(sock, address)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        super().__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__()
        socket.socket.connect, socket.socket.connect_ex = self._saved  # type: ignore[method-assign]


@pytest.fixture(scope="session", autouse=True)
def loopback_only() -> Iterator[LoopbackGuard]:
    """Refuse non-loopback connections for the whole run; fail at the end if any was tried."""
    with LoopbackGuard() as guard:
        yield guard
    guard.check()
