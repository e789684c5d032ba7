"""Retry with backoff around a remote provider, and caps on what a misbehaving server may send.

A retry is only safe before the first token has reached the consumer: after that the member
has already emitted text, and a second attempt would stream it again (or, sampled, stream a
different answer glued to the first). So a failure after the first token ends the stream with
the inner error, and the member keeps its partial text.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator
from contextlib import aclosing

from pydantic import BaseModel, ConfigDict, Field

from ensemble_nb.core.errors import ProtocolError, ProviderError
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest, Provider
from ensemble_nb.core.tokens import StreamItem, Token

log = logging.getLogger("ensemble_nb.retry")


class RetryPolicy(BaseModel):
    """When and how long to wait before trying a failed request again.

    The n-th wait is ``base_delay * 2**(n-1)`` capped at ``max_delay``, shortened by up to
    ``jitter`` of itself at random (so members rate-limited together do not retry together).
    A server's ``Retry-After`` replaces the computed wait; one longer than ``max_retry_after``
    is not waited for. ``max_total_wait`` bounds all waits of one stream together.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1, le=10, description="attempts in all, the first included")
    base_delay: float = Field(default=0.5, ge=0.0, le=60.0)
    max_delay: float = Field(default=8.0, ge=0.0, le=300.0)
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    max_retry_after: float = Field(default=30.0, ge=0.0, le=600.0)
    max_total_wait: float = Field(default=20.0, ge=0.0, le=600.0)
    max_output_chars: int = Field(default=1_000_000, ge=1, description="cap on the text of one answer")
    max_token_overrun: float = Field(
        default=2.0, ge=1.0, description="fail when a server sends this many times max_tokens (ignores the limit)")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based), or None when not worth waiting."""
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        backoff = min(self.base_delay * 2.0 ** (attempt - 1), self.max_delay)
        return backoff * (1.0 - self.jitter * rng.random())


class RetryingProvider:
    """Wraps a provider: retries retryable errors before the first token, caps the output.

    ``attempts`` records every retry as (error kind, seconds waited), for tests and reports.
    """

    def __init__(self, inner: Provider, policy: RetryPolicy | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.attempts: list[tuple[str, float]] = []
        self._rng = rng or random.Random()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        policy = self.policy
        max_tokens = max(int(request.max_tokens * policy.max_token_overrun), request.max_tokens + 8)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            tokens = chars = 0
            try:
                async with aclosing(self.inner.stream(request)) as items:
                    async for item in items:
                        if isinstance(item, Token):
                            tokens += 1
                            chars += len(item.text)
                            self._check_caps(tokens, chars, max_tokens)
                        yield item
                return
            except ProviderError as exc:
                if tokens or not exc.retryable:
                    raise
                wait = policy.delay(attempt, exc.retry_after, self._rng)
                if attempt >= policy.max_attempts or wait is None or waited + wait > policy.max_total_wait:
                    if attempt == 1:
                        raise
                    raise _gave_up(exc, attempt) from exc
                waited += wait
                self.attempts.append((exc.kind, wait))
                # INFO, not WARNING: logging's last-resort handler would print it in every CLI
                # run, and the final error already says how many attempts were made.
                log.info("%s: attempt %d failed (%s); retrying in %.2f s", self.model_id, attempt, exc, wait)
                await asyncio.sleep(wait)

    def _check_caps(self, tokens: int, chars: int, max_tokens: int) -> None:
        # The inner provider buffers at most one SSE line; these bound a whole answer, so a
        # server that ignores max_tokens or streams forever cannot fill the memory.
        if chars > self.policy.max_output_chars:
            raise ProtocolError(f"{self.model_id}: the answer passed {self.policy.max_output_chars} characters; "
                                "the server is misbehaving: check it or lower max_tokens")
        if tokens > max_tokens:
            raise ProtocolError(f"{self.model_id}: the server sent more than {max_tokens} tokens, ignoring "
                                "max_tokens; check the server")

    async def aclose(self) -> None:
        await self.inner.aclose()


def _gave_up(exc: ProviderError, attempts: int) -> ProviderError:
    """The same kind of error, saying how often it was tried."""
    # Every ProviderError subclass keeps the base constructor; the message is already redacted.
    return type(exc)(f"{exc} (gave up after {attempts} attempts)", status=exc.status,
                     retry_after=exc.retry_after)
