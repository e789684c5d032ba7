"""The Bedrock provider against a fake ``bedrock-runtime`` client (no boto3 or network needed).

``FakeBedrock.converse_stream`` returns what boto3's does: ``{"stream": <iterable of events>}``
with Converse's event shapes (``messageStart``, ``contentBlockDelta``, ``messageStop``,
``metadata``, and exception events). Its stream blocks like a socket between events and counts
closes, so the harness can check that nothing is left open.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.bedrock import BedrockProvider
from ensemble_nb.core.registry import ModelSpec

SPEC = ModelSpec(id="bedrock:mock", provider="bedrock", model="anthropic.claude-mock-v1:0", logprobs=False,
                 max_top_k=0)
TEXT = "The capital of France is Paris, a city on the Seine river."


class FakeClientError(Exception):
    """Shaped like botocore's ClientError: the details are in ``response["Error"]``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"An error occurred ({code}) when calling the ConverseStream operation: {message}")
        self.response = {"Error": {"Code": code, "Message": message}}


class FakeEventStream:
    def __init__(self, owner: FakeBedrock, events: Sequence[Mapping[str, Any]], delay: float) -> None:
        self._owner, self._events, self._delay = owner, events, delay
        self._closed = threading.Event()
        owner.opened += 1

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        for event in self._events:
            if self._closed.wait(self._delay):  # a closed socket ends the read at once
                return
            yield event

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._owner.closed += 1


class FakeBedrock:
    def __init__(self, text: str = TEXT, *, delay: float = 0.002, error: Exception | None = None,
                 stream_error_after: int | None = None, stop_reason: str | None = None) -> None:
        self.words = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))] if text else []
        self.delay, self.error = delay, error
        self.stream_error_after, self.stop_reason = stream_error_after, stop_reason
        self.calls: list[dict[str, Any]] = []
        self.opened = self.closed = 0

    def converse_stream(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        budget = int(kwargs["inferenceConfig"]["maxTokens"])
        events: list[Mapping[str, Any]] = [{"messageStart": {"role": "assistant"}}]
        if "additionalModelRequestFields" in kwargs:
            events.append({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {
                "reasoningContent": {"text": "Paris, surely."}}}})
        for n, word in enumerate(self.words[:budget]):
            if n == self.stream_error_after:
                events.append({"modelStreamErrorException": {"message": "Model stream error",
                                                              "originalStatusCode": 500}})
                break
            events.append({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": word}}})
        stop = self.stop_reason or ("max_tokens" if len(self.words) > budget else "end_turn")
        events += [{"contentBlockStop": {"contentBlockIndex": 0}}, {"messageStop": {"stopReason": stop}},
                   {"metadata": {"usage": {"inputTokens": 7, "outputTokens": min(budget, len(self.words)),
                                           "totalTokens": 7 + min(budget, len(self.words))},
                                 "metrics": {"latencyMs": 120}}}]
        return {"stream": FakeEventStream(self, events, self.delay), "ResponseMetadata": {"HTTPStatusCode": 200}}


class BedrockHarness:
    name = "bedrock"
    prompt = "What is the capital of France?"
    full_vocab = False
    logprobs = False

    def __init__(self) -> None:
        self._fakes: dict[int, tuple[Provider, FakeBedrock]] = {}

    def make(self) -> Provider:
        fake = FakeBedrock()
        provider = BedrockProvider(SPEC, fake)
        self._fakes[id(provider)] = (provider, fake)
        return provider

    def assert_released(self, provider: Provider) -> None:
        _, fake = self._fakes[id(provider)]
        assert isinstance(provider, BedrockProvider)
        assert fake.opened >= 1 and fake.opened == fake.closed, "an event stream was left open"
        assert provider.active_workers == 0, "a Bedrock reader thread is still running"


HARNESS = BedrockHarness()
