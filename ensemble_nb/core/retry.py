"""Regenerating one span of the synthesis given everything before it.

The same call serves automatic retries and the notebook's Retry-span button. A new version is
kept only when its confidence beats the old one; either way a ``SpanRetried`` event records
the attempt.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING

from ensemble_nb.core.entropy import aggregate
from ensemble_nb.core.errors import UserError
from ensemble_nb.core.events import Span, SpanRetried
from ensemble_nb.core.synthesis import confidence, first_sentence, replace_span
from ensemble_nb.core.tokens import Token

if TYPE_CHECKING:
    from ensemble_nb.core.run import EnsembleRun


def pick_retry_model(run: EnsembleRun, span: Span) -> str:
    """Another member that finished, if there is one; else the span's own model."""
    for model, result in run.result.models.items():
        if model != span.model and result.status == "finished":
            return model
    return span.model


async def retry_span(run: EnsembleRun, index: int, model: str | None = None) -> SpanRetried:
    synthesis = run.result.synthesis
    if synthesis is None:
        raise UserError("nothing to retry yet: wait until the run has a synthesis (await run)")
    if not 0 <= index < len(synthesis.spans):
        raise UserError(f"no span {index}: the synthesis has spans 0 to {len(synthesis.spans) - 1}")
    old = synthesis.spans[index]
    model = model or pick_retry_model(run, old)
    if model not in run.specs:
        raise UserError(f"cannot retry with '{model}': it is not a member of this run ({', '.join(run.specs)})")
    same_model = model == old.model
    prefix = "".join(s.text for s in synthesis.spans[:index])
    n_old = max(old.end_token - old.start_token, 1)
    # The same model with the same greedy settings would only repeat itself: sample instead.
    request = run.request(
        prefix=prefix, max_tokens=min(2 * n_old + 8, 4 * run.options.max_tokens),
        temperature=max(run.options.temperature, 0.7) if same_model else run.options.temperature,
        seed=run.options.seed + len(run.result.retries) + 1,
    )
    provider = run.provider_factory(run.specs[model])
    tokens: list[Token] = []
    try:
        async with aclosing(provider.stream(request)) as stream:
            async for item in stream:
                if isinstance(item, Token):
                    tokens.append(item)
                    if len(first_sentence(tokens)) < len(tokens):
                        break
    finally:
        await provider.aclose()
    kept = first_sentence(tokens)
    text = "".join(t.text for t in kept)
    if old.text.startswith(" ") and text and not text.startswith((" ", "\n")) and prefix:
        text = " " + text
    new = Span(text=text, model=model, confidence=confidence(kept) if kept else 0.0,
               mean_entropy=aggregate([t.entropy for t in kept], "mean"),
               start_token=old.start_token, end_token=old.start_token + len(kept))
    accepted = bool(text.strip()) and new.confidence > old.confidence
    updated = replace_span(synthesis, index, new) if accepted else synthesis
    event = SpanRetried(run_id=run.run_id, t=run.clock(), index=index, old=old, new=new,
                        accepted=accepted, synthesis=updated)
    run.emit(event)
    return event


async def retry_low_confidence(run: EnsembleRun, threshold: float) -> list[SpanRetried]:
    """Retry, once each, the spans of the synthesis whose confidence is below ``threshold``."""
    done: list[SpanRetried] = []
    synthesis = run.result.synthesis
    if synthesis is None:
        return done
    for index, span in enumerate(synthesis.spans):
        if span.confidence < threshold:
            done.append(await retry_span(run, index))
    return done
