"""The Gemini provider: request shape, logprob tokens, refusal retry, safety, errors, no key leaks."""

from __future__ import annotations

import json
import math
from contextlib import aclosing

import pytest

from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProtocolError,
    RateLimited,
    ServerError,
    UserError,
)
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.factory import build_provider
from ensemble_nb.core.providers.gemini import GeminiProvider
from ensemble_nb.core.registry import ModelSpec, resolve
from ensemble_nb.core.tokens import Completion, Token
from tests.gemini_mock import MockGeminiServer, google_error, tokens_from_text

KEY = "AIzaSyFAKE-KEY-0123456789abcdef"
SPEC = ModelSpec(id="gemini:mock", provider="gemini", model="gemini-mock",
                 base_url="http://gemini.invalid/v1beta", api_key_env="GEMINI_API_KEY", vocab_size=256_000)
TEXT = "The capital of France is Paris."


async def _run(server: MockGeminiServer, spec: ModelSpec = SPEC, **kw: object
               ) -> tuple[list[Token], Completion]:
    provider = GeminiProvider(spec, server.client(), api_key=KEY)
    tokens: list[Token] = []
    ends: list[Completion] = []
    async with aclosing(provider.stream(GenerationRequest(prompt="q", **kw))) as stream:
        async for item in stream:
            (tokens if isinstance(item, Token) else ends).append(item)  # type: ignore[arg-type]
    assert server.open_streams == 0
    assert len(ends) == 1
    return tokens, ends[0]


async def test_request_shape_key_in_header_never_in_url() -> None:
    server = MockGeminiServer(tokens_from_text(TEXT))
    await _run(server, system="be brief", top_k=20, max_tokens=7, stop=("a", "b", "c", "d", "e", "f"))
    request, body = server.requests[0], server.bodies[0]
    assert str(request.url) == "http://gemini.invalid/v1beta/gemini-mock:streamGenerateContent?alt=sse"
    assert request.headers["x-goog-api-key"] == KEY and KEY not in str(request.url)
    config = body["generationConfig"]
    assert config["responseLogprobs"] is True and config["logprobs"] == 20
    assert config["maxOutputTokens"] == 7 and len(config["stopSequences"]) == 5
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert "thinkingConfig" not in config


async def test_tokens_carry_topk_entropy_and_usage() -> None:
    tokens, end = await _run(MockGeminiServer(tokens_from_text(TEXT, 0.8), tokens_per_chunk=2), top_k=3)
    assert "".join(t.text for t in tokens) == TEXT
    for tok in tokens:
        assert tok.entropy_kind == "topk" and tok.entropy is not None and tok.bounds is not None
        assert tok.logprob == pytest.approx(math.log(0.8))
        assert len(tok.alternatives) == 3 and tok.token_id is not None
        assert tok.bounds.tight_lower - 1e-9 <= tok.entropy <= tok.bounds.upper + 1e-9
    assert end.finish_reason == "stop" and end.usage is not None
    assert end.usage.completion_tokens == len(tokens) and end.usage.prompt_tokens == 1


async def test_certain_token_without_logprobability_field_is_probability_one() -> None:
    tokens, _ = await _run(MockGeminiServer(tokens_from_text("yes", 1.0, spread=0)), top_k=0)
    assert tokens[0].logprob == 0.0 and tokens[0].alternatives == ()


async def test_refused_logprobs_are_retried_once_without() -> None:
    server = MockGeminiServer(tokens_from_text(TEXT), refuse_logprobs=True)
    tokens, end = await _run(server)
    assert len(server.requests) == 2
    assert "responseLogprobs" not in server.bodies[1]["generationConfig"]
    assert tokens and all(t.entropy_kind == "none" and t.logprob is None for t in tokens)
    assert "refused logprobs" in end.extra["logprobs"]


async def test_silently_ignored_logprobs_give_plain_text_tokens() -> None:
    tokens, _ = await _run(MockGeminiServer(tokens_from_text(TEXT), ignore_logprobs=True))
    assert "".join(t.text for t in tokens) == TEXT
    assert all(t.entropy_kind == "none" and t.entropy is None for t in tokens)


async def test_max_tokens_finish_is_length() -> None:
    tokens, end = await _run(MockGeminiServer(tokens_from_text(TEXT)), max_tokens=2)
    assert len(tokens) == 2 and end.finish_reason == "length"


async def test_effort_sets_thinking_budget_and_thoughts_are_not_answer_tokens() -> None:
    server = MockGeminiServer(tokens_from_text(TEXT), thought="Let me think about France.")
    tokens, end = await _run(server, reasoning_effort="low", max_tokens=50)
    config = server.bodies[0]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024} and config["maxOutputTokens"] == 1074
    assert "".join(t.text for t in tokens) == TEXT
    assert end.extra["thought_chars"] == str(len("Let me think about France."))
    assert end.usage is not None and end.usage.completion_tokens == len(tokens) + 5


