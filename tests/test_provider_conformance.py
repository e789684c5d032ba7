"""One conformance suite, run against every provider through its harness."""

from __future__ import annotations

import asyncio
import importlib
import math
from contextlib import aclosing

import pytest

from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.tokens import Completion, Token
from tests.harnesses.base import Harness

HARNESS_MODULES = ["scripted", "openai_compat", "llama_local", "gemini", "anthropic", "bedrock"]


def _load(name: str) -> Harness:
    try:
        module = importlib.import_module(f"tests.harnesses.{name}")
    except ImportError as exc:  # the 'local' extra is optional
        pytest.skip(f"{name}: {exc}")
    harness: Harness = module.HARNESS
    return harness


@pytest.fixture(params=HARNESS_MODULES)
def harness(request: pytest.FixtureRequest) -> Harness:
    return _load(request.param)


async def _collect(harness: Harness, **kw: object) -> tuple[list[Token], list[Completion]]:
    provider = harness.make()
    req = GenerationRequest(prompt=harness.prompt, **kw)
    tokens: list[Token] = []
    ends: list[Completion] = []
    async with aclosing(provider.stream(req)) as stream:
        async for item in stream:
            assert not ends, "nothing may follow the Completion"
            if isinstance(item, Token):
                tokens.append(item)
            else:
                assert isinstance(item, Completion)
                ends.append(item)
    await provider.aclose()
    harness.assert_released(provider)
    return tokens, ends


async def test_tokens_carry_valid_probabilities(harness: Harness) -> None:
    tokens, ends = await _collect(harness, max_tokens=12, top_k=5)
    assert len(tokens) >= 8
    assert "".join(t.text for t in tokens).strip()
    if not getattr(harness, "logprobs", True):
        # A provider without probabilities (Anthropic) must say so instead of inventing them.
        for tok in tokens:
            assert tok.entropy_kind == "none" and tok.entropy is None and tok.bounds is None
            assert tok.logprob is None and tok.alternatives == ()
        assert len(ends) == 1 and ends[0].usage is not None
        return
    for tok in tokens:
        assert tok.logprob is not None and tok.logprob <= 1e-6
        assert tok.entropy is not None and tok.entropy >= 0.0
        assert tok.entropy_kind == ("full" if harness.full_vocab else "topk")
        assert 1 <= len(tok.alternatives) <= 5
        lps = [a.logprob for a in tok.alternatives]
        assert lps == sorted(lps, reverse=True)
        assert all(lp <= 1e-6 for lp in lps)
        assert math.fsum(math.exp(lp) for lp in lps) <= 1.0 + 1e-4
        if tok.entropy_kind == "topk":
            assert tok.bounds is not None
            assert tok.bounds.lower - 1e-9 <= tok.bounds.tight_lower <= tok.entropy + 1e-9
            assert tok.entropy <= tok.bounds.upper + 1e-9
    assert len(ends) == 1
    usage = ends[0].usage
    assert usage is not None and usage.completion_tokens >= len(tokens) - 1


async def test_max_tokens_is_respected(harness: Harness) -> None:
    tokens, ends = await _collect(harness, max_tokens=3)
    assert 1 <= len(tokens) <= 3
    assert ends[0].finish_reason == "length"


async def test_top_k_zero_gives_no_alternatives(harness: Harness) -> None:
    tokens, _ = await _collect(harness, max_tokens=4, top_k=0)
    assert tokens and all(t.alternatives == () for t in tokens)


async def test_greedy_is_deterministic(harness: Harness) -> None:
    a, _ = await _collect(harness, max_tokens=8, temperature=0.0)
    b, _ = await _collect(harness, max_tokens=8, temperature=0.0)
    assert [t.text for t in a] == [t.text for t in b]


async def test_closing_early_releases_everything(harness: Harness) -> None:
    provider = harness.make()
    req = GenerationRequest(prompt=harness.prompt, max_tokens=64)
    seen = 0
    async with aclosing(provider.stream(req)) as stream:
        async for item in stream:
            seen += isinstance(item, Token)
            if seen == 2:
                break
    await provider.aclose()
    harness.assert_released(provider)


async def test_cancelling_the_consumer_stops_promptly(harness: Harness) -> None:
    provider = harness.make()
    req = GenerationRequest(prompt=harness.prompt, max_tokens=64)
    first = asyncio.Event()

    async def consume() -> None:
        async with aclosing(provider.stream(req)) as stream:
            async for _ in stream:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=60)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=5)
    assert task in done, "the stream did not stop within 5 s of cancellation"
    assert task.cancelled()
    await provider.aclose()
    harness.assert_released(provider)
