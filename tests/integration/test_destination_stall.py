"""Starting without stalling: a cheap import, and the HTTP client built off the event loop.

Built before the event loop runs (module level, an app factory), a destination does
its imports and loads the TLS context then; built inside a running loop, it does them
in the worker thread that builds its client when entered. Either way entering imports
nothing on the loop's thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from support.engine import event, make_config
from support.imports import loaded_by_import

from mparticle_dest._delivery import deliverer
from mparticle_dest._destination.destination import Destination
from mparticle_dest.testing import FakeMparticle


def test_import_leaves_httpx_tenacity_and_cattrs_for_later() -> None:
    # They are most of an import's cost, and a destination needs them only once entered.
    assert loaded_by_import("httpx", "tenacity", "cattrs") == []


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


# Builds a destination (before the loop, or inside it), then enters it with an import
# spy in place: prints what was imported at construction and on which thread during
# ``__aenter__``. Nothing is pushed, so no server is needed.
_ENTER_PROBE = """
import json, sys, threading
import anyio
from mparticle_dest import Destination

where, options = sys.argv[1], json.loads(sys.argv[2])
config = {"settings": {"apiKey": "k", "apiSecret": "s"}}
imported = []

class Spy:
    def find_spec(self, name, path=None, target=None):
        imported.append((name, threading.current_thread() is threading.main_thread()))

def stack():
    return sorted(m for m in ("httpx", "httpcore", "opentelemetry") if m in sys.modules)

built = Destination(config, **options) if where == "outside" else None
report = {"after_import_and_construction": stack()}

async def main():
    dest = built if built is not None else Destination(config, **options)
    report["after_construction_in_loop"] = stack()
    sys.meta_path.insert(0, Spy())
    try:
        await dest.__aenter__()
    finally:
        sys.meta_path.remove(sys.meta_path[0])
    await dest.__aexit__(None, None, None)
    report["on_loop_thread"] = sorted({n for n, main in imported if main})
    report["in_worker"] = sorted({n for n, main in imported if not main})
    deliverer = sys.modules.get("mparticle_dest._delivery.deliverer")
    shared = getattr(deliverer, "tls_context", None)  # None: no shared context at all
    made = 0 if deliverer is None else -1 if shared is None else shared.cache_info().currsize
    report["tls_contexts_made"] = made

anyio.run(main)
print(json.dumps(report))
"""


def _enter_probe(where: str, **options: Any) -> dict[str, Any]:
    out = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-c", _ENTER_PROBE, where, json.dumps(options)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def test_built_before_the_loop_it_imports_then_and_entering_imports_nothing() -> None:
    # The usual case (module level, an app factory): the costly part is paid where no
    # loop runs, so entering only builds the client from what is loaded.
    r = _enter_probe("outside")
    assert r["after_import_and_construction"] == ["httpcore", "httpx", "opentelemetry"]
    assert r["on_loop_thread"] == [] and r["in_worker"] == []
    assert r["tls_contexts_made"] == 1


def test_built_inside_a_loop_the_imports_happen_in_the_worker_not_on_the_loop() -> None:
    # Constructing in the loop imports nothing heavy; entering imports httpcore and
    # opentelemetry (for the telemetry on by default) only in the worker thread.
    r = _enter_probe("inside")
    assert r["after_construction_in_loop"] == []
    assert r["on_loop_thread"] == []
    assert "httpcore" in r["in_worker"] and "opentelemetry" in r["in_worker"]
    assert r["tls_contexts_made"] == 1


def test_a_dry_run_built_before_the_loop_loads_no_http_stack() -> None:
    # Nothing is sent: neither httpx nor opentelemetry is needed, nor imported.
    r = _enter_probe("outside", send=False)
    assert r["after_import_and_construction"] == []
    assert r["on_loop_thread"] == [] and r["in_worker"] == []
    assert r["tls_contexts_made"] == 0


@pytest.mark.anyio
async def test_the_clients_destinations_build_share_one_tls_context() -> None:
    # The CA bundle is loaded once per process, not once per destination.
    async with FakeMparticle() as server:
        config = make_config(server)
        async with Destination(config, base_url=server.url) as a:
            async with Destination(config, base_url=server.url) as b:
                assert (await (await a.push(event("u1", 1)))).delivered
                assert (await (await b.push(event("u2", 1)))).delivered
                contexts = [d._client_to_close._transport._pool._ssl_context for d in (a, b)]  # type: ignore[union-attr]
    assert contexts[0] is contexts[1] is deliverer.tls_context()
