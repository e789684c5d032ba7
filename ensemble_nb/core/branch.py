"""Branching: what a model would have said had it picked another of its top-k alternatives.

A branch keeps the model's own tokens before ``index``, puts the chosen alternative in place of
token ``index`` and lets the same model continue from there. The provider reads that text as a
``prefix`` (the answer must start with it), so only providers that can continue from a prefix
can branch: the local llama.cpp models, scripted providers and remote ones that declare it.
A branch is not part of the run: it emits no event and leaves the run's result untouched, so
exploring never changes the answer the ensemble gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ensemble_nb.core.entropy import aggregate
from ensemble_nb.core.errors import UserError
from ensemble_nb.core.events import TokenReceived
from ensemble_nb.core.providers.base import generate
from ensemble_nb.core.tokens import Token

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun

DEFAULT_BRANCH_TOKENS = 32


@dataclass(frozen=True)
class Branch:
    """One continuation. ``prefix`` = the original tokens before ``index`` + ``alternative``;
    ``tokens`` are what the model generated after it; ``text`` is the whole branched answer."""

    model: str
    index: int
    alternative: str
    original: str
    prefix: str
    tokens: tuple[Token, ...] = ()
    finish_reason: str = "stop"
    notes: tuple[str, ...] = field(default=())

    @property
    def continuation(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def text(self) -> str:
        return self.prefix + self.continuation

    @property
    def entropies(self) -> list[float | None]:
        return [t.entropy for t in self.tokens]

    @property
    def mean_entropy(self) -> float | None:
        return aggregate(self.entropies, "mean")


def branch_prefix(tokens: Sequence[TokenReceived | Token], index: int, alternative_text: str) -> str:
    """The text a branch continues from: the tokens before ``index``, then the alternative."""
    if not 0 <= index < len(tokens):
        raise UserError(f"no token {index}: this model produced tokens 0 to {len(tokens) - 1}")
    return "".join(t.text for t in tokens[:index]) + alternative_text


def _check(run: EnsembleRun, model: str, index: int) -> list[TokenReceived]:
    if model not in run.specs:
        raise UserError(f"cannot branch '{model}': it is not a member of this run ({', '.join(run.specs)})")
    result = run.result.models.get(model)
    tokens = list(result.tokens) if result is not None else []
    if not tokens:
        raise UserError(f"'{model}' has no tokens yet: wait for the run (await run), then branch")
    if not 0 <= index < len(tokens):
        raise UserError(f"no token {index} for '{model}': it produced tokens 0 to {len(tokens) - 1}")
    return tokens


async def branch(run: EnsembleRun, model: str, index: int, alternative_text: str,
                 max_tokens: int = DEFAULT_BRANCH_TOKENS) -> Branch:
    """Continue ``model`` from its own tokens[:index] + ``alternative_text``.

    The request is the run's (prompt, system, retrieved context, temperature, top-k), with the
    prefix and ``max_tokens`` changed, streamed through the run's provider factory. Raises
    :class:`UserError` for a bad model or index, or a provider that cannot continue a prefix.
    """
    if max_tokens < 1:
        raise UserError(f"max_tokens must be at least 1 (got {max_tokens})")
    tokens = _check(run, model, index)
    prefix = branch_prefix(tokens, index, alternative_text)
    provider = run.provider_factory(run.specs[model])
    if not provider.capabilities.prefix:
        await provider.aclose()
        raise UserError(f"'{model}' cannot branch: its provider cannot continue from a given prefix "
                        "(branch a local model such as smollm2 or gemma3 instead)")
    out, finish = await generate(provider, run.request(prefix=prefix, max_tokens=max_tokens))
    notes = () if any(a.text == alternative_text for a in tokens[index].alternatives) else (
        "the alternative is not one of the token's top-k: it was given by hand",)
    return Branch(model=model, index=index, alternative=alternative_text, original=tokens[index].text,
                  prefix=prefix, tokens=tuple(out), finish_reason=finish, notes=notes)
