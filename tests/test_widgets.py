"""The live view, headless: real runs with scripted providers, the widgets' comm replaced by a
recorder at the ``comm.create_comm`` seam (as ipywidgets' own tests do with a DummyComm).

What the recorder sees is what a frontend would receive, so "no token lost" and "messages per
second" are checked on the wire, not on Python state alone.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import comm
import pytest
from comm.base_comm import BaseComm

from ensemble_nb.core import EnsembleRun, ModelCancelled, SpanRetried, TokenReceived, prepare
from ensemble_nb.core.providers.base import Capabilities, GenerationRequest
from ensemble_nb.core.providers.scripted import ScriptedProvider, steps_from_text
from ensemble_nb.core.tokens import Completion, StreamItem, Token, Usage
from ensemble_nb.widgets import EnsembleView, result_mimebundle
from ensemble_nb.widgets.colors import NO_PROBS_LABEL


@dataclass(frozen=True)
class Sent:
    t: float
    comm_id: str
    msg_type: str
    data: dict[str, Any]


class RecordingComm(BaseComm):
    """A comm whose messages go to a list instead of a kernel's iopub socket."""

    def __init__(self, log: list[Sent], *args: Any, **kwargs: Any) -> None:
        self.log = log
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        self.log.append(Sent(time.monotonic(), self.comm_id, msg_type, dict(data or {})))


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Sent]]:
    log: list[Sent] = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **k: RecordingComm(log, *a, **k))
    yield log


class NoProbsProvider:
    """A provider that returns tokens without probabilities (entropy_kind 'none')."""

    def __init__(self, model_id: str, text: str) -> None:
        self._id, self.words = model_id, text.split(" ")

    @property
    def model_id(self) -> str:
        return self._id

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(logprobs=False, max_top_k=0)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        for i, word in enumerate(self.words):
            await asyncio.sleep(0.002)
            yield Token(word if i == 0 else " " + word)
        yield Completion("stop", Usage(1, len(self.words)))

    async def aclose(self) -> None:
        return None


def scripted(name: str, text: str, conf: float = 0.9, delay: float = 0.002) -> ScriptedProvider:
    return ScriptedProvider(name, steps_from_text(text, conf), token_delay=delay)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def chunks_on_wire(log: list[Sent], comm_id: str) -> list[dict[str, Any]]:
    return [m.data["state"]["chunk"] for m in log
            if m.comm_id == comm_id and m.data.get("method") == "update" and "chunk" in m.data["state"]]


def delivered_texts(log: list[Sent], view: EnsembleView, model: str) -> list[str]:
    """The token texts a frontend would hold, rebuilt from the chunks as the JS does."""
    tokens: list[dict[str, Any]] = []
    for chunk in chunks_on_wire(log, view.panes[model].widget.comm.comm_id):
        if chunk.get("reset"):
            tokens = list(chunk["tokens"])
            continue
        assert chunk["start"] == len(tokens), "a gap or an overlap between chunks"
        tokens.extend(chunk["tokens"])
    return [t["text"] for t in tokens]


async def test_panes_hold_every_token_coloured_by_entropy(wire: list[Sent]) -> None:
    run = prepare("q", models="sure unsure plain", max_tokens=200, providers={
        "sure": scripted("sure", "The capital of France is Paris.", 0.97),
        "unsure": scripted("unsure", "The capital of France is Lyon.", 0.35),
        "plain": NoProbsProvider("plain", "no numbers here."),
    })
    view = EnsembleView(run)
    result = await run
    for model, r in result.models.items():
        pane = view.panes[model].widget
        assert [t["text"] for t in pane.tokens] == [t.text for t in r.tokens]
        assert [t["i"] for t in pane.tokens] == list(range(len(r.tokens)))
        assert delivered_texts(wire, view, model) == [t.text for t in r.tokens]
        assert pane.status == "finished" and pane.stats["n"] == len(r.tokens)
    sure, unsure = view.panes["sure"].widget.tokens, view.panes["unsure"].widget.tokens
    assert all(t["color"] and t["color"].startswith("#") for t in sure + unsure)
    assert sure[0]["color"] != unsure[0]["color"]  # sure and guessing look different
    assert "top-5" in sure[0]["title"] and "Paris" in sure[-1]["title"] and "nats" in sure[0]["title"]
    plain = view.panes["plain"].widget.tokens
    assert all(t["color"] is None and t["kind"] == "none" for t in plain)
    assert all(NO_PROBS_LABEL in t["title"] for t in plain)
    # The full list never travels again once streaming: only deltas do.
    pane_ids = {p.widget.comm.comm_id for p in view.panes.values()}
    assert not [m for m in wire if m.comm_id in pane_ids and "tokens" in m.data.get("state", {})
                and m.msg_type == "comm_msg"]


