"""Tail control in real runs with scripted delays: deadlines, hedging, quorum, fallback."""

from __future__ import annotations

import asyncio

import pytest

from ensemble_nb.core.events import ModelCancelled, ModelFinished, ModelStarted, ModelTimedOut, TokenReceived
from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.orchestrator import BudgetPolicy, DeadlineRules, HedgeLimiter, LatencyTracker
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text
from ensemble_nb.core.registry import HedgeEndpoint, ModelSpec
from ensemble_nb.core.result import RunResult
from ensemble_nb.core.run import EnsembleRun

FAST_RULES = DeadlineRules(first_token_floor=0.1, stall_floor=0.1, min_samples=20, hedge_floor=0.01)


def spec(model: str, *, quality: float = 0.3, price: float = 0.0, ttft: float = 0.02, **kw: object) -> ModelSpec:
    return ModelSpec(id=model, provider="scripted", quality=quality, price_in=price, price_out=4 * price,
                     typical_ttft=ttft, typical_tps=500.0, **kw)


def warm(tracker: LatencyTracker, model: str, endpoint: str = "default", ttft: float = 0.02, n: int = 30) -> None:
    """Measured history: a steady first token near ``ttft`` and 10 ms gaps."""
    for i in range(n):
        tracker.record(model, endpoint, ttft=ttft * (1 + 0.01 * (i % 5)), duration=ttft + 0.1, n_tokens=10,
                       outcome="ok", gaps=[0.01] * 9)


def make_run(specs: list[ModelSpec], providers: dict[str, ScriptedProvider], tracker: LatencyTracker,
             policy: BudgetPolicy | None = None, **options: object) -> EnsembleRun:
    opts = RunOptions(models=tuple(s.id for s in specs), orchestrate=True, **options)
    policy = policy or BudgetPolicy(deadline_rules=FAST_RULES, hedge=None)
    return EnsembleRun("Who wrote Hamlet?", opts, specs, lambda s: providers[s.id], policy=policy,
                       tracker=tracker)


def ends(result: RunResult) -> dict[str, object]:
    return {r.model: r.end for r in result.models.values() if r.end is not None}


@pytest.fixture
def tracker() -> LatencyTracker:
    return LatencyTracker(persist=False)


async def test_first_token_deadline_fires_and_another_member_answers(tracker: LatencyTracker) -> None:
    warm(tracker, "a")
    providers = {"a": ScriptedProvider("a", steps_from_text("Shakespeare."), first_token_delay=2.0),
                 "b": ScriptedProvider("b", steps_from_text("William Shakespeare wrote it."), token_delay=0.01)}
    run = make_run([spec("a", quality=0.9), spec("b")], providers, tracker, timeout=5.0)
    result = await asyncio.wait_for(run.wait(), 2.0)
    end = ends(result)["a"]
    assert isinstance(end, ModelTimedOut) and end.text == "" and end.timeout == pytest.approx(0.1)
    assert end.duration < 1.0  # the provider would have taken 2 s
    assert result.synthesis is not None and result.synthesis.chosen == "b"
    assert any("b is the answer's source" in n for n in result.synthesis.notes)
    assert result.status == "partial"
    # The timeout is a sample at the time waited, flagged: a slow provider must not look fast.
    assert tracker.stats("a").timeout_rate > 0 and max(tracker.stats("a").ttft_values) >= 0.1


async def test_stall_deadline_fires_and_keeps_the_partial_text(tracker: LatencyTracker) -> None:
    warm(tracker, "a")
    stalls = [*steps_from_text("one two three"), Step(" four", delay=2.0)]
    providers = {"a": ScriptedProvider("a", stalls, token_delay=0.01),
                 "b": ScriptedProvider("b", steps_from_text("fine answer."), token_delay=0.01)}
    result = await make_run([spec("a", quality=0.9), spec("b")], providers, tracker)
    end = ends(result)["a"]
    assert isinstance(end, ModelTimedOut) and end.timeout == pytest.approx(0.1)
    assert end.text == "one two three" == result.models["a"].text
    assert end.duration < 1.5
    assert max(tracker.stats("a").gap_values) >= 0.1  # the stall itself is measured as a gap


