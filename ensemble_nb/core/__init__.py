"""The pure core of ensemble_nb: events, providers, entropy, runs and synthesis.

Nothing here imports IPython, ipywidgets, traitlets or plotly.
"""

from ensemble_nb.core.api import prepare, run, run_async
from ensemble_nb.core.errors import EnsembleError, ProviderError, UserError
from ensemble_nb.core.events import (
    Event,
    ModelCancelled,
    ModelEnded,
    ModelFailed,
    ModelFinished,
    ModelStarted,
    ModelTimedOut,
    Passage,
    PlanChosen,
    RetrievalDone,
    RunFinished,
    RunStarted,
    Span,
    SpanRetried,
    Synthesis,
    SynthesisReady,
    TokenReceived,
)
from ensemble_nb.core.options import RunOptions
from ensemble_nb.core.result import ModelResult, RunResult
from ensemble_nb.core.run import EnsembleRun

__all__ = [
    "EnsembleError",
    "EnsembleRun",
    "Event",
    "ModelCancelled",
    "ModelEnded",
    "ModelFailed",
    "ModelFinished",
    "ModelResult",
    "ModelStarted",
    "ModelTimedOut",
    "Passage",
    "PlanChosen",
    "ProviderError",
    "RetrievalDone",
    "RunFinished",
    "RunOptions",
    "RunResult",
    "RunStarted",
    "Span",
    "SpanRetried",
    "Synthesis",
    "SynthesisReady",
    "TokenReceived",
    "UserError",
    "prepare",
    "run",
    "run_async",
]