async def test_cancel_button_stops_that_model_only(wire: list[Sent]) -> None:
    run = prepare("q", models="slow a b", max_tokens=500, providers={
        "slow": scripted("slow", " ".join(["w"] * 400), delay=0.01),
        "a": scripted("a", "Paris is the capital.", delay=0.01),
        "b": scripted("b", "It is Paris.", delay=0.01),
    })
    view = EnsembleView(run)
    run.start()
    await until(lambda: "slow" in run.result.models and len(run.result.models["slow"].tokens) >= 5)
    button = view.panes["slow"].cancel_button
    assert "enb-cancel" in button._dom_classes and button.tooltip == "Cancel slow"
    button.click()
    result = await run
    ends = {e.model: e for e in result.events if isinstance(e, ModelCancelled)}
    assert set(ends) == {"slow"} and ends["slow"].reason == "user"
    assert result.models["slow"].status == "cancelled" and 5 <= len(result.models["slow"].tokens) < 400
    assert result.models["a"].status == "finished" and result.models["b"].status == "finished"
    assert view.panes["slow"].widget.status == "cancelled"
    assert button.disabled and button.description == "Cancelled"
    assert not view.panes["a"].cancel_button.disabled or view.panes["a"].end is not None
    assert [t["text"] for t in view.panes["slow"].widget.tokens] == [t.text for t in result.models["slow"].tokens]


async def test_plot_traces_hold_the_entropies(wire: list[Sent]) -> None:
    run = prepare("q", models="a b", max_tokens=200, providers={
        "a": scripted("a", "one two three four five.", 0.9), "b": scripted("b", "uno dos tres.", 0.5)})
    view = EnsembleView(run, window=300)
    result = await run
    for model in ("a", "b"):
        expected = [t.entropy for t in result.models[model].tokens]
        assert view.plot.entropies(model) == pytest.approx(expected)
    assert "enb-plot" in view.plot.figure._dom_classes
    assert "nats" in view.plot.figure.layout.yaxis.title.text


async def test_synthesis_spans_and_retry_span(wire: list[Sent]) -> None:
    run = prepare("q", models="sure unsure", max_tokens=200, providers={
        "sure": scripted("sure", "Paris is the capital. It is in France.", 0.97),
        "unsure": scripted("unsure", "Lyon is the capital. It is big.", 0.4),
    })
    view = EnsembleView(run)
    result = await run
    pane = view.synthesis.widget
    assert result.synthesis is not None
    assert [s["text"] for s in pane.spans] == [s.text for s in result.synthesis.spans]
    assert len(pane.spans) == 2 and all(s["color"].startswith("#") for s in pane.spans)
    assert "enb-retry" in view.synthesis.retry_button._dom_classes and not view.synthesis.retry_button.disabled

    pane.selected = 1  # what the frontend does on a click: model.set("selected", 1) + save_changes
    view.synthesis.retry_button.click()
    await until(lambda: bool(pane.retries))
    retried = [e for e in result.events if isinstance(e, SpanRetried)]
    assert len(retried) == 1 and retried[0].index == 1
    shown = pane.retries[0]
    assert shown["index"] == 1 and shown["new_text"] == retried[0].new.text
    assert shown["accepted"] == retried[0].accepted
    assert pane.spans[1]["retried"]["new_confidence"] == pytest.approx(retried[0].new.confidence, abs=1e-4)
    assert ("kept" if retried[0].accepted else "discarded") in pane.notice


async def test_retry_without_a_selection_says_what_to_do(wire: list[Sent]) -> None:
    run = prepare("q", models="a", providers={"a": scripted("a", "One. Two.")})
    view = EnsembleView(run)
    await run
    view.synthesis.retry_button.click()
    await until(lambda: bool(view.synthesis.widget.notice))  # the next tick, within the budget
    assert "click a span" in view.synthesis.widget.notice
    assert not [e for e in run.result.events if isinstance(e, SpanRetried)]


def message_rate(log: list[Sent], t0: float, t1: float) -> tuple[int, float, int]:
    """Messages sent in [t0, t1], their rate per second, and the most in any 1 s window."""
    times = [m.t for m in log if t0 <= m.t <= t1 and m.msg_type == "comm_msg"]
    peak = max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)
    return len(times), len(times) / (t1 - t0), peak


async def fast_run(n_tokens: int, models: tuple[str, ...]) -> EnsembleRun:
    return prepare("q", models=" ".join(models), max_tokens=n_tokens, providers={
        m: ScriptedProvider(m, steps_from_text(" ".join(["tok"] * n_tokens), 0.8), token_delay=0.001)
        for m in models})


