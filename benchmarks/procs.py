"""Children of the regime benchmarks: several at once, each in a fresh interpreter.

A child is ``python -m benchmarks.child '<json spec>'`` (see :mod:`benchmarks.child`);
its result is the JSON object on its last stdout line. Its output goes to temporary
files, so a parent busy sampling the sink never blocks a child on a full pipe.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import IO, Any

from .server_proc import FAKE_SERVER_CMD, ServerProcess

_CHILD_TIMEOUT = 900.0


class Child:
    """A running measurement child; :meth:`result` waits for it."""

    def __init__(self, spec: dict[str, Any], what: str) -> None:
        self.what = what
        self._out: IO[bytes] = tempfile.TemporaryFile()
        self._err: IO[bytes] = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.child", json.dumps(spec)],
            stdout=self._out,
            stderr=self._err,
        )

    def running(self) -> bool:
        """Whether the child has not exited yet."""
        return self.proc.poll() is None

    def result(self) -> dict[str, Any]:
        """Wait for the child and return its JSON result.

        Raises:
            RuntimeError: The child failed or printed no result.
        """
        try:
            self.proc.wait(timeout=_CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.seek(0)
        self._err.seek(0)
        out = self._out.read().decode()
        err = self._err.read().decode()
        self._out.close()
        self._err.close()
        lines = out.strip().splitlines()
        if self.proc.returncode != 0 or not lines:
            raise RuntimeError(
                f"benchmark child {self.what} failed (exit {self.proc.returncode}):\n{err.strip()}"
            )
        result: dict[str, Any] = json.loads(lines[-1])
        return result


def run(spec: dict[str, Any], what: str) -> dict[str, Any]:
    """Run one child to completion and return its result."""
    return Child(spec, what).result()


def metered_sink(
    limit: float | None, burst: float | None = None, usage: str = "bucket"
) -> ServerProcess:
    """The fake mParticle server in its own process, limited to ``limit`` batches/s.

    No schema validation (the client's bodies are checked elsewhere) and counters
    only, so a long run neither slows the sink nor grows it. ``limit=None``: no limit.
    ``usage``: what ``X-mp-rate-limit-percentage-used`` reports (``serve
    --rate-limit-usage``).
    """
    cmd = [*FAKE_SERVER_CMD, "--no-validate"]
    if limit is not None:
        cmd += ["--rate-limit", f"{limit:g}", "--rate-limit-usage", usage]
        if burst is not None:
            cmd += ["--rate-limit-burst", f"{burst:g}"]
    return ServerProcess(cmd)
