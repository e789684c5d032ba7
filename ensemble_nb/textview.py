"""A text renderer of run events, for terminals, scripts and ``--block`` runs.

Tokens stream prefixed by their model (a new prefix whenever the model changes), then a
summary: each model's answer with its entropy, and the synthesis with span confidences.
"""

from __future__ import annotations

import sys
from typing import TextIO

from ensemble_nb.core.entropy import to_bits
from ensemble_nb.core.events import (
    Event,
    ModelEnded,
    ModelFailed,
    ModelFinished,
    ModelTimedOut,
    PlanChosen,
    RetrievalDone,
    RunFinished,
    SpanRetried,
    TokenReceived,
)
from ensemble_nb.core.result import RunResult

_CHUNK = 32


class TextRenderer:
    """Feed it events (``renderer(event)``); it writes as they come."""

    def __init__(self, out: TextIO | None = None, *, stream_tokens: bool = True) -> None:
        self.out = out or sys.stdout
        self.stream_tokens = stream_tokens
        self.result: RunResult | None = None
        self._last_model: str | None = None
        self._pending: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        if self.result is None:
            self.result = RunResult(run_id=event.run_id)
        self.result.apply(event)
        if isinstance(event, TokenReceived) and self.stream_tokens:
            pending = self._pending.get(event.model, "") + event.text.replace("\n", " ")
            # Members stream at once; whole chunks keep the interleaved lines readable.
            if event.model == self._last_model or len(pending) >= _CHUNK:
                self._flush(event.model, pending)
            else:
                self._pending[event.model] = pending
        elif isinstance(event, RetrievalDone):
            self._line(f"retrieved {len(event.passages)} passages for: {event.query}")
        elif isinstance(event, PlanChosen) and self.result.models.keys() - set(event.members):
            self._line(f"plan: {', '.join(event.members)} ({event.reason})")
        elif isinstance(event, ModelEnded):
            if event.model in self._pending:
                self._flush(event.model, self._pending[event.model])
            if isinstance(event, ModelFailed | ModelTimedOut):
                self._newline()
                what = event.error if isinstance(event, ModelFailed) else f"no answer within {event.timeout:g} s"
                self._line(f"[{event.model}] {event.kind.replace('model_', '')}: {what}")
        elif isinstance(event, SpanRetried):
            verdict = "kept" if event.accepted else "discarded"
            self._line(f"retried span {event.index} with {event.new.model}: {event.new.text.strip()!r} "
                       f"(confidence {event.old.confidence:.2f} -> {event.new.confidence:.2f}, {verdict})")
        elif isinstance(event, RunFinished):
            self._newline()
            self._write(summary(self.result))
        self.out.flush()

    def _flush(self, model: str, text: str) -> None:
        """Write ``text`` (which includes what was pending) under the model's prefix."""
        self._pending.pop(model, None)
        if model != self._last_model:
            self._write(("\n" if self._last_model else "") + f"[{model}] ")
            self._last_model = model
        self._write(text)

    def _write(self, text: str) -> None:
        self.out.write(text)

    def _newline(self) -> None:
        if self._last_model is not None:
            self._write("\n")
            self._last_model = None

    def _line(self, text: str) -> None:
        self._newline()
        self._write(text + "\n")


def _entropy(value: float | None) -> str:
    return "n/a (no token probabilities)" if value is None else f"{value:.3f} nats ({to_bits(value):.3f} bits)"


def summary(result: RunResult) -> str:
    """Each model's answer with its entropy and timings, then the synthesis."""
    lines = ["", "== answers =="]
    for model, r in result.models.items():
        timing = []
        if r.ttft is not None:
            timing.append(f"first token {r.ttft:.2f} s")
        if r.tokens_per_second:
            timing.append(f"{r.tokens_per_second:.1f} tok/s")
        timing.append(f"{len(r.tokens)} tokens")
        if r.cost:
            timing.append(f"${r.cost:.6f}")
        lines.append(f"{model} [{r.status}; {', '.join(timing)}]")
        lines.append(f"  answer: {r.text.strip()!r}")
        lines.append(f"  mean entropy: {_entropy(r.mean_entropy)}; max: {_entropy(r.max_entropy)}")
        if r.error:
            lines.append(f"  error: {r.error}")
        if isinstance(r.end, ModelFinished):
            lines.extend(f"  note: {note}" for note in r.end.notes)
    syn = result.synthesis
    lines.append("== synthesis ==")
    if syn is None:
        lines.append("  (none: the run ended before synthesis)")
    else:
        who = f" from {syn.chosen}" if syn.chosen else ""
        lines.append(f"{syn.text.strip()!r}{who} (confidence {syn.confidence:.2f}, {syn.strategy})")
        for i, span in enumerate(syn.spans):
            lines.append(f"  span {i}: {span.text.strip()!r} [{span.model}, confidence {span.confidence:.2f}]")
    lines.append(f"run {result.status} in {result.duration or 0:.2f} s")
    return "\n".join(lines) + "\n"
