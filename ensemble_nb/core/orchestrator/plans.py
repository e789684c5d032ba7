"""A plan: who runs, in which role, with which deadlines, and why — before any model is called."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.orchestrator.budget import Estimate
from ensemble_nb.core.orchestrator.deadlines import Deadlines, HedgeLimiter
from ensemble_nb.core.orchestrator.latency import LatencyStats, LatencyTracker, series_key
from ensemble_nb.core.orchestrator.tasks import TaskProfile
from ensemble_nb.core.registry import ModelSpec


@dataclass(frozen=True)
class PlanContext:
    """What a policy decides on. ``candidates`` keep the user's order; ``explicit`` says the user
    listed them (rather than taking the default models)."""

    prompt: str
    candidates: tuple[ModelSpec, ...]
    context: tuple[str, ...] = ()
    system: str | None = None
    max_tokens: int = 48
    budget: float = 0.25
    explicit: bool = False
    tracker: LatencyTracker | None = None

    @classmethod
    def for_run(cls, prompt: str, specs: Sequence[ModelSpec], options: RunOptions, *,
                context: tuple[str, ...] = (), tracker: LatencyTracker | None = None) -> PlanContext:
        return cls(prompt=prompt, candidates=tuple(specs), context=context, system=options.system,
                   max_tokens=options.max_tokens, budget=options.budget,
                   explicit="models" in options.model_fields_set, tracker=tracker)

    def stats(self, spec: ModelSpec) -> LatencyStats | None:
        return self.tracker.stats(*series_key(spec.id, spec.endpoint)) if self.tracker is not None else None


@dataclass(frozen=True)
class MemberPlan:
    model: str
    role: Literal["primary", "member"]
    estimate: Estimate
    deadlines: Deadlines
    reasoning_effort: str | None
    why: str


@dataclass(frozen=True)
class HedgePlan:
    """Race ``spec`` (the same model elsewhere) against ``model`` if its first token is ``after``
    seconds late and ``limiter`` allows."""

    model: str
    spec: ModelSpec
    after: float
    limiter: HedgeLimiter
    deadlines: Deadlines


@dataclass(frozen=True)
class Plan:
    """The decision. ``single_*`` are the primary's own expected cost and time, the baseline the
    budget is a fraction of; ``supervised`` turns on deadlines, hedging, quorum and fallback."""

    policy: str
    primary: str
    members: tuple[MemberPlan, ...]
    expected_cost: float
    expected_seconds: float
    single_cost: float
    single_seconds: float
    budget: float
    task: TaskProfile
    notes: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    supervised: bool = True
    quorum: int = 0
    hedge: HedgePlan | None = None
    explicit: bool = False

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(m.model for m in self.members)

    def member(self, model: str) -> MemberPlan | None:
        return next((m for m in self.members if m.model == model), None)

    @property
    def cost_ratio(self) -> float:
        return self.expected_cost / self.single_cost if self.single_cost > 0 else 1.0

    @property
    def time_ratio(self) -> float:
        return self.expected_seconds / self.single_seconds if self.single_seconds > 0 else 1.0

    @property
    def reason(self) -> str:
        """One paragraph for ``PlanChosen.reason``."""
        parts = list(self.notes)
        if self.skipped:
            parts.append("skipped " + "; ".join(f"{m}: {why}" for m, why in self.skipped))
        if self.hedge is not None:
            parts.append(f"hedge to {self.hedge.spec.id} if no first token by {self.hedge.after:.2f} s")
        return "; ".join(parts)

    def explain(self) -> str:
        """Several lines: the decision, each member's estimate and deadlines, and why."""
        lines = [f"policy {self.policy}: primary {self.primary}"
                 + (f" + {len(self.members) - 1} member(s)" if len(self.members) > 1 else ", alone"),
                 f"expected cost ${self.expected_cost:.6f} ({self.cost_ratio:.2f} × the primary alone, "
                 f"${self.single_cost:.6f}); expected time {self.expected_seconds:.2f} s "
                 f"({self.time_ratio:.2f} × {self.single_seconds:.2f} s)"]
        lines += [f"  why: {n}" for n in self.notes]
        for m in self.members:
            lines.append(f"  {m.role:<7} {m.estimate.describe()}")
            detail = [m.why, m.deadlines.describe()]
            if m.reasoning_effort:
                detail.append(f"reasoning '{m.reasoning_effort}'")
            lines.append(f"          {'; '.join(detail)}")
        for model, why in self.skipped:
            lines.append(f"  skipped {model}: {why}")
        if self.hedge is not None:
            lines.append(f"  hedge   {self.hedge.spec.id} if {self.hedge.model} has no first token by "
                         f"{self.hedge.after:.2f} s (bucket {self.hedge.limiter.available:.2f}, "
                         f"≈{self.hedge.limiter.rate:.0%} of calls)")
        return "\n".join(lines)
