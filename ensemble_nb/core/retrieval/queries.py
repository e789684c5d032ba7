"""The queries one prompt turns into: the prompt itself, its keywords, and optionally a rewrite.

A prompt is written for a model ("Could you tell me who discovered tungsten, please?"), not for
a search engine. Asking the retrievers more than one phrasing and fusing the answers finds
passages that any single phrasing misses, and a passage found by several phrasings ranks higher.
The rewrite is a hook, a callable (sync or async) the caller supplies — typically a small local
model — so that this module stays free of any provider and costs nothing when unused.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.retrieval.bm25 import is_symbol_like
from ensemble_nb.core.tokens import Token

Rewriter = Callable[[str], Awaitable[str] | str]

_APOSTROPHE = re.compile(r"['’]")
_WORD = re.compile(r"[\w][\w'’.-]*[\w]|\w", re.UNICODE)
# Words that shape a request but say nothing about its topic.
_FILLER = frozenset("""
a an the and or but if then so of to in on at by for with from into about as is are was were be been being
am do does did done has have had having can could would should will shall may might must
what which who whom whose when where why how whether
i me my we us our you your he she it its they them their this that these those there here
please tell explain describe give show list find know let like want need say said just also very really
some any all each every much many more most other such than not no yes
""".split())

REWRITE_INSTRUCTION = ("Rewrite the question below as a short search query: the key terms only, "
                       "with any obvious synonyms. Answer with the query alone.\n\nQuestion: ")


@dataclass(frozen=True, slots=True)
class QueryVariant:
    """One phrasing of the prompt, the name its ranking goes by, and its weight in fusion."""

    name: str
    text: str
    weight: float = 1.0


def keyword_query(prompt: str) -> str:
    """The prompt's content words in their order, each once, case kept: "In" in "the symbol In"
    is a symbol, not the filler word "in".

    Falls back to the stripped prompt when nothing is left, so that a query is never empty.
    """
    seen: set[str] = set()
    words: list[str] = []
    for m in _WORD.finditer(prompt):
        word = m.group().strip(".'’-")
        key = word.lower()
        if (base := _APOSTROPHE.split(key)[0]) in _FILLER:  # "what's", "it's": filler too
            key = base
        symbol = bool(word) and is_symbol_like(word, prompt[max(0, m.start() - 4):m.start()])
        if not word or (key in _FILLER and not symbol) or key in seen:
            continue
        seen.add(key)
        words.append(word)
    return " ".join(words) or prompt.strip()


async def query_variants(prompt: str, *, keywords: bool = True, rewrite: Rewriter | None = None,
                         weights: dict[str, float] | None = None) -> list[QueryVariant]:
    """The variants to search with, the prompt first. Duplicates are dropped.

    A rewrite that fails or comes back empty is skipped: retrieval must never stop a run.
    """
    w = {"prompt": 1.0, "keywords": 1.0, "rewrite": 1.0, **(weights or {})}
    variants = [QueryVariant("prompt", prompt.strip(), w["prompt"])]
    if keywords:
        variants.append(QueryVariant("keywords", keyword_query(prompt), w["keywords"]))
    if rewrite is not None:
        try:
            out = rewrite(prompt)
            text = await out if inspect.isawaitable(out) else out
        except Exception:  # a broken hook degrades to the other variants
            text = ""
        text = " ".join(str(text).split())
        if text:
            variants.append(QueryVariant("rewrite", text, w["rewrite"]))
    unique: list[QueryVariant] = []
    for v in variants:
        if v.text and all(v.text.lower() != u.text.lower() for u in unique):
            unique.append(v)
    return unique


def model_rewriter(provider: Provider, *, max_tokens: int = 32) -> Callable[[str], Awaitable[str]]:
    """A rewrite hook that asks ``provider`` (e.g. a small local model) for a search query."""

    async def rewrite(prompt: str) -> str:
        request = GenerationRequest(prompt=REWRITE_INSTRUCTION + prompt, max_tokens=max_tokens,
                                    temperature=0.0, top_k=0)
        parts: list[str] = []
        stream: AsyncGenerator[object, None] = provider.stream(request)
        async with aclosing(stream):
            async for item in stream:
                if isinstance(item, Token):
                    parts.append(item.text)
        # Models like to add a preamble line; the query is the first line that has words.
        lines = [ln.strip(" \"'`*-") for ln in "".join(parts).splitlines()]
        return next((ln for ln in lines if ln), "")

    return rewrite