async def test_hedge_fires_and_the_slow_original_is_cancelled(tracker: LatencyTracker) -> None:
    warm(tracker, "a")
    a = spec("a", quality=0.9, hedge_endpoints=(HedgeEndpoint(name="alt"),))
    providers = {"a": ScriptedProvider("a", steps_from_text("late answer."), first_token_delay=1.0),
                 "a@alt": ScriptedProvider("a@alt", steps_from_text("hedged answer."), token_delay=0.01)}
    limiter = HedgeLimiter(rate=0.05, burst=1.0)
    rules = DeadlineRules(first_token_floor=0.5, min_samples=20, hedge_floor=0.01)
    run = make_run([a], providers, tracker, BudgetPolicy(deadline_rules=rules, hedge=limiter))
    p95 = tracker.stats("a").ttft_at(95)
    result = await run
    assert run.plan is not None and run.plan.hedge is not None
    assert p95 is not None and run.plan.hedge.after == pytest.approx(p95)
    cancelled = ends(result)["a"]
    assert isinstance(cancelled, ModelCancelled) and cancelled.reason == "hedge"
    assert result.models["a"].status == "cancelled"  # kept in the result, shown as cut
    assert isinstance(ends(result)["a@alt"], ModelFinished)
    assert result.text == "hedged answer." and result.status == "ok"
    assert limiter.hedges == 1 and tracker.stats("a", "alt").calls == 1
    assert result.duration is not None and result.duration < 0.9  # the original needed 1 s


async def test_hedge_loses_when_the_original_answers_first(tracker: LatencyTracker) -> None:
    warm(tracker, "a")
    a = spec("a", quality=0.9, hedge_endpoints=(HedgeEndpoint(name="alt"),))
    providers = {"a": ScriptedProvider("a", steps_from_text("original answer here."), first_token_delay=0.1,
                                       token_delay=0.01),
                 "a@alt": ScriptedProvider("a@alt", steps_from_text("hedged."), first_token_delay=1.0)}
    policy = BudgetPolicy(deadline_rules=DeadlineRules(first_token_floor=0.5, min_samples=20),
                          hedge=HedgeLimiter())
    result = await make_run([a], providers, tracker, policy)
    hedge_end = ends(result)["a@alt"]
    assert isinstance(hedge_end, ModelCancelled) and hedge_end.reason == "hedge"
    assert result.text == "original answer here."


async def test_the_hedge_cap_holds(tracker: LatencyTracker) -> None:
    limiter = HedgeLimiter(rate=0.05, burst=1.0)
    hedged = 0
    for _ in range(400):
        limiter.note_call()
        hedged += limiter.try_acquire()  # every call would like a hedge
    assert hedged == limiter.hedges <= 1 + 0.05 * 400
    assert hedged >= 0.05 * 400 - 1
    # In runs: a bucket that refills at 0 allows its one burst hedge, then none.
    warm(tracker, "a")
    a = spec("a", quality=0.9, hedge_endpoints=(HedgeEndpoint(name="alt"),))
    policy = BudgetPolicy(deadline_rules=DeadlineRules(first_token_floor=0.5, min_samples=20),
                          hedge=HedgeLimiter(rate=0.0, burst=1.0))
    started: list[str] = []
    notes: list[str] = []
    for _ in range(3):
        providers = {"a": ScriptedProvider("a", steps_from_text("ok."), first_token_delay=0.3),
                     "a@alt": ScriptedProvider("a@alt", steps_from_text("ok."), first_token_delay=0.01)}
        result = await make_run([a], providers, tracker, policy)
        started += [e.model for e in result.events if isinstance(e, ModelStarted)]
        notes += result.synthesis.notes if result.synthesis else ()
    assert started.count("a@alt") == 1
    assert sum("hedge budget" in n for n in notes) == 2


