"""Turning members' answers into one: scoring, spans, and the synthesis strategies.

Every strategy starts from :func:`score_members`: each member's answer gets its raw signals
(mean entropy over the whole answer; total entropy and log-probability of its answer-bearing
span), its meaning cluster among the members, the share of the other members in that cluster
(agreement), the semantic entropy of the clusters (weighted by the members' confidence), and
one calibrated 0–1 confidence from those.

Strategies (``RunOptions.synthesis``):
``best_confidence`` the most confident member's answer;
``vote``            the heaviest meaning cluster (confidence-weighted), its most confident member;
``span_merge``      sentence by sentence, each from the member most confident about it;
``llm``             a member rewrites the answers, shown with their confidences (async only:
                    :func:`synthesize_run`; the sync path falls back to ``vote``).

A span's confidence is exp(-mean entropy) of its answer-bearing tokens, so a guess on
"Bakura" is not averaged away by a confident "The capital of Benin is".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from ensemble_nb.core.agreement import Judge, cluster_answers, peer_agreement, semantic_entropy
from ensemble_nb.core.confidence import (
    ENSEMBLE_KEY,
    UNKNOWN_CONFIDENCE,
    AnswerSignals,
    Calibration,
    ScoredToken,
    answer_signals,
    load_calibration,
    span_focus_confidence,
    stretch_confidence,
)
from ensemble_nb.core.entropy import aggregate
from ensemble_nb.core.events import Span, Synthesis
from ensemble_nb.core.result import ModelResult

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun

_SENTENCE_END = (".", "!", "?", "\n", ";")
STRATEGIES = ("best_confidence", "vote", "span_merge", "llm")
__all__ = ["STRATEGIES", "UNKNOWN_CONFIDENCE", "MemberAnswer", "best_confidence", "confidence", "ensemble_confidence",
           "first_sentence", "replace_span", "score_members", "segment", "spans_of", "synthesize"]


Scored = ScoredToken  # a token as a provider streams it or as an event carries it
T = TypeVar("T", bound=ScoredToken)


def confidence(tokens: Sequence[Scored]) -> float:
    """exp(-mean entropy) of a stretch of tokens (0.5 when none has probabilities)."""
    return stretch_confidence(tokens)


def segment(tokens: Sequence[Scored]) -> list[tuple[int, int]]:
    """Token ranges [start, end) of sentences/clauses: a span ends after a token ending one."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for i, tok in enumerate(tokens):
        stripped = tok.text.rstrip(" ")
        if not stripped.endswith(_SENTENCE_END):
            continue
        nxt = tokens[i + 1].text if i + 1 < len(tokens) else ""
        before = stripped[:-1] or (tokens[i - 1].text if i else "")
        if stripped.endswith(".") and before[-1:].isdigit() and nxt[:1].isdigit():
            continue  # "2.5" split over tokens is one number, not a sentence end
        if "".join(t.text for t in tokens[start : i + 1]).strip():
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(tokens) and "".join(t.text for t in tokens[start:]).strip():
        bounds.append((start, len(tokens)))
    elif start < len(tokens) and bounds:
        bounds[-1] = (bounds[-1][0], len(tokens))
    return bounds


def first_sentence(tokens: Sequence[T]) -> list[T]:
    """The tokens of the first sentence/clause of a continuation."""
    bounds = segment(tokens)
    return list(tokens[: bounds[0][1]]) if bounds else list(tokens)


def spans_of(model: str, tokens: Sequence[Scored], question: str = "") -> tuple[Span, ...]:
    out = []
    for start, end in segment(tokens):
        part = tokens[start:end]
        out.append(Span(
            text="".join(t.text for t in part), model=model, confidence=span_focus_confidence(part, question),
            mean_entropy=aggregate([t.entropy for t in part], "mean"), start_token=start, end_token=end,
        ))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class MemberAnswer:
    """One member's answer with its signals, meaning cluster and calibrated confidence."""

    model: str
    result: ModelResult
    signals: AnswerSignals
    confidence: float
    cluster: int = 0


