"""The OpenAI-compatible provider against the fake server in ``tests/openai_mock.py``."""

from __future__ import annotations

from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
from ensemble_nb.core.registry import ModelSpec
from tests.openai_mock import MockOpenAIServer, tokens_from_text

SPEC = ModelSpec(id="openai:mock-model", provider="openai", model="mock-model",
                 base_url="http://mock.invalid/v1", vocab_size=100_000)


class OpenAICompatHarness:
    name = "openai_compat"
    prompt = "What is the capital of France?"
    full_vocab = False

    def __init__(self) -> None:
        # Keyed by id(); the provider is kept alive alongside so the id is never reused.
        self._servers: dict[int, tuple[Provider, MockOpenAIServer]] = {}

    def make(self) -> Provider:
        server = MockOpenAIServer(
            tokens_from_text("The capital of France is Paris, a city on the Seine river.", 0.8),
            keepalive=True, delay=0.002)
        provider = OpenAICompatProvider(SPEC, server.client())
        self._servers[id(provider)] = (provider, server)
        return provider

    def assert_released(self, provider: Provider) -> None:
        _, server = self._servers[id(provider)]
        assert server.opened >= 1, "the provider never called the server"
        assert server.open_streams == 0, f"{server.open_streams} response stream(s) left open"


HARNESS = OpenAICompatHarness()
