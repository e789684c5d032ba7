"""Running an ensemble to completion from a thread whose event loop is already running.

A running loop (a Jupyter kernel's, an async caller's) must never be blocked on, so the run goes
to one daemon worker thread with a loop of its own, while the calling thread waits and feeds the
run's events to a listener (so output lands where the caller expects it). The worker outlives
each run so a finished run's commands (a view's Retry button) still have a loop to run on.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ensemble_nb.core.events import Event
    from ensemble_nb.core.result import RunResult
    from ensemble_nb.core.run import EnsembleRun

CANCEL_GRACE = 10.0  # seconds an interrupted run may take to wind down before we stop waiting
_DONE = object()


class _WorkerLoop:
    """One daemon thread running an event loop for blocking runs.

    It outlives each run so that a finished run's commands (a view's retry button) still have
    a loop to run on. A loop stuck after an interrupt is abandoned and the next run gets a new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(target=loop.run_forever, name="ensemble-nb-loop", daemon=True)
                self._thread.start()
                self._loop = loop
            return self._loop

    def abandon(self) -> None:
        with self._lock:
            self._loop = self._thread = None

    def shutdown(self, timeout: float = 2.0) -> None:
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()


worker = _WorkerLoop()


def run_blocking(run: EnsembleRun, listener: Callable[[Event], None] | None = None) -> RunResult:
    """Run to the end on the worker loop, calling ``listener`` for each event on *this* thread
    (so output lands in the cell that ran it). On KeyboardInterrupt the run is cancelled, its
    last events are rendered, and the interrupt propagates."""
    loop = worker.get()
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    failure: list[BaseException] = []

    async def finish() -> None:
        try:
            await run
        except BaseException as exc:  # handed back to the cell's thread
            failure.append(exc)
        finally:
            inbox.put(_DONE)

    def begin() -> None:  # on the worker loop
        try:
            run.add_listener(inbox.put, replay=False)
            run.start()
        except BaseException as exc:
            failure.append(exc)
            inbox.put(_DONE)
            return
        task = loop.create_task(finish())
        _worker_tasks.add(task)
        task.add_done_callback(_worker_tasks.discard)

    loop.call_soon_threadsafe(begin)
    try:
        _pump(inbox, listener, None)
    except KeyboardInterrupt:
        # Scheduled after begin() on the same loop, so the run has started when this runs.
        loop.call_soon_threadsafe(run.cancel)
        try:
            finished = _pump(inbox, listener, CANCEL_GRACE)
        except KeyboardInterrupt:
            finished = False
        if not finished:
            worker.abandon()
        raise
    if failure and not isinstance(failure[0], asyncio.CancelledError):
        raise failure[0]
    return run.result


_worker_tasks: set[asyncio.Task[None]] = set()


def _pump(inbox: queue.SimpleQueue[Any], listener: Callable[[Event], None] | None, timeout: float | None) -> bool:
    """Feed events to ``listener`` until the run is done; ``False`` if ``timeout`` ran out first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        # A bounded wait keeps the thread responsive to SIGINT on every platform.
        wait = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
        if wait <= 0:
            return False
        try:
            item = inbox.get(timeout=wait)
        except queue.Empty:
            continue
        if item is _DONE:
            return True
        if listener is not None:
            listener(item)
