"""``TokenExplorer``: click any token of any model, see its alternatives, branch from one.

The token grid is an anywidget (``static/explorer.js``); a click sets ``selected``. The chart
is a plotly ``FigureWidget`` of the token's top-k (the mass outside them as a grey bar); clicking
a bar or the dropdown picks the alternative, and **Branch** asks the same model to continue from
it (:func:`ensemble_nb.core.branch.branch`). The result is drawn beside the original.

Widget callbacks may come on any thread (ipykernel's comm handling), so Branch only schedules
the coroutine on an event loop that is running — the run's, else the loop that was running
when the explorer was built (the kernel's) — and draws when it is done, on that loop.
"""

from __future__ import annotations

import asyncio
import html
import threading
from concurrent.futures import Future
from typing import Any

import anywidget
import ipywidgets as w
import plotly.graph_objects as go
import traitlets as t

from ensemble_nb.core.branch import DEFAULT_BRANCH_TOKENS, Branch, branch
from ensemble_nb.core.entropy import LN2
from ensemble_nb.core.events import Event, ModelEnded, RunFinished, TokenReceived
from ensemble_nb.core.result import RunResult
from ensemble_nb.core.run import EnsembleRun
from ensemble_nb.core.sampling import OTHER, Distribution
from ensemble_nb.core.tokens import Token
from ensemble_nb.widgets.colors import entropy_color, format_entropy
from ensemble_nb.widgets.payload import token_payload
from ensemble_nb.widgets.ticker import running_loop
from ensemble_nb.widgets.token_pane import STATIC

_CHOSEN, _PICKED, _OTHER_BAR, _BAR = "#2563eb", "#7c3aed", "#bbbbbb", "#93c5fd"


class TokenGrid(anywidget.AnyWidget):
    _esm = STATIC / "explorer.js"
    _css = STATIC / "explorer.css"

    models = t.Dict().tag(sync=True)  # model -> [token payload]
    selected = t.Dict().tag(sync=True)  # {model, index}: written by the frontend on a click
    branched = t.List(t.Unicode()).tag(sync=True)  # "model:index" of tokens branched from


