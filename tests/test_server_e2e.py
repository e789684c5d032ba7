"""A real OpenAI-compatible server (llama-cpp-python's, started AMX-safe) end to end.

Greedy tokens and logprobs through the server match the in-process ``LlamaLocalProvider`` to
float precision, once three systematic differences are removed:

* the system prompt: without one the in-process provider sends "You are a helpful
  assistant." while the server's chat template inserts SmolLM2's own, so both get it here;
* ``repeat_penalty``: llama-cpp-python's server applies 1.1 by default, which changes greedy
  picks (e.g. "\\n" instead of "\\n\\n") though not the reported (raw) logprobs; the
  OpenAI-compatible provider cannot send extra body fields, so a transport adds 1.0;
* prefix reuse: the server keeps the KV cache of a prompt prefix shared with the previous
  request, and llama.cpp's logits depend on batching (up to ~0.1 apart), so the server runs
  with ``--no-prefix-cache``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import aclosing

import httpx
import pytest

from ensemble_nb.core import ModelFailed, ModelFinished, prepare
from ensemble_nb.core.events import Event, TokenReceived
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
from ensemble_nb.core.providers.retrying import RetryingProvider
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.registry import resolve
from ensemble_nb.core.tokens import Token

embedded = pytest.importorskip("ensemble_nb.core.providers.embedded")
pytest.importorskip("llama_cpp.server")
from ensemble_nb.testing.llama_server import LlamaServer  # noqa: E402

pytestmark = pytest.mark.local

SYSTEM = "You are a helpful assistant."
MODEL_ID = "llamacpp:smollm2"
SERVER_ARGS = ("--no-prefix-cache", "--n-threads", "1")


class GreedyTransport(httpx.AsyncBaseTransport):
    """Adds ``repeat_penalty: 1.0`` to chat requests, so the server's greedy is plain argmax."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        body["repeat_penalty"] = 1.0
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        return await self.inner.handle_async_request(
            httpx.Request(request.method, request.url, headers=headers, json=body))

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> LlamaServer:
    srv = LlamaServer(embedded.smollm2_path(), extra_args=SERVER_ARGS)
    request.addfinalizer(srv.stop)
    return srv.start()


@pytest.fixture
def remote(server: LlamaServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("LLAMACPP_BASE_URL", server.base_url)
    yield MODEL_ID


async def _tokens(provider: Provider, request: GenerationRequest) -> list[Token]:
    out: list[Token] = []
    try:
        async with aclosing(provider.stream(request)) as stream:
            async for item in stream:
                if isinstance(item, Token):
                    out.append(item)
    finally:
        await provider.aclose()
    return out


@pytest.mark.parametrize("prompt", ["What is the capital of France?", "Name three primary colors."])
async def test_greedy_stream_matches_the_in_process_model(remote: str, prompt: str) -> None:
    from ensemble_nb.core.providers.llama_local import LlamaLocalProvider

    request = GenerationRequest(prompt=prompt, system=SYSTEM, max_tokens=16, top_k=5)
    async with httpx.AsyncClient(transport=GreedyTransport(), timeout=60.0) as client:
        served = await _tokens(OpenAICompatProvider(resolve(remote), client), request)
    local = await _tokens(LlamaLocalProvider(resolve("smollm2"), n_threads=1), request)

    assert [t.text for t in served] == [t.text for t in local]
    assert all(t.entropy_kind == "topk" and len(t.alternatives) == 5 for t in served)
    diffs = [abs(a.logprob - b.logprob) for a, b in zip(served, local, strict=True)
             if a.logprob is not None and b.logprob is not None]
    assert len(diffs) == len(local) and max(diffs) < 1e-4, max(diffs)
    print(f"max logprob difference over {len(diffs)} tokens: {max(diffs):.2e}")
    for a, b in zip(served, local, strict=True):
        theirs = {alt.text: alt.logprob for alt in b.alternatives}
        shared = [abs(alt.logprob - theirs[alt.text]) for alt in a.alternatives if alt.text in theirs]
        assert len(shared) >= 4 and max(shared) < 1e-4  # a near-tie may swap the 5th alternative


async def test_killing_the_server_mid_stream_fails_only_that_member(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server of its own: the module's one must outlive this test.
    with LlamaServer(embedded.smollm2_path(), extra_args=SERVER_ARGS) as doomed:
        steady = ScriptedProvider("scripted:steady", steps_from_text("one two three four five six seven eight"),
                                  token_delay=0.15)
        # Read when the member starts, not by prepare(): set for the whole run.
        monkeypatch.setenv("LLAMACPP_BASE_URL", doomed.base_url)
        run = prepare("Write a long story about a dragon and a knight.", models=[MODEL_ID, "scripted:steady"],
                      providers={"scripted:steady": steady}, system=SYSTEM, max_tokens=300, timeout=60)

        def kill_on_first_token(event: Event) -> None:
            if isinstance(event, TokenReceived) and event.model == MODEL_ID and event.index == 2:
                doomed.kill()

        run.add_listener(kill_on_first_token)
        result = await run.wait()

    failed = result.models[MODEL_ID].end
    assert isinstance(failed, ModelFailed), failed
    assert failed.error_kind == "server_error" and "dropped mid-answer" in failed.error
    assert failed.n_tokens >= 3 and failed.text  # the partial answer is kept
    assert isinstance(result.models["scripted:steady"].end, ModelFinished)
    assert result.status == "partial"
    provider = run.members[MODEL_ID].provider
    assert isinstance(provider, RetryingProvider) and provider.attempts == []  # no retry after tokens
    for _ in range(3):  # let asyncio finish closing generators httpx left to the GC
        await asyncio.sleep(0)
    assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()
