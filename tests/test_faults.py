"""The fault matrix: each fault hits one member of a real run next to a healthy member.

For every fault: the member ends with a clear status and error kind, the other member
finishes, text already received is kept, retries follow the policy (before the first token
only, capped), the run finishes, and no task or response body is left open.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import pytest

from ensemble_nb.core import ModelFailed, ModelFinished, ModelTimedOut, prepare
from ensemble_nb.core.errors import BadRequest, ProviderError, ServerError
from ensemble_nb.core.events import ModelEnded, TokenReceived
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
from ensemble_nb.core.providers.retrying import RetryingProvider, RetryPolicy
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.result import RunResult
from ensemble_nb.core.tokens import StreamItem, Token
from tests.fault_transport import ANSWER, Fault, FaultServer, long_answer

SPEC = ModelSpec(id="remote", provider="openai", model="mock-model", base_url="http://mock.test/v1",
                 vocab_size=1000)
POLICY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_total_wait=1.0, max_retry_after=1.0)
HEALTHY = "The capital of France is Paris."


@dataclass(frozen=True)
class Case:
    schedule: list[Fault | None]
    end: type[ModelEnded]
    kind: str | None = None
    retries: int = 0
    partial: bool = False
    says: str = ""
    answer: str = ANSWER
    extra: dict[str, float] = field(default_factory=dict)


BAD_JSON = b'data: {"choices": [{"delta": {"content": "x"\n\n'
NON_UTF8 = b'data: {"choices": [{"index": 0, "delta": {"content": " caf\xe9\xff"}}]}\n\n'
CASES: dict[str, Case] = {
    "429 + Retry-After, then ok": Case([Fault(status=429, headers={"retry-after": "0.05"}), None],
                                       ModelFinished, retries=1, extra={"wait": 0.05}),
    "429, Retry-After too long": Case([Fault(status=429, headers={"retry-after": "120"})], ModelFailed,
                                      "rate_limited", says="retry in 120 s"),
    "500 every time": Case([Fault(status=500)], ModelFailed, "server_error", retries=2,
                           says="gave up after 3 attempts"),
    "502, then ok": Case([Fault(status=502), None], ModelFinished, retries=1),
    "503 twice, then ok": Case([Fault(status=503), Fault(status=503), None], ModelFinished, retries=2),
    "connection refused": Case([Fault(refuse=True)], ModelFailed, "connect_error", retries=2,
                               says="cannot reach http://mock.test/v1"),
    "reset before first token, then ok": Case([Fault(tokens=0, then="reset"), None], ModelFinished, retries=1),
    "reset mid-stream": Case([Fault(tokens=3, then="reset")], ModelFailed, "server_error", partial=True,
                             says="dropped mid-answer"),
    "malformed SSE line (ignored)": Case([Fault(tokens=2, inject=b"this line is not SSE\n:\x01junk\n\n")],
                                         ModelFinished),
    "no logprobs": Case([Fault(no_logprobs=True)], ModelFinished),
    "stall after 3 tokens": Case([Fault(tokens=3, then="stall")], ModelTimedOut, partial=True),
    "slow first token": Case([Fault(first_delay=0.3)], ModelFinished, extra={"ttft": 0.3}),
    "read timeout before first token, then ok": Case([Fault(tokens=0, then="timeout"), None], ModelFinished,
                                                     retries=1),
    "read timeout mid-stream": Case([Fault(tokens=2, then="timeout")], ModelFailed, "timeout", partial=True),
    "invalid JSON": Case([Fault(tokens=2, inject=BAD_JSON)], ModelFailed, "protocol_error", partial=True,
                         says="invalid JSON"),
    "oversized: ignores max_tokens": Case([Fault(ignore_max_tokens=True)], ModelFailed, "protocol_error",
                                          partial=True, says="more than 32 tokens", answer=long_answer(3000)),
    "wrong content type": Case([Fault(content_type="text/html")], ModelFailed, "protocol_error",
                               says="expected an event stream"),
    "non-UTF-8 byte": Case([Fault(tokens=2, inject=NON_UTF8)], ModelFinished),
}


async def _other_tasks() -> set[asyncio.Task[object]]:
    # httpx's aiter_raw leaves the transport stream's async iterator to the garbage collector
    # when a reader stops early (after [DONE]); asyncio then closes it in a one-step task. Let
    # such finalizers run: anything still pending after that is a real leak.
    for _ in range(3):
        await asyncio.sleep(0)
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def _run(server: FaultServer, *, member_timeout: float = 1.5) -> tuple[RunResult, RetryingProvider]:
    healthy = ScriptedProvider("healthy", steps_from_text(HEALTHY), token_delay=0.03)
    client = server.client()
    async with client:
        remote = RetryingProvider(OpenAICompatProvider(SPEC, client), POLICY, rng=random.Random(0))
        result = await prepare("What is the capital of France?", models=["remote", "healthy"],
                               providers={"remote": remote, "healthy": healthy}, max_tokens=16, timeout=member_timeout)
    assert client.is_closed
    return result, remote


@pytest.mark.parametrize("name", list(CASES))
async def test_fault(name: str) -> None:
    case = CASES[name]
    server = FaultServer(case.schedule, answer=case.answer)
    result, remote = await _run(server)

    end = result.models["remote"].end
    assert type(end) is case.end, (name, end)
    assert isinstance(result.models["healthy"].end, ModelFinished)
    assert result.models["healthy"].end.text == HEALTHY
    assert result.status in ("ok", "partial") and result.synthesis is not None
    if isinstance(end, ModelFailed):
        assert end.error_kind == case.kind and case.says in end.error
        assert "\n" not in end.error and "Traceback" not in end.error
    tokens = [e.text for e in result.events if isinstance(e, TokenReceived) and e.model == "remote"]
    assert end.text == "".join(tokens)  # what arrived is kept, in order, never doubled
    if case.partial:
        assert end.text and end.n_tokens == len(tokens)
    assert len(remote.attempts) == case.retries and len(server.requests) == case.retries + 1
    if "wait" in case.extra:
        assert remote.attempts[0][1] == case.extra["wait"]  # Retry-After honoured as given
    if "ttft" in case.extra:
        assert end.ttft is not None and end.ttft >= case.extra["ttft"]
    assert await _other_tasks() == set()
    assert server.open_streams == 0


async def test_no_logprobs_and_bad_bytes_degrade_instead_of_failing() -> None:
    result, _ = await _run(FaultServer([Fault(no_logprobs=True)]))
    assert all(t.entropy_kind == "none" for t in result.models["remote"].tokens)
    assert result.models["remote"].text == ANSWER
    result, _ = await _run(FaultServer([Fault(tokens=2, inject=NON_UTF8)]))
    assert " caf\ufffd\ufffd" in result.models["remote"].text  # replaced, not a crash


class Flaky:
    """An inner provider failing with given errors, optionally after some tokens."""

    def __init__(self, errors: list[ProviderError], tokens_before: int = 0) -> None:
        self.errors = errors
        self.tokens_before = tokens_before
        self.calls = 0
        self.model_id = "flaky"
        self.capabilities = ScriptedProvider("x", []).capabilities

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        self.calls += 1
        for i in range(self.tokens_before):
            yield Token(f"t{i}")
        if self.errors:
            raise self.errors.pop(0)
        yield Token("ok")

    async def aclose(self) -> None:
        pass


async def _drain(provider: RetryingProvider) -> list[str]:
    return [item.text async for item in provider.stream(GenerationRequest(prompt="q")) if isinstance(item, Token)]


async def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.001, max_delay=0.004, jitter=0.5, max_total_wait=1.0)
    errors: list[ProviderError] = [ServerError("boom") for _ in range(5)]
    provider = RetryingProvider(Flaky(errors), policy, rng=random.Random(1))
    assert await _drain(provider) == ["ok"]
    waits = [w for _, w in provider.attempts]
    for n, wait in enumerate(waits, start=1):
        full = min(0.001 * 2 ** (n - 1), 0.004)
        assert full * 0.5 <= wait <= full


async def test_total_wait_and_non_retryable_errors_stop_at_once() -> None:
    slow = RetryPolicy(base_delay=0.5, max_delay=0.5, jitter=0.0, max_total_wait=0.1)
    flaky = Flaky([ServerError("boom"), ServerError("boom")])
    with pytest.raises(ServerError, match="boom"):
        await _drain(RetryingProvider(flaky, slow))
    assert flaky.calls == 1
    bad = Flaky([BadRequest("no")])
    with pytest.raises(BadRequest):
        await _drain(RetryingProvider(bad, POLICY))
    assert bad.calls == 1


async def test_no_retry_after_the_first_token() -> None:
    flaky = Flaky([ServerError("cut")], tokens_before=2)
    seen: list[str] = []
    with pytest.raises(ServerError, match="cut"):
        async for item in RetryingProvider(flaky, POLICY).stream(GenerationRequest(prompt="q")):
            seen.append(item.text)  # type: ignore[union-attr]
    assert seen == ["t0", "t1"] and flaky.calls == 1


def test_policy_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        RetryPolicy(max_attemps=2)  # type: ignore[call-arg]


async def test_factory_wraps_openai_compatible_providers_and_retries_through_a_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ensemble_nb.core.providers.factory import build_provider
    from ensemble_nb.core.registry import resolve

    monkeypatch.setenv("VLLM_BASE_URL", "http://mock.test/v1")
    provider = build_provider(resolve("vllm:m"))
    assert isinstance(provider, RetryingProvider) and isinstance(provider.inner, OpenAICompatProvider)
    await provider.aclose()
    server = FaultServer([Fault(status=503, headers={"retry-after": "0.01"}), None])
    async with server.client() as client:
        result = await prepare("q", models=["vllm:m", "scripted:sure"], client=client, max_tokens=16)
    assert result.models["vllm:m"].status == "finished" and len(server.requests) == 2
    assert server.open_streams == 0
