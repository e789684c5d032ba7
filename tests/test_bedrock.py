"""The Bedrock provider with a fake boto3 client: request shape, thread hygiene, error mapping."""

from __future__ import annotations

import importlib.util
from contextlib import aclosing

import pytest

from ensemble_nb.core.errors import AuthError, ContextTooLong, RateLimited, ServerError, UserError
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.bedrock import BedrockProvider
from ensemble_nb.core.providers.factory import build_provider
from ensemble_nb.core.registry import resolve
from ensemble_nb.core.tokens import Completion, Token
from tests.harnesses.bedrock import SPEC, TEXT, FakeBedrock, FakeClientError


async def _run(fake: FakeBedrock, **kw: object) -> tuple[list[Token], Completion]:
    provider = BedrockProvider(SPEC, fake)
    items = []
    async with aclosing(provider.stream(GenerationRequest(prompt="q", **kw))) as stream:
        items = [item async for item in stream]
    assert provider.active_workers == 0 and fake.opened == fake.closed
    tokens = [i for i in items if isinstance(i, Token)]
    ends = [i for i in items if isinstance(i, Completion)]
    assert len(ends) == 1
    return tokens, ends[0]


async def test_request_shape_tokens_and_usage() -> None:
    fake = FakeBedrock()
    tokens, end = await _run(fake, system="brief", max_tokens=50, stop=("\n",), temperature=0.2)
    assert fake.calls[0] == {"modelId": "anthropic.claude-mock-v1:0", "system": [{"text": "brief"}],
                             "messages": [{"role": "user", "content": [{"text": "q"}]}],
                             "inferenceConfig": {"maxTokens": 50, "stopSequences": ["\n"], "temperature": 0.2}}
    assert "".join(t.text for t in tokens) == TEXT
    assert all(t.entropy_kind == "none" and t.logprob is None for t in tokens)
    assert end.finish_reason == "stop" and end.usage is not None and end.usage.prompt_tokens == 7


async def test_thinking_budget_for_claude_on_bedrock() -> None:
    fake = FakeBedrock()
    tokens, end = await _run(fake, reasoning_effort="low", max_tokens=30)
    assert "".join(t.text for t in tokens) == TEXT
    call = fake.calls[0]
    assert call["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert call["inferenceConfig"] == {"maxTokens": 1054}
    assert end.extra["thinking_chars"] == str(len("Paris, surely."))


async def test_max_tokens_finish_is_length() -> None:
    tokens, end = await _run(FakeBedrock(), max_tokens=3)
    assert len(tokens) == 3 and end.finish_reason == "length"


@pytest.mark.parametrize(("code", "message", "kind", "words"), [
    ("ThrottlingException", "Too many requests, please wait before trying again.", RateLimited, "retry later"),
    ("AccessDeniedException", "You don't have access to the model with the specified model ID.", AuthError,
     "Bedrock console"),
    ("ValidationException", "Input is too long for requested model.", ContextTooLong, "shorten"),
    ("ServiceUnavailableException", "Service unavailable", ServerError, "retry later"),
])
async def test_client_errors_are_mapped(code: str, message: str, kind: type[Exception], words: str) -> None:
    with pytest.raises(kind, match=words):
        await _run(FakeBedrock(error=FakeClientError(code, message)))


async def test_in_stream_exception_event_is_a_retryable_server_error() -> None:
    with pytest.raises(ServerError, match="ModelStreamErrorException") as info:
        await _run(FakeBedrock(stream_error_after=2))
    assert info.value.retryable


async def test_content_filter_finish_is_safety() -> None:
    _, end = await _run(FakeBedrock(stop_reason="guardrail_intervened"))
    assert end.finish_reason == "safety" and end.extra["finish_reason"] == "guardrail_intervened"


@pytest.mark.skipif(importlib.util.find_spec("boto3") is not None, reason="boto3 is installed")
async def test_without_boto3_a_user_error_says_what_to_install() -> None:
    provider = build_provider(resolve("bedrock:anthropic.claude-3-haiku-20240307-v1:0"))
    with pytest.raises(UserError, match="pip install boto3"):
        async with aclosing(provider.stream(GenerationRequest(prompt="q"))) as stream:
            async for _ in stream:
                pass


@pytest.mark.skipif(importlib.util.find_spec("boto3") is None, reason="boto3 is not installed")
def test_with_boto3_the_default_client_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    provider = BedrockProvider(resolve("bedrock:anthropic.claude-3-haiku-20240307-v1:0"))
    assert provider._bedrock().meta.region_name == "us-east-1"
