"""The events a run produces. Their names are public API.

A run is an async producer of these immutable records; the widgets, the text renderer, the
CLI and the tests all consume the same stream. ``t`` is seconds since the run started.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from ensemble_nb.core.tokens import Alternative, EntropyBounds, EntropyKind, Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    run_id: str
    t: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the event's ``kind``."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved passage, its fused score and the retrievers that found it."""

    text: str
    source: str
    score: float
    retrievers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    prompt: str
    models: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrievalDone(Event):
    kind: ClassVar[str] = "retrieval_done"
    query: str
    passages: tuple[Passage, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanChosen(Event):
    kind: ClassVar[str] = "plan_chosen"
    primary: str
    members: tuple[str, ...]
    reason: str
    expected_cost: float | None = None
    expected_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStarted(Event):
    kind: ClassVar[str] = "model_started"
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenReceived(Event):
    kind: ClassVar[str] = "token_received"
    model: str
    index: int
    text: str
    logprob: float | None
    entropy: float | None
    entropy_kind: EntropyKind
    alternatives: tuple[Alternative, ...]
    bounds: EntropyBounds | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelEnded(Event):
    """Base of the four ways a model's stream ends. ``text`` is all it produced."""

    kind: ClassVar[str] = "model_ended"
    model: str
    text: str
    n_tokens: int
    usage: Usage
    ttft: float | None
    duration: float
    cost: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFinished(ModelEnded):
    """``notes`` are the provider's remarks for the user (e.g. "the model refused logprobs")."""

    kind: ClassVar[str] = "model_finished"
    finish_reason: str = "stop"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelFailed(ModelEnded):
    kind: ClassVar[str] = "model_failed"
    error: str
    error_kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCancelled(ModelEnded):
    kind: ClassVar[str] = "model_cancelled"
    reason: Literal["user", "run", "quorum", "hedge"] = "user"


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelTimedOut(ModelEnded):
    kind: ClassVar[str] = "model_timed_out"
    timeout: float


@dataclass(frozen=True, slots=True)
class Span:
    """A piece of the synthesized answer, where it came from and how sure we are of it."""

    text: str
    model: str
    confidence: float
    mean_entropy: float | None = None
    start_token: int = 0
    end_token: int = 0


@dataclass(frozen=True, slots=True)
class Synthesis:
    text: str
    spans: tuple[Span, ...]
    strategy: str
    confidence: float
    chosen: str | None = None
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthesisReady(Event):
    kind: ClassVar[str] = "synthesis_ready"
    synthesis: Synthesis


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanRetried(Event):
    kind: ClassVar[str] = "span_retried"
    index: int
    old: Span
    new: Span
    accepted: bool
    synthesis: Synthesis


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    status: Literal["ok", "partial", "failed", "cancelled"]
    duration: float
    cost: float | None = None


MODEL_END_EVENTS = (ModelFinished, ModelFailed, ModelCancelled, ModelTimedOut)