class TokenExplorer(w.VBox):  # type: ignore[misc]
    """Explore a run's tokens. ``run`` is the handle (needed to branch) or a finished result."""

    def __init__(self, run: EnsembleRun | RunResult, *, max_tokens: int = DEFAULT_BRANCH_TOKENS) -> None:
        self.run = run if isinstance(run, EnsembleRun) else None
        self.result = run.result if isinstance(run, EnsembleRun) else run
        self._home_loop = running_loop()
        self._lock = threading.Lock()
        self.branches: list[Branch] = []
        self.errors: list[str] = []
        self.pending: Future[Branch] | None = None
        self.grid = TokenGrid()
        self.chart = go.FigureWidget(data=[go.Bar(x=[], y=[], marker={"color": []}, hovertemplate=(
            "%{x}: p = %{y:.3f}<extra></extra>"))], layout=go.Layout(
            height=280, margin={"l": 50, "r": 10, "t": 40, "b": 60}, yaxis={"title": {"text": "probability"},
                                                                         "range": [0, 1]},
            title={"text": "click a token above", "font": {"size": 13}}))
        self.chart.add_class("enb-explorer-chart")
        self.chart.data[0].on_click(self._on_bar_click)
        self.choice = w.Dropdown(description="alternative", options=[], layout=w.Layout(width="320px"))
        self.choice.observe(lambda _c: self._draw_chart(), "value")
        self.max_tokens = w.BoundedIntText(value=max_tokens, min=1, max=512, description="max tokens",
                                           layout=w.Layout(width="180px"))
        self.branch_button = w.Button(description="Branch", icon="code-fork", disabled=True,
                                      tooltip="continue this model from the chosen alternative")
        self.branch_button.add_class("enb-branch")
        self.branch_button.on_click(self._on_branch)
        self.notice = w.HTML("")
        self.branch_view = w.HTML("")
        self.branch_view.add_class("enb-branch-view")
        self.grid.observe(lambda _c: self._on_select(), "selected")
        controls = w.HBox([self.choice, self.max_tokens, self.branch_button])
        super().__init__([self.grid, self.chart, controls, self.notice, self.branch_view])
        self.add_class("enb-token-explorer")
        self.refresh()
        if self.run is not None and not self.run.done:
            self.run.add_listener(self._on_event, replay=False)

    # -- data --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the tokens the run has now (called again when each model ends)."""
        self.grid.models = {m: [token_payload(tok) for tok in r.tokens] for m, r in self.result.models.items()}

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ModelEnded | RunFinished):
            self.refresh()

    def token(self) -> TokenReceived | None:
        sel = self.grid.selected
        r = self.result.models.get(str(sel.get("model", "")))
        i = sel.get("index")
        return r.tokens[i] if r is not None and isinstance(i, int) and 0 <= i < len(r.tokens) else None

    # -- selection (any thread) --------------------------------------------------------------
    def select(self, model: str, index: int) -> None:
        """What a click on a token does: select token ``index`` of ``model``."""
        self.grid.selected = {"model": model, "index": index}

    def choose(self, alternative: int | str) -> None:
        """Pick the alternative to branch from, by its rank (0 = most likely) or its text."""
        values = [v for _, v in self.choice.options]
        self.choice.value = values[alternative] if isinstance(alternative, int) else alternative

    def _on_select(self) -> None:
        tok = self.token()
        # The dropdown lists the chart's bars in the chart's order, so bar i is option i.
        dist = Distribution.from_token(tok) if tok is not None and tok.alternatives else None
        bars = list(zip(dist.labels, dist.probs, strict=True)) if dist is not None else []
        pairs = [(lab, p) for i, (lab, p) in enumerate(bars) if not (lab == OTHER and i == len(bars) - 1)]
        alts = [lab for lab, _ in pairs]
        self.choice.options = [(f"{i + 1}. {lab!r} (p {p:.3f})", lab) for i, (lab, p) in enumerate(pairs)]
        if tok is not None:  # default to the likeliest road not taken
            others = [a for a in alts if a != tok.text]
            self.choice.value = others[0] if others else (alts[0] if alts else None)
        self.branch_button.disabled = tok is None or not alts or self.run is None
        if tok is not None and self.run is None:
            self.notice.value = "pass the run handle (not its result) to branch"
        self._draw_chart()

    def _on_bar_click(self, _trace: Any, points: Any, _state: Any) -> None:
        inds = list(getattr(points, "point_inds", []) or [])
        values = [v for _, v in self.choice.options]
        if inds and inds[0] < len(values):
            self.choice.value = values[inds[0]]

    def _draw_chart(self) -> None:
        tok = self.token()
        if tok is None:
            return
        dist = _distribution(tok)
        colors = [_OTHER_BAR if lab == OTHER and i == len(dist.labels) - 1 else
                  _PICKED if lab == self.choice.value else _CHOSEN if lab == tok.text else _BAR
                  for i, lab in enumerate(dist.labels)]
        h = tok.entropy
        title = (f"{tok.model} token {tok.index} {tok.text!r}: entropy "
                 + (f"{h:.3f} nats = {h / LN2:.3f} bits ({tok.entropy_kind})" if h is not None else "unknown"))
        with self.chart.batch_update():
            bar = self.chart.data[0]
            bar.x = [f"{i + 1}. {lab!r}" if lab != OTHER else lab for i, lab in enumerate(dist.labels)]
            bar.y = list(dist.probs)
            bar.marker.color = colors
            self.chart.layout.title.text = title

    # -- branching ---------------------------------------------------------------------------
    def _on_branch(self, _button: Any = None) -> None:
        tok, alt = self.token(), self.choice.value
        if tok is None or alt is None or self.run is None:
            self.notice.value = "select a token and an alternative first"
            return
        coro = branch(self.run, tok.model, tok.index, alt, max_tokens=int(self.max_tokens.value))
        loop = self.run.loop if self.run.loop is not None and self.run.loop.is_running() else self._home_loop
        if loop is None or not loop.is_running():
            coro.close()
            self.notice.value = ("no running event loop to branch on: call "
                                 "`await explorer.branch_selected()` in a cell instead")
            return
        self.notice.value = f"branching {tok.model} at token {tok.index} with {alt!r}…"
        self.branch_button.disabled = True
        self.pending = asyncio.run_coroutine_threadsafe(coro, loop)
        self.pending.add_done_callback(self._branch_done)

    def _branch_done(self, future: Future[Branch]) -> None:
        self.branch_button.disabled = False
        if future.cancelled():
            self.notice.value = "branch cancelled"
        elif (exc := future.exception()) is not None:
            self.errors.append(str(exc))
            self.notice.value = f"branch failed: {html.escape(str(exc))}"
        else:
            self.show(future.result())

    async def branch_selected(self) -> Branch:
        """What the Branch button does, awaited (for scripts and headless notebooks)."""
        tok, alt = self.token(), self.choice.value
        if tok is None or alt is None or self.run is None:
            raise ValueError("select a token (explorer.select(model, index)) and a run handle first")
        got = await branch(self.run, tok.model, tok.index, alt, max_tokens=int(self.max_tokens.value))
        self.show(got)
        return got

    def show(self, got: Branch) -> None:
        """Draw ``got`` beside the original answer."""
        with self._lock:
            self.branches.append(got)
            self.grid.branched = sorted({*self.grid.branched, f"{got.model}:{got.index}"})
        original = self.result.models[got.model].tokens
        self.notice.value = (f"branch {len(self.branches)}: {got.model} took {got.alternative!r} instead of "
                             f"{got.original!r} at token {got.index}; {len(got.tokens)} new tokens, mean entropy "
                             f"{format_entropy(got.mean_entropy)}")
        self.branch_view.value = branch_html(original, got)


