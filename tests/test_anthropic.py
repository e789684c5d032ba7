"""The Anthropic provider: request shape, no fake entropy, thinking, errors, no key leaks."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ContextTooLong,
    ProtocolError,
    RateLimited,
    ServerError,
)
from ensemble_nb.core.providers.anthropic import AnthropicProvider
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.factory import build_provider
from ensemble_nb.core.registry import ModelSpec, resolve
from ensemble_nb.core.tokens import Completion, Token
from tests.anthropic_mock import MockAnthropicServer, anthropic_error_body, tokens_from_text

KEY = "sk-ant-api03-FAKEKEY0123456789abcdef"
SPEC = ModelSpec(id="anthropic:mock", provider="anthropic", model="claude-mock",
                 base_url="http://anthropic.invalid/v1", api_key_env="ANTHROPIC_API_KEY", logprobs=False,
                 max_top_k=0)
TEXT = "The capital of France is Paris."


async def _run(server: MockAnthropicServer, **kw: object) -> tuple[list[Token], Completion]:
    provider = AnthropicProvider(SPEC, server.client(), api_key=KEY)
    tokens: list[Token] = []
    ends: list[Completion] = []
    async with aclosing(provider.stream(GenerationRequest(prompt="q", **kw))) as stream:
        async for item in stream:
            (tokens if isinstance(item, Token) else ends).append(item)  # type: ignore[arg-type]
    assert server.open_streams == 0
    assert len(ends) == 1
    return tokens, ends[0]


async def test_request_shape_and_headers() -> None:
    server = MockAnthropicServer(tokens_from_text(TEXT))
    await _run(server, system="be brief", max_tokens=9, stop=("\n\n",), temperature=0.3)
    request, body = server.requests[0], server.bodies[0]
    assert str(request.url) == "http://anthropic.invalid/v1/messages"
    assert request.headers["x-api-key"] == KEY and request.headers["anthropic-version"] == "2023-06-01"
    assert body == {"model": "claude-mock", "max_tokens": 9, "stream": True, "system": "be brief",
                    "messages": [{"role": "user", "content": "q"}], "stop_sequences": ["\n\n"],
                    "temperature": 0.3}


async def test_text_tokens_have_no_invented_probabilities_and_usage_is_read() -> None:
    tokens, end = await _run(MockAnthropicServer(tokens_from_text(TEXT)))
    assert "".join(t.text for t in tokens) == TEXT
    assert all(t.entropy_kind == "none" and t.entropy is None and t.logprob is None for t in tokens)
    assert end.finish_reason == "stop" and end.usage is not None
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (1, len(tokens))
    assert "usage" not in end.extra


async def test_max_tokens_stop_is_length() -> None:
    tokens, end = await _run(MockAnthropicServer(tokens_from_text(TEXT)), max_tokens=3)
    assert len(tokens) == 3 and end.finish_reason == "length"


async def test_effort_enables_thinking_whose_text_is_not_an_answer_token() -> None:
    server = MockAnthropicServer(tokens_from_text(TEXT), thinking_text="Paris is in France, so")
    tokens, end = await _run(server, reasoning_effort="medium", max_tokens=20)
    body = server.bodies[0]
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 4096}
    assert body["max_tokens"] == 20 + 4096 and "temperature" not in body
    assert "".join(t.text for t in tokens) == TEXT
    assert end.extra["thinking_chars"] == str(len("Paris is in France, so"))
    assert end.usage is not None and end.usage.completion_tokens == len(tokens) + 5


async def test_prefix_is_prefilled_without_trailing_space_and_without_thinking() -> None:
    server = MockAnthropicServer(tokens_from_text("is Paris."))
    server.script[0] = type(server.script[0])(" is")  # the model continues with a space
    tokens, _ = await _run(server, prefix="The capital ", reasoning_effort="high")
    body = server.bodies[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "The capital"}
    assert "thinking" not in body
    assert "The capital " + "".join(t.text for t in tokens) == "The capital is Paris."


async def test_refusal_mid_answer_and_refusal_without_answer() -> None:
    _, end = await _run(MockAnthropicServer(tokens_from_text(TEXT), stop_reason="refusal"))
    assert end.finish_reason == "safety" and "rephrase" in end.extra["note"]
    with pytest.raises(BadRequest, match="declined to answer"):
        await _run(MockAnthropicServer([], stop_reason="refusal"))


@pytest.mark.parametrize(("status", "body", "headers", "kind", "words"), [
    (429, anthropic_error_body("rate_limit_error", "Number of request tokens has exceeded your per-minute "
                               "rate limit"), {"retry-after": "12"}, RateLimited, "retry in 12 s"),
    (529, anthropic_error_body("overloaded_error", "Overloaded"), {}, ServerError, "overloaded"),
    (400, anthropic_error_body("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
     {}, ContextTooLong, "shorten the prompt"),
    (401, anthropic_error_body("authentication_error", f"invalid x-api-key {KEY}"), {}, AuthError,
     "ANTHROPIC_API_KEY"),
    (400, anthropic_error_body("invalid_request_error", "Your credit balance is too low to access the API."),
     {}, BadRequest, "check billing"),
    (500, anthropic_error_body("api_error", "Internal server error"), {}, ServerError, "retry later"),
])
async def test_http_errors_map_to_actionable_errors_without_the_key(
        status: int, body: bytes, headers: dict[str, str], kind: type[Exception], words: str) -> None:
    with pytest.raises(kind) as info:
        await _run(MockAnthropicServer([], status=status, error_body=body, headers=headers))
    message = str(info.value)
    assert words in message and KEY not in message and "\n" not in message
    assert getattr(info.value, "retryable", False) == (status in (429, 529, 500))
    if status == 429:
        assert getattr(info.value, "retry_after", None) == 12.0


async def test_in_stream_overloaded_error_after_some_tokens() -> None:
    with pytest.raises(ServerError, match=r"overloaded .*mid-stream 529.*retry later") as info:
        await _run(MockAnthropicServer(tokens_from_text(TEXT), error_after=2))
    assert info.value.retryable


async def test_early_end_and_bad_json() -> None:
    with pytest.raises(ServerError, match="ended before"):
        await _run(MockAnthropicServer(tokens_from_text(TEXT), send_stop=False))

    class Broken(MockAnthropicServer):
        def _events(self, body: object) -> list[bytes]:
            return [b"event: message_start\ndata: {oops\n\n"]

    with pytest.raises(ProtocolError, match="invalid JSON"):
        await _run(Broken([]))


def test_registry_and_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    spec = resolve("anthropic:claude-sonnet-4-5")
    assert spec.provider == "anthropic" and spec.model == "claude-sonnet-4-5" and not spec.logprobs
    provider = build_provider(spec)
    assert isinstance(provider, AnthropicProvider)
    assert provider.capabilities.logprobs is False and provider.capabilities.max_top_k == 0
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(Exception, match="ANTHROPIC_API_KEY"):
        build_provider(resolve("anthropic:claude-sonnet-4-5"))
