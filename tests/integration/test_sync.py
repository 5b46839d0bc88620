"""``SyncDestination`` from plain threads, against the fake Events API."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from mparticle_dest import ConfigError, DestinationClosedError, InvalidEventError
from mparticle_dest._destination.sync import SyncDestination, SyncReceipt
from mparticle_dest.testing import FakeMparticle, Fault, FaultPlan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[FakeMparticle]:
    with FakeMparticle() as fake:
        yield fake


def config_for(server: FakeMparticle) -> dict[str, object]:
    return {"settings": {**server.settings, "userIdentities": {"customer_id": "user.id"}}}


def ev(user: str, i: int) -> dict[str, object]:
    return {"name": "item view", "id": f"{user}-{i:05d}", "data": {"i": i}, "user": {"id": user}}


def test_concurrent_threads_lose_nothing_and_keep_each_users_order(
    server: FakeMparticle,
) -> None:
    receipts: dict[str, list[SyncReceipt]] = {}
    with SyncDestination(config_for(server), base_url=server.url) as dest:

        def worker(user: str) -> None:
            receipts[user] = [dest.push(ev(user, i)) for i in range(150)]

        threads = [threading.Thread(target=worker, args=(f"u{n}",)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = dest.close()

    assert report.ok
    assert report.delivered == 8 * 150
    assert server.event_count == 8 * 150
    for user, user_receipts in receipts.items():
        assert all(r.result(timeout=0).delivered for r in user_receipts)
        delivered = [e.source_message_id for e in server.events_for("customer_id", user)]
        assert delivered == [f"{user}-{i:05d}" for i in range(150)]


def test_pushes_racing_close_either_raise_or_get_delivered(server: FakeMparticle) -> None:
    dest = SyncDestination(config_for(server), base_url=server.url)
    accepted: list[SyncReceipt] = []
    refused = 0
    lock = threading.Lock()
    started = threading.Barrier(5)

    def worker(user: str) -> None:
        nonlocal refused
        started.wait()
        for i in range(10_000):
            try:
                receipt = dest.push(ev(user, i))
            except DestinationClosedError:
                with lock:
                    refused += 1
                return
            with lock:
                accepted.append(receipt)

    threads = [threading.Thread(target=worker, args=(f"u{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    started.wait()
    while len(accepted) < 200:  # let the pushers get going
        threading.Event().wait(0.001)
    report = dest.close()
    for t in threads:
        t.join()

    assert refused == 4  # every pusher was stopped by the close
    assert all(r.done() and r.result().delivered for r in accepted)
    assert report.delivered == len(accepted) == server.event_count
    with pytest.raises(DestinationClosedError):
        dest.push(ev("late", 0))


def test_close_is_idempotent_and_frees_the_instance(server: FakeMparticle) -> None:
    dest = SyncDestination(config_for(server), base_url=server.url)
    dest.push(ev("u1", 1))
    thread_names = {t.name for t in threading.enumerate()}
    assert "mparticle-dest-loop" in thread_names

    first = dest.close()
    second = dest.close()

    assert first is second
    assert dest.closed
    assert server.event_count == 1
    ref = weakref.ref(dest)
    del dest
    gc.collect()
    assert ref() is None  # the atexit registry holds instances weakly


def test_flush_delivers_now_and_result_times_out_while_pending(server: FakeMparticle) -> None:
    with SyncDestination(config_for(server), base_url=server.url) as dest:
        dest.flush(timeout=10)
        dest.push(ev("u1", 1))
        dest.flush(timeout=10)
        assert server.event_count == 1

        server.set_faults(FaultPlan.script([Fault.slow(1.0)]))
        receipt = dest.push(ev("u1", 2))
        dest_flush_thread = threading.Thread(target=dest.flush)
        dest_flush_thread.start()
        with pytest.raises(TimeoutError):
            receipt.result(timeout=0.05)
        dest_flush_thread.join()
        assert receipt.result(timeout=10).delivered


def test_errors_reach_the_calling_thread(server: FakeMparticle) -> None:
    threads_before = set(threading.enumerate())
    with pytest.raises(ConfigError):
        SyncDestination({"settings": {"apiKey": "k"}}, base_url=server.url)
    assert set(threading.enumerate()) <= threads_before  # no loop thread left behind
    with pytest.raises(TypeError, match="http_client"):
        SyncDestination(config_for(server), http_client=object())

    with SyncDestination(config_for(server), base_url=server.url) as dest:
        with pytest.raises(InvalidEventError):
            dest.push({"name": "nospace"})
        dest.push(ev("u1", 1))
    assert server.event_count == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_an_instance_inherited_through_fork_refuses_use_with_a_clear_error(
    server: FakeMparticle,
) -> None:
    dest = SyncDestination(config_for(server), base_url=server.url)
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        outcome = b"no error"
        try:
            dest.push(ev("child", 1))
        except DestinationClosedError as exc:
            outcome = str(exc).encode()
        os.write(write_end, outcome)
        os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    message = os.read(read_end, 4096).decode()
    os.close(read_end)

    assert os.waitstatus_to_exitcode(status) == 0
    assert "before fork()" in message
    assert "Create a new SyncDestination in the child" in message
    dest.push(ev("parent", 1))  # the parent's instance still works
    dest.close()
    assert [e.source_message_id for e in server.events] == ["parent-00001"]


def test_atexit_drains_an_instance_left_open(server: FakeMparticle, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from mparticle_dest._destination.sync import SyncDestination

        dest = SyncDestination(
            {{"settings": {{"apiKey": {server.settings["apiKey"]!r},
                           "apiSecret": {server.settings["apiSecret"]!r},
                           "userIdentities": {{"customer_id": "user.id"}}}}}},
            base_url={server.url!r},
        )
        for i in range(50):
            dest.push({{"name": "item view", "id": f"exit-{{i:05d}}", "user": {{"id": "u1"}}}})
        # no close(): the atexit hook must deliver the 50 buffered events
        """
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, our own script
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert [e.source_message_id for e in server.events] == [f"exit-{i:05d}" for i in range(50)]
