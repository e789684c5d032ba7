"""One render tick per view, on the loop that runs the run, paced by a message budget.

Listeners only buffer; the tick is the one place that touches widgets. Each flush reports
how many comm messages it sent, and the next tick waits ``sent / rate`` seconds (at least
``min_interval``), so the view sends at most ``rate`` messages per second on average however
fast tokens come and however many models stream.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Flush = Callable[[bool], tuple[int, bool]]
"""``flush(final)`` -> (messages sent, still has something to send later)."""


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class RenderTicker:
    def __init__(self, flush: Flush, *, rate: float = 12.0, min_interval: float = 0.1) -> None:
        self._flush = flush
        self.rate = rate
        self.min_interval = min_interval
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._next_allowed = 0.0
        self.ticks = 0
        self.messages = 0
        self.tick_threads: set[str] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop ticks run on: the one the last event arrived on."""
        return self._loop

    def loop_alive(self) -> bool:
        loop = self._loop
        return loop is not None and loop.is_running() and not loop.is_closed()

    def poke(self) -> None:
        """Ask for a tick soon. On the run's loop only (listeners are called there)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here (a replay outside any loop): the caller flushes itself
        if self._handle is not None and self._loop is loop and not loop.is_closed():
            return
        if self._handle is not None:  # pending on a loop that no longer runs the run
            self._handle.cancel()
        self._loop = loop
        delay = max(self.min_interval, self._next_allowed - time.monotonic())
        self._handle = loop.call_later(delay, self._tick)

    def poke_threadsafe(self) -> bool:
        """Hand a tick request to the run's loop from any thread; False when no loop takes it."""
        loop = self._loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return False
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.poke()
            return True
        try:
            loop.call_soon_threadsafe(self.poke)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    def flush_now(self, final: bool = True) -> None:
        """Flush at once (the run has finished: the last state must not wait for a tick)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._run_flush(final)

    def _tick(self) -> None:
        self._handle = None
        if self._run_flush(False):
            self.poke()

    def _run_flush(self, final: bool) -> bool:
        try:
            sent, more = self._flush(final)
        except Exception:  # a drawing bug must never reach the run that called the listener
            log.exception("ensemble view: render tick failed")
            return False
        self.ticks += 1
        self.messages += sent
        self.tick_threads.add(threading.current_thread().name)
        self._next_allowed = time.monotonic() + max(self.min_interval, sent / self.rate)
        return more
