"""A mixed ensemble end to end: a scripted stand-in for a local model, Gemini and Anthropic.

Both remote members talk to fake servers that stream their vendors' real wire formats; the
Anthropic member has no probabilities, and the synthesis must still produce an answer.
"""

from __future__ import annotations

import httpx
import pytest

from ensemble_nb.core import TokenReceived, UserError, prepare
from ensemble_nb.core.providers import effort
from ensemble_nb.core.providers.anthropic import AnthropicProvider
from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.gemini import GeminiProvider
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.registry import resolve
from ensemble_nb.core.result import RunResult
from tests.anthropic_mock import MockAnthropicServer
from tests.gemini_mock import MockGeminiServer, tokens_from_text
from tests.harnesses.anthropic import SPEC as ANTHROPIC_SPEC
from tests.harnesses.gemini import SPEC as GEMINI_SPEC

ANSWER = "The capital of France is Paris."


def _check(result: RunResult, local: str, gemini: str, claude: str) -> None:
    assert result.status == "ok"
    assert {m: r.status for m, r in result.models.items()} == {local: "finished", gemini: "finished",
                                                              claude: "finished"}
    kinds = {m: {t.entropy_kind for t in r.tokens} for m, r in result.models.items()}
    assert kinds == {local: {"full"}, gemini: {"topk"}, claude: {"none"}}
    assert all(t.logprob is None and t.entropy is None for t in result.models[claude].tokens)
    assert all(r.text == ANSWER for r in result.models.values())
    synthesis = result.synthesis
    assert synthesis is not None and synthesis.text == ANSWER
    # The member without probabilities is scored, not dropped: its note is in the synthesis.
    assert any(note.startswith(f"{claude}:") for note in synthesis.notes)


async def test_mixed_ensemble_with_given_providers() -> None:
    gemini_server = MockGeminiServer(tokens_from_text(ANSWER, 0.9), delay=0.002)
    claude_server = MockAnthropicServer(tokens_from_text(ANSWER), delay=0.002)
    providers: dict[str, Provider] = {
        "local": ScriptedProvider("local", steps_from_text(ANSWER, 0.6), token_delay=0.002),
        GEMINI_SPEC.id: GeminiProvider(GEMINI_SPEC, gemini_server.client(), api_key="AIza-fake-0123456789"),
        ANTHROPIC_SPEC.id: AnthropicProvider(ANTHROPIC_SPEC, claude_server.client(), api_key="sk-ant-fake-0123"),
    }
    handle = prepare("What is the capital of France?", models=list(providers), providers=providers,
                     max_tokens=16)
    result = await handle
    _check(result, "local", GEMINI_SPEC.id, ANTHROPIC_SPEC.id)
    assert gemini_server.open_streams == 0 and claude_server.open_streams == 0
    tokens = [e for e in result.events if isinstance(e, TokenReceived)]
    assert {e.model for e in tokens} == set(providers)


async def test_mixed_ensemble_through_the_registry_with_one_injected_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-fake-0123456789")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-0123456789")
    for var in ("GEMINI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    gemini_server = MockGeminiServer(tokens_from_text(ANSWER, 0.9), delay=0.002)
    claude_server = MockAnthropicServer(tokens_from_text(ANSWER), delay=0.002)

    async def route(request: httpx.Request) -> httpx.Response:
        # The real vendor addresses, answered in-process: nothing leaves the machine.
        if request.url.host == "generativelanguage.googleapis.com":
            return await gemini_server(request)
        assert request.url.host == "api.anthropic.com", request.url
        return await claude_server(request)

    gemini_id, claude_id = "gemini:gemini-2.0-flash", "anthropic:claude-sonnet-4-5"
    assert resolve(gemini_id).provider == "gemini" and resolve(claude_id).provider == "anthropic"
    async with httpx.AsyncClient(transport=httpx.MockTransport(route)) as client:
        result = await prepare("What is the capital of France?", models=["scripted:sure", gemini_id, claude_id],
                               client=client, max_tokens=16)
    _check(result, "scripted:sure", gemini_id, claude_id)
    assert gemini_server.bodies[0]["generationConfig"]["responseLogprobs"] is True
    assert claude_server.requests[0].headers["x-api-key"] == "sk-ant-fake-0123456789"
    assert gemini_server.open_streams == 0 and claude_server.open_streams == 0


# Reasoning effort is one option; each provider gets its own API's form of it.
@pytest.mark.parametrize(("level", "openai", "anthropic", "gemini"), [
    (None, None, None, None),
    ("none", "none", None, 0),
    ("minimal", "minimal", None, 512),
    ("low", "low", 1024, 1024),
    (" Medium ", "medium", 4096, 8192),
    ("high", "high", 16_384, 24_576),
    ("500", "low", 1024, 500),
    ("100000", "high", 100_000, 32_768),
])
def test_reasoning_effort_maps_across_providers(level: str | None, openai: str | None, anthropic: int | None,
                                                gemini: int | None) -> None:
    assert effort.openai_effort(level) == openai
    assert effort.anthropic_budget(level) == anthropic
    assert effort.gemini_budget(level) == gemini


def test_unknown_reasoning_effort_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown reasoning effort 'extreme'"):
        effort.anthropic_budget("extreme")
