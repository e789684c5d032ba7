"""The local llama.cpp provider: the embedded models, with exact full-vocabulary entropy.

Generation runs in a worker thread, one token per ``llama.eval``; the worker reads the last
logits in place, computes the entropy over the whole vocabulary and the top-k in one pass,
samples with its own numpy generator and hands each token to the event loop with
``call_soon_threadsafe``. Closing the stream sets an event the worker checks between tokens
(and between prompt batches), and the stream's ``finally`` waits for the worker to end.
"""

from __future__ import annotations

import asyncio
import codecs
import dataclasses
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ensemble_nb.core.entropy import analyze_logits
from ensemble_nb.core.errors import ContextTooLong, EnsembleError, ProviderError
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.embedded import LoadedModel, get_model, import_llama_cpp
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.tokens import Alternative, Completion, StreamItem, Token, Usage

# A base model prompted "Q: ...\nA:" goes on to invent the next question or a new paragraph.
COMPLETION_STOPS = ("\nQ:", "\n\n")
# Replaces a chat template's built-in system prompt when the request has none: SmolLM2's
# ("You are a helpful AI assistant named SmolLM...") makes it answer "What is the capital of
# France?" with a list of French words, this one with "The capital of France is Paris."
DEFAULT_SYSTEM = "You are a helpful assistant."
_DONE = object()
_Utf8Decoder = codecs.getincrementaldecoder("utf-8")


def utf8_piece(pending: bytes, piece: bytes) -> tuple[str, bytes]:
    """Text completed by ``piece`` after the ``pending`` bytes of a split character, and what
    is still pending (a multi-byte character may span tokens)."""
    dec = _Utf8Decoder("replace")
    dec.setstate((pending, 0))
    return dec.decode(piece), dec.getstate()[0]


