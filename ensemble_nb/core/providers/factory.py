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
    from ensemble_nb.core.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(spec, client)
