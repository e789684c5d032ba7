"""Retrieval for ``rag=``: a corpus, BM25 and optional embeddings, query variants, rank fusion.

Heavy libraries (bm25s, torch) are imported only when an index is built or searched.
"""

from ensemble_nb.core.retrieval.corpus import Document, load_corpus
from ensemble_nb.core.retrieval.fusion import Fused, Ranking, reciprocal_rank_fusion
from ensemble_nb.core.retrieval.index import IndexCache
from ensemble_nb.core.retrieval.queries import QueryVariant, keyword_query, model_rewriter, query_variants
from ensemble_nb.core.retrieval.retriever import EnsembleRetriever, make_retriever

__all__ = [
    "Document",
    "EnsembleRetriever",
    "Fused",
    "IndexCache",
    "QueryVariant",
    "Ranking",
    "keyword_query",
    "load_corpus",
    "make_retriever",
    "model_rewriter",
    "query_variants",
    "reciprocal_rank_fusion",
]