def _usable(results: Sequence[ModelResult]) -> tuple[list[ModelResult], bool]:
    # A member that was cancelled or timed out still counts when nobody finished: a partial
    # answer beats none.
    finished = [r for r in results if r.status == "finished" and r.text.strip()]
    return (finished or [r for r in results if r.text.strip()]), bool(finished)


def score_members(results: Sequence[ModelResult], question: str = "", calibration: Calibration | None = None,
                  judge: Judge | None = None) -> list[MemberAnswer]:
    """Signals, meaning clusters and calibrated confidence of each usable member, best first
    (members that only echo the question last)."""
    cal = calibration if calibration is not None else load_calibration()
    candidates, _ = _usable(results)
    if not candidates:
        return []
    alone = [answer_signals(r.tokens, question) for r in candidates]
    # Cluster weights are each member's raw confidence in its answer span, not the calibrated
    # score: the calibration is fitted on semantic entropy, so that must not depend on it.
    prior = [math.exp(-s.answer_entropy) if s.answer_entropy is not None else UNKNOWN_CONFIDENCE
             for s in alone]
    keys = [s.answer_text for s in alone]  # an echo ("") agrees with nobody
    clusters = cluster_answers(keys, prior, judge)
    many = len(candidates) > 1
    h_sem = semantic_entropy(clusters) if many else None
    out = []
    for i, (r, s) in enumerate(zip(candidates, alone, strict=True)):
        agree = peer_agreement(clusters, i, len(candidates)) if many else None
        full = replace(s, agreement=agree, semantic_entropy=h_sem)
        cid = next(j for j, c in enumerate(clusters) if i in c.members)
        out.append(MemberAnswer(r.model, r, full, cal.score(r.model, full), cid))
    # A reply that only repeats the question is no answer: it never outranks one that answers.
    return sorted(out, key=lambda m: (m.signals.echo, -m.confidence))


def ensemble_confidence(best: MemberAnswer, calibration: Calibration | None = None) -> float:
    """Confidence of the ensemble's answer: the ensemble map when the calibration has one (the
    chosen answer is a selected one, so its odds differ from a member's), else the member's."""
    fmap = (calibration if calibration is not None else load_calibration()).maps.get(ENSEMBLE_KEY)
    return fmap(best.signals.features()) if fmap else best.confidence


def _notes(scored: Sequence[MemberAnswer], finished: bool) -> tuple[str, ...]:
    notes = tuple(f"{m.model}: confidence {m.confidence:.2f} (answer {m.signals.answer_text!r}, "
                  f"cluster {m.cluster})" for m in scored)
    return notes if finished else (*notes, "no member finished: the answer is partial")


def _empty(strategy: str) -> Synthesis:
    return Synthesis(text="", spans=(), strategy=strategy, confidence=0.0, notes=("no model produced an answer",))


def best_confidence(results: Sequence[ModelResult], question: str = "",
                    calibration: Calibration | None = None, judge: Judge | None = None) -> Synthesis:
    """Pick the answer of the member with the highest calibrated confidence."""
    scored = score_members(results, question, calibration, judge)
    if not scored:
        return _empty("best_confidence")
    best = scored[0]
    return Synthesis(text=best.result.text, spans=spans_of(best.model, best.result.tokens, question),
                     strategy="best_confidence", confidence=ensemble_confidence(best, calibration),
                     chosen=best.model,
                     notes=_notes(scored, _usable(results)[1]))


def vote(results: Sequence[ModelResult], question: str = "", calibration: Calibration | None = None,
         judge: Judge | None = None) -> Synthesis:
    """The meaning cluster with the most confidence behind it; its most confident member answers."""
    scored = score_members(results, question, calibration, judge)
    if not scored:
        return _empty("vote")
    weight: dict[int, float] = {}
    answered = any(not m.signals.echo for m in scored)
    for m in scored:
        weight[m.cluster] = weight.get(m.cluster, 0.0) + (0.0 if m.signals.echo and answered else m.confidence)
    winner = max(weight, key=lambda c: (weight[c], -c))
    best = next(m for m in scored if m.cluster == winner)  # scored is best first
    total = sum(weight.values()) or 1.0
    notes = (*_notes(scored, _usable(results)[1]), f"cluster {winner} holds {weight[winner] / total:.0%} "
             f"of the confidence")
    return Synthesis(text=best.result.text, spans=spans_of(best.model, best.result.tokens, question),
                     strategy="vote", confidence=ensemble_confidence(best, calibration), chosen=best.model,
                     notes=notes)


