"""Regenerating one span of the synthesis given everything before it.

The same call serves automatic retries and the notebook's Retry-span button. Candidates come
from the other members (greedy: a second opinion) and from the span's own model sampled a few
times (more effort: a greedy rerun would only repeat itself). The old span and every
candidate are scored the same way (confidence of their answer-bearing tokens); the best
candidate replaces the span only when it beats the old one. Either way one ``SpanRetried``
event records the attempt.

``from_answer`` keeps the span's words before its answer-bearing part ("The capital of Benin
is") and regenerates only from there: the models then answer the exact slot in doubt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ensemble_nb.core.agreement import cluster_answers, peer_agreement, semantic_entropy
from ensemble_nb.core.answer_span import answer_tokens
from ensemble_nb.core.confidence import Calibration, answer_signals, load_calibration, span_focus_confidence
from ensemble_nb.core.entropy import aggregate
from ensemble_nb.core.errors import UserError
from ensemble_nb.core.events import Span, SpanRetried, TokenReceived
from ensemble_nb.core.providers.base import generate
from ensemble_nb.core.synthesis import first_sentence, replace_span
from ensemble_nb.core.tokens import Token

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun


def pick_retry_model(run: EnsembleRun, span: Span) -> str:
    """Another member that finished, if there is one; else the span's own model."""
    for model, result in run.result.models.items():
        if model != span.model and result.status == "finished":
            return model
    return span.model


def _old_tokens(run: EnsembleRun, span: Span) -> list[TokenReceived] | None:
    """The tokens behind a span, when it is still a member's own text (not an earlier retry)."""
    result = run.result.models.get(span.model)
    if result is None:
        return None
    toks = result.tokens[span.start_token:span.end_token]
    return toks if toks and "".join(t.text for t in toks) == span.text else None


@dataclass
class _Attempt:
    model: str
    tokens: list[Token]
    text: str
    confidence: float
    calibrated: float | None = None


class _AnswerScorer:
    """Calibrated confidence of a candidate first sentence, as :func:`score_members` would give
    it: its own signals plus agreement with the other members' original answers.

    Raw entropies are not comparable across models, and a candidate from another member must
    beat the old answer on the same scale.
    """

    def __init__(self, run: EnsembleRun, calibration: Calibration | None) -> None:
        self.cal = calibration if calibration is not None else load_calibration()
        self.question = run.prompt
        self.peers: dict[str, tuple[str, float]] = {}
        for model, result in run.result.models.items():
            if result.text.strip():
                sig = answer_signals(result.tokens, self.question)
                weight = math.exp(-sig.answer_entropy) if sig.answer_entropy is not None else 0.5
                self.peers[model] = (sig.answer_text, weight)

    def __call__(self, model: str, tokens: Sequence[TokenReceived | Token]) -> float:
        sig = answer_signals(tokens, self.question)
        others = [v for m, v in self.peers.items() if m != model]
        if others:
            own = math.exp(-sig.answer_entropy) if sig.answer_entropy is not None else 0.5
            keys = [sig.answer_text, *(a for a, _ in others)]
            clusters = cluster_answers(keys, [own, *(w for _, w in others)])
            sig = replace(sig, agreement=peer_agreement(clusters, 0, len(keys)),
                          semantic_entropy=semantic_entropy(clusters))
        return self.cal.score(model, sig)


async def _generate(run: EnsembleRun, model: str, prefix: str, max_tokens: int, sample: bool,
                    seed: int) -> list[Token]:
    request = run.request(
        prefix=prefix, max_tokens=max_tokens, seed=seed,
        temperature=max(run.options.temperature, 0.7) if sample else run.options.temperature)
    tokens, _ = await generate(run.provider_factory(run.specs[model]), request,
                               stop=lambda so_far: len(first_sentence(so_far)) < len(so_far))
    return tokens


async def retry_span(run: EnsembleRun, index: int, model: str | None = None, *, from_answer: bool = False,
                     samples: int | None = None, calibration: Calibration | None = None) -> SpanRetried:
    """Regenerate span ``index``; keep the best candidate only if it is more confident.

    For the first span (where these answers put the answer) "more confident" means both the
    raw confidence of its answer tokens and their end, and the calibrated answer confidence
    (with agreement): a sure-sounding guess that nobody backs is not an improvement.
    """
    event, _ = await retry_span_counted(run, index, model, from_answer=from_answer, samples=samples,
                                        calibration=calibration)
    return event


