"""Building a provider from a model spec. Heavy modules are imported only when needed."""

from __future__ import annotations

import httpx

from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.registry import ModelSpec, require_credentials


def build_provider(spec: ModelSpec, client: httpx.AsyncClient | None = None) -> Provider:
    """A provider for ``spec``. ``client`` is shared by remote providers when given."""
    if spec.provider == "scripted":
        from ensemble_nb.core.providers import scripts

        return scripts.build(spec.id)
    if spec.provider == "llama_cpp":
        from ensemble_nb.core.providers.llama_local import LlamaLocalProvider

        return LlamaLocalProvider(spec)
    require_credentials(spec)
    if spec.provider == "gemini":
        from ensemble_nb.core.providers.gemini import GeminiProvider

        return GeminiProvider(spec, client)
    if spec.provider == "anthropic":
        from ensemble_nb.core.providers.anthropic import AnthropicProvider

        return AnthropicProvider(spec, client)
    if spec.provider == "bedrock":
        from ensemble_nb.core.providers.bedrock import BedrockProvider

        return BedrockProvider(spec)
    from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider
    from ensemble_nb.core.providers.retrying import RetryingProvider

    # Retries (before the first token only) and output caps; see retrying.RetryPolicy.
    return RetryingProvider(OpenAICompatProvider(spec, client))
