"""A run: the ensemble's members streaming in parallel under one task group.

The run owns every task it starts. Its commands (cancel one model, cancel the run) may come
from any thread — widget callbacks arrive on ipykernel's comm threads — and are handed to the
run's event loop; only the loop touches the run's state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import Any

from ensemble_nb.core.events import (
    Event,
    PlanChosen,
    RetrievalDone,
    RunFinished,
    RunStarted,
    SpanRetried,
    SynthesisReady,
)
from ensemble_nb.core.member import Member
from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.result import RunResult
from ensemble_nb.core.synthesis import synthesize

Retriever = Callable[[str], Awaitable[RetrievalDone | None]]
Listener = Callable[[Event], None]
ProviderFactory = Callable[[ModelSpec], Provider]


class EnsembleRun:
    """Handle of one run: start it, watch its events, cancel parts of it, await its result."""

    def __init__(self, prompt: str, options: RunOptions, specs: Sequence[ModelSpec],
                 provider_factory: ProviderFactory, *, retriever: Retriever | None = None) -> None:
        self.run_id = uuid.uuid4().hex[:12]
        self.prompt = prompt
        self.options = options
        self.specs = {s.id: s for s in specs}
        self.provider_factory = provider_factory
        self.retriever = retriever
        self.result = RunResult(run_id=self.run_id, prompt=prompt)
        self.members: dict[str, Member] = {}
        self._t0 = time.monotonic()
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[Event | None]] = []
        self._task: asyncio.Task[RunResult] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel_requested = False
        self.context: tuple[str, ...] = ()
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self.errors: list[str] = []

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> EnsembleRun:
        """Start on the running event loop and return at once."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._t0 = time.monotonic()
            self._task = self._loop.create_task(self._main(), name=f"ensemble-run-{self.run_id}")
        return self

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait(self) -> RunResult:
        self.start()
        assert self._task is not None
        return await self._task

    def __await__(self) -> Generator[Any, None, RunResult]:
        return self.wait().__await__()

    # -- commands (any thread) -------------------------------------------------------------
    def cancel_model(self, model: str, reason: str = "user") -> None:
        """Stop one member; the others go on and what it produced is kept."""
        self._call_in_loop(self._cancel_member, model, reason)

    def cancel(self) -> None:
        """Stop the whole run; every member ends as cancelled."""
        self._call_in_loop(self._cancel_all)

    def retry_span_soon(self, index: int, model: str | None = None) -> None:
        """Retry a span from any thread; the outcome arrives as a ``SpanRetried`` event."""
        self._call_in_loop(self._spawn_retry, index, model)

    async def retry_span(self, index: int, model: str | None = None) -> SpanRetried:
        """Regenerate span ``index`` of the synthesis; keep it only if confidence improves."""
        from ensemble_nb.core.retry import retry_span

        return await retry_span(self, index, model)

    def _spawn_retry(self, index: int, model: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self.retry_span(index, model))
        self._side_tasks.add(task)
        task.add_done_callback(self._side_task_done)

    def _side_task_done(self, task: asyncio.Task[Any]) -> None:
        self._side_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.errors.append(str(task.exception()))

    async def aclose(self) -> None:
        """Cancel the run and any retry in flight, and wait until all of them have ended."""
        self.cancel()
        pending = [t for t in (self._task, *self._side_tasks) if t is not None and not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending)

    def _call_in_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            fn(*args)
        else:
            loop.call_soon_threadsafe(fn, *args)

    def _cancel_member(self, model: str, reason: str) -> None:
        member = self.members.get(model)
        if member and member.task and not member.task.done() and member.cancel_reason is None:
            member.cancel_reason = reason
            member.task.cancel()

    def _cancel_all(self) -> None:
        if self._task and not self._task.done():
            self._cancel_requested = True
            self._task.cancel()

    # -- events ----------------------------------------------------------------------------
    def add_listener(self, listener: Listener, replay: bool = True) -> None:
        """Call ``listener`` on the loop for every event (past ones first when ``replay``)."""
        if replay:
            for event in list(self.result.events):
                listener(event)
        self._listeners.append(listener)

    async def events(self) -> AsyncIterator[Event]:
        """Every event of the run, from the first, until the run has finished."""
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        for event in self.result.events:
            queue.put_nowait(event)
        if self.done:
            queue.put_nowait(None)
        else:
            self._queues.append(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            if queue in self._queues:
                self._queues.remove(queue)

    def emit(self, event: Event) -> None:
        self.result.apply(event)
        for q in self._queues:
            q.put_nowait(event)
        for listener in list(self._listeners):
            listener(event)

    def clock(self) -> float:
        return time.monotonic() - self._t0

    # -- the run itself --------------------------------------------------------------------
    def request(self, **changes: Any) -> GenerationRequest:
        o = self.options
        base = dict(prompt=self.prompt, system=o.system, context=self.context, max_tokens=o.max_tokens,
                    temperature=o.temperature, top_p=o.top_p, top_k=o.top_k, seed=o.seed)
        return GenerationRequest(**{**base, **changes})

    async def _main(self) -> RunResult:
        status = "ok"
        try:
            self.emit(RunStarted(run_id=self.run_id, t=self.clock(), prompt=self.prompt,
                                 models=tuple(self.specs)))
            if self.retriever is not None:
                retrieved = await self.retriever(self.prompt)
                if retrieved is not None:
                    self.context = tuple(p.text for p in retrieved.passages)
                    self.emit(retrieved)
            members = tuple(self.specs)
            self.emit(PlanChosen(run_id=self.run_id, t=self.clock(), primary=members[0], members=members,
                                 reason="every requested model runs (no orchestrator policy given)"))
            request = self.request()
            async with asyncio.TaskGroup() as group:
                for model in members:
                    member = Member(self.specs[model], self.provider_factory, self.run_id, self.clock)
                    self.members[model] = member
                    member.task = group.create_task(
                        member.run(request, self.options.timeout, self.emit, lambda: self._cancel_requested),
                        name=f"ensemble-{self.run_id}-{model}")
            synthesis = synthesize(list(self.result.models.values()), self.options.synthesis)
            self.emit(SynthesisReady(run_id=self.run_id, t=self.clock(), synthesis=synthesis))
            if self.options.retry_below is not None:
                from ensemble_nb.core.retry import retry_low_confidence

                await retry_low_confidence(self, self.options.retry_below)
            finished = sum(r.status == "finished" for r in self.result.models.values())
            status = "ok" if finished == len(members) else "partial" if synthesis.text else "failed"
        except asyncio.CancelledError:
            status = "cancelled"
            if not self._cancel_requested:
                raise
        finally:
            await self._close_providers()
            self.emit(RunFinished(run_id=self.run_id, t=self.clock(), status=status,  # type: ignore[arg-type]
                                  duration=self.clock(), cost=self._total_cost()))
            for q in self._queues:
                q.put_nowait(None)
        return self.result

    def _total_cost(self) -> float | None:
        costs = [r.cost for r in self.result.models.values() if r.cost is not None]
        return sum(costs) if costs else None

    async def _close_providers(self) -> None:
        for member in self.members.values():
            if member.provider is not None:
                await asyncio.shield(member.provider.aclose())
