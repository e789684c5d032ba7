"""``EnsembleView``: the live view of one run, as one displayable ipywidgets container.

Coalescing: the run calls ``_on_event`` on its loop for every event; it only appends to
buffers and pokes the view's ``RenderTicker``, which runs one flush at a time on that same
loop and paces flushes by the messages they send (``rate`` per second on average). Every
pane's changes in a flush go as one comm message; the plot, which costs four, is flushed at
most every ``plot_interval`` seconds. ``RunFinished`` flushes at once, so the final state is
never left in a buffer. Widget callbacks (Cancel, Retry span, a frontend's resync) may come
on any thread: they hand the command to the run and ask the ticker for a tick on the run's
loop; they never draw. When no loop is left to tick (the run ran on a worker thread's loop
that has closed), nothing else can touch the widgets, and the callback flushes itself.
"""

from __future__ import annotations

import html
import logging
import threading
import time

import ipywidgets as w

from ensemble_nb.core.events import (
    Event,
    ModelEnded,
    ModelStarted,
    PlanChosen,
    RunFinished,
    RunStarted,
    SpanRetried,
    SynthesisReady,
    TokenReceived,
)
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.widgets.colors import legend_html
from ensemble_nb.widgets.entropy_plot import EntropyPlot
from ensemble_nb.widgets.payload import format_cost
from ensemble_nb.widgets.synthesis_pane import SynthesisPanel
from ensemble_nb.widgets.ticker import RenderTicker, running_loop
from ensemble_nb.widgets.token_pane import ModelPane

log = logging.getLogger(__name__)


class EnsembleView(w.VBox):  # type: ignore[misc]
    def __init__(self, run: EnsembleRun, *, rate: float = 12.0, min_interval: float = 0.1,
                 plot_interval: float = 1.0, window: int = 300) -> None:
        self.run = run
        self.plot_interval = plot_interval
        self._ticker = RenderTicker(self._flush, rate=rate, min_interval=min_interval)
        self._last_plot = 0.0
        self._attach_lock = threading.Lock()
        self._attached = False
        self._header_dirty = True
        self._status = "waiting"
        self._plan = ""
        self._duration: float | None = None
        self._cost: float | None = None
        models = list(run.specs)
        self.panes = {m: ModelPane(run, m, self._wake) for m in models}
        self.plot = EntropyPlot(models, window=window)
        self.synthesis = SynthesisPanel(run, self._wake, running_loop())
        self.header = w.HTML(self._header_html())
        self.header.add_class("enb-header")
        legend = w.HTML(legend_html())
        self._pane_grid = w.GridBox([p.box for p in self.panes.values()], layout=w.Layout(
            grid_template_columns="repeat(auto-fit, minmax(320px, 1fr))", grid_gap="8px"))
        self._pane_grid.add_class("enb-panes")
        super().__init__([self.header, legend, self._pane_grid, self.plot.figure, self.synthesis.box])
        self.add_class("enb-view")
        self._attach()

    @property
    def ticker(self) -> RenderTicker:
        return self._ticker

    def _attach(self) -> None:
        loop = self.run.loop
        if loop is not None and loop.is_running() and loop is not running_loop():
            # The run streams on another thread's loop: subscribe there, so the replay and
            # the live events reach the listener in order, on the loop that will tick.
            attached = threading.Event()

            def attach() -> None:
                if self._claim_listener():
                    self.run.add_listener(self._on_event)
                attached.set()

            try:
                loop.call_soon_threadsafe(attach)
            except RuntimeError:  # closed since the check: the run is over
                attached.set()
            deadline = time.monotonic() + 5.0
            while not attached.wait(0.01) and loop.is_running() and time.monotonic() < deadline:
                pass
            if loop.is_running():
                return
            # The loop stopped (or never took the listener): the run is over, replay it here.
        if self._claim_listener():
            self.run.add_listener(self._on_event)
            if running_loop() is None:  # a replay outside any loop: nobody will tick, draw now
                self._ticker.flush_now(final=True)

    def _claim_listener(self) -> bool:
        """True once: the listener must be added exactly once, whichever thread gets there."""
        with self._attach_lock:
            first, self._attached = not self._attached, True
            return first

    # -- listener: buffers only ---------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        try:
            self._buffer(event)
        except Exception:  # the run calls this: a view bug must not fail a model or the run
            log.exception("ensemble view: could not buffer %s", event.kind)

    def _buffer(self, event: Event) -> None:
        match event:
            case TokenReceived():
                self._pane(event.model).on_token(event)
                self.plot.add(event)
            case ModelStarted():
                self._pane(event.model).on_started(event)
            case ModelEnded():
                self._pane(event.model).on_ended(event)
            case SynthesisReady():
                self.synthesis.on_synthesis(event.synthesis)
            case SpanRetried():
                self.synthesis.on_retried(event)
            case RunStarted():
                self._status, self._header_dirty = "running", True
            case PlanChosen():
                self._plan, self._header_dirty = f"plan: {', '.join(event.members)} ({event.reason})", True
            case RunFinished():
                self._status, self._duration, self._cost = event.status, event.duration, event.cost
                for pane in self.panes.values():
                    pane.on_run_finished()
                self._header_dirty = True
                self._ticker.flush_now(final=True)
                return
        self._ticker.poke()

    def _pane(self, model: str) -> ModelPane:
        pane = self.panes.get(model)
        if pane is None:  # not in the run's specs: give it a pane on the next flush
            pane = self.panes[model] = ModelPane(self.run, model, self._wake)
        return pane

    # -- any thread -------------------------------------------------------------------------
    def _wake(self) -> None:
        if not self._ticker.poke_threadsafe() and self.run.done:
            self._ticker.flush_now(final=True)

    # -- the tick -----------------------------------------------------------------------------
    def _flush(self, final: bool) -> tuple[int, bool]:
        sent = 0
        boxes = [p.box for p in self.panes.values()]
        if len(boxes) != len(self._pane_grid.children):
            self._pane_grid.children = boxes
            sent += 1
        for pane in self.panes.values():
            sent += pane.flush()
        more = False
        if self.plot.dirty:
            now = time.monotonic()
            if not self._last_plot:  # the panes come first: the plot waits a whole interval
                self._last_plot = now
            if final or now - self._last_plot >= self.plot_interval:
                sent += self.plot.flush()
                self._last_plot = now
            else:
                more = True
        synth_sent, waiting = self.synthesis.flush()
        sent += synth_sent
        if self._header_dirty:
            self.header.value = self._header_html()
            self._header_dirty = False
            sent += 1
        return sent, more or waiting

    def _header_html(self) -> str:
        run = self.run
        parts = [f"<b>ensemble</b> · {html.escape(self._status)}", f"{len(run.specs)} models"]
        if self._duration is not None:
            parts.append(f"{self._duration:.2f} s")
        if self._cost is not None:
            parts.append(format_cost(self._cost))
        prompt = run.prompt if len(run.prompt) <= 160 else run.prompt[:157] + "…"
        plan = f'<div class="enb-plan" style="color:#777;font-size:11px">{html.escape(self._plan)}</div>'
        return (f'<div class="enb-header" data-status="{html.escape(self._status)}">{" · ".join(parts)}'
                f'<div class="enb-prompt" style="color:#555">{html.escape(prompt)}</div>'
                f"{plan if self._plan else ''}</div>")
