"""The orchestrator: who runs for a prompt, within a +b cost and time budget, and tail control.

* :mod:`.latency`: measured first-token time, gaps, speed and failures per model and endpoint.
* :mod:`.tasks`: what kind of question a prompt is (editable rules, optional classifier hook).
* :mod:`.budget`: expected cost/time of a call and per-run accounting.
* :mod:`.policy`: the policies (``BudgetPolicy``, ``AllPolicy``) and the named-policy registry.
* :mod:`.plans`: the plan a policy returns.
* :mod:`.deadlines` and :mod:`.supervisor`: deadlines, hedged requests, quorum and fallback.
* :mod:`.report`: ``latency_table``, ``latency_plot_data``, ``plan``, ``explain_plan``.
"""

from ensemble_nb.core.orchestrator.budget import Accounting, Estimate, account, estimate
from ensemble_nb.core.orchestrator.deadlines import DeadlineRules, Deadlines, HedgeLimiter, hedge_spec
from ensemble_nb.core.orchestrator.latency import (
    LatencyStats,
    LatencyTracker,
    default_tracker,
    percentile,
    set_default_tracker,
)
from ensemble_nb.core.orchestrator.plans import HedgePlan, MemberPlan, Plan, PlanContext
from ensemble_nb.core.orchestrator.policy import (
    AllPolicy,
    BudgetPolicy,
    Policy,
    get_policy,
    policy_for,
    register_policy,
)
from ensemble_nb.core.orchestrator.report import explain_plan, latency_plot_data, latency_table, plan
from ensemble_nb.core.orchestrator.supervisor import TailSupervisor
from ensemble_nb.core.orchestrator.tasks import DEFAULT_RULES, TaskProfile, TaskRule, classify

__all__ = [
    "DEFAULT_RULES",
    "Accounting",
    "AllPolicy",
    "BudgetPolicy",
    "DeadlineRules",
    "Deadlines",
    "Estimate",
    "HedgeLimiter",
    "HedgePlan",
    "LatencyStats",
    "LatencyTracker",
    "MemberPlan",
    "Plan",
    "PlanContext",
    "Policy",
    "TailSupervisor",
    "TaskProfile",
    "TaskRule",
    "account",
    "classify",
    "default_tracker",
    "estimate",
    "explain_plan",
    "get_policy",
    "hedge_spec",
    "latency_plot_data",
    "latency_table",
    "percentile",
    "plan",
    "policy_for",
    "register_policy",
    "set_default_tracker",
]
