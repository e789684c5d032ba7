"""Tail latency and cost: one model vs a naive ensemble vs the orchestrator, on simulated providers.

    python benchmarks/orchestrator_tail.py [--queries 1000] [--scale 0.05] [--concurrency 8]

Every query runs through the real runner (``EnsembleRun``) with ``ScriptedProvider``s whose
delays are drawn per query: a lognormal body for the first token and for each gap between tokens,
plus rare spikes at 10× the first-token time. Delays are the simulated providers' times scaled
by ``--scale`` (0.05: a 0.6 s first token sleeps 30 ms), so thousands of queries take seconds;
the table reports times in simulated seconds, as ratios to the single model. The three set-ups
see the same draws for the same query (common random numbers), so the ratios compare like with
like:

(a) single: the primary model alone, as a plain call;
(b) naive: the primary and three cheap members, waiting for all of them;
(c) orchestrator: ``BudgetPolicy`` choosing among the same four, with a hedge endpoint for the
    primary, deadlines, quorum and fallback; its latency tracker starts empty (cold start included).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ensemble_nb.core.events import (
    ModelCancelled,
    ModelStarted,
    ModelTimedOut,
    PlanChosen,
    RunFinished,
    SynthesisReady,
    TokenReceived,
)
from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.orchestrator import AllPolicy, BudgetPolicy, DeadlineRules, HedgeLimiter, LatencyTracker
from ensemble_nb.core.orchestrator.budget import prompt_tokens
from ensemble_nb.core.orchestrator.policy import Policy
from ensemble_nb.core.providers.scripted import ScriptedProvider, Step
from ensemble_nb.core.registry import HedgeEndpoint, ModelSpec
from ensemble_nb.core.run import EnsembleRun

N_TOKENS = 12
# About 400 prompt tokens, as with a retrieved passage: input is most of a short answer's cost.
PASSAGE = ("Paris, the capital of France, lies on the Seine in the north of the country. " * 21).strip()
PROMPT_TOKENS = prompt_tokens(f"query 0000: {PASSAGE} What is the capital of France?")


@dataclass(frozen=True)
class SimModel:
    """A simulated provider, in simulated seconds and USD per million tokens."""

    id: str
    price_in: float
    price_out: float
    ttft: float  # median first-token time
    sigma: float  # lognormal spread of the first token
    spike_rate: float  # share of calls whose first token is 10× late
    gap: float  # median gap between tokens
    quality: float = 0.3

    def spec(self, scale: float, hedge: bool = False) -> ModelSpec:
        return ModelSpec(id=self.id, provider="scripted", price_in=self.price_in, price_out=self.price_out,
                         typical_ttft=self.ttft * scale, typical_tps=1.0 / (self.gap * scale),
                         quality=self.quality, tags=("factual",),
                         hedge_endpoints=(HedgeEndpoint(name="b"),) if hedge else ())

    def draw(self, rng: random.Random) -> list[float]:
        """One call's delays: the first token, then each gap."""
        first = self.ttft * math.exp(rng.gauss(0.0, self.sigma))
        if rng.random() < self.spike_rate:
            first *= 10.0
        return [first] + [self.gap * math.exp(rng.gauss(0.0, 0.25)) for _ in range(N_TOKENS - 1)]


PRIMARY = SimModel("sim:large", 0.15, 0.60, ttft=0.60, sigma=0.35, spike_rate=0.015, gap=0.04, quality=0.8)
MEMBERS = (
    SimModel("sim:mini-a", 0.015, 0.06, ttft=0.50, sigma=0.35, spike_rate=0.01, gap=0.035),
    SimModel("sim:mini-b", 0.010, 0.04, ttft=0.55, sigma=0.35, spike_rate=0.015, gap=0.04),
    SimModel("sim:spiky", 0.005, 0.02, ttft=0.50, sigma=0.35, spike_rate=0.20, gap=0.035),
)
WORDS = "Paris is the capital and largest city of France , on the Seine".split()


def steps(delays: list[float], scale: float, rng: random.Random) -> list[Step]:
    conf = rng.uniform(0.6, 0.97)  # so synthesis has a real choice to make
    return [Step(("" if i == 0 else " ") + WORDS[i % len(WORDS)], {WORDS[i % len(WORDS)]: conf}, tail_size=50,
                 delay=d * scale) for i, d in enumerate(delays)]


