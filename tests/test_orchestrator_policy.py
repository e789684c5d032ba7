"""Planning: budget, task rules, spiking providers avoided, explicit lists, plan() explains itself."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ensemble_nb.core import PlanChosen, UserError, prepare
from ensemble_nb.core.options import RunOptions, make_options
from ensemble_nb.core.orchestrator import (
    AllPolicy,
    BudgetPolicy,
    LatencyTracker,
    Plan,
    PlanContext,
    TaskRule,
    account,
    explain_plan,
    plan,
    policy_for,
    register_policy,
    set_default_tracker,
)
from ensemble_nb.core.orchestrator.policy import get_policy
from ensemble_nb.core.orchestrator.tasks import llm_classifier
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.run import EnsembleRun


@pytest.fixture(autouse=True)
def private_default_tracker() -> Iterator[None]:
    set_default_tracker(LatencyTracker(persist=False))  # runs made by prepare() record here
    yield
    set_default_tracker(None)


def spec(model: str, *, price: float = 0.0, ttft: float = 0.5, tps: float = 50.0, quality: float = 0.3,
         tags: tuple[str, ...] = (), provider: str = "scripted", **kw: object) -> ModelSpec:
    return ModelSpec(id=model, provider=provider, price_in=price, price_out=4 * price,
                     typical_ttft=ttft, typical_tps=tps, quality=quality, tags=tags, **kw)


def ctx(*specs: ModelSpec, prompt: str = "Who wrote Hamlet?", budget: float = 0.25,
        tracker: LatencyTracker | None = None) -> PlanContext:
    return PlanContext(prompt=prompt, candidates=specs, budget=budget, tracker=tracker or LatencyTracker(persist=False))


candidate = st.builds(
    lambda i, price, ttft, tps, quality, local: spec(
        f"m{i}", price=price, ttft=ttft, tps=tps, quality=quality,
        provider="llama_cpp" if local else "scripted"),
    st.integers(0, 10**6), st.sampled_from([0.0, 0.01, 0.05, 0.1, 0.15, 0.4, 1.1]),
    st.floats(0.05, 3.0), st.floats(5.0, 300.0), st.floats(0.0, 1.0), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(candidate, min_size=1, max_size=7, unique_by=lambda s: s.id), st.floats(0.0, 1.0))
def test_every_plan_keeps_the_cost_and_time_budget(candidates: list[ModelSpec], budget: float) -> None:
    p = BudgetPolicy(hedge=None).plan(ctx(*candidates, budget=budget))
    assert p.primary == p.members[0].model and set(p.models) <= {c.id for c in candidates}
    assert p.expected_cost <= (1 + budget) * p.single_cost + 1e-12
    assert p.expected_seconds <= (1 + budget) * p.single_seconds + 1e-9
    assert len(p.models) + len(p.skipped) == len(candidates)


def test_cheap_members_fit_and_dear_ones_do_not() -> None:
    primary = spec("big", price=0.15, quality=0.9)
    p = BudgetPolicy(hedge=None).plan(ctx(primary, spec("nano", price=0.1), spec("free1"), spec("tiny", price=0.02),
                                          spec("slowpoke", ttft=3.0)))
    assert p.primary == "big" and set(p.models) == {"big", "free1", "tiny"}
    skipped = dict(p.skipped)
    assert "cost" in skipped["nano"] and "time" in skipped["slowpoke"]


def test_local_models_share_the_cpu() -> None:
    a = spec("a", provider="llama_cpp", ttft=0.3, quality=0.9)
    b = spec("b", provider="llama_cpp", ttft=0.3)
    p = BudgetPolicy(hedge=None).plan(ctx(a, b))
    assert p.models == ("a",) and "share the CPU" in dict(p.skipped)["b"]
    assert BudgetPolicy(hedge=None, local_share_cpu=False).plan(ctx(a, b)).models == ("a", "b")


@pytest.mark.parametrize(("prompt", "expected"), [
    ("Write a Python function that parses ```json``` and raises on a bad key", "coder"),
    ("Solve the equation 3x + 5 = 20 and prove it is unique", "mathy"),
    ("Write a haiku about autumn rain", "poet"),
])
def test_the_task_picks_the_primary(prompt: str, expected: str) -> None:
    models = (spec("coder", tags=("code",)), spec("mathy", tags=("math",)), spec("poet", tags=("creative",)))
    assert BudgetPolicy(hedge=None).plan(ctx(*models, prompt=prompt)).primary == expected


def test_rules_and_classifier_are_editable() -> None:
    models = (spec("general", quality=0.5), spec("lawyer", tags=("legal",)))
    rules = (TaskRule("legal", r"\b(statute|tort)\b", 2.0),)
    assert BudgetPolicy(hedge=None).plan(ctx(*models, prompt="Explain this tort")).primary == "general"
    assert BudgetPolicy(hedge=None, rules=rules).plan(ctx(*models, prompt="Explain this tort")).primary == "lawyer"
    seen: list[str] = []

    def classifier(prompt: str) -> dict[str, float]:
        seen.append(prompt)
        return {"legal": 3.0}

    p = BudgetPolicy(hedge=None, classifier=classifier).plan(ctx(*models, prompt="hello"))
    assert p.primary == "lawyer" and seen == ["hello"] and "classifier" in p.reason
    sent: list[str] = []

    def complete(text: str) -> str:
        sent.append(text)
        return "Legal, I think"

    cheap_model = llm_classifier(complete, tags=("legal", "code"))
    p = BudgetPolicy(hedge=None, classifier=cheap_model).plan(ctx(*models, prompt="Is this allowed?"))
    assert p.primary == "lawyer" and "Is this allowed?" in sent[0] and "legal, code" in sent[0]


def test_a_spiking_provider_is_avoided_once_measured() -> None:
    tracker = LatencyTracker(persist=False)
    models = (spec("p", quality=0.9, ttft=0.05), spec("steady", ttft=0.05), spec("spiky", ttft=0.05))
    policy = BudgetPolicy(hedge=None)
    assert set(policy.plan(ctx(*models, tracker=tracker)).models) == {"p", "steady", "spiky"}
    for i in range(20):
        for m in ("p", "steady"):
            tracker.record(m, ttft=0.05, duration=0.5, n_tokens=20, outcome="ok")
        tracker.record("spiky", ttft=0.5 if i % 4 == 0 else 0.05, duration=0.9, n_tokens=20, outcome="ok")
    p = policy.plan(ctx(*models, tracker=tracker))
    assert set(p.models) == {"p", "steady"}
    assert "spiked" in dict(p.skipped)["spiky"] and "25%" in dict(p.skipped)["spiky"]


async def test_a_spiking_provider_is_avoided_after_real_runs() -> None:
    tracker = LatencyTracker(persist=False)
    specs = [spec("p", quality=0.9, ttft=0.02, tps=500), spec("spiky", ttft=0.02, tps=500)]
    policy = BudgetPolicy(hedge=None)
    members: list[tuple[str, ...]] = []
    for i in range(9):
        providers = {"p": ScriptedProvider("p", steps_from_text("a b c d"), first_token_delay=0.02,
                                           token_delay=0.005),
                     "spiky": ScriptedProvider("spiky", steps_from_text("a b c d"),
                                               first_token_delay=0.4 if i % 2 else 0.02, token_delay=0.005)}
        run = EnsembleRun("q", RunOptions(models=("p", "spiky"), orchestrate=True), specs,
                          lambda s, pr=providers: pr[s.id], policy=policy, tracker=tracker)  # type: ignore[misc]
        await run
        assert run.plan is not None
        members.append(run.plan.models)
    assert members[0] == ("p", "spiky") and members[-1] == ("p",)


def test_lower_reasoning_effort_for_members() -> None:
    thinker = spec("thinker", tps=500.0, reasoning_efforts=("low", "medium", "high"), reasoning_effort="high")
    p = BudgetPolicy(hedge=None).plan(ctx(spec("p", quality=0.9, price=1.0), thinker))
    m = p.member("thinker")
    assert m is not None and m.reasoning_effort == "low" and m.estimate.reasoning_effort == "low"


async def test_members_get_their_reasoning_effort_in_the_request() -> None:
    specs = [spec("p", quality=0.9),
             spec("t", tps=500.0, reasoning_efforts=("minimal", "high"), reasoning_effort="high")]
    providers = {m: ScriptedProvider(m, steps_from_text("ok.")) for m in ("p", "t")}
    run = EnsembleRun("q", RunOptions(models=("p", "t"), orchestrate=True), specs, lambda s: providers[s.id],
                      policy=BudgetPolicy(hedge=None), tracker=LatencyTracker(persist=False))
    await run
    assert providers["t"].requests[0].reasoning_effort == "minimal"
    assert providers["p"].requests[0].reasoning_effort is None


async def test_run_respects_the_budget_in_cost_and_time() -> None:
    specs = [spec("p", quality=0.9, price=0.15, ttft=0.05, tps=100), spec("cheap", price=0.01, ttft=0.05, tps=100),
             spec("dear", price=0.1, ttft=0.05, tps=100)]
    providers = {m: ScriptedProvider(m, steps_from_text("one two three four five six"), first_token_delay=0.05,
                                     token_delay=0.01, prompt_tokens=200) for m in ("p", "cheap", "dear")}
    run = EnsembleRun("q", RunOptions(models=("p", "cheap", "dear"), orchestrate=True), specs,
                      lambda s: providers[s.id], policy=BudgetPolicy(hedge=None),
                      tracker=LatencyTracker(persist=False))
    result = await run
    assert run.plan is not None and run.plan.models == ("p", "cheap")
    primary = result.models["p"]
    assert result.cost is not None and primary.cost is not None and primary.duration is not None
    assert result.cost <= 1.25 * primary.cost
    assert result.duration is not None and result.duration <= 1.25 * primary.duration + 0.1
    plan_event = result.plan
    assert isinstance(plan_event, PlanChosen) and plan_event.expected_cost == pytest.approx(run.plan.expected_cost)
    acc = account(result)
    assert acc.prompt_tokens == 400 and acc.cost == result.cost and acc.expected_cost == plan_event.expected_cost
    assert "planned" in acc.describe()


def test_plan_explains_itself_without_calling_any_model(monkeypatch: pytest.MonkeyPatch) -> None:
    import ensemble_nb.core.providers.factory as factory

    def no_calls(*args: object, **kwargs: object) -> None:
        raise AssertionError("plan() must not build a provider")

    monkeypatch.setattr(factory, "build_provider", no_calls)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    models = ["openai:gpt-4.1-mini", "openai:gpt-4.1-nano", "openrouter:meta-llama/llama-3.1-8b-instruct",
              "openrouter:qwen/qwen-2.5-7b-instruct", "openai:o4-mini"]
    tracker = LatencyTracker(persist=False)
    p = plan("Write a Python function to merge two sorted lists", models=models, orchestrate=True, tracker=tracker)
    assert isinstance(p, Plan) and p.primary == "openai:o4-mini" and p.task.top == "code"
    assert p.expected_cost <= 1.25 * p.single_cost and p.expected_seconds <= 1.25 * p.single_seconds
    text = explain_plan("Write a Python function to merge two sorted lists", models=models, orchestrate=True,
                        tracker=tracker)
    for words in ("policy budget", "primary openai:o4-mini", "expected cost $", "expected time", "why: task: code",
                  "skipped", "first token by"):
        assert words in text, words


def test_every_model_runs_unless_orchestration_is_asked_for() -> None:
    assert isinstance(policy_for(make_options(models="a b")), AllPolicy)
    assert isinstance(policy_for(make_options()), AllPolicy)  # the embedded pair stays an ensemble
    assert isinstance(policy_for(make_options(orchestrate=True)), BudgetPolicy)
    assert isinstance(policy_for(make_options(models="a b", orchestrate=True)), BudgetPolicy)
    assert isinstance(policy_for(make_options(models="a b", policy="budget")), BudgetPolicy)
    assert isinstance(policy_for(make_options(orchestrate=False)), AllPolicy)
    p = AllPolicy().plan(PlanContext(prompt="q", candidates=(spec("a"), spec("b")), explicit=True))
    assert p.models == ("a", "b") and not p.supervised and "orchestrate=True" in p.reason


async def test_orchestrated_explicit_list_chooses_among_the_listed_only() -> None:
    providers = {m: ScriptedProvider(m, steps_from_text("fine."), first_token_delay=0.01) for m in ("a", "b")}
    run = prepare("q", models="a b", orchestrate=True, providers=providers)
    assert isinstance(run.policy, BudgetPolicy)
    result = await run
    assert result.plan is not None and set(result.plan.members) <= {"a", "b"}


def test_custom_policies_register_by_name() -> None:
    class Cheapest(BudgetPolicy):
        def primary_score(self, spec: ModelSpec, est: object, task: object) -> float:
            return -spec.price_in

    register_policy(Cheapest(name="cheapest", hedge=None))
    opts = make_options(models="x y", policy="cheapest")
    p = policy_for(opts).plan(PlanContext(prompt="q", candidates=(spec("x", price=1.0), spec("y", price=0.1))))
    assert p.primary == "y" and get_policy("cheapest").name == "cheapest"
    with pytest.raises(UserError, match="unknown policy 'nope'"):
        prepare("q", models="scripted:sure", policy="nope")
    with pytest.raises(TypeError):
        register_policy(object())  # type: ignore[arg-type]


def test_budget_zero_still_allows_free_equally_fast_members() -> None:
    p = BudgetPolicy(hedge=None).plan(ctx(spec("p", price=1.0, quality=0.9), spec("free"), budget=0.0))
    assert p.models == ("p", "free") and math.isclose(p.cost_ratio, 1.0)


async def test_a_broken_policy_falls_back_to_running_every_model() -> None:
    class Broken(BudgetPolicy):
        def plan(self, ctx: PlanContext) -> Plan:
            raise ZeroDivisionError("oops")

    providers = {m: ScriptedProvider(m, steps_from_text("fine.")) for m in ("a", "b")}
    run = EnsembleRun("q", RunOptions(models=("a", "b")), [spec("a"), spec("b")], lambda s: providers[s.id],
                      policy=Broken(), tracker=LatencyTracker(persist=False))
    result = await run
    assert result.plan is not None and result.plan.members == ("a", "b") and "oops" in result.plan.reason
    assert result.status == "ok" and run.errors
