"""The ensemble retriever: several queries × several retrievers, fused into one ranking.

An ensemble of rankers is to retrieval what the model ensemble is to answers: each query
variant (the prompt, its keywords, a rewrite) is searched with BM25 and, when asked for
(``dense=True``, needs the ``dense`` extra), with embeddings; reciprocal rank fusion merges the
rankings. A passage
that several of them found ranks above one that only a single ranker liked, and each
:class:`~ensemble_nb.core.events.Passage` says which rankers found it.

Indexing and searching are CPU-bound and block, so they run in a worker thread: the event loop
keeps streaming tokens and serving widgets meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ensemble_nb.core.events import Passage, RetrievalDone
from ensemble_nb.core.retrieval.bm25 import tokenize
from ensemble_nb.core.retrieval.corpus import CHUNK_WORDS, Document, load_corpus
from ensemble_nb.core.retrieval.dense import Encoder, MiniLmEncoder, dense_available
from ensemble_nb.core.retrieval.fusion import RRF_K, Ranking, reciprocal_rank_fusion
from ensemble_nb.core.retrieval.index import IndexCache, default_cache
from ensemble_nb.core.retrieval.queries import QueryVariant, Rewriter, keyword_query, query_variants

DenseMode = bool | Literal["auto"]

# A ranker's hits scoring below this fraction of its best hit are dropped before fusion. RRF
# sees ranks only, so without a cut a BM25 hit that shares nothing but a word found in every
# passage ("element") votes like a real one, and outvotes the one passage that matched the
# rare word. MiniLM's cosines crowd together (unrelated passages on one topic score close to
# related ones), so only those near the best carry signal.
MIN_RELATIVE_SCORE = {"bm25": 0.1, "dense": 0.9}
# Embeddings proved weaker than BM25 on every question family of benchmarks/retrieval_recall.py,
# so they are a tie-breaker and second opinion, not an equal vote.
DEFAULT_WEIGHTS = {"bm25": 1.0, "dense": 0.5}


@dataclass(frozen=True, slots=True)
class Hits:
    """What one ranker returned for one query variant: ``(doc_id, score)``, best first."""

    ranker: str
    variant: QueryVariant
    scored: list[tuple[int, float]]


class EnsembleRetriever:
    """A :data:`~ensemble_nb.core.run.Retriever`: ``await retriever(prompt)`` → ``RetrievalDone``.

    ``source`` is a folder, a file, a list of strings or a DataFrame column. A path is read
    again at every call, so edits to the files are picked up (the index is rebuilt only if the
    content changed); other sources are copied once.
    ``dense``: ``True`` adds embeddings (the ``dense`` extra); ``"auto"`` adds them when that
    extra is installed. Off by default: loading the model costs seconds and, on the project's
    benchmark, did not improve recall over BM25.
    ``weights`` may weigh rankers (``"bm25"``, ``"dense"``) and variants (``"prompt"``,
    ``"keywords"``, ``"rewrite"``); a ranking's weight is the product of its two.
    """

    def __init__(self, source: Any, top_k: int = 5, *, column: str | None = None, dense: DenseMode = False,
                 keywords: bool = True, rewrite: Rewriter | None = None, weights: dict[str, float] | None = None,
                 candidates: int | None = None, rrf_k: int = RRF_K, max_words: int = CHUNK_WORDS,
                 min_relative_score: dict[str, float] | None = None,
                 cache: IndexCache | None = None, encoder: Encoder | None = None) -> None:
        if top_k < 1:
            raise ValueError("top_k must be at least 1")
        self.top_k = top_k
        self.column = column
        self.max_words = max_words
        self.path = Path(source).expanduser() if isinstance(source, str | Path) else None
        # Reading now turns a bad source into a UserError when the run is prepared, not mid-run.
        self._docs: list[Document] = load_corpus(source, column=column, max_words=max_words)
        self.use_dense = dense_available() if dense == "auto" else bool(dense)
        self.encoder: Encoder | None = (encoder or MiniLmEncoder()) if self.use_dense else None
        self.keywords = keywords
        self.rewrite = rewrite
        self.weights = {**DEFAULT_WEIGHTS, **(weights or {})}
        self.min_relative_score = {**MIN_RELATIVE_SCORE, **(min_relative_score or {})}
        self.candidates = candidates if candidates is not None else max(20, 4 * top_k)
        self.rrf_k = rrf_k
        self.cache = cache if cache is not None else default_cache()

    async def __call__(self, prompt: str) -> RetrievalDone:
        started = time.monotonic()
        variants = await query_variants(prompt, keywords=self.keywords, rewrite=self.rewrite, weights=self.weights)
        passages = await asyncio.to_thread(self.search_variants, variants)
        # The run does not tell us its id; retrieval is the first thing a run does, so the time
        # it took is, to within a millisecond, the event's time since the run started.
        return RetrievalDone(run_id="", t=time.monotonic() - started, query=prompt, passages=tuple(passages))

    def search(self, prompt: str) -> list[Passage]:
        """Blocking search with the prompt and its keywords (no rewrite: that hook may be async)."""
        variants = [QueryVariant("prompt", prompt, self.weights.get("prompt", 1.0))]
        if self.keywords:
            variants.append(QueryVariant("keywords", keyword_query(prompt), self.weights.get("keywords", 1.0)))
        return self.search_variants(variants)

    def documents(self) -> list[Document]:
        """The current corpus; a path is read again so that edits count."""
        if self.path is not None:
            self._docs = load_corpus(self.path, column=self.column, max_words=self.max_words)
        return self._docs

    def hits(self, variants: Sequence[QueryVariant]) -> tuple[list[Document], list[Hits]]:
        """Every ranker's scored answer to every variant, before cuts, weights and fusion."""
        docs = self.documents()
        index = self.cache.get(docs)
        out: list[Hits] = []
        seen_tokens: list[list[str]] = []
        for v in variants:
            tokens = sorted(tokenize(v.text))
            if tokens in seen_tokens:  # the same words would only repeat the same vote
                continue
            seen_tokens.append(tokens)
            out.append(Hits("bm25", v, index.bm25.search(v.text, self.candidates)))
        if self.encoder is not None:
            dense = self.cache.dense_for(index, self.encoder)
            for v in variants:
                if v.name == "keywords":  # embeddings read whole sentences; a word list adds little
                    continue
                out.append(Hits("dense", v, dense.search(v.text, self.candidates)))
        return docs, out

    def ranking(self, hits: Hits) -> Ranking:
        """One ranker's hits as a weighted ranking, its weak hits cut."""
        return Ranking(f"{hits.ranker}:{hits.variant.name}", _strong(hits.scored, self.min_relative_score[hits.ranker]),
                       hits.variant.weight * self.weights[hits.ranker])

    def rankings(self, variants: Sequence[QueryVariant]) -> tuple[list[Document], list[Ranking]]:
        docs, hits = self.hits(variants)
        return docs, [self.ranking(h) for h in hits]

    def search_variants(self, variants: Sequence[QueryVariant]) -> list[Passage]:
        """Blocking: rank with every variant and ranker, fuse, keep the ``top_k`` best."""
        docs, rankings = self.rankings(variants)
        fused = reciprocal_rank_fusion(rankings, k=self.rrf_k, top_k=self.top_k)
        return [Passage(docs[f.doc_id].text, docs[f.doc_id].source, f.score, f.retrievers) for f in fused]


def _strong(hits: list[tuple[int, float]], ratio: float) -> list[int]:
    """The ids of the hits scoring at least ``ratio`` × the best (all of them if the best is <= 0)."""
    if not hits or hits[0][1] <= 0:
        return [d for d, _ in hits]
    floor = ratio * hits[0][1]
    return [d for d, score in hits if score >= floor]


def make_retriever(source: Any, top_k: int = 5, **options: Any) -> EnsembleRetriever:
    """A retriever for ``prepare(prompt, retriever=...)`` over ``source``.

    ``source``: a folder or file path (``.txt``/``.md``), a list of strings, or a DataFrame
    column; a ready ``EnsembleRetriever`` is returned as it is. ``options`` are those of
    :class:`EnsembleRetriever`. Raises :class:`~ensemble_nb.core.errors.UserError` for a
    missing, unreadable or empty source.
    """
    if isinstance(source, EnsembleRetriever):
        return source
    return EnsembleRetriever(source, top_k, **options)
