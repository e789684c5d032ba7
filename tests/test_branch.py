"""Branching from an alternative token: scripted providers, and the real local models."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ensemble_nb.core import UserError, prepare
from ensemble_nb.core.branch import Branch, branch, branch_prefix
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text


def _continuation(request: GenerationRequest) -> Sequence[Step]:
    # The first call (no prefix) answers; a branch continues, saying what it was given.
    if not request.prefix:
        return steps_from_text("The capital is Paris.", 0.6)
    return [Step(" then", {" then": 0.5, " so": 0.3}), Step(" more.", {" more.": 0.9})]


class NoPrefixProvider(ScriptedProvider):
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(prefix=False)


async def test_branch_continues_from_the_chosen_alternative() -> None:
    provider = ScriptedProvider("a", _continuation)
    run = prepare("Capital of France?", models="a", providers={"a": provider}, max_tokens=16)
    result = await run
    toks = result.models["a"].tokens
    alt = next(a.text for a in toks[3].alternatives if a.text != toks[3].text)
    got = await branch(run, "a", 3, alt, max_tokens=8)
    assert isinstance(got, Branch)
    assert got.prefix == "The capital is" + alt
    assert provider.requests[-1].prefix == got.prefix
    assert provider.requests[-1].max_tokens == 8
    assert got.continuation == " then more."
    assert got.text == got.prefix + " then more."
    assert all(e is not None and e >= 0 for e in got.entropies)
    assert got.mean_entropy is not None and got.original == toks[3].text and not got.notes
    assert result.models["a"].text == "The capital is Paris."  # the run's result is untouched


async def test_branch_from_the_first_token_and_a_hand_written_alternative() -> None:
    run = prepare("q", models="a", providers={"a": ScriptedProvider("a", _continuation)})
    await run
    got = await branch(run, "a", 0, "Rome", max_tokens=4)
    assert got.prefix == "Rome" and got.notes


async def test_branch_refuses_bad_input_with_a_clear_error() -> None:
    run = prepare("q", models="a", providers={"a": ScriptedProvider("a", _continuation)})
    with pytest.raises(UserError, match="no tokens yet"):
        await branch(run, "a", 0, "x")
    await run
    with pytest.raises(UserError, match="not a member"):
        await branch(run, "zz", 0, "x")
    with pytest.raises(UserError, match="no token 99"):
        await branch(run, "a", 99, "x")
    with pytest.raises(UserError, match="max_tokens"):
        await branch(run, "a", 0, "x", max_tokens=0)


async def test_branch_needs_a_provider_that_continues_a_prefix() -> None:
    run = prepare("q", models="r", providers={"r": NoPrefixProvider("r", steps_from_text("a b c"))})
    await run
    with pytest.raises(UserError, match="cannot continue from a given prefix"):
        await branch(run, "r", 1, " x")


def test_branch_prefix() -> None:
    run_tokens = steps_from_text("a b c")
    from ensemble_nb.core.tokens import Token

    toks = [Token(s.text) for s in run_tokens]
    assert branch_prefix(toks, 2, " z") == "a b z"
    with pytest.raises(UserError):
        branch_prefix(toks, 3, "z")


@pytest.mark.local
async def test_branch_a_local_model() -> None:
    pytest.importorskip("llama_cpp")
    run = prepare("What is the capital of France?", models="smollm2", max_tokens=12)
    result = await run
    toks = result.models["smollm2"].tokens
    index = next(i for i, t in enumerate(toks) if len(t.alternatives) > 1)
    alt = next(a.text for a in toks[index].alternatives if a.text != toks[index].text)
    got = await branch(run, "smollm2", index, alt, max_tokens=8)
    assert got.text.startswith(result.models["smollm2"].text[:len(got.prefix) - len(alt)] + alt)
    assert 1 <= len(got.tokens) <= 8
    assert all(t.entropy is not None and t.entropy_kind == "full" for t in got.tokens)
