"""A static rendering of a finished run, for ``RunResult._repr_mimebundle_``.

No widgets and no JavaScript: it must survive nbconvert, GitHub's renderer and untrusted
notebooks. Colours are inline styles (sanitizers keep those) and hovering a token shows its
top-k through the ``title`` attribute, the same text the live view shows.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path

from ensemble_nb.core.result import ModelResult, RunResult
from ensemble_nb.textview import summary
from ensemble_nb.widgets.colors import legend_html
from ensemble_nb.widgets.payload import (
    result_stats,
    retry_payload,
    spans_payload,
    synthesis_summary,
    token_payload,
)


@lru_cache(maxsize=1)
def _css() -> str:
    return (Path(__file__).parent / "static" / "enb.css").read_text(encoding="utf-8")


def _attr(value: object) -> str:
    return html.escape(str(value), quote=True)


def _model_html(r: ModelResult) -> str:
    stats = result_stats(r)
    tokens = []
    for tok in r.tokens:
        p = token_payload(tok)
        style = f' style="background-color:{p["color"]}"' if p["color"] else ""
        cls = "enb-token" + (" enb-noprob" if p["color"] is None else "") + (
            " enb-topk" if p["kind"] == "topk" else "")
        tokens.append(f'<span class="{cls}" data-index="{p["i"]}" data-kind="{p["kind"]}"{style} '
                      f'title="{_attr(p["title"])}">{html.escape(p["text"])}</span>')
    detail = f'<div class="enb-detail">{html.escape(stats["detail"])}</div>' if stats["detail"] else ""
    return (
        f'<div class="enb-pane enb-model-block" data-model="{_attr(r.model)}" data-status="{_attr(r.status)}">'
        f'<div class="enb-pane-header"><span class="enb-model-name">{html.escape(r.model)}</span>'
        f'<span class="enb-status" data-status="{_attr(r.status)}">{html.escape(r.status)}</span>'
        f'<span class="enb-stats">{html.escape(stats["text"])}</span></div>{detail}'
        f'<div class="enb-tokens" style="max-height:none">{"".join(tokens)}</div></div>'
    )


def _synthesis_html(result: RunResult) -> str:
    syn = result.synthesis
    if syn is None:
        return ('<div class="enb-synthesis"><div class="enb-synthesis-title">Synthesis</div>'
                '<span class="enb-waiting">none: the run ended before synthesis</span></div>')
    spans = "".join(
        f'<span class="enb-span{" enb-span-retried" if s["retried"] else ""}" data-index="{s["i"]}" '
        f'data-model="{_attr(s["model"])}" data-confidence="{s["confidence"]}" '
        f'style="background-color:{s["color"]}" title="{_attr(s["title"])}">{html.escape(s["text"])}</span>'
        for s in spans_payload(syn, result.retries)
    )
    retries = []
    for ev in result.retries:
        r = retry_payload(ev)
        verdict = "kept" if r["accepted"] else "discarded (not more confident)"
        retries.append(
            f'<li class="enb-retry-item" data-index="{r["index"]}" data-accepted="{str(r["accepted"]).lower()}">'
            f"span {r['index']} retried with {html.escape(r['model'])}: "
            f'<span class="enb-retry-new" style="background-color:{r["new_color"]}">'
            f"{html.escape(r['new_text'].strip() or '(empty)')}</span> — confidence "
            f"{r['old_confidence']:.2f} → {r['new_confidence']:.2f}, {verdict}</li>"
        )
    retry_list = f'<ul class="enb-retries">{"".join(retries)}</ul>' if retries else ""
    return (f'<div class="enb-synthesis"><div class="enb-synthesis-title">Synthesis: '
            f"{html.escape(synthesis_summary(syn))}</div>"
            f'<div class="enb-answer">{spans}</div>{retry_list}</div>')


def result_html(result: RunResult) -> str:
    duration = f" in {result.duration:.2f} s" if result.duration is not None else ""
    cost = f" · ${result.cost:.6f}" if result.cost is not None else ""
    header = (f'<div class="enb-header" data-status="{_attr(result.status)}"><b>ensemble</b> · '
              f"{html.escape(result.status)}{duration}{cost}"
              f'<div class="enb-prompt" style="color:#555">{html.escape(result.prompt)}</div></div>')
    models = "".join(_model_html(r) for r in result.models.values())
    return (f'<div class="enb-static"><style>{_css()}</style>{header}{legend_html()}'
            f'<div class="enb-panes" style="display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));'
            f'gap:8px;margin:6px 0">{models}</div>{_synthesis_html(result)}</div>')


def result_mimebundle(result: RunResult) -> dict[str, str]:
    """text/plain (the text summary) and text/html (answers coloured by entropy, synthesis)."""
    return {"text/plain": summary(result), "text/html": result_html(result)}
