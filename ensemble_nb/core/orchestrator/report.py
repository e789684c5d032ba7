"""Plain functions behind ``%ensemble latency`` and ``%ensemble plan`` (no notebook imports).

``latency_table()`` is the text table, ``latency_plot_data()`` the same measurements as plain
lists for a plot; ``plan(prompt, **options)`` is the decision a run with those options would make
now, and ``explain_plan`` its text. None of them calls a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ensemble_nb.core.options import make_options
from ensemble_nb.core.orchestrator.latency import LatencyTracker, default_tracker
from ensemble_nb.core.orchestrator.plans import Plan, PlanContext
from ensemble_nb.core.orchestrator.policy import Policy, policy_for
from ensemble_nb.core.registry import ModelSpec, resolve


def _ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x * 1000:.0f}ms" if x < 10 else f"{x:.1f}s"


def latency_table(tracker: LatencyTracker | None = None) -> str:
    """One line per model and endpoint: first-token and gap percentiles, speed, error rates."""
    tracker = tracker or default_tracker()
    stats = tracker.all_stats()
    if not stats:
        return f"no latency measured yet (file: {tracker.path})"
    head = (f"{'model':<44} {'endpoint':<9} {'calls':>5}  {'ttft p50':>8} {'p90':>7} {'p95':>7} {'p99':>7}"
            f"  {'gap p50':>7} {'p99':>7}  {'tok/s':>6}  {'errors':>6} {'timeouts':>8}")
    lines = [head, "-" * len(head)]
    for s in stats:
        t = [_ms(getattr(s.ttft, p, None)) for p in ("p50", "p90", "p95", "p99")]
        g = [_ms(getattr(s.gap, p, None)) for p in ("p50", "p99")]
        tps = f"{s.tokens_per_second:.0f}" if s.tokens_per_second is not None else "-"
        lines.append(
            f"{s.model[:44]:<44} {s.endpoint[:9]:<9} {s.calls:>5}  {t[0]:>8} {t[1]:>7} {t[2]:>7} {t[3]:>7}  "
            f"{g[0]:>7} {g[1]:>7}  {tps:>6}  {s.error_rate:>6.1%} {s.timeout_rate:>8.1%}")
    return "\n".join(lines)


def latency_plot_data(tracker: LatencyTracker | None = None) -> list[dict[str, Any]]:
    """Per model and endpoint: the raw first-token times, gaps and tokens/s of the window (for box
    or ECDF plots) with their percentiles and rates. Times are seconds."""
    tracker = tracker or default_tracker()
    rows = []
    for s in tracker.all_stats():
        rows.append({
            "model": s.model, "endpoint": s.endpoint, "calls": s.calls,
            "ttft": list(s.ttft_values), "gap": list(s.gap_values),
            **{f"ttft_{p}": getattr(s.ttft, p, None) for p in ("p50", "p90", "p95", "p99")},
            **{f"gap_{p}": getattr(s.gap, p, None) for p in ("p50", "p99")},
            "tokens_per_second": s.tokens_per_second, "error_rate": s.error_rate,
            "timeout_rate": s.timeout_rate, "unreliability": s.unreliability,
        })
    return rows


def plan(prompt: str, *, context: Sequence[str] = (), specs: Sequence[ModelSpec] | None = None,
         tracker: LatencyTracker | None = None, policy: Policy | str | None = None, **options: Any) -> Plan:
    """The plan a run of ``prompt`` with these options would get now, calling no model.

    ``options`` are run options (``models=``, ``budget=``, ``orchestrate=``…); ``specs`` replaces
    the registry's specs for the models (e.g. custom ones). ``policy`` is a policy object or the
    name of a registered one. Credentials are not required.
    """
    if isinstance(policy, str):  # a name is the run option of the same name
        options["policy"], policy = policy, None
    opts = make_options(**options)
    if specs is None:
        specs = [resolve(m) for m in dict.fromkeys(opts.models)]
    ctx = PlanContext.for_run(prompt, specs, opts, context=tuple(context),
                              tracker=tracker if tracker is not None else default_tracker())
    return (policy or policy_for(opts)).plan(ctx)


def explain_plan(prompt: str, **kwargs: Any) -> str:
    """:func:`plan` as text: the decision, expected cost and time, and why."""
    return plan(prompt, **kwargs).explain()
