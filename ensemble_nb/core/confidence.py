"""Confidence at every level: token, span, answer; and a calibrated 0–1 score per model.

Token: exp(-H) of the next-token distribution. H is exact over the full vocabulary for local
models, and a top-k estimate (with bounds) for APIs that return only the top-k; a token
without probabilities has no confidence of its own, and the answer then leans on agreement
between members.

Answer: a few raw signals (mean entropy over the answer; total entropy and log-probability of
its answer-bearing span; agreement with the other members; semantic entropy). Raw entropies
are not comparable across models (a 262k-token vocabulary spreads mass differently from a
49k one), so a per-model logistic map (Platt scaling on the signals) turns them into a
probability of being right. The eval harness fits it and saves a small JSON; without one a
fixed default mapping is used.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from ensemble_nb.core.answer_span import answer_tokens, find_answer_span
from ensemble_nb.core.paths import cache_root

UNKNOWN_CONFIDENCE = 0.5
ENDS_IN_ANSWER = False
CALIBRATION_ENV = "ENSEMBLE_NB_CALIBRATION"
FEATURES = ("answer_entropy", "mean_entropy", "answer_logprob", "agreement", "semantic_entropy", "echo")
"""The signals the combined score is fitted on, in this order."""


class ScoredToken(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def logprob(self) -> float | None: ...
    @property
    def entropy(self) -> float | None: ...


def token_uncertainty(tok: ScoredToken) -> float | None:
    """Entropy in nats; the token's surprisal when only its own probability is known."""
    if tok.entropy is not None:
        return tok.entropy
    if tok.logprob is not None:
        return -tok.logprob
    return None


def token_confidence(tok: ScoredToken) -> float | None:
    h = token_uncertainty(tok)
    return None if h is None else math.exp(-h)


def token_confidence_bounds(tok: Any) -> tuple[float, float] | None:
    """(low, high) confidence of a top-k token from its entropy bounds; exact tokens give (c, c)."""
    bounds = getattr(tok, "bounds", None)
    if bounds is not None:
        return math.exp(-bounds.upper), math.exp(-bounds.tight_lower)
    c = token_confidence(tok)
    return None if c is None else (c, c)


def mean_uncertainty(tokens: Sequence[ScoredToken]) -> float | None:
    vals = [h for t in tokens if (h := token_uncertainty(t)) is not None]
    return sum(vals) / len(vals) if vals else None


def stretch_confidence(tokens: Sequence[ScoredToken]) -> float:
    """exp(-mean entropy) of a stretch of tokens; 0.5 when none has probabilities."""
    h = mean_uncertainty(tokens)
    return UNKNOWN_CONFIDENCE if h is None else math.exp(-h)


def top_probability(tok: Any) -> float | None:
    """Probability of the most likely next token (the chosen one's when no alternatives)."""
    alts = getattr(tok, "alternatives", ())
    if alts:
        return math.exp(max(a.logprob for a in alts))
    lp = getattr(tok, "logprob", None)
    return None if lp is None else math.exp(lp)


def span_focus_confidence(tokens: Sequence[ScoredToken], question: str = "") -> float:
    """Confidence of a sentence/clause from its answer-bearing tokens (and the token that ends
    them: stopping after "1" rather than going on to "17" is part of the answer).

    Averaging over "The capital of Benin is" would hide a guess on "Bakura".
    """
    a, b = answer_tokens(tokens, question, 0, len(tokens))
    focus = tokens[a:min(b + 1, len(tokens))] if b > a else tokens
    return stretch_confidence(focus)


@dataclass(frozen=True, slots=True)
class AnswerSignals:
    """Raw confidence signals of one member's answer (nats; shares in 0–1).

    ``answer_entropy`` and ``answer_logprob`` are totals over the answer-bearing tokens, not
    means: the answer is right only if every one of its tokens is, so doubt adds up
    ("Karl Samuel Leberecht Hermann" is five guesses). ``mean_entropy`` is over the whole text.
    """

    answer_text: str
    answer_entropy: float | None
    mean_entropy: float | None
    answer_logprob: float | None
    agreement: float | None = None
    semantic_entropy: float | None = None
    answer_start: int = 0
    answer_end: int = 0
    echo: bool = False
    """The answer only repeats words of the question."""

    @property
    def max_prob(self) -> float | None:
        """Probability of the answer span as generated (the most likely path when greedy)."""
        return None if self.answer_logprob is None else math.exp(self.answer_logprob)

    def features(self) -> list[float]:
        """The FEATURES, with neutral values for missing ones (no probabilities, no peers)."""
        return [
            _or(self.answer_entropy, _or(self.mean_entropy, 1.0)),
            _or(self.mean_entropy, _or(self.answer_entropy, 1.0)),
            _or(self.answer_logprob, -1.0),
            _or(self.agreement, 0.5),
            _or(self.semantic_entropy, 0.0),
            float(self.echo),
        ]


