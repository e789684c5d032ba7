"""What kind of question a prompt is: rules on its text, and a hook for a classifier model.

The rules are plain data (a tag, a regular expression, a weight, a line of why) so a user can
read, extend or replace them: ``BudgetPolicy(rules=DEFAULT_RULES + (TaskRule("legal", r"\\bstatute\\b"),))``.
A classifier is any callable from the prompt to tag scores; it runs only if the user gives one,
so by default planning calls no model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

TASK_TAGS = ("code", "math", "factual", "creative")
Classifier = Callable[[str], Mapping[str, float]]


@dataclass(frozen=True)
class TaskRule:
    """``pattern`` (case-insensitive) found in the prompt adds ``weight`` to ``tag``."""

    tag: str
    pattern: str
    weight: float = 1.0
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_regex", re.compile(self.pattern, re.IGNORECASE | re.MULTILINE))

    def find(self, text: str) -> str | None:
        m = self._regex.search(text)
        return m.group(0) if m else None


DEFAULT_RULES: tuple[TaskRule, ...] = (
    TaskRule("code", r"```"),
    TaskRule("code", r"^\s*(def|class|import|from \S+ import|#include|fn|func|public|SELECT)\b"),
    TaskRule("code", r"\b(python|javascript|typescript|rust|golang|java|c\+\+|sql|regex|bash|numpy|pandas)\b"),
    TaskRule("code", r"\b(function|compile[rs]?|stack ?trace|traceback|exception|segfault|refactor|unit tests?"
                     r"|bug|debug|api|snippet|code)\b", 0.7),
    TaskRule("math", r"\d+\s*[-+*/^=×÷]\s*\d+"),
    TaskRule("math", r"[∫∑∏√π≤≥∞]|\\frac|\$[^$]+\$"),
    TaskRule("math", r"\b(integral|derivative|equation|prove|proof|theorem|lemma|probability|matrix|"
                     r"solve|calculate|compute|how many|sum of|percent(age)?|prime|factorial)\b"),
    TaskRule("factual", r"^\s*(who|what|when|where|which|how (big|far|old|long|tall))\b", 0.7),
    TaskRule("factual", r"\b(capital of|population|born|founded|invented|discovered|year|date|"
                        r"define|definition|meaning of|history of|fact)\b"),
    TaskRule("creative", r"\b(poem|poetry|story|haiku|limerick|song|lyrics|slogan|tagline|"
                         r"fiction|imagine|joke|creative|brainstorm|metaphor)\b"),
    TaskRule("creative", r"^\s*write (me )?(a|an|some)\b", 0.5),
)


@dataclass(frozen=True)
class TaskProfile:
    """Tag scores for one prompt and the matches behind them."""

    scores: Mapping[str, float]
    evidence: tuple[str, ...] = ()

    @property
    def top(self) -> str | None:
        """The strongest tag (ties: the order of TASK_TAGS), or None when nothing matched."""
        if not self.scores:
            return None
        order = {t: i for i, t in enumerate(TASK_TAGS)}
        return min(self.scores, key=lambda t: (-self.scores[t], order.get(t, len(order))))

    def weight(self, tags: Sequence[str]) -> float:
        """How well a model with ``tags`` fits: its matching share of the evidence, 0 to 1."""
        total = sum(self.scores.values())
        return sum(self.scores.get(t, 0.0) for t in set(tags)) / total if total else 0.0

    def describe(self) -> str:
        if not self.scores:
            return "general question (no task rule matched)"
        ranked = sorted(self.scores.items(), key=lambda kv: -kv[1])
        tags = ", ".join(f"{t} {s:.1f}" for t, s in ranked)
        return f"{self.top} ({tags}; matched {', '.join(self.evidence[:4])})"


CLASSIFIER_PROMPT = (
    "Which kinds of task is the request below? Answer with one or more of: {tags}, comma-separated, "
    "nothing else.\n\nRequest:\n{prompt}"
)


def llm_classifier(complete: Callable[[str], str], template: str = CLASSIFIER_PROMPT,
                   tags: Sequence[str] = TASK_TAGS, weight: float = 1.0) -> Classifier:
    """A classifier from a cheap model: ``complete`` sends the text and returns the reply (call a
    small local model or an API synchronously); tags named in the reply score ``weight``. The
    template is yours to edit; planning then calls that model once per prompt."""

    def classify_with_model(prompt: str) -> dict[str, float]:
        reply = complete(template.format(tags=", ".join(tags), prompt=prompt)).lower()
        return {t: weight for t in tags if re.search(rf"\b{re.escape(t.lower())}\b", reply)}

    return classify_with_model


def classify(prompt: str, rules: Sequence[TaskRule] = DEFAULT_RULES,
             classifier: Classifier | None = None) -> TaskProfile:
    """Score the prompt's task tags by the rules, plus the classifier's scores when given."""
    scores: dict[str, float] = {}
    evidence: list[str] = []
    for rule in rules:
        hit = rule.find(prompt)
        if hit is not None:
            scores[rule.tag] = scores.get(rule.tag, 0.0) + rule.weight
            evidence.append(f"{rule.tag}: {hit.strip()[:24]!r}")
    if classifier is not None:
        for tag, score in classifier(prompt).items():
            if score > 0:
                scores[tag] = scores.get(tag, 0.0) + float(score)
                evidence.append(f"{tag}: classifier {score:.2f}")
    return TaskProfile(scores, tuple(evidence))