async def test_message_rate_is_bounded_and_no_token_is_lost(wire: list[Sent]) -> None:
    run = await fast_run(2000, ("a", "b"))
    view = EnsembleView(run)
    t0 = time.monotonic()
    result = await run
    t1 = time.monotonic()
    produced = sum(len(r.tokens) for r in result.models.values())
    delivered = sum(len(delivered_texts(wire, view, m)) for m in result.models)
    count, rate, peak = message_rate(wire, t0, t1)
    print(f"\n[widget message rate] {produced} tokens in {t1 - t0:.2f} s "
          f"({produced / (t1 - t0):.0f} tokens/s); {count} comm messages = {rate:.1f} messages/s "
          f"(peak {peak} in any 1 s); tokens produced {produced}, delivered to the views {delivered}; "
          f"{view.ticker.ticks} ticks")
    assert produced == 4000 and delivered == produced
    assert t1 - t0 > 1.0  # long enough for a per-second rate to mean something
    assert rate <= 20
    assert peak <= 30  # the final state is flushed at once, on top of the steady rate


async def test_ticks_run_on_the_worker_thread_loop_of_a_blocking_run(wire: list[Sent]) -> None:
    run = await fast_run(300, ("a", "b"))
    view = EnsembleView(run)  # built on this thread's loop, as a notebook cell would
    worker = threading.Thread(target=lambda: asyncio.run(run.wait()), name="ensemble-run")
    worker.start()
    await asyncio.to_thread(worker.join)
    assert view.ticker.tick_threads == {"ensemble-run"}
    for model, r in run.result.models.items():
        assert delivered_texts(wire, view, model) == [t.text for t in r.tokens]
    assert view.synthesis.widget.spans


async def test_view_attached_to_a_run_already_streaming_on_another_thread(wire: list[Sent]) -> None:
    run = prepare("q", models="a", max_tokens=400, providers={"a": scripted("a", " ".join(["w"] * 400), delay=0.004)})
    started = threading.Event()

    async def go() -> None:
        run.start()
        started.set()
        await run

    worker = threading.Thread(target=lambda: asyncio.run(go()), name="ensemble-run")
    worker.start()
    started.wait()
    await asyncio.sleep(0.05)
    assert not run.done
    view = EnsembleView(run)  # subscribes on the run's loop, which replays then streams there
    await asyncio.to_thread(worker.join)
    assert view.ticker.tick_threads == {"ensemble-run"}
    assert delivered_texts(wire, view, "a") == [t.text for t in run.result.models["a"].tokens]


def test_view_of_a_finished_run_outside_any_loop(wire: list[Sent]) -> None:
    run = prepare("q", models="a", providers={"a": scripted("a", "Done. Here.")})
    asyncio.run(run.wait())
    view = EnsembleView(run)  # replayed and drawn at once: no loop will tick
    assert [t["text"] for t in view.panes["a"].widget.tokens] == [t.text for t in run.result.models["a"].tokens]
    assert view.panes["a"].cancel_button.disabled
    assert len(view.synthesis.widget.spans) == 2
    view.synthesis.widget.selected = 0
    view.synthesis.retry_button.click()  # the run's loop has closed and no other loop runs
    assert "retry" in view.synthesis.widget.notice and "await run.retry_span(0)" in view.synthesis.widget.notice


async def test_a_frontend_gap_gets_the_whole_stream_again(wire: list[Sent]) -> None:
    run = prepare("q", models="a", providers={"a": scripted("a", "one two three")})
    view = EnsembleView(run)
    await run
    pane = view.panes["a"].widget
    pane._handle_custom(pane, {"type": "resync", "have": 0}, [])
    await until(lambda: not pane.resync_requested)
    last = chunks_on_wire(wire, pane.comm.comm_id)[-1]
    assert last["reset"] and [t["text"] for t in last["tokens"]] == ["one", " two", " three"]


async def test_result_mimebundle_is_static_and_coloured() -> None:
    run = prepare("q", models="sure plain", providers={
        "sure": scripted("sure", "Paris <b>is</b> it.", 0.97), "plain": NoProbsProvider("plain", "x y.")})
    result = await run
    bundle = result_mimebundle(result)
    assert set(bundle) == {"text/plain", "text/html"}
    assert "== synthesis ==" in bundle["text/plain"]
    page = bundle["text/html"]
    n_tokens = sum(len(r.tokens) for r in result.models.values())
    assert len(re.findall(r'<span class="enb-token[^"]*" data-index=', page)) == n_tokens
    assert "background-color:#" in page and "enb-noprob" in page and NO_PROBS_LABEL in page
    assert 'class="enb-span' in page and 'data-index="0"' in page
    assert "&lt;b&gt;" in page and "<b>is</b>" not in page  # model text is escaped
    assert "<script" not in page
    assert not [e for e in result.events if isinstance(e, TokenReceived) and e.entropy_kind == "none"
                and e.model == "sure"]


def test_result_has_a_text_and_html_mimebundle() -> None:
    from ensemble_nb.core import run as run_blocking

    result = run_blocking("q", models="scripted:sure scripted:unsure")
    bundle = result._repr_mimebundle_()
    assert "== synthesis ==" in bundle["text/plain"]
    assert "The capital of France is Paris." in bundle["text/html"]
    assert "<script" not in bundle["text/html"]
