"""BM25 tokens and search, and the index cache keyed by corpus content."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensemble_nb.core.retrieval.bm25 import Bm25Index, tokenize
from ensemble_nb.core.retrieval.corpus import Document, load_corpus
from ensemble_nb.core.retrieval.index import IndexCache, cache_dir
from ensemble_nb.core.retrieval.retriever import EnsembleRetriever

TEXTS = [
    "Tungsten, also known as wolfram, is a chemical element with symbol W and atomic number 74.",
    "Indium is a chemical element with symbol In and atomic number 49.",
    "Iron is a chemical element with symbol Fe and atomic number 26. In 1800 it was common.",
]


def test_symbols_keep_their_case_and_stop_words_go() -> None:
    tokens = tokenize("Which element has the symbol In? In 1800, the symbol W was new.")
    assert "In" in tokens and tokens.count("In") == 1  # the sentence-initial "In" is a stop word
    assert "W" in tokens
    assert not {"which", "the", "has", "in"} & set(tokens)


def test_bm25_finds_the_passage_with_the_rare_word() -> None:
    index = Bm25Index.build(TEXTS)
    assert index.search("Which element has the symbol In?", 3)[0][0] == 1
    assert index.search("atomic number 74", 3)[0][0] == 0
    assert index.search("nothing matches zzz", 3) == []
    assert len(index.search("chemical element", 10)) == 3  # k larger than the corpus is fine


def _docs(texts: list[str]) -> list[Document]:
    return [Document(t, f"item {i}") for i, t in enumerate(texts)]


def test_same_corpus_is_a_hit_in_memory_and_on_disk(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    first = cache.get(_docs(TEXTS))
    assert (first.origin, cache.builds) == ("built", 1)
    again = cache.get(_docs(list(TEXTS)))  # equal content, different list objects
    assert again is first and again.origin == "memory" and cache.builds == 1
    other_process = IndexCache(tmp_path)  # a new cache reads what the first saved
    loaded = other_process.get(_docs(TEXTS))
    assert loaded.origin == "disk" and other_process.builds == 0
    assert loaded.bm25.search("symbol Fe", 1) == first.bm25.search("symbol Fe", 1)


def test_changed_content_rebuilds(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    a = cache.get(_docs(TEXTS))
    b = cache.get(_docs([*TEXTS[:2], TEXTS[2] + " Rust is iron oxide."]))
    assert a.key != b.key and cache.builds == 2 and b.origin == "built"
    assert b.bm25.search("rust oxide", 1)[0][0] == 2


def test_a_torn_disk_entry_is_rebuilt(tmp_path: Path) -> None:
    cache = IndexCache(tmp_path)
    key = cache.get(_docs(TEXTS)).key
    for f in (tmp_path / key / "bm25").iterdir():
        if f.suffix == ".npy":
            f.write_bytes(b"garbage")
    fresh = IndexCache(tmp_path)
    assert fresh.get(_docs(TEXTS)).origin == "built" and fresh.builds == 1


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENSEMBLE_NB_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "retrieval"
    monkeypatch.delenv("ENSEMBLE_NB_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "ensemble_nb" / "retrieval"


def test_unwritable_cache_only_costs_a_rebuild(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = IndexCache(blocker)
    assert cache.get(_docs(TEXTS)).bm25.search("symbol W", 1)[0][0] == 0


def test_retriever_over_a_folder_sees_edits(tmp_path: Path) -> None:
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The kettle boils water.")
    (corpus / "b.txt").write_text("The garden grows tomatoes.")
    cache = IndexCache(tmp_path / "cache")
    retriever = EnsembleRetriever(corpus, top_k=1, cache=cache)
    assert retriever.search("what grows in the garden")[0].source == "b.txt"
    retriever.search("tomatoes")
    assert cache.builds == 1 and cache.hits == 1  # unchanged files: the same index
    (corpus / "b.txt").write_text("The garden grows cucumbers.")
    assert retriever.search("cucumbers")[0].text == "The garden grows cucumbers."
    assert cache.builds == 2
    assert load_corpus(corpus)[1].text == "The garden grows cucumbers."


def test_without_bm25s_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from ensemble_nb.core.errors import UserError
    from ensemble_nb.core.retrieval import bm25

    real = importlib.import_module

    def missing(name: str, package: str | None = None) -> object:
        if name == "bm25s":
            raise ImportError("No module named 'bm25s'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(UserError, match="pip install bm25s"):
        bm25.Bm25Index.build(["text"])
