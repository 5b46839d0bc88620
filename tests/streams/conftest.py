"""A real ``redis-server`` per test session (on a free loopback port, in a temporary
directory, started and stopped by mirakuru), a clean database per test, and asyncio only
(redis-py's asyncio client: the relay and the producer run on asyncio)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("redis", reason="the redis extra is not installed")
from mirakuru import TCPExecutor

from mparticle_dest.streams import connect

REDIS_SERVER = shutil.which("redis-server")
if REDIS_SERVER is None:
    pytest.skip(
        "redis-server is not installed (CI installs Debian's redis-server package)",
        allow_module_level=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a redis-server of this session (no persistence)."""
    directory: Path = tmp_path_factory.mktemp("redis")
    port = _free_port()
    assert REDIS_SERVER is not None
    command = [
        REDIS_SERVER,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
    ]  # fmt: skip
    executor = TCPExecutor(command, host="127.0.0.1", port=port, timeout=20)
    executor.start()
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        executor.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis_url(redis_server: str) -> AsyncIterator[str]:
    """The server's URL, its database emptied before the test."""
    client = connect(redis_server)
    try:
        await client.execute_command("FLUSHALL")
    finally:
        await client.aclose()
    yield redis_server


@pytest.fixture
def sync_redis(redis_server: str) -> Iterator[tuple[str, Any]]:
    """For tests that run the CLI (it runs its own event loop): the URL and a sync client."""
    import redis

    client = redis.Redis.from_url(redis_server)
    client.flushall()
    try:
        yield redis_server, client
    finally:
        client.close()
