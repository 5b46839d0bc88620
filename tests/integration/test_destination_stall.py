"""Starting without stalling: a cheap import, and the HTTP client built off the event loop."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest
from support.engine import event, make_config

from mparticle_dest._delivery import deliverer
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle


def test_import_leaves_httpx_tenacity_and_cattrs_for_later() -> None:
    # They are most of an import's cost, and a destination needs them only once entered.
    code = (
        "import sys, mparticle_dest;"
        "print(sorted(m for m in ('httpx', 'tenacity', 'cattrs') if m in sys.modules))"
    )
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


@pytest.mark.anyio
async def test_entering_builds_the_http_client_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built_on: list[threading.Thread] = []
    real = deliverer.make_client

    def recording(**kwargs: Any) -> Any:
        built_on.append(threading.current_thread())
        return real(**kwargs)

    monkeypatch.setattr(deliverer, "make_client", recording)
    async with FakeMparticle() as server:
        async with Destination(make_config(server), base_url=server.url) as dest:
            assert (await (await dest.push(event("u1", 1)))).delivered
    assert len(built_on) == 1 and built_on[0] is not threading.current_thread()
