"""Named scripts behind the ``scripted:NAME`` model ids, for offline demos and tests."""

from __future__ import annotations

from dataclasses import dataclass

from ensemble_nb.core.providers.scripted import ScriptedProvider, Step, steps_from_text


@dataclass(frozen=True)
class NamedScript:
    description: str
    text: str
    confidence: float
    first_token_delay: float = 0.05
    token_delay: float = 0.02


SCRIPTS: dict[str, NamedScript] = {
    "sure": NamedScript("a confident member: low entropy on every token",
                        "The capital of France is Paris.", 0.97),
    "unsure": NamedScript("a guessing member: high entropy on every token",
                          "The capital of France is Lyon.", 0.35),
    "slow": NamedScript("a member with a slow first token", "Paris is the capital of France.", 0.9,
                        first_token_delay=1.5, token_delay=0.05),
    "fast": NamedScript("a member that streams 400 tokens with no delay",
                        " ".join(["token"] * 400), 0.8, first_token_delay=0.0, token_delay=0.0),
}


def build(model_id: str) -> ScriptedProvider:
    script = SCRIPTS[model_id.split(":", 1)[1]]
    steps: list[Step] = steps_from_text(script.text, script.confidence)
    return ScriptedProvider(model_id, steps, first_token_delay=script.first_token_delay,
                            token_delay=script.token_delay)