@dataclass
class Outcome:
    ttft: float
    total: float
    cost: float
    expected_cost: float
    members: int
    hedged: bool
    cut: int
    deadline_misses: list[str]


def measure(run: EnsembleRun, scale: float) -> Outcome:
    events = run.result.events
    plan = next(e for e in events if isinstance(e, PlanChosen))
    start = plan.t  # the members start here
    first = min((e.t for e in events if isinstance(e, TokenReceived)), default=math.inf)
    ready = next(e.t for e in events if isinstance(e, SynthesisReady))
    cost = next(e.cost for e in events if isinstance(e, RunFinished)) or 0.0
    started = [e.model for e in events if isinstance(e, ModelStarted)]
    return Outcome(ttft=(first - start) / scale, total=(ready - start) / scale, cost=cost,
                   expected_cost=plan.expected_cost or 0.0,
                   members=len(started), hedged=any("@" in m for m in started),
                   cut=sum(isinstance(e, ModelCancelled) and e.reason == "quorum" for e in events),
                   deadline_misses=[e.model for e in events if isinstance(e, ModelTimedOut)])


@dataclass
class Arm:
    name: str
    models: tuple[SimModel, ...]
    policy: Policy
    hedge: bool
    tracker: LatencyTracker

    def specs(self, scale: float) -> list[ModelSpec]:
        return [m.spec(scale, hedge=self.hedge and m is PRIMARY) for m in self.models]


async def run_query(arm: Arm, specs: list[ModelSpec], i: int, draws: dict[str, list[float]], scale: float,
                    seed: int) -> Outcome:
    rng = random.Random(seed * 1_000_003 + i)  # the same texts for every arm
    providers = {k: ScriptedProvider(k, steps(d, scale, rng), prompt_tokens=PROMPT_TOKENS) for k, d in draws.items()}
    factory: Callable[[ModelSpec], ScriptedProvider] = lambda s: providers[s.id]  # noqa: E731
    options = RunOptions(models=tuple(s.id for s in specs), orchestrate=True, max_tokens=N_TOKENS, timeout=60.0)
    run = EnsembleRun(f"query {i:04d}: {PASSAGE} What is the capital of France?", options, specs, factory,
                      policy=arm.policy, tracker=arm.tracker)
    await run
    return measure(run, scale)


async def run_all(arms: list[Arm], draws: list[dict[str, list[float]]], scale: float, concurrency: int,
                  seed: int) -> dict[str, list[Outcome]]:
    """Query i runs in every arm at the same moment, so a hiccup of this shared machine lands on
    all of them alike; ``concurrency`` queries are in flight at once."""
    specs = {a.name: a.specs(scale) for a in arms}
    out: dict[str, list[Outcome | None]] = {a.name: [None] * len(draws) for a in arms}
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            results = await asyncio.gather(*(run_query(a, specs[a.name], i, draws[i], scale, seed) for a in arms))
        for a, r in zip(arms, results, strict=True):
            out[a.name][i] = r

    await asyncio.gather(*(one(i) for i in range(len(draws))))
    return {name: [o for o in outs if o is not None] for name, outs in out.items()}


