"""Synthesis strategies and selective retry, with scripted providers."""

from __future__ import annotations

import pytest

from ensemble_nb.core import SynthesisReady, prepare
from ensemble_nb.core.confidence import Calibration
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text
from ensemble_nb.core.retry import retry_low_confidence, retry_span
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.core.synthesis import score_members, synthesize, synthesize_run

Q = "What is the capital of Benin?"
DEFAULT = Calibration({})  # the default mapping, whatever calibration file the machine has


def _cont(text: str, conf: float) -> list[Step]:
    """Word steps that continue a text (each word after a space)."""
    return steps_from_text("x " + text.lstrip(), conf)[1:]


def _answer(head: str, answer: str, head_conf: float, answer_conf: float) -> list[Step]:
    """A sentence whose answer word has its own confidence."""
    return [*steps_from_text(head, head_conf), *_cont(answer, answer_conf)[:1]]


def _p(name: str, text: str, conf: float = 0.9) -> ScriptedProvider:
    return ScriptedProvider(name, steps_from_text(text, conf))


async def _run(providers: dict[str, ScriptedProvider], **kw: object) -> EnsembleRun:
    handle = prepare(Q, models=list(providers), providers=providers, **kw)  # type: ignore[arg-type]
    await handle
    return handle


async def test_best_confidence_looks_at_the_answer_not_the_boilerplate() -> None:
    # "a" is sure of the boilerplate but guesses the name; "b" is less sure of the words
    # around it and sure of the name. Mean entropy over the sentence would pick "a".
    a = ScriptedProvider("a", [*steps_from_text("The capital of Benin is", 0.99), Step(" Bakura.", {
        " Bakura.": 0.3, " Cotonou.": 0.25, " Lagos.": 0.25, " Accra.": 0.2})])
    b = ScriptedProvider("b", [*steps_from_text("The capital of Benin is", 0.7), Step(" Porto-Novo.", {
        " Porto-Novo.": 0.97})])
    handle = await _run({"a": a, "b": b})
    results = list(handle.result.models.values())
    syn = synthesize(results, "best_confidence", question=Q, calibration=DEFAULT)
    assert syn.chosen == "b" and syn.text.endswith("Porto-Novo.")
    assert all(s.model == "b" for s in syn.spans)
    scored = score_members(results, Q, DEFAULT)
    a_sig = next(m for m in scored if m.model == "a").signals
    assert a_sig.answer_text == "Bakura" and a_sig.agreement is not None and a_sig.agreement < 0.5


async def test_vote_prefers_the_meaning_most_members_back() -> None:
    providers = {"a": _p("a", "The capital is Porto-Novo.", 0.8), "b": _p("b", "It is Porto-Novo.", 0.75),
                 "c": _p("c", "The capital is Cotonou.", 0.9)}
    handle = await _run(providers)
    results = list(handle.result.models.values())
    voted = synthesize(results, "vote", question=Q, calibration=DEFAULT)
    assert voted.chosen in {"a", "b"} and "Porto-Novo" in voted.text
    scored = {m.model: m for m in score_members(results, Q, DEFAULT)}
    assert scored["a"].signals.agreement == 0.5 and scored["c"].signals.agreement == 0.0
    assert scored["c"].signals.answer_entropy is not None and scored["a"].signals.answer_entropy is not None
    assert scored["c"].signals.answer_entropy < scored["a"].signals.answer_entropy  # c alone is the surest
    assert voted.strategy == "vote" and any("cluster" in n for n in voted.notes)


async def test_span_merge_takes_each_sentence_from_its_most_confident_member() -> None:
    a = ScriptedProvider("a", steps_from_text("Benin is in Africa.", 0.95) + _cont("Its capital is Bakura.", 0.3))
    b = ScriptedProvider("b", steps_from_text("Benin is in Africa.", 0.8) + _cont("Its capital is Porto-Novo.", 0.95))
    handle = await _run({"a": a, "b": b})
    syn = synthesize(list(handle.result.models.values()), "span_merge", question=Q, calibration=DEFAULT)
    assert syn.strategy == "span_merge"
    assert [s.model for s in syn.spans] == ["a", "b"]
    assert syn.text == "Benin is in Africa. Its capital is Porto-Novo."


