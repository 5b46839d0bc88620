"""``SyncDestination``: the async engine for threaded code (Django, Flask, Celery).

The engine runs on a private event loop in a daemon thread. Calls from any number
of threads are handed to that loop through an anyio blocking portal, so
``push`` blocks its calling thread only while the event is mapped and buffered (or
while it waits for room under the default full-buffer policy), never for HTTP.

Shutdown: ``close()`` (or leaving the ``with`` block) drains the buffers within the
close timeout and stops the thread. Instances still open when the interpreter exits
are closed by an ``atexit`` hook, which holds them only weakly. The loop thread is a
daemon thread on purpose: non-daemon threads are joined *before* ``atexit`` hooks
run, so a non-daemon loop would keep the interpreter from ever reaching the hook.

SIGTERM: Python runs no ``atexit`` hook when SIGTERM ends the process (its default
action kills it), so what is buffered would vanish without a word. With
``handle_sigterm=True`` a handler drains the instance (within the close timeout) and
then does what SIGTERM did before (the previous Python handler, or the default
action); by default a handler only logs how many accepted events are abandoned, and
only where SIGTERM still has its default action. See :class:`_SigtermHandler`.

Fork: the loop thread does not survive ``fork()``. An instance used in a child
process raises :class:`~mparticle_dest.DestinationClosedError` telling to create a
new one there; it is never silently dead, and the child never re-sends events
that the parent still holds (the parent delivers them).
"""

from __future__ import annotations

import atexit
import concurrent.futures
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Mapping
from types import FrameType, TracebackType
from typing import Any

import anyio
from anyio.from_thread import BlockingPortal

from .._config import DestinationConfig
from .._exceptions import DestinationClosedError
from .._receipt import Outcome, Receipt
from .destination import CloseReport, Destination
from .options import DestinationOptions
from .stats import Stats

if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - Python 3.10
    from typing_extensions import Unpack

__all__ = ["SyncDestination", "SyncReceipt"]

logger = logging.getLogger("mparticle_dest.sync")

_live: weakref.WeakSet[SyncDestination] = weakref.WeakSet()
_live_lock = threading.Lock()


class SyncReceipt:
    """The outcome of one event pushed through :class:`SyncDestination`.

    ``result(timeout)`` blocks the calling thread until the event's outcome is final.
    """

    __slots__ = ("_owner", "_receipt")

    def __init__(self, receipt: Receipt, owner: SyncDestination) -> None:
        self._receipt = receipt
        self._owner = owner

    @property
    def event_id(self) -> str | None:
        """The walkerOS event id (``source_message_id`` at mParticle)."""
        return self._receipt.event_id

    def done(self) -> bool:
        """Whether the outcome is final."""
        return self._receipt.done()

    @property
    def outcome(self) -> Outcome | None:
        """The final outcome, or ``None`` while the event is still on its way."""
        return self._receipt.outcome

    def result(self, timeout: float | None = None) -> Outcome:
        """Wait for the final outcome of the event.

        Delivery failures are returned as an :class:`~mparticle_dest.Outcome` with
        ``status="failed"``; call ``.raise_for_failure()`` on it to raise instead.

        Args:
            timeout: Seconds to wait at most; ``None`` waits until the outcome is final
                (every receipt resolves, at the latest when the destination closes).

        Returns:
            The event's outcome.

        Raises:
            TimeoutError: The outcome was not final within ``timeout``.
        """
        outcome = self._receipt.outcome
        if outcome is not None:
            return outcome
        future = self._owner._submit(self._receipt.wait)
        try:
            outcome = future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"event {self.event_id} not final after {timeout} s") from None
        assert isinstance(outcome, Outcome)
        return outcome

    def __repr__(self) -> str:
        return repr(self._receipt).replace("<Receipt", "<SyncReceipt", 1)


