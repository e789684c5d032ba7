"""Indexes cached by the content of their corpus, in memory and on disk.

The key is a hash of the documents (text and source), the tokenizer's version and whether
stemming is on — never a path or a modification time — so an edited file always gives a new
index and an unchanged corpus reuses the old one, even from another process or notebook
session. The disk cache lives under ``$ENSEMBLE_NB_CACHE`` or ``~/.cache/ensemble_nb``;
it is best effort: a cache that cannot be written or read only costs a rebuild.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ensemble_nb.core.paths import cache_root
from ensemble_nb.core.retrieval.bm25 import TOKENIZER_VERSION, Bm25Index, stemming_enabled
from ensemble_nb.core.retrieval.corpus import Document, corpus_hash
from ensemble_nb.core.retrieval.dense import DenseIndex, Encoder

Origin = Literal["memory", "disk", "built"]
_MEMORY_SLOTS = 8  # a notebook rarely uses more corpora at once; each slot may hold embeddings


def cache_dir() -> Path:
    return cache_root() / "retrieval"


@dataclass
class CorpusIndex:
    """A corpus with its BM25 index and, once asked for, its embeddings."""

    key: str
    docs: Sequence[Document]
    bm25: Bm25Index
    dense: dict[str, DenseIndex] = field(default_factory=dict)  # by encoder name
    origin: Origin = "built"


class IndexCache:
    """Builds or finds the index of a corpus. Thread-safe: indexing runs in worker threads."""

    def __init__(self, directory: Path | None = None, *, disk: bool = True) -> None:
        self.directory = directory
        self.disk = disk
        self._memory: OrderedDict[str, CorpusIndex] = OrderedDict()
        self._lock = threading.RLock()
        self.builds = 0
        self.hits = 0

    def root(self) -> Path:
        return self.directory if self.directory is not None else cache_dir()

    def key_for(self, docs: Sequence[Document]) -> str:
        salt = f"tok={TOKENIZER_VERSION};stem={int(stemming_enabled())};"
        return hashlib.sha256((salt + corpus_hash(docs)).encode()).hexdigest()[:32]

    def get(self, docs: Sequence[Document]) -> CorpusIndex:
        """The index of ``docs``: from memory, else from disk, else built (and saved)."""
        key = self.key_for(docs)
        with self._lock:
            if (index := self._memory.get(key)) is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                index.origin = "memory"
                return index
            index = self._load(key, docs)
            if index is None:
                index = CorpusIndex(key, list(docs), Bm25Index.build([d.text for d in docs]))
                self.builds += 1
                self._save_bm25(index)
            else:
                self.hits += 1
            self._memory[key] = index
            while len(self._memory) > _MEMORY_SLOTS:
                self._memory.popitem(last=False)
            return index

    def dense_for(self, index: CorpusIndex, encoder: Encoder) -> DenseIndex:
        """The embeddings of ``index``'s corpus by ``encoder``, computed once and kept on disk."""
        with self._lock:
            if (dense := index.dense.get(encoder.name)) is not None:
                return dense
            path = self.root() / index.key / f"dense-{_safe(encoder.name)}.npy"
            dense = None
            if self.disk and path.exists():
                try:
                    dense = DenseIndex.load(path, encoder)
                    if dense.vectors.shape[0] != len(index.docs):
                        dense = None
                except (OSError, ValueError):
                    dense = None
            if dense is None:
                dense = DenseIndex.build([d.text for d in index.docs], encoder)
                if self.disk:
                    try:
                        path.parent.mkdir(parents=True, exist_ok=True)
                        dense.save(path)
                    except OSError:
                        pass
            index.dense[encoder.name] = dense
            return dense

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()

    def _load(self, key: str, docs: Sequence[Document]) -> CorpusIndex | None:
        folder = self.root() / key / "bm25"
        if not self.disk or not (folder / "ensemble_nb.json").exists():
            return None
        try:
            bm25 = Bm25Index.load(folder)
        except Exception:  # a torn or old entry, whatever bm25s raises for it: rebuild
            return None
        if bm25.size != len(docs):
            return None
        return CorpusIndex(key, list(docs), bm25, origin="disk")

    def _save_bm25(self, index: CorpusIndex) -> None:
        if not self.disk:
            return
        final = self.root() / index.key / "bm25"
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            # Write aside, then rename: a reader never sees half an index.
            tmp = Path(tempfile.mkdtemp(prefix=".bm25-", dir=final.parent))
            index.bm25.save(tmp)
            if final.exists():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.rename(final)
        except OSError:
            pass


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


_default: IndexCache | None = None
_default_lock = threading.Lock()


def default_cache() -> IndexCache:
    """The process's shared cache: every retriever over the same corpus shares one index."""
    global _default
    with _default_lock:
        if _default is None:
            _default = IndexCache()
        return _default
