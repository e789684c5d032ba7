"""A deterministic provider: token streams with given distributions and delays.

For tests, teaching and offline examples. Each step names the emitted token and, optionally,
the full next-token distribution it was drawn from (so entropy is exact and the top-k are
real alternatives); delays are real ``asyncio.sleep`` calls, so cancellation and timeouts
behave as they do with a network provider.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ensemble_nb.core.entropy import entropy_from_probs
from ensemble_nb.core.errors import ProviderError
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.tokens import Alternative, Completion, StreamItem, Token, Usage


@dataclass(frozen=True)
class Step:
    """One scripted token. ``probs`` maps candidate tokens to probabilities (summing to ≤ 1;
    the rest is spread over an unseen tail of ``tail_size`` tokens). Without ``probs`` the token
    is certain."""

    text: str
    probs: Mapping[str, float] = field(default_factory=dict)
    tail_size: int = 0
    delay: float | None = None


Script = Sequence[Step] | Callable[[GenerationRequest], Sequence[Step]]


def steps_from_text(text: str, confidence: float = 0.9, spread: int = 4) -> list[Step]:
    """Split ``text`` into word tokens, each chosen with probability ``confidence`` and the
    rest of the mass spread over ``spread`` other candidates."""
    words = [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))]
    out = []
    for w in words:
        rest = (1.0 - confidence) / spread if spread else 0.0
        probs = {w: confidence, **{f"{w.strip()}~{j}": rest for j in range(spread)}}
        out.append(Step(w, probs))
    return out


class ScriptedProvider:
    """Plays a script. ``fail_after`` raises ``error`` after that many tokens."""

    def __init__(
        self,
        model_id: str,
        script: Script,
        *,
        first_token_delay: float = 0.0,
        token_delay: float = 0.0,
        fail_after: int | None = None,
        error: ProviderError | None = None,
        prompt_tokens: int | None = None,
    ) -> None:
        self._model_id = model_id
        self._script = script
        self.first_token_delay = first_token_delay
        self.token_delay = token_delay
        self.fail_after = fail_after
        self.error = error or ProviderError(f"{model_id}: scripted failure")
        self.prompt_tokens = prompt_tokens
        self.requests: list[GenerationRequest] = []
        self.closed_streams = 0

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logprobs=True, max_top_k=20, full_vocab_entropy=True, prefix=True)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        self.requests.append(request)
        steps = self._script(request) if callable(self._script) else self._script
        n = 0
        try:
            for i, step in enumerate(steps[: request.max_tokens]):
                if self.fail_after is not None and i >= self.fail_after:
                    raise self.error
                delay = step.delay if step.delay is not None else (
                    self.first_token_delay if i == 0 else self.token_delay)
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    await asyncio.sleep(0)  # a real provider always yields to the loop
                n += 1
                yield _token(step, request.top_k)
            if self.fail_after is not None and len(steps) <= self.fail_after < request.max_tokens:
                raise self.error
            finish = "length" if len(steps) > request.max_tokens else "stop"
            prompt_tokens = self.prompt_tokens if self.prompt_tokens is not None else len(request.prompt.split())
            yield Completion(finish, Usage(prompt_tokens, n))
        finally:
            self.closed_streams += 1

    async def aclose(self) -> None:
        return None


def _token(step: Step, k: int) -> Token:
    if not step.probs:
        alts = (Alternative(step.text, 0.0),) if k else ()
        return Token(step.text, 0.0, 0.0, "full", alts)
    head = dict(step.probs)
    head.setdefault(step.text, max(1e-6, 1.0 - sum(head.values())))
    total = sum(head.values())
    tail_mass = max(0.0, 1.0 - total)
    p = np.array(list(head.values()), dtype=np.float64)
    if tail_mass > 0 and step.tail_size > 0:
        p_full = np.concatenate([p, np.full(step.tail_size, tail_mass / step.tail_size)])
    else:
        p_full = p / p.sum()
    entropy = float(entropy_from_probs(p_full))
    ranked = sorted(head.items(), key=lambda kv: -kv[1])[:k]
    norm = 1.0 if tail_mass > 0 and step.tail_size > 0 else total
    ranked_alts = tuple(Alternative(t, math.log(q / norm)) for t, q in ranked)
    return Token(step.text, math.log(head[step.text] / norm), entropy, "full", ranked_alts)
