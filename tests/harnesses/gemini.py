"""The Gemini provider against the fake server in ``tests/gemini_mock.py``."""

from __future__ import annotations

from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.gemini import GeminiProvider
from ensemble_nb.core.registry import ModelSpec
from tests.gemini_mock import MockGeminiServer, tokens_from_text

SPEC = ModelSpec(id="gemini:mock", provider="gemini", model="gemini-mock",
                 base_url="http://gemini.invalid/v1beta", vocab_size=256_000)


class GeminiHarness:
    name = "gemini"
    prompt = "What is the capital of France?"
    full_vocab = False
    logprobs = True

    def __init__(self) -> None:
        # Keyed by id(); the provider is kept alive alongside so the id is never reused.
        self._servers: dict[int, tuple[Provider, MockGeminiServer]] = {}

    def make(self) -> Provider:
        server = MockGeminiServer(
            tokens_from_text("The capital of France is Paris, a city on the Seine river.", 0.8), delay=0.002)
        provider = GeminiProvider(SPEC, server.client(), api_key="AIza-test-key-0123456789")
        self._servers[id(provider)] = (provider, server)
        return provider

    def assert_released(self, provider: Provider) -> None:
        _, server = self._servers[id(provider)]
        assert server.opened >= 1, "the provider never called the server"
        assert server.open_streams == 0, f"{server.open_streams} response stream(s) left open"


HARNESS = GeminiHarness()
