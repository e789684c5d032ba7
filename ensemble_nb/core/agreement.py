"""Agreement across members: answers clustered by meaning, and semantic entropy over the clusters.

Two answers mean the same when their answer-bearing spans match after normalisation
(lowercase, no punctuation or articles, number words as digits), or when one's words contain
the other's ("Scheele" and "Carl Wilhelm Scheele"), or when a pluggable ``judge`` says so
(an entailment model, an LLM, an embedding threshold).

Semantic entropy (Farquhar et al., Nature 2024) is the entropy of the distribution over
meaning clusters rather than over strings. Here each answer carries a weight (its member's
confidence) instead of a sequence probability, so a confident member counts for more than a
guessing one; with equal weights it is the paper's discrete variant.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Judge = Callable[[str, str], bool]
"""Whether two answer texts mean the same. Should be symmetric (bidirectional entailment)."""

_ARTICLES = frozenset({"a", "an", "the"})
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
         "ninety": 90}


def _number_words(words: list[str]) -> list[str]:
    """"one hundred and eighteen" -> "118", "twenty-six" -> "26"; other words unchanged."""
    out: list[str] = []
    value: int | None = None
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "hundred" and value is not None:
            value *= 100
        elif w in _UNITS or w in _TENS:
            value = (value or 0) + _UNITS.get(w, 0) + _TENS.get(w, 0)
        elif w == "and" and value is not None and (nxt in _UNITS or nxt in _TENS):
            pass  # "hundred and eighteen" is one number
        else:
            if value is not None:
                out.append(str(value))
                value = None
            out.append(w)
    if value is not None:
        out.append(str(value))
    return out


def normalise(text: str) -> str:
    """Lowercase, accents and punctuation removed, articles dropped, numbers as digits."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    text = re.sub(r"(\d)\.0+\b", r"\1", text)  # 16.0 -> 16
    text = re.sub(r"[-‐–]", " ", text)
    words = re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", text)
    return " ".join(w for w in _number_words(words) if w not in _ARTICLES)


def default_judge(a: str, b: str) -> bool:
    """Same normalised text, or all the words of the shorter answer appear in the longer one."""
    na, nb = normalise(a), normalise(b)
    if not na or not nb:
        return False
    if na == nb:
        return True
    wa, wb = set(na.split()), set(nb.split())
    small, big = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    # Single-letter or number-only overlaps ("2" in "2 electrons") are too weak on their own
    # unless the whole shorter answer is that token.
    return small <= big and any(len(w) > 2 or w.isdigit() for w in small)


def matches(answer: str, accepted: Sequence[str]) -> bool:
    """Whether ``answer`` contains one of the accepted answers as whole normalised words."""
    na = f" {normalise(answer)} "
    return any(n and f" {n} " in na for n in (normalise(x) for x in accepted))


@dataclass(frozen=True, slots=True)
class Cluster:
    """Answers (by index) that mean the same, and their share of the total weight."""

    members: tuple[int, ...]
    weight: float
    share: float
    representative: str


def cluster_answers(answers: Sequence[str], weights: Sequence[float] | None = None,
                    judge: Judge | None = None) -> list[Cluster]:
    """Greedy clustering: each answer joins the first cluster whose representative it matches.

    Empty answers each stay alone (an answer nobody gave agrees with nothing). Clusters come
    heaviest first.
    """
    judge = judge or default_judge
    w = [max(float(x), 0.0) for x in (weights if weights is not None else [1.0] * len(answers))]
    if len(w) != len(answers):
        raise ValueError("give one weight per answer")
    groups: list[list[int]] = []
    for i, ans in enumerate(answers):
        for g in groups:
            rep = answers[g[0]]
            if ans.strip() and rep.strip() and judge(ans, rep):
                g.append(i)
                break
        else:
            groups.append([i])
    total = sum(w) or 1.0
    clusters = [Cluster(tuple(g), sum(w[i] for i in g), 0.0, answers[g[0]]) for g in groups]
    if not sum(w):  # nobody is confident at all: fall back to counting answers
        total = float(len(answers)) or 1.0
        clusters = [Cluster(c.members, float(len(c.members)), 0.0, c.representative) for c in clusters]
    out = [Cluster(c.members, c.weight, c.weight / total, c.representative) for c in clusters]
    return sorted(out, key=lambda c: -c.weight)


def semantic_entropy(clusters: Sequence[Cluster]) -> float:
    """Entropy (nats) of the weight shares of the meaning clusters: 0 when all agree."""
    return float(-sum(c.share * math.log(c.share) for c in clusters if c.share > 0))


def support(clusters: Sequence[Cluster], index: int) -> float:
    """Weight share of the cluster holding answer ``index``: how much of the ensemble agrees."""
    for c in clusters:
        if index in c.members:
            return c.share
    return 0.0


def peer_agreement(clusters: Sequence[Cluster], index: int, n: int) -> float:
    """Share of the other ``n - 1`` answers in the same meaning cluster as answer ``index``.

    Unweighted on purpose: the member's own confidence is a signal of its own, and mixing it
    into agreement would make a sure-but-alone member look agreed with.
    """
    if n <= 1:
        return 0.0
    size = next((len(c.members) for c in clusters if index in c.members), 1)
    return (size - 1) / (n - 1)