def span_merge(results: Sequence[ModelResult], question: str = "", calibration: Calibration | None = None,
               judge: Judge | None = None) -> Synthesis:
    """Sentence i from whichever member is most confident about its sentence i.

    The first sentence carries the answer, so it comes from the voted answer; later sentences
    are compared by span confidence. Members are aligned by sentence position, which is crude
    but keeps each span a member's own words.
    """
    voted = vote(results, question, calibration, judge)
    if not voted.spans:
        return replace(voted, strategy="span_merge")
    per_model = {r.model: spans_of(r.model, r.tokens, question) for r in _usable(results)[0]}
    spans = [voted.spans[0]]
    for i in range(1, max(len(s) for s in per_model.values())):
        options = [s[i] for s in per_model.values() if len(s) > i]
        spans.append(max(options, key=lambda s: s.confidence))
    spans = _join_spaces(spans)
    weights = [max(s.end_token - s.start_token, 1) for s in spans]
    span_conf = sum(s.confidence * w for s, w in zip(spans, weights, strict=True)) / sum(weights)
    used = sorted({s.model for s in spans})
    return Synthesis(text="".join(s.text for s in spans), spans=tuple(spans), strategy="span_merge",
                     confidence=min(voted.confidence, span_conf) if len(spans) > 1 else voted.confidence,
                     chosen=voted.chosen, notes=(*voted.notes, f"spans from {', '.join(used)}"))


def _join_spaces(spans: list[Span]) -> list[Span]:
    out = spans[:1]
    for s in spans[1:]:
        if out and not out[-1].text.endswith((" ", "\n")) and not s.text.startswith((" ", "\n")):
            s = replace(s, text=" " + s.text)
        out.append(s)
    return out


def replace_span(synthesis: Synthesis, index: int, new: Span) -> Synthesis:
    """The synthesis with span ``index`` replaced; its confidence moves by the span's change."""
    spans = list(synthesis.spans)
    old = spans[index]
    spans[index] = new
    weights = [max(s.end_token - s.start_token, 1) for s in spans]
    conf = sum(s.confidence * w for s, w in zip(spans, weights, strict=True)) / sum(weights)
    return Synthesis(text="".join(s.text for s in spans), spans=tuple(spans), strategy=synthesis.strategy,
                     confidence=conf, chosen=synthesis.chosen,
                     notes=(*synthesis.notes, f"span {index} regenerated by {new.model} "
                            f"({old.confidence:.2f} -> {new.confidence:.2f})"))


_SYNC = {"best_confidence": best_confidence, "vote": vote, "span_merge": span_merge}


def synthesize(results: Sequence[ModelResult], strategy: str = "best_confidence", *, question: str = "",
               calibration: Calibration | None = None, judge: Judge | None = None) -> Synthesis:
    """Merge the members' results with the named strategy (``llm`` needs :func:`synthesize_run`)."""
    if strategy == "llm":
        out = vote(results, question, calibration, judge)
        return replace(out, notes=(*out.notes, "llm synthesis needs the run (synthesize_run): voted instead"))
    if strategy not in _SYNC:
        raise ValueError(f"unknown synthesis strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
    return _SYNC[strategy](results, question, calibration, judge)


async def synthesize_run(run: EnsembleRun, strategy: str | None = None, *,
                         calibration: Calibration | None = None, judge: Judge | None = None) -> Synthesis:
    """Synthesize a finished run's answers, with the question, calibration and (for ``llm``)
    one of the run's members as the writer."""
    strategy = strategy or run.options.synthesis
    results = list(run.result.models.values())
    if strategy != "llm":
        return synthesize(results, strategy, question=run.prompt, calibration=calibration, judge=judge)
    from ensemble_nb.core.llm_synthesis import llm_synthesis

    return await llm_synthesis(run, results, calibration=calibration, judge=judge)
