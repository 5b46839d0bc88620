"""pytest plugin (``pytest11`` entry point): the ``mparticle_server`` fixtures.

Installed with the package, so any project that depends on ``mparticle-dest`` can
use the fixtures without importing anything::

    def test_checkout(mparticle_server):
        ...  # Destination(config, base_url=mparticle_server.url)

Customise the server of one test with the marker
``@pytest.mark.mparticle_server(api_key=..., faults=..., ...)`` (any
:class:`FakeMparticle` keyword), or start several with ``mparticle_server_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._server import FakeMparticle

__all__ = ["mparticle_server", "mparticle_server_factory"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker so ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        "mparticle_server(**kwargs): FakeMparticle keyword arguments for the "
        "mparticle_server fixture",
    )


@pytest.fixture
def mparticle_server_factory() -> Iterator[Callable[..., FakeMparticle]]:
    """A function that starts a :class:`FakeMparticle` with the given keywords.

    Every server it started is stopped at the end of the test.
    """
    servers: list[FakeMparticle] = []

    def start(**kwargs: Any) -> FakeMparticle:
        server = FakeMparticle(**kwargs).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def mparticle_server(
    request: pytest.FixtureRequest, mparticle_server_factory: Callable[..., FakeMparticle]
) -> FakeMparticle:
    """A started :class:`FakeMparticle` on loopback, stopped after the test.

    Defaults: API key ``test-key``, secret ``test-secret`` (see ``.settings``), schema
    validation on, no faults. Override with ``@pytest.mark.mparticle_server(...)``.
    """
    marker = request.node.get_closest_marker("mparticle_server")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    return mparticle_server_factory(**kwargs)
