"""The Anthropic provider against the fake Messages API in ``tests/anthropic_mock.py``.

Anthropic returns no probabilities, so ``logprobs`` is False: the suite then checks that every
token says so (``entropy_kind == "none"``) instead of carrying invented values.
"""

from __future__ import annotations

from ensemble_nb.core.providers.anthropic import AnthropicProvider
from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.registry import ModelSpec
from tests.anthropic_mock import MockAnthropicServer, tokens_from_text

SPEC = ModelSpec(id="anthropic:mock", provider="anthropic", model="claude-mock",
                 base_url="http://anthropic.invalid/v1", logprobs=False, max_top_k=0)


class AnthropicHarness:
    name = "anthropic"
    prompt = "What is the capital of France?"
    full_vocab = False
    logprobs = False

    def __init__(self) -> None:
        # Keyed by id(); the provider is kept alive alongside so the id is never reused.
        self._servers: dict[int, tuple[Provider, MockAnthropicServer]] = {}

    def make(self) -> Provider:
        server = MockAnthropicServer(
            tokens_from_text("The capital of France is Paris, a city on the Seine river."), delay=0.002)
        provider = AnthropicProvider(SPEC, server.client(), api_key="sk-ant-test-0123456789")
        self._servers[id(provider)] = (provider, server)
        return provider

    def assert_released(self, provider: Provider) -> None:
        _, server = self._servers[id(provider)]
        assert server.opened >= 1, "the provider never called the server"
        assert server.open_streams == 0, f"{server.open_streams} response stream(s) left open"


HARNESS = AnthropicHarness()
