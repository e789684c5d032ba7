"""Defaults of the ``%%ensemble`` magic, set through traitlets config.

In a session: ``%config Ensemble.models = ['smollm2', 'gemma3']``; in ``ipython_config.py``:
``c.Ensemble.max_tokens = 64``. A run setting left at ``None`` means "the core's default", so
each default is written once (in :class:`ensemble_nb.core.options.RunOptions`) and loading the
extension does not import the core.
"""

from __future__ import annotations

import keyword
from typing import Any

from traitlets import Bool, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import Configurable

# Settings that are options of a run (RunOptions fields); the others steer the magic itself.
RUN_FIELDS = ("models", "max_tokens", "temperature", "top_p", "top_k", "timeout", "budget", "system", "seed",
              "synthesis", "retry_below")


class Ensemble(Configurable):
    """Defaults for ``%%ensemble`` cells. A flag in the cell wins over these."""

    models = List(Unicode(), default_value=None, allow_none=True,
                  help="Model ids to run, e.g. ['smollm2', 'openai:gpt-4o-mini'] (None: built-in default)",
                  ).tag(config=True)
    max_tokens = Int(None, allow_none=True, help="Most tokens each model may generate").tag(config=True)
    temperature = Float(None, allow_none=True, help="Sampling temperature, 0 to 2").tag(config=True)
    top_p = Float(None, allow_none=True, help="Nucleus sampling mass, (0, 1]").tag(config=True)
    top_k = Int(None, allow_none=True, help="Alternatives kept per token, 0 to 20").tag(config=True)
    timeout = Float(None, allow_none=True, help="Seconds per model; 0 for no limit").tag(config=True)
    budget = Float(None, allow_none=True, help="Extra cost/time allowed, 0.25 = +25 %").tag(config=True)
    system = Unicode(None, allow_none=True, help="A system prompt sent with every run").tag(config=True)
    seed = Int(None, allow_none=True, help="Sampling seed").tag(config=True)
    synthesis = Unicode(None, allow_none=True,
                        help="How answers merge: best_confidence, vote, span_merge or llm").tag(config=True)
    retry_below = Float(None, allow_none=True,
                        help="Retry spans whose confidence is below this, 0 to 1").tag(config=True)
    out = Unicode("_ensemble", help="Variable that receives the run handle (await it for the result)",
                  ).tag(config=True)
    block = Bool(None, allow_none=True,
                 help="True: every run blocks its cell. False: never block where a kernel loop is running, "
                      "even for headless clients. None: decide per cell (see %ensemble help).",
                 ).tag(config=True)
    quiet = Bool(False, help="Blocking runs print only the summary, not the token stream").tag(config=True)

    @validate("out")
    def _valid_out(self, proposal: Any) -> str:
        name = str(proposal["value"])
        if not name.isidentifier() or keyword.iskeyword(name):
            raise TraitError(f"Ensemble.out must be a Python variable name, not {name!r}")
        return name

    def run_settings(self) -> dict[str, Any]:
        """The run options set in config (those left at ``None`` are omitted)."""
        values = {name: getattr(self, name) for name in RUN_FIELDS}
        return {name: value for name, value in values.items() if value is not None}


HELP = """\
%%ensemble [options]      run the cell body as a prompt on an ensemble of models
%ensemble list            models, their provider, API-key presence, token probabilities
%ensemble config          effective defaults and where each comes from
%ensemble latency         measured time to first token, gaps, speed and errors per model
                          (in a notebook also a p50/p90/p99 time-to-first-token chart)
%ensemble plan "PROMPT" [options]
                          which models a run of PROMPT would use now, expected cost and time,
                          and why (takes the run options below, e.g. --models, --budget;
                          no model is called)
%ensemble help            this text

Options (a flag in the cell wins over %config Ensemble.NAME; quote values with spaces):
  --models IDS            comma- or space-separated ids, e.g. --models "smollm2, gemma3"
  --max-tokens N          most tokens per model
  --temperature T         sampling temperature, 0 to 2
  --top-p P               nucleus sampling mass, (0, 1]
  --top-k K               alternatives kept per token, 0 to 20
  --timeout S             seconds per model; 0 or none for no limit
  --budget B              extra cost/time allowed, 0.25 = +25 %
  --system TEXT           a system prompt
  --seed N                sampling seed
  --synthesis NAME        how answers merge: best_confidence, vote, span_merge or llm
  --retry-below C         retry the spans whose confidence is below C (0 to 1), keep better ones
  --effort LEVEL          reasoning effort: none, minimal, low, medium, high, or a number
                          of thinking tokens (each provider gets its own form of it)
  --rag SOURCE            retrieve passages from a folder/file path, or a variable holding
                          a list of strings or a DataFrame column (BM25 over query variants)
  --out VAR               variable for the run handle (default _ensemble); `await VAR` gives the result
  --block                 wait for the run in this cell, printing it as text
  --no-block              don't, wherever a kernel loop runs (even for a headless client)
  --quiet                 a blocking run prints only the summary

Prompt: {name} or {name.attr} is replaced by that variable's value when the name exists in the
notebook; every other brace (JSON, code) is kept as written. Write {{name}} for a literal {name}.

When does a cell block? It returns at once, showing a live view, when it runs in a Jupyter
kernel whose event loop is running and whose client accepts input (JupyterLab, Notebook, VS Code).
It blocks and prints the run as text when there is no kernel (terminal IPython, scripts), when
the client is headless (nbclient, papermill, nbconvert --execute send allow_stdin=False), or with
--block / Ensemble.block = True. Ensemble.block = False never blocks where a kernel loop runs.
"""
