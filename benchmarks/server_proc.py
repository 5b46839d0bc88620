"""Servers in their own processes, so their CPU is never charged to the client.

:class:`ServerProcess` runs the project's fake mParticle Events API
(``python -m mparticle_dest.testing serve --counters-only``) and reads its URL from
the first line it prints. :class:`StalledServer` runs it with ``--stall``: it holds every
request unanswered until it is released, so the memory pass can keep events
buffered in the client.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

FAKE_SERVER_CMD: tuple[str, ...] = (
    sys.executable,
    "-m",
    "mparticle_dest.testing",
    "serve",
    "--counters-only",
    # The modes send the same seeded events (hence source_request_ids) to one server.
    "--no-deduplicate",
)
STALL_SERVER_CMD: tuple[str, ...] = (*FAKE_SERVER_CMD, "--no-validate", "--stall")

_STOP_TIMEOUT = 10.0
#: The fake server's counters endpoint (``mparticle_dest.testing.STATS_PATH``).
STATS_PATH = "/_fake/stats"


def fake_server_cmd(*, validate: bool) -> tuple[str, ...]:
    """The fake server's command line; ``validate=False`` skips its schema checks."""
    return FAKE_SERVER_CMD if validate else (*FAKE_SERVER_CMD, "--no-validate")


_S = TypeVar("_S", bound="ServerProcess")


class ServerProcess:
    """A server subprocess that prints its base URL as its first stdout line.

    Args:
        cmd: the command line; the fake mParticle server by default.
    """

    def __init__(self, cmd: Sequence[str] = FAKE_SERVER_CMD) -> None:
        self._cmd = list(cmd)
        self._proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self: _S) -> _S:
        self._proc = subprocess.Popen(
            self._cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http"):
            self.stop()
            raise RuntimeError(f"server {self._cmd!r} did not print its URL (got {line!r})")
        self.url = line
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def fetch_stats(self) -> dict[str, Any]:
        """The fake server's counters (``GET /_fake/stats``): requests, batches, events, bytes."""
        response = httpx.get(self.url + STATS_PATH, timeout=_STOP_TIMEOUT)
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats

    def send_line(self, line: str) -> None:
        """Write one line to the server's stdin (a control command)."""
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()

    def stop(self) -> dict[str, Any] | None:
        """Stop the server (SIGINT, then SIGTERM) and return its final counters.

        The counters are the last JSON object the server printed on stdout, or
        ``None`` if it printed none (or was already stopped).
        """
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                out, _ = proc.communicate(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.terminate()
                out, _ = proc.communicate()
        else:
            out, _ = proc.communicate()
        return _last_json_object(out or "")


def _last_json_object(text: str) -> dict[str, Any] | None:
    for line in reversed(text.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


class StalledServer(ServerProcess):
    """A server that answers nothing until :meth:`release`, then 202 to everything."""

    def __init__(self) -> None:
        super().__init__(STALL_SERVER_CMD)

    def release(self) -> None:
        """Answer every held request (202) and every later one at once."""
        self.send_line("release")
