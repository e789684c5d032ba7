"""What a provider streams: one generated token with its probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EntropyKind = Literal["full", "topk", "none"]
"""How a token's entropy was obtained.

``full``: exact, over the whole vocabulary from the logits.
``topk``: a point estimate from the top-k alternatives, with bounds.
``none``: the provider returned no probabilities for this token.
"""


@dataclass(frozen=True, slots=True)
class Alternative:
    """One candidate token and its log-probability (natural log)."""

    text: str
    logprob: float


@dataclass(frozen=True, slots=True)
class EntropyBounds:
    """Bounds on a token's entropy (nats) when only the top-k are known.

    ``tail_mass`` is the probability left outside the top-k; it is a signal of its own.
    """

    lower: float
    tight_lower: float
    upper: float
    tail_mass: float


@dataclass(frozen=True, slots=True)
class Token:
    """One generated token.

    ``logprob`` and ``entropy`` are in nats; ``entropy`` is None when ``entropy_kind`` is
    ``none``. ``alternatives`` are the top-k candidates, most likely first, and may include
    the chosen token itself.
    """

    text: str
    logprob: float | None = None
    entropy: float | None = None
    entropy_kind: EntropyKind = "none"
    alternatives: tuple[Alternative, ...] = ()
    bounds: EntropyBounds | None = None
    token_id: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, as the provider reported them (or as we counted)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """The last item of a provider stream: why it stopped and what it used."""

    finish_reason: str = "stop"
    usage: Usage | None = None
    extra: dict[str, str] = field(default_factory=dict)


StreamItem = Token | Completion
