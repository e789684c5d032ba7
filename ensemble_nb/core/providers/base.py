"""The one provider protocol: an async stream of tokens with their probabilities."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from ensemble_nb.core.tokens import Completion, StreamItem, Token


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    content: str


class GenerationRequest(BaseModel):
    """What every provider is asked to do.

    ``prefix`` is text the answer must start with: the provider continues from it (used to
    retry a span given what came before it, and to branch from an alternative token).
    ``top_k`` is how many alternatives to return per token (0 = none).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    system: str | None = None
    context: tuple[str, ...] = ()
    prefix: str = ""
    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=5, ge=0, le=20)
    seed: int = 0
    stop: tuple[str, ...] = ()
    reasoning_effort: str | None = None

    def user_content(self) -> str:
        """The prompt with any retrieved context placed before it."""
        if not self.context:
            return self.prompt
        passages = "\n\n".join(f"[{i + 1}] {p}" for i, p in enumerate(self.context))
        return f"Use these passages if they help.\n\n{passages}\n\nQuestion: {self.prompt}"


class Capabilities(BaseModel):
    """What a provider can return. ``max_top_k`` 0 means no alternatives at all."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    logprobs: bool = True
    max_top_k: int = 20
    full_vocab_entropy: bool = False
    prefix: bool = False
    vocab_size: int | None = None


@runtime_checkable
class Provider(Protocol):
    """A model endpoint.

    ``stream`` yields :class:`~ensemble_nb.core.tokens.Token` items, then optionally one
    :class:`~ensemble_nb.core.tokens.Completion`. It raises
    :class:`~ensemble_nb.core.errors.ProviderError` subclasses on failure. Closing the
    iterator early (``aclose``) must stop generation and release its connection or thread.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]: ...

    async def aclose(self) -> None: ...


async def generate(provider: Provider, request: GenerationRequest,
                   stop: Callable[[list[Token]], bool] | None = None) -> tuple[list[Token], str]:
    """Stream ``request`` from ``provider`` outside a run's members (retries, branches, the LLM
    synthesizer): the tokens and the finish reason. Closes ``provider`` whatever happens; ``stop``
    ends the stream early once it returns True for the tokens so far (finish reason "stop")."""
    tokens: list[Token] = []
    finish = "length"
    try:
        async with aclosing(provider.stream(request)) as stream:
            async for item in stream:
                if isinstance(item, Token):
                    tokens.append(item)
                    if stop is not None and stop(tokens):
                        finish = "stop"
                        break
                elif isinstance(item, Completion):
                    finish = item.finish_reason
    finally:
        await provider.aclose()
    return tokens, finish
