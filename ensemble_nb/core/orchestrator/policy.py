"""Choosing the ensemble for one prompt: a primary model and the members that fit the budget.

The rule the default policy keeps: with b = ``options.budget`` (0.25 = +25 %), the ensemble's
expected cost is at most (1 + b) × the primary's single-call cost, and its expected time at most
(1 + b) × the primary's single-call time. Members run in parallel, so time is the slowest
member's while cost is the sum: cheap members of about the primary's speed are what fit. Local
(llama.cpp) models share this machine's cores, so their times add up instead.

A policy is any object with a ``name`` and ``plan(PlanContext) -> Plan``; :class:`BudgetPolicy`
is meant to be configured (rules, weights, deadlines, hedging) or subclassed (override
``classify``, ``primary_score`` or ``member_order``). Planning calls no model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ensemble_nb.core.errors import UserError
from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.orchestrator.budget import Estimate, estimate, prompt_tokens
from ensemble_nb.core.orchestrator.deadlines import DeadlineRules, Deadlines, HedgeLimiter, hedge_spec
from ensemble_nb.core.orchestrator.plans import HedgePlan, MemberPlan, Plan, PlanContext
from ensemble_nb.core.orchestrator.tasks import DEFAULT_RULES, Classifier, TaskProfile, TaskRule, classify
from ensemble_nb.core.registry import ModelSpec

_EPS = 1e-12
_NO_DEADLINES = Deadlines()


@runtime_checkable
class Policy(Protocol):
    """Decides who runs. ``plan`` must not call a model (it is also how ``%ensemble plan`` explains)."""

    name: str

    def plan(self, ctx: PlanContext) -> Plan: ...


@dataclass
class BudgetPolicy:
    """The default: best-fitting primary, then members while the +b cost and time budget holds.

    ``max_unreliability``: a measured model whose recent calls spiked (first token over the
    tracker's spike factor × its median), failed or timed out more often than this is not added.
    ``quorum``: extra members that must finish with the primary before synthesis (None: half of
    them, rounded up); the rest are cut at (1 + b) × the primary's time anyway.
    ``hedge``: the shared token bucket capping hedged requests (None: never hedge).
    """

    name: str = "budget"
    rules: Sequence[TaskRule] = DEFAULT_RULES
    classifier: Classifier | None = None
    deadline_rules: DeadlineRules = field(default_factory=DeadlineRules)
    hedge: HedgeLimiter | None = field(default_factory=HedgeLimiter)
    max_members: int = 4
    max_unreliability: float = 0.1
    task_weight: float = 0.5
    unreliability_weight: float = 1.0
    quorum: int | None = None
    lower_effort: bool = True
    local_share_cpu: bool = True
    min_samples: int = 5

    # -- the parts meant to be overridden --------------------------------------------------
    def classify(self, ctx: PlanContext) -> TaskProfile:
        return classify(ctx.prompt, self.rules, self.classifier)

    def primary_score(self, spec: ModelSpec, est: Estimate, task: TaskProfile) -> float:
        penalty = self.unreliability_weight * est.unreliability if est.measured else 0.0
        return spec.quality + self.task_weight * task.weight(spec.tags) - penalty

    def member_order(self, spec: ModelSpec, est: Estimate, primary: Estimate, task: TaskProfile,
                     ) -> tuple[float, ...]:
        # Close to the primary's speed first (a slower member is the one that would gate the
        # answer; a much faster one is fine but adds little), then task fit, then price.
        dissimilar = abs(math.log(max(est.ttft, _EPS) / max(primary.ttft, _EPS)))
        slower = max(0.0, math.log(max(est.seconds, _EPS) / max(primary.seconds, _EPS)))
        return (round(dissimilar + 2.0 * slower, 1), -task.weight(spec.tags), est.cost)

    # -- planning --------------------------------------------------------------------------
    def plan(self, ctx: PlanContext) -> Plan:
        task = self.classify(ctx)
        n_in = prompt_tokens(ctx.prompt, ctx.context, ctx.system)
        n_out = ctx.max_tokens
        notes = [f"task: {task.describe()}"]
        skipped: list[tuple[str, str]] = []
        fits = [s for s in ctx.candidates if n_in + n_out <= s.context_length]
        for s in ctx.candidates:
            if s not in fits:
                skipped.append((s.id, f"context of {s.context_length} tokens < {n_in} in + {n_out} out"))
        pool = fits or list(ctx.candidates)
        ests = {s.id: self._estimate(ctx, s, n_in, n_out, s.reasoning_effort) for s in pool}
        order = {s.id: i for i, s in enumerate(pool)}
        primary = max(pool, key=lambda s: (self.primary_score(s, ests[s.id], task), -order[s.id]))
        p_est = ests[primary.id]
        notes.append(f"primary {primary.id}: best score for this task "
                     f"(quality {primary.quality:.2f}, task fit {task.weight(primary.tags):.2f}"
                     + (f", unreliability {p_est.unreliability:.0%}" if p_est.measured else "") + ")")
        b = ctx.budget
        cost_cap, time_cap = (1 + b) * p_est.cost, (1 + b) * p_est.seconds
        hedge = self._hedge_plan(ctx, primary)
        # A hedge re-sends the prompt about `rate` of the time; the loser is cut at the first token.
        hedge_cost = self.hedge.rate * primary.cost(n_in, 0) if hedge and self.hedge else 0.0
        members = [MemberPlan(primary.id, "primary", p_est, self._deadlines(ctx, primary),
                              primary.reasoning_effort, "the answer's primary source")]
        cost = p_est.cost + hedge_cost
        slowest = p_est.seconds
        local_sum = p_est.seconds if self._is_local(primary) else 0.0
        others = [s for s in pool if s.id != primary.id]
        tried = []
        for s in others:
            effort = s.reasoning_efforts[0] if self.lower_effort and s.reasoning_efforts else s.reasoning_effort
            tried.append((s, self._estimate(ctx, s, n_in, n_out, effort)))
        tried.sort(key=lambda se: self.member_order(se[0], se[1], p_est, task))
        for s, est in tried:
            new_local = local_sum + est.seconds if self._is_local(s) else local_sum
            new_time = max(slowest, est.seconds, new_local)
            why = ""
            if len(members) >= self.max_members:
                why = f"the ensemble is full ({self.max_members} models)"
            elif est.measured and est.unreliability > self.max_unreliability:
                why = (f"{est.unreliability:.0%} of its last {est.calls} calls spiked, failed or timed out "
                       f"(limit {self.max_unreliability:.0%})")
            elif cost + est.cost > cost_cap + _EPS:
                why = f"cost ${cost + est.cost:.6f} would pass {1 + b:.2f} × ${p_est.cost:.6f}"
            elif new_time > time_cap + _EPS:
                shared = " (local models share the CPU)" if new_local > max(slowest, est.seconds) else ""
                why = f"time {new_time:.2f} s would pass {1 + b:.2f} × {p_est.seconds:.2f} s{shared}"
            if why:
                skipped.append((s.id, why))
                continue
            cost, slowest, local_sum = cost + est.cost, max(slowest, est.seconds), new_local
            lower = f", reasoning '{est.reasoning_effort}'" if est.reasoning_effort != s.reasoning_effort else ""
            members.append(MemberPlan(s.id, "member", est, self._deadlines(ctx, s), est.reasoning_effort,
                                      f"first token {est.ttft:.2f} s vs {p_est.ttft:.2f} s, "
                                      f"${est.cost:.6f}{lower}"))
        extras = len(members) - 1
        quorum = min(extras, self.quorum if self.quorum is not None else math.ceil(extras / 2))
        expected_time = max(slowest, local_sum)
        notes.append(f"budget +{b:.0%}: cost ${cost:.6f} ≤ ${cost_cap:.6f}, "
                     f"time {expected_time:.2f} s ≤ {time_cap:.2f} s")
        if extras:
            notes.append(f"synthesis when the primary and {quorum} of {extras} other members have finished, "
                         f"or at {1 + b:.2f} × the primary's time; later members are cut")
        return Plan(policy=self.name, primary=primary.id, members=tuple(members), expected_cost=cost,
                    expected_seconds=expected_time, single_cost=p_est.cost, single_seconds=p_est.seconds,
                    budget=b, task=task, notes=tuple(notes), skipped=tuple(skipped), supervised=True,
                    quorum=quorum, hedge=hedge, explicit=ctx.explicit)

    def _estimate(self, ctx: PlanContext, spec: ModelSpec, n_in: int, n_out: int, effort: str | None) -> Estimate:
        return estimate(spec, n_in, n_out, ctx.stats(spec), effort=effort, min_samples=self.min_samples)

    def _deadlines(self, ctx: PlanContext, spec: ModelSpec) -> Deadlines:
        return self.deadline_rules.deadlines(spec, ctx.stats(spec))

    def _is_local(self, spec: ModelSpec) -> bool:
        return self.local_share_cpu and spec.provider == "llama_cpp"

    def _hedge_plan(self, ctx: PlanContext, primary: ModelSpec) -> HedgePlan | None:
        if self.hedge is None or not primary.hedge_endpoints:
            return None
        options = [hedge_spec(primary, ep) for ep in primary.hedge_endpoints]
        target = min(options, key=lambda s: self._estimate(ctx, s, 1, 1, None).ttft)
        after = self.deadline_rules.hedge_delay(primary, ctx.stats(primary))
        return HedgePlan(model=primary.id, spec=target, after=after, limiter=self.hedge,
                         deadlines=self._deadlines(ctx, target))


@dataclass
class AllPolicy:
    """Every candidate runs to its end, as listed; the first is the primary. No deadlines but the
    run's own timeout, no hedge, no quorum: the behaviour for an explicit model list."""

    name: str = "all"
    local_share_cpu: bool = True

    def plan(self, ctx: PlanContext) -> Plan:
        n_in = prompt_tokens(ctx.prompt, ctx.context, ctx.system)
        ests = [estimate(s, n_in, ctx.max_tokens, ctx.stats(s), effort=s.reasoning_effort)
                for s in ctx.candidates]
        local = sum(e.seconds for s, e in zip(ctx.candidates, ests, strict=True)
                    if self.local_share_cpu and s.provider == "llama_cpp")
        members = tuple(MemberPlan(e.model, "primary" if i == 0 else "member", e, _NO_DEADLINES,
                                   s.reasoning_effort, "listed")
                        for i, (s, e) in enumerate(zip(ctx.candidates, ests, strict=True)))
        why = ("every requested model runs (pass orchestrate=True, or name a policy, to let the budget "
               "policy choose among them)")
        return Plan(policy=self.name, primary=ests[0].model, members=members,
                    expected_cost=sum(e.cost for e in ests), expected_seconds=max(max(e.seconds for e in ests), local),
                    single_cost=ests[0].cost, single_seconds=ests[0].seconds, budget=ctx.budget,
                    task=TaskProfile({}), notes=(why,), skipped=(), supervised=False, explicit=ctx.explicit)



_POLICIES: dict[str, Policy] = {"budget": BudgetPolicy(), "all": AllPolicy()}


def register_policy(policy: Policy, name: str | None = None) -> None:
    """Make ``policy`` available as ``options.policy = name`` (default: its ``name``)."""
    if not isinstance(policy, Policy):
        raise TypeError(f"{policy!r} is not a policy: it needs a name and a plan(ctx) method")
    _POLICIES[name or policy.name] = policy


def get_policy(name: str) -> Policy:
    try:
        return _POLICIES[name]
    except KeyError:
        raise UserError(f"unknown policy '{name}': use one of {', '.join(sorted(_POLICIES))} "
                        "or register one with register_policy") from None


def policy_for(options: RunOptions) -> Policy:
    """The policy a run with ``options`` uses.

    ``orchestrate=False`` runs every model (policy 'all'); ``True`` uses ``options.policy``.
    Left at None, a run orchestrates only when a policy is named: by default every requested
    model runs, so the embedded pair (which shares one CPU, and so never fits a +25 % time
    budget together) is still an ensemble.
    """
    orchestrate = options.orchestrate
    if orchestrate is None:
        orchestrate = "policy" in options.model_fields_set
    return get_policy(options.policy) if orchestrate else _POLICIES["all"]
