from __future__ import annotations

from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text


class ScriptedHarness:
    name = "scripted"
    prompt = "What is the capital of France?"
    full_vocab = True

    def make(self) -> Provider:
        steps = steps_from_text("The capital of France is Paris, a city on the Seine river.", 0.8)
        return ScriptedProvider("scripted:test", steps, first_token_delay=0.01, token_delay=0.005)

    def assert_released(self, provider: Provider) -> None:
        assert isinstance(provider, ScriptedProvider)
        assert provider.closed_streams == len(provider.requests), "a scripted stream was left open"


HARNESS = ScriptedHarness()