class SyncDestination:
    """A :class:`~mparticle_dest.Destination` for threaded code.

    Takes the same arguments as ``Destination`` and starts it at once on a private
    event-loop thread. Safe to share between threads: create one per process (after
    any ``fork()``), push from anywhere, close it at shutdown. An instance still open
    when the interpreter exits normally is closed by an ``atexit`` hook; SIGTERM ends
    the process without exit hooks, see ``handle_sigterm``.

    Example:
        ```python
        with SyncDestination(config) as dest:
            receipt = dest.push({"name": "page view", "user": {"id": "u1"}})
        print(receipt.result().status)
        ```

    Args:
        config: The destination config: a walkerOS-style dict or a ``DestinationConfig``.
        handle_sigterm: ``True``: on SIGTERM, drain within ``close_timeout``, then
            hand the signal on (to the handler installed before, or to the default
            action, which ends the process). ``None`` (default): where SIGTERM has
            its default action, log a WARNING with the number of events abandoned,
            then end as before. ``False``: never touch signal handlers. Handlers can
            only be installed from the main thread (elsewhere ``None`` does nothing).
        **options: The keyword options of ``Destination`` (``DestinationOptions``),
            such as ``base_url``. Not ``http_client``: an ``httpx.AsyncClient``
            belongs to the event loop that made it.

    Raises:
        ConfigError: The config is invalid.
        TypeError: ``http_client`` was given.
        ValueError: ``handle_sigterm=True`` outside the main thread.
    """

    _startup_error: BaseException | None = None  # set by the loop thread if it cannot start

    def __init__(
        self,
        config: DestinationConfig | Mapping[str, Any],
        *,
        handle_sigterm: bool | None = None,
        **options: Unpack[DestinationOptions],
    ) -> None:
        if "http_client" in options:
            raise TypeError(
                "SyncDestination does not accept http_client: an httpx.AsyncClient is bound"
                " to the event loop that created it. Give base_url, request_timeout or"
                " max_in_flight instead; a proxy is read from HTTPS_PROXY/HTTP_PROXY"
            )
        if handle_sigterm and threading.current_thread() is not threading.main_thread():
            raise ValueError(
                "handle_sigterm=True needs the main thread: Python runs signal handlers"
                " there only; create the SyncDestination at start-up"
            )
        # Built here so that config and option errors reach the caller as they are;
        # the constructor does no I/O and needs no running loop.
        destination = Destination(config, **options)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._report: CloseReport | None = None
        self._portal: BlockingPortal | None = None
        self._destination: Destination | None = None
        self._stop: anyio.Event | None = None
        started = threading.Event()
        self._finished = threading.Event()  # set by the loop thread as it ends
        self._thread = threading.Thread(
            target=self._run_loop,
            args=(destination, started),
            name="mparticle-dest-loop",
            daemon=True,
        )
        self._thread.start()
        started.wait()
        if self._startup_error is not None:
            self._thread.join()
            error, self._startup_error = self._startup_error, None
            raise error
        with _live_lock:
            _live.add(self)
        self._sigterm: _SigtermHandler | None = None
        if handle_sigterm is not False:
            self._sigterm = _SigtermHandler.install(self, drain=bool(handle_sigterm))

    # --- the loop thread ----------------------------------------------------------------

    def _run_loop(self, destination: Destination, started: threading.Event) -> None:
        try:
            anyio.run(self._serve, destination, started)
        except BaseException as exc:  # any failure must reach the waiting constructor
            if not started.is_set():
                self._startup_error = exc
                started.set()
            else:
                logger.exception("mparticle_dest: the SyncDestination loop thread failed")
        finally:
            self._finished.set()

    async def _serve(self, destination: Destination, started: threading.Event) -> None:
        # The destination is entered and left by this one task (its task group must be);
        # other threads reach it through the portal, which stops before it closes.
        async with destination, BlockingPortal() as portal:
            self._stop = anyio.Event()
            self._destination = destination
            self._portal = portal
            started.set()
            await self._stop.wait()
            # Calls still arriving now get DestinationClosedError from the destination.
            self._report = await destination.aclose()

    def _submit(self, func: Any, *args: Any) -> concurrent.futures.Future[Any]:
        portal = self._portal
        if portal is None:
            raise DestinationClosedError("SyncDestination is closed")
        try:
            return portal.start_task_soon(func, *args)
        except RuntimeError as exc:  # the portal stopped between the check and the call
            raise DestinationClosedError("SyncDestination is closed") from exc

    def _check_usable(self) -> Destination:
        if os.getpid() != self._pid:
            raise DestinationClosedError(
                f"this SyncDestination was created in process {self._pid}, before fork();"
                " its event-loop thread does not exist in this child process. Create a new"
                " SyncDestination in the child (for example in a post-fork or"
                " worker-process-init hook)."
            )
        destination = self._destination
        if self._closed or destination is None:
            raise DestinationClosedError("SyncDestination is closed")
        return destination

    # --- public API ---------------------------------------------------------------------

    def push(self, event: Mapping[str, Any]) -> SyncReceipt:
        """Map and buffer one event; see :meth:`Destination.push`.

        Blocks the calling thread until the event is buffered (under the default
        full-buffer policy it waits for room), never for the HTTP request.

        Args:
            event: A walkerOS event.

        Returns:
            A receipt; ``receipt.result(timeout)`` waits for the final outcome.

        Raises:
            InvalidEventError: The event is invalid (the message names the field).
            BufferFullError: The buffer is full under the ``"raise"`` policy.
            DestinationClosedError: ``close()`` was called, or the instance was
                inherited through ``fork()``.
        """
        destination = self._check_usable()
        receipt: Receipt = self._submit(destination.push, event).result()
        return SyncReceipt(receipt, self)

    def flush(self, timeout: float | None = None) -> None:
        """Deliver everything buffered now; return when it is done.

        Args:
            timeout: Seconds to wait at most (the flush goes on in the background).

        Raises:
            TimeoutError: The flush did not finish within ``timeout``.
            DestinationClosedError: The destination is closed.
        """
        destination = self._check_usable()
        future = self._submit(destination.flush)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"flush not finished after {timeout} s") from None

    @property
    def stats(self) -> Stats:
        """The destination's counters (see :attr:`Destination.stats`).

        After ``close()``, the final counters (as on the close report).

        Raises:
            DestinationClosedError: The instance was inherited through ``fork()``.
        """
        if self._closed and self._report is not None and os.getpid() == self._pid:
            return self._report.stats
        return self._check_usable().stats

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def close(self) -> CloseReport:
        """Drain the buffers (bounded by the close timeout) and stop the loop thread.

        Idempotent and thread-safe: later calls return the first call's report.

        Returns:
            What was delivered and what could not be, as ``Destination.aclose()`` reports.

        Raises:
            DestinationClosedError: Called in a child process after ``fork()``.
        """
        if os.getpid() != self._pid:
            self._check_usable()  # raises the fork error
        with self._lock:
            if not self._closed:
                self._closed = True
                with _live_lock:
                    _live.discard(self)
                self._stop_and_join()
                self._portal = None
                if self._sigterm is not None:
                    self._sigterm.uninstall()
        if self._report is None:
            raise DestinationClosedError("SyncDestination's loop thread ended unexpectedly")
        return self._report

    def _stop_and_join(self) -> None:
        """Stop the loop thread and wait until its close is done.

        A Ctrl-C or a SIGTERM handler raising ``SystemExit`` interrupts the waiting
        thread, not the close; the exception is held back until the close (bounded by
        ``close_timeout``) is done, then re-raised, so every receipt is resolved first.
        """
        held: BaseException | None = None
        # Not Thread.join(): after an interrupted join, the thread counts as stopped.
        while not self._finished.is_set():
            try:
                portal, stop = self._portal, self._stop
                if portal is not None and stop is not None:
                    try:
                        portal.call(stop.set)  # idempotent: may run again after an interruption
                    except RuntimeError:  # the loop already ended (it failed), or is ending
                        pass
                self._finished.wait()
            except BaseException as exc:  # noqa: PERF203 - a signal handler's exception
                if held is None:
                    held = exc
        self._thread.join()
        if held is not None:
            raise held

    def __enter__(self) -> SyncDestination:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<SyncDestination {state}>"


