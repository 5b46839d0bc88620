"""A service that a test interrupts: ``python tests/support/signal_child.py BACKEND URL``.

It opens a ``Destination`` against ``URL`` (a stalled fake server), pushes events to
three users, prints ``closing`` and leaves ``async with``, so the close drains for
``--close-timeout`` seconds. The test sends SIGINT or SIGTERM meanwhile. SIGTERM is
turned into a cancellation the way services do it: on asyncio (and uvloop) a loop
signal handler calls ``task.cancel()`` on the main task; on trio a signal receiver
cancels the main scope. Whatever ends the run, the last stdout line is a JSON summary:
how the run ended, and what became of every receipt.

With ``--form start`` the destination is opened with ``start()`` in one task and closed
with ``aclose()`` in another (startup and shutdown hooks), on asyncio only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections import Counter
from typing import Any

import anyio

from mparticle_dest import Destination, FailedBatch, Receipt

SIGTERM_EXIT = 128 + signal.SIGTERM

receipts: list[Receipt] = []
failed: list[FailedBatch] = []
state: dict[str, Any] = {"dest": None, "sigterm": False}


def summary(ended_by: str) -> dict[str, Any]:
    dest: Destination = state["dest"]
    statuses = Counter(
        f"{r.outcome.status}:{r.outcome.reason}" if r.outcome else "pending" for r in receipts
    )
    return {
        "ended_by": ended_by,
        "receipts": len(receipts),
        "outcomes": dict(statuses),
        "on_error_events": sum(f.event_count for f in failed),
        "undelivered": dest.stats.undelivered_at_close,
        "closed": dest.closed,
    }


async def push_some(dest: Destination, events: int) -> None:
    for n in range(events):
        event = {"name": "page view", "id": f"ev-{n}", "user": {"id": f"user-{n % 3}"}}
        receipts.append(await dest.push(event))


def make_destination(url: str, close_timeout: float) -> Destination:
    config = {
        "settings": {
            "apiKey": "test-key",
            "apiSecret": "test-secret",
            "userIdentities": {"customer_id": "user.id"},
        },
        "batch": {"age": 60_000},  # nothing leaves before the close
    }
    dest = Destination(
        config,
        base_url=url,
        close_timeout=close_timeout,
        request_timeout=600,  # the stalled server must hold the drain, not a timeout
        on_error=failed.append,
    )
    state["dest"] = dest
    return dest


def announce_closing() -> None:
    print("closing", flush=True)  # noqa: T201 - the test waits for this line


async def asyncio_main(args: argparse.Namespace) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None

    def on_sigterm() -> None:
        state["sigterm"] = True
        main_task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    dest = make_destination(args.url, args.close_timeout)
    if args.form == "start":
        await asyncio.get_running_loop().create_task(start_and_push(dest, args.events))
        announce_closing()
        await asyncio.get_running_loop().create_task(dest.aclose())
        return
    async with dest:
        await push_some(dest, args.events)
        announce_closing()


async def start_and_push(dest: Destination, events: int) -> None:
    await dest.start()
    await push_some(dest, events)


async def trio_main(args: argparse.Namespace) -> None:
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        async def cancel_on_sigterm() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:  # a second SIGTERM finds the scope cancelled
                    scope.cancel()

        tg.start_soon(cancel_on_sigterm)
        with scope:
            async with make_destination(args.url, args.close_timeout) as dest:
                await push_some(dest, args.events)
                announce_closing()
        tg.cancel_scope.cancel()
    if scope.cancel_called:
        raise SystemExit(SIGTERM_EXIT)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend", choices=["asyncio", "uvloop", "trio"])
    parser.add_argument("url")
    parser.add_argument("--close-timeout", type=float, default=3.0)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--form", choices=["async-with", "start"], default="async-with")
    args = parser.parse_args()
    ended_by, code = "return", 0
    try:
        if args.backend == "trio":
            anyio.run(trio_main, args, backend="trio")
        else:
            uvloop = args.backend == "uvloop"
            anyio.run(asyncio_main, args, backend_options={"use_uvloop": uvloop})
    except BaseException as exc:
        # Under trio, this script's own task group wraps what crosses it in a group.
        while isinstance(getattr(exc, "exceptions", None), tuple) and len(exc.exceptions) == 1:  # type: ignore[attr-defined]
            exc = exc.exceptions[0]  # type: ignore[attr-defined]
        ended_by = type(exc).__name__
        if isinstance(exc, KeyboardInterrupt):
            code = 128 + signal.SIGINT
        elif isinstance(exc, asyncio.CancelledError):
            # Before Python 3.11, anyio.run reports a Ctrl-C as this too.
            code = SIGTERM_EXIT if state.get("sigterm") else 128 + signal.SIGINT
        elif isinstance(exc, SystemExit) and isinstance(exc.code, int):
            code = exc.code
        else:
            raise
    print(json.dumps(summary(ended_by)), flush=True)  # noqa: T201
    return code


if __name__ == "__main__":
    sys.exit(main())
