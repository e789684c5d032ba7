"""Turning members' answers into one: spans, confidence, best-confidence pick, span retry.

Confidence of a stretch of tokens is exp(-mean entropy): 1 when the model was certain of
every token, 0.5 near 0.69 nats (a coin flip between two tokens), falling towards 0 as the
model guesses. Tokens without an entropy fall back on their own probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

from ensemble_nb.core.entropy import aggregate
from ensemble_nb.core.events import Span, Synthesis, TokenReceived
from ensemble_nb.core.result import ModelResult

_SENTENCE_END = (".", "!", "?", "\n", ";")
UNKNOWN_CONFIDENCE = 0.5


class Scored(Protocol):
    """A token as a provider streams it or as an event carries it."""

    @property
    def text(self) -> str: ...
    @property
    def logprob(self) -> float | None: ...
    @property
    def entropy(self) -> float | None: ...


T = TypeVar("T", bound=Scored)


def token_uncertainty(tok: Scored) -> float | None:
    if tok.entropy is not None:
        return tok.entropy
    if tok.logprob is not None:
        return -tok.logprob  # surprisal stands in when the distribution is unknown
    return None


def confidence(tokens: Sequence[Scored]) -> float:
    mean = aggregate([token_uncertainty(t) for t in tokens], "mean")
    return UNKNOWN_CONFIDENCE if mean is None else math.exp(-mean)


def segment(tokens: Sequence[Scored]) -> list[tuple[int, int]]:
    """Token ranges [start, end) of sentences/clauses: a span ends after a token ending one."""
    bounds: list[tuple[int, int]] = []
    start = 0
    for i, tok in enumerate(tokens):
        stripped = tok.text.rstrip(" ")
        if stripped.endswith(_SENTENCE_END) and "".join(t.text for t in tokens[start : i + 1]).strip():
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(tokens) and "".join(t.text for t in tokens[start:]).strip():
        bounds.append((start, len(tokens)))
    elif start < len(tokens) and bounds:
        bounds[-1] = (bounds[-1][0], len(tokens))
    return bounds


def spans_of(model: str, tokens: Sequence[TokenReceived]) -> tuple[Span, ...]:
    out = []
    for start, end in segment(tokens):
        part = tokens[start:end]
        out.append(Span(
            text="".join(t.text for t in part), model=model, confidence=confidence(part),
            mean_entropy=aggregate([t.entropy for t in part], "mean"), start_token=start, end_token=end,
        ))
    return tuple(out)


def best_confidence(results: Sequence[ModelResult]) -> Synthesis:
    """Pick the answer of the member with the highest confidence.

    Finished members are preferred; a member that was cancelled or timed out still counts
    when nobody finished, so a partial answer beats none.
    """
    finished = [r for r in results if r.status == "finished" and r.text.strip()]
    candidates = finished or [r for r in results if r.text.strip()]
    if not candidates:
        return Synthesis(text="", spans=(), strategy="best_confidence", confidence=0.0,
                         notes=("no model produced an answer",))
    scored = sorted(((confidence(r.tokens), r.model, r) for r in candidates), key=lambda x: -x[0])
    score, model, best = scored[0]
    notes = tuple(f"{m}: confidence {c:.2f}" for c, m, _ in scored)
    if not finished:
        notes += ("no member finished: the answer is partial",)
    return Synthesis(text=best.text, spans=spans_of(model, best.tokens), strategy="best_confidence",
                     confidence=score, chosen=model, notes=notes)


def replace_span(synthesis: Synthesis, index: int, new: Span) -> Synthesis:
    spans = list(synthesis.spans)
    spans[index] = new
    weights = [max(s.end_token - s.start_token, 1) for s in spans]
    conf = sum(s.confidence * w for s, w in zip(spans, weights, strict=True)) / sum(weights)
    return Synthesis(text="".join(s.text for s in spans), spans=tuple(spans), strategy=synthesis.strategy,
                     confidence=conf, chosen=synthesis.chosen, notes=synthesis.notes)


def first_sentence(tokens: Sequence[T]) -> list[T]:
    """The tokens of the first sentence/clause of a continuation."""
    bounds = segment(tokens)
    return list(tokens[: bounds[0][1]]) if bounds else list(tokens)


def synthesize(results: Sequence[ModelResult], strategy: str = "best_confidence") -> Synthesis:
    """Merge the members' results with the named strategy."""
    if strategy != "best_confidence":
        raise ValueError(f"unknown synthesis strategy {strategy!r}")
    return best_confidence(results)
