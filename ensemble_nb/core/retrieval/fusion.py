"""Weighted reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009).

Each retriever contributes ``weight / (k + rank)`` for every document it ranked (rank from 1).
Only ranks are used, never raw scores: BM25 scores and cosine similarities live on scales that
cannot be added, and ranks need no calibration. ``k = 60`` is the paper's constant; it damps
the advantage of a first place so that agreement between retrievers counts for more.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

RRF_K = 60


@dataclass(frozen=True, slots=True)
class Ranking:
    """One retriever's answer: document ids, best first, and how much its vote counts."""

    name: str
    doc_ids: Sequence[int]
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Fused:
    """A document after fusion, with the retrievers that ranked it (in the order given)."""

    doc_id: int
    score: float
    retrievers: tuple[str, ...]
    best_rank: int


def rrf_score(ranks: Iterable[tuple[int, float]], k: int = RRF_K) -> float:
    """The fused score of one document from its ``(rank, weight)`` pairs (rank from 1)."""
    return math.fsum(weight / (k + rank) for rank, weight in ranks)


def reciprocal_rank_fusion(rankings: Sequence[Ranking], k: int = RRF_K, top_k: int | None = None) -> list[Fused]:
    """Fuse rankings into one list, best first.

    Ties (equal score) go to the document with the better single rank, then to the lower doc
    id: the order then depends on the rankings only, never on the order they were passed in.
    A document listed twice by one ranking counts once, at its better rank.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    contributions: dict[int, list[float]] = {}
    found_by: dict[int, list[str]] = {}
    best: dict[int, int] = {}
    for ranking in rankings:
        if ranking.weight < 0:
            raise ValueError(f"ranking {ranking.name!r} has a negative weight")
        seen: set[int] = set()
        for rank, doc_id in enumerate(ranking.doc_ids, start=1):
            if doc_id in seen:
                continue
            seen.add(doc_id)
            contributions.setdefault(doc_id, []).append(ranking.weight / (k + rank))
            names = found_by.setdefault(doc_id, [])
            if ranking.name not in names:
                names.append(ranking.name)
            best[doc_id] = min(best.get(doc_id, rank), rank)
    # fsum is exactly rounded, so a score does not depend on the order the terms were added in
    scores = {d: math.fsum(terms) for d, terms in contributions.items()}
    order = sorted(scores, key=lambda d: (-scores[d], best[d], d))
    if top_k is not None:
        order = order[:top_k]
    return [Fused(d, scores[d], tuple(found_by[d]), best[d]) for d in order]