async def watch_loop_lag(lags: list[float], every: float = 0.005) -> None:
    """How late the loop wakes a sleeper: the noise every simulated delay carries."""
    loop = asyncio.get_running_loop()
    while True:
        t = loop.time()
        await asyncio.sleep(every)
        lags.append(loop.time() - t - every)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def report(arms: dict[str, list[Outcome]]) -> bool:
    base = arms["single"]
    def quantile(field: str, q: float) -> Callable[[list[Outcome]], float]:
        return lambda outs: pct([getattr(x, field) for x in outs], q)

    rows: list[tuple[str, Callable[[list[Outcome]], float]]] = [
        *((f"{f} p{q}", quantile(f, q)) for f in ("ttft", "total") for q in (50, 90, 99)),
        ("mean cost", lambda outs: float(np.mean([x.cost for x in outs]))),
    ]
    names = list(arms)
    print(f"{'':<11}" + "".join(f"{n:>22}" for n in names))
    for label, f in rows:
        b = f(base)
        cells = []
        for n in names:
            v = f(arms[n])
            unit = f"${v * 1e6:.2f}µ" if label == "mean cost" else f"{v:.2f}s"
            cells.append(f"{unit} ({v / b:5.2f}×)")
        print(f"{label:<11}" + "".join(f"{c:>22}" for c in cells))
    orch = arms["orchestrator"]
    print(f"{'members':<11}" + "".join(f"{np.mean([x.members for x in arms[n]]):>22.2f}" for n in names))
    misses = [m for x in orch for m in x.deadline_misses]
    print(f"orchestrator: hedged {sum(x.hedged for x in orch)} of {len(orch)} queries, "
          f"{sum(x.cut for x in orch)} members cut by quorum, {len(misses)} deadline misses "
          f"({', '.join(sorted(set(misses))) or 'none'})")
    count = len(base)
    within_cost = sum(o.cost <= 1.25 * b.cost + 1e-15 for o, b in zip(orch, base, strict=True)) / count
    within_time = sum(o.total <= 1.25 * b.total for o, b in zip(orch, base, strict=True)) / count
    planned = float(np.mean([o.cost / o.expected_cost for o in orch if o.expected_cost]))
    print(f"orchestrator, query by query against the single model: cost ≤ 1.25× in {within_cost:.1%}, "
          f"total time ≤ 1.25× in {within_time:.1%}; actual/planned cost {planned:.2f}")
    p90 = pct([x.total for x in orch], 90) / pct([x.total for x in base], 90)
    cost = float(np.mean([x.cost for x in orch]) / np.mean([x.cost for x in base]))
    p99_ok = pct([x.total for x in orch], 99) <= pct([x.total for x in base], 99)
    checks = [(f"orchestrator p90 total ≤ 1.25× single ({p90:.2f}×)", p90 <= 1.25),
              (f"orchestrator mean cost ≤ 1.25× single ({cost:.2f}×)", cost <= 1.25),
              ("orchestrator p99 total ≤ single p99", p99_ok)]
    for text, ok in checks:
        print(f"[{'ok' if ok else 'FAIL'}] {text}")
    return all(ok for _, ok in checks)


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--scale", type=float, default=0.25, help="wall seconds per simulated second")
    ap.add_argument("--concurrency", type=int, default=12, help="queries in flight (each in every set-up)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    everyone = (PRIMARY, *MEMBERS)
    draws = [{m.id: m.draw(rng) for m in everyone} | {f"{PRIMARY.id}@b": PRIMARY.draw(rng)}
             for _ in range(args.queries)]
    s = args.scale
    # The default deadline rules, in wall seconds at this scale.
    d = DeadlineRules()
    rules = DeadlineRules(first_token_floor=d.first_token_floor * s, first_token_cap=d.first_token_cap * s,
                          stall_floor=d.stall_floor * s, stall_cap=d.stall_cap * s, hedge_floor=d.hedge_floor * s)
    arms = [Arm("single", (PRIMARY,), AllPolicy(), False, LatencyTracker(persist=False)),
            Arm("naive ensemble", everyone, AllPolicy(), False, LatencyTracker(persist=False)),
            Arm("orchestrator", everyone, BudgetPolicy(deadline_rules=rules, hedge=HedgeLimiter(rate=0.05, burst=2.0)),
                True, LatencyTracker(persist=False))]
    lags: list[float] = []
    monitor = asyncio.create_task(watch_loop_lag(lags))
    t0 = time.perf_counter()
    results = await run_all(arms, draws, s, args.concurrency, args.seed)
    monitor.cancel()
    print(f"{args.queries} queries per set-up in {time.perf_counter() - t0:.0f} s (scale {s}, "
          f"concurrency {args.concurrency}); times in simulated seconds, ratios to the single model")
    print(f"event-loop lag (wall): p50 {pct(lags, 50) * 1e3:.1f} ms, p99 {pct(lags, 99) * 1e3:.1f} ms, "
          f"max {max(lags) * 1e3:.0f} ms = {max(lags) / s:.1f} simulated s\n")
    return 0 if report(results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
