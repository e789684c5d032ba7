"""Tail control while a run streams: hedging, quorum, fallback.

The supervisor is one task beside the members. It reads the run's events (``on_event``) and
acts on its own timers, so no member is cancelled from inside another member's event:

* **hedge**: if the primary has no first token by the plan's hedge delay (its measured p95)
  and the shared token bucket allows, the same model is started at another endpoint; whichever
  of the two sends a token first wins, the other is cancelled with reason ``"hedge"``.
* **fallback**: if the primary (and its hedge) end without finishing — an error, a missed
  first-token or stall deadline, a user's cancel — the best other member becomes the anchor.
* **quorum**: once the anchor has finished at time T (from the members' start), synthesis
  waits for ``quorum`` other members to finish, but not past (1 + b) × T; members still
  running then are cancelled with reason ``"quorum"`` and keep what they produced.

The deadlines themselves are kept by each member (see ``Member.run``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from ensemble_nb.core.events import Event, ModelEnded, ModelFinished, ModelStarted, TokenReceived
from ensemble_nb.core.orchestrator.deadlines import Deadlines
from ensemble_nb.core.orchestrator.plans import Plan
from ensemble_nb.core.registry import ModelSpec

StartMember = Callable[[ModelSpec, Deadlines, str | None], None]
CancelMember = Callable[[str, str], None]


class TailSupervisor:
    def __init__(self, plan: Plan, *, clock: Callable[[], float], cancel: CancelMember) -> None:
        self.plan = plan
        self.clock = clock
        self.cancel = cancel
        self.expected: list[str] = list(plan.models)
        self.extras = [m for m in plan.models if m != plan.primary]
        self.pair = [plan.primary]  # the primary and, once fired, its hedge copy
        self.anchor = self.pair
        self.started: dict[str, float] = {}
        self.first_token: dict[str, float] = {}
        self.ended: dict[str, ModelEnded] = {}
        self.notes: list[str] = []
        self.hedged: str | None = None
        self._hedge_pending = plan.hedge is not None
        self._race_open = False
        self._quorum_done = False
        self._fallback_done = False
        self._wake = asyncio.Event()

    # -- input -----------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if isinstance(event, ModelStarted):
            self.started.setdefault(event.model, event.t)
        elif isinstance(event, TokenReceived):
            self.first_token.setdefault(event.model, event.t)
        elif isinstance(event, ModelEnded):
            self.ended[event.model] = event
        else:
            return
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------
    async def watch(self, start: StartMember) -> None:
        """Runs until every member (and hedge) has ended."""
        if self.plan.hedge is not None:
            self.plan.hedge.limiter.note_call()
        while True:
            self._wake.clear()
            wake_at = self.step(start)
            if all(m in self.ended for m in self.expected):
                return
            if math.isinf(wake_at):
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(max(wake_at - self.clock(), 0.0)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def step(self, start: StartMember) -> float:
        """Act on the state now; return the run-clock time of the next timer (inf: none)."""
        now = self.clock()
        timers = [self._hedge(now, start), math.inf]
        self._race()
        self._fallback()
        timers.append(self._quorum(now))
        return min(timers)

    # -- the policies ----------------------------------------------------------------------
    def _hedge(self, now: float, start: StartMember) -> float:
        hedge = self.plan.hedge
        primary = self.plan.primary
        if hedge is None or not self._hedge_pending:
            return math.inf
        if primary in self.first_token or primary in self.ended:
            self._hedge_pending = False
            return math.inf
        if primary not in self.started:
            return math.inf
        fire_at = self.started[primary] + hedge.after
        if now < fire_at:
            return fire_at
        self._hedge_pending = False
        if not hedge.limiter.try_acquire():
            self.notes.append(f"{primary}: no first token after {hedge.after:.2f} s, but the hedge "
                              f"budget (≈{hedge.limiter.rate:.0%} of calls) is spent")
            return math.inf
        self.hedged = hedge.spec.id
        self.pair.append(hedge.spec.id)
        self.expected.append(hedge.spec.id)
        self._race_open = True
        effort = self.plan.members[0].reasoning_effort
        start(hedge.spec, hedge.deadlines, effort)
        self.notes.append(f"{primary}: no first token after {hedge.after:.2f} s, hedged to {hedge.spec.id}")
        return math.inf

    def _race(self) -> None:
        if not self._race_open:
            return
        firsts = [(self.first_token[m], m) for m in self.pair if m in self.first_token]
        finished = [m for m in self.pair if isinstance(self.ended.get(m), ModelFinished)]
        winner = min(firsts)[1] if firsts else (finished[0] if finished else None)
        if winner is None:
            if all(m in self.ended for m in self.pair):
                self._race_open = False
            return
        self._race_open = False
        for m in self.pair:
            if m != winner and m not in self.ended:
                self.cancel(m, "hedge")
        if winner != self.plan.primary:
            self.notes.append(f"the hedge {winner} answered first")

    def _fallback(self) -> None:
        if self._fallback_done or not all(m in self.ended for m in self.anchor):
            return
        if any(isinstance(self.ended[m], ModelFinished) for m in self.anchor):
            return
        self._fallback_done = True
        alive = [m for m in self.extras if m not in self.ended or isinstance(self.ended[m], ModelFinished)]
        if not alive:
            self.notes.append(f"{self.plan.primary} ended without an answer and no other member is left")
            return

        def preference(m: str) -> tuple[int, float, int]:
            if isinstance(self.ended.get(m), ModelFinished):
                return (0, self.ended[m].t, self.extras.index(m))
            return (1, self.first_token.get(m, math.inf), self.extras.index(m))

        best = min(alive, key=preference)
        end = self.ended[self.anchor[0]]
        self.anchor = [best]
        self.notes.append(f"{self.plan.primary} ended as {end.kind.removeprefix('model_')}: "
                          f"{best} is the answer's source instead")

    def _quorum(self, now: float) -> float:
        if self._quorum_done:
            return math.inf
        done = [self.ended[m] for m in self.anchor if isinstance(self.ended.get(m), ModelFinished)]
        if not done:
            return math.inf
        t0 = min(self.started.values(), default=0.0)
        deadline = t0 + (1 + self.plan.budget) * (done[0].t - t0)
        others = [m for m in self.expected if m not in self.anchor and m not in self.pair]
        finished = sum(isinstance(self.ended.get(m), ModelFinished) for m in others)
        running = [m for m in self.expected if m not in self.ended]
        if not running:
            self._quorum_done = True
            return math.inf
        if finished < self.plan.quorum and now < deadline:
            return deadline
        self._quorum_done = True
        for m in running:
            self.cancel(m, "quorum")
        why = f"{finished} member(s) finished" if finished >= self.plan.quorum else \
            f"{1 + self.plan.budget:.2f} × the answer's time ({deadline:.2f} s) passed"
        self.notes.append(f"synthesis started ({why}); cut {', '.join(running)}")
        return math.inf