async def test_blocked_prompt_is_an_actionable_error() -> None:
    with pytest.raises(BadRequest, match="blocked the prompt \\(SAFETY\\): rephrase"):
        await _run(MockGeminiServer(tokens_from_text(TEXT), block_prompt="SAFETY"))


async def test_safety_stop_mid_answer_finishes_with_safety() -> None:
    tokens, end = await _run(MockGeminiServer(tokens_from_text(TEXT), finish_reason="SAFETY"))
    assert tokens and end.finish_reason == "safety"
    assert "rephrase" in end.extra["note"] and end.extra["finish_reason"] == "SAFETY"


async def test_safety_stop_without_any_answer_is_an_error() -> None:
    with pytest.raises(BadRequest, match="withheld the answer \\(RECITATION\\)"):
        await _run(MockGeminiServer([], finish_reason="RECITATION"))


@pytest.mark.parametrize(("status", "body", "kind", "words"), [
    (400, google_error(400, f"API key not valid. Please pass a valid API key. key={KEY}", "INVALID_ARGUMENT",
                       [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
     AuthError, "GEMINI_API_KEY"),
    (429, google_error(429, "You exceeded your current quota.", "RESOURCE_EXHAUSTED",
                       [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]),
     RateLimited, "retry in 37 s"),
    (400, google_error(400, "The input token count (1200000) exceeds the maximum number of tokens allowed "
                       "(1048576).", "INVALID_ARGUMENT"), ContextTooLong, "shorten the prompt"),
    (503, google_error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE"),
     ServerError, "retry later"),
    (403, google_error(403, f"Permission denied for {KEY}", "PERMISSION_DENIED"), AuthError, "GEMINI_API_KEY"),
])
async def test_error_bodies_map_to_actionable_errors_without_the_key(
        status: int, body: bytes, kind: type[Exception], words: str) -> None:
    with pytest.raises(kind) as info:
        await _run(MockGeminiServer([], status=status, error_body=body))
    message = str(info.value)
    assert words in message and KEY not in message and "\n" not in message
    if kind is RateLimited:
        assert getattr(info.value, "retry_after", None) == 37.0


async def test_in_stream_error_and_early_end_and_bad_json() -> None:
    error = b'data: {"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}\r\n\r\n'
    with pytest.raises(ServerError, match="internal"):
        await _run(MockGeminiServer([], raw_events=[error]))
    with pytest.raises(ServerError, match="ended before"):
        await _run(MockGeminiServer(tokens_from_text(TEXT), send_finish=False))
    with pytest.raises(ProtocolError, match="invalid JSON"):
        await _run(MockGeminiServer([], raw_events=[b"data: {nope\r\n\r\n"]))
    with pytest.raises(ProtocolError, match="application/json"):
        await _run(MockGeminiServer([], content_type="application/json"))


async def test_vertex_uses_bearer_token_and_project_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "ya29.fake-token-abcdefgh")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "proj")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    spec = resolve("vertex:gemini-2.5-flash")
    server = MockGeminiServer(tokens_from_text(TEXT))
    provider = build_provider(spec, server.client())
    async with aclosing(provider.stream(GenerationRequest(prompt="q"))) as stream:
        async for _ in stream:
            pass
    request = server.requests[0]
    assert str(request.url) == ("https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/"
                                "europe-west4/publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert request.headers["authorization"] == "Bearer ya29.fake-token-abcdefgh"
    assert "x-goog-api-key" not in request.headers
    expired = MockGeminiServer([], status=401, error_body=google_error(401, "Request had invalid credentials.",
                                                                          "UNAUTHENTICATED"))
    with pytest.raises(AuthError, match="gcloud auth print-access-token"):
        await _run(expired, spec)


def test_registry_resolves_gemini_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-from-google-var")
    spec = resolve("gemini:gemini-2.0-flash")
    assert spec.provider == "gemini" and spec.model == "gemini-2.0-flash"
    assert spec.api_key_env == "GOOGLE_API_KEY" and spec.api_key() == "AIza-from-google-var"
    assert isinstance(build_provider(spec), GeminiProvider)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("VERTEX_PROJECT", raising=False)
    monkeypatch.setenv("VERTEX_ACCESS_TOKEN", "ya29.fake-token-abcdefgh")
    with pytest.raises(UserError, match="GOOGLE_CLOUD_PROJECT"):
        build_provider(resolve("vertex:gemini-2.5-pro"))


def test_body_is_json_serialisable_with_prefix() -> None:
    from ensemble_nb.core.providers.gemini import build_body

    body = build_body(GenerationRequest(prompt="q", prefix="The"), logprobs=False, max_top_k=20,
                      thinking_budget=0)
    assert body["contents"][-1] == {"role": "model", "parts": [{"text": "The"}]}
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0}
    json.dumps(body)
