"""The OpenAI-compatible provider: request bodies, chunk parsing and error mapping."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from ensemble_nb.core.errors import (
    AuthError,
    BadRequest,
    ConnectError,
    ContextTooLong,
    ProtocolError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
from ensemble_nb.core.registry import ModelSpec, resolve
from ensemble_nb.core.tokens import Completion, Token
from tests.openai_mock import MockOpenAIServer, MockToken, tokens_from_text

SECRET = "sk-test-SECRET123456789"
TEXT = "The capital of France is Paris."


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def spec(**kw: Any) -> ModelSpec:
    return resolve("openai:gpt-4o-mini").model_copy(update=kw)


def server(**kw: Any) -> MockOpenAIServer:
    return MockOpenAIServer(tokens_from_text(TEXT, 0.8), **kw)


async def run(srv: MockOpenAIServer | None = None, *, handler: Callable[..., Any] | None = None,
              model: ModelSpec | None = None, api_key: str | None = None,
              **req: Any) -> tuple[list[Token], Completion]:
    transport = httpx.MockTransport(handler or srv)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport) as client:
        provider = OpenAICompatProvider(model or spec(), client, api_key=api_key)
        tokens: list[Token] = []
        ends: list[Completion] = []
        async with aclosing(provider.stream(GenerationRequest(prompt="Capital of France?", **req))) as st:
            async for item in st:
                (tokens if isinstance(item, Token) else ends).append(item)  # type: ignore[arg-type]
        await provider.aclose()
        assert not client.is_closed, "an injected client belongs to the caller"
    if srv is not None:
        assert srv.open_streams == 0
    assert len(ends) == 1
    return tokens, ends[0]


async def fails(srv: MockOpenAIServer | None = None, **kw: Any) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        await run(srv, **kw)
    message = str(info.value)
    assert "\n" not in message and message
    if srv is not None:
        assert srv.open_streams == 0, "the error path left a response open"
    return info.value


# --- requests ---------------------------------------------------------------------------------


async def test_request_body_and_no_auth_header_without_key() -> None:
    srv = server()
    await run(srv, system="Be brief.", context=("Paris is in France.",), prefix="The", max_tokens=5,
              temperature=0.7, top_p=0.9, top_k=3, seed=42, stop=("\n",), reasoning_effort="low")
    request, body = srv.requests[0], srv.bodies[0]
    assert str(request.url) == "https://api.openai.com/v1/chat/completions"
    assert "authorization" not in request.headers
    assert request.headers["accept"] == "text/event-stream"
    user = GenerationRequest(prompt="Capital of France?", context=("Paris is in France.",)).user_content()
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": user},
                                {"role": "assistant", "content": "The"}]
    assert body["model"] == "gpt-4o-mini"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (5, 0.7, 0.9, 42)
    assert body["stop"] == ["\n"] and body["reasoning_effort"] == "low"
    assert body["logprobs"] is True and body["top_logprobs"] == 3


async def test_minimal_body_leaves_optional_fields_out() -> None:
    srv = server()
    await run(srv, top_k=0)
    body = srv.bodies[0]
    assert body["logprobs"] is True and "top_logprobs" not in body
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert not {"stop", "reasoning_effort"} & body.keys()


async def test_top_k_is_capped_by_the_spec() -> None:
    srv = server()
    await run(srv, model=spec(max_top_k=2), top_k=10)
    assert srv.bodies[0]["top_logprobs"] == 2


async def test_key_from_environment_or_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    srv = server()
    await run(srv)
    assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    await run(srv, api_key="explicit-key-123")
    assert srv.requests[1].headers["authorization"] == "Bearer explicit-key-123"


async def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9999/v1/")
    srv = server()
    await run(srv)
    assert str(srv.requests[0].url) == "http://127.0.0.1:9999/v1/chat/completions"


async def test_owned_client_is_closed_and_protocol_is_met() -> None:
    provider = OpenAICompatProvider(spec())
    assert isinstance(provider, Provider)
    caps = provider.capabilities
    assert (caps.logprobs, caps.full_vocab_entropy, caps.prefix) == (True, False, False)
    assert (caps.max_top_k, caps.vocab_size) == (20, 200_019)
    await provider.aclose()
    assert provider.client.is_closed


# --- parsing ----------------------------------------------------------------------------------


async def test_top_k_alternatives_and_bounds() -> None:
    tokens, end = await run(server(), top_k=3)
    assert "".join(t.text for t in tokens) == TEXT
    for tok in tokens:
        assert tok.entropy_kind == "topk" and tok.logprob == pytest.approx(math.log(0.8))
        assert len(tok.alternatives) == 3 and tok.alternatives[0].text == tok.text
        lps = [a.logprob for a in tok.alternatives]
        assert lps == sorted(lps, reverse=True)
        assert tok.bounds is not None and tok.entropy is not None
        # The server sent 3 of the 5 candidates: 0.8 + 2 * 0.045 known, 0.11 in the tail.
        assert tok.bounds.tail_mass == pytest.approx(0.11)
        assert tok.bounds.lower <= tok.bounds.tight_lower <= tok.entropy <= tok.bounds.upper
    assert end.finish_reason == "stop" and end.usage is not None
    assert end.usage.completion_tokens == len(tokens) and end.usage.prompt_tokens == 3
    assert end.extra == {}


def raw_chunk(content: str | None, entries: list[dict[str, Any]] | None, finish: str | None = None,
              usage: dict[str, int] | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "logprobs": {"content": entries} if entries else None,
              "finish_reason": finish}
    obj = {"object": "chat.completion.chunk", "choices": [choice], "usage": usage}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


async def test_extra_alternatives_are_cut_and_unknown_logprobs_dropped() -> None:
    entry = {"token": "A", "logprob": -9999.0, "bytes": [65], "top_logprobs": [
        {"token": "B", "logprob": -2.0}, {"token": "A", "logprob": -0.2}, {"token": "C", "logprob": -9999.0},
        {"token": "D", "logprob": -3.0}]}
    srv = server(raw_events=[raw_chunk("A", [entry]), raw_chunk(None, None, "stop"), b"data: [DONE]\n\n"])
    tokens, end = await run(srv, top_k=2)
    (tok,) = tokens
    assert tok.logprob is None and tok.entropy_kind == "topk"
    assert [a.text for a in tok.alternatives] == ["A", "B"]
    assert end.extra == {"usage": "estimated"} and end.usage is not None and end.usage.completion_tokens == 1


async def test_server_ignoring_logprobs_gives_entropy_kind_none() -> None:
    tokens, end = await run(server(ignore_logprobs=True), top_k=5)
    assert "".join(t.text for t in tokens) == TEXT
    assert all(t.entropy_kind == "none" and t.entropy is None and t.logprob is None for t in tokens)
    assert all(t.alternatives == () for t in tokens)
    assert end.usage is not None and end.usage.completion_tokens == len(tokens)


async def test_keepalive_comments_and_split_packets_change_nothing() -> None:
    plain, _ = await run(server(), top_k=2)
    noisy, _ = await run(server(keepalive=True, split=7), top_k=2)
    assert noisy == plain


async def test_several_tokens_per_chunk_are_not_doubled() -> None:
    tokens, _ = await run(server(tokens_per_chunk=3), top_k=1)
    assert [t.text for t in tokens] == [" " + w if i else w for i, w in enumerate(TEXT.split(" "))]


async def test_byte_fallback_tokens_rebuild_the_character() -> None:
    smile = "🙂".encode()
    script = [MockToken("Hi "), MockToken("", data=smile[:2]), MockToken("", data=smile[2:]), MockToken("!")]
    tokens, _ = await run(MockOpenAIServer(script), top_k=1)
    assert "".join(t.text for t in tokens) == "Hi 🙂!" and len(tokens) == 4


async def test_max_tokens_gives_length_and_missing_usage_is_estimated() -> None:
    tokens, end = await run(server(send_usage=False), max_tokens=2)
    assert len(tokens) == 2 and end.finish_reason == "length"
    assert end.usage is not None and end.usage.completion_tokens == 2 and end.extra["usage"] == "estimated"


async def test_unusual_finish_reason_is_kept_in_extra() -> None:
    srv = server(raw_events=[raw_chunk("x", None), raw_chunk(None, None, "content_filter")])
    _, end = await run(srv)
    assert end.finish_reason == "stop" and end.extra["finish_reason"] == "content_filter"


async def test_reasoning_model_rejecting_logprobs_is_retried_without() -> None:
    srv = server()
    calls: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            error = {"error": {"message": "logprobs is not supported with this model"}}
            return httpx.Response(400, json=error)
        return await srv(request)

    tokens, _ = await run(handler=handler, reasoning_effort="low")
    assert calls[0]["logprobs"] is True and "logprobs" not in calls[1] and "top_logprobs" not in calls[1]
    assert tokens and all(t.entropy_kind == "none" for t in tokens)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("exc", [httpx.ConnectError("[Errno 111] Connection refused"),
                                 httpx.ConnectError("[Errno -2] Name or service not known"),
                                 httpx.ConnectTimeout("timed out")])
async def test_unreachable_server(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    err = await fails(handler=handler)
    assert type(err) is ConnectError and err.retryable
    assert str(err) == ("openai:gpt-4o-mini: cannot reach https://api.openai.com/v1: is the server running? "
                        "set OPENAI_BASE_URL to its address")


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_name_the_variable(status: int) -> None:
    err = await fails(server(status=status))
    assert type(err) is AuthError and err.status == status and "OPENAI_API_KEY" in str(err)
    assert not err.retryable


async def test_rate_limit_reads_retry_after() -> None:
    err = await fails(server(status=429, headers={"retry-after": "7"}))
    assert type(err) is RateLimited and err.retry_after == 7.0 and err.retryable
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    err = await fails(server(status=429, headers={"retry-after": later}))
    assert err.retry_after is not None and 20 < err.retry_after <= 30


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retryable(status: int) -> None:
    err = await fails(server(status=status))
    assert type(err) is ServerError and err.status == status and err.retryable


async def test_context_too_long() -> None:
    body = {"error": {"message": "This model's maximum context length is 8192 tokens. However, your "
                                 "messages resulted in 9000 tokens.", "code": "context_length_exceeded"}}
    err = await fails(server(status=400, error_body=body))
    assert type(err) is ContextTooLong and "8192" in str(err)


@pytest.mark.parametrize("status", [400, 404, 422])
async def test_other_client_errors_quote_the_server_briefly(status: int) -> None:
    body = {"error": {"message": "The model `nope` does not exist. " + "x" * 1000}}
    err = await fails(server(status=status, error_body=body))
    assert type(err) is BadRequest and "The model `nope` does not exist." in str(err)
    assert len(str(err)) < 320


async def test_plain_text_error_body() -> None:
    err = await fails(server(status=502, error_body=b"<html>Bad gateway</html>"))
    assert type(err) is ServerError and "Bad gateway" in str(err)


async def test_wrong_content_type_is_a_protocol_error() -> None:
    err = await fails(server(content_type="application/json"))
    assert type(err) is ProtocolError and "application/json" in str(err)


async def test_invalid_json_is_a_protocol_error() -> None:
    err = await fails(server(raw_events=[raw_chunk("ok", None), b"data: {not json\n\n"]))
    assert type(err) is ProtocolError


async def test_error_inside_the_stream() -> None:
    event = b'data: {"error": {"message": "upstream overloaded", "code": 502}}\n\n'
    err = await fails(server(raw_events=[raw_chunk("ok", None), event]))
    assert type(err) is ServerError and "upstream overloaded" in str(err)


async def test_stream_cut_before_the_end() -> None:
    err = await fails(server(raw_events=[raw_chunk("ok", None)]))
    assert type(err) is ServerError and err.retryable


class _StallingStream(httpx.AsyncByteStream):
    def __init__(self, pieces: Sequence[bytes]) -> None:
        self.pieces = pieces
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        raise httpx.ReadTimeout("timed out")

    async def aclose(self) -> None:
        self.closed = True


async def test_read_timeout_mid_stream() -> None:
    body = _StallingStream([raw_chunk("ok", None)])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    transport = httpx.MockTransport(handler)
    async with httpx.AsyncClient(transport=transport) as client:
        provider = OpenAICompatProvider(spec(), client)
        seen: list[object] = []
        with pytest.raises(ProviderTimeout) as info:
            async for item in provider.stream(GenerationRequest(prompt="hi")):
                seen.append(item)
    assert [t.text for t in seen if isinstance(t, Token)] == ["ok"]
    assert info.value.retryable and "timeout" in str(info.value).lower() and body.closed


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500])
async def test_the_key_never_appears_in_errors(monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    echo = {"error": {"message": f"bad request; you sent Authorization: Bearer {SECRET} and "
                                 f"headers {{'authorization': 'Bearer {SECRET}'}} key={SECRET}"}}
    srv = server(status=status, error_body=echo)
    err = await fails(srv)
    assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    assert "SECRET123" not in str(err) and "SECRET123" not in repr(err.args)


async def test_an_explicit_key_never_appears_in_errors() -> None:
    key = "plainvalue987654321"  # not in the environment and not shaped like a known key
    srv = server(status=400, error_body={"error": {"message": f"echo {key}"}})
    err = await fails(srv, api_key=key)
    assert key not in str(err)


async def test_real_connection_refused() -> None:
    provider = OpenAICompatProvider(spec(base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ConnectError, match=r"cannot reach http://127.0.0.1:9/v1: .* set OPENAI_BASE_URL"):
        async for _ in provider.stream(GenerationRequest(prompt="hi")):
            pass
    await provider.aclose()


async def test_connection_is_released_before_the_completion_is_consumed() -> None:
    srv = server()
    async with srv.client() as client:
        stream = OpenAICompatProvider(spec(), client).stream(GenerationRequest(prompt="hi"))
        async for item in stream:
            if isinstance(item, Completion):
                assert srv.open_streams == 0
                break
        await stream.aclose()


# --- OpenRouter routing, reasoning effort, size limits -----------------------------------------


def openrouter_spec(**kw: Any) -> ModelSpec:
    return resolve("openrouter:meta-llama/llama-3.1-8b-instruct").model_copy(update=kw)


async def test_openrouter_body_asks_for_latency_routing_and_required_parameters() -> None:
    srv = server()
    await run(srv, model=openrouter_spec(logprobs=True))
    assert srv.bodies[0]["provider"] == {"require_parameters": True, "sort": "latency"}
    srv = server()
    await run(srv, model=openrouter_spec(logprobs=False))
    assert srv.bodies[0]["provider"] == {"require_parameters": False, "sort": "latency"}
    srv = server()
    await run(srv)  # not an OpenRouter model: no routing object
    assert "provider" not in srv.bodies[0]


async def test_openrouter_logprob_refusal_retries_without_requiring_parameters_and_says_so() -> None:
    srv = server()
    calls: list[dict[str, Any]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            return httpx.Response(400, json={"error": {"message": "No endpoints found that support logprobs"}})
        return await srv(request)

    _, end = await run(handler=handler, model=openrouter_spec(logprobs=True))
    assert calls[0]["provider"]["require_parameters"] is True
    assert calls[1]["provider"]["require_parameters"] is False and "logprobs" not in calls[1]
    assert "refused logprobs" in end.extra["logprobs"]


async def test_openrouter_processing_comments_are_skipped_and_ttft_is_the_first_real_token() -> None:
    from ensemble_nb.core.events import Event, ModelFinished, TokenReceived
    from ensemble_nb.core.member import Member

    processing = [b": OPENROUTER PROCESSING\n\n"] * 5
    srv = server(delay=0.04)
    srv.raw_events = [*processing, raw_chunk("Paris", None), b": OPENROUTER PROCESSING\n\n",
                      raw_chunk(".", None, "stop"), b"data: [DONE]\n\n"]
    events: list[Event] = []
    async with srv.client() as client:
        member = Member(openrouter_spec(), lambda s: OpenAICompatProvider(s, client), "run-1", lambda: 0.0)
        await member.run(GenerationRequest(prompt="Capital of France?"), 10.0, events.append, lambda: False)
    assert [e.text for e in events if isinstance(e, TokenReceived)] == ["Paris", "."]
    (end,) = [e for e in events if isinstance(e, ModelFinished)]
    assert end.text == "Paris." and end.ttft is not None
    assert end.ttft >= 5 * 0.04  # the comments came first and are not a token
    assert srv.open_streams == 0


@pytest.mark.parametrize(("effort", "sent"), [
    ("low", "low"), ("HIGH", "high"), ("none", "none"), ("1000", "low"), ("5000", "medium"), ("0", "minimal"),
    ("99999", "high"), ("default", None), (None, None),
])
async def test_reasoning_effort_is_mapped_to_openai_levels(effort: str | None, sent: str | None) -> None:
    srv = server()
    await run(srv, reasoning_effort=effort)
    assert srv.bodies[0].get("reasoning_effort") == sent


async def test_an_unknown_effort_is_a_user_error() -> None:
    from ensemble_nb.core.errors import UserError

    with pytest.raises(UserError, match="unknown reasoning effort 'turbo'"):
        await run(server(), reasoning_effort="turbo")


async def limited(srv: MockOpenAIServer, *, max_line_bytes: int = 1 << 20,
                  max_stream_bytes: int = 16 << 20) -> list[Token]:
    async with srv.client() as client:
        provider = OpenAICompatProvider(spec(), client, max_line_bytes=max_line_bytes,
                                        max_stream_bytes=max_stream_bytes)
        out = [item async for item in provider.stream(GenerationRequest(prompt="hi", top_k=1))]
    assert srv.open_streams == 0
    return [t for t in out if isinstance(t, Token)]


async def test_a_line_over_the_cap_is_a_protocol_error_before_it_is_buffered() -> None:
    endless = [b"data: {\"pad\": \"" + b"x" * 1000] * 50  # never ends its line
    srv = server(raw_events=[raw_chunk("ok", None), *endless])
    with pytest.raises(ProtocolError, match="line or event over 4096 bytes"):
        await limited(srv, max_line_bytes=4096)
    assert srv.open_streams == 0
    fine = await limited(server(split=3), max_line_bytes=4096)  # long lines in tiny packets: fine
    assert "".join(t.text for t in fine) == TEXT


async def test_a_body_over_the_stream_cap_is_a_protocol_error() -> None:
    srv = server(raw_events=[raw_chunk("x", None)] * 200)
    with pytest.raises(ProtocolError, match="passed 8192 bytes"):
        await limited(srv, max_stream_bytes=8192)
    assert srv.open_streams == 0


async def test_many_data_lines_in_one_event_count_towards_the_line_cap() -> None:
    srv = server(raw_events=[b"data: x\n" * 3000, b"\n"])
    with pytest.raises(ProtocolError, match="line or event over 4096 bytes"):
        await limited(srv, max_line_bytes=4096)


async def test_crlf_and_cr_line_ends_split_anywhere_read_the_same() -> None:
    body = b"".join([b": hi\r\n\r\n", raw_chunk("A", None).replace(b"\n", b"\r\n"),
                     raw_chunk("B", None).replace(b"\n", b"\r"), raw_chunk(None, None, "stop"), b"data: [DONE]\n\n"])
    for size in (1, 2, 5, len(body)):
        srv = server(raw_events=[body[i:i + size] for i in range(0, len(body), size)])
        assert [t.text for t in await limited(srv)] == ["A", "B"], size


async def test_a_huge_error_body_is_read_only_up_to_the_cap() -> None:
    srv = server(status=500, error_body=b"overloaded " + b"y" * 100_000)
    async with srv.client() as client:
        provider = OpenAICompatProvider(spec(), client, max_line_bytes=1024)
        with pytest.raises(ServerError, match="overloaded"):
            async for _ in provider.stream(GenerationRequest(prompt="hi")):
                pass
    assert srv.open_streams == 0