async def test_llm_strategy_rewrites_from_annotated_answers() -> None:
    def writer(request: GenerationRequest) -> list[Step]:
        if "Answers:" in request.prompt:
            return steps_from_text("The capital of Benin is Porto-Novo.", 0.95)
        return steps_from_text("The capital of Benin is Porto-Novo.", 0.8)

    w = ScriptedProvider("w", writer)
    other = _p("o", "The capital of Benin is Cotonou.", 0.5)
    handle = await _run({"w": w, "o": other}, synthesis="llm")
    # The run synthesizes with the writer model itself.
    assert handle.result.synthesis is not None and handle.result.synthesis.strategy == "llm"
    assert handle.result.synthesis.notes[0].startswith("rewritten by w")
    syn = await synthesize_run(handle, calibration=DEFAULT)
    prompt = w.requests[-1].prompt
    assert "confidence" in prompt and "Cotonou" in prompt and Q in prompt
    assert syn.strategy == "llm" and syn.chosen == "w" and syn.text.endswith("Porto-Novo.")
    assert all(s.model == "w" for s in syn.spans)
    assert 0.0 < syn.confidence < 1.0


async def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown synthesis strategy"):
        synthesize([], "magic")


async def test_retry_keeps_only_a_more_confident_version() -> None:
    calls: list[str] = []

    def model(request: GenerationRequest) -> list[Step]:
        calls.append(request.prefix)
        if request.prefix:  # the retry: regenerate from "... is" given as prefix
            return steps_from_text(" Porto-Novo.", 0.97)
        return _answer("The capital of Benin is", "Bakura.", 0.95, 0.3)

    handle = await _run({"m": ScriptedProvider("m", model)})
    assert handle.result.synthesis is not None
    event = await retry_span(handle, 0, from_answer=True, samples=2)
    assert calls[1:] == ["The capital of Benin is", "The capital of Benin is"]  # two samples of its own
    assert event.accepted and event.new.confidence > event.old.confidence
    assert handle.result.text == "The capital of Benin is Porto-Novo."
    # A worse candidate is not kept.
    worse = ScriptedProvider("m", lambda r: steps_from_text(" Lagos.", 0.2) if r.prefix else
                             _answer("The capital of Benin is", "Bakura.", 0.95, 0.5))
    h2 = await _run({"m": worse})
    before = h2.result.text
    ev2 = await retry_span(h2, 0, from_answer=True)
    assert not ev2.accepted and h2.result.text == before and h2.result.retries == [ev2]


async def test_automatic_retry_respects_threshold_and_budget() -> None:
    text = [*steps_from_text("One is fine.", 0.99), *_cont("Two is Bakura. Three is Lagos. Four is Accra.", 0.3)]
    m = ScriptedProvider("m", lambda r: _cont("Five is Porto-Novo.", 0.99) if r.prefix else text)
    handle = await _run({"m": m}, retry_samples=1)
    done = await retry_low_confidence(handle, 0.9, max_retries=2)
    assert len(done) == 2 and all(e.accepted for e in done)
    assert [e.index for e in done] == [1, 2]  # span 0 is confident: left alone
    tight = await _run({"m": ScriptedProvider("m", m._script)}, retry_samples=1)
    done = await retry_low_confidence(tight, 0.9, max_tokens=1)
    assert len(done) == 1  # the token budget ran out after one span


async def test_options_drive_synthesis_and_retry_in_a_run() -> None:
    m = ScriptedProvider("m", lambda r: steps_from_text("Porto-Novo.", 0.99) if r.prefix else
                         steps_from_text("Benin is in Africa. Its capital is Bakura.", 0.4))
    handle = await _run({"m": m}, synthesis="vote", retry_below=0.6, retry_max=1)
    kinds = [e.kind for e in handle.result.events]
    assert kinds.count(SynthesisReady.kind) == 1 and kinds.count("span_retried") == 1
    assert handle.result.synthesis is not None and handle.result.synthesis.strategy == "vote"


async def test_an_echo_of_the_question_never_beats_an_answer() -> None:
    q = "Which element has the chemical symbol Pd?"
    echo = ScriptedProvider("echo", steps_from_text("The element has the chemical symbol Pd.", 0.99))
    answer = ScriptedProvider("answer", steps_from_text("It is Palladium.", 0.4))
    handle = prepare(q, models="echo answer", providers={"echo": echo, "answer": answer})
    await handle
    results = list(handle.result.models.values())
    for strategy in ("best_confidence", "vote"):
        assert synthesize(results, strategy, question=q, calibration=DEFAULT).chosen == "answer"
