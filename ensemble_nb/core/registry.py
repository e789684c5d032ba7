"""Model ids, what each model is, and where it is served.

An id is either a built-in name (``smollm2``, ``gemma3``, ``scripted:NAME``) or
``PROVIDER:MODEL`` for a remote OpenAI-compatible endpoint, e.g. ``openai:gpt-4o-mini`` or
``openrouter:meta-llama/llama-3.1-8b-instruct``. Users add or override specs with
:func:`register`.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ensemble_nb.core.errors import UserError

ProviderKind = Literal["llama_cpp", "openai", "scripted"]


class ModelSpec(BaseModel):
    """Everything the runner and the orchestrator need to know about one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    provider: ProviderKind
    model: str = ""
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    api_key_required: bool = False
    prompt_style: Literal["chat", "completion"] = "chat"
    vocab_size: int = 100_000
    context_length: int = 8192
    price_in: float = Field(default=0.0, ge=0, description="USD per million input tokens")
    price_out: float = Field(default=0.0, ge=0, description="USD per million output tokens")
    logprobs: bool = True
    max_top_k: int = 20
    tags: tuple[str, ...] = ()

    def resolved_base_url(self) -> str | None:
        if self.base_url_env and os.environ.get(self.base_url_env):
            return os.environ[self.base_url_env]
        return self.base_url

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def has_credentials(self) -> bool:
        return not self.api_key_required or bool(self.api_key())

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6


class _Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str
    base_url_env: str
    api_key_env: str
    api_key_required: bool
    vocab_size: int = 100_000


ENDPOINTS: dict[str, _Endpoint] = {
    "openai": _Endpoint(base_url="https://api.openai.com/v1", base_url_env="OPENAI_BASE_URL",
                        api_key_env="OPENAI_API_KEY", api_key_required=True, vocab_size=200_019),
    "openrouter": _Endpoint(base_url="https://openrouter.ai/api/v1", base_url_env="OPENROUTER_BASE_URL",
                            api_key_env="OPENROUTER_API_KEY", api_key_required=True),
    "vllm": _Endpoint(base_url="http://127.0.0.1:8000/v1", base_url_env="VLLM_BASE_URL",
                      api_key_env="VLLM_API_KEY", api_key_required=False),
    "ollama": _Endpoint(base_url="http://127.0.0.1:11434/v1", base_url_env="OLLAMA_BASE_URL",
                        api_key_env="OLLAMA_API_KEY", api_key_required=False),
    "llamacpp": _Endpoint(base_url="http://127.0.0.1:8080/v1", base_url_env="LLAMACPP_BASE_URL",
                          api_key_env="LLAMACPP_API_KEY", api_key_required=False),
}

_BUILTIN: dict[str, ModelSpec] = {
    "smollm2": ModelSpec(
        id="smollm2", provider="llama_cpp", model="SmolLM2-135M-Instruct-Q4_1", prompt_style="chat",
        vocab_size=49_152, context_length=8192, tags=("embedded", "chat", "factual"),
    ),
    "gemma3": ModelSpec(
        id="gemma3", provider="llama_cpp", model="gemma-3-270m-Q4_K_M", prompt_style="completion",
        vocab_size=262_144, context_length=32_768, tags=("embedded", "base", "factual"),
    ),
    "openai:gpt-4o-mini": ModelSpec(
        id="openai:gpt-4o-mini", provider="openai", model="gpt-4o-mini", price_in=0.15, price_out=0.6,
        context_length=128_000, vocab_size=200_019, tags=("factual", "code"),
    ),
}

DEFAULT_MODELS: tuple[str, ...] = ("smollm2", "gemma3")

_user_specs: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> None:
    """Add or replace a model spec for this process (e.g. from the user's config)."""
    _user_specs[spec.id] = spec


def known_ids() -> list[str]:
    return sorted({*_BUILTIN, *_user_specs})


def resolve(model_id: str) -> ModelSpec:
    """The spec for ``model_id``, or a :class:`UserError` that says what ids exist."""
    model_id = model_id.strip()
    if model_id in _user_specs:
        return _user_specs[model_id]
    if model_id in _BUILTIN:
        spec = _BUILTIN[model_id]
    elif model_id.startswith("scripted:") and len(model_id) > len("scripted:"):
        from ensemble_nb.core.providers.scripts import SCRIPTS

        name = model_id.split(":", 1)[1]
        if name not in SCRIPTS:
            raise UserError(f"unknown scripted model '{name}': choose one of {', '.join(sorted(SCRIPTS))}")
        spec = ModelSpec(id=model_id, provider="scripted", model=name, vocab_size=1000, tags=("scripted",))
    elif ":" in model_id:
        prefix, name = model_id.split(":", 1)
        ep = ENDPOINTS.get(prefix)
        if ep is None or not name:
            raise UserError(_unknown(model_id))
        spec = ModelSpec(
            id=model_id, provider="openai", model=name, base_url=ep.base_url, base_url_env=ep.base_url_env,
            api_key_env=ep.api_key_env, api_key_required=ep.api_key_required, vocab_size=ep.vocab_size,
        )
    else:
        raise UserError(_unknown(model_id))
    if spec.provider == "openai" and spec.base_url is None:
        ep = ENDPOINTS[model_id.split(":", 1)[0]]
        spec = spec.model_copy(update={"base_url": ep.base_url, "base_url_env": ep.base_url_env,
                                       "api_key_env": ep.api_key_env, "api_key_required": ep.api_key_required})
    return spec


def require_credentials(spec: ModelSpec) -> None:
    if not spec.has_credentials():
        raise UserError(
            f"model '{spec.id}' needs the environment variable {spec.api_key_env}: "
            f"export {spec.api_key_env}=... before starting Python, or pick another model"
        )


def _unknown(model_id: str) -> str:
    return (
        f"unknown model '{model_id}': use one of {', '.join(known_ids())}, scripted:NAME, "
        f"or PROVIDER:MODEL with PROVIDER one of {', '.join(ENDPOINTS)}"
    )