class _SigtermHandler:
    """The SIGTERM handler of one :class:`SyncDestination` (``handle_sigterm``).

    Runs on the main thread, between two bytecodes of whatever it was doing. With
    ``drain`` it closes the instance (the loop thread delivers; this thread waits at
    most the close timeout), else it only counts and logs what is abandoned. Then the
    signal goes on as if this handler did not exist: to the Python handler installed
    before (a server's graceful shutdown), or, for the default action, SIGTERM is
    raised again with the default action restored, so the process still ends "killed
    by SIGTERM" (exit status 143 in a shell). It holds the instance weakly.
    """

    def __init__(self, owner: SyncDestination, previous: Any, drain: bool) -> None:
        self._owner = weakref.ref(owner)
        self._previous = previous
        self._drain = drain

    @classmethod
    def install(cls, owner: SyncDestination, *, drain: bool) -> _SigtermHandler | None:
        """Install a handler for ``owner``, or return ``None`` where it must not.

        The warning-only handler goes only where SIGTERM has its default action (an
        application's or a server's own handler is never wrapped uninvited); the
        draining one chains to any Python handler. Neither replaces a handler set
        outside Python (``getsignal`` gives ``None``: it could not be chained) nor an
        ignored SIGTERM.
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = signal.getsignal(signal.SIGTERM)
        if previous is None or previous is signal.SIG_IGN:
            if drain:
                logger.warning(
                    "mparticle_dest: handle_sigterm=True has no effect: SIGTERM is %s in"
                    " this process",
                    "ignored" if previous is signal.SIG_IGN else "handled outside Python",
                )
            return None
        if not drain and previous is not signal.SIG_DFL:
            return None
        handler = cls(owner, previous, drain)
        signal.signal(signal.SIGTERM, handler)
        return handler

    def uninstall(self) -> None:
        """Put the previous handler back, if this one is still the installed one.

        (When another handler was installed on top, this one stays in its chain and,
        its instance closed, only hands the signal on.)
        """
        previous = self._previous
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is self:
            signal.signal(signal.SIGTERM, previous)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        owner = self._owner()
        if owner is not None and owner._pid == os.getpid() and not owner.closed:
            if self._drain:
                logger.info("mparticle_dest: SIGTERM: delivering what is buffered, then exiting")
                try:
                    owner.close()  # the close report is logged by the destination
                except Exception:  # the signal must go on whatever happened here
                    logger.exception("mparticle_dest: closing a SyncDestination on SIGTERM failed")
            else:
                abandoned = owner.stats.buffered
                if abandoned:
                    logger.warning(
                        "mparticle_dest: SIGTERM ends the process: %d accepted events not"
                        " yet delivered are abandoned (create the SyncDestination with"
                        " handle_sigterm=True to deliver them first)",
                        abandoned,
                    )
        self._chain(signum, frame)

    def _chain(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous
        if previous is signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
        elif callable(previous):
            previous(signum, frame)


def _close_live_instances() -> None:
    """``atexit``: drain and close every instance still open in this process."""
    with _live_lock:
        instances = list(_live)
    for instance in instances:
        if instance._pid != os.getpid():
            continue
        try:
            report = instance.close()
        except Exception:
            logger.exception("mparticle_dest: closing a SyncDestination at exit failed")
            continue
        except BaseException as exc:
            # A Ctrl-C or SIGTERM during the close at exit: close() finished first, and the
            # process is exiting anyway. Go on with the other instances.
            logger.info("mparticle_dest: %s during the close at exit", type(exc).__name__)
            if instance._report is None:
                continue
            report = instance._report
        if report.undelivered:
            logger.warning(
                "mparticle_dest: %d events abandoned at interpreter exit: the close"
                " timeout ran out before they were delivered",
                report.undelivered,
            )


def _forget_instances_in_child() -> None:
    # The child has no loop threads; its copies of the parent's instances must never
    # drain (the parent delivers those events). Fresh lock: the parent's may be held.
    global _live_lock
    _live_lock = threading.Lock()
    _live.clear()


atexit.register(_close_live_instances)
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(after_in_child=_forget_instances_in_child)
