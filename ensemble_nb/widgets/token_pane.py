"""One model's pane: its tokens streaming, coloured by entropy, its stats and its Cancel button.

``TokenPane`` is the anywidget the browser draws; ``ModelPane`` buffers the model's events
(listener side, on the run's loop) and flushes them into the widget in one comm message per
tick (tick side, same loop). The Cancel button's callback may run on any thread: it only
hands the command to the run and asks for a tick.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as w
import traitlets as t

from ensemble_nb.core.events import ModelCancelled, ModelEnded, ModelStarted, TokenReceived
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.widgets.payload import Payload, stats_payload, token_payload

STATIC = Path(__file__).parent / "static"


class TokenPane(anywidget.AnyWidget):
    _esm = STATIC / "token_pane.js"
    _css = STATIC / "enb.css"

    uid = t.Unicode("").tag(sync=True)
    member = t.Unicode("").tag(sync=True)
    # The whole stream, for frontends that connect later (ipywidgets builds them from
    # get_state). It grows in place, which traitlets does not notice, so the list is never
    # re-sent as it grows: running frontends get only the deltas carried by ``chunk``.
    tokens = t.List(t.Dict()).tag(sync=True)
    chunk = t.Dict().tag(sync=True)
    status = t.Unicode("pending").tag(sync=True)
    stats = t.Dict().tag(sync=True)

    def __init__(self, member: str, on_resync: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(member=member, uid=uuid.uuid4().hex, **kwargs)
        self.resync_requested = False
        self._on_resync = on_resync
        self.on_msg(self._handle_custom)

    def _handle_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # A frontend saw a gap in the chunks; the next tick re-sends the whole stream.
        if isinstance(content, dict) and content.get("type") == "resync":
            self.resync_requested = True
            self._on_resync()

    def append(self, batch: list[Payload]) -> None:
        start = len(self.tokens)
        self.tokens.extend(batch)
        self.chunk = {"start": start, "tokens": batch}

    def resend_all(self) -> None:
        self.resync_requested = False
        self.chunk = {"start": 0, "tokens": list(self.tokens), "reset": True}


class ModelPane:
    def __init__(self, run: EnsembleRun, model: str, wake: Callable[[], None]) -> None:
        self.run = run
        self.model = model
        self._wake = wake
        self.widget = TokenPane(model, on_resync=wake)
        self.cancel_button = w.Button(description="Cancel", tooltip=f"Cancel {model}", icon="stop",
                                      layout=w.Layout(width="auto"))
        self.cancel_button.add_class("enb-cancel")
        self.cancel_button.on_click(self._on_cancel)
        self.box = w.VBox([self.widget, w.HBox([self.cancel_button])])
        self.box.add_class("enb-pane-box")
        self.cancel_requested = False
        self.pending: list[TokenReceived] = []
        # A ModelStatus (model_finished -> finished, ...), or "not run" when the plan left it out.
        self.status = "pending"
        self.n_tokens = 0
        self.started_t: float | None = None
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.end: ModelEnded | None = None
        self.dirty = False

    # -- listener side: buffer only ---------------------------------------------------------
    def on_started(self, ev: ModelStarted) -> None:
        self.status, self.started_t, self.dirty = "streaming", ev.t, True

    def on_token(self, ev: TokenReceived) -> None:
        self.pending.append(ev)
        self.n_tokens += 1
        if self.first_t is None:
            self.first_t = ev.t
        self.last_t = ev.t
        self.dirty = True

    def on_ended(self, ev: ModelEnded) -> None:
        self.end, self.status, self.dirty = ev, ev.kind.removeprefix("model_"), True

    def on_run_finished(self) -> None:
        if self.status == "pending":  # the plan never started it
            self.status, self.dirty = "not run", True

    # -- any thread -------------------------------------------------------------------------
    def _on_cancel(self, _button: Any) -> None:
        self.cancel_requested = True  # a plain flag: the tick reads it and redraws the button
        self.run.cancel_model(self.model)
        self._wake()

    # -- tick side --------------------------------------------------------------------------
    def live_stats(self) -> Payload:
        end = self.end
        if end is not None:
            tps = None
            if end.ttft is not None and self.n_tokens > 1 and end.duration > end.ttft:
                tps = (self.n_tokens - 1) / (end.duration - end.ttft)
            return stats_payload(self.status, self.n_tokens, end.ttft, tps, end.cost, end)
        ttft = None if self.first_t is None or self.started_t is None else self.first_t - self.started_t
        tps = None
        if self.first_t is not None and self.last_t is not None and self.last_t > self.first_t:
            tps = (self.n_tokens - 1) / (self.last_t - self.first_t)
        status = "cancelling" if self.cancel_requested and self.status == "streaming" else self.status
        return stats_payload(status, self.n_tokens, ttft, tps, None, None)

    def flush(self) -> int:
        """Push what was buffered; returns the comm messages it sent."""
        sent = 0
        if self.dirty or self.widget.resync_requested:
            batch = [token_payload(ev) for ev in self.pending]
            self.pending.clear()
            stats = self.live_stats()
            with self.widget.hold_sync():  # tokens, status and stats go as one message
                if self.widget.resync_requested:
                    self.widget.tokens.extend(batch)
                    self.widget.resend_all()
                elif batch:
                    self.widget.append(batch)
                self.widget.status = stats["status"]
                self.widget.stats = stats
            self.dirty = False
            sent += 1
        done = self.end is not None or self.status == "not run"
        label = ("Cancelled" if isinstance(self.end, ModelCancelled)
                 else "Cancelling…" if self.cancel_requested and not done else "Cancel")
        button = self.cancel_button
        if (button.disabled, button.description) != (done or self.cancel_requested, label):
            with button.hold_sync():
                button.disabled, button.description = done or self.cancel_requested, label
            sent += 1
        return sent
