"""Lexical retrieval: BM25 from the ``bm25s`` library over our own tokens.

The tokens are ours, not ``bm25s.tokenize``'s, for one reason: short capitalised words inside a
sentence are kept with their case ("W", "Fe", "In") instead of being lower-cased, dropped as
one-letter words or removed as stop words ("in", "as", "be"). Symbols, units and abbreviations
are often the most telling word of a question ("Which element has the symbol W?").
Everything else is lower-cased, stop words are dropped and words are stemmed when PyStemmer is
installed. ``bm25s`` is imported lazily so that importing ``ensemble_nb.core`` stays cheap.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ensemble_nb.core.errors import UserError

TOKENIZER_VERSION = "1"  # part of the cache key: bump when tokens change
_WORD = re.compile(r"\w+", re.UNICODE)
_SENTENCE_END = re.compile(r"(?:^|[.!?:;\n]['\")\]]*)\s*$")


class _Stemmer(Protocol):
    def stemWords(self, words: list[str]) -> list[str]: ...  # PyStemmer spells it so


def require_bm25s() -> Any:
    """The ``bm25s`` module, or a :class:`UserError` saying how to install it."""
    # import_module: bm25s ships no type information, and this keeps it out of import time too
    try:
        return importlib.import_module("bm25s")
    except ImportError as exc:
        raise UserError("rag needs the bm25s package: pip install bm25s") from exc


@cache
def _stopwords() -> frozenset[str]:
    require_bm25s()
    english: list[str] = importlib.import_module("bm25s.stopwords").STOPWORDS_EN
    # bm25s' list is short; questions add their own scaffolding words
    return frozenset(english) | {"which", "what", "who", "whom", "whose", "when", "where", "why", "how",
                                 "does", "did", "do", "has", "have", "had", "was", "were", "are",
                                 "you", "your", "me", "my", "we", "our", "could", "would", "should", "please"}


_local = threading.local()


def _stemmer() -> _Stemmer | None:
    """One stemmer per thread: PyStemmer's objects must not be shared between threads."""
    if not hasattr(_local, "stemmer"):
        try:
            module = importlib.import_module("Stemmer")
        except ImportError:  # stemming only helps recall a little: run without it
            _local.stemmer = None
        else:
            _local.stemmer = module.Stemmer("english")
    stemmer: _Stemmer | None = _local.stemmer
    return stemmer


def stemming_enabled() -> bool:
    return _stemmer() is not None


def is_symbol_like(word: str, before: str) -> bool:
    """A one- or two-letter capitalised word that does not start a sentence: "W", "Fe", "In"."""
    return (len(word) <= 2 and word[0].isupper() and word.isalpha()
            and (len(word) == 1 or word[1].islower()) and not _SENTENCE_END.search(before))


def tokenize(text: str) -> list[str]:
    """BM25 tokens of ``text``: symbol-like words kept as written, others normalised."""
    stop = _stopwords()
    kept: list[str] = []
    plain: list[str] = []
    for m in _WORD.finditer(text):
        word = m.group()
        if is_symbol_like(word, text[max(0, m.start() - 4):m.start()]):
            kept.append(word)
            continue
        lower = word.lower()
        if lower in stop or (len(lower) == 1 and not lower.isdigit()):
            continue
        plain.append(lower)
    stemmer = _stemmer()
    if stemmer is not None:
        plain = stemmer.stemWords(plain)
    return plain + kept


class Bm25Index:
    """A BM25 index over a list of texts. Building and searching block: call them in a thread."""

    def __init__(self, model: Any, size: int) -> None:
        self.model = model
        self.size = size

    @classmethod
    def build(cls, texts: Sequence[str]) -> Bm25Index:
        bm25s = require_bm25s()
        model = bm25s.BM25()
        # A text with no token would be an empty list: bm25s indexes it as a document matching nothing.
        model.index([tokenize(t) for t in texts], show_progress=False)
        return cls(model, len(texts))

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` ``(doc_id, score)``, best first; documents sharing no word are left out."""
        tokens = [t for t in tokenize(query) if t in self.model.vocab_dict]
        if not tokens or k <= 0:
            return []
        scores = np.asarray(self.model.get_scores(tokens), dtype=np.float64)
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        # Stable order among equal scores: the earlier document first, as a reader would expect.
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, directory: Path) -> None:
        self.model.save(str(directory), show_progress=False)
        (directory / "ensemble_nb.json").write_text(json.dumps({"size": self.size}))

    @classmethod
    def load(cls, directory: Path) -> Bm25Index:
        bm25s = require_bm25s()
        meta = json.loads((directory / "ensemble_nb.json").read_text())
        model = bm25s.BM25.load(str(directory), show_progress=False)
        return cls(model, int(meta["size"]))
