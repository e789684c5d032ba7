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

ProviderKind = Literal["llama_cpp", "openai", "scripted", "gemini", "anthropic", "bedrock"]


class HedgeEndpoint(BaseModel):
    """Another server of the same model, raced against the usual one when it is slow to answer.

    Fields left ``None`` are taken from the model's own spec. Its latency is tracked apart,
    under the model's id and this ``name``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[^@\s]+$")
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    model: str | None = Field(default=None, description="the model's name at this endpoint, if it differs")


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
    # What the orchestrator plans with. The typical_* values are priors used until the latency
    # tracker has measured the model; quality is a 0-1 prior for choosing the primary.
    endpoint: str = Field(default="default", description="name of the endpoint this spec calls")
    hedge_endpoints: tuple[HedgeEndpoint, ...] = ()
    reasoning_efforts: tuple[str, ...] = Field(default=(), description="supported levels, cheapest first")
    reasoning_effort: str | None = Field(default=None, description="the level a single call uses")
    typical_ttft: float = Field(default=1.0, gt=0, description="seconds to the first token, before measured")
    typical_tps: float = Field(default=50.0, gt=0, description="tokens per second, before measured")
    quality: float = Field(default=0.5, ge=0.0, le=1.0)

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

class NativeEndpoint(BaseModel):
    """A vendor's own (not OpenAI-compatible) API: which provider speaks it, where, with what key.

    ``base_url`` None means the provider builds the address itself (Vertex AI from the project
    and location, Bedrock from the AWS region). The first of ``api_key_envs`` that is set wins.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderKind
    base_url: str | None
    base_url_env: str
    api_key_envs: tuple[str, ...] = ()
    api_key_required: bool = True
    vocab_size: int = 100_000
    logprobs: bool = True
    max_top_k: int = 20
    tags: tuple[str, ...] = ()


NATIVE_ENDPOINTS: dict[str, NativeEndpoint] = {
    "gemini": NativeEndpoint(provider="gemini", base_url="https://generativelanguage.googleapis.com/v1beta",
                             base_url_env="GEMINI_BASE_URL", api_key_envs=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
                             vocab_size=256_000),
    # Vertex AI: a bearer token (gcloud auth print-access-token) and GOOGLE_CLOUD_PROJECT/_LOCATION.
    "vertex": NativeEndpoint(provider="gemini", base_url=None, base_url_env="VERTEX_BASE_URL",
                             api_key_envs=("VERTEX_ACCESS_TOKEN",), vocab_size=256_000, tags=("vertex",)),
    "anthropic": NativeEndpoint(provider="anthropic", base_url="https://api.anthropic.com/v1",
                                base_url_env="ANTHROPIC_BASE_URL", api_key_envs=("ANTHROPIC_API_KEY",),
                                logprobs=False, max_top_k=0),
    # Bedrock signs requests with the usual AWS credential chain, so no key variable is required.
    "bedrock": NativeEndpoint(provider="bedrock", base_url=None, base_url_env="BEDROCK_ENDPOINT_URL",
                              api_key_required=False, logprobs=False, max_top_k=0),
}


def _native_spec(prefix: str, name: str) -> ModelSpec:
    ep = NATIVE_ENDPOINTS[prefix]
    key_env = next((e for e in ep.api_key_envs if os.environ.get(e)), ep.api_key_envs[0] if ep.api_key_envs else None)
    return ModelSpec(
        id=f"{prefix}:{name}", provider=ep.provider, model=name, base_url=ep.base_url,
        base_url_env=ep.base_url_env, api_key_env=key_env, api_key_required=ep.api_key_required,
        vocab_size=ep.vocab_size, logprobs=ep.logprobs, max_top_k=ep.max_top_k, tags=ep.tags,
        # "none" first: the cheapest level, which turns Anthropic/Gemini thinking off.
        reasoning_efforts=("none", "low", "medium", "high"),
    )


