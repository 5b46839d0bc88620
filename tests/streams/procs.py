"""Real processes for the crash tests: the fake server, relays and producers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx


class Proc:
    """A child process; ``kill()`` is ``kill -9``."""

    def __init__(self, args: list[str], **popen: Any) -> None:
        self.args = args
        self.popen = subprocess.Popen(  # noqa: S603 - our own modules, fixed arguments
            args, stdout=subprocess.PIPE, text=True, **popen
        )

    def kill(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.communicate(timeout=10)  # reaps it and closes the pipes

    def stop(self, timeout: float = 30.0) -> str:
        """SIGTERM, then the process's stdout once it exited (it must exit with 0)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        out, _ = self.popen.communicate(timeout=timeout)
        assert self.popen.returncode == 0, (self.args, self.popen.returncode)
        return out

    def wait(self, timeout: float = 60.0) -> str:
        out, _ = self.popen.communicate(timeout=timeout)
        assert self.popen.returncode == 0, (self.args, self.popen.returncode)
        return out


class FakeServerProc(Proc):
    def __init__(self, *args: str) -> None:
        super().__init__(
            [sys.executable, "-m", "mparticle_dest.testing", "serve", "--counters-only", *args],
            stdin=subprocess.PIPE,
        )
        assert self.popen.stdout is not None
        self.url = self.popen.stdout.readline().strip()
        assert self.url.startswith("http://"), self.url

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(self.url + "/_fake/stats", timeout=10).json())

    def command(self, line: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(line + "\n")
        self.popen.stdin.flush()


def write_config(directory: Path, *, age_ms: int = 200, size: int | None = None) -> Path:
    batch: dict[str, Any] = {"age": age_ms}
    if size is not None:
        batch["size"] = size
    config = {
        "settings": {
            "apiKey": "test-key",
            "apiSecret": "test-secret",
            "userIdentities": {"customer_id": "user.id"},
        },
        "batch": batch,
    }
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


def relay_proc(config: Path, redis_url: str, base_url: str, consumer: str, *extra: str) -> Proc:
    return Proc(
        [
            sys.executable,
            "-m",
            "mparticle_dest",
            "relay",
            "--config",
            str(config),
            "--redis",
            redis_url,
            "--stream",
            "s",
            "--base-url",
            base_url,
            "--consumer",
            consumer,
            *extra,
        ]
    )


def producer_proc(redis_url: str, prefix: str, count: int, rate: float) -> Proc:
    return Proc(
        [
            sys.executable,
            str(Path(__file__).with_name("producer_main.py")),
            redis_url,
            prefix,
            str(count),
            str(rate),
        ]
    )
