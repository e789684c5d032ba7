"""The result of a run, folded from its events (the same events every view consumes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ensemble_nb.core.entropy import aggregate
from ensemble_nb.core.events import (
    Event,
    ModelCancelled,
    ModelEnded,
    ModelFailed,
    ModelFinished,
    ModelStarted,
    ModelTimedOut,
    Passage,
    PlanChosen,
    RetrievalDone,
    RunFinished,
    RunStarted,
    SpanRetried,
    Synthesis,
    SynthesisReady,
    TokenReceived,
)
from ensemble_nb.core.tokens import Usage

ModelStatus = Literal["pending", "streaming", "finished", "failed", "cancelled", "timed_out"]

_END_STATUS: dict[type[ModelEnded], ModelStatus] = {
    ModelFinished: "finished",
    ModelFailed: "failed",
    ModelCancelled: "cancelled",
    ModelTimedOut: "timed_out",
}


@dataclass
class ModelResult:
    model: str
    status: ModelStatus = "pending"
    tokens: list[TokenReceived] = field(default_factory=list)
    ttft: float | None = None
    duration: float | None = None
    usage: Usage = field(default_factory=Usage)
    cost: float | None = None
    error: str | None = None
    end: ModelEnded | None = None

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def entropies(self) -> list[float | None]:
        return [t.entropy for t in self.tokens]

    @property
    def mean_entropy(self) -> float | None:
        return aggregate(self.entropies, "mean")

    @property
    def max_entropy(self) -> float | None:
        return aggregate(self.entropies, "max")

    @property
    def tokens_per_second(self) -> float | None:
        if self.duration is None or self.ttft is None or len(self.tokens) < 2:
            return None
        streaming = self.duration - self.ttft
        return (len(self.tokens) - 1) / streaming if streaming > 0 else None


@dataclass
class RunResult:
    run_id: str
    prompt: str = ""
    status: str = "running"
    models: dict[str, ModelResult] = field(default_factory=dict)
    passages: tuple[Passage, ...] = ()
    plan: PlanChosen | None = None
    synthesis: Synthesis | None = None
    retries: list[SpanRetried] = field(default_factory=list)
    duration: float | None = None
    cost: float | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The synthesized answer ("" until synthesis is ready)."""
        return self.synthesis.text if self.synthesis else ""

    def apply(self, event: Event) -> None:
        """Fold one event into the result."""
        self.events.append(event)
        match event:
            case RunStarted():
                self.prompt = event.prompt
                for m in event.models:
                    self.models.setdefault(m, ModelResult(m))
            case RetrievalDone():
                self.passages = event.passages
            case PlanChosen():
                self.plan = event
                for m in event.members:
                    self.models.setdefault(m, ModelResult(m))
            case ModelStarted():
                self.models.setdefault(event.model, ModelResult(event.model)).status = "streaming"
            case TokenReceived():
                mr = self.models.setdefault(event.model, ModelResult(event.model))
                mr.tokens.append(event)
            case ModelEnded():
                mr = self.models.setdefault(event.model, ModelResult(event.model))
                mr.status = _END_STATUS[type(event)]
                mr.ttft, mr.duration, mr.usage, mr.cost = event.ttft, event.duration, event.usage, event.cost
                mr.error = event.error if isinstance(event, ModelFailed) else None
                mr.end = event
            case SynthesisReady():
                self.synthesis = event.synthesis
            case SpanRetried():
                self.retries.append(event)
                self.synthesis = event.synthesis
            case RunFinished():
                self.status, self.duration, self.cost = event.status, event.duration, event.cost

    def _repr_mimebundle_(self, include: object = None, exclude: object = None) -> dict[str, str]:
        """Text (the terminal summary) and static HTML (answers coloured by entropy, synthesis)."""
        # Imported here: the renderer is plain string building, but it lives with the views.
        from ensemble_nb.widgets.static_html import result_mimebundle

        return result_mimebundle(self)

    def __repr__(self) -> str:
        parts = ", ".join(f"{m}={r.status}" for m, r in self.models.items())
        return f"RunResult({self.status}: {parts}; answer={self.text!r})"
