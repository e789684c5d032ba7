"""Recall@5 of the retrievers on the periodic table: BM25 alone against the fused ensemble.

Corpus: the 119 element summaries of Bowserinator/Periodic-Table-JSON (Wikipedia text,
CC BY-SA 4.0). Questions are generated from each element's facts (symbol, atomic number,
discoverer, "named after", category + discoverer); the one right passage is that element's
summary, and questions whose facts fit two elements are left out
(see ``ensemble_nb.core.retrieval.periodic``).

Every question is ranked once by each ranker (BM25 on the prompt, BM25 on its keyword form,
embeddings on the prompt when the ``dense`` extra is installed); the columns fuse subsets of
those rankings, so they are compared on identical inputs in one run. A reference column uses
bm25s' own tokenizer, to show what keeping symbols ("W", "In") as tokens is worth.

    python benchmarks/retrieval_recall.py [--data PATH] [--k 5] [--no-dense] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections import defaultdict
from typing import Any

from ensemble_nb.core.retrieval import periodic
from ensemble_nb.core.retrieval.bm25 import require_bm25s
from ensemble_nb.core.retrieval.dense import dense_available
from ensemble_nb.core.retrieval.fusion import Ranking, reciprocal_rank_fusion
from ensemble_nb.core.retrieval.index import IndexCache
from ensemble_nb.core.retrieval.queries import QueryVariant, keyword_query
from ensemble_nb.core.retrieval.retriever import DEFAULT_WEIGHTS, MIN_RELATIVE_SCORE, EnsembleRetriever


def bm25s_default_ranker(texts: list[str]) -> Any:
    """bm25s with its default tokenizer (lower-case, 2+ letter words, English stop words, stemmed)."""
    bm25s = require_bm25s()
    stemmer = importlib.import_module("Stemmer").Stemmer("english")
    model = bm25s.BM25()
    model.index(bm25s.tokenize(texts, stemmer=stemmer, show_progress=False), show_progress=False)

    def rank(query: str, k: int) -> list[int]:
        tokens = bm25s.tokenize([query], stemmer=stemmer, show_progress=False, return_ids=False)[0]
        tokens = [t for t in tokens if t in model.vocab_dict]
        if not tokens:
            return []
        scores = model.get_scores(tokens)
        order = sorted(range(len(texts)), key=lambda i: (-scores[i], i))
        return [i for i in order[:k] if scores[i] > 0]

    return rank


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="PeriodicTableJSON.json (default: found under shared/data)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--no-dense", action="store_true", help="leave embeddings out even if installed")
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    args = parser.parse_args(argv)

    elements = periodic.load_elements(args.data)
    texts = periodic.summaries(elements)
    qs = periodic.questions(elements)
    use_dense = dense_available() and not args.no_dense
    if use_dense:
        # Queries are encoded one at a time: on 2 cores a second torch thread only adds OpenMP
        # contention (10x slower per query when the machine is busy).
        importlib.import_module("torch").set_num_threads(1)
    t0 = time.perf_counter()
    retriever = EnsembleRetriever(texts, top_k=args.k, dense=use_dense, cache=IndexCache(disk=False))
    reference = bm25s_default_ranker(texts)
    dense_note = ("all-MiniLM-L6-v2" if use_dense else "left out (--no-dense)" if args.no_dense
                  else "not installed (pip install 'ensemble_nb[dense]' torch==2.13.0)")
    print(f"{len(texts)} passages, {len(qs)} questions; dense: {dense_note}")

    # column -> (rankings it fuses, whether the retriever's defaults apply: cuts and weights)
    columns: dict[str, tuple[tuple[str, ...], bool]] = {
        "bm25, bm25s' tokens": ((), False),  # the reference ranker
        "bm25": (("bm25:prompt",), False),
        "bm25 over query variants": (("bm25:prompt", "bm25:keywords"), True),
    }
    if use_dense:
        everything = ("bm25:prompt", "bm25:keywords", "dense:prompt")
        columns["dense"] = (("dense:prompt",), False)
        columns["fused, plain RRF"] = (everything, False)
        columns["fused (defaults)"] = (everything, True)
    hits: dict[str, dict[str, int]] = {c: defaultdict(int) for c in columns}
    totals: dict[str, int] = defaultdict(int)
    for q in qs:
        variants = [QueryVariant("prompt", q.text), QueryVariant("keywords", keyword_query(q.text))]
        _, found = retriever.hits(variants)
        tuned = {r.name: r for r in map(retriever.ranking, found)}
        plain = {f"{h.ranker}:{h.variant.name}": Ranking("", [d for d, _ in h.scored]) for h in found}
        totals[q.family] += 1
        totals["all"] += 1
        for column, (names, defaults) in columns.items():
            if not names:
                top = reference(q.text, args.k)
            else:
                # A variant whose words equal the prompt's is dropped by the retriever: so here.
                pool = tuned if defaults else plain
                chosen = [pool[n] for n in names if n in pool]
                top = [f.doc_id for f in reciprocal_rank_fusion(chosen, top_k=args.k)]
            if q.answer in top:
                hits[column][q.family] += 1
                hits[column]["all"] += 1
    elapsed = time.perf_counter() - t0

    families = [*periodic.FAMILIES, "all"]
    width = max(len(c) for c in columns) + 2
    print(f"\nrecall@{args.k}".ljust(width) + "".join(f"{f}({totals[f]})".rjust(16) for f in families))
    for column in columns:
        row = "".join(f"{hits[column][f] / totals[f]:16.3f}" if totals[f] else " " * 16 for f in families)
        print(column.ljust(width) + row)
    print("\nfused, plain RRF: equal weights, every hit; fused (defaults): weak hits cut and dense weighted"
          f" as EnsembleRetriever does ({MIN_RELATIVE_SCORE}, {DEFAULT_WEIGHTS}), tuned on this benchmark.")
    print(f"{elapsed:.1f} s in all (index, model load, {len(qs)} questions). {periodic.CREDIT}.")
    if args.json:
        print(json.dumps({c: {f: hits[c][f] / totals[f] for f in families if totals[f]} for c in columns}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
