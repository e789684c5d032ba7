"""Local throughput: raw llama-cpp-python against the whole ensemble_nb pipeline, side by side.

(a) raw: ``Llama.generate`` greedy on the same Llama object the provider uses (loaded the same
    AMX-safe way), N tokens forced (EOS ignored);
(b) pipeline: ``LlamaLocalProvider(ignore_eos=True)`` streaming N tokens with full-vocabulary
    entropy and top-k alternatives, through ensemble_nb's single-model runner if there is one
    (``ensemble_nb.core.runner``, else ``ensemble_nb.core.member.Member``), else the provider
    directly.

Repetitions are interleaved (a, b, a, b, ...) so load from other processes hits both alike.
Then the full-vocabulary entropy time per token on real Gemma 3 logits (262k vocabulary).

    python benchmarks/local_throughput.py [--model smollm2|gemma3] [--tokens 128] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from ensemble_nb.core.entropy import analyze_logits, entropy_from_logits
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.providers.embedded import LoadedModel, get_model, import_llama_cpp
from ensemble_nb.core.providers.llama_local import LlamaLocalProvider
from ensemble_nb.core.registry import ModelSpec, resolve
from ensemble_nb.core.tokens import Token

PROMPT = "Write a detailed essay about the history of the Roman Empire."


def raw_run(loaded: LoadedModel, prompt_ids: list[int], n_tokens: int) -> float:
    """Seconds for prompt + n_tokens greedy tokens with llama-cpp-python's own loop."""
    llama = loaded.llama
    with loaded.lock:
        llama.reset()  # otherwise generate() reuses the cached prompt and skips its decode
        t0 = time.perf_counter()
        n = 0
        for _ in llama.generate(prompt_ids, temp=0.0, repeat_penalty=1.0):
            n += 1
            if n == n_tokens:
                break
        return time.perf_counter() - t0


def pipeline_runner() -> tuple[str, Callable[[ModelSpec, Provider, GenerationRequest], Awaitable[int]]]:
    """The single-model runner to stream through, and how it is called."""
    try:
        runner: Any = importlib.import_module("ensemble_nb.core.runner")
    except ImportError:
        runner = None
    if runner is not None and hasattr(runner, "run_model"):
        async def via_runner(spec: ModelSpec, provider: Provider, req: GenerationRequest) -> int:
            events: list[Any] = []
            await runner.run_model(spec, provider, req, events.append)
            return sum(type(e).__name__ == "TokenReceived" for e in events)
        return "ensemble_nb.core.runner.run_model", via_runner
    try:
        from ensemble_nb.core.member import Member
    except ImportError:
        async def direct(spec: ModelSpec, provider: Provider, req: GenerationRequest) -> int:
            return sum([isinstance(item, Token) async for item in provider.stream(req)])
        return "the provider directly (no single-model runner in ensemble_nb yet)", direct

    async def via_member(spec: ModelSpec, provider: Provider, req: GenerationRequest) -> int:
        events: list[Any] = []
        member = Member(spec, lambda _spec: provider, "bench", time.monotonic)
        await member.run(req, None, events.append, lambda: False)
        ends = [e for e in events if type(e).__name__ != "TokenReceived" and hasattr(e, "n_tokens")]
        if ends and type(ends[-1]).__name__ != "ModelFinished":
            raise RuntimeError(f"the run did not finish: {ends[-1]}")
        return sum(type(e).__name__ == "TokenReceived" for e in events)
    return "ensemble_nb.core.member.Member.run (ModelStarted, TokenReceived..., ModelFinished)", via_member


async def throughput(model_id: str, n_tokens: int, reps: int, n_threads: int | None) -> None:
    spec = resolve(model_id)
    provider = LlamaLocalProvider(spec, n_threads=n_threads, ignore_eos=True)
    loaded = await provider.load()
    req = GenerationRequest(prompt=PROMPT, max_tokens=n_tokens, temperature=0.0, top_k=5)
    prompt_ids = provider.prompt_tokens(req)
    label, run_pipeline = pipeline_runner()
    print(f"model {model_id} ({loaded.path.name}), vocab {loaded.n_vocab}, n_threads "
          f"{loaded.llama.n_threads}, prompt {len(prompt_ids)} tokens, {n_tokens} tokens forced, {reps} reps")
    print(f"pipeline: {label}")

    async def pipeline_run() -> float:
        t0 = time.perf_counter()
        got = await run_pipeline(spec, provider, req)
        dt = time.perf_counter() - t0
        if got != n_tokens:
            raise RuntimeError(f"pipeline produced {got} tokens, expected {n_tokens}")
        return dt

    raw_run(loaded, prompt_ids, 8)  # warm-up: first decodes allocate buffers
    await pipeline_run()
    raw_times, pipe_times = [], []
    for _ in range(reps):
        raw_times.append(await asyncio.to_thread(raw_run, loaded, prompt_ids, n_tokens))
        pipe_times.append(await pipeline_run())
    raw_rate = n_tokens / statistics.median(raw_times)
    pipe_rate = n_tokens / statistics.median(pipe_times)
    print(f"(a) raw llama-cpp-python : {raw_rate:7.1f} tok/s  (median of {reps}; "
          f"runs {', '.join(f'{n_tokens / t:.1f}' for t in raw_times)})")
    print(f"(b) ensemble_nb pipeline : {pipe_rate:7.1f} tok/s  (median of {reps}; "
          f"runs {', '.join(f'{n_tokens / t:.1f}' for t in pipe_times)})")
    ratio = pipe_rate / raw_rate
    verdict = "met" if ratio >= 0.9 else "NOT met"
    print(f"ratio (b)/(a)            : {ratio:7.3f}  (target >= 0.90: {verdict})")


def gemma_logits(n: int) -> list[np.ndarray[Any, np.dtype[np.float32]]]:
    """``n`` real next-token logit vectors from Gemma 3, copied out of llama.cpp's buffer."""
    llama_cpp = import_llama_cpp()
    loaded = get_model(resolve("gemma3"))
    llama = loaded.llama
    out = []
    with loaded.lock:
        llama.reset()
        llama.eval(llama.tokenize(b"Q: What is the capital of France?\nA:", add_bos=True))
        for _ in range(n):
            ptr = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(loaded.n_vocab,)).copy()
            out.append(logits)
            llama.eval([int(np.argmax(logits))])
    return out


def entropy_timing(n_vectors: int = 16, repeat: int = 20) -> None:
    vectors = gemma_logits(n_vectors)
    print(f"entropy on real Gemma 3 logits: vocabulary {vectors[0].size}, {n_vectors} vectors x {repeat}")
    for name, fn in (("analyze_logits(logits, 5)", lambda x: analyze_logits(x, 5)),
                     ("entropy_from_logits(logits)", entropy_from_logits)):
        for x in vectors[:2]:
            fn(x)  # warm-up
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for x in vectors:
                fn(x)
            times.append((time.perf_counter() - t0) / len(vectors))
        ms = 1000 * statistics.median(times)
        print(f"  {name:28s}: {ms:.3f} ms/token (median; best {1000 * min(times):.3f})"
              f"  (target <= 1 ms: {'met' if ms <= 1.0 else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="smollm2", choices=["smollm2", "gemma3"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: all cores)")
    parser.add_argument("--skip-entropy", action="store_true")
    args = parser.parse_args()
    asyncio.run(throughput(args.model, args.tokens, args.reps, args.threads))
    if not args.skip_entropy:
        entropy_timing()


if __name__ == "__main__":
    main()
