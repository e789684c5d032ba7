"""Turning what the user hands to ``rag=`` into documents: a folder, a file, strings, a column.

Long texts are cut into chunks on paragraph boundaries: BM25 and embeddings both rank short,
focused passages better than whole files, and a passage is what lands in every member's prompt.
pandas is never imported: a column is recognised by its shape (``tolist`` and ``index``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensemble_nb.core.errors import UserError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")
CHUNK_WORDS = 180  # a few paragraphs: enough context for a member, small enough for five of them

_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class Document:
    """One retrievable passage and where it came from (shown beside it in the UI)."""

    text: str
    source: str


def corpus_hash(docs: Sequence[Document]) -> str:
    """A digest of the texts and their sources: equal corpora share one index."""
    h = hashlib.sha256()
    for doc in docs:
        for part in (doc.source, doc.text):
            data = part.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))  # length-prefixed so ("ab","c") != ("a","bc")
            h.update(data)
    return h.hexdigest()


def chunk_text(text: str, max_words: int = CHUNK_WORDS) -> list[str]:
    """Split on blank lines, then pack paragraphs into chunks of at most ``max_words`` words.

    A paragraph longer than the limit is cut at word boundaries rather than dropped.
    """
    chunks: list[str] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            chunks.append("\n\n".join(current))
            current, size = [], 0

    for para in (p.strip() for p in _PARAGRAPH.split(text)):
        words = para.split()
        if not words:
            continue
        if len(words) > max_words:
            flush()
            chunks.extend(" ".join(words[i:i + max_words]) for i in range(0, len(words), max_words))
            continue
        if size + len(words) > max_words:
            flush()
        current.append(para)
        size += len(words)
    flush()
    return chunks


def load_corpus(source: Any, *, column: str | None = None, max_words: int = CHUNK_WORDS) -> list[Document]:
    """Documents from a path (folder or file), a list of strings, or a DataFrame column.

    Raises :class:`UserError` for a missing or unreadable path, an empty corpus, or a source of
    a type we cannot read.
    """
    if isinstance(source, str | Path):
        docs = _from_path(Path(source).expanduser(), max_words)
    elif hasattr(source, "columns"):  # a DataFrame: take one column of it
        docs = _from_column(_pick_column(source, column), max_words)
    elif hasattr(source, "tolist") and hasattr(source, "index"):  # a Series / DataFrame column
        docs = _from_column(source, max_words)
    elif isinstance(source, Iterable) and not isinstance(source, bytes | dict):
        docs = _from_strings(list(source), max_words)
    else:
        raise UserError(f"rag: cannot read a {type(source).__name__}: pass a folder, a file, "
                        "a list of strings or a DataFrame column")
    if not docs:
        raise UserError("rag: the corpus has no text: add .txt or .md files or non-empty strings")
    return docs


def _from_path(path: Path, max_words: int) -> list[Document]:
    if not path.exists():
        raise UserError(f"rag: {path} does not exist: pass an existing folder or .txt/.md file")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts)) \
        if path.is_dir() else [path]
    if not files:
        raise UserError(f"rag: {path} holds no {'/'.join(TEXT_SUFFIXES)} files: add some or pass another folder")
    docs: list[Document] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise UserError(f"rag: cannot read {file} ({exc.strerror or exc}): check its permissions") from exc
        name = str(file.relative_to(path)) if path.is_dir() else file.name
        docs.extend(_chunks_of(text, name, max_words))
    return docs


def _chunks_of(text: str, name: str, max_words: int) -> list[Document]:
    chunks = chunk_text(text, max_words)
    if len(chunks) == 1:
        return [Document(chunks[0], name)]
    return [Document(chunk, f"{name}#{i + 1}") for i, chunk in enumerate(chunks)]


def _from_strings(items: list[Any], max_words: int) -> list[Document]:
    docs: list[Document] = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise UserError(f"rag: item {i} is a {type(item).__name__}, not a string: pass a list of strings")
        docs.extend(_chunks_of(item, f"item {i}", max_words))
    return docs


def _pick_column(frame: Any, column: str | None) -> Any:
    columns = list(frame.columns)
    if column is None:
        if len(columns) != 1:
            raise UserError(f"rag: the DataFrame has {len(columns)} columns: pass one, e.g. rag=df['text']")
        column = columns[0]
    if column not in columns:
        raise UserError(f"rag: the DataFrame has no column {column!r}: choose one of {columns}")
    return frame[column]


def _from_column(series: Any, max_words: int) -> list[Document]:
    name = getattr(series, "name", None) or "row"
    docs: list[Document] = []
    for label, value in zip(list(series.index), series.tolist(), strict=True):
        if value is None or (isinstance(value, float) and value != value):  # NaN: an empty cell
            continue
        docs.extend(_chunks_of(str(value), f"{name}[{label}]", max_words))
    return docs
