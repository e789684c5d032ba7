"""A run: the ensemble's members streaming in parallel under one task group.

Before the members start, the orchestrator's policy plans the run (``PlanChosen``): which of the
requested models run, the primary, each member's deadlines, a hedge and a quorum. When the plan
is supervised a :class:`~ensemble_nb.core.orchestrator.supervisor.TailSupervisor` task runs
beside the members (hedge, fallback, quorum). Every run's events feed the latency tracker.

The run owns every task it starts. Its commands (cancel one model, cancel the run) may come
from any thread — widget callbacks arrive on ipykernel's comm threads — and are handed to the
run's event loop; only the loop touches the run's state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import replace
from typing import Any

from ensemble_nb.core.events import (
    Event,
    ModelCancelled,
    PlanChosen,
    RetrievalDone,
    RunFinished,
    RunStarted,
    SpanRetried,
    SynthesisReady,
)
from ensemble_nb.core.member import Member
from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.orchestrator.deadlines import Deadlines
from ensemble_nb.core.orchestrator.latency import LatencyTracker, default_tracker, series_key
from ensemble_nb.core.orchestrator.plans import Plan, PlanContext
from ensemble_nb.core.orchestrator.policy import AllPolicy, Policy, policy_for
from ensemble_nb.core.orchestrator.supervisor import TailSupervisor
from ensemble_nb.core.providers.base import GenerationRequest, Provider
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.result import RunResult
from ensemble_nb.core.synthesis import synthesize_run

Retriever = Callable[[str], Awaitable[RetrievalDone | None]]
Listener = Callable[[Event], None]
ProviderFactory = Callable[[ModelSpec], Provider]


class EnsembleRun:
    """Handle of one run: start it, watch its events, cancel parts of it, await its result."""

    def __init__(self, prompt: str, options: RunOptions, specs: Sequence[ModelSpec],
                 provider_factory: ProviderFactory, *, retriever: Retriever | None = None,
                 policy: Policy | None = None, tracker: LatencyTracker | None = None) -> None:
        """``policy`` defaults to the one ``options`` name (see ``policy_for``), ``tracker`` to
        the process's latency tracker."""
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
        self.policy = policy if policy is not None else policy_for(options)
        self.tracker = tracker if tracker is not None else default_tracker()
        self.plan: Plan | None = None
        self.supervisor: TailSupervisor | None = None
        self._hooks: list[Listener] = [self.tracker.recorder(self._endpoint_of)]

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> EnsembleRun:
        """Start on the running event loop and return at once."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._t0 = time.monotonic()
            self._task = self._loop.create_task(self._main(), name=f"ensemble-run-{self.run_id}")
        return self

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the run executes on (None until started); commands go there."""
        return self._loop

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
        for past in self.result.events:
            queue.put_nowait(past)
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
        for hook in self._hooks:
            hook(event)
        for q in self._queues:
            q.put_nowait(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception as exc:  # a broken view must not take the run down with it
                self.errors.append(f"listener {listener!r} failed on {event.kind}: {exc!r}")

    def clock(self) -> float:
        return time.monotonic() - self._t0

    # -- the run itself --------------------------------------------------------------------
    def request(self, **changes: Any) -> GenerationRequest:
        o = self.options
        base = dict(prompt=self.prompt, system=o.system, context=self.context, max_tokens=o.max_tokens,
                    temperature=o.temperature, top_p=o.top_p, top_k=o.top_k, seed=o.seed,
                    reasoning_effort=o.reasoning_effort)
        return GenerationRequest(**{**base, **changes})

    def _endpoint_of(self, member: str) -> tuple[str, str]:
        spec = self.specs.get(member)
        return series_key(member, spec.endpoint if spec is not None else "default")

    def _make_plan(self) -> Plan:
        ctx = PlanContext.for_run(self.prompt, list(self.specs.values()), self.options, context=self.context,
                                  tracker=self.tracker)
        try:
            return self.policy.plan(ctx)
        except Exception as exc:  # a policy being prototyped must not lose the user's answer
            self.errors.append(f"policy {getattr(self.policy, 'name', '?')} failed: {type(exc).__name__}: {exc}")
            plan = AllPolicy().plan(ctx)
            return replace(plan, notes=(f"{self.errors[-1]}; every model runs instead", *plan.notes))

    def _start_member(self, group: asyncio.TaskGroup, spec: ModelSpec, request: GenerationRequest,
                      deadlines: Deadlines, effort: str | None) -> None:
        self.specs.setdefault(spec.id, spec)  # a hedge copy: retry and the tracker look it up
        if effort is not None and effort != request.reasoning_effort:  # the plan's effort wins the option's
            request = request.model_copy(update={"reasoning_effort": effort})
        member = Member(spec, self.provider_factory, self.run_id, self.clock)
        self.members[spec.id] = member
        member.task = group.create_task(
            member.run(request, self.options.timeout, self.emit, lambda: self._cancel_requested, deadlines),
            name=f"ensemble-{self.run_id}-{spec.id}")

    async def _main(self) -> RunResult:
        status = "ok"
        try:
            self.emit(RunStarted(run_id=self.run_id, t=self.clock(), prompt=self.prompt,
                                 models=tuple(self.specs)))
            if self.retriever is not None:
                retrieved = await self.retriever(self.prompt)
                if retrieved is not None:
                    self.context = tuple(p.text for p in retrieved.passages)
                    # The retriever cannot know the run: stamp the event as this run's.
                    self.emit(replace(retrieved, run_id=self.run_id, t=self.clock()))
            plan = self.plan = self._make_plan()
            self.emit(PlanChosen(run_id=self.run_id, t=self.clock(), primary=plan.primary, members=plan.models,
                                 reason=plan.reason, expected_cost=plan.expected_cost,
                                 expected_seconds=plan.expected_seconds))
            request = self.request()
            if plan.supervised:
                self.supervisor = TailSupervisor(plan, clock=self.clock, cancel=self._cancel_member)
                self._hooks.append(self.supervisor.on_event)
            async with asyncio.TaskGroup() as group:
                def start(spec: ModelSpec, deadlines: Deadlines, effort: str | None) -> None:
                    self._start_member(group, spec, request, deadlines, effort)

                for mp in plan.members:
                    start(self.specs[mp.model], mp.deadlines, mp.reasoning_effort)
                if self.supervisor is not None:
                    group.create_task(self.supervisor.watch(start), name=f"ensemble-{self.run_id}-supervisor")
            synthesis = await synthesize_run(self)
            if self.supervisor is not None and self.supervisor.notes:
                synthesis = replace(synthesis, notes=(*synthesis.notes, *self.supervisor.notes))
            self.emit(SynthesisReady(run_id=self.run_id, t=self.clock(), synthesis=synthesis))
            if self.options.retry_below is not None:
                from ensemble_nb.core.retry import retry_low_confidence

                await retry_low_confidence(self, self.options.retry_below)
            status = "ok" if self._all_went_to_plan() else "partial" if synthesis.text else "failed"
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

    def _all_went_to_plan(self) -> bool:
        """Every started member finished, or was cut by the orchestrator on purpose."""
        for model in self.members:
            end = self.result.models[model].end
            by_design = isinstance(end, ModelCancelled) and end.reason in ("quorum", "hedge")
            if not by_design and self.result.models[model].status != "finished":
                return False
        return True

    def _total_cost(self) -> float | None:
        costs = [r.cost for r in self.result.models.values() if r.cost is not None]
        return sum(costs) if costs else None

    async def _close_providers(self) -> None:
        for member in self.members.values():
            if member.provider is not None:
                await asyncio.shield(member.provider.aclose())