def _or(x: float | None, default: float) -> float:
    return default if x is None else x


def answer_signals(tokens: Sequence[Any], question: str = "") -> AnswerSignals:
    """Token-level signals of an answer; agreement is filled in by the ensemble."""
    a, b = answer_tokens(tokens, question)
    focus = tokens[a:b + 1] if ENDS_IN_ANSWER else tokens[a:b]
    span = find_answer_span("".join(t.text for t in tokens), question)
    hs = [h for t in focus if (h := token_uncertainty(t)) is not None]
    lps = [t.logprob for t in focus if t.logprob is not None]
    return AnswerSignals(
        # An echo of the question ("The element with the symbol Rh is Rh.") is no answer: it
        # must not count as agreeing with another echo.
        answer_text="" if span.echo else span.text,
        answer_entropy=sum(hs) if hs else None,
        mean_entropy=mean_uncertainty(tokens),
        answer_logprob=sum(lps) if lps else None,
        answer_start=a, answer_end=b, echo=span.echo,
    )


@dataclass(frozen=True, slots=True)
class LogisticMap:
    """sigmoid(intercept + coef · features): Platt scaling generalised to several signals."""

    coef: tuple[float, ...]
    intercept: float
    n: int = 0

    def __call__(self, features: Sequence[float]) -> float:
        z = self.intercept + sum(c * x for c, x in zip(self.coef, features, strict=True))
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


# Hand-set: about exp(-answer entropy) when alone, pulled up by agreement and down by
# disagreement; used until the eval harness has fitted a calibration.
DEFAULT_MAP = LogisticMap(coef=(-0.8, -0.3, 0.5, 2.0, -1.0, -2.0), intercept=0.0)
ENSEMBLE_KEY = "_ensemble"


@dataclass
class Calibration:
    """Per-model maps from signals to P(correct); ``ENSEMBLE_KEY`` scores the ensemble's answer."""

    maps: dict[str, LogisticMap]
    features: tuple[str, ...] = FEATURES
    source: str = "default"

    def score(self, model: str, signals: AnswerSignals) -> float:
        fmap = self.maps.get(model) or self.maps.get("*") or DEFAULT_MAP
        return fmap(signals.features())

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "features": list(self.features),
                "maps": {m: asdict(f) for m, f in self.maps.items()}}

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "json") -> Calibration:
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"calibration fitted on other signals {data.get('features')}, expected {FEATURES}")
        maps = {m: LogisticMap(tuple(float(c) for c in f["coef"]), float(f["intercept"]), int(f.get("n", 0)))
                for m, f in data["maps"].items()}
        return cls(maps, FEATURES, source)

    @classmethod
    def load(cls, path: Path | str) -> Calibration:
        return cls.from_json(json.loads(Path(path).read_text()), source=str(path))


def default_calibration_path() -> Path:
    env = os.environ.get(CALIBRATION_ENV)
    return Path(env).expanduser() if env else cache_root() / "calibration.json"


_loaded: dict[Path, tuple[float, Calibration]] = {}


def load_calibration(path: Path | str | None = None) -> Calibration:
    """The calibration JSON at ``path`` (default: $ENSEMBLE_NB_CALIBRATION or the cache) if it
    exists and is readable, else the default mapping. Re-read when the file changes."""
    p = Path(path) if path is not None else default_calibration_path()
    try:
        mtime = p.stat().st_mtime
    except OSError:
        return Calibration({})
    cached = _loaded.get(p)
    if cached and cached[0] == mtime:
        return cached[1]
    try:
        cal = Calibration.load(p)
    except (OSError, ValueError, KeyError, TypeError):
        return Calibration({})  # a broken file must not break a run: fall back to the default
    _loaded[p] = (mtime, cal)
    return cal
