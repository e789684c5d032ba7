"""What the frontend is sent: events turned into small JSON-ready dicts.

The live panes and the static HTML both draw from these, so a token looks (and hovers) the
same in both. Colours and tooltips are computed here, once, rather than again in JavaScript.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from ensemble_nb.core.events import ModelEnded, ModelFailed, Span, SpanRetried, Synthesis, TokenReceived
from ensemble_nb.core.result import ModelResult
from ensemble_nb.widgets.colors import NO_PROBS_LABEL, confidence_color, entropy_color, format_entropy

Payload = dict[str, Any]


def _prob(logprob: float | None) -> float | None:
    return None if logprob is None else math.exp(logprob)


def token_title(tok: TokenReceived) -> str:
    """The hover text of a token: its entropy, probability and top-k alternatives."""
    lines = [json.dumps(tok.text, ensure_ascii=False)]
    if tok.entropy_kind == "none" or tok.entropy is None:
        lines.append(f"{NO_PROBS_LABEL} (the provider returned none for this token)")
    else:
        lines.append(f"entropy {format_entropy(tok.entropy)}")
        if tok.entropy_kind == "topk" and tok.bounds is not None:
            b = tok.bounds
            lines.append(f"estimated from the top-k: between {b.tight_lower:.3f} and {b.upper:.3f} nats, "
                         f"tail mass {b.tail_mass:.3f}")
    p = _prob(tok.logprob)
    if p is not None:
        lines.append(f"p = {p:.3f}")
    if tok.alternatives:
        lines.append(f"top-{len(tok.alternatives)}:")
        for alt in tok.alternatives:
            mark = "  ← chosen" if alt.text == tok.text else ""
            lines.append(f"  {json.dumps(alt.text, ensure_ascii=False)}  {math.exp(alt.logprob):.3f}{mark}")
    return "\n".join(lines)


def token_payload(tok: TokenReceived) -> Payload:
    """One token for a pane: a colour only when the entropy is real (kind 'none' gets none)."""
    has_entropy = tok.entropy_kind != "none" and tok.entropy is not None
    return {
        "i": tok.index,
        "text": tok.text,
        "entropy": round(tok.entropy, 4) if has_entropy and tok.entropy is not None else None,
        "kind": tok.entropy_kind if has_entropy else "none",
        "color": entropy_color(tok.entropy) if has_entropy else None,
        "title": token_title(tok),
    }


def format_cost(cost: float | None) -> str:
    if cost is None:
        return "cost —"
    return "$0" if cost == 0 else f"${cost:.6f}"


def stats_payload(status: str, n_tokens: int, ttft: float | None, tps: float | None,
                  cost: float | None, end: ModelEnded | None) -> Payload:
    parts = [f"first token {ttft:.2f} s" if ttft is not None else "first token —"]
    if tps is not None:
        parts.append(f"{tps:.1f} tok/s")
    parts.append(f"{n_tokens} tokens")
    parts.append(format_cost(cost))
    detail = ""
    if isinstance(end, ModelFailed):
        detail = end.error
    elif end is not None and end.kind == "model_cancelled":
        detail = f"cancelled ({getattr(end, 'reason', 'user')})"
    elif end is not None and end.kind == "model_timed_out":
        detail = f"no answer within {getattr(end, 'timeout', 0.0):g} s"
    return {"status": status, "n": n_tokens, "ttft": ttft, "tps": tps, "cost": cost,
            "text": " · ".join(parts), "detail": detail}


def result_stats(r: ModelResult) -> Payload:
    return stats_payload(r.status, len(r.tokens), r.ttft, r.tokens_per_second, r.cost, r.end)


def span_title(span: Span, index: int) -> str:
    return (f"span {index} from {span.model}: confidence {span.confidence:.2f}, "
            f"mean entropy {format_entropy(span.mean_entropy)}, tokens {span.start_token}–{span.end_token}")


def retry_payload(ev: SpanRetried) -> Payload:
    return {
        "index": ev.index, "model": ev.new.model, "accepted": ev.accepted,
        "old_text": ev.old.text, "old_confidence": round(ev.old.confidence, 4),
        "new_text": ev.new.text, "new_confidence": round(ev.new.confidence, 4),
        "new_color": confidence_color(ev.new.confidence),
    }


def spans_payload(synthesis: Synthesis, retries: Sequence[SpanRetried]) -> list[Payload]:
    """The synthesis spans, each with the latest retry of it (if any) attached."""
    last = {ev.index: ev for ev in retries}
    return [
        {
            "i": i, "text": s.text, "model": s.model, "confidence": round(s.confidence, 4),
            "color": confidence_color(s.confidence), "title": span_title(s, i),
            "retried": retry_payload(last[i]) if i in last else None,
        }
        for i, s in enumerate(synthesis.spans)
    ]


def synthesis_summary(synthesis: Synthesis) -> str:
    who = f" from {synthesis.chosen}" if synthesis.chosen else ""
    notes = f" — {'; '.join(synthesis.notes)}" if synthesis.notes else ""
    return f"{synthesis.strategy}{who}, confidence {synthesis.confidence:.2f}{notes}"