async def retry_span_counted(run: EnsembleRun, index: int, model: str | None = None, *,
                             from_answer: bool = False, samples: int | None = None,
                             max_new_tokens: int | None = None,
                             calibration: Calibration | None = None) -> tuple[SpanRetried, int]:
    """:func:`retry_span`, also returning how many tokens the attempts generated."""
    synthesis = run.result.synthesis
    if synthesis is None:
        raise UserError("nothing to retry yet: wait until the run has a synthesis (await run)")
    if not 0 <= index < len(synthesis.spans):
        raise UserError(f"no span {index}: the synthesis has spans 0 to {len(synthesis.spans) - 1}")
    old = synthesis.spans[index]
    if model is not None and model not in run.specs:
        raise UserError(f"cannot retry with '{model}': it is not a member of this run ({', '.join(run.specs)})")
    question = run.prompt
    old_tokens = _old_tokens(run, old)
    old_conf = span_focus_confidence(old_tokens, question) if old_tokens else old.confidence
    scorer = _AnswerScorer(run, calibration) if index == 0 and old_tokens else None
    old_cal = scorer(old.model, old_tokens) if scorer and old_tokens else None
    head: Sequence[TokenReceived] = ()
    if from_answer and old_tokens:
        a, b = answer_tokens(old_tokens, question, 0, len(old_tokens))
        head = old_tokens[:a] if b > a else ()
    head_text = "".join(t.text for t in head)
    prefix = "".join(s.text for s in synthesis.spans[:index]) + head_text
    n_old = max(old.end_token - old.start_token - len(head), 1)
    max_tokens = min(2 * n_old + 8, 4 * run.options.max_tokens)
    if max_new_tokens is not None:
        max_tokens = max(1, min(max_tokens, max_new_tokens))

    plan: list[tuple[str, bool]]  # (model, sampled)
    if model is not None:
        plan = [(model, model == old.model)]
    else:
        others = [m for m, r in run.result.models.items() if m != old.model and r.status == "finished"
                  and m in run.specs]
        n_samples = run.options.retry_samples if samples is None else samples
        plan = [(m, False) for m in others] + [(old.model, True)] * n_samples
        if not plan and old.model in run.specs:
            plan = [(old.model, True)]
        if not plan:
            plan = [(pick_retry_model(run, old), True)]
    attempts: list[_Attempt] = []
    used = 0
    old_tail = old.text[len(head_text):]
    for i, (m, sampled) in enumerate(plan):
        seed = run.options.seed + 1000 * (len(run.result.retries) + 1) + i
        kept = first_sentence(await _generate(run, m, prefix, max_tokens, sampled, seed))
        used += len(kept)
        text = "".join(t.text for t in kept)
        if old_tail.startswith(" ") and text and not text.startswith((" ", "\n")) and prefix:
            text = " " + text
        scored: list[TokenReceived | Token] = [*head, *kept]
        conf = span_focus_confidence(scored, question) if kept else 0.0
        cal = scorer(m, scored) if scorer and kept else None
        attempts.append(_Attempt(m, kept, head_text + text, conf, cal))
        if max_new_tokens is not None and used >= max_new_tokens:
            break
    best = max(attempts, key=lambda a: (bool(a.text[len(head_text):].strip()),
                                        a.calibrated if a.calibrated is not None else a.confidence))
    new = Span(text=best.text, model=best.model, confidence=best.confidence,
               mean_entropy=aggregate([t.entropy for t in head] + [t.entropy for t in best.tokens], "mean"),
               start_token=old.start_token, end_token=old.start_token + len(head) + len(best.tokens))
    accepted = bool(best.text[len(head_text):].strip()) and best.confidence > old_conf
    if accepted and old_cal is not None and best.calibrated is not None:
        accepted = best.calibrated > old_cal
    if accepted and scorer is not None and old_tokens:
        # Repeating the question ("... symbol Rh is Rh") never replaces an answer.
        accepted = not (answer_signals([*head, *best.tokens], question).echo
                        and not answer_signals(old_tokens, question).echo)
    updated = replace_span(synthesis, index, new) if accepted else synthesis
    event = SpanRetried(run_id=run.run_id, t=run.clock(), index=index, old=old, new=new,
                        accepted=accepted, synthesis=updated)
    run.emit(event)
    return event, used


async def retry_low_confidence(run: EnsembleRun, threshold: float, *, max_retries: int | None = None,
                               max_tokens: int | None = None, from_answer: bool = False,
                               calibration: Calibration | None = None) -> list[SpanRetried]:
    """Retry the spans below ``threshold``, least confident first, within the run's budget
    (``retry_max`` spans and ``retry_max_tokens`` generated tokens unless given here)."""
    done: list[SpanRetried] = []
    synthesis = run.result.synthesis
    if synthesis is None:
        return done
    limit = run.options.retry_max if max_retries is None else max_retries
    budget = run.options.retry_max_tokens if max_tokens is None else max_tokens
    low = sorted((s.confidence, i) for i, s in enumerate(synthesis.spans) if s.confidence < threshold)
    for _, index in low[:limit]:
        if budget <= 0:
            break
        event, used = await retry_span_counted(run, index, from_answer=from_answer, max_new_tokens=budget,
                                               calibration=calibration)
        budget -= used
        done.append(event)
    return done