class LlamaLocalProvider:
    """An embedded (or any local .gguf) model through llama-cpp-python.

    ``ignore_eos`` keeps generating through end-of-generation tokens and disables the built-in
    stop strings (``request.stop`` still applies), to force exactly ``max_tokens`` in benchmarks.
    """

    def __init__(self, spec: ModelSpec, *, n_threads: int | None = None, n_ctx: int = 2048,
                 ignore_eos: bool = False) -> None:
        self.spec = spec
        self.n_threads = n_threads
        self.n_ctx = min(n_ctx, spec.context_length)
        self.ignore_eos = ignore_eos
        self.loaded: LoadedModel | None = None
        self.last_worker: threading.Thread | None = None
        self.last_generated = 0
        """Tokens the last generation sampled (it stops early when the stream is closed)."""
        self._workers: dict[threading.Thread, threading.Event] = {}  # running worker -> its stop flag
        self._formatter: Any = None

    @property
    def model_id(self) -> str:
        return self.spec.id

    @property
    def capabilities(self) -> Capabilities:
        vocab = self.loaded.n_vocab if self.loaded else self.spec.vocab_size
        return Capabilities(logprobs=True, max_top_k=20, full_vocab_entropy=True, prefix=True,
                            vocab_size=vocab)

    @property
    def active_workers(self) -> int:
        return sum(t.is_alive() for t in self._workers)

    async def load(self) -> LoadedModel:
        """Load (or fetch from the process cache) the model, off the event loop."""
        if self.loaded is None:
            self.loaded = await asyncio.to_thread(get_model, self.spec, n_ctx=self.n_ctx,
                                                  n_threads=self.n_threads)
        return self.loaded

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        loaded = await self.load()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        done: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()

        def emit(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                stop.set()

        def finished() -> None:
            if not done.done():
                done.set_result(None)

        def work() -> None:
            try:
                self._run(loaded, request, emit, stop)
            finally:
                emit(_DONE)
                try:
                    loop.call_soon_threadsafe(finished)
                except RuntimeError:
                    pass

        worker = threading.Thread(target=work, name=f"llama-{self.spec.id}", daemon=True)
        self._workers[worker] = stop
        self.last_worker = worker
        worker.start()
        try:
            while (item := await queue.get()) is not _DONE:
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, Token | Completion)
                yield item
        finally:
            stop.set()
            try:
                await asyncio.shield(done)
            except asyncio.CancelledError:
                worker.join()  # cancelled again while waiting: block for one token rather than leak a thread
                raise
            finally:
                worker.join()
                self._workers.pop(worker, None)

    async def aclose(self) -> None:
        # Models stay in the process cache for the next run; only running generations stop.
        for worker, stop in list(self._workers.items()):
            stop.set()
            await asyncio.to_thread(worker.join)

    def prompt_tokens(self, request: GenerationRequest, loaded: LoadedModel | None = None) -> list[int]:
        """The token ids the model reads for ``request``: the formatted prompt, then the prefix."""
        loaded = loaded or self.loaded
        assert loaded is not None, "load() the model first"
        llama = loaded.llama
        if self.spec.prompt_style == "chat" and loaded.chat_template:
            if self._formatter is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                self._formatter = Jinja2ChatFormatter(loaded.chat_template, eos_token=loaded.eos_text,
                                                      bos_token=loaded.bos_text, add_generation_prompt=True)
            messages = [{"role": "system", "content": request.system or DEFAULT_SYSTEM},
                        {"role": "user", "content": request.user_content()}]
            text, special = self._formatter(messages=messages).prompt, True
        else:
            parts = [request.system.strip()] if request.system else []
            if request.context:
                parts.append("\n\n".join(f"[{i + 1}] {p.strip()}" for i, p in enumerate(request.context)))
            parts.append(f"Q: {request.prompt.strip()}\nA:")
            text, special = "\n\n".join(parts), False
        add_bos = loaded.add_bos and not (loaded.bos_text and text.startswith(loaded.bos_text))
        ids: list[int] = llama.tokenize(text.encode(), add_bos=add_bos, special=special)
        if request.prefix:
            ids += llama.tokenize(request.prefix.encode(), add_bos=False, special=False)
        return ids

    def _run(self, loaded: LoadedModel, request: GenerationRequest, emit: Callable[[object], None],
             stop: threading.Event) -> None:
        # Poll the lock so a stream closed while waiting for another generation ends at once.
        while not loaded.lock.acquire(timeout=0.05):
            if stop.is_set():
                return
        try:
            for item in self._generate(loaded, request, stop):
                emit(item)
        except EnsembleError as exc:
            emit(exc)
        except Exception as exc:
            loaded.llama.reset()  # a failed decode leaves the KV cache in an unknown state
            emit(ProviderError(f"{self.spec.id}: llama.cpp failed: {exc}"))
        finally:
            loaded.lock.release()

    def _generate(self, loaded: LoadedModel, request: GenerationRequest,
                  stop: threading.Event) -> Iterator[StreamItem]:
        llama_cpp = import_llama_cpp()
        llama = loaded.llama
        ids = self.prompt_tokens(request, loaded)
        if len(ids) >= loaded.n_ctx:
            raise ContextTooLong(f"{self.spec.id}: the prompt is {len(ids)} tokens but the context holds "
                                 f"{loaded.n_ctx}: shorten the prompt or the context passages")
        if not _feed_prompt(loaded, ids, stop):
            return
        budget = min(request.max_tokens, loaded.n_ctx - len(ids))
        chat = self.spec.prompt_style == "chat" and loaded.chat_template
        builtin = () if chat else COMPLETION_STOPS
        stops = tuple(s for s in (*request.stop, *(() if self.ignore_eos else builtin)) if s)
        rng = np.random.default_rng(request.seed)
        k, pending, held = request.top_k, b"", list[Token]()
        self.last_generated = 0
        finish, tok = "length", -1
        for step in range(budget):
            if step:
                llama.eval([tok])
            if stop.is_set():
                return
            ptr = llama_cpp.llama_get_logits_ith(llama._ctx.ctx, -1)
            logits: NDArray[np.float32] = np.ctypeslib.as_array(ptr, shape=(loaded.n_vocab,))
            entropy, top, top_lps = analyze_logits(logits, max(k, 1))
            tok = _sample(logits, int(top[0]), request, rng)
            if not self.ignore_eos and loaded.is_eog(tok):
                finish = "stop"
                break
            self.last_generated += 1
            before = pending
            text, pending = utf8_piece(before, loaded.piece(tok))
            logprob = float(top_lps[0]) + float(logits[tok] - logits[top[0]])  # top_lps[0] = -log Z
            alts = tuple(Alternative(utf8_piece(before, loaded.piece(int(i)))[0], float(lp))
                         for i, lp in zip(top[:k], top_lps[:k], strict=True))
            token = Token(text, min(logprob, 0.0), entropy, "full", alts, None, tok)
            if not stops:
                yield token
                continue
            held.append(token)
            ready, held, hit = _apply_stops(held, stops)
            yield from ready
            if hit:
                finish = "stop"
                break
        yield from held
        yield Completion(finish, Usage(len(ids), self.last_generated))


