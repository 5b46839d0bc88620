"""Work that must finish even when the task waiting for it is interrupted.

An anyio shielded scope stops anyio and trio cancellation, but two interruptions
still reach a task waiting inside one: a plain asyncio ``Task.cancel()`` (what
``asyncio.run`` does on Ctrl-C, and what a SIGTERM handler calling ``task.cancel()``
does) and, on trio, the ``KeyboardInterrupt`` of a Ctrl-C. Either would abandon a
close half-way (receipts never resolved, background tasks left running), so the
close runs in a task of its own that no caller's interruption reaches, and the
caller waits for it, holding the interruption back until the work is done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

__all__ = ["Started", "on_asyncio", "run_sheltered", "spawn_loop_task"]

T = TypeVar("T")

# asyncio keeps only weak references to tasks: hold the ones we start until they end.
_loop_tasks: set[asyncio.Task[None]] = set()


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (else anyio's other backend, trio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def spawn_loop_task(fn: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    """Start ``fn`` in an asyncio task owned by the loop, not by any caller's task group.

    Nothing cancels it but the loop shutting down; it must stop on its own.
    """

    async def main() -> None:
        await fn()

    task = asyncio.get_running_loop().create_task(main())
    _loop_tasks.add(task)
    task.add_done_callback(_loop_tasks.discard)
    return task


async def run_sheltered(work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` to its end, whatever happens to the calling task meanwhile.

    ``work`` runs in a task of its own (an asyncio loop task, or a trio system task,
    which is also protected from ``KeyboardInterrupt``); the caller waits for it in a
    shielded scope. An interruption of the wait (a native asyncio cancellation, a
    trio ``KeyboardInterrupt``, however many arrive) is held back until ``work`` has
    finished, then the first one is re-raised: the caller is still interrupted, only
    later. ``work`` must bound its own duration.

    Returns:
        What ``work`` returned.

    Raises:
        BaseException: The held-back interruption, else whatever ``work`` raised.
    """
    values: list[T] = []
    errors: list[BaseException] = []
    finished = anyio.Event()

    async def runner() -> None:
        try:
            values.append(await work())
        except BaseException as exc:  # handed to the caller, whatever it is
            errors.append(exc)
        finally:
            finished.set()

    if on_asyncio():
        spawn_loop_task(runner)
    else:
        import trio

        trio.lowlevel.spawn_system_task(runner)
    held: BaseException | None = None
    while not finished.is_set():
        try:
            with anyio.CancelScope(shield=True):
                await finished.wait()
        except BaseException as exc:  # noqa: PERF203 - an interruption the shield cannot stop
            if held is None:
                held = exc
    if held is not None:
        raise held
    if errors:
        raise errors[0]
    return values[0]


class Started:
    """A ``task_status`` for a task started outside a task group.

    ``started()`` marks it :attr:`ready` and sets :attr:`event`; whoever waits for the
    event also sets it if the task ends first, and then finds ``ready`` false.
    """

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.ready = False

    def started(self, value: None = None) -> None:
        self.ready = True
        self.event.set()
