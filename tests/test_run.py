"""The runner: parallel members, cancelling one, failures, timeouts, no leaks, retry API."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator

import pytest

from ensemble_nb.core import (
    EnsembleRun,
    ModelCancelled,
    ModelFailed,
    ModelFinished,
    ModelStarted,
    ModelTimedOut,
    RunFinished,
    RunStarted,
    SpanRetried,
    SynthesisReady,
    TokenReceived,
    UserError,
    prepare,
    run,
)
from ensemble_nb.core.errors import RateLimited
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text


def _provider(name: str, text: str, conf: float = 0.9, delay: float = 0.01, **kw: object) -> ScriptedProvider:
    return ScriptedProvider(name, steps_from_text(text, conf), token_delay=delay, **kw)  # type: ignore[arg-type]


def _other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_members_stream_in_parallel_and_events_are_ordered() -> None:
    a = _provider("a", "one two three four five six", delay=0.02)
    b = _provider("b", "uno dos tres cuatro cinco seis", delay=0.02)
    handle = prepare("q", models="a b", providers={"a": a, "b": b})
    kinds = [e.kind async for e in handle.start().events()]
    result = await handle
    assert kinds[0] == RunStarted.kind and kinds[1] == "plan_chosen"
    assert kinds[-2:] == [SynthesisReady.kind, RunFinished.kind]
    tokens = [e for e in result.events if isinstance(e, TokenReceived)]
    # Parallel: the two models' tokens interleave instead of one finishing first.
    first_b = next(i for i, e in enumerate(tokens) if e.model == "b")
    last_a = max(i for i, e in enumerate(tokens) if e.model == "a")
    assert first_b < last_a
    assert [e.index for e in tokens if e.model == "a"] == list(range(6))
    assert result.models["a"].text == "one two three four five six"
    assert result.status == "ok"
    assert not _other_tasks()


async def test_cancel_one_model_while_the_others_finish() -> None:
    slow = _provider("slow", " ".join(["w"] * 200), delay=0.02)
    fast = _provider("fast", "Paris is the capital.", delay=0.02)
    handle = prepare("q", models="slow fast", providers={"slow": slow, "fast": fast}).start()
    async for event in handle.events():
        if isinstance(event, TokenReceived) and event.model == "slow" and event.index == 3:
            handle.cancel_model("slow")
    result = await handle
    cancelled = [e for e in result.events if isinstance(e, ModelCancelled)]
    assert len(cancelled) == 1 and cancelled[0].model == "slow" and cancelled[0].reason == "user"
    assert result.models["slow"].status == "cancelled"
    assert 4 <= len(result.models["slow"].tokens) < 200  # what it produced is kept
    assert cancelled[0].text == result.models["slow"].text
    assert result.models["fast"].status == "finished"
    assert result.synthesis is not None and result.synthesis.chosen == "fast"
    assert slow.closed_streams == 1
    assert not _other_tasks()


async def test_cancel_from_another_thread_is_handed_to_the_loop() -> None:
    slow = _provider("slow", " ".join(["w"] * 200), delay=0.01)
    other = _provider("other", "fine.", delay=0.01)
    handle = prepare("q", models="slow other", providers={"slow": slow, "other": other}).start()
    await asyncio.sleep(0.1)
    t = threading.Thread(target=handle.cancel_model, args=("slow",))
    t.start()
    t.join()
    result = await handle
    assert result.models["slow"].status == "cancelled"
    assert result.models["other"].status == "finished"


async def test_a_failing_member_does_not_stop_the_others() -> None:
    bad = _provider("bad", "a b c d e f", fail_after=2, error=RateLimited("bad: rate limited, retry later"))
    good = _provider("good", "fine answer.")
    result = await prepare("q", models="bad good", providers={"bad": bad, "good": good})
    failed = [e for e in result.events if isinstance(e, ModelFailed)]
    assert [(e.model, e.error_kind, e.text) for e in failed] == [("bad", "rate_limited", "a b")]
    assert result.models["good"].status == "finished"
    assert result.status == "partial"
    assert result.synthesis is not None and result.synthesis.text == "fine answer."


async def test_a_crashing_provider_is_a_failure_not_a_crash() -> None:
    class Boom(ScriptedProvider):
        async def stream(self, request):  # type: ignore[no-untyped-def]
            raise ValueError("boom")
            yield  # pragma: no cover

    result = await prepare("q", models="boom ok", providers={
        "boom": Boom("boom", []), "ok": _provider("ok", "fine.")})
    assert result.models["boom"].status == "failed"
    assert "ValueError: boom" in (result.models["boom"].error or "")
    assert result.models["ok"].status == "finished"


async def test_per_model_timeout() -> None:
    stuck = ScriptedProvider("stuck", [Step("a"), Step(" b", delay=30.0)])
    ok = _provider("ok", "fine.")
    result = await prepare("q", models="stuck ok", providers={"stuck": stuck, "ok": ok}, timeout=0.3)
    timed_out = [e for e in result.events if isinstance(e, ModelTimedOut)]
    assert [(e.model, e.text, e.timeout) for e in timed_out] == [("stuck", "a", 0.3)]
    assert result.models["ok"].status == "finished"
    assert stuck.closed_streams == 1


async def test_cancelling_the_run_leaves_nothing_running() -> None:
    providers = {m: _provider(m, " ".join(["w"] * 500), delay=0.01) for m in ("a", "b", "c")}
    handle = prepare("q", models="a b c", providers=providers).start()
    await asyncio.sleep(0.1)
    handle.cancel()
    result = await handle
    assert result.status == "cancelled"
    assert {r.status for r in result.models.values()} == {"cancelled"}
    assert all(e.reason == "run" for e in result.events if isinstance(e, ModelCancelled))
    assert isinstance(result.events[-1], RunFinished)
    assert all(p.closed_streams == 1 for p in providers.values())
    assert not _other_tasks()


async def test_cancel_twice_after_finish_and_before_first_token() -> None:
    late = ScriptedProvider("late", steps_from_text("x y"), first_token_delay=5.0)
    ok = _provider("ok", "fine.")
    handle = prepare("q", models="late ok", providers={"late": late, "ok": ok}).start()
    await asyncio.sleep(0.2)
    handle.cancel_model("late")
    handle.cancel_model("late")
    result = await handle
    assert result.models["late"].status == "cancelled" and result.models["late"].tokens == []
    assert sum(isinstance(e, ModelCancelled) for e in result.events) == 1
    handle.cancel_model("ok")  # after the finish: nothing happens
    handle.cancel()
    assert result.models["ok"].status == "finished"


async def test_late_subscriber_gets_every_event() -> None:
    handle = prepare("q", models="a", providers={"a": _provider("a", "one two three")})
    result = await handle
    replayed = [e async for e in handle.events()]
    assert replayed == result.events
    seen: list[str] = []
    handle.add_listener(lambda e: seen.append(e.kind))
    assert seen == [e.kind for e in result.events]


async def test_every_model_gets_a_start_and_exactly_one_end() -> None:
    providers = {"a": _provider("a", "x y."), "b": _provider("b", "z.", fail_after=0)}
    result = await prepare("q", models="a b", providers=providers)
    for m in ("a", "b"):
        starts = [e for e in result.events if isinstance(e, ModelStarted) and e.model == m]
        ends = [e for e in result.events if isinstance(e, ModelFinished | ModelFailed) and e.model == m]
        assert len(starts) == 1 and len(ends) == 1


async def test_retry_span_uses_another_member_and_keeps_better_confidence() -> None:
    def sure(request):  # type: ignore[no-untyped-def]
        return steps_from_text("Cotonou is the seat." if request.prefix else "Benin is in Africa. It is big.", 0.95)

    unsure = ScriptedProvider("unsure", steps_from_text("Benin is in Africa. Its capital is Bakura.", 0.4))
    sure_p = ScriptedProvider("sure", sure)
    handle = prepare("q", models="unsure sure", providers={"unsure": unsure, "sure": sure_p})
    result = await handle
    assert result.synthesis is not None and result.synthesis.chosen == "sure"
    event = await handle.retry_span(1, model="unsure")
    assert isinstance(event, SpanRetried) and event.old.model == "sure"
    assert not event.accepted  # the guessing member does not beat the sure one
    assert result.synthesis.text == "Benin is in Africa. It is big."
    assert unsure.requests[-1].prefix == "Benin is in Africa."


async def test_retry_span_accepts_a_more_confident_version() -> None:
    def script(request):  # type: ignore[no-untyped-def]
        if request.prefix:
            return steps_from_text("Its capital is Porto-Novo.", 0.97)
        return steps_from_text("Benin is in Africa. Its capital is Bakura.", 0.5)

    guess = ScriptedProvider("guess", script)
    handle = prepare("q", models="guess", providers={"guess": guess})
    result = await handle
    event = await handle.retry_span(1)
    assert event.accepted and event.new.confidence > event.old.confidence
    assert result.synthesis is not None
    assert result.synthesis.text == "Benin is in Africa. Its capital is Porto-Novo."
    assert result.retries == [event]
    with pytest.raises(UserError, match="no span 7"):
        await handle.retry_span(7)


def test_blocking_run_works_with_and_without_a_running_loop() -> None:
    result = run("q", models="scripted:sure scripted:unsure")
    assert result.synthesis is not None and result.synthesis.chosen == "scripted:sure"

    async def inside_a_loop() -> str:
        return run("q", models="scripted:sure").text

    assert asyncio.run(inside_a_loop()) == "The capital of France is Paris."


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"models": "nope"}, "unknown model 'nope'"),
    ({"models": "openai:gpt-4o-mini"}, "needs the environment variable OPENAI_API_KEY"),
    ({"max_tokens": 0}, "bad value for 'max_tokens'"),
    ({"temprature": 0.5}, "unknown option 'temprature'"),
    ({"models": ""}, "give at least one model"),
])
def test_bad_input_is_one_clear_line(kwargs: dict[str, object], message: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UserError, match=message) as info:
        prepare("q", **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(UserError, match="the prompt is empty"):
        prepare("   ")


def test_handle_is_an_ensemble_run() -> None:
    assert isinstance(prepare("q", models="scripted:sure"), EnsembleRun)


async def test_completion_notes_reach_the_finished_event_and_the_text_summary() -> None:
    import io

    from ensemble_nb.core.member import completion_notes
    from ensemble_nb.core.providers.base import GenerationRequest
    from ensemble_nb.core.tokens import Completion, StreamItem
    from ensemble_nb.textview import TextRenderer

    class Noting(ScriptedProvider):
        async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
            async for item in super().stream(request):
                if isinstance(item, Completion):
                    item = Completion(item.finish_reason, item.usage, {
                        "usage": "estimated", "finish_reason": "content_filter", "thought_chars": "120",
                        "logprobs": "the model refused logprobs; retried without",
                        "note": "Gemini cut the answer short (SAFETY); rephrase the prompt",
                        "x-request-id": "req 123 abc", "response_headers": "server: nginx"})
                yield item

    out = io.StringIO()
    handle = prepare("q", models="noting plain", providers={
        "noting": Noting("noting", steps_from_text("Paris.")), "plain": _provider("plain", "Paris.")})
    handle.add_listener(TextRenderer(out, stream_tokens=False))
    result = await handle
    ends = {e.model: e for e in result.events if isinstance(e, ModelFinished)}
    assert ends["noting"].notes == ("Gemini cut the answer short (SAFETY); rephrase the prompt",
                                    "the model refused logprobs; retried without")
    assert ends["plain"].notes == ()
    text = out.getvalue()
    assert "  note: Gemini cut the answer short (SAFETY); rephrase the prompt\n" in text
    assert "  note: the model refused logprobs; retried without\n" in text
    assert text.count("note:") == 2 and "req 123" not in text and "nginx" not in text
    assert ends["noting"].to_dict()["notes"] == ends["noting"].notes
    assert completion_notes({"safety": "blocked  by\nthe filter", "note": "blocked by the filter"}) == (
        "blocked by the filter",)


async def test_reasoning_effort_option_reaches_requests_unless_the_plan_sets_one() -> None:
    plain = _provider("plain", "Paris.")
    thinker = _provider("openai:o4-mini", "Paris.")  # its spec says reasoning_effort="medium"
    await prepare("q", models="plain openai:o4-mini", providers={"plain": plain, "openai:o4-mini": thinker},
                  reasoning_effort="HIGH")
    assert plain.requests[0].reasoning_effort == "high"
    assert thinker.requests[0].reasoning_effort == "medium"  # the plan's per-member effort wins
    default = _provider("plain", "Paris.")
    await prepare("q", models="plain", providers={"plain": default})
    assert default.requests[0].reasoning_effort is None


@pytest.mark.parametrize(("given", "kept"), [("low", "low"), (" Medium ", "medium"), ("2048", "2048"),
                                             (2048, "2048"), ("default", None), (None, None)])
def test_reasoning_effort_option_is_normalized(given: object, kept: str | None) -> None:
    from ensemble_nb.core.options import make_options

    assert make_options(reasoning_effort=given).reasoning_effort == kept


def test_an_unknown_reasoning_effort_is_one_clear_line() -> None:
    with pytest.raises(UserError, match=r"bad value for 'reasoning_effort': .*use one of none, minimal, low"):
        prepare("q", models="scripted:sure", reasoning_effort="turbo")
