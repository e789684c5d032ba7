"""The synthesis: the answer's spans coloured by confidence, span selection and Retry span.

The browser reports a click on a span by setting ``selected`` (``model.set`` +
``save_changes``); the Retry span button then asks the run to regenerate that span. Both
callbacks may come on any thread, so they only queue a request and ask for a tick; the
outcome arrives later as a ``SpanRetried`` event, like every other change.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import anywidget
import ipywidgets as w
import traitlets as t

from ensemble_nb.core.events import SpanRetried, Synthesis
from ensemble_nb.core.retry import pick_retry_model
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.widgets.payload import retry_payload, spans_payload, synthesis_summary
from ensemble_nb.widgets.token_pane import STATIC


class SynthesisPane(anywidget.AnyWidget):
    _esm = STATIC / "synthesis_pane.js"
    _css = STATIC / "enb.css"

    spans = t.List(t.Dict()).tag(sync=True)
    summary = t.Unicode("").tag(sync=True)
    selected = t.Int(-1).tag(sync=True)  # written by the frontend when a span is clicked
    retries = t.List(t.Dict()).tag(sync=True)
    notice = t.Unicode("").tag(sync=True)


class SynthesisPanel:
    def __init__(self, run: EnsembleRun, wake: Callable[[], None],
                 home_loop: asyncio.AbstractEventLoop | None) -> None:
        self.run = run
        self._wake = wake
        # The loop of whoever built the view (the kernel's), used when the run's own loop has
        # ended: a blocking run's worker loop closes with the run, but a retry may come later.
        self._home_loop = home_loop
        self.widget = SynthesisPane()
        self.retry_button = w.Button(description="Retry span", tooltip="Regenerate the selected span",
                                     icon="refresh", disabled=True, layout=w.Layout(width="auto"))
        self.retry_button.add_class("enb-retry")
        self.retry_button.on_click(self._on_retry)
        self.box = w.VBox([self.widget, w.HBox([self.retry_button])])
        self.box.add_class("enb-synthesis-box")
        self.synthesis: Synthesis | None = None
        self.retries: list[SpanRetried] = []
        self.requests: deque[int] = deque()  # appended from any thread, drained by the tick
        self.failures: deque[str] = deque()
        self.in_flight: dict[int, int] = {}  # span index -> len(run.errors) when it was asked
        self.notice = ""
        self.dirty = False

    # -- listener side ----------------------------------------------------------------------
    def on_synthesis(self, synthesis: Synthesis) -> None:
        self.synthesis, self.dirty = synthesis, True

    def on_retried(self, ev: SpanRetried) -> None:
        self.retries.append(ev)
        self.synthesis = ev.synthesis
        self.in_flight.pop(ev.index, None)
        verdict = "kept" if ev.accepted else "discarded (not more confident)"
        self.notice = (f"span {ev.index} retried with {ev.new.model}: confidence {ev.old.confidence:.2f} → "
                       f"{ev.new.confidence:.2f}, {verdict}")
        self.dirty = True

    # -- any thread -------------------------------------------------------------------------
    def _on_retry(self, _button: Any) -> None:
        index = self.widget.selected
        if index >= 0 and self.synthesis is not None and index < len(self.synthesis.spans):
            # Registered before dispatching: the SpanRetried may come before the next tick.
            self.in_flight[index] = len(self.run.errors)
            self._dispatch(index)
        self.requests.append(index)
        self._wake()

    def _dispatch(self, index: int) -> None:
        loop = self.run.loop
        if loop is not None and loop.is_running():
            self.run.retry_span_soon(index)
            return
        home = self._home_loop
        if home is not None and home.is_running():
            future = asyncio.run_coroutine_threadsafe(self.run.retry_span(index), home)
            future.add_done_callback(self._retry_done)
            return
        self.failures.append("retry needs a running event loop and this run's loop has ended; "
                             f"call `await run.retry_span({index})` in a cell instead")

    def _retry_done(self, future: Future[SpanRetried]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.failures.append(str(future.exception()))
            self._wake()

    # -- tick side --------------------------------------------------------------------------
    def _take_requests(self) -> None:
        while self.requests:
            index = self.requests.popleft()
            spans = self.synthesis.spans if self.synthesis is not None else ()
            if not spans:
                self.notice = "nothing to retry yet: the synthesis is not ready"
            elif not 0 <= index < len(spans):
                self.notice = "click a span of the answer to select it, then press Retry span"
            elif index in self.in_flight:  # else its SpanRetried already came and said how it went
                self.notice = f"retrying span {index} with {pick_retry_model(self.run, spans[index])}…"
            self.dirty = True
        errors = self.run.errors
        for index, seen in list(self.in_flight.items()):
            if len(errors) > seen:
                self.notice = f"retry of span {index} failed: {errors[-1]}"
                del self.in_flight[index]
                self.dirty = True
        while self.failures:
            self.notice = f"retry failed: {self.failures.popleft()}"
            self.in_flight.clear()
            self.dirty = True

    def flush(self) -> tuple[int, bool]:
        """Push changes; returns (comm messages sent, a retry is still being waited for)."""
        self._take_requests()
        sent = 0
        if self.dirty:
            with self.widget.hold_sync():
                if self.synthesis is not None:
                    self.widget.spans = spans_payload(self.synthesis, self.retries)
                    self.widget.summary = synthesis_summary(self.synthesis)
                self.widget.retries = [retry_payload(ev) for ev in self.retries]
                self.widget.notice = self.notice
            self.dirty = False
            sent += 1
        can_retry = self.synthesis is not None and bool(self.synthesis.spans)
        if self.retry_button.disabled == can_retry:
            self.retry_button.disabled = not can_retry
            sent += 1
        return sent, bool(self.in_flight)