def _feed_prompt(loaded: LoadedModel, ids: Sequence[int], stop: threading.Event) -> bool:
    """Decode the prompt from scratch, checking for cancellation between batches.

    No reuse of a shared prefix in the KV cache: llama.cpp's logits depend on how tokens were
    batched (a 1-token batch takes another matmul kernel than a long one, and logits move by up
    to ~0.5), so reusing would make the same request give different entropies and even
    different greedy tokens depending on what ran before.
    """
    llama = loaded.llama
    llama.reset()
    for i in range(0, len(ids), llama.n_batch):
        if stop.is_set():
            return False
        llama.eval(ids[i: i + llama.n_batch])
    return not stop.is_set()


def _sample(logits: NDArray[np.float32], best: int, request: GenerationRequest,
            rng: np.random.Generator) -> int:
    if request.temperature == 0.0:
        return best
    x = (logits - logits[best]) / np.float32(request.temperature)
    if request.top_p < 1.0:
        # Tokens more than e^-30 below the best carry no mass that top-p could reach.
        cand = np.flatnonzero(x >= -30.0)
        p = np.exp(x[cand].astype(np.float64))
        order = np.argsort(-p, kind="stable")
        cum = np.cumsum(p[order])
        cut = int(np.searchsorted(cum, request.top_p * cum[-1])) + 1
        cand, cum = cand[order[:cut]], cum[:cut]
    else:
        cand, cum = np.arange(x.size), np.cumsum(np.exp(x), dtype=np.float64)
    i = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
    return int(cand[min(i, cand.size - 1)])


def _apply_stops(held: list[Token], stops: Sequence[str]) -> tuple[list[Token], list[Token], bool]:
    """Split held tokens into those safe to emit and those that may begin a stop string.

    Returns (ready, still held, stop hit). On a hit the token where the stop string starts is
    cut short and everything after it is dropped.
    """
    text = "".join(t.text for t in held)
    hits = [i for s in stops if (i := text.find(s)) >= 0]
    if hits:
        cut, pos, ready = min(hits), 0, []
        for t in held:
            if pos >= cut:
                break
            part = t.text[: cut - pos]
            ready.append(t if part == t.text else dataclasses.replace(t, text=part))
            pos += len(t.text)
        return ready, [], True
    tail = max((n for s in stops for n in range(min(len(s) - 1, len(text)), 0, -1) if text.endswith(s[:n])),
               default=0)
    remaining, n_ready = len(text), 0
    for t in held:
        if remaining - len(t.text) < tail:
            break
        remaining -= len(t.text)
        n_ready += 1
    return held[:n_ready], held[n_ready:], False