def _distribution(tok: TokenReceived) -> Distribution:
    if not tok.alternatives:  # a provider without probabilities: only the token itself is known
        return Distribution((tok.text,), (1.0,))
    return Distribution.from_token(tok)


def _tokens_html(tokens: list[TokenReceived] | tuple[Token, ...]) -> str:
    out = []
    for tok in tokens:
        color = entropy_color(tok.entropy) if tok.entropy_kind != "none" else None
        style = f' style="background:{color}"' if color else ""
        out.append(f'<span class="enb-token"{style} title="{html.escape(format_entropy(tok.entropy))}">'
                   f"{html.escape(tok.text)}</span>")
    return "".join(out)


def branch_html(original: list[TokenReceived], got: Branch) -> str:
    """The original answer and the branch side by side, the fork outlined in both."""
    head = html.escape("".join(tok.text for tok in original[:got.index]))
    fork = original[got.index]
    left = (f'<span class="enb-branch-prefix">{head}</span><span class="enb-branch-fork">'
            f"{_tokens_html([fork])}</span>{_tokens_html(original[got.index + 1:])}")
    right = (f'<span class="enb-branch-prefix">{head}</span><span class="enb-branch-fork">'
             f"{html.escape(got.alternative)}</span>{_tokens_html(got.tokens)}")
    title = "font-weight:600;margin-bottom:4px"
    return (f'<div class="enb-branch-cols" style="display:grid;grid-template-columns:1fr 1fr;gap:8px">'
            f'<div class="enb-branch-col enb-branch-original" style="white-space:pre-wrap">'
            f'<div style="{title}">original ({html.escape(got.model)})</div>{left}</div>'
            f'<div class="enb-branch-col enb-branch-new" style="white-space:pre-wrap">'
            f'<div style="{title}">branch: {html.escape(repr(got.alternative))} instead of '
            f"{html.escape(repr(got.original))}</div>{right}</div></div>")


def explore(result_or_run: EnsembleRun | RunResult, **kwargs: Any) -> TokenExplorer:
    """A :class:`TokenExplorer` of a run handle (can branch) or of a result (view only)."""
    return TokenExplorer(result_or_run, **kwargs)