# Prices are USD per million tokens, the providers' published list prices when this was written
# (mid 2025): they change, so check the provider's page and override any of them with
# ``register(resolve(id).model_copy(update={"price_in": ...}))``. Latency and quality values are
# rough priors that the latency tracker's measurements replace.
_BUILTIN: dict[str, ModelSpec] = {
    "smollm2": ModelSpec(
        id="smollm2", provider="llama_cpp", model="SmolLM2-135M-Instruct-Q4_1", prompt_style="chat",
        vocab_size=49_152, context_length=8192, tags=("embedded", "chat", "factual"),
        typical_ttft=0.3, typical_tps=40.0, quality=0.2,
    ),
    "gemma3": ModelSpec(
        id="gemma3", provider="llama_cpp", model="gemma-3-270m-Q4_K_M", prompt_style="completion",
        vocab_size=262_144, context_length=32_768, tags=("embedded", "base", "factual"),
        typical_ttft=0.5, typical_tps=25.0, quality=0.25,
    ),
    "openai:gpt-4o-mini": ModelSpec(
        id="openai:gpt-4o-mini", provider="openai", model="gpt-4o-mini", price_in=0.15, price_out=0.6,
        context_length=128_000, vocab_size=200_019, tags=("factual", "code", "creative"),
        typical_ttft=0.5, typical_tps=70.0, quality=0.6,
    ),
    "openai:gpt-4.1-mini": ModelSpec(
        id="openai:gpt-4.1-mini", provider="openai", model="gpt-4.1-mini", price_in=0.4, price_out=1.6,
        context_length=1_047_576, vocab_size=200_019, tags=("factual", "code", "math", "creative"),
        typical_ttft=0.5, typical_tps=75.0, quality=0.7,
    ),
    "openai:gpt-4.1-nano": ModelSpec(
        id="openai:gpt-4.1-nano", provider="openai", model="gpt-4.1-nano", price_in=0.1, price_out=0.4,
        context_length=1_047_576, vocab_size=200_019, tags=("factual", "code"),
        typical_ttft=0.35, typical_tps=110.0, quality=0.45,
    ),
    "openai:o4-mini": ModelSpec(
        id="openai:o4-mini", provider="openai", model="o4-mini", price_in=1.1, price_out=4.4,
        context_length=200_000, vocab_size=200_019, logprobs=False, max_top_k=0,
        tags=("math", "code", "reasoning"), reasoning_efforts=("low", "medium", "high"),
        reasoning_effort="medium", typical_ttft=2.0, typical_tps=90.0, quality=0.85,
    ),
    "openrouter:meta-llama/llama-3.1-8b-instruct": ModelSpec(
        id="openrouter:meta-llama/llama-3.1-8b-instruct", provider="openai",
        model="meta-llama/llama-3.1-8b-instruct", price_in=0.02, price_out=0.03, context_length=131_072,
        vocab_size=128_256, max_top_k=5, tags=("factual", "creative"),
        typical_ttft=0.6, typical_tps=80.0, quality=0.35,
    ),
    "openrouter:qwen/qwen-2.5-7b-instruct": ModelSpec(
        id="openrouter:qwen/qwen-2.5-7b-instruct", provider="openai", model="qwen/qwen-2.5-7b-instruct",
        price_in=0.04, price_out=0.1, context_length=32_768, vocab_size=151_646, max_top_k=5,
        tags=("code", "math", "factual"), typical_ttft=0.6, typical_tps=70.0, quality=0.4,
    ),
    "openrouter:meta-llama/llama-3.3-70b-instruct": ModelSpec(
        id="openrouter:meta-llama/llama-3.3-70b-instruct", provider="openai",
        model="meta-llama/llama-3.3-70b-instruct", price_in=0.13, price_out=0.4, context_length=131_072,
        vocab_size=128_256, max_top_k=5, tags=("factual", "code", "creative"),
        typical_ttft=0.8, typical_tps=45.0, quality=0.6,
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
    elif model_id.partition(":")[0] in NATIVE_ENDPOINTS and model_id.partition(":")[2]:
        spec = _native_spec(model_id.partition(":")[0], model_id.partition(":")[2])
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
        f"or PROVIDER:MODEL with PROVIDER one of {', '.join([*ENDPOINTS, *NATIVE_ENDPOINTS])}"
    )