async def test_quorum_cancels_late_members_and_keeps_their_text(tracker: LatencyTracker) -> None:
    providers = {
        "p": ScriptedProvider("p", steps_from_text("Shakespeare wrote Hamlet."), token_delay=0.01),
        "b": ScriptedProvider("b", steps_from_text("It was Shakespeare."), token_delay=0.01),
        "c": ScriptedProvider("c", steps_from_text(" ".join(["word"] * 40)), token_delay=0.02),
    }
    policy = BudgetPolicy(deadline_rules=FAST_RULES, hedge=None, quorum=1)
    result = await make_run([spec("p", quality=0.9), spec("b"), spec("c")], providers, tracker, policy)
    late = ends(result)["c"]
    assert isinstance(late, ModelCancelled) and late.reason == "quorum"
    assert late.text and late.text == result.models["c"].text and late.n_tokens < 40
    assert result.models["c"].status == "cancelled"
    assert result.status == "ok"  # a cut by design is not a failure
    assert result.synthesis is not None and any("cut c" in n for n in result.synthesis.notes)


async def test_quorum_deadline_cuts_at_the_time_budget(tracker: LatencyTracker) -> None:
    providers = {
        "p": ScriptedProvider("p", steps_from_text("one two three four five six seven eight nine ten"),
                              token_delay=0.02),
        "c": ScriptedProvider("c", steps_from_text(" ".join(["slow"] * 40)), token_delay=0.03),
    }
    policy = BudgetPolicy(deadline_rules=FAST_RULES, hedge=None, quorum=1)
    result = await make_run([spec("p", quality=0.9), spec("c")], providers, tracker, policy)
    p_end, c_end = ends(result)["p"], ends(result)["c"]
    assert isinstance(p_end, ModelFinished) and isinstance(c_end, ModelCancelled) and c_end.reason == "quorum"
    # Never before the deadline; after it by no more than the loop's delay in noticing.
    assert 1.25 * p_end.t - 0.005 <= c_end.t <= 1.25 * p_end.t + 0.1
    first = min(e.t for e in result.events if isinstance(e, TokenReceived))
    assert first < 0.1  # the first text on screen comes from whoever streams first


async def test_cancelling_the_primary_by_hand_falls_back(tracker: LatencyTracker) -> None:
    providers = {"p": ScriptedProvider("p", steps_from_text(" ".join(["w"] * 50)), token_delay=0.02),
                 "b": ScriptedProvider("b", steps_from_text("backup answer."), token_delay=0.01)}
    run = make_run([spec("p", quality=0.9), spec("b")], providers, tracker).start()
    async for event in run.events():
        if isinstance(event, TokenReceived) and event.model == "p" and event.index == 2:
            run.cancel_model("p")
    result = await run
    end = ends(result)["p"]
    assert isinstance(end, ModelCancelled) and end.reason == "user" and end.text
    assert result.synthesis is not None and result.synthesis.chosen == "b"
    # The cut member's prompt is billed too, and counted.
    assert result.models["p"].usage.prompt_tokens > 0


async def test_cancelling_by_hand_during_a_hedged_request(tracker: LatencyTracker) -> None:
    """While both copies of the primary are in flight, the user cancels the original: the hedge
    copy goes on and answers, and nothing is left running."""
    warm(tracker, "a")
    a = spec("a", quality=0.9, hedge_endpoints=(HedgeEndpoint(name="alt"),))
    providers = {"a": ScriptedProvider("a", steps_from_text("late answer."), first_token_delay=1.0),
                 "a@alt": ScriptedProvider("a@alt", steps_from_text("hedged answer."), first_token_delay=0.3,
                                           token_delay=0.01)}
    policy = BudgetPolicy(deadline_rules=DeadlineRules(first_token_floor=2.0, min_samples=20, hedge_floor=0.01),
                          hedge=HedgeLimiter(rate=0.05, burst=1.0))
    run = make_run([a], providers, tracker, policy).start()
    async for event in run.events():
        if isinstance(event, ModelStarted) and event.model == "a@alt":  # the hedge has fired
            run.cancel_model("a")
            run.cancel_model("a")  # twice: still one end event
    result = await run
    original = ends(result)["a"]
    assert isinstance(original, ModelCancelled) and original.reason == "user"
    assert sum(isinstance(e, ModelCancelled) and e.model == "a" for e in result.events) == 1
    assert isinstance(ends(result)["a@alt"], ModelFinished)
    assert result.text == "hedged answer."
    assert all(p.closed_streams == len(p.requests) for p in providers.values())
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()
