"""Query variants: the prompt, its keywords, and a rewrite hook (sync, async, a model, broken)."""

from __future__ import annotations

import pytest

from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.retrieval.queries import QueryVariant, keyword_query, model_rewriter, query_variants


@pytest.mark.parametrize(("prompt", "keywords"), [
    ("Which element has the symbol W?", "element symbol W"),
    ("Which element has the symbol In?", "element symbol In"),  # a symbol, not the word "in"
    ("Could you please tell me who discovered tungsten?", "discovered tungsten"),
    ("What's the boiling point of H2O, and of H2O at altitude?", "boiling point H2O altitude"),
    ("Who is it?", "Who is it?"),  # nothing left: the prompt itself
])
def test_keyword_query(prompt: str, keywords: str) -> None:
    assert keyword_query(prompt) == keywords


async def test_prompt_and_keywords_by_default() -> None:
    variants = await query_variants("  Who discovered tungsten?  ")
    assert variants == [QueryVariant("prompt", "Who discovered tungsten?"),
                        QueryVariant("keywords", "discovered tungsten")]
    assert await query_variants("tungsten") == [QueryVariant("prompt", "tungsten")]  # same text once
    assert [v.name for v in await query_variants("Who discovered it first?", keywords=False)] == ["prompt"]


async def test_weights_apply() -> None:
    variants = await query_variants("Who discovered tungsten?", weights={"keywords": 0.25})
    assert [v.weight for v in variants] == [1.0, 0.25]


async def test_sync_and_async_rewrites() -> None:
    def sync(prompt: str) -> str:
        return "  tungsten   wolfram discoverer "

    async def asynchronous(prompt: str) -> str:
        return "wolfram"

    assert (await query_variants("Who found W?", rewrite=sync))[-1] == QueryVariant(
        "rewrite", "tungsten wolfram discoverer")
    assert (await query_variants("Who found W?", rewrite=asynchronous))[-1].text == "wolfram"


async def test_a_broken_or_empty_rewrite_is_skipped() -> None:
    def broken(prompt: str) -> str:
        raise RuntimeError("model not loaded")

    assert [v.name for v in await query_variants("Who found W?", rewrite=broken)] == ["prompt", "keywords"]
    assert [v.name for v in await query_variants("Who found W?", rewrite=lambda p: " ")] == ["prompt", "keywords"]


async def test_model_rewriter_takes_the_first_line_of_a_models_answer() -> None:
    provider = ScriptedProvider("small", steps_from_text("\"tungsten wolfram discovery\"\nThat is the query."))
    rewrite = model_rewriter(provider, max_tokens=16)
    assert await rewrite("Who discovered tungsten?") == "tungsten wolfram discovery"
    request = provider.requests[0]
    assert request.prompt.endswith("Question: Who discovered tungsten?") and request.max_tokens == 16
