"""Expected cost and time of one call, and what a finished run actually spent.

A call's expected time is its median time to the first token plus its output at its median
tokens per second, from the latency tracker once it has ``min_samples`` calls of the model and
from the registry's priors before. Cost is the registry's prices applied to the prompt (with its
retrieved context and system prompt) and the expected output; reasoning levels add hidden
output tokens at the rates of :data:`REASONING_TOKENS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ensemble_nb.core.events import ModelCancelled, ModelFailed, ModelTimedOut
from ensemble_nb.core.orchestrator.latency import LatencyStats
from ensemble_nb.core.providers.base import GenerationRequest
from ensemble_nb.core.registry import ModelSpec
from ensemble_nb.core.result import RunResult

CHARS_PER_TOKEN = 4.0  # English text with today's BPE vocabularies; errs on the side of more tokens
MESSAGE_OVERHEAD = 4  # the chat template's tokens around each message

# Hidden reasoning tokens per visible output token at each effort level: rough, editable.
REASONING_TOKENS: dict[str, float] = {"none": 0.0, "minimal": 0.5, "low": 2.0, "medium": 5.0, "high": 12.0}


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def prompt_tokens(prompt: str, context: tuple[str, ...] = (), system: str | None = None) -> int:
    """Tokens the provider will bill as input for this prompt, context and system prompt."""
    request = GenerationRequest(prompt=prompt, context=context, system=system)
    return request_prompt_tokens(request)


def request_prompt_tokens(request: GenerationRequest) -> int:
    n = estimate_tokens(request.user_content()) + MESSAGE_OVERHEAD
    if request.system:
        n += estimate_tokens(request.system) + MESSAGE_OVERHEAD
    return n + estimate_tokens(request.prefix)


@dataclass(frozen=True)
class Estimate:
    """One call of ``model``: ``seconds`` is the typical (median) time to the whole answer,
    ``tail_seconds`` the same at the 90th percentile of the first token."""

    model: str
    cost: float
    seconds: float
    ttft: float
    tail_seconds: float
    tokens_per_second: float
    prompt_tokens: int
    output_tokens: int
    measured: bool
    calls: int
    unreliability: float
    reasoning_effort: str | None = None

    def describe(self) -> str:
        source = f"measured over {self.calls} calls" if self.measured else "registry prior"
        return (f"{self.model}: ${self.cost:.6f}, {self.seconds:.2f} s (first token {self.ttft:.2f} s, "
                f"{self.tokens_per_second:.0f} tok/s; {source})")


def estimate(spec: ModelSpec, n_prompt: int, n_output: int, stats: LatencyStats | None = None, *,
             effort: str | None = None, min_samples: int = 5) -> Estimate:
    measured = stats is not None and stats.calls >= min_samples and stats.ttft is not None
    if measured and stats is not None and stats.ttft is not None:
        ttft, ttft_p90 = stats.ttft.p50, stats.ttft.p90
        tps = stats.tokens_per_second or spec.typical_tps
    else:
        ttft, ttft_p90 = spec.typical_ttft, 2.0 * spec.typical_ttft
        tps = spec.typical_tps
    hidden = n_output * REASONING_TOKENS.get(effort, 0.0) if effort else 0.0
    streaming = (n_output + hidden) / tps
    return Estimate(
        model=spec.id, cost=spec.cost(n_prompt, round(n_output + hidden)), seconds=ttft + streaming,
        ttft=ttft, tail_seconds=ttft_p90 + streaming, tokens_per_second=tps, prompt_tokens=n_prompt,
        output_tokens=n_output, measured=measured, calls=stats.calls if stats else 0,
        unreliability=stats.unreliability if stats else 0.0, reasoning_effort=effort,
    )


@dataclass(frozen=True)
class MemberSpend:
    model: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    seconds: float | None
    note: str = ""


@dataclass(frozen=True)
class Accounting:
    """Expected (the plan) next to actual (the events) for one run."""

    members: tuple[MemberSpend, ...]
    cost: float | None
    seconds: float | None
    expected_cost: float | None
    expected_seconds: float | None
    prompt_tokens: int
    completion_tokens: int

    def describe(self) -> str:
        def money(x: float | None) -> str:
            return "?" if x is None else f"${x:.6f}"

        def secs(x: float | None) -> str:
            return "?" if x is None else f"{x:.2f} s"

        lines = [f"{'member':<36} {'status':<10} {'in':>6} {'out':>5} {'cost':>11} {'time':>8}"]
        for m in self.members:
            lines.append(f"{m.model:<36} {m.status:<10} {m.prompt_tokens:>6} {m.completion_tokens:>5} "
                         f"{money(m.cost):>11} {secs(m.seconds):>8} {m.note}".rstrip())
        lines.append(f"{'total':<47} {self.prompt_tokens:>6} {self.completion_tokens:>5} "
                     f"{money(self.cost):>11} {secs(self.seconds):>8}")
        lines.append(f"{'planned':<60} {money(self.expected_cost):>11} {secs(self.expected_seconds):>8}")
        return "\n".join(lines)


def account(result: RunResult) -> Accounting:
    """Tokens, cost and time per member and in total, beside what the plan expected."""
    members = []
    for r in result.models.values():
        if r.end is None:
            continue  # a candidate the plan did not start
        note = ""
        if isinstance(r.end, ModelCancelled):
            note = f"cancelled ({r.end.reason})"
        elif isinstance(r.end, ModelTimedOut):
            note = f"deadline {r.end.timeout:.2f} s"
        elif isinstance(r.end, ModelFailed):
            note = r.end.error_kind
        members.append(MemberSpend(r.model, r.status, r.usage.prompt_tokens, r.usage.completion_tokens,
                                   r.cost, r.duration, note))
    plan = result.plan
    return Accounting(
        members=tuple(members), cost=result.cost, seconds=result.duration,
        expected_cost=plan.expected_cost if plan else None,
        expected_seconds=plan.expected_seconds if plan else None,
        prompt_tokens=sum(m.prompt_tokens for m in members),
        completion_tokens=sum(m.completion_tokens for m in members),
    )
