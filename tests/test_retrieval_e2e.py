"""make_retriever in a real run: the RetrievalDone event, the members' context, a free loop."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from ensemble_nb.core import RetrievalDone, UserError, prepare
from ensemble_nb.core.events import Passage
from ensemble_nb.core.providers.scripted import ScriptedProvider
from ensemble_nb.core.retrieval import EnsembleRetriever, IndexCache, make_retriever

FACTS = [
    "Tungsten, also known as wolfram, has the symbol W and atomic number 74.",
    "Gold has the symbol Au; it is a soft, yellow metal.",
    "Helium is a noble gas with the symbol He.",
    "Iron has the symbol Fe and rusts in moist air.",
]


async def test_a_run_carries_the_passages_to_its_members(tmp_path: Path) -> None:
    retriever = make_retriever(FACTS, top_k=2, cache=IndexCache(tmp_path))
    ensemble = prepare("Which element has the symbol W?", retriever=retriever, models="scripted:sure")
    result = await ensemble
    done = [e for e in result.events if isinstance(e, RetrievalDone)]
    assert len(done) == 1
    event = done[0]
    assert event.query == "Which element has the symbol W?"
    assert event.passages[0].text == FACTS[0] and event.passages[0].source == "item 0"
    assert event.passages[0].retrievers == ("bm25:prompt",)  # the keywords' tokens were the same
    assert event.passages[0].score == pytest.approx(1 / 61)
    assert event.t >= 0.0
    provider = ensemble.members["scripted:sure"].provider
    assert isinstance(provider, ScriptedProvider)
    context = provider.requests[0].context
    assert context == tuple(p.text for p in event.passages)
    assert provider.requests[0].user_content().startswith("Use these passages if they help.\n\n[1] Tungsten")
    assert result.text


async def test_fused_passages_name_every_ranker_that_found_them(tmp_path: Path) -> None:
    async def rewrite(prompt: str) -> str:
        return "wolfram"

    retriever = make_retriever(FACTS, top_k=3, rewrite=rewrite, cache=IndexCache(tmp_path))
    done = await retriever("Could you please tell me which element has the symbol W?")
    top = done.passages[0]
    assert top.text == FACTS[0]
    # The polite prompt's words differ from its keywords', so each is a ranking of its own.
    assert top.retrievers == ("bm25:prompt", "bm25:keywords", "bm25:rewrite")
    assert top.score == pytest.approx(3 / 61)
    assert all(isinstance(p, Passage) for p in done.passages) and len(done.passages) <= 3


async def test_indexing_runs_off_the_event_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    retriever = EnsembleRetriever(FACTS, cache=IndexCache(tmp_path))
    threads: list[threading.Thread] = []
    real = retriever.search_variants

    def slow(*args: object) -> list[Passage]:
        threads.append(threading.current_thread())
        time.sleep(0.3)  # a big corpus being indexed
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(retriever, "search_variants", slow)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        await retriever("symbol Fe")
    finally:
        task.cancel()
    assert threads and threads[0] is not threading.main_thread()
    assert ticks >= 10  # the loop kept running while the search blocked


def test_bad_sources_fail_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        make_retriever(tmp_path / "missing")
    with pytest.raises(UserError, match="no text"):
        make_retriever([])
    with pytest.raises(ValueError):
        make_retriever(FACTS, top_k=0)


def test_make_retriever_passes_a_ready_retriever_through(tmp_path: Path) -> None:
    ready = EnsembleRetriever(FACTS, cache=IndexCache(tmp_path))
    assert make_retriever(ready) is ready


def test_a_folder_source(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, fact in enumerate(FACTS):
        (folder / f"{i}.md").write_text(fact)
    retriever = make_retriever(folder, top_k=1, cache=IndexCache(tmp_path / "cache"))
    done = asyncio.run(retriever("What rusts in moist air?"))
    assert [p.source for p in done.passages] == ["3.md"]
