"""One reasoning-effort option for every provider.

Users say ``low``/``medium``/``high`` (or ``none``/``minimal``, or a number of thinking tokens)
and each provider gets what its API understands: OpenAI's ``reasoning_effort`` string,
Anthropic's ``thinking.budget_tokens``, Gemini's ``thinkingConfig.thinkingBudget``.
"""

from __future__ import annotations

from ensemble_nb.core.errors import UserError

LEVELS: tuple[str, ...] = ("none", "minimal", "low", "medium", "high")
"""Named levels, cheapest first."""

# Anthropic rejects budgets under 1024 tokens, so "low" sits at that floor; "high" stays well
# under the 32k at which Anthropic recommends batch processing instead of streaming.
ANTHROPIC_BUDGETS: dict[str, int] = {"low": 1024, "medium": 4096, "high": 16_384}
ANTHROPIC_MIN_BUDGET = 1024

# Gemini 2.5 Flash accepts 0 (thinking off) to 24576; Pro cannot switch thinking off and
# clamps small budgets up to its minimum of 128 itself, so 0 is still a safe request there.
GEMINI_BUDGETS: dict[str, int] = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24_576}
GEMINI_MAX_BUDGET = 32_768

# Used to turn an explicit token budget into the nearest OpenAI level.
_OPENAI_THRESHOLDS: tuple[tuple[int, str], ...] = ((0, "minimal"), (2048, "low"), (8192, "medium"))


def normalize(effort: str | None) -> str | int | None:
    """A level name, a token budget, or None (the model's default); anything else is a UserError."""
    if effort is None:
        return None
    value = effort.strip().lower()
    if not value or value == "default":
        return None
    if value in LEVELS:
        return value
    if value.isdigit():
        return int(value)
    raise UserError(
        f"unknown reasoning effort '{effort}': use one of {', '.join(LEVELS)} or a number of thinking tokens"
    )


def openai_effort(effort: str | None) -> str | None:
    """The value of OpenAI's ``reasoning_effort`` (``none`` only exists on newer models)."""
    level = normalize(effort)
    if level is None or isinstance(level, str):
        return level
    for ceiling, name in _OPENAI_THRESHOLDS:
        if level <= ceiling:
            return name
    return "high"


def anthropic_budget(effort: str | None) -> int | None:
    """``thinking.budget_tokens`` for Anthropic, or None to leave extended thinking off."""
    level = normalize(effort)
    if level is None or level in ("none", "minimal"):
        return None
    if isinstance(level, int):
        return None if level == 0 else max(level, ANTHROPIC_MIN_BUDGET)
    return ANTHROPIC_BUDGETS[level]


def gemini_budget(effort: str | None) -> int | None:
    """``thinkingConfig.thinkingBudget`` for Gemini, or None for the model's own default."""
    level = normalize(effort)
    if level is None:
        return None
    if isinstance(level, int):
        return min(level, GEMINI_MAX_BUDGET)
    return GEMINI_BUDGETS[level]
